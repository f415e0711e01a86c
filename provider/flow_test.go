package provider_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// browser is a user agent with a cookie jar that follows redirects inside
// the provider and stops at the relying party's redirect URI.
type browser struct {
	t *testing.T
	c *http.Client
}

var errAtRP = errors.New("reached the relying party")

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host == "rp.example.com" || req.URL.Path == "/cb" {
			return errAtRP
		}
		return nil
	}}}
}

// page is a response, its body read.
type page struct {
	status int
	url    *url.URL // the last URL requested
	loc    *url.URL // where it redirects the browser to (at the RP)
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil && !errors.Is(err, errAtRP) {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, url: resp.Request.URL, body: string(body)}
	if l := resp.Header.Get("Location"); l != "" {
		p.loc, _ = url.Parse(l)
	}
	return p
}

func (b *browser) get(u string) page {
	req, _ := http.NewRequest("GET", u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var hidden = regexp.MustCompile(`name="(interaction|csrf)" value="([^"]*)"`)

// fields reads a page's hidden form fields.
func fields(body string) url.Values {
	v := url.Values{}
	for _, m := range hidden.FindAllStringSubmatch(body, -1) {
		v.Set(m[1], m[2])
	}
	return v
}

// signIn fills the login page.
func (b *browser) signIn(s *server, p page, password string) page {
	b.t.Helper()
	if !strings.Contains(p.body, `name="password"`) {
		b.t.Fatalf("not the login page: %d %s", p.status, p.body)
	}
	f := fields(p.body)
	f.Set("username", "alice")
	f.Set("password", password)
	return b.post(s.issuer+"/login", f)
}

// decide answers the consent page.
func (b *browser) decide(s *server, p page, decision string) page {
	b.t.Helper()
	if !strings.Contains(p.body, `value="allow"`) {
		b.t.Fatalf("not the consent page: %d %s", p.status, p.body)
	}
	f := fields(p.body)
	f.Set("decision", decision)
	return b.post(s.issuer+"/consent", f)
}

type rp struct {
	cfg      oauth2.Config
	verifier *oidc.IDTokenVerifier
	provider *oidc.Provider
}

func newRP(t *testing.T, s *server, clientID, clientSecret, redirect string) *rp {
	ctx := context.Background()
	op, err := oidc.NewProvider(ctx, s.issuer)
	if err != nil {
		t.Fatal(err)
	}
	return &rp{
		cfg: oauth2.Config{ClientID: clientID, ClientSecret: clientSecret, Endpoint: op.Endpoint(), RedirectURL: redirect,
			Scopes: []string{"openid", "profile", "email", "offline_access"}},
		verifier: op.Verifier(&oidc.Config{ClientID: clientID}),
		provider: op,
	}
}

// redeem exchanges the code the page p carries (for state) and verifies
// the ID token that comes with the tokens.
func (r *rp) redeem(t *testing.T, s *server, p page, state, verifier string) (*oauth2.Token, *oidc.IDToken) {
	t.Helper()
	ctx := context.Background()
	tok, err := r.cfg.Exchange(ctx, codeAt(t, s, p, state), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.verifier.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("the ID token does not verify: %v", err)
	}
	return tok, idt
}

func random() string {
	b := make([]byte, 12)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// codeAt checks an authorization response and returns its code.
func codeAt(t *testing.T, s *server, p page, state string) string {
	t.Helper()
	if p.loc == nil {
		t.Fatalf("no redirect to the RP: %d %s", p.status, p.body)
	}
	q := p.loc.Query()
	if q.Get("error") != "" || q.Get("state") != state || q.Get("iss") != s.issuer || q.Get("code") == "" {
		t.Fatalf("authorization response %s", p.loc)
	}
	return q.Get("code")
}

func errorAt(t *testing.T, s *server, p page, state, code string) {
	t.Helper()
	if p.loc == nil {
		t.Fatalf("no redirect to the RP: %d %s", p.status, p.body)
	}
	q := p.loc.Query()
	if q.Get("error") != code || q.Get("state") != state || q.Get("iss") != s.issuer || q.Get("code") != "" {
		t.Fatalf("wanted error %s, got %s", code, p.loc)
	}
}

func TestBrowserFlow(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			s := start(t, be.open(t))
			ctx := context.Background()
			r := newRP(t, s, "web", secret, rpRedirect)
			b := newBrowser(t)

			// Sign in, consent, code → tokens.
			state, nonce, verifier := random(), random(), oauth2.GenerateVerifier()
			p := b.get(r.cfg.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)))
			p = b.signIn(s, p, alicePassword)
			p = b.decide(s, p, "allow")
			code := codeAt(t, s, p, state)
			tok, err := r.cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			rawID, _ := tok.Extra("id_token").(string)
			idt, err := r.verifier.Verify(ctx, rawID)
			if err != nil {
				t.Fatalf("go-oidc rejects the ID token: %v", err)
			}
			if idt.Nonce != nonce || idt.Subject != "alice-sub" {
				t.Errorf("ID token nonce %q sub %q", idt.Nonce, idt.Subject)
			}
			if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Errorf("at_hash: %v", err)
			}
			var claims struct {
				AuthTime int64    `json:"auth_time"`
				Sid      string   `json:"sid"`
				AMR      []string `json:"amr"`
			}
			idt.Claims(&claims)
			if claims.AuthTime == 0 || claims.Sid == "" || len(claims.AMR) == 0 {
				t.Errorf("ID token claims %+v", claims)
			}
			if tok.RefreshToken == "" {
				t.Fatal("no refresh token with offline_access")
			}

			// userinfo.
			ui, err := r.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatal(err)
			}
			var uc map[string]any
			ui.Claims(&uc)
			if ui.Subject != "alice-sub" || ui.Email != "alice@example.com" || !ui.EmailVerified || uc["name"] != "Alice Example" {
				t.Errorf("userinfo %+v %v", ui, uc)
			}

			// Refresh rotation; reuse of the rotated token revokes the family.
			expired := *tok
			expired.Expiry = time.Now().Add(-time.Minute)
			fresh, err := r.cfg.TokenSource(ctx, &expired).Token()
			if err != nil {
				t.Fatal(err)
			}
			if fresh.RefreshToken == "" || fresh.RefreshToken == tok.RefreshToken || fresh.AccessToken == tok.AccessToken {
				t.Fatal("the refresh token did not rotate")
			}
			if _, err := r.cfg.TokenSource(ctx, &expired).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
				t.Fatalf("reuse of a rotated refresh token: %v", err)
			}
			again := *fresh
			again.Expiry = time.Now().Add(-time.Minute)
			if _, err := r.cfg.TokenSource(ctx, &again).Token(); err == nil {
				t.Error("the family's newest refresh token still works after a reuse")
			}
			if m := s.introspect(t, "web:"+secret, fresh.AccessToken); m["active"] != false {
				t.Errorf("an access token of the revoked family is active: %v", m)
			}

			// SSO: the second authorization skips sign-in and consent.
			state = random()
			p = b.get(r.cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
			codeAt(t, s, p, state)

			// prompt=none with a session: a code; max_age=0: sign in again.
			state = random()
			p = b.get(r.cfg.AuthCodeURL(state, oauth2.SetAuthURLParam("prompt", "none"), oauth2.S256ChallengeOption(verifier)))
			codeAt(t, s, p, state)
			p = b.get(r.cfg.AuthCodeURL(random(), oauth2.SetAuthURLParam("max_age", "0"), oauth2.S256ChallengeOption(verifier)))
			if !strings.Contains(p.body, `name="password"`) {
				t.Error("max_age=0 did not ask to sign in again")
			}

			// prompt=none without a session: login_required.
			state = random()
			p = newBrowser(t).get(r.cfg.AuthCodeURL(state, oauth2.SetAuthURLParam("prompt", "none"), oauth2.S256ChallengeOption(verifier)))
			errorAt(t, s, p, state, "login_required")

			// Consent denied: access_denied.
			other := newBrowser(t)
			state = random()
			p = other.get(r.cfg.AuthCodeURL(state, oauth2.SetAuthURLParam("prompt", "consent"), oauth2.S256ChallengeOption(verifier)))
			p = other.signIn(s, p, alicePassword)
			errorAt(t, s, other.decide(s, p, "deny"), state, "access_denied")

			// Logout with id_token_hint, then prompt=none: login_required.
			p = b.get(s.issuer + "/end_session?" + url.Values{"id_token_hint": {rawID}, "state": {"bye-state"},
				"post_logout_redirect_uri": {"https://rp.example.com/bye"}}.Encode())
			if p.loc == nil || p.loc.Path != "/bye" || p.loc.Query().Get("state") != "bye-state" {
				t.Fatalf("logout: %d %v %s", p.status, p.loc, p.body)
			}
			state = random()
			p = b.get(r.cfg.AuthCodeURL(state, oauth2.SetAuthURLParam("prompt", "none"), oauth2.S256ChallengeOption(verifier)))
			errorAt(t, s, p, state, "login_required")
		})
	}
}

func TestPublicClientPKCE(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) { testPublicClientPKCE(t, start(t, be.open(t))) })
	}
}

func testPublicClientPKCE(t *testing.T, s *server) {
	ctx := context.Background()
	// A native app on a loopback port it picked (RFC 8252 §7.3).
	r := newRP(t, s, "native", "", "http://127.0.0.1:51515/cb")
	r.cfg.Scopes = []string{"openid", "profile"}
	b := newBrowser(t)
	state, verifier := random(), oauth2.GenerateVerifier()
	p := b.get(r.cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	p = b.decide(s, b.signIn(s, p, alicePassword), "allow")
	code := codeAt(t, s, p, state)
	tok, err := r.cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.verifier.Verify(ctx, tok.Extra("id_token").(string)); err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken != "" {
		t.Error("a refresh token without offline_access")
	}
}

// TestConcurrentRedemptions: of 50 concurrent redemptions of one code, and
// of 50 concurrent uses of one refresh token, exactly one succeeds.
func TestConcurrentRedemptions(t *testing.T) {
	s := start(t, backends()[0].open(t))
	ctx := context.Background()
	r := newRP(t, s, "web", secret, rpRedirect)
	b := newBrowser(t)
	state, verifier := random(), oauth2.GenerateVerifier()
	p := b.decide(s, b.signIn(s, b.get(r.cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))), alicePassword), "allow")
	code := codeAt(t, s, p, state)

	race := func(name string, fn func() error) {
		var ok atomic.Int32
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if fn() == nil {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 {
			t.Errorf("%s: %d of 50 concurrent uses succeeded, want exactly 1", name, ok.Load())
		}
	}
	var tok *oauth2.Token
	var mu sync.Mutex
	race("code", func() error {
		t2, err := r.cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err == nil {
			mu.Lock()
			tok = t2
			mu.Unlock()
		}
		return err
	})
	if tok == nil {
		t.Fatal("no token")
	}
	// The losing redemptions were replays: they revoked the winner's tokens
	// (RFC 6749 §4.1.2). A fresh grant for the refresh race.
	if m := s.introspect(t, "web:"+secret, tok.AccessToken); m["active"] != false {
		t.Errorf("tokens of a replayed code still active: %v", m)
	}
	state = random()
	p = b.get(r.cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	tok, err := r.cfg.Exchange(ctx, codeAt(t, s, p, state), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	race("refresh", func() error {
		exp := *tok
		exp.Expiry = time.Now().Add(-time.Minute)
		_, err := r.cfg.TokenSource(ctx, &exp).Token()
		return err
	})
}
