package provider_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/oidcgate/oidcgate/provider/connector"
)

// rogue is an upstream that forges what a real one would not: each test
// sets forge to break one thing the relying party must check. (A real
// oidcgate cannot be made to sign a wrong nonce; this attacker can.)
type rogue struct {
	srv        *httptest.Server
	key, other *ecdsa.PrivateKey
	sendsISS   bool

	mu       sync.Mutex
	nonce    string
	forge    func(header, claims map[string]any) (signWith *ecdsa.PrivateKey)
	issParam string // the iss of its authorization response; "" for its own
}

func newRogue(t *testing.T) *rogue {
	r := &rogue{}
	r.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r.other, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": r.srv.URL, "authorization_endpoint": r.srv.URL + "/authorize",
			"token_endpoint": r.srv.URL + "/token", "jwks_uri": r.srv.URL + "/jwks", "response_types_supported": []string{"code"},
			"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"ES256"},
			"authorization_response_iss_parameter_supported": r.sendsISS})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		b := func(x []byte) string { return base64.RawURLEncoding.EncodeToString(x) }
		pub := r.key.PublicKey
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]any{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
			"use": "sig", "x": b(pub.X.FillBytes(make([]byte, 32))), "y": b(pub.Y.FillBytes(make([]byte, 32)))}}})
	})
	mux.HandleFunc("/authorize", func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		r.mu.Lock()
		r.nonce = q.Get("nonce")
		iss := r.issParam
		r.mu.Unlock()
		if iss == "" && r.sendsISS {
			iss = r.srv.URL
		}
		back := url.Values{"code": {"the-code"}, "state": {q.Get("state")}}
		if iss != "" {
			back.Set("iss", iss)
		}
		http.Redirect(w, req, q.Get("redirect_uri")+"?"+back.Encode(), http.StatusFound)
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		now := time.Now()
		header := map[string]any{"alg": "ES256", "kid": "k1", "typ": "JWT"}
		claims := map[string]any{"iss": r.srv.URL, "aud": "downstream", "sub": "rogue-user", "iat": now.Unix(),
			"exp": now.Add(5 * time.Minute).Unix(), "nonce": r.nonce, "email": "mallory@example.com", "email_verified": true}
		key := r.key
		if r.forge != nil {
			key = r.forge(header, claims)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at-1", "token_type": "Bearer", "expires_in": 300,
			"id_token": signES256(header, claims, key)})
	})
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

// signES256 is a compact JWS; a nil key leaves the signature empty.
func signES256(header, claims map[string]any, key *ecdsa.PrivateKey) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(header) + "." + enc(claims)
	if key == nil {
		return input + "."
	}
	sum := sha256.Sum256([]byte(input))
	rr, ss, _ := ecdsa.Sign(rand.Reader, key, sum[:])
	sig := append(rr.FillBytes(make([]byte, 32)), ss.FillBytes(make([]byte, 32))...)
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func rogueConnector(issuer string, timeout time.Duration) connector.Config {
	return connector.Config{ID: "rogue", Type: connector.TypeOIDC, Name: "Rogue",
		OIDC: &connector.OIDCConfig{Issuer: issuer, ClientID: "downstream", ClientSecret: secret, Timeout: timeout}}
}

// signInAt runs a downstream sign-in through the named connector's button
// and returns the page it ends on.
func signInAt(t *testing.T, s *server, b *browser, name string) page {
	t.Helper()
	r := newRP(t, s, "web", secret, rpRedirect)
	p := b.get(r.cfg.AuthCodeURL("st", oidc.Nonce("n"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	return b.button(s, p, name)
}

func TestFederationRefusesForgedIDTokens(t *testing.T) {
	rg := newRogue(t)
	s := start(t, backends()[0].open(t), withConnectors(rogueConnector(rg.srv.URL, 2*time.Second)))
	for _, tc := range []struct {
		name  string
		forge func(h, c map[string]any) *ecdsa.PrivateKey
		iss   string // the authorization response's iss
		ok    bool
	}{
		{name: "valid (the control)", ok: true},
		{name: "wrong nonce", forge: func(h, c map[string]any) *ecdsa.PrivateKey { c["nonce"] = "not-the-one-sent"; return rg.key }},
		{name: "no nonce", forge: func(h, c map[string]any) *ecdsa.PrivateKey { delete(c, "nonce"); return rg.key }},
		{name: "wrong iss", forge: func(h, c map[string]any) *ecdsa.PrivateKey { c["iss"] = "https://evil.example"; return rg.key }},
		{name: "wrong aud", forge: func(h, c map[string]any) *ecdsa.PrivateKey { c["aud"] = "another-client"; return rg.key }},
		{name: "expired", forge: func(h, c map[string]any) *ecdsa.PrivateKey {
			c["exp"] = time.Now().Add(-time.Hour).Unix()
			return rg.key
		}},
		{name: "signed by another key", forge: func(h, c map[string]any) *ecdsa.PrivateKey { return rg.other }},
		{name: "alg none", forge: func(h, c map[string]any) *ecdsa.PrivateKey { h["alg"] = "none"; return nil }},
		{name: "alg HS256", forge: func(h, c map[string]any) *ecdsa.PrivateKey { h["alg"] = "HS256"; return rg.key }},
		{name: "wrong at_hash", forge: func(h, c map[string]any) *ecdsa.PrivateKey { c["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA"; return rg.key }},
		{name: "iss parameter of another issuer (mix-up)", iss: "https://evil.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rg.mu.Lock()
			rg.forge, rg.issParam = tc.forge, tc.iss
			rg.mu.Unlock()
			b := newBrowser(t)
			p := signInAt(t, s, b, "Rogue")
			if tc.ok {
				if !strings.Contains(p.body, `value="allow"`) {
					t.Fatalf("the valid upstream answer was refused: %d %s", p.status, p.body)
				}
				return
			}
			if p.status != http.StatusBadGateway || !strings.Contains(p.body, "did not pass this server&#39;s checks") {
				t.Fatalf("forged answer: %d %s", p.status, p.body)
			}
			if sessionCookie(b, s) {
				t.Error("a forged answer started a session")
			}
		})
	}
}

func TestFederationCallbackStateChecks(t *testing.T) {
	f := federate(t, backends()[0].open(t))
	isCallback := func(u *url.URL) bool { return strings.HasSuffix(u.Path, "/connectors/corp/callback") }

	t.Run("state of another value", func(t *testing.T) {
		b, to := f.atUpstream(t)
		ia, _, _ := strings.Cut(to.Query().Get("state"), ".")
		for _, state := range []string{ia + ".forged", ia, "", "nonsense"} {
			p := f.callback(b, url.Values{"state": {state}, "code": {"x"}})
			if p.status != http.StatusForbidden && p.status != http.StatusBadRequest {
				t.Errorf("state %q: %d %s", state, p.status, p.body)
			}
		}
		if sessionCookie(b, f.down) {
			t.Error("a forged callback started a session")
		}
	})

	t.Run("replayed callback", func(t *testing.T) {
		b := stopWhen(t, isCallback)
		r := newRP(t, f.down, "web", secret, rpRedirect)
		p := b.get(r.cfg.AuthCodeURL("st", oidc.Nonce("n"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		p = b.button(f.down, p, "Corp SSO")
		p = b.signIn(f.up, p, alicePassword)
		if p.loc == nil || !isCallback(p.loc) {
			t.Fatalf("no redirect to the callback: %d %s", p.status, p.body)
		}
		cb := f.down.issuer + p.loc.RequestURI()
		if first := b.get(cb); !strings.Contains(first.body, `value="allow"`) {
			t.Fatalf("first callback: %d %s", first.status, first.body)
		}
		if again := b.get(cb); again.status != http.StatusForbidden {
			t.Errorf("replayed callback: %d %s", again.status, again.body)
		}
	})

	t.Run("callback carried to another browser", func(t *testing.T) {
		victim := stopWhen(t, isCallback)
		r := newRP(t, f.down, "web", secret, rpRedirect)
		p := victim.get(r.cfg.AuthCodeURL("st", oidc.Nonce("n"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		p = victim.button(f.down, p, "Corp SSO")
		p = victim.signIn(f.up, p, alicePassword)
		attacker := newBrowser(t)
		if got := attacker.get(f.down.issuer + p.loc.RequestURI()); got.status != http.StatusForbidden || sessionCookie(attacker, f.down) {
			t.Errorf("the callback worked in another browser: %d %s", got.status, got.body)
		}
	})
}

func TestFederationUpstreamUnreachableOrSlow(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String()
	ln.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // answers only after the connector has given up
		case <-release:
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	down := start(t, backends()[0].open(t), withConnectors(rogueConnector(closed, time.Second),
		connector.Config{ID: "slow", Type: connector.TypeOIDC, Name: "Slow", OIDC: &connector.OIDCConfig{Issuer: slow.URL,
			ClientID: "downstream", ClientSecret: secret, Timeout: 300 * time.Millisecond}}))
	for _, name := range []string{"Rogue", "Slow"} {
		b := newBrowser(t)
		start := time.Now()
		p := signInAt(t, down, b, name)
		if p.status != http.StatusServiceUnavailable || !strings.Contains(p.body, name+" cannot be reached") {
			t.Errorf("%s: %d %s", name, p.status, p.body)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: the page took %s: the timeout does not bound it", name, took)
		}
		if sessionCookie(b, down) {
			t.Errorf("%s: a session without a sign-in", name)
		}
	}
	if err := down.p.Ready(context.Background()); err != nil {
		t.Errorf("an unreachable connector made the provider unready: %v", err)
	}
}
