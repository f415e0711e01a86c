package provider

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider/connector"
)

// Config is what the provider itself needs; listeners and the store are
// the caller's. Each field is a setting, declared here once: its yaml tag
// is its name (the binary derives --flag and OIDCGATE_ENV from it), its
// help tag what it means, DefaultConfig its default and Validate its
// bounds.
type Config struct {
	// Issuer is the issuer identifier (OIDC Discovery §3, RFC 8414 §2).
	Issuer       string `yaml:"issuer" help:"issuer URL: https, or http on a loopback host; its path prefixes every endpoint"`
	InsecureHTTP bool   `yaml:"insecure_http" help:"allow an http issuer on a non-loopback host (only behind a TLS-terminating proxy)"`

	AccessTokenTTL time.Duration `yaml:"access_token_ttl" help:"access token lifetime unless the client sets its own"`
	AccessTokenAlg string        `yaml:"access_token_alg" help:"algorithm of JWT access tokens (RFC 9068); must be one of --signing-algs"`
	ClientCacheTTL time.Duration `yaml:"client_cache_ttl" help:"how long client records are cached; changes made by another process or replica show after at most this long"`
	ClientStaleTTL time.Duration `yaml:"client_cache_stale" help:"while the store cannot be read, a cached client record past --client-cache-ttl serves this much longer (stale-if-error); 0: never"`
	GCInterval     time.Duration `yaml:"gc_interval" help:"how often expired codes, tokens, sessions and revocations are deleted"`
	Argon2         Argon2Params  `yaml:",inline"`

	// The browser flows. In a Config built by hand, a zero value takes the
	// default (except where 0 means off).
	RequirePKCE       bool          `yaml:"require_pkce" help:"require PKCE (S256) from confidential clients too; public clients always need it"`
	InteractionTTL    time.Duration `yaml:"interaction_ttl" help:"how long a pending authorization request waits for sign-in and consent"`
	CodeTTL           time.Duration `yaml:"code_ttl" help:"authorization code lifetime"`
	SessionIdleTTL    time.Duration `yaml:"session_idle_ttl" help:"a browser session ends after this long unused"`
	SessionTTL        time.Duration `yaml:"session_ttl" help:"a browser session ends after this long, used or not"`
	IDTokenTTL        time.Duration `yaml:"id_token_ttl" help:"ID token lifetime unless the client sets its own"`
	RefreshTokenTTL   time.Duration `yaml:"refresh_token_ttl" help:"absolute lifetime of a refresh token family unless the client sets its own"`
	RefreshIdleTTL    time.Duration `yaml:"refresh_idle_ttl" help:"a refresh token unused this long expires (each rotation starts it anew); at most --refresh-token-ttl"`
	RefreshReuseGrace time.Duration `yaml:"refresh_reuse_grace" help:"a rotated refresh token may be used again this long after its rotation (a client retrying an answer lost to a crash, a timeout or a 503) and gets a fresh pair instead of revoking its family; 0: every reuse revokes"`
	LoginLimit        int           `yaml:"login_limit" help:"sign-in attempts per username at one client IP within --login-window (4x that per IP, and per username across IPs per 15 windows); then 429 with Retry-After"`
	LoginWindow       time.Duration `yaml:"login_window" help:"the window of --login-limit"`
	MaxPendingPerIP   int           `yaml:"max_pending_per_ip" help:"authorization requests one client IP may leave pending per --interaction-ttl"`
	BrandName         string        `yaml:"brand_name" help:"name shown on the sign-in, consent and sign-out pages"`
	BrandLogoURL      string        `yaml:"brand_logo_url" help:"logo above the brand name: an https:// or data:image/ URL"`
	// Connectors are the upstream identity sources (docs/connectors.md);
	// a list of structures, so the YAML file's only.
	Connectors        []connector.Config `yaml:"connectors" file:"only" help:"the upstream identity sources users sign in with: oidc, github and ldap connectors (every field in docs/connectors.md)"`
	PasswordConnector string             `yaml:"password_connector" help:"id of the ldap connector that checks the sign-in form's usernames (but those in another ldap connector's username_domains); empty: the local users"`
	HidePasswordForm  bool               `yaml:"hide_password_form" help:"show only the connectors' buttons on the sign-in page, no username and password form"`
	// Passkeys offers passwordless sign-in with a passkey.
	Passkeys bool `yaml:"passkeys" help:"offer passwordless sign-in with a passkey (a discoverable WebAuthn credential with user verification) on the sign-in page; keys registered on /account are then made discoverable"`
	// MFAEnrollOnAccountPage keeps second-factor enrollment to the account
	// page: a user without one who signs in to a client requiring MFA is
	// refused instead of setting up an authenticator app there and then.
	MFAEnrollOnAccountPage bool `yaml:"mfa_enroll_on_account_page" help:"users set up second factors only on /account: a user without one is refused by clients that require MFA, instead of being offered to set up an authenticator app during sign-in"`
	// ScopeClaims says which user claims each scope releases to ID tokens
	// and userinfo (a map: the YAML file only); a scope listed replaces
	// its default list.
	ScopeClaims map[string][]string `yaml:"scope_claims" file:"only" help:"which user claims each scope releases to ID tokens and userinfo, e.g. {roles: [roles], profile: [name, picture]}; a scope listed replaces the OIDC default for it"`
	// The token hook (docs/claims.md).
	TokenHookURL      string        `yaml:"token_hook_url" help:"an https URL called at every access-token issuance of user grants (and of client_credentials for clients with token_hook) that may add claims or deny; http only on loopback"`
	TokenHookTimeout  time.Duration `yaml:"token_hook_timeout" help:"the token hook's deadline"`
	TokenHookFailOpen bool          `yaml:"token_hook_fail_open" help:"issue tokens (without the hook's claims) when the token hook fails; off: a failing hook stops issuance with server_error"`
	TokenHookCAFile   string        `yaml:"token_hook_ca_file" help:"PEM CA certificates the token hook's TLS certificate must chain to (default: the system's)"`
	// Dynamic client registration (RFC 7591/7592).
	Registration           string   `yaml:"registration" help:"dynamic client registration at /register (RFC 7591/7592): off, open, or token (an initial access token from oidcgate admin-tokens create --registration is required)"`
	RegistrationGrantTypes []string `yaml:"registration_grant_types" help:"grant types a dynamically registered client may have"`
	RegistrationScopes     []string `yaml:"registration_scopes" help:"scopes a dynamically registered client may have (all of them when it asks for none)"`
	// ClientAssertionMaxLifetime bounds how far ahead a private_key_jwt
	// assertion's exp may be (its jti is remembered until then).
	ClientAssertionMaxLifetime time.Duration `yaml:"client_assertion_max_lifetime" help:"how far ahead a private_key_jwt client assertion's exp may be (RFC 7523); its jti is remembered, single use, until then"`
	// DPoPNonce makes DPoP proofs carry a server nonce (RFC 9449 §8).
	DPoPNonce bool `yaml:"dpop_nonce" help:"require DPoP proofs to carry the server's nonce (DPoP-Nonce, use_dpop_nonce): a proof made in advance is refused"`
	// mTLS client certificates from a TLS-terminating proxy (RFC 8705).
	MTLSCertHeader     string   `yaml:"mtls_cert_header" help:"the header a TLS-terminating proxy puts the client certificate in: Envoy's X-Forwarded-Client-Cert, or an nginx header set to $ssl_client_escaped_cert (URL-encoded PEM); read only from --mtls-trusted-proxies"`
	MTLSTrustedProxies []string `yaml:"mtls_trusted_proxies" help:"addresses (IPs or CIDR blocks) of the proxies whose --mtls-cert-header is believed"`
	// MTLSClientCA verifies client certificates of the TLS connection for
	// tls_client_auth (a proxy verifies those it forwards).
	MTLSClientCA string `yaml:"mtls_client_ca" help:"PEM CA certificates a client certificate on the TLS connection must chain to for tls_client_auth (without it, only self_signed_tls_client_auth and certificates from --mtls-trusted-proxies, which verify the chain themselves, authenticate)"`
	// Pushed authorization requests (RFC 9126).
	RequirePAR  bool          `yaml:"require_pushed_authorization_requests" help:"every client must push its authorization requests to /par first (RFC 9126); per client: require_pushed_authorization_requests"`
	PARLifetime time.Duration `yaml:"par_lifetime" help:"how long a pushed authorization request's request_uri may be used (once)"`
	// The device authorization grant (RFC 8628).
	DeviceCodeTTL      time.Duration `yaml:"device_code_ttl" help:"how long a device code and its user code wait for the user (RFC 8628)"`
	DevicePollInterval time.Duration `yaml:"device_poll_interval" help:"the interval a device is told to poll /token at; polling faster answers slow_down and adds 5 s"`
	// Back-channel logout (OIDC Back-Channel Logout 1.0).
	BackchannelLogoutTimeout  time.Duration `yaml:"backchannel_logout_timeout" help:"deadline of one logout-token delivery to a client's backchannel_logout_uri; a sign-out waits at most this long for the first attempts"`
	BackchannelLogoutRetry    time.Duration `yaml:"backchannel_logout_retry" help:"the first retry delay of a failed logout-token delivery; each next one doubles, up to 10 minutes"`
	BackchannelLogoutAttempts int           `yaml:"backchannel_logout_attempts" help:"deliveries of one logout token tried before it is given up (logged and counted)"`
	// AuditRetention is how long audit events are kept in the store.
	AuditRetention time.Duration `yaml:"audit_retention" help:"how long audit events (admin changes, sign-ins, second factors, token reuse) are kept in the store for GET /admin/v1/audit; they are logged with log=audit too"`
	// AdminInsecure serves the admin API without authentication.
	AdminInsecure bool     `yaml:"admin_insecure" help:"serve the admin API without authentication (logged as a warning at start): only where nothing but trusted operators reach the admin listener"`
	AdminHosts    []string `yaml:"admin_hosts" help:"DNS names the admin listener answers to besides IP addresses and localhost (requests for any other Host get 421, against DNS rebinding)"`
}

// DefaultConfig is every setting's default: the binary's, and what a
// Config built by hand gets for the browser-flow settings it leaves zero.
func DefaultConfig() Config {
	return Config{
		Issuer:                     "http://127.0.0.1:8080",
		AccessTokenTTL:             time.Hour,
		AccessTokenAlg:             keys.ES256,
		ClientCacheTTL:             30 * time.Second,
		ClientStaleTTL:             5 * time.Minute,
		GCInterval:                 5 * time.Minute,
		Argon2:                     DefaultArgon2(),
		InteractionTTL:             10 * time.Minute,
		CodeTTL:                    time.Minute,
		SessionIdleTTL:             30 * time.Minute,
		SessionTTL:                 12 * time.Hour,
		IDTokenTTL:                 time.Hour,
		RefreshTokenTTL:            720 * time.Hour,
		RefreshIdleTTL:             720 * time.Hour,
		RefreshReuseGrace:          30 * time.Second,
		LoginLimit:                 5,
		LoginWindow:                time.Minute,
		MaxPendingPerIP:            1000,
		BrandName:                  "oidcgate",
		TokenHookTimeout:           2 * time.Second,
		AuditRetention:             90 * 24 * time.Hour,
		ClientAssertionMaxLifetime: 5 * time.Minute,
		PARLifetime:                time.Minute,
		DeviceCodeTTL:              10 * time.Minute,
		DevicePollInterval:         5 * time.Second,
		BackchannelLogoutTimeout:   2 * time.Second,
		BackchannelLogoutRetry:     2 * time.Second,
		BackchannelLogoutAttempts:  12,
		Registration:               "off",
		RegistrationGrantTypes:     []string{"authorization_code", "refresh_token"},
		RegistrationScopes:         []string{"openid", "profile", "email", "offline_access"},
	}
}

// withDefaults fills the browser-flow settings left zero (but the reuse
// grace, whose zero means off) from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	def := func(v *time.Duration, dv time.Duration) {
		if *v == 0 {
			*v = dv
		}
	}
	def(&c.InteractionTTL, d.InteractionTTL)
	def(&c.CodeTTL, d.CodeTTL)
	def(&c.SessionIdleTTL, d.SessionIdleTTL)
	def(&c.SessionTTL, d.SessionTTL)
	def(&c.IDTokenTTL, d.IDTokenTTL)
	def(&c.RefreshTokenTTL, d.RefreshTokenTTL)
	def(&c.RefreshIdleTTL, c.RefreshTokenTTL)
	def(&c.LoginWindow, d.LoginWindow)
	def(&c.TokenHookTimeout, d.TokenHookTimeout)
	def(&c.AuditRetention, d.AuditRetention)
	def(&c.ClientAssertionMaxLifetime, d.ClientAssertionMaxLifetime)
	def(&c.PARLifetime, d.PARLifetime)
	def(&c.DeviceCodeTTL, d.DeviceCodeTTL)
	def(&c.DevicePollInterval, d.DevicePollInterval)
	def(&c.BackchannelLogoutTimeout, d.BackchannelLogoutTimeout)
	def(&c.BackchannelLogoutRetry, d.BackchannelLogoutRetry)
	if c.BackchannelLogoutAttempts == 0 {
		c.BackchannelLogoutAttempts = d.BackchannelLogoutAttempts
	}
	if c.Registration == "" {
		c.Registration = d.Registration
	}
	if c.RegistrationGrantTypes == nil {
		c.RegistrationGrantTypes = d.RegistrationGrantTypes
	}
	if c.RegistrationScopes == nil {
		c.RegistrationScopes = d.RegistrationScopes
	}
	if c.LoginLimit == 0 {
		c.LoginLimit = d.LoginLimit
	}
	if c.MaxPendingPerIP == 0 {
		c.MaxPendingPerIP = d.MaxPendingPerIP
	}
	if c.BrandName == "" {
		c.BrandName = d.BrandName
	}
	return c
}

// bad is a keys.SettingError: the binary names the setting.
func bad(setting, format string, args ...any) error { return keys.BadSetting(setting, format, args...) }

// Validate reports every bad setting, each a *SettingError.
func (c Config) Validate() error {
	var errs []error
	if err := ValidateIssuer(c.Issuer, c.InsecureHTTP); err != nil {
		errs = append(errs, bad("issuer", "%v", err))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"access_token_ttl", c.AccessTokenTTL}, {"client_cache_ttl", c.ClientCacheTTL}, {"gc_interval", c.GCInterval},
		{"interaction_ttl", c.InteractionTTL}, {"code_ttl", c.CodeTTL}, {"session_idle_ttl", c.SessionIdleTTL},
		{"session_ttl", c.SessionTTL}, {"id_token_ttl", c.IDTokenTTL}, {"refresh_token_ttl", c.RefreshTokenTTL},
		{"refresh_idle_ttl", c.RefreshIdleTTL}, {"login_window", c.LoginWindow}, {"par_lifetime", c.PARLifetime},
		{"device_code_ttl", c.DeviceCodeTTL}, {"device_poll_interval", c.DevicePollInterval},
		{"backchannel_logout_timeout", c.BackchannelLogoutTimeout}, {"backchannel_logout_retry", c.BackchannelLogoutRetry}} {
		if d.v <= 0 {
			errs = append(errs, bad(d.name, "must be a positive duration, got %s", d.v))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"client_cache_stale", c.ClientStaleTTL}, {"refresh_reuse_grace", c.RefreshReuseGrace}} {
		if d.v < 0 {
			errs = append(errs, bad(d.name, "must not be negative, got %s", d.v))
		}
	}
	if !keys.Supported(c.AccessTokenAlg) {
		errs = append(errs, bad("access_token_alg", "%q is not supported (ES256, RS256, PS256, EdDSA)", c.AccessTokenAlg))
	}
	if err := c.Argon2.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.BackchannelLogoutAttempts < 1 {
		errs = append(errs, bad("backchannel_logout_attempts", "must be at least 1, got %d", c.BackchannelLogoutAttempts))
	}
	if c.LoginLimit < 1 {
		errs = append(errs, bad("login_limit", "must be at least 1, got %d", c.LoginLimit))
	}
	if c.MaxPendingPerIP < 1 {
		errs = append(errs, bad("max_pending_per_ip", "must be at least 1, got %d", c.MaxPendingPerIP))
	}
	if c.BrandLogoURL != "" && !strings.HasPrefix(c.BrandLogoURL, "https://") && !strings.HasPrefix(c.BrandLogoURL, "data:image/") {
		errs = append(errs, bad("brand_logo_url", "must be an https:// or data:image/ URL"))
	}
	errs = append(errs, c.validateConnectors()...)
	return errors.Join(errs...)
}

// validateConnectors checks each connector, that ids and username domains
// are unique, and the sign-in form settings against them.
func (c Config) validateConnectors() []error {
	var errs []error
	ids, domains := map[string]bool{}, map[string]string{}
	redirects := 0
	for i := range c.Connectors {
		cc := &c.Connectors[i]
		if err := cc.Validate(); err != nil {
			errs = append(errs, bad("connectors", "%v", err))
		}
		if ids[cc.ID] {
			errs = append(errs, bad("connectors", "connector id %q appears twice", cc.ID))
		}
		ids[cc.ID] = true
		if cc.Type != connector.TypeLDAP {
			redirects++
		}
		for _, d := range cc.UsernameDomains {
			d = strings.ToLower(d)
			if other, ok := domains[d]; ok {
				errs = append(errs, bad("connectors", "username domain %q is claimed by both %q and %q", d, other, cc.ID))
			}
			domains[d] = cc.ID
		}
	}
	if pc := c.PasswordConnector; pc != "" {
		i := slices.IndexFunc(c.Connectors, func(cc connector.Config) bool { return cc.ID == pc })
		if i < 0 || c.Connectors[i].Type != connector.TypeLDAP {
			errs = append(errs, bad("password_connector", "%q is not the id of an ldap connector", pc))
		}
	}
	for scope, claims := range c.ScopeClaims {
		if !validScopeToken(scope) {
			errs = append(errs, bad("scope_claims", "%q is not a scope token", scope))
		}
		for _, name := range claims {
			if registered(name) || name == "" {
				errs = append(errs, bad("scope_claims", "scope %s: %q is a registered claim, set by the provider itself", scope, name))
			}
		}
	}
	if c.Registration != registrationOff && c.Registration != registrationOpen && c.Registration != registrationToken {
		errs = append(errs, bad("registration", "must be off, open or token, got %q", c.Registration))
	}
	for _, g := range c.RegistrationGrantTypes {
		if g != grantAuthorizationCode && g != grantRefreshToken && g != grantClientCredentials {
			errs = append(errs, bad("registration_grant_types", "%q is not a grant type oidcgate issues", g))
		}
	}
	if c.TokenHookTimeout < 0 || c.TokenHookTimeout > time.Minute {
		errs = append(errs, bad("token_hook_timeout", "must be between 0 and 1m"))
	}
	if c.HidePasswordForm && redirects == 0 {
		errs = append(errs, bad("hide_password_form", "with no oidc or github connector there would be no way to sign in"))
	}
	if u, err := url.Parse(c.Issuer); err == nil && c.Passkeys && net.ParseIP(u.Hostname()) != nil {
		errs = append(errs, bad("passkeys", "need the issuer at a domain name (browsers refuse an IP address as WebAuthn relying party): %s", c.Issuer))
	}
	return errs
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
