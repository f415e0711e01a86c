package provider

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/oidcgate/oidcgate/keys"
)

// Config is what the provider itself needs; listeners and the store are
// the caller's.
type Config struct {
	// Issuer is the issuer identifier (OIDC Discovery §3, RFC 8414 §2):
	// https, no query or fragment; its path prefixes every endpoint.
	Issuer string
	// InsecureHTTP allows an http:// issuer on a non-loopback host.
	InsecureHTTP bool
	// AccessTokenTTL is the access token lifetime unless the client sets one.
	AccessTokenTTL time.Duration
	// AccessTokenAlg signs JWT access tokens (RFC 9068).
	AccessTokenAlg string
	// ClientCacheTTL is how long a client record is served from memory;
	// changes made through another process take at most this long.
	ClientCacheTTL time.Duration
	// ClientStaleTTL is how much longer a cached client record serves while
	// the store cannot be read (stale-if-error); 0: not at all.
	ClientStaleTTL time.Duration
	// GCInterval is how often expired codes, tokens, sessions, consents and
	// revocations are deleted.
	GCInterval time.Duration
	// Argon2 is the cost of new password hashes.
	Argon2 Argon2Params

	// The browser flows. A zero value takes the default in brackets.
	InteractionTTL  time.Duration // a pending authorization request [10m]
	CodeTTL         time.Duration // an authorization code [60s]
	SessionIdleTTL  time.Duration // a browser session without use [30m]
	SessionTTL      time.Duration // a browser session at most [12h]
	IDTokenTTL      time.Duration // [1h]
	RefreshTokenTTL time.Duration // a refresh token family, from its code [720h]
	RefreshIdleTTL  time.Duration // a refresh token unused [RefreshTokenTTL: no idle limit]
	// RefreshReuseGrace lets a rotated refresh token be used again within
	// this long of its rotation (a client retrying after a lost answer): it
	// gets a fresh pair of the same family instead of revoking it. Zero
	// revokes on every reuse; the binary's default is 30s.
	RefreshReuseGrace time.Duration
	RequirePKCE       bool          // PKCE for confidential clients too
	LoginLimit        int           // sign-in attempts per username at one IP per LoginWindow [5]; 4× per IP, 4× per username per 15 windows
	LoginWindow       time.Duration // [1m]
	AdminHosts        []string      // DNS names the admin API answers to, besides IP literals and localhost
	MaxPendingPerIP   int           // authorization requests one client IP may start per InteractionTTL [1000]
	BrandName         string        // shown on the sign-in pages ["oidcgate"]
	BrandLogoURL      string        // an https:// or data:image/ logo shown above it [none]
}

// withDefaults fills the browser-flow settings left zero.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.InteractionTTL, 10*time.Minute)
	def(&c.CodeTTL, time.Minute)
	def(&c.SessionIdleTTL, 30*time.Minute)
	def(&c.SessionTTL, 12*time.Hour)
	def(&c.IDTokenTTL, time.Hour)
	def(&c.RefreshTokenTTL, 720*time.Hour)
	def(&c.RefreshIdleTTL, c.RefreshTokenTTL)
	def(&c.LoginWindow, time.Minute)
	if c.LoginLimit == 0 {
		c.LoginLimit = 5
	}
	if c.MaxPendingPerIP == 0 {
		c.MaxPendingPerIP = 1000
	}
	if c.BrandName == "" {
		c.BrandName = "oidcgate"
	}
	return c
}

// Validate reports every bad setting.
func (c Config) Validate() error {
	var errs []error
	if err := ValidateIssuer(c.Issuer, c.InsecureHTTP); err != nil {
		errs = append(errs, err)
	}
	for name, d := range map[string]time.Duration{"access token lifetime": c.AccessTokenTTL,
		"client cache TTL": c.ClientCacheTTL, "GC interval": c.GCInterval, "interaction lifetime": c.InteractionTTL,
		"code lifetime": c.CodeTTL, "session idle lifetime": c.SessionIdleTTL, "session lifetime": c.SessionTTL,
		"ID token lifetime": c.IDTokenTTL, "refresh token lifetime": c.RefreshTokenTTL, "login window": c.LoginWindow,
		"refresh token idle lifetime": c.RefreshIdleTTL} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	if !keys.Supported(c.AccessTokenAlg) {
		errs = append(errs, fmt.Errorf("access token algorithm %q is not supported", c.AccessTokenAlg))
	}
	if err := c.Argon2.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.LoginLimit < 1 {
		errs = append(errs, fmt.Errorf("login limit must be at least 1, got %d", c.LoginLimit))
	}
	if c.BrandLogoURL != "" && !strings.HasPrefix(c.BrandLogoURL, "https://") && !strings.HasPrefix(c.BrandLogoURL, "data:image/") {
		errs = append(errs, fmt.Errorf("brand logo URL must be https:// or a data:image/ URL"))
	}
	if c.ClientStaleTTL < 0 {
		errs = append(errs, fmt.Errorf("client stale TTL must not be negative, got %s", c.ClientStaleTTL))
	}
	if c.RefreshReuseGrace < 0 {
		errs = append(errs, fmt.Errorf("refresh reuse grace must not be negative, got %s", c.RefreshReuseGrace))
	}
	return errors.Join(errs...)
}

// ValidateIssuer checks an issuer identifier: an https URL without query or
// fragment, or http on a loopback host (or anywhere, with insecure).
func ValidateIssuer(issuer string, insecure bool) error {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("issuer %q must be an absolute URL with a host and no query, fragment or user info", issuer)
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if !insecure && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("issuer %q uses http on a non-loopback host: use https, or --insecure-http behind a TLS-terminating proxy", issuer)
		}
	default:
		return fmt.Errorf("issuer %q must be an https URL", issuer)
	}
	if strings.HasSuffix(u.Path, "/") {
		return fmt.Errorf("issuer %q must not end with a slash", issuer)
	}
	return nil
}
