package provider_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oidcgate/oidcgate/provider/storage"
)

// authURL is an authorization request for client "web" with overrides.
func authURL(s *server, set map[string]string) string {
	v := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {rpRedirect}, "scope": {"openid"},
		"state": {"st"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(strings.Repeat("v", 43))},
		"code_challenge_method": {"S256"}}
	for k, x := range set {
		if x == "" {
			v.Del(k)
		} else {
			v.Set(k, x)
		}
	}
	return s.issuer + "/authorize?" + v.Encode()
}

func TestAuthorizeNeverRedirectsToUnregistered(t *testing.T) {
	s := start(t, backends()[0].open(t))
	for _, uri := range []string{
		"https://rp.example.com/cb/extra",     // suffix
		"https://rp.example.com/c",            // prefix
		"https://rp.example.com/cbx",          // longer
		"https://RP.example.com/cb",           // case
		"https://rp.example.com/CB",           // case
		"https://rp.example.com/cb#frag",      // fragment
		"https://user@rp.example.com/cb",      // userinfo
		"https://rp.example.com:8443/cb",      // port
		"https://rp.example.com:443/cb",       // explicit default port
		"http://rp.example.com/cb",            // scheme
		"https://rp.example.com.evil.test/cb", // host suffix
		"https://evil.test/?https://rp.example.com/cb",
		"https://rp.example.com/cb?x=1", // query
	} {
		t.Run(uri, func(t *testing.T) {
			p := newBrowser(t).get(authURL(s, map[string]string{"redirect_uri": uri}))
			if p.loc != nil || p.status != 400 || !strings.Contains(p.body, "not registered") {
				t.Errorf("got %d, redirect %v", p.status, p.loc)
			}
		})
	}
	t.Run("unknown client", func(t *testing.T) {
		p := newBrowser(t).get(authURL(s, map[string]string{"client_id": "nope"}))
		if p.loc != nil || p.status != 400 {
			t.Errorf("got %d, redirect %v", p.status, p.loc)
		}
	})
	t.Run("native loopback on another port", func(t *testing.T) {
		p := newBrowser(t).get(authURL(s, map[string]string{"client_id": "native", "redirect_uri": "http://localhost:5000/cb"}))
		if p.loc != nil || p.status != 400 {
			t.Errorf("localhost (a name, not the loopback IP) accepted: %d %v", p.status, p.loc)
		}
	})
}

func TestAuthorizeErrorsRedirect(t *testing.T) {
	s := start(t, backends()[0].open(t))
	tests := []struct {
		name string
		set  map[string]string
		code string
	}{
		{"PKCE missing for a public client", map[string]string{"client_id": "native", "redirect_uri": "http://127.0.0.1:5000/cb",
			"code_challenge": "", "code_challenge_method": ""}, "invalid_request"},
		{"plain PKCE", map[string]string{"code_challenge_method": "plain"}, "invalid_request"},
		{"malformed challenge", map[string]string{"code_challenge": "short"}, "invalid_request"},
		{"response_type token", map[string]string{"response_type": "token"}, "unsupported_response_type"},
		{"scope not allowed", map[string]string{"scope": "openid admin"}, "invalid_scope"},
		{"request object", map[string]string{"request": "eyJ.x.y"}, "request_not_supported"},
		{"request_uri", map[string]string{"request_uri": "https://x/y"}, "request_uri_not_supported"},
		{"bad prompt", map[string]string{"prompt": "none login"}, "invalid_request"},
		{"bad max_age", map[string]string{"max_age": "-1"}, "invalid_request"},
		{"client_credentials-only client", map[string]string{"client_id": "svc", "redirect_uri": ""}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newBrowser(t).get(authURL(s, tc.set))
			if tc.code == "" { // no registered redirect URI at all: an error page
				if p.loc != nil || p.status != 400 {
					t.Errorf("got %d %v", p.status, p.loc)
				}
				return
			}
			errorAt(t, s, p, "st", tc.code)
		})
	}
}

// signedIn runs an authorization to its code with a fresh browser.
func signedIn(t *testing.T, s *server, verifier string) (*browser, string) {
	b := newBrowser(t)
	p := b.get(authURL(s, map[string]string{"code_challenge": oauth2.S256ChallengeFromVerifier(verifier)}))
	p = b.signIn(s, p, alicePassword)
	if p.loc == nil { // consent not yet remembered
		p = b.decide(s, p, "allow")
	}
	return b, codeAt(t, s, p, "st")
}

// codeIn runs an authorization for scope in b — signing in and consenting
// as the pages ask — and returns its code (PKCE: authURL's verifier).
func (s *server) codeIn(t *testing.T, b *browser, scope string) string {
	t.Helper()
	p := b.get(authURL(s, map[string]string{"scope": scope}))
	if strings.Contains(p.body, `name="password"`) {
		p = b.signIn(s, p, alicePassword)
	}
	if p.loc == nil {
		p = b.decide(s, p, "allow")
	}
	return codeAt(t, s, p, "st")
}

// redeem exchanges a code of codeIn at the web client.
func (s *server) redeem(t *testing.T, code string) response {
	t.Helper()
	return s.post(t, "/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect},
		"code_verifier": {strings.Repeat("v", 43)}}.Encode(), "web:"+secret)
}

// grant is codeIn and redeem: the token response, which must be a 200.
func (s *server) grant(t *testing.T, b *browser, scope string) map[string]any {
	t.Helper()
	r := s.redeem(t, s.codeIn(t, b, scope))
	if r.status != 200 {
		t.Fatalf("redeem: %d %s", r.status, r.body)
	}
	return r.json(t)
}

func TestTokenCodeRejects(t *testing.T) {
	s := start(t, backends()[0].open(t))
	verifier := strings.Repeat("v", 43)
	redeem := func(client, code, redirect, v string) response {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}}
		if v != "" {
			form.Set("code_verifier", v)
		}
		if !strings.Contains(client, ":") { // a public client
			form.Set("client_id", client)
			client = ""
		}
		return s.post(t, "/token", form.Encode(), client)
	}
	web := "web:" + secret
	tests := []struct {
		name   string
		client string
		redir  string
		v      string
	}{
		{"wrong verifier", web, rpRedirect, strings.Repeat("w", 43)},
		{"missing verifier", web, rpRedirect, ""},
		{"different redirect_uri", web, "https://rp.example.com/other", verifier},
		{"code of another client", "native", rpRedirect, verifier},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, code := signedIn(t, s, verifier)
			if r := redeem(tc.client, code, tc.redir, tc.v); r.status == 200 || (r.json(t)["error"] != "invalid_grant" && r.json(t)["error"] != "unauthorized_client") {
				t.Fatalf("%d %s", r.status, r.body)
			}
			// The failed attempt consumed the code: the real one fails too.
			if r := redeem(web, code, rpRedirect, verifier); r.status != 400 {
				t.Errorf("code usable after a failed redemption: %d", r.status)
			}
		})
	}
	t.Run("replay revokes the first tokens", func(t *testing.T) {
		_, code := signedIn(t, s, verifier)
		first := redeem(web, code, rpRedirect, verifier)
		if first.status != 200 {
			t.Fatalf("%d %s", first.status, first.body)
		}
		if r := redeem(web, code, rpRedirect, verifier); r.status != 400 || r.json(t)["error"] != "invalid_grant" {
			t.Fatalf("replay: %d %s", r.status, r.body)
		}
		at := first.json(t)["access_token"].(string)
		if m := s.introspect(t, web, at); m["active"] != false {
			t.Errorf("the first access token survived the replay: %v", m)
		}
	})
}

func TestFormRejects(t *testing.T) {
	s := start(t, backends()[0].open(t))
	t.Run("login without or with a wrong CSRF token", func(t *testing.T) {
		b := newBrowser(t)
		p := b.get(authURL(s, nil))
		f := fields(p.body)
		f.Set("username", "alice")
		f.Set("password", alicePassword)
		for _, csrf := range []string{"", "forged"} {
			f.Set("csrf", csrf)
			if r := b.post(s.issuer+"/login", f); r.status != 403 || r.loc != nil {
				t.Errorf("csrf %q: %d %v", csrf, r.status, r.loc)
			}
		}
	})
	t.Run("consent without or with a wrong CSRF token", func(t *testing.T) {
		b := newBrowser(t)
		p := b.signIn(s, b.get(authURL(s, nil)), alicePassword)
		f := fields(p.body)
		f.Set("decision", "allow")
		for _, csrf := range []string{"", "forged"} {
			f.Set("csrf", csrf)
			if r := b.post(s.issuer+"/consent", f); r.status != 403 || r.loc != nil {
				t.Errorf("csrf %q: %d %v", csrf, r.status, r.loc)
			}
		}
	})
	t.Run("logout confirmation without or with a wrong CSRF token", func(t *testing.T) {
		b, _ := signedIn(t, s, strings.Repeat("v", 43))
		p := b.get(s.issuer + "/end_session")
		if !strings.Contains(p.body, "Sign out?") {
			t.Fatalf("no confirmation page: %s", p.body)
		}
		for _, csrf := range []string{"", "forged"} {
			if r := b.post(s.issuer+"/end_session", url.Values{"confirm": {"yes"}, "csrf": {csrf}}); r.status != 403 {
				t.Errorf("csrf %q: %d", csrf, r.status)
			}
		}
		// Still signed in: prompt=none yields a code.
		codeAt(t, s, b.get(authURL(s, map[string]string{"prompt": "none"})), "st")
		// The real confirmation signs out.
		f := url.Values{"confirm": {"yes"}}
		for k, v := range fields(p.body) {
			f[k] = v
		}
		if r := b.post(s.issuer+"/end_session", f); r.status != 200 || !strings.Contains(r.body, "signed out") {
			t.Fatalf("confirmed logout: %d %s", r.status, r.body)
		}
		errorAt(t, s, b.get(authURL(s, map[string]string{"prompt": "none"})), "st", "login_required")
	})
	t.Run("expired interaction", func(t *testing.T) {
		b := newBrowser(t)
		p := b.get(authURL(s, nil))
		f := fields(p.body)
		if err := s.store.DeleteInteraction(context.Background(), f.Get("interaction")); err != nil {
			t.Fatal(err)
		}
		f.Set("username", "alice")
		f.Set("password", alicePassword)
		if r := b.post(s.issuer+"/login", f); r.loc != nil || !strings.Contains(r.body, "expired") {
			t.Errorf("%d %v", r.status, r.loc)
		}
	})
	t.Run("disabled user", func(t *testing.T) {
		b, code := signedIn(t, s, strings.Repeat("v", 43))
		tok := s.post(t, "/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect},
			"code_verifier": {strings.Repeat("v", 43)}}.Encode(), "web:"+secret).json(t)
		u, _ := s.store.GetUser(context.Background(), "alice-sub")
		u.Disabled = true
		s.store.UpdateUser(context.Background(), u)
		defer func() { u.Disabled = false; s.store.UpdateUser(context.Background(), u) }()
		// No SSO, no sign-in, no refresh.
		errorAt(t, s, b.get(authURL(s, map[string]string{"prompt": "none"})), "st", "login_required")
		other := newBrowser(t)
		p := other.get(authURL(s, nil))
		if r := other.signIn(s, p, alicePassword); r.status != 401 && !strings.Contains(r.body, "Invalid username or password") {
			t.Errorf("disabled user signed in: %d", r.status)
		}
		if rt, ok := tok["refresh_token"].(string); ok {
			r := s.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode(), "web:"+secret)
			if r.status != 400 {
				t.Errorf("refresh for a disabled user: %d %s", r.status, r.body)
			}
		}
	})
	t.Run("wrong password rate limit", func(t *testing.T) {
		s := start(t, backends()[0].open(t)) // a limiter that has seen no earlier failure
		b := newBrowser(t)
		p := b.get(authURL(s, nil))
		var r page
		for i := range 6 {
			r = b.signIn(s, p, "wrong password")
			if i < 5 && (r.status != 401 || !strings.Contains(r.body, "Invalid username or password")) {
				t.Fatalf("attempt %d: %d", i+1, r.status)
			}
			p = r
		}
		if r.status != 429 || !strings.Contains(r.body, "Too many") {
			t.Fatalf("sixth attempt: %d", r.status)
		}
		// Even the right password is refused until the window ends.
		if r := b.signIn(s, r, alicePassword); r.status != 429 {
			t.Errorf("right password while limited: %d", r.status)
		}
	})
}

func TestFormPostAndConsentRequired(t *testing.T) {
	s := start(t, backends()[0].open(t))
	b := newBrowser(t)
	p := b.signIn(s, b.get(authURL(s, map[string]string{"response_mode": "form_post", "state": "fp"})), alicePassword)
	p = b.decide(s, p, "allow")
	if p.status != 200 || !strings.Contains(p.body, `action="`+rpRedirect+`"`) || !strings.Contains(p.body, `name="code"`) ||
		!strings.Contains(p.body, `name="state" value="fp"`) || !strings.Contains(p.body, `name="iss"`) || p.loc != nil {
		t.Errorf("form_post response: %d %v %s", p.status, p.loc, p.body)
	}
	// Signed in, but a scope never consented to: prompt=none gets consent_required.
	p = b.get(authURL(s, map[string]string{"prompt": "none", "scope": "openid email"}))
	errorAt(t, s, p, "st", "consent_required")
}

func TestRefreshLifetimesAndGrace(t *testing.T) {
	s := start(t, backends()[0].open(t), withRefresh(time.Hour, time.Minute))
	verifier := strings.Repeat("v", 43)
	b := newBrowser(t)
	p := b.get(authURL(s, map[string]string{"scope": "openid offline_access", "code_challenge": oauth2.S256ChallengeFromVerifier(verifier)}))
	code := codeAt(t, s, b.decide(s, b.signIn(s, p, alicePassword), "allow"), "st")
	tok := s.post(t, "/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect},
		"code_verifier": {verifier}}.Encode(), "web:"+secret).json(t)
	rt := tok["refresh_token"].(string)
	refresh := func(token string) response {
		return s.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}}.Encode(), "web:"+secret)
	}
	first := refresh(rt)
	if first.status != 200 {
		t.Fatalf("refresh: %d %s", first.status, first.body)
	}
	// A retry with the rotated token within the grace: another fresh pair,
	// and the family lives on.
	retry := refresh(rt)
	if retry.status != 200 {
		t.Fatalf("retry within the grace: %d %s", retry.status, retry.body)
	}
	if r := refresh(first.json(t)["refresh_token"].(string)); r.status != 200 {
		t.Errorf("the family did not survive a retry within the grace: %d", r.status)
	}
	// The idle lifetime bounds each token: the stored expiry is an hour out.
	rec, err := s.store.GetRefreshToken(context.Background(), storage.HashOf(retry.json(t)["refresh_token"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(rec.ExpiresAt); d > time.Hour || d < 59*time.Minute || !rec.FamilyExpiresAt.After(rec.ExpiresAt) {
		t.Errorf("expiry in %v, family until %v", d, rec.FamilyExpiresAt)
	}
}
