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
	// GCInterval is how often expired codes, tokens, sessions, consents and
	// revocations are deleted.
	GCInterval time.Duration
	// Argon2 is the cost of new password hashes.
	Argon2 Argon2Params
}

// Validate reports every bad setting.
func (c Config) Validate() error {
	var errs []error
	if err := ValidateIssuer(c.Issuer, c.InsecureHTTP); err != nil {
		errs = append(errs, err)
	}
	for name, d := range map[string]time.Duration{"access token lifetime": c.AccessTokenTTL,
		"client cache TTL": c.ClientCacheTTL, "GC interval": c.GCInterval} {
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
