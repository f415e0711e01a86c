package provider_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"

	"github.com/oidcgate/oidcgate/provider"
)

// rolesClient is a client whose access tokens carry roles for the API
// from the user's groups, two user claims and a static one.
var rolesClient = provider.ClientSpec{ID: "roles-app", Name: "Roles App", Secret: secret, RedirectURIs: []string{rpRedirect},
	GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "profile", "email", "groups", "tenant"},
	Audiences: []string{api}, DefaultAudience: api, FirstParty: true,
	AccessTokenClaims: []string{"email", "groups"}, StaticClaims: map[string]any{"tenant": "acme"},
	Roles: map[string]map[string][]string{api: {"ops": {"operator", "viewer"}, "admins": {"admin"}, "devs": {"viewer"}}}}

func withGroups(t *testing.T, s *server, groups ...any) {
	t.Helper()
	u, _ := s.store.GetUser(context.Background(), "alice-sub")
	u.Claims["groups"], u.Claims["department"] = groups, "payments"
	if err := s.store.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
}

// TestAccessTokenClaimsAndScopeMapping: acceptance 2 — an access token for
// an audience with a role map carries the user's roles and groups; the ID
// token and userinfo release claims per the (configured) scope mapping.
func TestAccessTokenClaimsAndScopeMapping(t *testing.T) {
	s := start(t, backends()[0].open(t), func(c *provider.Config) {
		c.ScopeClaims = map[string][]string{"tenant": {"department"}, "profile": {"name"}}
	})
	s.register(t, rolesClient)
	withGroups(t, s, "ops", "devs")
	r := newRP(t, s, "roles-app", secret, rpRedirect)
	r.cfg.Scopes = []string{"openid", "profile", "groups"}
	b := newBrowser(t)
	f, p := r.start(b)
	tok, idt := r.redeem(t, s, b.signIn(s, p, alicePassword), f.state, f.verifier)
	at := jwtClaims(t, tok.AccessToken)
	roles, _ := at["roles"].([]any)
	if len(roles) != 2 || roles[0] != "operator" || roles[1] != "viewer" || at["email"] != "alice@example.com" || at["tenant"] != "acme" ||
		at["sub"] != "alice-sub" || at["client_id"] != "roles-app" {
		t.Errorf("access token claims: %v", at)
	}
	if groups, _ := at["groups"].([]any); len(groups) != 2 {
		t.Errorf("access token groups: %v", at["groups"])
	}
	var id map[string]any
	idt.Claims(&id)
	if id["name"] != "Alice Example" || id["groups"] == nil || id["department"] != nil || id["email"] != nil {
		t.Errorf("ID token claims (profile: name only; groups; no tenant scope): %v", id)
	}
	// The custom scope releases its claim to userinfo.
	r.cfg.Scopes = []string{"openid", "tenant"}
	b2 := newBrowser(t)
	f, p = r.start(b2)
	tok, _ = r.redeem(t, s, b2.signIn(s, p, alicePassword), f.state, f.verifier)
	ui, err := r.provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok))
	var uc map[string]any
	if err == nil {
		ui.Claims(&uc)
	}
	if err != nil || uc["department"] != "payments" || uc["name"] != nil {
		t.Errorf("userinfo for scope tenant: %v %v", uc, err)
	}
	// A registered claim can never be set.
	bad := rolesClient
	bad.ID, bad.StaticClaims = "bad", map[string]any{"sub": "someone-else"}
	if _, _, err := bad.Build(s.clock.Now()); err == nil || !strings.Contains(err.Error(), "registered") {
		t.Errorf("a static sub: %v", err)
	}
}

// hookServer is a real HTTPS webhook on loopback; answer decides what it
// says to each call. Its CA certificate is written for token_hook_ca_file.
func hookServer(t *testing.T, answer func(req map[string]any) (int, string)) (*httptest.Server, string, *atomic.Int32) {
	var calls atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var req map[string]any
		json.NewDecoder(r.Body).Decode(&req)
		status, body := answer(req)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "hook-ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	return srv, ca, &calls
}

// TestTokenHook: the hook adds a claim; a denial is access_denied; a
// failing hook stops issuance (server_error) unless fail-open; the
// client_credentials hot path calls it only for clients that opt in.
func TestTokenHook(t *testing.T) {
	srv, ca, calls := hookServer(t, func(req map[string]any) (int, string) {
		switch req["client_id"] {
		case "denied-app":
			return 200, `{"deny":true,"reason":"outside business hours"}`
		case "broken-app":
			return 500, `oops`
		}
		claims, _ := req["claims"].(map[string]any)
		return 200, `{"claims":{"hooked":true,"sub":"forged","saw_tenant":` + jsonOf(claims["tenant"]) + `}}`
	})
	for _, failOpen := range []bool{false, true} {
		s := start(t, backends()[0].open(t), func(c *provider.Config) {
			c.TokenHookURL, c.TokenHookCAFile, c.TokenHookFailOpen = srv.URL+"/hook", ca, failOpen
		})
		s.register(t, rolesClient)
		for _, id := range []string{"denied-app", "broken-app"} {
			spec := rolesClient
			spec.ID = id
			s.register(t, spec)
		}
		s.register(t, provider.ClientSpec{ID: "hooked-svc", Secret: secret, Scopes: []string{"read"}, Audiences: []string{api}, TokenHook: true})
		code := func(client string) response {
			r := newRP(t, s, client, secret, rpRedirect)
			r.cfg.Scopes = []string{"openid"}
			b := newBrowser(t)
			f, p := r.start(b)
			p = b.signIn(s, p, alicePassword)
			return s.post(t, "/token", "grant_type=authorization_code&code="+codeAt(t, s, p, f.state)+"&redirect_uri="+rpRedirect+
				"&code_verifier="+f.verifier, client+":"+secret)
		}
		ok := code("roles-app")
		if ok.status != 200 {
			t.Fatalf("a hooked grant: %d %s", ok.status, ok.body)
		}
		at := jwtClaims(t, ok.json(t)["access_token"].(string))
		if at["hooked"] != true || at["sub"] != "alice-sub" || at["saw_tenant"] != "acme" {
			t.Errorf("claims with the hook: %v", at)
		}
		if r := code("denied-app"); r.status != 403 || r.json(t)["error"] != "access_denied" || !strings.Contains(string(r.body), "business hours") {
			t.Errorf("denied: %d %s", r.status, r.body)
		}
		broken := code("broken-app")
		switch {
		case !failOpen && (broken.status != 500 || broken.json(t)["error"] != "server_error"):
			t.Errorf("fail-closed: %d %s", broken.status, broken.body)
		case failOpen && broken.status != 200:
			t.Errorf("fail-open: %d %s", broken.status, broken.body)
		case failOpen && jwtClaims(t, broken.json(t)["access_token"].(string))["hooked"] != nil:
			t.Error("fail-open kept claims of a failed hook")
		}
		before := calls.Load()
		if s.token(t, "svc", ""); calls.Load() != before {
			t.Errorf("client_credentials called the hook without opting in: %d calls", calls.Load()-before)
		}
		r := s.post(t, "/token", "grant_type=client_credentials", "hooked-svc:"+secret)
		if r.status != 200 || calls.Load() != before+1 || jwtClaims(t, r.json(t)["access_token"].(string))["hooked"] != true {
			t.Errorf("client_credentials with token_hook: %d %s", r.status, r.body)
		}
		outcomes := map[bool]string{false: "failed", true: "failed_open"}
		if n := histogramCount(t, s, "oidcgate_token_hook_duration_seconds", outcomes[failOpen]); n != 1 {
			t.Errorf("hook metric %s = %d", outcomes[failOpen], n)
		}
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// histogramCount is the number of observations of a histogram's series
// with the outcome label.
func histogramCount(t *testing.T, s *server, name, outcome string) uint64 {
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

// TestOpaqueTokensIntrospectTheirClaims: an opaque token's roles and
// claims are in its introspection answer, never over the registered ones.
func TestOpaqueTokensIntrospectTheirClaims(t *testing.T) {
	s := start(t, backends()[0].open(t))
	spec := rolesClient
	spec.AccessTokenFormat = "opaque"
	s.register(t, spec)
	withGroups(t, s, "admins")
	r := newRP(t, s, "roles-app", secret, rpRedirect)
	r.cfg.Scopes = []string{"openid"}
	b := newBrowser(t)
	f, p := r.start(b)
	tok, _ := r.redeem(t, s, b.signIn(s, p, alicePassword), f.state, f.verifier)
	in := s.post(t, "/introspect", "token="+tok.AccessToken, "resource-server:"+secret)
	got := in.json(t)
	if in.status != 200 || got["active"] != true || got["tenant"] != "acme" || got["sub"] != "alice-sub" {
		t.Fatalf("introspection: %d %s", in.status, in.body)
	}
	if roles, _ := got["roles"].([]any); len(roles) != 1 || roles[0] != "admin" {
		t.Errorf("roles: %v", got["roles"])
	}
}
