package provider_test

import (
	"context"
	"html"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage"
	"github.com/oidcgate/oidcgate/provider/storage/memory"
)

var (
	secretOnPage = regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`)
	codesOnPage  = regexp.MustCompile(`<li><code>([a-z0-9-]+)</code></li>`)
)

// mfa answers the second-factor page with a code for method.
func (b *browser) mfa(s *server, p page, method, code string) page {
	b.t.Helper()
	if !strings.Contains(p.body, `name="method"`) {
		b.t.Fatalf("not a second-factor page: %d %s", p.status, p.body)
	}
	f := fields(p.body)
	f.Set("method", method)
	f.Set("code", code)
	return b.post(s.issuer+"/mfa", f)
}

// totpNow is the authenticator app's code for secret at the server's time.
func totpNow(t *testing.T, s *server, secret string) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, s.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// sessionValue is the browser's session cookie at s.
func sessionValue(b *browser, s *server) string {
	for _, c := range b.c.Jar.Cookies(mustURL(s.issuer)) {
		if c.Name == "oidcgate_session" {
			return c.Value
		}
	}
	return ""
}

// usedCode is the code of the time step alice's authenticator app was
// last accepted at (its first code, right after the setup).
func usedCode(t *testing.T, s *server, secret string) string {
	t.Helper()
	factors, err := s.store.ListFactors(context.Background(), "alice-sub")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range factors {
		if f.Kind == storage.FactorTOTP {
			code, _ := totp.GenerateCode(secret, time.Unix(int64(f.Counter)*30, 0))
			return code
		}
	}
	t.Fatal("alice has no authenticator app")
	return ""
}

// flowFor is one authorization request of r in a browser, with its state
// and PKCE verifier.
type flowFor struct {
	r        *rp
	state    string
	verifier string
}

func (r *rp) start(b *browser, extra ...oauth2.AuthCodeOption) (flowFor, page) {
	f := flowFor{r: r, state: random(), verifier: oauth2.GenerateVerifier()}
	opts := append([]oauth2.AuthCodeOption{oidc.Nonce("n"), oauth2.S256ChallengeOption(f.verifier)}, extra...)
	return f, b.get(r.cfg.AuthCodeURL(f.state, opts...))
}

var askMFA = oauth2.SetAuthURLParam("acr_values", provider.ACRMFA)

// claimsOf reads an ID token's acr and amr.
func claimsOf(t *testing.T, idt *oidc.IDToken) (string, []string) {
	t.Helper()
	var c struct {
		ACR string   `json:"acr"`
		AMR []string `json:"amr"`
	}
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c.ACR, c.AMR
}

// enrollTOTP takes alice through setting up an authenticator app at the
// MFA step of a sign-in, and returns the secret and the recovery codes.
func enrollTOTP(t *testing.T, s *server, b *browser, r *rp) (string, []string) {
	t.Helper()
	f, p := r.start(b, askMFA)
	secret, codes, p := enrollAt(t, s, b, b.signIn(s, p, alicePassword))
	p = b.decide(s, p, "allow")
	_, idt := r.redeem(t, s, p, f.state, f.verifier)
	acr, amr := claimsOf(t, idt)
	if acr != provider.ACRMFA || !slices.Contains(amr, "pwd") || !slices.Contains(amr, "otp") || !slices.Contains(amr, "mfa") {
		t.Fatalf("after password and a new authenticator app: acr %q amr %v", acr, amr)
	}
	return secret, codes
}

// enrollAt sets up an authenticator app on s's setup page p, and returns
// its secret, the recovery codes, and the page Continue leads to.
func enrollAt(t *testing.T, s *server, b *browser, p page) (string, []string, page) {
	t.Helper()
	m := secretOnPage.FindStringSubmatch(p.body)
	if p.url.Path != "/mfa" || p.url.Host != mustURL(s.issuer).Host || m == nil || !strings.Contains(p.body, `<img src="data:image/png;base64,`) ||
		!strings.Contains(p.body, "otpauth://totp/") {
		t.Fatalf("no authenticator setup after the password: %d %s %s", p.status, p.url, p.body)
	}
	secret := m[1]
	wrong := b.mfa(s, p, "enroll", "000000")
	if wrong.status != http.StatusUnauthorized || !strings.Contains(wrong.body, secret) {
		t.Fatalf("a wrong first code: %d %s", wrong.status, wrong.body)
	}
	p = b.mfa(s, wrong, "enroll", totpNow(t, s, secret))
	var codes []string
	for _, m := range codesOnPage.FindAllStringSubmatch(p.body, -1) {
		codes = append(codes, m[1])
	}
	if len(codes) != 10 {
		t.Fatalf("recovery codes after the setup: %d %s", p.status, p.body)
	}
	next := regexp.MustCompile(`href="([^"]+)">Continue`).FindStringSubmatch(p.body)
	if next == nil {
		t.Fatalf("no Continue on the recovery codes page: %s", p.body)
	}
	return secret, codes, b.get(s.issuer + html.UnescapeString(next[1]))
}

// TestTOTPSecondFactor: acceptance 1 — password then TOTP gives the MFA
// level; a code is accepted once; a recovery code works once.
func TestTOTPSecondFactor(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			s := start(t, be.open(t))
			r := newRP(t, s, "web", secret, rpRedirect)
			secret, codes := enrollTOTP(t, s, newBrowser(t), r)
			if stored, _ := s.store.ListFactors(t.Context(), "alice-sub"); len(stored) != 11 || strings.Contains(string(stored[0].Secret), secret) {
				t.Fatalf("stored factors: %d, or the TOTP secret in clear", len(stored))
			}

			// Another browser: the same code again (the same time step) is a replay.
			b := newBrowser(t)
			f, p := r.start(b, askMFA)
			p = b.signIn(s, p, alicePassword)
			if p.url.Path != "/mfa" || !strings.Contains(p.body, `value="totp"`) {
				t.Fatalf("no code asked after the password: %s %s", p.url, p.body)
			}
			again := b.mfa(s, p, "totp", usedCode(t, s, secret))
			if again.status != http.StatusUnauthorized || !strings.Contains(again.body, "used already") {
				t.Fatalf("a replayed code: %d %s", again.status, again.body)
			}
			if bad := b.mfa(s, again, "totp", "12345x"); bad.status != http.StatusUnauthorized || !strings.Contains(bad.body, "not right") {
				t.Fatalf("a malformed code: %d %s", bad.status, bad.body)
			}
			s.clock.Advance(30 * time.Second)
			expired, _ := totp.GenerateCode(secret, s.clock.Now().Add(-90*time.Second))
			if old := b.mfa(s, again, "totp", expired); old.status != http.StatusUnauthorized || !strings.Contains(old.body, "not right") {
				t.Fatalf("an expired code: %d %s", old.status, old.body)
			}
			p = b.mfa(s, again, "totp", totpNow(t, s, secret))
			_, idt := r.redeem(t, s, p, f.state, f.verifier) // consented before
			if acr, amr := claimsOf(t, idt); acr != provider.ACRMFA || !slices.Equal(amr, []string{"pwd", "otp", "mfa"}) {
				t.Errorf("password then TOTP: acr %q amr %v", acr, amr)
			}

			// A recovery code works once, typed any way.
			for i, tc := range []struct {
				code string
				ok   bool
			}{{codes[0], true}, {codes[0], false}, {strings.ToUpper(strings.ReplaceAll(codes[1], "-", "")), true}} {
				b := newBrowser(t)
				f, p := r.start(b, askMFA)
				p = b.mfa(s, b.signIn(s, p, alicePassword), "recovery", tc.code)
				if !tc.ok {
					if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "used already") {
						t.Errorf("recovery code %d used again: %d %s", i, p.status, p.body)
					}
					continue
				}
				_, idt := r.redeem(t, s, p, f.state, f.verifier)
				if acr, _ := claimsOf(t, idt); acr != provider.ACRMFA {
					t.Errorf("recovery code %d: acr %q", i, acr)
				}
			}
		})
	}
}

// TestStepUpAndRequireMFA: acceptance 3 — a password-level session asked
// for the MFA level gets the second factor asked, not the password; a
// client requiring MFA never gets a code for a password-only session.
func TestStepUpAndRequireMFA(t *testing.T) {
	s := start(t, backends()[0].open(t))
	s.register(t, provider.ClientSpec{ID: "strict", Name: "Strict App", Secret: secret, RedirectURIs: []string{rpRedirect},
		GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"}, RequireMFA: true, FirstParty: true})
	web := newRP(t, s, "web", secret, rpRedirect)
	totpSecret, _ := enrollTOTP(t, s, newBrowser(t), web)
	s.clock.Advance(30 * time.Second)

	b := newBrowser(t)
	f, p := web.start(b)
	_, idt := web.redeem(t, s, b.signIn(s, p, alicePassword), f.state, f.verifier)
	if acr, amr := claimsOf(t, idt); acr != provider.ACROneFactor || !slices.Equal(amr, []string{"pwd"}) {
		t.Fatalf("a password sign-in: acr %q amr %v", acr, amr)
	}

	// The strict client, silently: the session cannot pass.
	strict := newRP(t, s, "strict", secret, rpRedirect)
	strict.cfg.Scopes = []string{"openid"}
	_, p = strict.start(b, oauth2.SetAuthURLParam("prompt", "none"))
	if p.loc == nil || p.loc.Query().Get("error") != "interaction_required" {
		t.Fatalf("prompt=none for a client requiring MFA: %d %v %s", p.status, p.loc, p.body)
	}
	// Interactively: the second factor is asked, the password is not.
	f, p = strict.start(b)
	if p.url.Path != "/mfa" || strings.Contains(p.body, `name="password"`) {
		t.Fatalf("step-up for the strict client: %s %s", p.url, p.body)
	}
	// No way around the step: the consent form and the sign-in page give no code.
	if c := b.post(s.issuer+"/consent", url.Values{"interaction": {fields(p.body).Get("interaction")},
		"csrf": {fields(p.body).Get("csrf")}, "decision": {"allow"}}); c.loc != nil && c.loc.Query().Get("code") != "" {
		t.Fatal("the consent form issued a code before the second factor")
	}
	if l := b.get(s.issuer + "/login?interaction=" + fields(p.body).Get("interaction")); l.loc != nil && l.loc.Query().Get("code") != "" {
		t.Fatal("the sign-in page issued a code before the second factor")
	}
	before := sessionValue(b, s)
	p = b.mfa(s, p, "totp", totpNow(t, s, totpSecret))
	if after := sessionValue(b, s); after == "" || after == before {
		t.Error("the step-up kept the session cookie's secret")
	}
	_, idt = strict.redeem(t, s, p, f.state, f.verifier)
	if acr, amr := claimsOf(t, idt); acr != provider.ACRMFA || !slices.Equal(amr, []string{"pwd", "otp", "mfa"}) {
		t.Fatalf("after the step-up: acr %q amr %v", acr, amr)
	}
	// The stepped-up session now serves both silently.
	for _, c := range []*rp{strict, web} {
		f, p := c.start(b, oauth2.SetAuthURLParam("prompt", "none"), askMFA)
		if _, idt := c.redeem(t, s, p, f.state, f.verifier); idt == nil {
			t.Fatal("no ID token")
		}
	}
	// max_age still forces a new sign-in with the password.
	s.clock.Advance(2 * time.Minute)
	_, p = strict.start(b, oauth2.SetAuthURLParam("max_age", "60"))
	if !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("max_age passed: %s %s", p.url, p.body)
	}
}

// TestFederatedMFA: a connector that trusts the upstream's MFA takes its
// word (amr "mfa"); one that does not asks for a local second factor.
func TestFederatedMFA(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		t.Run(map[bool]string{true: "trusted", false: "local"}[trusted], func(t *testing.T) {
			up := startAt(t, "127.0.0.2", memory.New(time.Now), discard)
			conn := oidcConnector(up.issuer)
			conn.TrustUpstreamMFA = trusted
			down := start(t, memory.New(time.Now), withConnectors(conn))
			up.register(t, provider.ClientSpec{ID: "downstream", Secret: secret, RedirectURIs: []string{down.issuer + "/connectors/corp/callback"},
				GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid", "profile", "email"}, FirstParty: true, RequireMFA: true})
			b := newBrowser(t)
			r := newRP(t, down, "web", secret, rpRedirect)
			f, p := r.start(b, askMFA)
			p = b.button(down, p, "Corp SSO")
			_, _, p = enrollAt(t, up, b, b.signIn(up, p, alicePassword)) // MFA at the upstream
			if !trusted {
				if p.url.Host != mustURL(down.issuer).Host || p.url.Path != "/mfa" || !secretOnPage.MatchString(p.body) {
					t.Fatalf("an untrusted upstream's MFA was taken: %s %s", p.url, p.body)
				}
				_, _, p = enrollAt(t, down, b, p)
			}
			_, idt := r.redeem(t, down, b.decide(down, p, "allow"), f.state, f.verifier)
			acr, amr := claimsOf(t, idt)
			want := []string{"fed", "mfa"}
			if !trusted {
				want = []string{"fed", "otp", "mfa"}
			}
			if acr != provider.ACRMFA || !slices.Equal(amr, want) {
				t.Errorf("acr %q amr %v, want %v", acr, amr, want)
			}
		})
	}
}

// TestAdminResetsSecondFactors: operators list a user's factors (no
// secrets) and reset them; the user then sets up a new one at sign-in.
func TestAdminResetsSecondFactors(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(b)
	}), nil))
	s := startLogged(t, backends()[0].open(t), log)
	r := newRP(t, s, "web", secret, rpRedirect)
	totpSecret, codes := enrollTOTP(t, s, newBrowser(t), r)
	b := newBrowser(t)
	f, p := r.start(b, askMFA)
	r.redeem(t, s, b.mfa(s, b.signIn(s, p, alicePassword), "recovery", codes[3]), f.state, f.verifier)
	if n := counter(t, s, "oidcgate_mfa_total"); n < 2 { // the wrong first code and the right one
		t.Errorf("oidcgate_mfa_total = %v", n)
	}
	list := s.adminDo(t, "GET", "/admin/v1/users/alice-sub/factors")
	// Nine recovery codes: the used one is not listed.
	if list.status != 200 || strings.Count(string(list.body), `"kind":"recovery"`) != 9 || !strings.Contains(string(list.body), `"kind":"totp"`) ||
		strings.Contains(string(list.body), "secret") {
		t.Fatalf("factors: %d %s", list.status, list.body)
	}
	if r := s.adminDo(t, "DELETE", "/admin/v1/users/alice-sub/factors?kind=sms"); r.status != 400 {
		t.Errorf("an unknown kind: %d %s", r.status, r.body)
	}
	if r := s.adminDo(t, "DELETE", "/admin/v1/users/nobody/factors"); r.status != 404 {
		t.Errorf("an unknown user: %d %s", r.status, r.body)
	}
	// Removing the authenticator app takes the recovery codes with it.
	if r := s.adminDo(t, "DELETE", "/admin/v1/users/alice-sub/factors?kind=totp"); r.status != 200 || r.json(t)["removed"] != 11.0 {
		t.Fatalf("reset: %d %s", r.status, r.body)
	}
	b = newBrowser(t)
	_, p = r.start(b, askMFA)
	if p = b.signIn(s, p, alicePassword); !secretOnPage.MatchString(p.body) {
		t.Errorf("after the reset, no new setup is offered: %s", p.body)
	}
	// Each of those is an audit event, and no code or secret is logged.
	mu.Lock()
	logged := buf.String()
	mu.Unlock()
	for _, event := range []string{"audit=mfa.enrolled", "audit=mfa.recovery_codes_generated", "audit=mfa.recovery_code_used", "audit=mfa.reset"} {
		if !strings.Contains(logged, event) {
			t.Errorf("no %s in the log", event)
		}
	}
	if strings.Contains(logged, totpSecret) || strings.Contains(logged, codes[3]) || strings.Contains(logged, normal(codes[3])) {
		t.Error("a secret or recovery code was logged")
	}
}

func normal(code string) string { return strings.ReplaceAll(code, "-", "") }

// TestSecondFactorAttemptsAreLimited: wrong codes count per user like
// wrong passwords; past the limit even the right code waits.
func TestSecondFactorAttemptsAreLimited(t *testing.T) {
	s := start(t, backends()[0].open(t))
	r := newRP(t, s, "web", secret, rpRedirect)
	totpSecret, _ := enrollTOTP(t, s, newBrowser(t), r)
	s.clock.Advance(30 * time.Second)
	b := newBrowser(t)
	_, p := r.start(b, askMFA)
	p = b.signIn(s, p, alicePassword)
	for i := range 5 { // --login-limit
		if got := b.mfa(s, p, "totp", "000000"); got.status != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: %d %s", i, got.status, got.body)
		}
	}
	req, _ := http.NewRequest("POST", s.issuer+"/mfa", strings.NewReader(url.Values{"interaction": {fields(p.body).Get("interaction")},
		"csrf": {fields(p.body).Get("csrf")}, "method": {"totp"}, "code": {totpNow(t, s, totpSecret)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("the right code after the limit: %d (Retry-After %q)", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
