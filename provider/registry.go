package provider

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/oidcgate/oidcgate/edge"
	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// Grant types (RFC 6749, OIDC Core).
const (
	grantClientCredentials = "client_credentials"
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
)

// Access token formats.
const (
	formatJWT    = "jwt"
	formatOpaque = "opaque"
)

// ClientSpec is a client as an operator declares it: in the bootstrap
// file, on the command line, or through the admin API.
type ClientSpec struct {
	ID   string `yaml:"id" json:"client_id"`
	Name string `yaml:"name" json:"client_name"`
	// Secret is for confidential clients: at least 32 characters. Empty
	// on a new confidential client: one is generated and shown once.
	Secret string `yaml:"secret" json:"client_secret,omitempty"`
	// SecretFile names a file holding Secret (bootstrap files).
	SecretFile               string        `yaml:"secret_file" json:"-"`
	Public                   bool          `yaml:"public" json:"public"`
	TokenEndpointAuthMethod  string        `yaml:"token_endpoint_auth_method" json:"token_endpoint_auth_method"`
	RedirectURIs             []string      `yaml:"redirect_uris" json:"redirect_uris"`
	PostLogoutRedirectURIs   []string      `yaml:"post_logout_redirect_uris" json:"post_logout_redirect_uris"`
	GrantTypes               []string      `yaml:"grant_types" json:"grant_types"`
	Scopes                   []string      `yaml:"scopes" json:"scopes"`
	Audiences                []string      `yaml:"audiences" json:"audiences"`
	DefaultAudience          string        `yaml:"default_audience" json:"default_audience"`
	AccessTokenFormat        string        `yaml:"access_token_format" json:"access_token_format"`
	AccessTokenTTL           time.Duration `yaml:"access_token_ttl" json:"access_token_ttl"`
	RefreshTokenTTL          time.Duration `yaml:"refresh_token_ttl" json:"refresh_token_ttl"`
	IDTokenTTL               time.Duration `yaml:"id_token_ttl" json:"id_token_ttl"`
	FirstParty               bool          `yaml:"first_party" json:"first_party"`
	IDTokenSignedResponseAlg string        `yaml:"id_token_signed_response_alg" json:"id_token_signed_response_alg"`
	IntrospectAny            bool          `yaml:"introspect_any" json:"introspect_any"`
	// DefaultConnector sends this client's sign-ins straight to that
	// connector (unless the request names another with idp_hint).
	DefaultConnector string `yaml:"default_connector" json:"default_connector,omitempty"`
	// RequireMFA: the client gets a code only for a session signed in
	// with a second factor (the user is stepped up when it has none).
	RequireMFA bool `yaml:"require_mfa" json:"require_mfa,omitempty"`
	// AccessTokenClaims names user claims its access tokens carry (e.g.
	// email, groups); StaticClaims are added as they are; Roles maps, per
	// audience, the user's groups to the roles claim (RFC 9068 §2.2.3.1).
	AccessTokenClaims []string                       `yaml:"access_token_claims" json:"access_token_claims,omitempty"`
	StaticClaims      map[string]any                 `yaml:"static_claims" json:"static_claims,omitempty"`
	Roles             map[string]map[string][]string `yaml:"roles" json:"roles,omitempty"`
	// TokenHook runs the token hook for client_credentials tokens too.
	TokenHook bool `yaml:"token_hook" json:"token_hook,omitempty"`
	// JWKS (by value) or JWKSURI: a private_key_jwt client's public keys.
	JWKS    map[string]any `yaml:"jwks" json:"jwks,omitempty"`
	JWKSURI string         `yaml:"jwks_uri" json:"jwks_uri,omitempty"`
	// Federated*: a federated_jwt client (workload identity).
	FederatedIssuer   string `yaml:"federated_issuer" json:"federated_issuer,omitempty"`
	FederatedSubject  string `yaml:"federated_subject" json:"federated_subject,omitempty"`
	FederatedAudience string `yaml:"federated_audience" json:"federated_audience,omitempty"`
	FederatedJWKSURI  string `yaml:"federated_jwks_uri" json:"federated_jwks_uri,omitempty"`
	// DPoPBoundAccessTokens requires a DPoP proof at every token request.
	DPoPBoundAccessTokens bool `yaml:"dpop_bound_access_tokens" json:"dpop_bound_access_tokens,omitempty"`
	// TokenExchangeScopes are the scopes a token exchange may add beyond
	// the subject token's (RFC 8693; none by default: never wider).
	TokenExchangeScopes []string `yaml:"token_exchange_scopes" json:"token_exchange_scopes,omitempty"`
	// mTLS (RFC 8705 §2): for tls_client_auth, the one certificate field
	// that must match; tokens of mTLS clients are bound to the certificate,
	// as are others' with TLSCertBoundAccessTokens.
	TLSSubjectDN             string `yaml:"tls_client_auth_subject_dn" json:"tls_client_auth_subject_dn,omitempty"`
	TLSSANDNS                string `yaml:"tls_client_auth_san_dns" json:"tls_client_auth_san_dns,omitempty"`
	TLSSANURI                string `yaml:"tls_client_auth_san_uri" json:"tls_client_auth_san_uri,omitempty"`
	TLSSANIP                 string `yaml:"tls_client_auth_san_ip" json:"tls_client_auth_san_ip,omitempty"`
	TLSSANEmail              string `yaml:"tls_client_auth_san_email" json:"tls_client_auth_san_email,omitempty"`
	TLSCertBoundAccessTokens bool   `yaml:"tls_client_certificate_bound_access_tokens" json:"tls_client_certificate_bound_access_tokens,omitempty"`
	// RequirePAR: its authorization requests must be pushed (RFC 9126 §6).
	RequirePAR bool `yaml:"require_pushed_authorization_requests" json:"require_pushed_authorization_requests,omitempty"`
	// BackchannelLogoutURI receives a logout token when a session it got an
	// ID token in ends (OIDC Back-Channel Logout 1.0), with sid when
	// BackchannelLogoutSessionRequired.
	BackchannelLogoutURI             string `yaml:"backchannel_logout_uri" json:"backchannel_logout_uri,omitempty"`
	BackchannelLogoutSessionRequired bool   `yaml:"backchannel_logout_session_required" json:"backchannel_logout_session_required,omitempty"`
}

// MinSecretLength is the shortest operator-supplied client secret.
const MinSecretLength = 32

// GenerateSecret returns 256 random bits, base64url.
func GenerateSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func validClientID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~", c)) {
			return false
		}
	}
	return true
}

// validScopeToken is RFC 6749 §3.3's scope-token.
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}

// Build validates spec and returns the client record and, for a
// confidential client without a given secret, the generated secret (to show
// once). Every problem is reported.
func (spec ClientSpec) Build(now time.Time) (*storage.Client, string, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !validClientID(spec.ID) {
		bad("client id %q: 1-128 characters of A-Z a-z 0-9 - . _ ~", spec.ID)
	}
	method := spec.TokenEndpointAuthMethod
	switch {
	case method == "" && spec.Public:
		method = authNone
	case method == "":
		method = authSecretBasic
	case method == authNone && !spec.Public, method != authNone && spec.Public:
		bad("token_endpoint_auth_method %s does not fit a %s client", method, map[bool]string{true: "public", false: "confidential"}[spec.Public])
	case !slices.Contains([]string{authSecretBasic, authSecretPost, authSecretJWT, authNone, authPrivateKeyJWT, authFederatedJWT, authTLSClient, authSelfSignedTLSClient}, method):
		bad("token_endpoint_auth_method must be client_secret_basic, client_secret_post, client_secret_jwt, private_key_jwt, federated_jwt, tls_client_auth, self_signed_tls_client_auth or none, got %q", method)
	}
	keyed := method == authPrivateKeyJWT || method == authFederatedJWT || method == authTLSClient || method == authSelfSignedTLSClient // no secret at all
	var jwks []byte
	certFields := 0
	for _, f := range []string{spec.TLSSubjectDN, spec.TLSSANDNS, spec.TLSSANURI, spec.TLSSANIP, spec.TLSSANEmail} {
		if f != "" {
			certFields++
		}
	}
	switch {
	case method == authTLSClient && certFields != 1:
		bad("a tls_client_auth client needs exactly one of tls_client_auth_subject_dn, _san_dns, _san_uri, _san_ip, _san_email")
	case method != authTLSClient && certFields > 0:
		bad("tls_client_auth_* are for tls_client_auth clients")
	case spec.TLSSANIP != "" && net.ParseIP(spec.TLSSANIP) == nil:
		bad("tls_client_auth_san_ip %q is not an IP address", spec.TLSSANIP)
	}
	if method == authSelfSignedTLSClient {
		jwks = checkClientKeys(ClientSpec{JWKS: spec.JWKS}, authPrivateKeyJWT, bad) // its certificates' keys, by value
	} else if keyed && method != authTLSClient {
		jwks = checkClientKeys(spec, method, bad)
	} else if len(spec.JWKS) > 0 || spec.JWKSURI != "" || spec.FederatedIssuer != "" {
		bad("jwks, jwks_uri and federated_* are for private_key_jwt and federated_jwt clients")
	}
	secret := spec.Secret
	generated := ""
	switch {
	case keyed && secret != "":
		bad("a %s client has no secret: it authenticates with a signed assertion", method)
	case keyed:
	case spec.Public && secret != "":
		bad("a public client has no secret")
	case !spec.Public && secret == "":
		secret = GenerateSecret()
		generated = secret
	case !spec.Public && len(secret) < MinSecretLength:
		bad("client secret must be at least %d characters", MinSecretLength)
	}
	grants := spec.GrantTypes
	if len(grants) == 0 {
		grants = []string{grantClientCredentials}
		if spec.Public {
			grants = []string{grantAuthorizationCode, grantRefreshToken}
		}
	}
	for _, g := range grants {
		switch {
		case g != grantClientCredentials && g != grantAuthorizationCode && g != grantRefreshToken && g != grantTokenExchange && g != grantDeviceCode:
			bad("grant type %q is not supported", g)
		case g == grantTokenExchange && spec.Public:
			bad("a public client cannot exchange tokens")
		case g == grantClientCredentials && spec.Public:
			bad("a public client cannot use client_credentials")
		}
	}
	for _, s := range spec.Scopes {
		if !validScopeToken(s) {
			bad("scope %q is not a valid scope token", s)
		}
	}
	for _, a := range spec.Audiences {
		if !validScopeToken(a) {
			bad("audience %q must be non-empty without spaces", a)
		}
	}
	if spec.DefaultAudience != "" && !slices.Contains(spec.Audiences, spec.DefaultAudience) {
		bad("default audience %q is not one of the client's audiences", spec.DefaultAudience)
	}
	for _, name := range spec.AccessTokenClaims {
		if registered(name) {
			bad("access_token_claims: %q is a registered claim, set by the provider itself", name)
		}
	}
	for name := range spec.StaticClaims {
		if registered(name) {
			bad("static_claims: %q is a registered claim, set by the provider itself", name)
		}
	}
	for aud := range spec.Roles {
		if !slices.Contains(spec.Audiences, aud) {
			bad("roles: %q is not one of the client's audiences", aud)
		}
	}
	if u := spec.BackchannelLogoutURI; u != "" {
		if pu, err := url.Parse(u); err != nil || pu.Host == "" || pu.Fragment != "" || !(pu.Scheme == "https" || pu.Scheme == "http" && loopbackHost(pu.Hostname())) {
			bad("backchannel_logout_uri must be an https URL without a fragment (http only on loopback): %q", u)
		}
	}
	if spec.BackchannelLogoutSessionRequired && spec.BackchannelLogoutURI == "" {
		bad("backchannel_logout_session_required needs a backchannel_logout_uri")
	}
	for _, u := range append(slices.Clone(spec.RedirectURIs), spec.PostLogoutRedirectURIs...) {
		if pu, err := url.Parse(u); err != nil || !pu.IsAbs() || pu.Fragment != "" {
			bad("redirect URI %q must be an absolute URI without a fragment", u)
		}
	}
	format := spec.AccessTokenFormat
	if format == "" {
		format = formatJWT
	}
	if format != formatJWT && format != formatOpaque {
		bad("access_token_format must be jwt or opaque, got %q", format)
	}
	for name, d := range map[string]time.Duration{"access_token_ttl": spec.AccessTokenTTL, "refresh_token_ttl": spec.RefreshTokenTTL, "id_token_ttl": spec.IDTokenTTL} {
		if d < 0 {
			bad("%s must not be negative", name)
		}
	}
	if a := spec.IDTokenSignedResponseAlg; a != "" && !keys.Supported(a) {
		bad("id_token_signed_response_alg %q is not supported", a)
	}
	if len(errs) > 0 {
		return nil, "", errors.Join(errs...)
	}
	name := spec.Name
	if name == "" {
		name = spec.ID
	}
	c := &storage.Client{
		ID: spec.ID, Name: name, RedirectURIs: spec.RedirectURIs, PostLogoutRedirectURIs: spec.PostLogoutRedirectURIs,
		GrantTypes: grants, TokenEndpointAuthMethod: method, Scopes: spec.Scopes, Audiences: spec.Audiences,
		DefaultAudience: spec.DefaultAudience, AccessTokenFormat: format, AccessTokenTTL: spec.AccessTokenTTL,
		RefreshTokenTTL: spec.RefreshTokenTTL, IDTokenTTL: spec.IDTokenTTL, FirstParty: spec.FirstParty,
		IDTokenSignedResponseAlg: spec.IDTokenSignedResponseAlg, IntrospectAny: spec.IntrospectAny,
		DefaultConnector:  spec.DefaultConnector,
		RequireMFA:        spec.RequireMFA,
		AccessTokenClaims: spec.AccessTokenClaims, StaticClaims: spec.StaticClaims, Roles: spec.Roles, TokenHook: spec.TokenHook,
		JWKS: jwks, JWKSURI: spec.JWKSURI, FederatedIssuer: spec.FederatedIssuer, FederatedSubject: spec.FederatedSubject,
		FederatedAudience: spec.FederatedAudience, FederatedJWKSURI: spec.FederatedJWKSURI, DPoPBoundAccessTokens: spec.DPoPBoundAccessTokens,
		TokenExchangeScopes: spec.TokenExchangeScopes,
		TLSSubjectDN:        spec.TLSSubjectDN, TLSSANDNS: spec.TLSSANDNS, TLSSANURI: spec.TLSSANURI, TLSSANIP: spec.TLSSANIP,
		TLSSANEmail: spec.TLSSANEmail, TLSCertBoundAccessTokens: spec.TLSCertBoundAccessTokens,
		RequirePAR: spec.RequirePAR, BackchannelLogoutURI: spec.BackchannelLogoutURI, BackchannelLogoutSessionRequired: spec.BackchannelLogoutSessionRequired,
		CreatedAt: now, UpdatedAt: now,
	}
	if len(c.GrantTypes) > 0 && slices.Contains(c.GrantTypes, grantAuthorizationCode) {
		c.ResponseTypes = []string{"code"}
	}
	if !spec.Public && !keyed {
		c.SecretSalt = newSalt()
		c.SecretHash = hashSecret(secret, c.SecretSalt)
	}
	return c, generated, nil
}

// UserSpec is a user as an operator declares one.
type UserSpec struct {
	Username string         `yaml:"username" json:"username"`
	Password string         `yaml:"password" json:"-"`
	Claims   map[string]any `yaml:"claims" json:"claims"`
	Disabled bool           `yaml:"disabled" json:"disabled"`
}

// NewUserID returns a stable, opaque subject identifier.
func NewUserID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ValidUsername reports whether u can name a user.
func ValidUsername(u string) bool {
	return u != "" && len(u) <= 256 && strings.TrimSpace(u) == u && !strings.ContainsAny(u, "\x00\r\n")
}

// checkClientKeys validates the keys of a private_key_jwt or federated_jwt
// client, and returns its JWKS as JSON (nil when by reference).
func checkClientKeys(spec ClientSpec, method string, bad func(string, ...any)) []byte {
	httpsURL := func(name, u string) {
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" || !(pu.Scheme == "https" || pu.Scheme == "http" && loopbackHost(pu.Hostname())) {
			bad("%s must be an https URL (http only on loopback): %q", name, u)
		}
	}
	if method == authFederatedJWT {
		if spec.FederatedIssuer == "" || spec.FederatedSubject == "" {
			bad("a federated_jwt client needs federated_issuer and federated_subject")
		}
		if spec.FederatedIssuer != "" {
			httpsURL("federated_issuer", spec.FederatedIssuer)
		}
		if spec.FederatedJWKSURI != "" {
			httpsURL("federated_jwks_uri", spec.FederatedJWKSURI)
		}
		if len(spec.JWKS) > 0 || spec.JWKSURI != "" {
			bad("a federated_jwt client's keys are its issuer's (federated_jwks_uri), not jwks or jwks_uri")
		}
		return nil
	}
	if spec.FederatedIssuer != "" || spec.FederatedSubject != "" {
		bad("federated_* are for federated_jwt clients")
	}
	switch {
	case (len(spec.JWKS) > 0) == (spec.JWKSURI != ""):
		bad("a private_key_jwt client needs jwks or jwks_uri (one of them)")
	case spec.JWKSURI != "":
		httpsURL("jwks_uri", spec.JWKSURI)
	default:
		b, err := json.Marshal(spec.JWKS)
		if err != nil {
			bad("jwks: %v", err)
			return nil
		}
		set, err := edge.ParseJWKS(b)
		if err != nil || len(set) == 0 { // a private key is no public one: it is skipped too
			bad("jwks has no usable public signing key (ES256, RS256 of 2048+ bits, PS256, EdDSA; each with a kid)")
		}
		return b
	}
	return nil
}
