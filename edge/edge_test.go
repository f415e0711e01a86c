package edge_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/oidcgate/oidcgate/keys"
)

const routesYAML = `
routes:
  - path_prefix: /public
    public: true
  - path_prefix: /admin
    audience: https://api.example.com
    scopes: [admin]
  - path_prefix: /opaque-only
    token: opaque
  - path_prefix: /jwt-only
    token: jwt
  - path_prefix: /other
    audience: https://other.example.com
  - path_prefix: /api
    methods: [GET, POST]
    audience: https://api.example.com
    scopes: [read]
`

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func TestValidTokensReachTheUpstream(t *testing.T) {
	w := newWorld(t, worldOpts{routes: routesYAML})
	for _, alg := range []string{keys.ES256, keys.RS256, keys.EdDSA} {
		t.Run(alg, func(t *testing.T) {
			tok := w.sign(t, alg, nil)
			resp, body := w.get(t, "/api/things", append(bearer(tok), "X-Auth-Subject", "admin", "X-Auth-Scopes", "admin")...)
			if resp.StatusCode != 200 || body != "from upstream" {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			h := w.up.header()
			if h.Get("X-Auth-Subject") != "user-1" || h.Get("X-Auth-Client-Id") != "svc" || h.Get("X-Auth-Scopes") != "read write" ||
				h.Get("X-Auth-Audience") != api {
				t.Errorf("identity headers upstream: %v", h)
			}
			if len(h.Values("X-Auth-Subject")) != 1 {
				t.Errorf("spoofed X-Auth-Subject not stripped: %v", h.Values("X-Auth-Subject"))
			}
			claims, _ := base64.RawURLEncoding.DecodeString(h.Get("X-Auth-Claims"))
			if !strings.Contains(string(claims), `"sub":"user-1"`) {
				t.Errorf("claims header: %s", claims)
			}
			if h.Get("Authorization") != "" {
				t.Error("Authorization passed upstream although configured off")
			}
			if h.Get("X-Forwarded-For") == "" || h.Get("X-Forwarded-Proto") != "http" || h.Get("X-Forwarded-Host") == "" {
				t.Errorf("X-Forwarded-*: %v", h)
			}
		})
	}
	t.Run("provider-issued token", func(t *testing.T) {
		resp, _ := w.get(t, "/api/x", bearer(w.token(t, "svc", "&scope=read"))...)
		if resp.StatusCode != 200 {
			t.Errorf("%d", resp.StatusCode)
		}
	})
	t.Run("public route strips spoofed identity", func(t *testing.T) {
		resp, _ := w.get(t, "/public/page", "X-Auth-Subject", "admin", "X-Auth-Client-Id", "root")
		if resp.StatusCode != 200 || w.up.header().Get("X-Auth-Subject") != "" || w.up.header().Get("X-Auth-Client-Id") != "" {
			t.Errorf("%d, upstream saw %v", resp.StatusCode, w.up.header())
		}
	})
}

func TestInvalidTokensAreRejected(t *testing.T) {
	w := newWorld(t, worldOpts{routes: routesYAML})
	now := time.Now().Unix()
	good := w.sign(t, keys.ES256, nil)
	parts := strings.Split(good, ".")
	rsKID, _ := w.ring.SigningKeyID(keys.RS256)
	jwksBody, _ := w.ring.JWKS()
	hs, err := jws.Sign([]byte(parts[1]), jws.WithKey(jwa.HS256, jwksBody))
	if err != nil {
		t.Fatal(err)
	}
	hsParts := strings.Split(string(hs), ".")
	hsTok := b64(`{"alg":"HS256","kid":"`+rsKID+`","typ":"at+jwt"}`) + "." + hsParts[1] + "." + hsParts[2]

	tests := []struct {
		name, path string
		token      string
		header     string // the whole Authorization header, when not a bearer of token
		status     int
		reason     string // in error_description, loosely
	}{
		{"missing", "/api/x", "", "-", 401, ""},
		{"not bearer", "/api/x", "", "Basic abc", 401, "invalid_token"},
		{"bearer with bad characters", "/api/x", "", "Bearer a b\"c", 401, "invalid_token"},
		{"expired", "/api/x", w.sign(t, keys.ES256, map[string]any{"exp": now - 120}), "", 401, "expired"},
		{"not yet valid", "/api/x", w.sign(t, keys.ES256, map[string]any{"nbf": now + 600}), "", 401, "not valid yet"},
		{"issued in the future", "/api/x", w.sign(t, keys.ES256, map[string]any{"iat": now + 600}), "", 401, "not valid yet"},
		{"no exp", "/api/x", w.sign(t, keys.ES256, map[string]any{"exp": nil}), "", 401, "no exp"},
		{"wrong issuer", "/api/x", w.sign(t, keys.ES256, map[string]any{"iss": "https://evil.example.com"}), "", 401, "another issuer"},
		{"wrong audience", "/api/x", w.sign(t, keys.ES256, map[string]any{"aud": "https://evil.example.com"}), "", 401, "audience"},
		{"alg none", "/api/x", b64(`{"alg":"none","typ":"at+jwt"}`) + "." + parts[1] + ".", "", 401, "signature"},
		{"HS256 signed with the public key", "/api/x", hsTok, "", 401, "signature"},
		{"tampered payload", "/api/x", parts[0] + "." + b64(`{"iss":"`+w.issuer+`","sub":"admin","aud":"`+api+`","exp":9999999999,"scope":"read admin"}`) + "." + parts[2], "", 401, "signature"},
		{"tampered signature", "/api/x", parts[0] + "." + parts[1] + "." + b64(strings.Repeat("z", 64)), "", 401, "signature"},
		{"unknown kid", "/api/x", b64(`{"alg":"ES256","kid":"nope","typ":"at+jwt"}`) + "." + parts[1] + "." + parts[2], "", 401, "unknown key"},
		{"wrong typ", "/api/x", func() string {
			p, _ := json.Marshal(map[string]any{"iss": w.issuer, "aud": api, "exp": now + 60, "scope": "read"})
			tok, _ := w.ring.Sign(keys.ES256, "JWT", p)
			return tok
		}(), "", 401, "typ"},
		{"missing scope", "/admin/panel", good, "", 403, "scope"},
		{"jwt on an opaque-only route", "/opaque-only", good, "", 401, "opaque"},
		{"other audience route", "/other", good, "", 401, "audience"},
		{"method not in route", "/api/x", good, "", 403, "no route"}, // sent as DELETE below
		{"no route", "/nowhere", good, "", 403, "no route"},
		{"garbage", "/api/x", "abc.def.ghi", "", 401, "malformed"},
		{"header injection in sub", "/api/x", w.sign(t, keys.ES256, map[string]any{"sub": "user\r\nX-Auth-Scopes: admin"}), "", 401, "control characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := "GET"
			if tc.name == "method not in route" {
				method = "DELETE"
			}
			req, _ := http.NewRequest(method, w.edgeURL+tc.path, nil)
			switch tc.header {
			case "":
				req.Header.Set("Authorization", "Bearer "+tc.token)
			case "-":
			default:
				req.Header.Set("Authorization", tc.header)
			}
			before := w.up.hits
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (WWW-Authenticate %q)", resp.StatusCode, tc.status, resp.Header.Get("WWW-Authenticate"))
			}
			wa := resp.Header.Get("WWW-Authenticate")
			switch {
			case tc.status == 401 && !strings.HasPrefix(wa, `Bearer realm="oidcgate"`):
				t.Errorf("WWW-Authenticate = %q", wa)
			case tc.status == 401 && tc.reason != "" && !strings.Contains(wa, tc.reason) && !strings.Contains(wa, "invalid_token"):
				t.Errorf("WWW-Authenticate %q lacks %q", wa, tc.reason)
			case tc.name == "missing scope" && !strings.Contains(wa, `error="insufficient_scope", scope="admin"`):
				t.Errorf("WWW-Authenticate = %q", wa)
			}
			if w.up.hits != before {
				t.Error("a rejected request reached the upstream")
			}
		})
	}
}

func TestOpaqueTokens(t *testing.T) {
	w := newWorld(t, worldOpts{routes: routesYAML, negativeTTL: 300 * time.Millisecond, introTTL: 300 * time.Millisecond})
	tok := w.token(t, "opaque", "")
	if resp, _ := w.get(t, "/opaque-only/x", bearer(tok)...); resp.StatusCode != 200 {
		t.Fatalf("active opaque token: %d", resp.StatusCode)
	}
	if w.up.header().Get("X-Auth-Client-Id") != "opaque" {
		t.Errorf("identity: %v", w.up.header())
	}
	if resp, _ := w.get(t, "/jwt-only/x", bearer(tok)...); resp.StatusCode != 401 {
		t.Errorf("opaque token on a jwt-only route: %d", resp.StatusCode)
	}

	// Revoke it at the provider: the cached positive entry serves until it
	// lapses, then the token is refused.
	req, _ := http.NewRequest("POST", w.issuer+"/revoke", strings.NewReader("token="+url.QueryEscape(tok)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("opaque", secret)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _ := w.get(t, "/opaque-only/x", bearer(tok)...)
		if resp.StatusCode == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a revoked opaque token was still accepted after its cache entry lapsed")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Unknown tokens are refused, and the refusal is cached briefly.
	if resp, _ := w.get(t, "/opaque-only/x", bearer("not-a-real-token")...); resp.StatusCode != 401 {
		t.Errorf("unknown opaque token: %d", resp.StatusCode)
	}
}

// TestUnknownKIDFlood sends 1,000 tokens with 1,000 different unknown kids:
// the JWKS endpoint sees at most one fetch for them per min-refresh interval.
func TestUnknownKIDFlood(t *testing.T) {
	w := newWorld(t, worldOpts{minRefresh: time.Hour})
	before := jwksFetches(t, w)
	good := strings.Split(w.sign(t, keys.ES256, nil), ".")
	var wg sync.WaitGroup
	var bad atomic.Int32
	sem := make(chan struct{}, 32)
	for i := range 1000 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tok := b64(fmt.Sprintf(`{"alg":"ES256","kid":"random-%d","typ":"at+jwt"}`, i)) + "." + good[1] + "." + good[2]
			resp, _ := w.get(t, "/x", bearer(tok)...)
			if resp.StatusCode != 401 {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d requests with unknown kids were not 401", bad.Load())
	}
	if n := jwksFetches(t, w) - before; n > 1 {
		t.Errorf("%d JWKS fetches for 1,000 unknown kids within one min-refresh interval, want at most 1", n)
	}
}

func jwksFetches(t *testing.T, w *world) int64 {
	t.Helper()
	mfs, err := w.reg().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "oidcgate_edge_jwks_fetches_total" {
			var n float64
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
			return int64(n)
		}
	}
	return 0
}

// TestProviderDown: cached keys keep serving, a new kid gets a quick 401,
// and past max-stale every uncached token gets 503 — never 200.
func TestProviderDown(t *testing.T) {
	w := newWorld(t, worldOpts{minRefresh: time.Millisecond, maxStale: time.Hour})
	tok := w.sign(t, keys.ES256, nil)
	w.provider() // the provider goes away

	if resp, _ := w.get(t, "/x", bearer(tok)...); resp.StatusCode != 200 {
		t.Errorf("valid token with the provider down: %d", resp.StatusCode)
	}
	fresh := w.sign(t, keys.EdDSA, nil) // a known key, not yet in the verified-token cache
	if resp, _ := w.get(t, "/x", bearer(fresh)...); resp.StatusCode != 200 {
		t.Errorf("uncached valid token with the provider down: %d", resp.StatusCode)
	}
	parts := strings.Split(tok, ".")
	unknown := b64(`{"alg":"ES256","kid":"brand-new","typ":"at+jwt"}`) + "." + parts[1] + "." + parts[2]
	start := time.Now()
	resp, _ := w.get(t, "/x", bearer(unknown)...)
	if resp.StatusCode != 401 {
		t.Errorf("new kid with the provider down: %d, want 401", resp.StatusCode)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("a new kid hung for %v", time.Since(start))
	}

	w.clock.Advance(2 * time.Hour) // past max-stale
	for _, tk := range []string{w.sign(t, keys.RS256, nil), unknown} {
		resp, _ := w.get(t, "/x", bearer(tk)...)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Errorf("past max-stale: %d, want 503 with Retry-After", resp.StatusCode)
		}
	}
}

func TestForwardAuthConventions(t *testing.T) {
	w := newWorld(t, worldOpts{routes: routesYAML})
	tok := w.sign(t, keys.ES256, nil)
	// Ambiguous paths (dot segments, empty segments, encoded slashes) are
	// refused with 400 rather than normalised: the upstream gets the raw
	// path and might read it otherwise (issue 22).
	tests := []struct {
		name    string
		path    string
		method  string
		headers []string
		status  int
	}{
		{"nginx allowed", "/_oidcgate/auth", "GET", append(bearer(tok), "X-Original-URI", "/api/things?x=1", "X-Original-Method", "POST"), 200},
		{"nginx method not allowed", "/_oidcgate/auth", "GET", append(bearer(tok), "X-Original-URI", "/api/things", "X-Original-Method", "DELETE"), 403},
		{"nginx needs scope", "/_oidcgate/auth", "GET", append(bearer(tok), "X-Original-URI", "/admin"), 403},
		{"nginx public", "/_oidcgate/auth", "GET", []string{"X-Original-URI", "/public/x"}, 200},
		{"nginx no token", "/_oidcgate/auth", "GET", []string{"X-Original-URI", "/api/x"}, 401},
		{"traefik allowed", "/_oidcgate/auth", "GET", append(bearer(tok), "X-Forwarded-Uri", "/api/things", "X-Forwarded-Method", "GET"), 200},
		{"traefik needs scope", "/_oidcgate/auth", "GET", append(bearer(tok), "X-Forwarded-Uri", "/admin/x", "X-Forwarded-Method", "GET"), 403},
		{"nginx encoded path", "/_oidcgate/auth", "GET", append(bearer(tok), "X-Original-URI", "/%61dmin/x"), 403},
		{"nginx dot segments", "/_oidcgate/auth", "GET", append(bearer(tok), "X-Original-URI", "/public/../admin"), 400},
		{"nginx double slash", "/_oidcgate/auth", "GET", append(bearer(tok), "X-Original-URI", "//admin"), 400},
		{"traefik encoded path", "/_oidcgate/auth", "GET", append(bearer(tok), "X-Forwarded-Uri", "/api/..%2Fadmin"), 400},
		{"envoy allowed", "/_oidcgate/auth/api/things", "POST", bearer(tok), 200},
		{"envoy dot segments", "/_oidcgate/auth/public/../admin", "GET", bearer(tok), 400},
		{"envoy needs scope", "/_oidcgate/auth/admin", "GET", bearer(tok), 403},
		{"envoy no token", "/_oidcgate/auth/api/things", "GET", nil, 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, w.edgeURL+tc.path, nil)
			for i := 0; i+1 < len(tc.headers); i += 2 {
				req.Header.Set(tc.headers[i], tc.headers[i+1])
			}
			req.Header.Set("X-Auth-Subject", "spoofed")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("%d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == 200 {
				// The identity headers are always set, so a proxy copying them
				// overwrites a spoofed one.
				if _, ok := resp.Header["X-Auth-Subject"]; !ok {
					t.Error("no X-Auth-Subject in the answer")
				}
				if strings.Contains(tc.name, "public") && resp.Header.Get("X-Auth-Subject") != "" {
					t.Error("public route answered an identity")
				}
				if !strings.Contains(tc.name, "public") && resp.Header.Get("X-Auth-Subject") != "user-1" {
					t.Errorf("X-Auth-Subject = %q", resp.Header.Get("X-Auth-Subject"))
				}
			}
		})
	}
	if w.up.hits != 0 {
		t.Error("forward-auth reached the upstream")
	}
}

// TestRotationUnderLoad: the provider stages and activates a new key while
// fresh tokens flow through the edge; no valid token is ever refused.
func TestRotationUnderLoad(t *testing.T) {
	// The unknown-kid refetch is held off for the whole test, so only the
	// pre-publication can keep the edge ahead of the new key.
	w := newWorld(t, worldOpts{minRefresh: time.Hour, prePublish: 3 * time.Second, reload: time.Second})
	old, _ := w.ring.SigningKeyID(keys.ES256)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				tok := w.token(t, "svc", "")
				resp, body := w.get(t, "/x", bearer(tok)...)
				if resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					refused.Add(1)
					t.Errorf("valid token refused during rotation: %d %s %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
				}
			}
		}()
	}
	// Conditions, not time windows: load flows, the staged key takes over,
	// and load flows on under it; each wait is bounded generously.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				cancel()
				wg.Wait()
				t.Fatalf("waited 30 s for %s", what)
			}
		}
	}
	waitFor("load before the rotation", func() bool { return ok.Load() >= 5 })
	staged, err := w.ring.Rotate(context.Background(), keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	waitFor("the staged key to sign", func() bool { id, _ := w.ring.SigningKeyID(keys.ES256); return id == staged.ID })
	after := ok.Load()
	waitFor("load under the new key", func() bool { return ok.Load() >= after+20 })
	cancel()
	wg.Wait()
	if now, _ := w.ring.SigningKeyID(keys.ES256); now == old {
		t.Fatalf("the rotation did not happen: %s", old)
	}
	if refused.Load() != 0 {
		t.Errorf("%d accepted, %d refused", ok.Load(), refused.Load())
	}
}

// A revoked key's tokens stop at the edge when the key leaves the JWKS,
// even those already in the verified-token cache; other keys' tokens carry
// on.
func TestRevokedKeyEndsItsCachedTokens(t *testing.T) {
	w := newWorld(t, worldOpts{})
	revoked, kept := w.sign(t, keys.ES256, nil), w.sign(t, keys.EdDSA, nil)
	for range 2 { // verified, then served from the cache
		for _, tok := range []string{revoked, kept} {
			if resp, _ := w.get(t, "/api/x", bearer(tok)...); resp.StatusCode != 200 {
				t.Fatalf("before the revocation: %d", resp.StatusCode)
			}
		}
	}
	kid, _ := w.ring.SigningKeyID(keys.ES256)
	if err := w.ring.Revoke(context.Background(), kid); err != nil {
		t.Fatal(err)
	}
	if err := w.jwks.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e := w.jwks.KeyEpoch(); e != 1 {
		t.Fatalf("key epoch %d after the JWKS lost a key, want 1", e)
	}
	resp, _ := w.get(t, "/api/x", bearer(revoked)...)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "unknown key") {
		t.Errorf("cached token of the revoked key: %d %q, want 401 unknown key", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, _ := w.get(t, "/api/x", bearer(kept)...); resp.StatusCode != 200 {
		t.Errorf("cached token of another key: %d, want 200", resp.StatusCode)
	}
	// Rotation only adds keys: no epoch change, nothing re-verified.
	if _, err := w.ring.Rotate(context.Background(), keys.EdDSA); err != nil {
		t.Fatal(err)
	}
	if err := w.jwks.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e := w.jwks.KeyEpoch(); e != 1 {
		t.Errorf("key epoch %d after a key was added, want still 1", e)
	}
}
