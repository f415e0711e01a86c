package provider

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// Dynamic client registration: RFC 7591 (POST /register) and RFC 7592's
// management of a registration (GET, PUT, DELETE /register/{client_id}
// with its registration access token). Open, or gated by initial access
// tokens (oidcgate admin-tokens create --registration), under a policy:
// the grant types and scopes a registered client may have, and redirect
// URIs that are https — http only on a loopback IP, and private-use
// schemes only for public (native) clients — without fragments.

// Registration modes.
const (
	registrationOff   = "off"
	registrationOpen  = "open"
	registrationToken = "token" // an initial access token is required
)

// registrationStore is what registration uses of the store.
type registrationStore interface {
	CreateClient(ctx context.Context, c *storage.Client) error
	GetClient(ctx context.Context, id string) (*storage.Client, error)
	UpdateClient(ctx context.Context, c *storage.Client) error
	DeleteClient(ctx context.Context, id string) error
	GetAdminToken(ctx context.Context, h storage.Hash) (*storage.AdminToken, error)
}

// clientMetadata is RFC 7591 §2's client metadata, as far as oidcgate
// uses it; other members are ignored (§2: the server MUST ignore what it
// does not understand).
type clientMetadata struct {
	RedirectURIs             []string `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod  string   `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes               []string `json:"grant_types,omitempty"`
	ResponseTypes            []string `json:"response_types,omitempty"`
	ClientName               string   `json:"client_name,omitempty"`
	Scope                    string   `json:"scope,omitempty"`
	PostLogoutRedirectURIs   []string `json:"post_logout_redirect_uris,omitempty"`
	IDTokenSignedResponseAlg string   `json:"id_token_signed_response_alg,omitempty"`
	ClientID                 string   `json:"client_id,omitempty"`     // PUT only: must be the client's
	ClientSecret             string   `json:"client_secret,omitempty"` // PUT only: ignored (it cannot change here)
}

// registrationResponse is RFC 7591 §3.2.1's answer (and RFC 7592 §3's).
type registrationResponse struct {
	clientMetadata
	ClientIDIssuedAt        int64  `json:"client_id_issued_at"`
	ClientSecret            string `json:"client_secret,omitempty"`
	ClientSecretExpiresAt   *int64 `json:"client_secret_expires_at,omitempty"`
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string `json:"registration_client_uri"`
}

func regErr(code, description string) error {
	return oauth.New(http.StatusBadRequest, code, "%s", description)
}

// registrationClient builds the client md describes, under the policy.
func (p *Provider) registrationClient(id string, md clientMetadata, now time.Time) (*storage.Client, string, error) {
	method := cmpOr(md.TokenEndpointAuthMethod, authSecretBasic)
	if method != authSecretBasic && method != authSecretPost && method != authSecretJWT && method != authNone {
		return nil, "", regErr("invalid_client_metadata", "token_endpoint_auth_method must be client_secret_basic, client_secret_post, client_secret_jwt or none")
	}
	public := method == authNone
	grants := md.GrantTypes
	if len(grants) == 0 {
		grants = []string{grantAuthorizationCode} // RFC 7591 §2's default
	}
	for _, g := range grants {
		if !slices.Contains(p.cfg.RegistrationGrantTypes, g) {
			return nil, "", regErr("invalid_client_metadata", "grant type "+g+" may not be registered here")
		}
	}
	for _, rt := range md.ResponseTypes {
		if rt != "code" {
			return nil, "", regErr("invalid_client_metadata", "response_types may only be code")
		}
	}
	scopes, err := parseScope(md.Scope)
	if err != nil {
		return nil, "", regErr("invalid_client_metadata", "scope is not scope tokens separated by single spaces")
	}
	if scopes == nil {
		scopes = p.cfg.RegistrationScopes
	}
	for _, s := range scopes {
		if !slices.Contains(p.cfg.RegistrationScopes, s) {
			return nil, "", regErr("invalid_client_metadata", "scope "+s+" may not be registered here")
		}
	}
	if slices.Contains(grants, grantAuthorizationCode) && len(md.RedirectURIs) == 0 {
		return nil, "", regErr("invalid_redirect_uri", "redirect_uris is required for the authorization_code grant")
	}
	for _, u := range append(slices.Clone(md.RedirectURIs), md.PostLogoutRedirectURIs...) {
		if reason := registrableRedirect(u, public); reason != "" {
			return nil, "", regErr("invalid_redirect_uri", u+": "+reason)
		}
	}
	if md.IDTokenSignedResponseAlg != "" && !slices.Contains(p.ring.Algs(), md.IDTokenSignedResponseAlg) {
		return nil, "", regErr("invalid_client_metadata", "id_token_signed_response_alg must be one of "+strings.Join(p.ring.Algs(), ", "))
	}
	if len(md.ClientName) > 200 {
		return nil, "", regErr("invalid_client_metadata", "client_name is longer than 200 characters")
	}
	spec := ClientSpec{ID: id, Name: md.ClientName, Public: public, TokenEndpointAuthMethod: method, RedirectURIs: md.RedirectURIs,
		PostLogoutRedirectURIs: md.PostLogoutRedirectURIs, GrantTypes: grants, Scopes: scopes,
		IDTokenSignedResponseAlg: md.IDTokenSignedResponseAlg}
	c, secret, err := spec.Build(now)
	if err != nil {
		return nil, "", regErr("invalid_client_metadata", err.Error())
	}
	if err := SealClientSecret(p.ring, c, secret); err != nil {
		return nil, "", err
	}
	c.Registered = true
	return c, secret, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// registrableRedirect is why u may not be registered ("" when it may).
func registrableRedirect(u string, public bool) string {
	pu, err := url.Parse(u)
	switch {
	case err != nil || !pu.IsAbs():
		return "not an absolute URI"
	case pu.Fragment != "" || strings.Contains(u, "#"):
		return "a redirect URI has no fragment"
	case pu.User != nil:
		return "no user information in a redirect URI"
	case pu.Scheme == "https" && pu.Host != "":
		return ""
	case pu.Scheme == "http" && loopbackIP(pu.Hostname()):
		return "" // a native app's loopback redirect (RFC 8252 §7.3)
	case pu.Scheme == "http":
		return "http only on a loopback IP (127.0.0.1, [::1]); otherwise https"
	case public && strings.Contains(pu.Scheme, "."):
		return "" // a private-use scheme of a native app (RFC 8252 §7.1)
	}
	return "https, http on a loopback IP, or a native app's reverse-domain scheme"
}

// register is POST /register.
func (p *Provider) register(rc *fasthttp.RequestCtx) error {
	if p.cfg.Registration == registrationToken {
		if err := p.initialAccess(rc); err != nil {
			return err
		}
	}
	md, err := readMetadata(rc)
	if err != nil {
		return err
	}
	now := p.now()
	c, secret, err := p.registrationClient(newJTI(), md, now)
	if err != nil {
		return err
	}
	rat := randomToken()
	c.RegistrationTokenHash = storage.HashOf(rat)
	ctx, cancel := requestCtx()
	defer cancel()
	if err := p.regDB.CreateClient(ctx, c); err != nil {
		return oauth.ErrUnavailable(err)
	}
	p.audit("client.registered", "client_id", c.ID, "ip", rc.RemoteIP().String())
	resp := p.registrationView(c)
	resp.ClientSecret, resp.RegistrationAccessToken = secret, rat
	rc.Response.Header.Set("Cache-Control", "no-store")
	return oauth.WriteJSON(rc, http.StatusCreated, resp)
}

// initialAccess admits a registration carrying an initial access token.
func (p *Provider) initialAccess(rc *fasthttp.RequestCtx) error {
	token, ok := bytes.CutPrefix(rc.Request.Header.Peek("Authorization"), []byte("Bearer "))
	if !ok || len(token) == 0 {
		return oauth.ErrInvalidToken(true, "registration here needs an initial access token")
	}
	ctx, cancel := requestCtx()
	defer cancel()
	t, err := p.regDB.GetAdminToken(ctx, storage.HashOf(string(token)))
	if errors.Is(err, storage.ErrNotFound) || err == nil && t.Kind != storage.TokenKindRegistration {
		p.log.Warn("registration refused: unknown or expired initial access token", "ip", rc.RemoteIP().String())
		return oauth.ErrInvalidToken(false, "the initial access token is unknown, revoked or expired")
	}
	if err != nil {
		return oauth.ErrUnavailable(err)
	}
	return nil
}

func readMetadata(rc *fasthttp.RequestCtx) (clientMetadata, error) {
	var md clientMetadata
	ct, _, _ := strings.Cut(string(rc.Request.Header.ContentType()), ";")
	if strings.TrimSpace(strings.ToLower(ct)) != "application/json" {
		return md, regErr("invalid_client_metadata", "the body must be application/json")
	}
	if err := json.Unmarshal(rc.PostBody(), &md); err != nil {
		return md, regErr("invalid_client_metadata", "the body is not a JSON object of client metadata")
	}
	return md, nil
}

func (p *Provider) registrationView(c *storage.Client) registrationResponse {
	zero := int64(0) // secrets do not expire (RFC 7591 §3.2.1)
	r := registrationResponse{clientMetadata: clientMetadata{ClientID: c.ID, RedirectURIs: c.RedirectURIs,
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, GrantTypes: c.GrantTypes, ResponseTypes: []string{"code"},
		ClientName: c.Name, Scope: strings.Join(c.Scopes, " "), PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
		IDTokenSignedResponseAlg: c.IDTokenSignedResponseAlg},
		ClientIDIssuedAt: c.CreatedAt.Unix(), RegistrationClientURI: p.cfg.Issuer + "/register/" + url.PathEscape(c.ID)}
	if c.TokenEndpointAuthMethod != authNone {
		r.ClientSecretExpiresAt = &zero
	}
	return r
}

// registered loads the client {id} of an RFC 7592 request and checks its
// registration access token. Every failure is the same 401, so the
// endpoint tells nothing of which clients exist.
func (p *Provider) registered(ctx context.Context, rc *fasthttp.RequestCtx) (*storage.Client, error) {
	id, _ := rc.UserValue("id").(string)
	token, _ := bytes.CutPrefix(rc.Request.Header.Peek("Authorization"), []byte("Bearer "))
	h := storage.HashOf(string(token))
	c, err := p.regDB.GetClient(ctx, id)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, oauth.ErrUnavailable(err)
	}
	if c == nil || !c.Registered || len(token) == 0 || subtle.ConstantTimeCompare(h[:], c.RegistrationTokenHash[:]) != 1 {
		p.log.Warn("registration management refused: wrong registration access token", "ip", rc.RemoteIP().String())
		return nil, oauth.ErrInvalidToken(len(token) == 0, "the registration access token is not this client's")
	}
	return c, nil
}

// readRegistration is GET /register/{id}.
func (p *Provider) readRegistration(rc *fasthttp.RequestCtx) error {
	ctx, cancel := requestCtx()
	defer cancel()
	c, err := p.registered(ctx, rc)
	if err != nil {
		return err
	}
	rc.Response.Header.Set("Cache-Control", "no-store")
	return oauth.WriteJSON(rc, http.StatusOK, p.registrationView(c))
}

// updateRegistration is PUT /register/{id}: the metadata is replaced
// (RFC 7592 §2.2); the secret and the registration access token stay.
func (p *Provider) updateRegistration(rc *fasthttp.RequestCtx) error {
	ctx, cancel := requestCtx()
	defer cancel()
	old, err := p.registered(ctx, rc)
	if err != nil {
		return err
	}
	md, err := readMetadata(rc)
	if err != nil {
		return err
	}
	if md.ClientID != old.ID {
		return regErr("invalid_client_metadata", "client_id must be the client's own")
	}
	c, _, err := p.registrationClient(old.ID, md, p.now())
	if err != nil {
		return err
	}
	if (c.TokenEndpointAuthMethod == authNone) != (old.TokenEndpointAuthMethod == authNone) {
		return regErr("invalid_client_metadata", "a client cannot change between public and confidential")
	}
	if c.TokenEndpointAuthMethod == authSecretJWT && len(old.SealedSecret) == 0 {
		return regErr("invalid_client_metadata", "a client cannot change to client_secret_jwt: register a new client")
	}
	c.SecretHash, c.SecretSalt, c.RegistrationTokenHash, c.CreatedAt = old.SecretHash, old.SecretSalt, old.RegistrationTokenHash, old.CreatedAt
	c.SealedSecret, c.PreviousSealedSecret = old.SealedSecret, old.PreviousSealedSecret
	if c.TokenEndpointAuthMethod != authSecretJWT {
		c.SealedSecret, c.PreviousSealedSecret = nil, nil
	}
	if err := p.regDB.UpdateClient(ctx, c); err != nil {
		return oauth.ErrUnavailable(err)
	}
	p.ForgetClient(c.ID)
	p.audit("client.registration_updated", "client_id", c.ID, "ip", rc.RemoteIP().String())
	rc.Response.Header.Set("Cache-Control", "no-store")
	return oauth.WriteJSON(rc, http.StatusOK, p.registrationView(c))
}

// deleteRegistration is DELETE /register/{id}.
func (p *Provider) deleteRegistration(rc *fasthttp.RequestCtx) error {
	ctx, cancel := requestCtx()
	defer cancel()
	c, err := p.registered(ctx, rc)
	if err != nil {
		return err
	}
	if err := p.regDB.DeleteClient(ctx, c.ID); err != nil {
		return oauth.ErrUnavailable(err)
	}
	p.ForgetClient(c.ID)
	p.audit("client.registration_deleted", "client_id", c.ID, "ip", rc.RemoteIP().String())
	rc.SetStatusCode(http.StatusNoContent)
	return nil
}
