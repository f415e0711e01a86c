package edge_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oidcgate/oidcgate/edge"
	"github.com/oidcgate/oidcgate/keys"
)

// multiEdge is an edge trusting w1's and w2's issuers, with routes.
func multiEdge(t *testing.T, w1, w2 *world, routes string, aud2 []string) string {
	t.Helper()
	var vs []*edge.Validator
	for i, w := range []*world{w1, w2} {
		cfg := edge.ValidatorConfig{Issuer: w.issuer, Algs: []string{keys.ES256, keys.RS256, keys.EdDSA}, Leeway: 30 * time.Second,
			RequireTyp: true, CacheTTL: time.Minute, CacheSize: 1000, IntrospectionTTL: time.Minute, NegativeTTL: 5 * time.Second}
		if i == 1 {
			cfg.Audiences = aud2
		}
		v, err := edge.NewValidator(cfg, w.jwks, nil, nil, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(v.Close)
		vs = append(vs, v)
	}
	r, err := loadRoutes(t, routes)
	if err != nil {
		t.Fatal(err)
	}
	e, err := edge.NewWithIssuers(edge.Config{Upstream: serve(t, w1.up.handler), UpstreamTimeout: 5 * time.Second,
		ForwardAuthPath: "/_oidcgate/auth", Headers: edge.DefaultHeaders()}, vs, r, discard, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, e.Handler())
}

func loadRoutes(t *testing.T, y string) (*edge.Routes, error) {
	path := filepath.Join(t.TempDir(), "routes.yaml")
	os.WriteFile(path, []byte(y), 0o600)
	return edge.LoadRoutes(path)
}

// TestSeveralIssuers: tokens of two providers, each verified by its own
// issuer's keys; routes accept the issuers they name; a token of another
// issuer is refused without a key fetch; an issuer's audiences apply to
// its tokens.
func TestSeveralIssuers(t *testing.T) {
	w1, w2 := newWorld(t, worldOpts{}), newWorld(t, worldOpts{})
	url := multiEdge(t, w1, w2, `
routes:
  - path_prefix: /one
    issuers: [`+w1.issuer+`]
  - path_prefix: /two
    issuers: [`+w2.issuer+`]
  - path_prefix: /
`, nil)
	get := func(path, tok string) (int, string) {
		w := &world{edgeURL: url}
		resp, body := w.get(t, path, bearer(tok)...)
		return resp.StatusCode, body
	}
	t1, t2 := w1.token(t, "svc", ""), w2.token(t, "svc", "")
	for name, tc := range map[string]struct {
		path, tok string
		status    int
		says      string
	}{
		"issuer 1 on its route":      {"/one", t1, 200, ""},
		"issuer 2 on its route":      {"/two", t2, 200, ""},
		"issuer 1 on issuer 2's":     {"/two", t1, 401, "issuer is not accepted"},
		"issuer 2 on issuer 1's":     {"/one", t2, 401, "issuer is not accepted"},
		"both on the open route":     {"/x", t1, 200, ""},
		"issuer 2 on the open route": {"/x", t2, 200, ""},
		// Issuer 2's iss on issuer 1's signature: verified by issuer 2's keys, refused.
		"a forged iss": {"/x", w1.sign(t, keys.ES256, map[string]any{"iss": w2.issuer, "jti": "f1"}), 401, "unknown key"},
	} {
		if st, body := get(tc.path, tc.tok); st != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("%s: %d %s", name, st, body)
		}
	}
	// An unlisted issuer with an unknown kid: refused, and no JWKS is fetched.
	before1, before2 := jwksFetches(t, w1), jwksFetches(t, w2)
	evil := b64(`{"alg":"ES256","kid":"nope","typ":"at+jwt"}`) + "." + b64(`{"iss":"https://evil.example","sub":"x","aud":"`+api+`","exp":`+
		itoa(time.Now().Add(time.Hour).Unix())+`,"iat":`+itoa(time.Now().Unix())+`}`) + ".c2ln"
	if st, body := get("/x", evil); st != 401 || !strings.Contains(body, "issuer is not accepted") {
		t.Errorf("an unlisted issuer: %d %s", st, body)
	}
	time.Sleep(100 * time.Millisecond)
	if jwksFetches(t, w1) != before1 || jwksFetches(t, w2) != before2 {
		t.Errorf("an unlisted issuer's token caused a JWKS fetch")
	}
	// A route naming an issuer the edge does not trust stops the start.
	r, _ := loadRoutes(t, "routes:\n  - path_prefix: /a\n    issuers: [https://unknown.example]\n")
	v, _ := edge.NewValidator(edge.DefaultValidatorConfig(), w1.jwks, nil, nil, prometheus.NewRegistry())
	defer v.Close()
	if _, err := edge.New(edge.Config{ForwardAuthPath: "/_oidcgate/auth", Headers: edge.DefaultHeaders()}, v, r, discard, prometheus.NewRegistry()); err == nil ||
		!strings.Contains(err.Error(), "rule 1 (/a)") {
		t.Errorf("an unknown issuer in a route: %v", err)
	}
}

// TestIssuerAudiences: an issuer's audiences bound its tokens on every route.
func TestIssuerAudiences(t *testing.T) {
	w1, w2 := newWorld(t, worldOpts{}), newWorld(t, worldOpts{})
	url := multiEdge(t, w1, w2, "routes:\n  - path_prefix: /\n", []string{"https://only.example.com"})
	w := &world{edgeURL: url}
	if resp, _ := w.get(t, "/x", bearer(w1.token(t, "svc", ""))...); resp.StatusCode != 200 {
		t.Errorf("issuer 1 (no audience bound): %d", resp.StatusCode)
	}
	if resp, body := w.get(t, "/x", bearer(w2.token(t, "svc", ""))...); resp.StatusCode != 401 || !strings.Contains(body, "audience") {
		t.Errorf("issuer 2's token for another audience: %d %s", resp.StatusCode, body)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
