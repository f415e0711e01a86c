package provider

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// tokenRequest is what a grant handler needs from the request.
type tokenRequest struct {
	scope     []string // nil: not given
	resources []string // RFC 8707 resource parameters
	audience  []string // the space-separated audience parameter

	code, redirectURI, verifier string // authorization_code
	refresh                     string // refresh_token
	deviceCode                  string // device_code (RFC 8628)
	jkt                         string // the DPoP proof's key thumbprint, if any (RFC 9449)
	ip                          net.IP // the client's address, for audit events
	x5t                         string // the client certificate's thumbprint its tokens are bound to, if any
	exchange                    exchangeRequest
}

// tokenResponse is RFC 6749 §5.1.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	// IssuedTokenType is RFC 8693 §2.2.1's, for token exchange.
	IssuedTokenType string `json:"issued_token_type,omitempty"`
}

// grantHandler issues tokens for one grant type to an authenticated client.
type grantHandler func(ctx context.Context, c *storage.Client, req tokenRequest) (*tokenResponse, error)

// grants is the one switch on grant_type.
func (p *Provider) grants() map[string]grantHandler {
	return map[string]grantHandler{
		grantClientCredentials: p.clientCredentials,
		grantAuthorizationCode: p.authorizationCode,
		grantRefreshToken:      p.refreshToken,
		grantTokenExchange:     p.tokenExchange,
		grantDeviceCode:        p.deviceCode,
	}
}

// requestCtx bounds the store calls of one request: a fasthttp RequestCtx
// has no deadline of its own.
func requestCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

// token is the token endpoint (RFC 6749 §3.2).
func (p *Provider) token(ctx *fasthttp.RequestCtx) (err error) {
	start := time.Now()
	grantType := ""
	defer func() {
		p.metrics.tokenDuration.WithLabelValues(grantLabel(grantType), errorLabel(err)).Observe(time.Since(start).Seconds())
	}()
	f, err := readForm(ctx)
	if err != nil {
		return err
	}
	grantType = f.str("grant_type")
	handler, ok := p.grantHandlers[grantType]
	switch {
	case grantType == "":
		return oauth.ErrInvalidRequest("grant_type is required")
	case !ok:
		return oauth.ErrUnsupportedGrantType("grant_type %q is not supported", grantType)
	}
	creds, err := clientCredentials(ctx.Request.Header.Peek("Authorization"), f)
	if err != nil {
		return err
	}
	creds.cert, creds.chained = p.clientCertificate(ctx)
	req := tokenRequest{resources: f.all("resource")}
	if s := f.get("scope"); len(s) > 0 {
		if req.scope, err = parseScope(string(s)); err != nil {
			return err
		}
	}
	if a := f.get("audience"); len(a) > 0 {
		req.audience = strings.Fields(string(a))
	}
	req.code, req.redirectURI, req.verifier = f.str("code"), f.str("redirect_uri"), f.str("code_verifier")
	req.refresh, req.deviceCode = f.str("refresh_token"), f.str("device_code")
	req.exchange = exchangeRequest{subject: f.str("subject_token"), subjectType: f.str("subject_token_type"), actor: f.str("actor_token"),
		actorType: f.str("actor_token_type"), requestedType: f.str("requested_token_type")}

	sctx, cancel := requestCtx()
	defer cancel()
	req.ip = ctx.RemoteIP() // for audit events
	client, err := p.authenticate(sctx, creds)
	if err != nil {
		return err
	}
	if req.jkt, err = p.dpopProof(sctx, ctx, p.cfg.Issuer+"/token", "", http.StatusBadRequest); err != nil {
		return err
	}
	if client.DPoPBoundAccessTokens && req.jkt == "" {
		return oauth.ErrInvalidRequest("this client's tokens are DPoP-bound: send a DPoP proof")
	}
	if m := client.TokenEndpointAuthMethod; creds.cert != nil && (m == authTLSClient || m == authSelfSignedTLSClient || client.TLSCertBoundAccessTokens) {
		req.x5t = certThumbprint(creds.cert) // certificate-bound tokens (RFC 8705 §3)
	}
	resp, err := handler(sctx, client, req)
	if err != nil {
		return err
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("Pragma", "no-cache")
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
	return nil
}

// clientCredentials is RFC 6749 §4.4: a confidential client gets an access
// token for itself.
func (p *Provider) clientCredentials(ctx context.Context, c *storage.Client, req tokenRequest) (*tokenResponse, error) {
	if c.TokenEndpointAuthMethod == authNone || !slices.Contains(c.GrantTypes, grantClientCredentials) {
		return nil, oauth.ErrUnauthorizedClient("this client may not use client_credentials")
	}
	scopes, err := grantedScopes(c, req.scope)
	if err != nil {
		return nil, err
	}
	aud, err := audiences(c, req)
	if err != nil {
		return nil, err
	}
	extra := accessClaims(c, nil, aud)
	if c.TokenHook { // off the hot path unless the client asks for it
		if extra, err = p.hook.run(ctx, hookRequest{GrantType: grantClientCredentials, ClientID: c.ID, Subject: c.ID, Scopes: scopes,
			Audience: aud, Claims: extra}); err != nil {
			return nil, err
		}
	}
	now := p.now()
	at, ttl, err := p.mintAccessToken(accessGrant{client: c, subject: c.ID, scopes: scopes, audience: aud, extra: extra, jkt: req.jkt, x5t: req.x5t}, now)
	if err != nil {
		return nil, err
	}
	if at.record != nil {
		if err := p.grantDB.CreateAccessToken(ctx, at.record); err != nil {
			return nil, oauth.ErrUnavailable(err)
		}
	}
	p.metrics.issued.WithLabelValues(grantClientCredentials, c.AccessTokenFormat).Inc()
	return &tokenResponse{AccessToken: at.token, TokenType: tokenType(req.jkt), ExpiresIn: int64(ttl / time.Second), Scope: strings.Join(scopes, " ")}, nil
}

// tokenType is the token_type of an access token bound to jkt ("": none).
func tokenType(jkt string) string {
	if jkt != "" {
		return "DPoP"
	}
	return "Bearer"
}

// confirmation is the cnf of a token bound to jkt, or nil.
func confirmation(jkt, x5t string) *oauth.Confirmation {
	if jkt == "" && x5t == "" {
		return nil
	}
	return &oauth.Confirmation{Jkt: jkt, X5tS256: x5t}
}

// grantedScopes checks requested scopes against the client's; none
// requested means all the client may have (RFC 6749 §3.3's pre-defined
// default).
func grantedScopes(c *storage.Client, requested []string) ([]string, error) {
	if requested == nil {
		return c.Scopes, nil
	}
	for _, s := range requested {
		if !slices.Contains(c.Scopes, s) {
			return nil, oauth.ErrInvalidScope("scope %q is not allowed for this client", s)
		}
	}
	return requested, nil
}

// audiences resolves RFC 8707 resource and audience parameters against
// the client's allowed audiences, falling back to its default.
func audiences(c *storage.Client, req tokenRequest) ([]string, error) {
	var out []string
	for _, r := range req.resources {
		if u, err := url.Parse(r); err != nil || !u.IsAbs() || u.Fragment != "" {
			return nil, oauth.ErrInvalidTarget("resource %q must be an absolute URI without a fragment", r)
		}
	}
	for _, a := range append(req.resources, req.audience...) {
		if !slices.Contains(c.Audiences, a) {
			return nil, oauth.ErrInvalidTarget("%q is not an audience this client may request", a)
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	switch {
	case c.DefaultAudience != "":
		return []string{c.DefaultAudience}, nil
	case len(c.Audiences) == 1:
		return c.Audiences, nil
	}
	return nil, oauth.ErrInvalidTarget("no resource or audience requested, and this client has no default audience")
}

// accessGrant is what an access token is issued for.
type accessGrant struct {
	client   *storage.Client
	subject  string
	scopes   []string
	audience []string
	familyID string
	extra    map[string]any // claims besides the registered ones (claims.go)
	jkt      string         // DPoP: the key the token is bound to
	x5t      string         // mTLS: the certificate the token is bound to
	act      map[string]any // token exchange: the actor chain (RFC 8693 §4.1)
}

// randomToken is 256 bits, base64url: opaque tokens and their kin.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newJTI is a 128-bit token identifier.
func newJTI() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// minted is a new access token and, for an opaque one, the record to store.
type minted struct {
	token  string
	record *storage.AccessToken // nil for a JWT
}

// mintAccessToken makes a JWT (RFC 9068) or an opaque token, per client;
// it stores nothing.
func (p *Provider) mintAccessToken(g accessGrant, now time.Time) (minted, time.Duration, error) {
	ttl := g.client.AccessTokenTTL
	if ttl == 0 {
		ttl = p.cfg.AccessTokenTTL
	}
	exp := now.Add(ttl)
	if g.client.AccessTokenFormat == formatOpaque {
		tok := randomToken()
		return minted{token: tok, record: &storage.AccessToken{
			Hash: storage.HashOf(tok), ClientID: g.client.ID, Subject: g.subject, Scopes: g.scopes,
			Audience: g.audience, FamilyID: g.familyID, Claims: withAct(g.extra, g.act), Jkt: g.jkt, X5t: g.x5t, CreatedAt: now, ExpiresAt: exp,
		}}, ttl, nil
	}
	payload, err := json.Marshal(oauth.AccessClaims{
		Iss: p.cfg.Issuer, Sub: g.subject, Aud: g.audience, Exp: exp.Unix(), Iat: now.Unix(),
		Jti: newJTI(), ClientID: g.client.ID, Scope: strings.Join(g.scopes, " "), Fid: g.familyID, Cnf: confirmation(g.jkt, g.x5t), Act: g.act,
	})
	if err != nil {
		return minted{}, 0, err
	}
	if payload, err = withExtra(payload, g.extra); err != nil {
		return minted{}, 0, err
	}
	tok, err := p.ring.Sign(p.cfg.AccessTokenAlg, "at+jwt", payload)
	if err != nil {
		return minted{}, 0, err
	}
	return minted{token: tok}, ttl, nil
}

// cachedClient is a client record as the cache holds it: fresh until
// fresh (Unix nanoseconds), then kept for ClientStaleTTL more to serve
// while the store fails.
type cachedClient struct {
	c     *storage.Client
	fresh int64
}

// client returns a client record, from the cache when it can. A cached
// record past its TTL is read again; should the store fail then (not: say
// the client is gone), the cached one serves for up to ClientStaleTTL more,
// so token issuance rides out a store outage.
func (p *Provider) client(ctx context.Context, id string) (*storage.Client, error) {
	e, cached := p.clients.Get(id)
	now := p.now().UnixNano()
	if cached && now < e.fresh {
		return e.c, nil
	}
	c, err := p.clientDB.GetClient(ctx, id)
	if err != nil {
		if cached && !errors.Is(err, storage.ErrNotFound) && now < e.fresh+int64(p.cfg.ClientStaleTTL) {
			// Once per 10 s, not per request: an outage must not flood the log.
			if last := p.staleLogged.Load(); now-last >= int64(10*time.Second) && p.staleLogged.CompareAndSwap(last, now) {
				p.log.Warn("store unavailable; serving cached client records", "client_id", id, "error", err)
			}
			return e.c, nil
		}
		return nil, err
	}
	p.clients.Set(id, cachedClient{c: c, fresh: now + int64(p.cfg.ClientCacheTTL)}, p.cfg.ClientCacheTTL+p.cfg.ClientStaleTTL)
	return c, nil
}

// ForgetClient drops a client from the cache after this process changed it.
func (p *Provider) ForgetClient(id string) { p.clients.Del(id) }

// withAct is an opaque token's claims with its actor chain (introspection
// answers act beside the rest).
func withAct(claims, act map[string]any) map[string]any {
	if act == nil {
		return claims
	}
	out := map[string]any{"act": act}
	for k, v := range claims {
		if k != "act" {
			out[k] = v
		}
	}
	return out
}
