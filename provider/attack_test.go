package provider_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// The attacks of the outside audit (issue 22), each written as the
// attacker would run it against the provider.

// TestInteractionHijack: the attacker starts a flow in their browser and
// sends the victim the genuine sign-in link. The victim's browser is
// refused it; and should the victim sign in on the attacker's interaction
// anyway (the binding cookie planted), the attacker's browser still cannot
// approve consent, lacking the victim's session.
func TestInteractionHijack(t *testing.T) {
	s := start(t, backends()[0].open(t))
	attacker, victim := newBrowser(t), newBrowser(t)
	login := attacker.get(authURL(s, map[string]string{"prompt": "consent"}))
	if !strings.Contains(login.body, `name="password"`) {
		t.Fatalf("no sign-in page: %d", login.status)
	}
	// The victim opens the link the attacker sent.
	if p := victim.get(login.url.String()); p.status != 403 || strings.Contains(p.body, `name="password"`) {
		t.Fatalf("the victim's browser got the attacker's sign-in page: %d", p.status)
	}
	if p := victim.signIn(s, login, alicePassword); p.status != 403 || p.loc != nil {
		t.Fatalf("the victim signed in on the attacker's interaction: %d %v", p.status, p.loc)
	}
	// Second layer: the binding cookie somehow planted in the victim's browser.
	u, _ := url.Parse(s.issuer)
	for _, c := range attacker.c.Jar.Cookies(u) {
		if c.Name == "oidcgate_browser" {
			victim.c.Jar.SetCookies(u, []*http.Cookie{c})
		}
	}
	consent := victim.signIn(s, login, alicePassword)
	if !strings.Contains(consent.body, `value="allow"`) {
		t.Fatalf("expected the consent page in the victim's browser: %d", consent.status)
	}
	// The attacker approves from their own browser, with the form's tokens.
	if p := attacker.decide(s, consent, "allow"); p.loc != nil && p.loc.Query().Get("code") != "" {
		t.Fatalf("the attacker's browser got the victim's code: %v", p.loc)
	}
}

// TestLoginCSRF: a cross-site form posting the attacker's credentials into
// the victim's browser is refused, by its Origin or Sec-Fetch-Site, and by
// the browser binding when it says neither.
func TestLoginCSRF(t *testing.T) {
	s := start(t, backends()[0].open(t))
	attacker, victim := newBrowser(t), newBrowser(t)
	login := attacker.get(authURL(s, nil))
	f := fields(login.body)
	f.Set("username", "alice")
	f.Set("password", alicePassword)
	for _, h := range []map[string]string{
		{"Origin": "https://evil.example"},
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "null"},
		{}, // neither: the binding refuses it
	} {
		req, _ := http.NewRequest("POST", s.issuer+"/login", strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		if p := victim.do(req); p.status != 403 {
			t.Errorf("cross-site sign-in %v: %d", h, p.status)
		}
	}
	u, _ := url.Parse(s.issuer)
	for _, c := range victim.c.Jar.Cookies(u) {
		if c.Name == "oidcgate_session" {
			t.Fatal("the victim's browser got a session")
		}
	}
	// The same form from the attacker's own browser, same-origin, works.
	req, _ := http.NewRequest("POST", s.issuer+"/login", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.issuer)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if p := attacker.do(req); p.status != 200 || !strings.Contains(p.body, `value="allow"`) {
		t.Errorf("same-origin sign-in: %d", p.status)
	}
}

// TestParallelGuesses: 40 guesses at once from one IP, then the right
// password: at most the limit (5) are checked, and the right one is refused
// too — the limiter reserves an attempt before the slow check.
func TestParallelGuesses(t *testing.T) {
	s := start(t, backends()[0].open(t))
	b := newBrowser(t)
	login := b.get(authURL(s, nil))
	var checked, limited atomic.Int32
	var wg sync.WaitGroup
	for range 39 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch p := b.signIn(s, login, "wrong password"); p.status {
			case 401:
				checked.Add(1)
			case 429:
				limited.Add(1)
			default:
				t.Errorf("guess: %d", p.status)
			}
		}()
	}
	wg.Wait()
	if checked.Load() > 5 {
		t.Errorf("%d of 39 parallel guesses had their password checked, want at most 5", checked.Load())
	}
	if p := b.signIn(s, login, alicePassword); p.status != 429 {
		t.Errorf("the right password after 39 parallel guesses: %d, want 429", p.status)
	}
}
