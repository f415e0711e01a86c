package provider_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/connector"
	"github.com/oidcgate/oidcgate/provider/connector/ldaptest"
)

// ldapConnector is the test directory (a real slapd) as a connector for
// usernames @corp.example.
func ldapConnector(s *ldaptest.Server, allowedGroups ...string) connector.Config {
	return connector.Config{ID: "corp-ldap", Type: connector.TypeLDAP, Name: "Corp directory", UsernameDomains: []string{"corp.example"},
		AllowedGroups: allowedGroups,
		LDAP: &connector.LDAPConfig{URL: s.URL, StartTLS: true, RootCA: s.CAFile, BindDN: ldaptest.ServiceDN, BindPassword: ldaptest.ServicePassword,
			UserSearch: connector.LDAPUserSearch{BaseDN: "ou=people," + ldaptest.Base, Filter: "(&(objectClass=inetOrgPerson)(uid={username}))"},
			GroupSearch: connector.LDAPGroupSearch{BaseDN: "ou=groups," + ldaptest.Base, Filter: "(objectClass=groupOfNames)",
				UserAttr: "DN", GroupAttr: "member"}}}
}

// formSignIn fills the sign-in form with username and password and
// returns the page it ends on.
func formSignIn(t *testing.T, s *server, b *browser, clientID, username, password string) page {
	t.Helper()
	r := newRP(t, s, clientID, secret, rpRedirect)
	p := b.get(r.cfg.AuthCodeURL("st", oidc.Nonce("n"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	f := fields(p.body)
	f.Set("username", username)
	f.Set("password", password)
	return b.post(s.issuer+"/login", f)
}

func TestLDAPSignInThroughTheForm(t *testing.T) {
	dir := ldaptest.Start(t)
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			s := start(t, be.open(t), withConnectors(ldapConnector(dir)))
			s.register(t, provider.ClientSpec{ID: "intranet", Secret: secret, RedirectURIs: []string{rpRedirect}, FirstParty: true,
				GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid", "profile", "email", "groups"}})
			ctx := context.Background()
			r := newRP(t, s, "intranet", secret, rpRedirect)
			r.cfg.Scopes = []string{"openid", "profile", "email", "groups"}
			var sub string
			for i := range 2 {
				b := newBrowser(t)
				verifier := oauth2.GenerateVerifier()
				p := b.get(r.cfg.AuthCodeURL("st", oidc.Nonce("n"), oauth2.S256ChallengeOption(verifier)))
				if strings.Contains(p.body, "Corp directory") {
					t.Error("an ldap connector got a button: it is served by the form")
				}
				f := fields(p.body)
				f.Set("username", "jane@corp.example")
				f.Set("password", ldaptest.JanePassword)
				p = b.post(s.issuer+"/login", f)
				tok, idt := r.redeem(t, s, p, "st", verifier)
				if amr := amrOf(t, idt); !slices.Equal(amr, []string{"pwd"}) {
					t.Errorf("amr %v, want [pwd]", amr)
				}
				if i == 0 {
					sub = idt.Subject
				} else if idt.Subject != sub {
					t.Errorf("second sign-in sub %q, want %q", idt.Subject, sub)
				}
				ui, err := r.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
				if err != nil {
					t.Fatal(err)
				}
				var uc struct {
					Email    string   `json:"email"`
					Name     string   `json:"name"`
					Username string   `json:"preferred_username"`
					Groups   []string `json:"groups"`
				}
				ui.Claims(&uc)
				slices.Sort(uc.Groups)
				if uc.Email != "jane@corp.example" || uc.Name != "Jane Doe" || uc.Username != "jane" || !slices.Equal(uc.Groups, []string{"admins", "developers"}) {
					t.Errorf("userinfo %+v", uc)
				}
			}
			// Local users still sign in at the same form.
			b := newBrowser(t)
			if p := formSignIn(t, s, b, "web", "alice", alicePassword); !strings.Contains(p.body, `value="allow"`) {
				t.Errorf("local sign-in beside LDAP: %d %s", p.status, p.body)
			}
		})
	}
}

func TestLDAPFailuresAtTheForm(t *testing.T) {
	dir := ldaptest.Start(t)
	s := start(t, backends()[0].open(t), withConnectors(ldapConnector(dir, "admins")))

	t.Run("wrong password costs the local decoy and counts against the limit", func(t *testing.T) {
		before := provider.DecoyChecks(s.p)
		for i := range 5 {
			p := formSignIn(t, s, newBrowser(t), "web", "jane@corp.example", "wrong-"+string(rune('a'+i)))
			if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Invalid username or password.") {
				t.Fatalf("attempt %d: %d %s", i, p.status, p.body)
			}
		}
		if n := provider.DecoyChecks(s.p) - before; n != 5 {
			t.Errorf("%d decoy checks for 5 refused directory sign-ins, want 5", n)
		}
		p := formSignIn(t, s, newBrowser(t), "web", "jane@corp.example", ldaptest.JanePassword)
		if p.status != http.StatusTooManyRequests {
			t.Errorf("sixth attempt: %d, want 429", p.status)
		}
	})

	t.Run("unknown user and injection look the same", func(t *testing.T) {
		for _, u := range []string{"nobody@corp.example", "j*@corp.example", "*@corp.example"} {
			p := formSignIn(t, s, newBrowser(t), "web", u, ldaptest.BobPassword)
			if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Invalid username or password.") {
				t.Errorf("%q: %d %s", u, p.status, p.body)
			}
		}
	})

	t.Run("a user outside allowed_groups sees why", func(t *testing.T) {
		b := newBrowser(t)
		p := formSignIn(t, s, b, "web", "bob@corp.example", ldaptest.BobPassword)
		if p.status != http.StatusForbidden || !strings.Contains(p.body, "not in a group allowed here") || sessionCookie(b, s) {
			t.Errorf("bob (developers only): %d %s", p.status, p.body)
		}
	})

	t.Run("directory down: 503 page, provider still ready", func(t *testing.T) {
		dir.Stop()
		b := newBrowser(t)
		p := formSignIn(t, s, b, "web", "bob@corp.example", ldaptest.BobPassword)
		if p.status != http.StatusServiceUnavailable || !strings.Contains(p.body, "Corp directory cannot be reached") || sessionCookie(b, s) {
			t.Errorf("directory down: %d %s", p.status, p.body)
		}
		if err := s.p.Ready(context.Background()); err != nil {
			t.Errorf("a connector outage made the provider unready: %v", err)
		}
		if n := counter(t, s, "oidcgate_signins_total"); n == 0 {
			t.Error("no sign-in counted")
		}
	})
}

func TestPasswordConnectorServesTheWholeForm(t *testing.T) {
	dir := ldaptest.Start(t)
	cc := ldapConnector(dir)
	cc.UsernameDomains = nil
	s := start(t, backends()[0].open(t), withConnectors(cc), func(c *provider.Config) { c.PasswordConnector = "corp-ldap" })
	if p := formSignIn(t, s, newBrowser(t), "web", "jane", ldaptest.JanePassword); !strings.Contains(p.body, `value="allow"`) {
		t.Errorf("jane at the directory: %d %s", p.status, p.body)
	}
	// The local users are not asked any more.
	if p := formSignIn(t, s, newBrowser(t), "web", "alice", alicePassword); p.status != http.StatusUnauthorized {
		t.Errorf("alice (local) with the form served by LDAP: %d", p.status)
	}
}
