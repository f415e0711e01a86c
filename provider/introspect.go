package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// tokenStore is what introspection, revocation and userinfo read of the
// store.
type tokenStore interface {
	GetAccessToken(ctx context.Context, h storage.Hash) (*storage.AccessToken, error)
	DeleteAccessToken(ctx context.Context, h storage.Hash) error
	GetRefreshToken(ctx context.Context, h storage.Hash) (*storage.RefreshToken, error)
	GetUser(ctx context.Context, id string) (*storage.User, error)
}

var inactive = &oauth.Introspection{Active: false}

// authenticatedForm reads a form and authenticates its client: introspection
// and revocation require a client that can authenticate (not "none").
func (p *Provider) authenticatedForm(ctx *fasthttp.RequestCtx, sctx context.Context) (form, *storage.Client, error) {
	f, err := readForm(ctx)
	if err != nil {
		return f, nil, err
	}
	creds, err := clientCredentials(ctx.Request.Header.Peek("Authorization"), f)
	if err != nil {
		return f, nil, err
	}
	creds.cert, creds.chained = p.clientCertificate(ctx)
	if creds.method == authNone && creds.cert == nil {
		return f, nil, oauth.ErrInvalidClient(false, "this endpoint requires client authentication")
	}
	c, err := p.authenticate(sctx, creds)
	if err != nil {
		return f, nil, err
	}
	if c.TokenEndpointAuthMethod == authNone { // a public client, whatever certificate it showed
		return f, nil, oauth.ErrInvalidClient(false, "this endpoint requires client authentication")
	}
	if len(f.get("token")) == 0 {
		return f, nil, oauth.ErrInvalidRequest("token is required")
	}
	return f, c, nil
}

// introspect is RFC 7662.
func (p *Provider) introspect(ctx *fasthttp.RequestCtx) (err error) {
	defer func() {
		if err != nil {
			p.metrics.introspection.WithLabelValues(errorLabel(err)).Inc()
		}
	}()
	sctx, cancel := requestCtx()
	defer cancel()
	f, caller, err := p.authenticatedForm(ctx, sctx)
	if err != nil {
		return err
	}
	res, err := p.inspect(sctx, caller, f.str("token"))
	if err != nil {
		return err
	}
	p.metrics.introspection.WithLabelValues(map[bool]string{true: "active", false: "inactive"}[res.Active]).Inc()
	ctx.Response.Header.Set("Cache-Control", "no-store")
	return oauth.WriteJSON(ctx, fasthttp.StatusOK, res)
}

// resourceServer is the caller an in-process edge introspects as.
var resourceServer = &storage.Client{ID: "oidcgate-edge", IntrospectAny: true}

// Inspect introspects token for an in-process edge, which may see every
// client's tokens.
func (p *Provider) Inspect(ctx context.Context, token string) (*oauth.Introspection, error) {
	return p.inspect(ctx, resourceServer, token)
}

// looksLikeJWT: a compact JWS has exactly two dots; opaque tokens none.
func looksLikeJWT(token string) bool { return strings.Count(token, ".") == 2 }

// verifyAccessJWT checks a JWT access token's signature and issuer and
// returns its claims; expiry is the caller's to judge.
func (p *Provider) verifyAccessJWT(token string) (*oauth.AccessClaims, error) {
	payload, h, err := p.verifier.Verify([]byte(token))
	if err != nil {
		return nil, err
	}
	if h.Typ != "at+jwt" {
		return nil, errors.New("not an access token")
	}
	var c oauth.AccessClaims
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	if c.Iss != p.cfg.Issuer {
		return nil, errors.New("another issuer")
	}
	return &c, nil
}

// visible: a client sees its own tokens; a resource server registered to
// introspect any token sees all.
func visible(caller *storage.Client, owner string) bool {
	return caller.IntrospectAny || caller.ID == owner
}

// inspect is introspection without HTTP. Anything unknown, expired,
// revoked or not visible to the caller is simply inactive.
func (p *Provider) inspect(ctx context.Context, caller *storage.Client, token string) (*oauth.Introspection, error) {
	now := p.now()
	if looksLikeJWT(token) {
		c, err := p.verifyAccessJWT(token)
		if err != nil || c.Exp <= now.Unix() || !visible(caller, c.ClientID) {
			return inactive, nil
		}
		revoked, err := p.Revoked(ctx, c.Jti, c.Fid)
		if err != nil {
			return nil, oauth.ErrUnavailable(err)
		}
		if revoked {
			return inactive, nil
		}
		return &oauth.Introspection{Active: true, Scope: c.Scope, ClientID: c.ClientID, Sub: c.Sub, Aud: c.Aud, Iss: c.Iss,
			Exp: c.Exp, Iat: c.Iat, Jti: c.Jti, TokenType: tokenTypeOf(c.Cnf), TokenUse: "access_token", Cnf: c.Cnf, Act: c.Act}, nil
	}
	h := storage.HashOf(token)
	at, err := p.tokenDB.GetAccessToken(ctx, h)
	switch {
	case err == nil:
		if !visible(caller, at.ClientID) {
			return inactive, nil
		}
		if at.FamilyID != "" {
			if revoked, err := p.revs.revoked(ctx, "", at.FamilyID); err != nil {
				return nil, oauth.ErrUnavailable(err)
			} else if revoked {
				return inactive, nil
			}
		}
		return &oauth.Introspection{Active: true, Scope: strings.Join(at.Scopes, " "), ClientID: at.ClientID, Sub: at.Subject,
			Aud: at.Audience, Iss: p.cfg.Issuer, Exp: at.ExpiresAt.Unix(), Iat: at.CreatedAt.Unix(),
			TokenType: tokenType(at.Jkt), TokenUse: "access_token", Extra: at.Claims, Cnf: confirmation(at.Jkt, at.X5t)}, nil
	case !errors.Is(err, storage.ErrNotFound):
		return nil, oauth.ErrUnavailable(err)
	}
	rt, err := p.tokenDB.GetRefreshToken(ctx, h)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return inactive, nil
	case err != nil:
		return nil, oauth.ErrUnavailable(err)
	case !rt.UsedAt.IsZero() || !rt.RevokedAt.IsZero() || caller.ID != rt.ClientID:
		// Only the client holding a refresh token learns it is live: to a
		// resource server (introspect_any), it is no access token at all.
		return inactive, nil
	}
	return &oauth.Introspection{Active: true, Scope: strings.Join(rt.Scopes, " "), ClientID: rt.ClientID, Sub: rt.UserID,
		Aud: rt.Audience, Iss: p.cfg.Issuer, Exp: rt.ExpiresAt.Unix(), Iat: rt.CreatedAt.Unix(), TokenUse: "refresh_token"}, nil
}

// revoke is RFC 7009: 200 whether or not the token was known.
func (p *Provider) revoke(ctx *fasthttp.RequestCtx) (err error) {
	what := ""
	defer func() {
		if err != nil {
			what = errorLabel(err)
		}
		p.metrics.revocation.WithLabelValues(what).Inc()
	}()
	sctx, cancel := requestCtx()
	defer cancel()
	f, caller, err := p.authenticatedForm(ctx, sctx)
	if err != nil {
		return err
	}
	token := f.str("token")
	if what, err = p.revokeToken(sctx, caller, token); err != nil {
		return err
	}
	if what != "unknown" {
		p.revs.notify(token)
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetStatusCode(fasthttp.StatusOK)
	return nil
}

func errNotYours() *oauth.Error {
	return oauth.ErrUnauthorizedClient("the token was not issued to this client")
}

// revokeToken revokes token if the caller owns it and says what it was.
// The token type hint only orders a search, so it is not needed.
func (p *Provider) revokeToken(ctx context.Context, caller *storage.Client, token string) (string, error) {
	now := p.now()
	if looksLikeJWT(token) {
		c, err := p.verifyAccessJWT(token)
		if err != nil || c.Exp <= now.Unix() {
			return "unknown", nil // forged, foreign or already expired: nothing to do
		}
		if c.ClientID != caller.ID {
			return "", errNotYours()
		}
		if err := p.revs.token(ctx, c.Jti, time.Unix(c.Exp, 0)); err != nil {
			return "", oauth.ErrUnavailable(err)
		}
		return "jwt_access_token", nil
	}
	h := storage.HashOf(token)
	at, err := p.tokenDB.GetAccessToken(ctx, h)
	switch {
	case err == nil:
		if at.ClientID != caller.ID {
			return "", errNotYours()
		}
		if err := p.tokenDB.DeleteAccessToken(ctx, h); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return "", oauth.ErrUnavailable(err)
		}
		return "opaque_access_token", nil
	case !errors.Is(err, storage.ErrNotFound):
		return "", oauth.ErrUnavailable(err)
	}
	rt, err := p.tokenDB.GetRefreshToken(ctx, h)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return "unknown", nil
	case err != nil:
		return "", oauth.ErrUnavailable(err)
	case rt.ClientID != caller.ID:
		return "", errNotYours()
	}
	// The whole grant, as for a replayed code (RFC 7009 §2.1 allows it):
	// its refresh tokens and every access token issued from it.
	if err := p.revs.grant(ctx, rt.FamilyID); err != nil {
		return "", oauth.ErrUnavailable(err)
	}
	return "refresh_token", nil
}

// tokenTypeOf is the token_type of a token with confirmation c.
func tokenTypeOf(c *oauth.Confirmation) string {
	if c != nil && c.Jkt != "" {
		return "DPoP"
	}
	return "Bearer"
}
