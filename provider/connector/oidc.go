package connector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDCConfig is an `oidc` connector: any OpenID Connect provider, found
// from its discovery document.
type OIDCConfig struct {
	Issuer           string `yaml:"issuer"`
	ClientID         string `yaml:"client_id"`
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// Scopes asked for; openid is always among them. Default: openid
	// profile email.
	Scopes []string `yaml:"scopes"`
	// SigningAlgs is the allow-list of ID token algorithms. Default: RS256,
	// ES256, PS256, EdDSA — never none or an HMAC.
	SigningAlgs []string `yaml:"signing_algs"`
	// GetUserInfo also reads the userinfo endpoint; its claims win.
	GetUserInfo bool `yaml:"get_user_info"`
	// InsecureSkipEmailVerified treats every email as verified (for
	// providers that never send email_verified). Off by default.
	InsecureSkipEmailVerified bool `yaml:"insecure_skip_email_verified"`
	// Claims maps the upstream's claims to the local ones.
	Claims ClaimMapping `yaml:"claims"`
	// Timeout bounds every request to the upstream (default 10s).
	Timeout time.Duration `yaml:"timeout"`
}

// ClaimMapping names the upstream claim (a path: name or a.b.c) each local
// claim is read from. Empty: the standard claim of the same name.
type ClaimMapping struct {
	Email             string `yaml:"email"`
	EmailVerified     string `yaml:"email_verified"`
	Name              string `yaml:"name"`
	PreferredUsername string `yaml:"preferred_username"`
	Groups            string `yaml:"groups"`
}

func (m ClaimMapping) withDefaults() ClaimMapping {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&m.Email, "email")
	def(&m.EmailVerified, "email_verified")
	def(&m.Name, "name")
	def(&m.PreferredUsername, "preferred_username")
	def(&m.Groups, "groups")
	return m
}

var allowedAlgs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA}

func (c *OIDCConfig) validate() error {
	var errs []error
	if err := checkUpstreamURL("issuer", c.Issuer); err != nil {
		errs = append(errs, err)
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("client_id is required"))
	}
	if c.ClientSecret != "" && c.ClientSecretFile != "" {
		errs = append(errs, errors.New("set client_secret or client_secret_file, not both"))
	}
	for _, a := range c.SigningAlgs {
		if !slices.Contains(allowedAlgs, a) {
			errs = append(errs, fmt.Errorf("signing_algs: %q is not an asymmetric JWS algorithm (%s)", a, strings.Join(allowedAlgs, ", ")))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// checkUpstreamURL: an https URL, or http on a loopback host (tests, a
// sidecar).
func checkUpstreamURL(name, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s %q must be an absolute URL with a host and no query or fragment", name, raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); u.Hostname() == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
	}
	return fmt.Errorf("%s %q must be https (http only on a loopback host)", name, raw)
}

// OIDC is a relying party of an upstream OpenID Connect provider (go-oidc
// and x/oauth2): code flow with PKCE S256, state (the provider's), nonce,
// and the ID token verified — issuer, audience, signature under the
// allow-list, expiry, nonce, at_hash when present.
type OIDC struct {
	cfg         OIDCConfig
	secret      string
	redirectURI string
	http        *http.Client
	now         func() time.Time

	mu  sync.Mutex
	op  *oidc.Provider // discovered on first use, so an upstream down at start does not stop this one
	iss bool           // the upstream sends iss in its authorization responses (RFC 9207)
}

// NewOIDC builds the connector; nothing is fetched until it is used.
func NewOIDC(cfg OIDCConfig, redirectURI string, now func() time.Time) (*OIDC, error) {
	s, err := secret("client_secret", cfg.ClientSecret, cfg.ClientSecretFile)
	if err != nil {
		return nil, err
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "profile", "email"}
	} else if !slices.Contains(cfg.Scopes, oidc.ScopeOpenID) {
		cfg.Scopes = append([]string{oidc.ScopeOpenID}, cfg.Scopes...)
	}
	if len(cfg.SigningAlgs) == 0 {
		cfg.SigningAlgs = []string{oidc.RS256, oidc.ES256, oidc.PS256, oidc.EdDSA}
	}
	cfg.Claims = cfg.Claims.withDefaults()
	return &OIDC{cfg: cfg, secret: s, redirectURI: redirectURI, http: httpClient(cfg.Timeout), now: now}, nil
}

func (o *OIDC) ctx(ctx context.Context) context.Context { return oidc.ClientContext(ctx, o.http) }

// provider returns the discovered upstream, discovering it now if need be.
func (o *OIDC) provider(ctx context.Context) (*oidc.Provider, bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.op != nil {
		return o.op, o.iss, nil
	}
	op, err := oidc.NewProvider(o.ctx(ctx), o.cfg.Issuer)
	if err != nil {
		var mismatch *oidc.IssuerMismatchError
		if errors.As(err, &mismatch) {
			return nil, false, fmt.Errorf("connector: discovery: %w", err)
		}
		return nil, false, fmt.Errorf("%w: discovery at %s: %v", ErrUnavailable, o.cfg.Issuer, err)
	}
	var meta struct {
		ISS bool `json:"authorization_response_iss_parameter_supported"`
	}
	op.Claims(&meta)
	o.op, o.iss = op, meta.ISS
	return op, meta.ISS, nil
}

func (o *OIDC) oauth2(op *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.secret, Endpoint: op.Endpoint(),
		RedirectURL: o.redirectURI, Scopes: o.cfg.Scopes}
}

// AuthCodeURL is where the browser signs in upstream.
func (o *OIDC) AuthCodeURL(ctx context.Context, state, nonce, verifier string) (string, error) {
	op, _, err := o.provider(ctx)
	if err != nil {
		return "", err
	}
	return o.oauth2(op).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), nil
}

// Exchange redeems the code the upstream sent back and verifies what it
// answers. iss is the callback's iss parameter (RFC 9207), checked when
// sent and required when the upstream says it sends it.
func (o *OIDC) Exchange(ctx context.Context, code, verifier, nonce, iss string) (Identity, error) {
	op, sendsISS, err := o.provider(ctx)
	if err != nil {
		return Identity{}, err
	}
	if (iss != "" || sendsISS) && iss != o.cfg.Issuer {
		return Identity{}, fmt.Errorf("connector: the authorization response's iss %q is not the upstream's (mix-up?)", iss)
	}
	ctx = o.ctx(ctx)
	tok, err := o.oauth2(op).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Identity{}, tokenError(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, errors.New("connector: the token response has no id_token")
	}
	idt, err := op.Verifier(&oidc.Config{ClientID: o.cfg.ClientID, SupportedSigningAlgs: o.cfg.SigningAlgs, Now: o.now}).Verify(ctx, raw)
	if err != nil {
		return Identity{}, fmt.Errorf("connector: ID token refused: %w", err)
	}
	if idt.Nonce != nonce {
		return Identity{}, errors.New("connector: ID token refused: its nonce is not the one sent")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return Identity{}, fmt.Errorf("connector: ID token refused: %w", err)
		}
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("connector: ID token claims: %w", err)
	}
	var how struct {
		AMR []string `json:"amr"`
		ACR string   `json:"acr"`
	}
	_ = idt.Claims(&how) // a malformed amr or acr says nothing: no upstream MFA
	if o.cfg.GetUserInfo {
		ui, err := op.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return Identity{}, fmt.Errorf("%w: userinfo: %v", ErrUnavailable, err)
		}
		// OIDC Core §5.3.2: the userinfo sub must be the ID token's.
		if ui.Subject != idt.Subject {
			return Identity{}, errors.New("connector: userinfo is about another subject than the ID token")
		}
		var extra map[string]any
		if err := ui.Claims(&extra); err != nil {
			return Identity{}, fmt.Errorf("connector: userinfo claims: %w", err)
		}
		for k, v := range extra {
			claims[k] = v
		}
	}
	id := o.identity(idt.Subject, claims)
	id.AMR, id.ACR = how.AMR, how.ACR
	return id, nil
}

func (o *OIDC) identity(sub string, claims map[string]any) Identity {
	m := o.cfg.Claims
	str := func(path string) string {
		v, _ := claimAt(claims, path)
		s, _ := v.(string)
		return s
	}
	id := Identity{Subject: sub, Email: str(m.Email), Name: str(m.Name), PreferredUsername: str(m.PreferredUsername)}
	if v, ok := claimAt(claims, m.EmailVerified); ok {
		id.EmailVerified = boolOf(v)
	}
	if o.cfg.InsecureSkipEmailVerified && id.Email != "" {
		id.EmailVerified = true
	}
	if v, ok := claimAt(claims, m.Groups); ok {
		id.Groups = stringsOf(v)
	}
	return id
}

// Check fetches the discovery document and the keys.
func (o *OIDC) Check(ctx context.Context) error {
	op, err := oidc.NewProvider(o.ctx(ctx), o.cfg.Issuer)
	if err != nil {
		return err
	}
	o.mu.Lock()
	if o.op == nil {
		o.op = op
	}
	o.mu.Unlock()
	return nil
}

// tokenError classifies a failed token request: the upstream's OAuth
// error (a 4xx with an error code), or unavailable.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 && re.ErrorCode != "" {
		return &UpstreamError{Code: re.ErrorCode, Description: re.ErrorDescription}
	}
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
		return fmt.Errorf("connector: the token endpoint refused the code: %s", re.Response.Status)
	}
	return fmt.Errorf("%w: token endpoint: %v", ErrUnavailable, err)
}
