package provider_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oidcgate/oidcgate/provider/storage"
)

// account opens the account page, signing in with the password when the
// browser has no session.
func (b *browser) account(s *server, password string) page {
	b.t.Helper()
	p := b.get(s.issuer + "/account")
	if strings.Contains(p.body, `name="password"`) {
		p = b.signIn(s, p, password)
	}
	if p.url.Path != "/account" || !strings.Contains(p.body, "Signed in as <strong>alice</strong>") {
		b.t.Fatalf("not the account page: %d %s %s", p.status, p.url, p.body)
	}
	return p
}

// act posts one of the account page's forms.
func (b *browser) act(s *server, p page, action string, kv ...string) page {
	b.t.Helper()
	f := url.Values{"csrf": {fields(p.body).Get("csrf")}, "action": {action}}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	return b.post(s.issuer+"/account", f)
}

func TestAccountPage(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			s := start(t, be.open(t))
			b, other := newBrowser(t), newBrowser(t)
			b.account(s, alicePassword)
			other.account(s, alicePassword)
			p := b.account(s, alicePassword)
			if n := strings.Count(p.body, `value="end-session"`); n != 2 {
				t.Fatalf("sessions listed: %d, want 2", n)
			}

			// Bad input changes nothing.
			if got := b.post(s.issuer+"/account", url.Values{"action": {"password"}}); got.status != http.StatusForbidden {
				t.Errorf("no CSRF token: %d", got.status)
			}
			req, _ := http.NewRequest("POST", s.issuer+"/account", strings.NewReader(url.Values{"csrf": {fields(p.body).Get("csrf")},
				"action": {"revoke-consent"}, "client": {"web"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			if got := b.do(req); got.status != http.StatusForbidden {
				t.Errorf("a cross-site form: %d", got.status)
			}
			for _, tc := range []struct {
				current, next, confirm string
				status                 int
				says                   string
			}{
				{"wrong password", "new password 1", "new password 1", http.StatusUnauthorized, "not right"},
				{alicePassword, "new password 1", "new password 2", http.StatusBadRequest, "differ"},
				{alicePassword, "short", "short", http.StatusBadRequest, "too short"},
			} {
				got := b.act(s, p, "password", "current", tc.current, "new", tc.next, "confirm", tc.confirm)
				if got.status != tc.status || !strings.Contains(got.body, tc.says) {
					t.Errorf("password change %+v: %d %s", tc, got.status, got.body)
				}
			}
			if got := b.act(s, p, "end-session", "session", "not-a-session"); got.status != http.StatusNotFound {
				t.Errorf("ending an unknown session: %d", got.status)
			}

			// A password change ends the other sessions, and the new password is the one.
			got := b.act(s, p, "password", "current", alicePassword, "new", "a new password", "confirm", "a new password")
			if got.status != http.StatusOK || !strings.Contains(got.body, "was changed") {
				t.Fatalf("password change: %d %s", got.status, got.body)
			}
			if n := strings.Count(got.body, `value="end-session"`); n != 1 {
				t.Errorf("sessions after the change: %d, want 1", n)
			}
			if again := other.get(s.issuer + "/account"); !strings.Contains(again.body, `name="password"`) {
				t.Errorf("the other browser is still signed in: %s", again.url)
			}
			fresh := newBrowser(t)
			if old := fresh.signIn(s, fresh.get(authURL(s, nil)), alicePassword); old.status != http.StatusUnauthorized {
				t.Errorf("the old password still signs in: %d", old.status)
			}
			fresh.account(s, "a new password")
		})
	}
}

// TestAccountSecondFactors: setting up an authenticator app on the
// account page, the step-up a password-only session needs before it
// changes security settings, and removal.
func TestAccountSecondFactors(t *testing.T) {
	s := start(t, backends()[0].open(t))
	b := newBrowser(t)
	p := b.account(s, alicePassword)
	p = b.act(s, p, "totp-start")
	m := secretOnPage.FindStringSubmatch(p.body)
	if m == nil || strings.Contains(p.body, `name="interaction"`) {
		t.Fatalf("no authenticator setup: %d %s", p.status, p.body)
	}
	if wrong := b.act(s, p, "enroll", "code", "000000"); wrong.status != http.StatusUnauthorized || !strings.Contains(wrong.body, m[1]) {
		t.Fatalf("a wrong first code: %d %s", wrong.status, wrong.body)
	}
	p = b.act(s, p, "enroll", "code", totpNow(t, s, m[1]))
	if n := len(codesOnPage.FindAllString(p.body, -1)); n != 10 {
		t.Fatalf("recovery codes after the first factor: %d %s", n, p.body)
	}
	p = b.account(s, alicePassword)
	if !strings.Contains(p.body, "Authenticator app") || !strings.Contains(p.body, "10 recovery codes left") {
		t.Fatalf("the account page after the setup: %s", p.body)
	}

	// A password-only session is stepped up before it may make new codes.
	s.clock.Advance(30 * time.Second)
	b2 := newBrowser(t)
	p2 := b2.account(s, alicePassword)
	p2 = b2.act(s, p2, "recovery")
	if p2.url.Path != "/mfa" || strings.Contains(p2.body, `name="password"`) {
		t.Fatalf("no step-up before new recovery codes: %s %s", p2.url, p2.body)
	}
	p2 = b2.mfa(s, p2, "totp", totpNow(t, s, m[1]))
	if p2.url.Path != "/account" {
		t.Fatalf("the step-up did not return to the account page: %s %s", p2.url, p2.body)
	}
	if p2 = b2.act(s, p2, "recovery"); len(codesOnPage.FindAllString(p2.body, -1)) != 10 {
		t.Fatalf("new recovery codes after the step-up: %s", p2.body)
	}
	factors, _ := s.store.ListFactors(context.Background(), "alice-sub")
	totpID := ""
	for _, f := range factors {
		if f.Kind == storage.FactorTOTP {
			totpID = f.ID
		}
	}
	// Removing the only factor removes the recovery codes with it.
	p2 = b2.act(s, b2.account(s, alicePassword), "remove-factor", "factor", totpID)
	if p2.status != http.StatusOK || !strings.Contains(p2.body, "Set up an authenticator app") {
		t.Fatalf("remove: %d %s", p2.status, p2.body)
	}
	if left, _ := s.store.ListFactors(context.Background(), "alice-sub"); len(left) != 0 {
		t.Errorf("factors after removing the only one: %d", len(left))
	}
}

// TestAccountWithdrawsConsent: withdrawing an application's access on the
// account page stops its refresh tokens.
func TestAccountWithdrawsConsent(t *testing.T) {
	s := start(t, backends()[0].open(t))
	r := newRP(t, s, "web", secret, rpRedirect)
	b := newBrowser(t)
	f, p := r.start(b)
	tok, _ := r.redeem(t, s, b.decide(s, b.signIn(s, p, alicePassword), "allow"), f.state, f.verifier)
	ctx := context.Background()
	next, err := r.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh before: %v", err)
	}
	p = b.account(s, alicePassword)
	if !strings.Contains(p.body, "Web App") {
		t.Fatalf("the application is not listed: %s", p.body)
	}
	p = b.act(s, p, "revoke-consent", "client", "web")
	if p.status != http.StatusOK || strings.Contains(p.body, `value="revoke-consent"`) {
		t.Fatalf("withdraw: %d %s", p.status, p.body)
	}
	if _, err := r.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: next.RefreshToken}).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("refresh after withdrawal: %v", err)
	}
}
