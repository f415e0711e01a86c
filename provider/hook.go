package provider

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oidcgate/oidcgate/provider/oauth"
)

// The token hook (as Hydra's token_hook): an HTTPS webhook called when an
// access token is issued, with the grant's context and the claims about to
// be added; it may add claims or deny. A hook that fails (unreachable,
// past its deadline, a 5xx, an answer that is not its JSON) stops the
// issuance (server_error) unless fail_open is set; a denial is
// access_denied. It runs for user grants (authorization_code,
// refresh_token), and for client_credentials only for clients that opt in
// (token_hook: true), as it costs a round trip per token.

// hookRequest is what the hook is sent.
type hookRequest struct {
	GrantType string         `json:"grant_type"`
	ClientID  string         `json:"client_id"`
	Subject   string         `json:"subject"`
	Username  string         `json:"username,omitempty"`
	Groups    []string       `json:"groups,omitempty"`
	Scopes    []string       `json:"scopes"`
	Audience  []string       `json:"audience"`
	AMR       []string       `json:"amr,omitempty"`
	Claims    map[string]any `json:"claims"` // what the token will carry besides the registered claims
}

// hookResponse is the hook's answer (200): claims to add, or a denial.
type hookResponse struct {
	Claims map[string]any `json:"claims"`
	Deny   bool           `json:"deny"`
	Reason string         `json:"reason"`
}

// tokenHook calls the configured hook; a nil one adds nothing.
type tokenHook struct {
	url      string
	failOpen bool
	client   *http.Client
	timeout  time.Duration
	latency  *prometheus.HistogramVec // outcome
}

// newTokenHook builds the hook of cfg (nil when none is configured).
func newTokenHook(cfg Config, reg prometheus.Registerer) (*tokenHook, error) {
	if cfg.TokenHookURL == "" {
		return nil, nil
	}
	u, err := url.Parse(cfg.TokenHookURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(u.Hostname()))) {
		return nil, bad("token_hook_url", "must be an https URL (http only on a loopback address): %q", cfg.TokenHookURL)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.TokenHookCAFile != "" {
		pem, err := os.ReadFile(cfg.TokenHookCAFile)
		if err != nil {
			return nil, bad("token_hook_ca_file", "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, bad("token_hook_ca_file", "no PEM certificate in %s", cfg.TokenHookCAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	h := &tokenHook{url: cfg.TokenHookURL, failOpen: cfg.TokenHookFailOpen, timeout: cfg.TokenHookTimeout,
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "oidcgate_token_hook_duration_seconds",
			Help:    "Token hook calls, by outcome: ok, denied, failed (unreachable, deadline, an error status or a malformed answer), failed_open (failed, and issued anyway).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"outcome"})}
	if err := reg.Register(h.latency); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return h, nil
}

func loopbackHost(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// errDenied is the hook's refusal.
var errHookDenied = errors.New("denied by the token hook")

// run calls the hook with r and returns r.Claims with the hook's added
// (registered names ignored); without a hook, r.Claims.
func (h *tokenHook) run(ctx context.Context, r hookRequest) (map[string]any, error) {
	if h == nil {
		return r.Claims, nil
	}
	if r.Claims == nil {
		r.Claims = map[string]any{}
	}
	start := time.Now()
	add, err := h.call(ctx, r)
	outcome := "ok"
	switch {
	case errors.Is(err, errHookDenied):
		outcome = "denied"
	case err != nil && h.failOpen:
		outcome = "failed_open"
	case err != nil:
		outcome = "failed"
	}
	h.latency.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	switch outcome {
	case "denied":
		return nil, oauth.New(http.StatusForbidden, "access_denied", "%v", err)
	case "failed":
		return nil, oauth.New(http.StatusInternalServerError, "server_error", "the token hook did not answer as it must; no token was issued")
	case "failed_open":
		return r.Claims, nil
	}
	for k, v := range add {
		if !registered(k) {
			r.Claims[k] = v
		}
	}
	return r.Claims, nil
}

func (h *tokenHook) call(ctx context.Context, r hookRequest) (map[string]any, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusForbidden {
		return nil, fmt.Errorf("%w", errHookDenied)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("token hook: status %d", resp.StatusCode)
	}
	var out hookResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("token hook: %w", err)
	}
	if out.Deny {
		if out.Reason != "" {
			return nil, fmt.Errorf("%w: %s", errHookDenied, out.Reason)
		}
		return nil, errHookDenied
	}
	return out.Claims, nil
}
