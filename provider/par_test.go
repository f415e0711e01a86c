package provider_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/oidcgate/oidcgate/provider"
)

// pushAuthorization is what an oauth2 client does for PAR (RFC 9126 §2):
// the parameters AuthCodeURL would put in the browser's URL, posted to the
// pushed_authorization_request_endpoint with the client's credentials.
func pushAuthorization(t *testing.T, cfg oauth2.Config, endpoint string, opts ...oauth2.AuthCodeOption) (int, map[string]any) {
	t.Helper()
	u, _ := url.Parse(cfg.AuthCodeURL(opts[0].(stateOption).state, opts[1:]...))
	form := u.Query()
	req, _ := http.NewRequest("POST", endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cfg.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(cfg.ClientID), url.QueryEscape(cfg.ClientSecret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// stateOption carries the state to pushAuthorization (AuthCodeURL takes it
// apart from the options).
type stateOption struct {
	oauth2.AuthCodeOption
	state string
}

func withState(s string) stateOption { return stateOption{oauth2.SetAuthURLParam("state", s), s} }

// authorizeByURI is the browser's trip to /authorize with a request_uri.
func authorizeByURI(s *server, clientID, requestURI string) string {
	return s.issuer + "/authorize?" + url.Values{"client_id": {clientID}, "request_uri": {requestURI}}.Encode()
}

// TestPAR: acceptance 2 — a pushed request signs in end to end (the
// browser carries only client_id and request_uri); the request_uri is
// single use and short-lived; a client that requires PAR cannot use a
// plain /authorize.
func TestPAR(t *testing.T) {
	everyBackend(t, func(t *testing.T, s *server) {
		r := newRP(t, s, "web", secret, rpRedirect)
		if ep, _ := discoveryOf(t, s)["pushed_authorization_request_endpoint"].(string); ep != s.issuer+"/par" {
			t.Fatalf("discovery: pushed_authorization_request_endpoint %q", ep)
		}
		state, nonce, verifier := random(), random(), oauth2.GenerateVerifier()
		status, out := pushAuthorization(t, r.cfg, s.issuer+"/par", withState(state), oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
		uri, _ := out["request_uri"].(string)
		if status != 201 || !strings.HasPrefix(uri, "urn:ietf:params:oauth:request_uri:") || out["expires_in"] != float64(60) {
			t.Fatalf("push: %d %v", status, out)
		}
		b := newBrowser(t)
		p := b.signIn(s, b.get(authorizeByURI(s, "web", uri)), alicePassword)
		p = b.decide(s, p, "allow")
		tok, idt := r.redeem(t, s, p, state, verifier)
		if idt.Nonce != nonce || tok.AccessToken == "" {
			t.Errorf("tokens: nonce %q", idt.Nonce)
		}
		// Used once: the same request_uri again is an error page, no redirect.
		if again := newBrowser(t).get(authorizeByURI(s, "web", uri)); again.status != 400 || again.loc != nil {
			t.Errorf("a request_uri used twice: %d %v", again.status, again.loc)
		}
		// Another client's request_uri.
		_, out = pushAuthorization(t, r.cfg, s.issuer+"/par", withState(random()), oauth2.S256ChallengeOption(verifier))
		other, _ := out["request_uri"].(string)
		if p := newBrowser(t).get(authorizeByURI(s, "native", other)); p.status != 400 || p.loc != nil {
			t.Errorf("another client's request_uri: %d %v", p.status, p.loc)
		}
		// ...which stays usable by its own client (the refusal did not spend it).
		if p := newBrowser(t).get(authorizeByURI(s, "web", other)); !strings.Contains(p.body, `name="password"`) {
			t.Errorf("the request_uri after another client's try: %d", p.status)
		}
		// Expired.
		_, out = pushAuthorization(t, r.cfg, s.issuer+"/par", withState(random()), oauth2.S256ChallengeOption(verifier))
		s.clock.Advance(61 * time.Second)
		if p := newBrowser(t).get(authorizeByURI(s, "web", out["request_uri"].(string))); p.status != 400 || p.loc != nil {
			t.Errorf("an expired request_uri: %d", p.status)
		}
	})
}

// TestPARRefusals: errors go to the client as JSON, never to a browser.
func TestPARRefusals(t *testing.T) {
	s := start(t, backends()[0].open(t))
	s.register(t, provider.ClientSpec{ID: "par-only", Secret: secret, RedirectURIs: []string{rpRedirect},
		GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"}, RequirePAR: true})
	post := func(form url.Values, auth string) response {
		return s.post(t, "/par", form.Encode(), auth)
	}
	base := func() url.Values {
		return url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {rpRedirect}, "scope": {"openid"},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
	}
	with := func(k, v string) url.Values {
		f := base()
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	for name, tc := range map[string]struct {
		form         url.Values
		auth         string
		status       int
		error, about string
	}{
		"unauthenticated":         {base(), "", 401, "invalid_client", ""},
		"wrong secret":            {base(), "web:" + strings.Repeat("x", 40), 401, "invalid_client", ""},
		"unregistered redirect":   {with("redirect_uri", "https://evil.example/cb"), "web:" + secret, 400, "invalid_request", "redirect_uri"},
		"a request_uri pushed":    {with("request_uri", "urn:ietf:params:oauth:request_uri:x"), "web:" + secret, 400, "invalid_request", "request_uri"},
		"another client_id":       {with("client_id", "native"), "web:" + secret, 400, "invalid_request", "client_id"},
		"scope not allowed":       {with("scope", "admin"), "web:" + secret, 400, "invalid_scope", ""},
		"response_type token":     {with("response_type", "token"), "web:" + secret, 400, "unsupported_response_type", ""},
		"bad challenge method":    {with("code_challenge_method", "plain"), "web:" + secret, 400, "invalid_request", "S256"},
		"a request object":        {with("request", "eyJ.eyJ.sig"), "web:" + secret, 400, "request_not_supported", ""},
		"client_credentials only": {with("client_id", "svc"), "svc:" + secret, 400, "unauthorized_client", ""},
	} {
		if name == "client_credentials only" {
			tc.form.Del("redirect_uri")
		}
		r := post(tc.form, tc.auth)
		if r.status != tc.status || r.json(t)["error"] != tc.error || !strings.Contains(string(r.body), tc.about) {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	// A repeated parameter and a body that is not a form.
	if r := s.post(t, "/par", base().Encode()+"&scope=openid", "web:"+secret); r.status != 400 || !strings.Contains(string(r.body), "more than once") {
		t.Errorf("a repeated parameter: %d %s", r.status, r.body)
	}
	// A client that requires PAR gets an error response at its redirect
	// URI for a plain /authorize; pushed, it signs in.
	state := random()
	plain := newBrowser(t).get(s.issuer + "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"par-only"},
		"redirect_uri": {rpRedirect}, "scope": {"openid"}, "state": {state}}.Encode())
	errorAt(t, s, plain, state, "invalid_request")
	f := base()
	f.Set("client_id", "par-only")
	r := post(f, "par-only:"+secret)
	if r.status != 201 {
		t.Fatalf("push for a PAR client: %d %s", r.status, r.body)
	}
	if p := newBrowser(t).get(authorizeByURI(s, "par-only", r.json(t)["request_uri"].(string))); !strings.Contains(p.body, `name="password"`) {
		t.Errorf("a PAR client's pushed request: %d %s", p.status, p.body)
	}
	// A pushed request is not an interaction a sign-in page can resume.
	id := strings.TrimPrefix(post(base(), "web:"+secret).json(t)["request_uri"].(string), "urn:ietf:params:oauth:request_uri:")
	if p := newBrowser(t).get(s.issuer + "/login?interaction=" + url.QueryEscape(id)); p.status != 400 || strings.Contains(p.body, `name="password"`) {
		t.Errorf("a pushed request's ID at /login: %d", p.status)
	}
}

// TestPARRequiredEverywhere: --require-pushed-authorization-requests.
func TestPARRequiredEverywhere(t *testing.T) {
	s := start(t, backends()[0].open(t), func(c *provider.Config) { c.RequirePAR = true })
	if d := discoveryOf(t, s); d["require_pushed_authorization_requests"] != true {
		t.Errorf("discovery: %v", d["require_pushed_authorization_requests"])
	}
	state := random()
	p := newBrowser(t).get(s.issuer + "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"web"},
		"redirect_uri": {rpRedirect}, "scope": {"openid"}, "state": {state}}.Encode())
	errorAt(t, s, p, state, "invalid_request")
}

func discoveryOf(t *testing.T, s *server) map[string]any {
	t.Helper()
	return do(t, "GET", s.issuer+"/.well-known/openid-configuration", "", "", "").json(t)
}

// TestPARWithPrivateKeyJWT: a private_key_jwt client pushes with an
// assertion whose aud is the PAR endpoint.
func TestPARWithPrivateKeyJWT(t *testing.T) {
	s := start(t, backends()[0].open(t))
	key := newClientKey(t, "k1")
	s.register(t, provider.ClientSpec{ID: "pkj-web", TokenEndpointAuthMethod: "private_key_jwt", JWKS: key.jwks(t),
		RedirectURIs: []string{rpRedirect}, GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"}})
	form := url.Values{"response_type": {"code"}, "redirect_uri": {rpRedirect}, "scope": {"openid"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
		"client_assertion_type": {jwtBearer},
		"client_assertion":      {key.assertion(t, s, "pkj-web", func(c map[string]any) { c["aud"] = s.issuer + "/par" })}}
	if r := s.post(t, "/par", form.Encode(), ""); r.status != 201 {
		t.Fatalf("push with private_key_jwt: %d %s", r.status, r.body)
	}
	form.Set("client_assertion", key.assertion(t, s, "pkj-web", func(c map[string]any) { c["aud"] = "https://elsewhere.example/par" }))
	if r := s.post(t, "/par", form.Encode(), ""); r.status != 401 {
		t.Errorf("an assertion for another audience: %d %s", r.status, r.body)
	}
}
