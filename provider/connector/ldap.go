package connector

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// LDAPConfig is an `ldap` connector: the sign-in form's username and
// password checked against a directory.
type LDAPConfig struct {
	// URL is ldaps://host[:636], or ldap://host[:389] with StartTLS (or,
	// with InsecureNoTLS, in the clear).
	URL                string `yaml:"url"`
	StartTLS           bool   `yaml:"start_tls"`
	InsecureNoTLS      bool   `yaml:"insecure_no_tls"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	RootCA             string `yaml:"root_ca"` // PEM file of the CA the server's certificate is checked against
	// BindDN and BindPassword are the service account that searches.
	BindDN           string        `yaml:"bind_dn"`
	BindPassword     string        `yaml:"bind_password"`
	BindPasswordFile string        `yaml:"bind_password_file"`
	Timeout          time.Duration `yaml:"timeout"`

	UserSearch  LDAPUserSearch  `yaml:"user_search"`
	GroupSearch LDAPGroupSearch `yaml:"group_search"`
}

// LDAPUserSearch finds the user's entry.
type LDAPUserSearch struct {
	BaseDN string `yaml:"base_dn"`
	// Filter is a template: {username} is replaced by the typed username,
	// escaped (RFC 4515). Default: (uid={username}).
	Filter string `yaml:"filter"`
	Scope  string `yaml:"scope"` // sub (default) or one
	// Attributes: IDAttr is the stable subject (default entryUUID);
	// the others fill the claims.
	IDAttr       string `yaml:"id_attr"`
	UsernameAttr string `yaml:"username_attr"` // default uid
	EmailAttr    string `yaml:"email_attr"`    // default mail
	NameAttr     string `yaml:"name_attr"`     // default cn
}

// LDAPGroupSearch finds the user's groups: entries under BaseDN matching
// Filter whose GroupAttr holds the user's UserAttr (DN for the entry's
// DN). member style: user_attr DN, group_attr member; posixGroup style:
// user_attr uid, group_attr memberUid.
type LDAPGroupSearch struct {
	BaseDN    string `yaml:"base_dn"` // empty: no groups
	Filter    string `yaml:"filter"`  // default (objectClass=*)
	Scope     string `yaml:"scope"`
	UserAttr  string `yaml:"user_attr"`  // default DN
	GroupAttr string `yaml:"group_attr"` // default member
	NameAttr  string `yaml:"name_attr"`  // default cn
}

func (c *LDAPConfig) validate() error {
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case err != nil || u.Host == "":
		errs = append(errs, fmt.Errorf("url %q is not ldap://host or ldaps://host", c.URL))
	case u.Scheme == "ldaps":
		if c.StartTLS {
			errs = append(errs, errors.New("start_tls is for ldap:// URLs; ldaps:// is TLS already"))
		}
	case u.Scheme == "ldap":
		if !c.StartTLS && !c.InsecureNoTLS {
			errs = append(errs, errors.New("an ldap:// URL needs start_tls: true (or insecure_no_tls: true to send passwords in the clear)"))
		}
	default:
		errs = append(errs, fmt.Errorf("url %q must be ldaps:// or ldap://", c.URL))
	}
	if c.BindPassword != "" && c.BindPasswordFile != "" {
		errs = append(errs, errors.New("set bind_password or bind_password_file, not both"))
	}
	if c.UserSearch.BaseDN == "" {
		errs = append(errs, errors.New("user_search.base_dn is required"))
	}
	if f := c.UserSearch.Filter; f != "" && !strings.Contains(f, "{username}") {
		errs = append(errs, errors.New("user_search.filter must contain {username}"))
	}
	for name, s := range map[string]string{"user_search.scope": c.UserSearch.Scope, "group_search.scope": c.GroupSearch.Scope} {
		if s != "" && s != "sub" && s != "one" {
			errs = append(errs, fmt.Errorf("%s must be sub or one", name))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// LDAP checks passwords against a directory: a service bind, a search for
// the user's entry, a bind as that entry with the password, then the
// group search. One connection per sign-in.
type LDAP struct {
	cfg          LDAPConfig
	bindPassword string
	tls          *tls.Config
	timeout      time.Duration
}

// NewLDAP builds the connector; nothing is dialled until it is used.
func NewLDAP(cfg LDAPConfig) (*LDAP, error) {
	pw, err := secret("bind_password", cfg.BindPassword, cfg.BindPasswordFile)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.URL) // validated
	tc := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify}
	if cfg.RootCA != "" {
		pem, err := os.ReadFile(cfg.RootCA)
		if err != nil {
			return nil, fmt.Errorf("root_ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("root_ca %s: no PEM certificate in it", cfg.RootCA)
		}
	}
	us, gs := &cfg.UserSearch, &cfg.GroupSearch
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&us.Filter, "(uid={username})")
	def(&us.IDAttr, "entryUUID")
	def(&us.UsernameAttr, "uid")
	def(&us.EmailAttr, "mail")
	def(&us.NameAttr, "cn")
	def(&gs.Filter, "(objectClass=*)")
	def(&gs.UserAttr, "DN")
	def(&gs.GroupAttr, "member")
	def(&gs.NameAttr, "cn")
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = defaultTimeout
	}
	return &LDAP{cfg: cfg, bindPassword: pw, tls: tc, timeout: timeout}, nil
}

// dial connects, upgrades to TLS when configured, and binds as the service
// account. Every operation on the connection ends within the timeout.
func (l *LDAP) dial(ctx context.Context) (*ldap.Conn, error) {
	deadline := time.Now().Add(l.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	dialer := &net.Dialer{Deadline: deadline}
	conn, err := ldap.DialURL(l.cfg.URL, ldap.DialWithDialer(dialer), ldap.DialWithTLSConfig(l.tls))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	conn.SetTimeout(time.Until(deadline))
	if l.cfg.StartTLS {
		if err := conn.StartTLS(l.tls); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%w: StartTLS: %v", ErrUnavailable, err)
		}
	}
	if err := l.serviceBind(conn); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func (l *LDAP) serviceBind(conn *ldap.Conn) error {
	var err error
	if l.cfg.BindDN == "" {
		err = conn.UnauthenticatedBind("")
	} else {
		err = conn.Bind(l.cfg.BindDN, l.bindPassword)
	}
	if err != nil {
		return ldapFailure("service bind", err)
	}
	return nil
}

// ldapFailure: a network failure or timeout is ErrUnavailable; anything
// else (a refused service bind, a bad search) a configuration error.
func ldapFailure(what string, err error) error {
	if ldap.IsErrorAnyOf(err, ldap.ErrorNetwork, ldap.LDAPResultTimeLimitExceeded, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable,
		ldap.LDAPResultServerDown, ldap.LDAPResultTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
	}
	return fmt.Errorf("connector: ldap %s: %w", what, err)
}

func scopeOf(s string) int {
	if s == "one" {
		return ldap.ScopeSingleLevel
	}
	return ldap.ScopeWholeSubtree
}

// decoyDN is bound with an unknown user's password, so an unknown username
// costs the directory round trips a wrong password does.
const decoyDN = "cn=oidcgate-no-such-user"

// Login checks username and password. ErrBadCredentials for an unknown
// user, a wrong or empty password, or a username matching several entries.
func (l *LDAP) Login(ctx context.Context, username, password string) (Identity, error) {
	// An empty password is an unauthenticated bind (RFC 4513 §5.1.2),
	// which a directory accepts for any DN: never a sign-in.
	if username == "" || password == "" {
		return Identity{}, ErrBadCredentials
	}
	conn, err := l.dial(ctx)
	if err != nil {
		return Identity{}, err
	}
	defer conn.Close()
	us := l.cfg.UserSearch
	filter := strings.ReplaceAll(us.Filter, "{username}", ldap.EscapeFilter(username))
	attrs := []string{us.IDAttr, us.UsernameAttr, us.EmailAttr, us.NameAttr}
	if ua := l.cfg.GroupSearch.UserAttr; !strings.EqualFold(ua, "DN") {
		attrs = append(attrs, ua)
	}
	res, err := conn.Search(ldap.NewSearchRequest(us.BaseDN, scopeOf(us.Scope), ldap.NeverDerefAliases, 2, 0, false, filter, attrs, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return Identity{}, ldapFailure("user search", err)
	}
	if res == nil || len(res.Entries) != 1 {
		if err := conn.Bind(decoyDN+","+us.BaseDN, password); err != nil && !ldap.IsErrorAnyOf(err, ldap.LDAPResultInvalidCredentials) {
			return Identity{}, ldapFailure("bind", err)
		}
		return Identity{}, ErrBadCredentials
	}
	e := res.Entries[0]
	if err := conn.Bind(e.DN, password); err != nil {
		if ldap.IsErrorAnyOf(err, ldap.LDAPResultInvalidCredentials) {
			return Identity{}, ErrBadCredentials
		}
		return Identity{}, ldapFailure("bind", err)
	}
	id := Identity{Subject: e.GetAttributeValue(us.IDAttr), PreferredUsername: e.GetAttributeValue(us.UsernameAttr),
		Email: e.GetAttributeValue(us.EmailAttr), Name: e.GetAttributeValue(us.NameAttr)}
	if strings.EqualFold(us.IDAttr, "DN") {
		id.Subject = e.DN
	}
	if id.Subject == "" {
		return Identity{}, fmt.Errorf("connector: ldap entry %s has no %s", e.DN, us.IDAttr)
	}
	// The directory vouches for its own mail attribute.
	id.EmailVerified = id.Email != ""
	if l.cfg.GroupSearch.BaseDN != "" {
		if err := l.serviceBind(conn); err != nil {
			return Identity{}, err
		}
		if id.Groups, err = l.groups(conn, e); err != nil {
			return Identity{}, err
		}
	}
	return id, nil
}

func (l *LDAP) groups(conn *ldap.Conn, user *ldap.Entry) ([]string, error) {
	gs := l.cfg.GroupSearch
	value := user.DN
	if !strings.EqualFold(gs.UserAttr, "DN") {
		value = user.GetAttributeValue(gs.UserAttr)
		if value == "" {
			return nil, nil
		}
	}
	filter := fmt.Sprintf("(&%s(%s=%s))", gs.Filter, gs.GroupAttr, ldap.EscapeFilter(value))
	res, err := conn.Search(ldap.NewSearchRequest(gs.BaseDN, scopeOf(gs.Scope), ldap.NeverDerefAliases, 0, 0, false, filter,
		[]string{gs.NameAttr}, nil))
	if err != nil {
		return nil, ldapFailure("group search", err)
	}
	var out []string
	for _, g := range res.Entries {
		if n := g.GetAttributeValue(gs.NameAttr); n != "" {
			out = append(out, n)
		}
	}
	return out, nil
}

// Check dials and binds as the service account.
func (l *LDAP) Check(ctx context.Context) error {
	conn, err := l.dial(ctx)
	if err != nil {
		return err
	}
	return conn.Close()
}
