package provider

import (
	"bytes"
	"net/http"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/oauth"
)

// The UserInfo endpoint (OIDC Core §5.3) and RFC 6750 bearer tokens.

// bearerToken reads an RFC 6750 bearer token from the Authorization header
// or, for a form POST, the access_token parameter (§2.1, §2.2).
func bearerToken(ctx *fasthttp.RequestCtx) string {
	if h := ctx.Request.Header.Peek("Authorization"); len(h) > 7 && bytes.EqualFold(h[:7], []byte("bearer ")) {
		return string(bytes.TrimSpace(h[7:]))
	}
	if ctx.IsPost() && bytes.HasPrefix(ctx.Request.Header.ContentType(), []byte("application/x-www-form-urlencoded")) {
		return string(ctx.PostArgs().Peek("access_token"))
	}
	return ""
}

// userinfo is OIDC Core §5.3. A DPoP-bound token (RFC 9449 §7) is taken
// only with the DPoP scheme and a proof of its key for this request.
func (p *Provider) userinfo(ctx *fasthttp.RequestCtx) error {
	scheme, tok := authorizationScheme(ctx.Request.Header.Peek("Authorization"))
	if scheme != "dpop" {
		scheme, tok = "bearer", bearerToken(ctx)
	}
	if tok == "" {
		return oauth.ErrInvalidToken(true, "an access token is required")
	}
	sctx, cancel := requestCtx()
	defer cancel()
	res, err := p.inspect(sctx, resourceServer, tok)
	if err != nil {
		return err
	}
	if !res.Active || res.TokenUse != "access_token" {
		return oauth.ErrInvalidToken(false, "the access token is invalid, expired or revoked")
	}
	if res.Cnf != nil && res.Cnf.X5tS256 != "" { // certificate-bound (RFC 8705 §3)
		if cert, _ := p.clientCertificate(ctx); cert == nil || certThumbprint(cert) != res.Cnf.X5tS256 {
			return oauth.ErrInvalidToken(false, "the access token is bound to a client certificate this request does not show")
		}
	}
	if bound := res.Cnf != nil && res.Cnf.Jkt != ""; bound || scheme == "dpop" {
		if !bound || scheme != "dpop" {
			return errDPoP(http.StatusUnauthorized, "invalid_token", "a DPoP-bound token goes with the DPoP scheme and a proof; a bearer token with the Bearer scheme")
		}
		jkt, err := p.dpopProof(sctx, ctx, p.cfg.Issuer+"/userinfo", tok, http.StatusUnauthorized)
		if err != nil {
			return err
		}
		if jkt == "" || jkt != res.Cnf.Jkt {
			return errDPoP(http.StatusUnauthorized, "invalid_dpop_proof", "the DPoP proof is not of the key the token is bound to")
		}
	}
	scopes := strings.Fields(res.Scope)
	if !slices.Contains(scopes, "openid") {
		return oauth.ErrInsufficientScope("the token was not issued with the openid scope", "openid")
	}
	u, err := p.tokenDB.GetUser(sctx, res.Sub)
	if err != nil || u.Disabled {
		return oauth.ErrInvalidToken(false, "the token's user is gone")
	}
	out := p.releasedClaims(u, scopes)
	out["sub"] = u.ID
	ctx.Response.Header.Set("Cache-Control", "no-store")
	return oauth.WriteJSON(ctx, http.StatusOK, out)
}
