package connector_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/oidcgate/oidcgate/provider/connector"
	"github.com/oidcgate/oidcgate/provider/connector/ldaptest"
)

// directory is an ldap connector's settings for the test directory.
func directory(s *ldaptest.Server) connector.LDAPConfig {
	return connector.LDAPConfig{URL: s.URL, StartTLS: true, RootCA: s.CAFile, BindDN: ldaptest.ServiceDN, BindPassword: ldaptest.ServicePassword,
		UserSearch: connector.LDAPUserSearch{BaseDN: "ou=people," + ldaptest.Base, Filter: "(&(objectClass=inetOrgPerson)(uid={username}))"},
		GroupSearch: connector.LDAPGroupSearch{BaseDN: "ou=groups," + ldaptest.Base, Filter: "(objectClass=groupOfNames)",
			UserAttr: "DN", GroupAttr: "member"}}
}

func newLDAP(t *testing.T, cfg connector.LDAPConfig) *connector.LDAP {
	t.Helper()
	if err := (connector.Config{ID: "corp-ldap", Type: connector.TypeLDAP, LDAP: &cfg}).Validate(); err != nil {
		t.Fatal(err)
	}
	l, err := connector.NewLDAP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLDAPLoginWithGroups(t *testing.T) {
	s := ldaptest.Start(t)
	ctx := context.Background()
	ldaps := directory(s)
	ldaps.URL, ldaps.StartTLS = s.LDAPS, false
	posix := directory(s)
	posix.GroupSearch = connector.LDAPGroupSearch{BaseDN: "ou=groups," + ldaptest.Base, Filter: "(objectClass=posixGroup)",
		UserAttr: "uid", GroupAttr: "memberUid"}
	for _, tc := range []struct {
		name   string
		cfg    connector.LDAPConfig
		groups []string
	}{
		{"StartTLS, member groups", directory(s), []string{"admins", "developers"}},
		{"LDAPS, member groups", ldaps, []string{"admins", "developers"}},
		{"memberUid groups", posix, []string{"ops"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLDAP(t, tc.cfg)
			id, err := l.Login(ctx, "jane", ldaptest.JanePassword)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(id.Groups)
			if id.Subject == "" || id.Email != "jane@corp.example" || !id.EmailVerified || id.Name != "Jane Doe" ||
				id.PreferredUsername != "jane" || !slices.Equal(id.Groups, tc.groups) {
				t.Errorf("identity %+v, want groups %v", id, tc.groups)
			}
			again, _ := l.Login(ctx, "jane", ldaptest.JanePassword)
			if again.Subject != id.Subject {
				t.Errorf("subject (entryUUID) changed between sign-ins: %q %q", id.Subject, again.Subject)
			}
			if err := l.Check(ctx); err != nil {
				t.Errorf("health check: %v", err)
			}
		})
	}
}

func TestLDAPRefusals(t *testing.T) {
	s := ldaptest.Start(t)
	l := newLDAP(t, directory(s))
	ctx := context.Background()
	for _, tc := range []struct{ name, username, password string }{
		{"wrong password", "jane", "not-her-password"},
		{"unknown user", "nobody", ldaptest.JanePassword},
		// An empty password is an unauthenticated bind, which succeeds.
		{"empty password", "jane", ""},
		// LDAP injection (RFC 4515 escaping): unescaped, each of these
		// would match jane's entry and sign in with her password.
		{"wildcard", "j*", ldaptest.JanePassword},
		{"filter injection", "jane)(uid=*", ldaptest.JanePassword},
		{"any user", "*", ldaptest.JanePassword},
		{"NUL", "jane\x00", ldaptest.JanePassword},
		{"another user's password", "bob", ldaptest.JanePassword},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if id, err := l.Login(ctx, tc.username, tc.password); !errors.Is(err, connector.ErrBadCredentials) {
				t.Errorf("Login(%q) = %+v, %v; want ErrBadCredentials", tc.username, id, err)
			}
		})
	}
	// A wrong service password is a configuration error, not the user's.
	bad := directory(s)
	bad.BindPassword = "wrong"
	if _, err := newLDAP(t, bad).Login(ctx, "jane", ldaptest.JanePassword); err == nil || errors.Is(err, connector.ErrBadCredentials) {
		t.Errorf("a refused service bind: %v", err)
	}
	// A certificate from an unknown CA is refused.
	untrusted := directory(s)
	untrusted.RootCA = ""
	if _, err := newLDAP(t, untrusted).Login(ctx, "jane", ldaptest.JanePassword); !errors.Is(err, connector.ErrUnavailable) {
		t.Errorf("StartTLS to an untrusted certificate: %v", err)
	}
}

func TestLDAPDown(t *testing.T) {
	s := ldaptest.Start(t)
	l := newLDAP(t, directory(s))
	s.Stop()
	if _, err := l.Login(context.Background(), "jane", ldaptest.JanePassword); !errors.Is(err, connector.ErrUnavailable) {
		t.Errorf("directory down: %v, want ErrUnavailable", err)
	}
	if err := l.Check(context.Background()); err == nil {
		t.Error("the health check passes with the directory down")
	}
}

func TestLDAPSettings(t *testing.T) {
	for name, cfg := range map[string]connector.LDAPConfig{
		"plain without the flag": {URL: "ldap://127.0.0.1:389", UserSearch: connector.LDAPUserSearch{BaseDN: "dc=x"}},
		"no base DN":             {URL: "ldaps://127.0.0.1"},
		"filter without slot":    {URL: "ldaps://127.0.0.1", UserSearch: connector.LDAPUserSearch{BaseDN: "dc=x", Filter: "(uid=jane)"}},
		"StartTLS on ldaps":      {URL: "ldaps://127.0.0.1", StartTLS: true, UserSearch: connector.LDAPUserSearch{BaseDN: "dc=x"}},
		"other scheme":           {URL: "http://127.0.0.1", UserSearch: connector.LDAPUserSearch{BaseDN: "dc=x"}},
	} {
		if err := (connector.Config{ID: "l", Type: connector.TypeLDAP, LDAP: &cfg}).Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ok := connector.LDAPConfig{URL: "ldap://127.0.0.1", InsecureNoTLS: true, UserSearch: connector.LDAPUserSearch{BaseDN: "dc=x"}}
	if err := (connector.Config{ID: "l", Type: connector.TypeLDAP, LDAP: &ok}).Validate(); err != nil {
		t.Errorf("plain with insecure_no_tls: %v", err)
	}
}
