package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Pushed revocations: a standalone edge follows the provider's revocation
// stream (GET /revocations, a long poll that resumes from the last
// sequence number it saw) and keeps the revoked token IDs and grants until
// the tokens would have expired. It is the validator's revocation list:
// each new revocation moves its epoch, so every cached verdict is made
// again — checking the list — before the token is accepted once more. A
// revocation at the provider is refused by every following edge within
// about a second, with no call to the provider per request.
//
// A read waits up to min(20 s, MaxGap) for news. If the stream cannot be
// read for MaxGap beyond that wait, the edge keeps
// serving by default (oidcgate_edge_revocation_stream_up is 0 and the lag
// grows) or, with FailClosed, answers 503 until it can read it again.

// RevocationStreamConfig configures the subscription.
type RevocationStreamConfig struct {
	URL          string        `yaml:"revocation_stream" help:"the provider's revocation stream (its issuer + /revocations) to follow, with --client-id and --client-secret of a resource server (introspect_any): revoked tokens are refused within about a second; empty: none"`
	MaxGap       time.Duration `yaml:"revocation_stream_max_gap" help:"how long the revocation stream may be unreadable before the edge counts as cut off (then --revocation-fail-closed decides)"`
	FailClosed   bool          `yaml:"revocation_fail_closed" help:"answer 503 while cut off from the revocation stream for longer than --revocation-stream-max-gap, instead of serving on with what it knows"`
	ClientID     string        `yaml:"-"`
	ClientSecret string        `yaml:"-"`
}

// DefaultRevocationStreamConfig is the subscription's defaults.
func DefaultRevocationStreamConfig() RevocationStreamConfig {
	return RevocationStreamConfig{MaxGap: 30 * time.Second}
}

// Validate reports every bad setting.
func (c RevocationStreamConfig) Validate() error {
	var errs []error
	if c.URL != "" {
		if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, bad("revocation_stream", "not an http(s) URL: %q", c.URL))
		}
	}
	if c.MaxGap <= 0 {
		errs = append(errs, bad("revocation_stream_max_gap", "must be a positive duration, got %s", c.MaxGap))
	}
	return errors.Join(errs...)
}

// PushedRevocations follows a revocation stream; it is a RevocationList.
type PushedRevocations struct {
	cfg    RevocationStreamConfig
	log    *slog.Logger
	now    func() time.Time
	client *http.Client

	mu      sync.RWMutex
	revoked map[string]int64 // jti (or family:<fid>) → exp, Unix seconds
	cursor  uint64
	epoch   atomic.Uint64
	lastOK  atomic.Int64 // Unix nanoseconds of the last successful read; 0: none yet
	applied prometheus.Counter
	up      prometheus.Gauge
}

// NewPushedRevocations builds the subscription; Run follows the stream.
func NewPushedRevocations(cfg RevocationStreamConfig, log *slog.Logger, reg prometheus.Registerer, now func() time.Time) (*PushedRevocations, error) {
	p := &PushedRevocations{cfg: cfg, log: log, now: now, revoked: map[string]int64{},
		client: &http.Client{Timeout: min(20*time.Second, cfg.MaxGap) + 10*time.Second},
		applied: prometheus.NewCounter(prometheus.CounterOpts{Name: "oidcgate_edge_revocations_received_total",
			Help: "Revocations received from the provider's revocation stream."}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "oidcgate_edge_revocation_stream_up",
			Help: "1 while the revocation stream is read within --revocation-stream-max-gap, else 0."}),
	}
	lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "oidcgate_edge_revocation_stream_lag_seconds",
		Help: "Seconds since the revocation stream was last read successfully (what the edge may not know yet, at most)."},
		func() float64 {
			if t := p.lastOK.Load(); t != 0 {
				return p.now().Sub(time.Unix(0, t)).Seconds()
			}
			return 0
		})
	for _, c := range []prometheus.Collector{p.applied, p.up, lag} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Revoked implements RevocationList.
func (p *PushedRevocations) Revoked(_ context.Context, jti, family string) (bool, error) {
	if p.cutOff() && p.cfg.FailClosed {
		return false, fmt.Errorf("%w: cut off from the revocation stream", ErrUnavailable)
	}
	now := p.now().Unix()
	p.mu.RLock()
	defer p.mu.RUnlock()
	if exp, ok := p.revoked[jti]; ok && jti != "" && now < exp {
		return true, nil
	}
	if exp, ok := p.revoked["family:"+family]; ok && family != "" && now < exp {
		return true, nil
	}
	return false, nil
}

// RevocationEpoch is how many revocations were received: a change makes
// the validator check cached tokens again.
func (p *PushedRevocations) RevocationEpoch() uint64 {
	n := p.epoch.Load()
	if p.cfg.FailClosed && p.cutOff() {
		n++ // cut off: no cached verdict stands
	}
	return n
}

// wait is how long one read waits for news: at most 20 s, and no longer
// than MaxGap, so a healthy stream answers at least that often.
func (p *PushedRevocations) wait() time.Duration { return min(20*time.Second, p.cfg.MaxGap) }

// cutOff: the stream was not read for MaxGap beyond a read's wait.
func (p *PushedRevocations) cutOff() bool {
	t := p.lastOK.Load()
	return t == 0 || p.now().Sub(time.Unix(0, t)) > p.cfg.MaxGap+p.wait()
}

// Ready reports whether the revocations so far are known.
func (p *PushedRevocations) Ready() error {
	if p.lastOK.Load() == 0 {
		return errors.New("the revocation stream has not been read yet")
	}
	return nil
}

// Run follows the stream until ctx ends.
func (p *PushedRevocations) Run(ctx context.Context) {
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		err := p.poll(ctx)
		p.up.Set(map[bool]float64{true: 0, false: 1}[p.cutOff()])
		if err == nil {
			backoff = 500 * time.Millisecond
			continue
		}
		if ctx.Err() == nil {
			p.log.Warn("revocation stream unreadable", "error", err, "retry_in", backoff.String())
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second) // a loopback or in-cluster provider: back within a second of its return
	}
}

type streamPage struct {
	Revocations []struct {
		Seq uint64 `json:"seq"`
		JTI string `json:"jti"`
		Exp int64  `json:"exp"`
	} `json:"revocations"`
	Next string `json:"next"`
}

// poll is one long-poll read: it waits up to 20 s for revocations after
// the cursor and applies them.
func (p *PushedRevocations) poll(ctx context.Context) error {
	p.mu.RLock()
	after := p.cursor
	p.mu.RUnlock()
	wait := p.wait().String()
	if p.lastOK.Load() == 0 {
		wait = "0s" // the first read: what there is, at once
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.URL+"?after="+strconv.FormatUint(after, 10)+"&wait="+wait, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(url.QueryEscape(p.cfg.ClientID), url.QueryEscape(p.cfg.ClientSecret))
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var page streamPage
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&page); err != nil {
		return fmt.Errorf("the stream's answer: %w", err)
	}
	next, err := strconv.ParseUint(page.Next, 10, 64)
	if err != nil || next < after {
		return fmt.Errorf("the stream's next %q is not after %d", page.Next, after)
	}
	now := p.now().Unix()
	p.mu.Lock()
	for _, r := range page.Revocations {
		if r.JTI != "" && r.Exp > now {
			p.revoked[r.JTI] = r.Exp
		}
	}
	if len(page.Revocations) > 0 {
		for jti, exp := range p.revoked { // drop the expired while holding the lock anyway
			if exp <= now {
				delete(p.revoked, jti)
			}
		}
	}
	p.cursor = next
	p.mu.Unlock()
	p.lastOK.Store(p.now().UnixNano())
	if len(page.Revocations) > 0 {
		p.applied.Add(float64(len(page.Revocations)))
		p.epoch.Add(uint64(len(page.Revocations)))
	}
	return nil
}
