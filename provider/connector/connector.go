// Package connector signs users in at the identity sources a company
// already has: an upstream OpenID Connect provider (OIDC), GitHub (OAuth
// 2.0 and its REST API) and an LDAP directory. A connector only learns who
// the user is there (an Identity); the provider decides what that means
// here (linking, restrictions, sessions).
//
// Connectors are declared in the configuration file (Dex's shape):
//
//	connectors:
//	  - id: corp
//	    type: oidc
//	    name: Corp SSO
//	    config: {issuer: https://sso.corp.example, client_id: oidcgate, client_secret_file: /run/secrets/corp}
//
// docs/connectors.md documents every field.
package connector

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Identity is what a connector learned about a user at the upstream.
type Identity struct {
	// Subject is the upstream's stable identifier of the user (the ID
	// token's sub, GitHub's numeric id, the LDAP entry's id attribute).
	Subject           string
	Email             string
	EmailVerified     bool
	Name              string
	PreferredUsername string
	Groups            []string
	// AMR and ACR are how the upstream says it authenticated the user
	// (its ID token's amr and acr claims; oidc only).
	AMR []string
	ACR string
}

// Errors a connector returns; anything else is a failure the user cannot
// fix (an upstream answer that did not pass the checks).
var (
	// ErrBadCredentials: the directory refused the username or password.
	ErrBadCredentials = errors.New("connector: invalid username or password")
	// ErrUnavailable: the upstream could not be reached in time, or
	// answered with a server error.
	ErrUnavailable = errors.New("connector: upstream unavailable")
)

// UpstreamError is an OAuth error the upstream answered with (RFC 6749
// §4.1.2.1, §5.2): shown to the user, escaped.
type UpstreamError struct {
	Code, Description string
}

func (e *UpstreamError) Error() string {
	return fmt.Sprintf("connector: the upstream answered %s: %s", e.Code, e.Description)
}

// Types of connector.
const (
	TypeOIDC   = "oidc"
	TypeGitHub = "github"
	TypeLDAP   = "ldap"
)

// Config is one connector entry of the configuration file: what every
// connector has, the provider's policy for it, and its type's own
// settings (the entry's `config` block, decoded strictly).
type Config struct {
	ID   string `yaml:"id"`   // stable: linked identities are stored under it
	Type string `yaml:"type"` // oidc, github or ldap
	Name string `yaml:"name"` // shown on the sign-in page

	// LinkByEmail links a first sign-in to an existing local user with
	// the same email, when the upstream says it is verified.
	LinkByEmail bool `yaml:"link_by_email"`
	// AllowedGroups, when set, admits only users in one of these groups.
	AllowedGroups []string `yaml:"allowed_groups"`
	// AllowedEmailDomains, when set, admits only users whose verified
	// email is at one of these domains.
	AllowedEmailDomains []string `yaml:"allowed_email_domains"`
	// UsernameDomains (ldap): a username typed in the sign-in form as
	// name@domain, for one of these domains, is checked by this connector.
	UsernameDomains []string `yaml:"username_domains"`
	// TrustUpstreamMFA (oidc): a sign-in the upstream's ID token says was
	// multi-factor — amr has "mfa", or acr is one of UpstreamMFAACRValues —
	// counts as multi-factor here; any other is asked for a local second
	// factor when one is required.
	TrustUpstreamMFA     bool     `yaml:"trust_upstream_mfa"`
	UpstreamMFAACRValues []string `yaml:"upstream_mfa_acr_values"`

	OIDC   *OIDCConfig   `yaml:"-"`
	GitHub *GitHubConfig `yaml:"-"`
	LDAP   *LDAPConfig   `yaml:"-"`
}

// UnmarshalYAML decodes an entry and its `config` block into the type's
// settings, rejecting unknown keys in both.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	type plain Config
	var raw struct {
		plain  `yaml:",inline"`
		Config yaml.Node `yaml:"config"`
	}
	if err := strictDecode(n, &raw); err != nil {
		return err
	}
	*c = Config(raw.plain)
	var target any
	switch c.Type {
	case TypeOIDC:
		c.OIDC = &OIDCConfig{}
		target = c.OIDC
	case TypeGitHub:
		c.GitHub = &GitHubConfig{}
		target = c.GitHub
	case TypeLDAP:
		c.LDAP = &LDAPConfig{}
		target = c.LDAP
	default:
		return fmt.Errorf("connector %q: type %q is not one of oidc, github, ldap", c.ID, c.Type)
	}
	if raw.Config.Kind == 0 {
		return fmt.Errorf("connector %q: no config block", c.ID)
	}
	if err := strictDecode(&raw.Config, target); err != nil {
		return fmt.Errorf("connector %q: %w", c.ID, err)
	}
	return nil
}

// strictDecode decodes n into v, an unknown key being an error (a Node's
// own Decode does not check).
func strictDecode(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate checks an entry without reaching the network.
func (c Config) Validate() error {
	var errs []error
	if !idPattern.MatchString(c.ID) {
		errs = append(errs, fmt.Errorf("connector id %q must be 1-63 lower-case letters, digits, '-' or '_'", c.ID))
	}
	if len(c.UsernameDomains) > 0 && c.Type != TypeLDAP {
		errs = append(errs, fmt.Errorf("connector %q: username_domains is for ldap connectors", c.ID))
	}
	if (c.TrustUpstreamMFA || len(c.UpstreamMFAACRValues) > 0) && c.Type != TypeOIDC {
		errs = append(errs, fmt.Errorf("connector %q: trust_upstream_mfa is for oidc connectors (only their ID tokens say how the user signed in)", c.ID))
	}
	if len(c.UpstreamMFAACRValues) > 0 && !c.TrustUpstreamMFA {
		errs = append(errs, fmt.Errorf("connector %q: upstream_mfa_acr_values needs trust_upstream_mfa: true", c.ID))
	}
	var err error
	switch {
	case c.OIDC != nil:
		err = c.OIDC.validate()
	case c.GitHub != nil:
		err = c.GitHub.validate()
	case c.LDAP != nil:
		err = c.LDAP.validate()
	default:
		err = fmt.Errorf("type %q is not one of oidc, github, ldap", c.Type)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("connector %q: %w", c.ID, err))
	}
	return errors.Join(errs...)
}

// secret is a setting given inline or read from a file (name_file).
func secret(name, inline, file string) (string, error) {
	switch {
	case inline != "" && file != "":
		return "", fmt.Errorf("set %s or %s_file, not both", name, name)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s_file: %w", name, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return inline, nil
}

// defaultTimeout bounds every upstream request.
const defaultTimeout = 10 * time.Second

// httpClient is a client whose every request ends within timeout (0: the
// default), and which never follows a redirect off an API call.
func httpClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	return &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// claimAt reads a claim by its path: a top-level name, or names joined by
// dots into nested objects (realm_access.roles). A claim whose name has a
// dot itself is found under its whole name first.
func claimAt(claims map[string]any, path string) (any, bool) {
	if v, ok := claims[path]; ok {
		return v, true
	}
	cur := any(claims)
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// stringsOf reads a claim as a list of strings: an array of strings, or
// one string. Other members are skipped.
func stringsOf(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return x
	}
	return nil
}

// boolOf reads a boolean claim, also as the string "true" (some providers
// send email_verified so).
func boolOf(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return x == "true"
	}
	return false
}
