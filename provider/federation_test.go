package provider_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/connector"
	"github.com/oidcgate/oidcgate/provider/storage"
	"github.com/oidcgate/oidcgate/provider/storage/memory"
)

// The upstream identity provider in these tests is a second oidcgate on
// its own loopback address (127.0.0.2), so one browser keeps both
// providers' cookies apart, as it would for two hosts.

func withConnectors(cs ...connector.Config) option {
	return func(c *provider.Config) { c.Connectors = append(c.Connectors, cs...) }
}

// federation is a downstream oidcgate whose connector "corp" signs users
// in at an upstream oidcgate.
type federation struct {
	up, down *server
}

func oidcConnector(issuer string) connector.Config {
	return connector.Config{ID: "corp", Type: connector.TypeOIDC, Name: "Corp SSO",
		OIDC: &connector.OIDCConfig{Issuer: issuer, ClientID: "downstream", ClientSecret: secret, GetUserInfo: true,
			Timeout: 2 * time.Second}}
}

func federate(t *testing.T, downStore storage.Storage, opts ...option) *federation {
	return federateWith(t, downStore, true, opts...)
}

// federateWith: firstParty says whether the downstream skips the
// upstream's consent page.
func federateWith(t *testing.T, downStore storage.Storage, firstParty bool, opts ...option) *federation {
	t.Helper()
	up := startAt(t, "127.0.0.2", memory.New(time.Now), discard)
	down := start(t, downStore, append([]option{withConnectors(oidcConnector(up.issuer))}, opts...)...)
	up.register(t, provider.ClientSpec{ID: "downstream", Secret: secret, RedirectURIs: []string{down.issuer + "/connectors/corp/callback"},
		GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid", "profile", "email"}, FirstParty: firstParty})
	return &federation{up: up, down: down}
}

var buttonHref = regexp.MustCompile(`<a class="button secondary" href="([^"]+)">Sign in with ([^<]+)</a>`)

// button follows the sign-in page's button for the connector named name.
func (b *browser) button(s *server, p page, name string) page {
	b.t.Helper()
	for _, m := range buttonHref.FindAllStringSubmatch(p.body, -1) {
		if html.UnescapeString(m[2]) == name {
			return b.get(s.issuer + html.UnescapeString(m[1]))
		}
	}
	b.t.Fatalf("no %q button on the page: %d %s", name, p.status, p.body)
	return page{}
}

// federatedSignIn runs the code flow at the downstream, signing in at the
// upstream, and returns the downstream's tokens and verified ID token.
func (f *federation) signIn(t *testing.T, b *browser, extra ...oauth2.AuthCodeOption) (*oauth2.Token, *oidc.IDToken) {
	t.Helper()
	r := newRP(t, f.down, "web", secret, rpRedirect)
	state, nonce, verifier := random(), random(), oauth2.GenerateVerifier()
	p := b.get(r.cfg.AuthCodeURL(state, append([]oauth2.AuthCodeOption{oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)}, extra...)...))
	if len(extra) == 0 {
		p = b.button(f.down, p, "Corp SSO")
	}
	if p.url.Host != mustURL(f.up.issuer).Host {
		t.Fatalf("the button did not lead to the upstream: %s %d %s", p.url, p.status, p.body)
	}
	p = b.signIn(f.up, p, alicePassword)
	if strings.Contains(p.body, `value="allow"`) { // not once the user has consented
		p = b.decide(f.down, p, "allow")
	}
	tok, idt := r.redeem(t, f.down, p, state, verifier)
	if idt.Nonce != nonce {
		t.Fatalf("downstream ID token nonce %q, want %q", idt.Nonce, nonce)
	}
	return tok, idt
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func amrOf(t *testing.T, idt *oidc.IDToken) []string {
	var c struct {
		AMR []string `json:"amr"`
	}
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c.AMR
}

func TestFederationThroughUpstreamOIDCGate(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			f := federate(t, be.open(t))
			ctx := context.Background()

			tok, idt := f.signIn(t, newBrowser(t))
			sub := idt.Subject
			if sub == "" || sub == "alice-sub" {
				t.Fatalf("downstream sub %q: want a local sub of its own, not the upstream's", sub)
			}
			if amr := amrOf(t, idt); !slices.Contains(amr, "fed") || slices.Contains(amr, "pwd") {
				t.Errorf("amr %v, want fed", amr)
			}
			r := newRP(t, f.down, "web", secret, rpRedirect)
			ui, err := r.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatal(err)
			}
			var uc map[string]any
			ui.Claims(&uc)
			if ui.Subject != sub || ui.Email != "alice@example.com" || !ui.EmailVerified || uc["name"] != "Alice Example" {
				t.Errorf("userinfo %v", uc)
			}
			links, err := f.down.store.ListIdentities(ctx, sub)
			if err != nil || len(links) != 1 || links[0].ConnectorID != "corp" || links[0].Subject != "alice-sub" {
				t.Fatalf("linked identities %+v %v", links, err)
			}

			// A second sign-in, in another browser: the same local user.
			if _, idt2 := f.signIn(t, newBrowser(t)); idt2.Subject != sub {
				t.Errorf("second sign-in sub %q, want %q", idt2.Subject, sub)
			}

			// The upstream changes the email and name: same sub, new claims.
			u, _ := f.up.store.GetUser(ctx, "alice-sub")
			u.Claims["email"], u.Claims["name"] = "alice@new.example", "Alice Renamed"
			if err := f.up.store.UpdateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			tok3, idt3 := f.signIn(t, newBrowser(t))
			if idt3.Subject != sub {
				t.Fatalf("after the upstream's email change sub %q, want %q", idt3.Subject, sub)
			}
			ui, err = r.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok3))
			if err != nil {
				t.Fatal(err)
			}
			ui.Claims(&uc)
			if ui.Email != "alice@new.example" || uc["name"] != "Alice Renamed" {
				t.Errorf("claims did not refresh at sign-in: %v", uc)
			}
			if n := counter(t, f.down, "oidcgate_signins_total"); n != 3 {
				t.Errorf("oidcgate_signins_total = %v, want 3", n)
			}
		})
	}
}

func TestFederationIDPHintGoesStraightToTheConnector(t *testing.T) {
	f := federate(t, backends()[0].open(t))
	for _, name := range []string{"idp_hint", "kc_idp_hint"} {
		_, idt := f.signIn(t, newBrowser(t), oauth2.SetAuthURLParam(name, "corp"))
		if !slices.Contains(amrOf(t, idt), "fed") {
			t.Errorf("%s: amr %v", name, amrOf(t, idt))
		}
	}
}

func TestFederationClientDefaultConnector(t *testing.T) {
	f := federate(t, backends()[0].open(t))
	f.down.register(t, provider.ClientSpec{ID: "corp-app", Secret: secret, RedirectURIs: []string{rpRedirect},
		GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"}, FirstParty: true, DefaultConnector: "corp"})
	b := newBrowser(t)
	p := b.get(f.down.issuer + "/authorize?" + url.Values{"client_id": {"corp-app"}, "response_type": {"code"},
		"scope": {"openid"}, "redirect_uri": {rpRedirect}, "state": {"s1"}}.Encode())
	if p.url.Host != mustURL(f.up.issuer).Host || !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("the client's default connector was not used: %s %d", p.url, p.status)
	}
	p = b.signIn(f.up, p, alicePassword)
	codeAt(t, f.down, p, "s1")
}

// stopBrowser is a browser that stops before following a redirect to
// host, so a test can read (and tamper with) what the redirect carries.
func stopBrowser(t *testing.T, host string) *browser {
	return stopWhen(t, func(u *url.URL) bool { return u.Host == host })
}

// stopWhen is a browser that stops before following a redirect to a URL
// stop matches.
func stopWhen(t *testing.T, stop func(*url.URL) bool) *browser {
	b := newBrowser(t)
	next := b.c.CheckRedirect
	b.c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if stop(req.URL) {
			return errAtRP
		}
		return next(req, via)
	}
	return b
}

// atUpstream starts a sign-in at the downstream and stops at the redirect
// to the upstream: the browser, and that redirect's URL.
func (f *federation) atUpstream(t *testing.T) (*browser, *url.URL) {
	t.Helper()
	b := stopBrowser(t, mustURL(f.up.issuer).Host)
	r := newRP(t, f.down, "web", secret, rpRedirect)
	p := b.get(r.cfg.AuthCodeURL("st", oidc.Nonce("n"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	p = b.button(f.down, p, "Corp SSO")
	if p.loc == nil || p.loc.Host != mustURL(f.up.issuer).Host {
		t.Fatalf("no redirect to the upstream: %d %s", p.status, p.body)
	}
	return b, p.loc
}

// callback sends the browser to the downstream's callback with q.
func (f *federation) callback(b *browser, q url.Values) page {
	return b.get(f.down.issuer + "/connectors/corp/callback?" + q.Encode())
}

func sessionCookie(b *browser, s *server) bool { return sessionValue(b, s) != "" }

func TestFederationUpstreamErrorIsShownEscaped(t *testing.T) {
	f := federate(t, backends()[0].open(t))
	b, to := f.atUpstream(t)
	p := f.callback(b, url.Values{"state": {to.Query().Get("state")}, "error": {"access_denied"},
		"error_description": {`<script>alert("x")</script> the user said no`}})
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "access_denied") ||
		!strings.Contains(p.body, "&lt;script&gt;") || strings.Contains(p.body, "<script>alert") {
		t.Fatalf("upstream error page: %d %s", p.status, p.body)
	}
	if sessionCookie(b, f.down) {
		t.Error("a session was started by a failed sign-in")
	}
}

func TestFederationUpstreamConsentDenied(t *testing.T) {
	f := federateWith(t, backends()[0].open(t), false)
	b := newBrowser(t)
	r := newRP(t, f.down, "web", secret, rpRedirect)
	p := b.get(r.cfg.AuthCodeURL("st", oidc.Nonce("n"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	p = b.button(f.down, p, "Corp SSO")
	p = b.signIn(f.up, p, alicePassword)
	p = b.decide(f.up, p, "deny") // the upstream redirects back with error=access_denied
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "Corp SSO did not sign you in: access_denied") {
		t.Fatalf("after denying at the upstream: %d %s", p.status, p.body)
	}
	if sessionCookie(b, f.down) {
		t.Error("a session was started by a denied sign-in")
	}
}

func TestAdminConnectorsAndIdentities(t *testing.T) {
	f := federate(t, backends()[0].open(t))
	_, idt := f.signIn(t, newBrowser(t))
	get := func(path string) (int, string) {
		r := f.down.adminDo(t, "GET", path)
		return r.status, string(r.body)
	}
	if code, body := get("/admin/v1/connectors"); code != 200 || !strings.Contains(body, `"id":"corp"`) || !strings.Contains(body, `"healthy":true`) {
		t.Errorf("connectors: %d %s", code, body)
	}
	code, body := get("/admin/v1/users/" + idt.Subject + "/identities")
	if code != 200 || !strings.Contains(body, `"connector":"corp"`) || !strings.Contains(body, `"subject":"alice-sub"`) {
		t.Fatalf("identities: %d %s", code, body)
	}
	del := func(q string) int {
		return f.down.adminDo(t, "DELETE", "/admin/v1/users/"+idt.Subject+"/identities?"+q).status
	}
	if c := del("connector=corp"); c != http.StatusBadRequest {
		t.Errorf("unlink without a subject: %d", c)
	}
	if c := del("connector=corp&subject=alice-sub"); c != http.StatusNoContent {
		t.Errorf("unlink: %d", c)
	}
	if c := del("connector=corp&subject=alice-sub"); c != http.StatusNotFound {
		t.Errorf("second unlink: %d", c)
	}
	// Unlinked, the upstream identity's next sign-in links afresh: to the
	// user made for it, which still exists (delete that user to start over).
	if _, idt2 := f.signIn(t, newBrowser(t)); idt2.Subject != idt.Subject {
		t.Errorf("after the unlink sub %q, want the user made for it, %q", idt2.Subject, idt.Subject)
	}
}
