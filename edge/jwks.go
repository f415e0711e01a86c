package edge

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"golang.org/x/sync/singleflight"

	"github.com/oidcgate/oidcgate/keys"
)

// ErrUnavailable: no decision is possible (no keys, or only keys older than
// the stale limit; or the introspection endpoint is down with nothing
// cached). The edge answers 503, never 200.
var ErrUnavailable = errors.New("verification keys unavailable")

// RemoteKeysConfig says where the JWKS is and how to keep it. Its settings
// (the fields with a yaml name) are declared here once, with
// DefaultRemoteKeysConfig and Validate.
type RemoteKeysConfig struct {
	URL string `yaml:"-"`
	// MinRefresh is the least time between two fetches caused by unknown
	// kids, so a flood of made-up kids cannot hammer the provider.
	MinRefresh time.Duration `yaml:"jwks_min_refresh" help:"least time between JWKS fetches caused by unknown kids"`
	// MaxStale is how long keys from the last good fetch are used while
	// the provider cannot be reached.
	MaxStale time.Duration `yaml:"jwks_max_stale" help:"how long cached keys are used while the provider is unreachable, before answering 503"`
	// DefaultRefresh is the refresh period when the JWKS response has no
	// Cache-Control max-age.
	DefaultRefresh time.Duration `yaml:"jwks_refresh" help:"JWKS refresh period when the response has no Cache-Control max-age"`
	// MaxRefresh caps the refresh period whatever the max-age says: it
	// bounds how long a revoked key is trusted (0: no cap). Refreshes are
	// conditional (If-None-Match), so an unchanged set costs a 304.
	MaxRefresh time.Duration `yaml:"jwks_max_refresh" help:"longest time between two JWKS refreshes whatever the max-age says: a revoked key is trusted at most this long (conditional requests: an unchanged set costs a 304)"`
	// FetchTimeout bounds one fetch.
	FetchTimeout time.Duration `yaml:"-"`
}

// DefaultRemoteKeysConfig is the JWKS cache's defaults (no URL).
func DefaultRemoteKeysConfig() RemoteKeysConfig {
	return RemoteKeysConfig{MinRefresh: 30 * time.Second, MaxStale: 24 * time.Hour, DefaultRefresh: 5 * time.Minute,
		MaxRefresh: time.Minute, FetchTimeout: 5 * time.Second}
}

// Validate reports every bad setting, each a *SettingError.
func (c RemoteKeysConfig) Validate() error {
	var errs []error
	for name, d := range map[string]time.Duration{"jwks_min_refresh": c.MinRefresh, "jwks_max_stale": c.MaxStale,
		"jwks_refresh": c.DefaultRefresh, "jwks_max_refresh": c.MaxRefresh} {
		if d <= 0 {
			errs = append(errs, bad(name, "must be a positive duration, got %s", d))
		}
	}
	return errors.Join(errs...)
}

// jwksSnapshot is the key set as last fetched.
type jwksSnapshot struct {
	keys      map[string]*keys.PublicKey
	fetchedAt time.Time
	maxAge    time.Duration
	etag      string
}

// RemoteKeys is a keys.KeySet over a provider's JWKS. The key set lives in
// an atomic map rather than in ristretto: ristretto may drop an entry, and a
// dropped key would turn a valid token into a 401.
type RemoteKeys struct {
	cfg    RemoteKeysConfig
	client *fasthttp.Client
	log    *slog.Logger
	now    func() time.Time

	snap  atomic.Pointer[jwksSnapshot]
	epoch atomic.Uint64 // see KeyEpoch
	sf    singleflight.Group

	mu          sync.Mutex
	lastAttempt time.Time // of any fetch, for MinRefresh
	lastNewer   time.Time // of the last fetch for a newer token, see RefreshFor
	newerIat    int64     // that token's iat

	fetches *prometheus.CounterVec
}

var _ keys.KeySet = (*RemoteKeys)(nil)

// NewRemoteKeys builds the cache; Run fetches the first key set and keeps it
// fresh.
func NewRemoteKeys(cfg RemoteKeysConfig, log *slog.Logger, reg prometheus.Registerer, now func() time.Time) (*RemoteKeys, error) {
	r := &RemoteKeys{
		cfg: cfg, log: log, now: now,
		client: &fasthttp.Client{
			Name: "oidcgate-edge", ReadTimeout: cfg.FetchTimeout, WriteTimeout: cfg.FetchTimeout,
			MaxResponseBodySize: 1 << 20,
		},
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oidcgate_edge_jwks_fetches_total",
			Help: "JWKS fetches, by outcome (ok, error).",
		}, []string{"outcome"}),
	}
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "oidcgate_edge_jwks_age_seconds",
		Help: "Age of the key set in use (since its last successful fetch); -1 before the first.",
	}, func() float64 {
		if s := r.snap.Load(); s != nil {
			return r.now().Sub(s.fetchedAt).Seconds()
		}
		return -1
	})
	for _, c := range []prometheus.Collector{r.fetches, age} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("edge: register metrics: %w", err)
		}
	}
	return r, nil
}

// PublicKey implements keys.KeySet. An unknown kid causes at most one fetch
// per MinRefresh, shared by every caller waiting for it.
func (r *RemoteKeys) PublicKey(kid string) (*keys.PublicKey, error) {
	s := r.snap.Load()
	now := r.now()
	if s != nil {
		if now.Sub(s.fetchedAt) > r.cfg.MaxStale {
			r.tryRefresh(now)
			if s = r.snap.Load(); now.Sub(s.fetchedAt) > r.cfg.MaxStale {
				return nil, fmt.Errorf("%w: the key set is %s old, over the %s stale limit", ErrUnavailable, now.Sub(s.fetchedAt).Round(time.Second), r.cfg.MaxStale)
			}
		}
		if k, ok := s.keys[kid]; ok {
			return k, nil
		}
	}
	r.tryRefresh(now)
	s = r.snap.Load()
	if s == nil {
		return nil, fmt.Errorf("%w: no key set fetched yet", ErrUnavailable)
	}
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: %q", keys.ErrUnknownKey, kid)
}

// tryRefresh fetches unless a fetch started less than MinRefresh ago; a
// fetch already under way is joined.
func (r *RemoteKeys) tryRefresh(now time.Time) {
	r.mu.Lock()
	if !r.lastAttempt.IsZero() && now.Sub(r.lastAttempt) < r.cfg.MinRefresh {
		r.mu.Unlock()
		return
	}
	r.lastAttempt = now
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.FetchTimeout)
	defer cancel()
	r.Refresh(ctx)
}

// newerInterval is the least time between two fetches for tokens newer
// than the key set (RefreshFor): made-up tokens can cost at most one fetch
// per second, and only by claiming a newer iat each time.
const newerInterval = time.Second

// RefreshFor fetches the key set again for a token with an unknown kid
// issued (iat, Unix seconds, unverified) no earlier than the last fetch: its
// key may have been published since — an emergency revocation's
// replacement signs at once. It runs even inside MinRefresh, but at most
// once per iat and per newerInterval, never for an iat in the future, and
// is shared with concurrent callers. It reports whether it fetched.
func (r *RemoteKeys) RefreshFor(iat int64) bool {
	s, now := r.snap.Load(), r.now()
	if s == nil || iat < s.fetchedAt.Unix() || iat > now.Unix()+1 {
		return false
	}
	r.mu.Lock()
	if iat <= r.newerIat || now.Sub(r.lastNewer) < newerInterval {
		r.mu.Unlock()
		return false
	}
	r.newerIat, r.lastNewer, r.lastAttempt = iat, now, now
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.FetchTimeout)
	defer cancel()
	return r.Refresh(ctx) == nil
}

// Refresh fetches the key set now (de-duplicated with concurrent callers).
func (r *RemoteKeys) Refresh(ctx context.Context) error {
	_, err, _ := r.sf.Do("jwks", func() (any, error) {
		err := r.fetch(ctx)
		if err != nil {
			r.fetches.WithLabelValues("error").Inc()
			r.log.Warn("JWKS fetch failed; keeping the cached keys", "url", r.cfg.URL, "error", err)
		} else {
			r.fetches.WithLabelValues("ok").Inc()
		}
		return nil, err
	})
	return err
}

func (r *RemoteKeys) fetch(ctx context.Context) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(r.cfg.URL)
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	old := r.snap.Load()
	if old != nil && old.etag != "" {
		req.Header.Set("If-None-Match", old.etag)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = r.now().Add(r.cfg.FetchTimeout)
	}
	if err := r.client.DoDeadline(req, resp, deadline); err != nil {
		return err
	}
	cc := maxAge(resp.Header.Peek("Cache-Control"))
	if resp.StatusCode() == fasthttp.StatusNotModified && old != nil {
		r.snap.Store(&jwksSnapshot{keys: old.keys, fetchedAt: r.now(), maxAge: cc, etag: old.etag})
		return nil
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode())
	}
	set, err := ParseJWKS(resp.Body())
	if err != nil {
		return err
	}
	r.snap.Store(&jwksSnapshot{keys: set, fetchedAt: r.now(), maxAge: cc, etag: string(resp.Header.Peek("ETag"))})
	if old != nil && lostKey(old.keys, set) {
		r.epoch.Add(1) // after the swap, as keys.Ring does
	}
	return nil
}

// lostKey reports whether a kid of before is not in after.
func lostKey(before, after map[string]*keys.PublicKey) bool {
	for kid := range before {
		if _, ok := after[kid]; !ok {
			return true
		}
	}
	return false
}

// KeyEpoch counts the fetches that lost a key the set had (a revoked key,
// or one retired for good), as keys.Ring.KeyEpoch does for the ring.
func (r *RemoteKeys) KeyEpoch() uint64 { return r.epoch.Load() }

// ParseJWKS reads the signing keys of a JWK Set (RFC 7517 §5). Keys for
// encryption, or of unsupported types, are skipped; a key without alg gets
// the one its type implies (RSA: RS256).
func ParseJWKS(body []byte) (map[string]*keys.PublicKey, error) {
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	out := make(map[string]*keys.PublicKey, set.Len())
	for i := range set.Len() {
		k, _ := set.Key(i)
		if k.KeyID() == "" || (k.KeyUsage() != "" && k.KeyUsage() != "sig") {
			continue
		}
		var raw any
		if err := k.Raw(&raw); err != nil {
			continue
		}
		alg := k.Algorithm().String()
		if alg == "" {
			switch k.KeyType() {
			case "EC":
				alg = keys.ES256
			case "OKP":
				alg = keys.EdDSA
			case "RSA":
				alg = keys.RS256
			}
		}
		if !keys.Supported(alg) || !fits(alg, raw) {
			continue
		}
		out[k.KeyID()] = &keys.PublicKey{ID: k.KeyID(), Alg: alg, Key: raw}
	}
	return out, nil
}

// fits reports whether a public key is of the type its alg needs (an oct
// or private key, or a curve other than P-256, never is).
func fits(alg string, key any) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return alg == keys.ES256 && k.Curve == elliptic.P256()
	case *rsa.PublicKey:
		return (alg == keys.RS256 || alg == keys.PS256) && k.N.BitLen() >= 2048
	case ed25519.PublicKey:
		return alg == keys.EdDSA && len(k) == ed25519.PublicKeySize
	}
	return false
}

// maxAge reads Cache-Control max-age; 0 when absent.
func maxAge(cc []byte) time.Duration {
	for _, part := range strings.Split(string(cc), ",") {
		name, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && strings.EqualFold(name, "max-age") {
			if n, err := strconv.Atoi(strings.Trim(v, `"`)); err == nil && n >= 0 {
				return time.Duration(min(n, 86400)) * time.Second // a day at most
			}
		}
	}
	return 0
}

// Run fetches the key set, then refreshes it before its max-age runs out
// (or every DefaultRefresh), retrying failures sooner, until ctx ends.
func (r *RemoteKeys) Run(ctx context.Context) {
	for {
		r.mu.Lock()
		r.lastAttempt = r.now()
		r.mu.Unlock()
		fctx, cancel := context.WithTimeout(ctx, r.cfg.FetchTimeout)
		err := r.Refresh(fctx)
		cancel()
		wait := r.cfg.DefaultRefresh
		if s := r.snap.Load(); s != nil && s.maxAge > 0 {
			wait = s.maxAge * 3 / 4 // before it runs out
		}
		if r.cfg.MaxRefresh > 0 {
			wait = min(wait, r.cfg.MaxRefresh)
		}
		if err != nil {
			wait = min(wait, r.cfg.MinRefresh)
		}
		wait = max(wait, time.Second)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Ready reports whether tokens can be verified now.
func (r *RemoteKeys) Ready() error {
	s := r.snap.Load()
	switch {
	case s == nil:
		return fmt.Errorf("%w: no key set fetched yet", ErrUnavailable)
	case r.now().Sub(s.fetchedAt) > r.cfg.MaxStale:
		return fmt.Errorf("%w: the key set is older than %s", ErrUnavailable, r.cfg.MaxStale)
	}
	return nil
}
