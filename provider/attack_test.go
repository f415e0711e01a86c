package provider_test

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage/memory"
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
		{"Sec-Fetch-Site": "same-site", "Origin": "https://sub." + strings.TrimPrefix(s.issuer, "http://")},
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
	// The same form from the attacker's own browser, same-origin, works —
	// also as Chromium sends it from a page with a strict referrer policy.
	req, _ := http.NewRequest("POST", s.issuer+"/login", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "null")
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

// TestClientSecretsSaltedAndNoEnumeration: two clients given one secret
// store different hashes; a record from before salts still authenticates;
// and a known client tried with the wrong method is told nothing more than
// a wrong secret would be.
func TestClientSecretsSaltedAndNoEnumeration(t *testing.T) {
	s := start(t, backends()[0].open(t))
	ctx := context.Background()
	a, _ := s.store.GetClient(ctx, "svc")
	b, _ := s.store.GetClient(ctx, "opaque") // same secret
	if len(a.SecretSalt) == 0 || string(a.SecretHash) == string(b.SecretHash) {
		t.Errorf("one secret, one hash: %x %x", a.SecretHash, b.SecretHash)
	}
	legacy := sha256.Sum256([]byte(secret))
	old, _, _ := provider.ClientSpec{ID: "legacy", Secret: secret, Scopes: []string{"read"}, Audiences: []string{api}}.Build(time.Now())
	old.SecretSalt, old.SecretHash = nil, legacy[:]
	if err := s.store.CreateClient(ctx, old); err != nil {
		t.Fatal(err)
	}
	if r := s.post(t, "/token", "grant_type=client_credentials", "legacy:"+secret); r.status != 200 {
		t.Errorf("legacy unsalted record: %d %s", r.status, r.body)
	}
	wrongMethod := s.post(t, "/token", "grant_type=client_credentials&client_id=svc&client_secret="+secret, "")
	wrongSecret := s.post(t, "/token", "grant_type=client_credentials&client_id=svc-post&client_secret=nope-nope-nope", "")
	if wrongMethod.status != 401 || string(wrongMethod.body) != string(wrongSecret.body) {
		t.Errorf("wrong method %d %s vs wrong secret %d %s", wrongMethod.status, wrongMethod.body, wrongSecret.status, wrongSecret.body)
	}
}

// idTokenOf runs a sign-in in b and returns the ID token it ends with.
func idTokenOf(t *testing.T, s *server, b *browser) string {
	t.Helper()
	tok := s.grant(t, b, "openid")
	id, _ := tok["id_token"].(string)
	if id == "" {
		t.Fatalf("no ID token: %v", tok)
	}
	return id
}

// TestEndSessionForeignHint: a sign-out link carrying an ID token of
// another session (the attacker's own) asks the victim to confirm instead
// of ending the victim's session; the victim's own hint signs out at once.
func TestEndSessionForeignHint(t *testing.T) {
	s := start(t, backends()[0].open(t))
	attacker, victim := newBrowser(t), newBrowser(t)
	foreign := idTokenOf(t, s, attacker)
	own := idTokenOf(t, s, victim)
	p := victim.get(s.issuer + "/end_session?" + url.Values{"id_token_hint": {foreign}}.Encode())
	if p.status != 200 || !strings.Contains(p.body, `name="confirm"`) {
		t.Fatalf("a foreign hint: %d, want the confirmation page", p.status)
	}
	if p := victim.get(authURL(s, map[string]string{"prompt": "none"})); p.loc == nil || p.loc.Query().Get("code") == "" {
		t.Fatalf("the victim was signed out by a foreign hint: %v", p.loc)
	}
	p = victim.get(s.issuer + "/end_session?" + url.Values{"id_token_hint": {own}}.Encode())
	if p.status != 200 || strings.Contains(p.body, `name="confirm"`) {
		t.Fatalf("the victim's own hint: %d %s", p.status, p.body)
	}
	errorAt(t, s, victim.get(authURL(s, map[string]string{"prompt": "none"})), "st", "login_required")
}

// TestRefreshTokenNotActiveForResourceServers: a resource server (the
// edge) asking about a refresh token hears active:false — in process too —
// while the client holding it may still learn it is live.
func TestRefreshTokenNotActiveForResourceServers(t *testing.T) {
	s := start(t, backends()[0].open(t))
	rt := s.grant(t, newBrowser(t), "openid offline_access")["refresh_token"].(string)
	if m := s.introspect(t, "resource-server:"+secret, rt); m["active"] != false {
		t.Errorf("a resource server sees a live refresh token: %v", m)
	}
	if res, err := s.p.Inspect(context.Background(), rt); err != nil || res.Active {
		t.Errorf("the in-process edge sees a live refresh token: %+v %v", res, err)
	}
	if m := s.introspect(t, "web:"+secret, rt); m["active"] != true || m["token_use"] != "refresh_token" {
		t.Errorf("its own client: %v", m)
	}
}

// TestDuplicateAuthorizationRefused: two Authorization headers leave it to
// each hop which one counts: 400.
func TestDuplicateAuthorizationRefused(t *testing.T) {
	s := start(t, backends()[0].open(t))
	req, _ := http.NewRequest("POST", s.issuer+"/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("svc", secret)
	req.Header.Add("Authorization", "Basic b3RoZXI6c2VjcmV0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("two Authorization headers: %d, want 400", resp.StatusCode)
	}
}

// TestAdminRefusesForeignHost: a page rebinding its DNS name to loopback
// reaches the admin listener with its own Host: refused.
func TestAdminRefusesForeignHost(t *testing.T) {
	s := start(t, backends()[0].open(t))
	req, _ := http.NewRequest("GET", s.admin+"/admin/v1/clients", nil)
	req.Header.Set("Authorization", "Bearer "+s.adminToken)
	req.Host = "attacker.example:8081"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("admin API for Host attacker.example: %d, want 421", resp.StatusCode)
	}
	req.Host = "localhost"
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("admin API for Host localhost: %v %v", resp, err)
	}
}

// TestHSTSOnHTTPSIssuer: an https issuer's public answers carry
// Strict-Transport-Security; a loopback http one's do not.
func TestHSTSOnHTTPSIssuer(t *testing.T) {
	s := start(t, backends()[0].open(t))
	if r := do(t, "GET", s.issuer+"/jwks", "", "", ""); r.header.Get("Strict-Transport-Security") != "" {
		t.Error("HSTS on an http issuer")
	}
	p := bareProvider(t, "https://id.example.com", memory.New(time.Now))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: p.Public()}
	go srv.Serve(ln)
	defer srv.Shutdown()
	r := do(t, "GET", "http://"+ln.Addr().String()+"/jwks", "", "", "")
	if got := r.header.Get("Strict-Transport-Security"); r.status != 200 || got != "max-age=31536000" {
		t.Errorf("%d, Strict-Transport-Security = %q", r.status, got)
	}
}

// TestAuthorizeBoundsWhatItStores: /authorize needs no credentials, so
// what it stores is bounded: long free-form parameters are refused, and so
// are pending requests past the per-IP cap.
func TestAuthorizeBoundsWhatItStores(t *testing.T) {
	s := start(t, backends()[0].open(t), func(c *provider.Config) { c.MaxPendingPerIP = 3 })
	b := newBrowser(t)
	for _, name := range []string{"nonce", "login_hint"} {
		errorAt(t, s, b.get(authURL(s, map[string]string{name: strings.Repeat("n", 2049)})), "st", "invalid_request")
	}
	long := strings.Repeat("s", 2049)
	p := b.get(authURL(s, map[string]string{"state": long}))
	if p.loc == nil || p.loc.Query().Get("error") != "invalid_request" {
		t.Errorf("a 2 KB+ state: %v", p.loc)
	}
	for i := range 3 {
		if p := b.get(authURL(s, nil)); !strings.Contains(p.body, `name="password"`) {
			t.Fatalf("pending request %d: %d", i+1, p.status)
		}
	}
	errorAt(t, s, b.get(authURL(s, nil)), "st", "temporarily_unavailable")
}

// TestFailedSignInsAreLogged: guesses and the lock-out they cause are in
// the log, the username quoted (no log injection), never the password.
func TestFailedSignInsAreLogged(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(b)
	}), nil))
	s := startLogged(t, backends()[0].open(t), log)
	b := newBrowser(t)
	login := b.get(authURL(s, nil))
	f := fields(login.body)
	f.Set("username", "mallory\nforged=entry")
	f.Set("password", "guess-password-1")
	for range 6 {
		b.post(s.issuer+"/login", f)
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, "sign-in failed") || !strings.Contains(out, "too many attempts") {
		t.Errorf("no failure or lock-out logged:\n%s", out)
	}
	if strings.Contains(out, "guess-password-1") || strings.Contains(out, "\nforged=entry") {
		t.Errorf("the log holds the password or an injected line:\n%s", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
