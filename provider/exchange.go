package provider

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// Token exchange (RFC 8693): a client presents a token of this issuer —
// an access token or an ID token — as subject_token and gets an access
// token for another audience: for the same subject (impersonation), or,
// with an actor_token, for the subject with the actor recorded in act
// (delegation; acts nest, §4.1). The client may exchange only for its own
// audiences, and never for more scopes than the subject token carries,
// but for those its registration's token_exchange_scopes grants. Refresh
// tokens are never issued by exchange.

const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

	tokenTypeAccess = "urn:ietf:params:oauth:token-type:access_token"
	tokenTypeID     = "urn:ietf:params:oauth:token-type:id_token"
	tokenTypeJWT    = "urn:ietf:params:oauth:token-type:jwt"
)

// exchangeRequest is a token exchange's parameters.
type exchangeRequest struct {
	subject, subjectType, actor, actorType, requestedType string
}

// exchangedToken is what a subject or actor token says.
type exchangedToken struct {
	sub    string
	scopes []string       // nil for an ID token
	act    map[string]any // the token's own act, if any
}

// readExchangedToken validates a token of this issuer given as typ.
func (p *Provider) readExchangedToken(ctx context.Context, token, typ, what string) (*exchangedToken, error) {
	if token == "" {
		return nil, oauth.ErrInvalidRequest("%s_token is required", what)
	}
	switch typ {
	case tokenTypeAccess, tokenTypeJWT:
		if typ == tokenTypeJWT && !looksLikeJWT(token) {
			return nil, oauth.ErrInvalidRequest("%s_token is not a JWT", what)
		}
		res, err := p.inspect(ctx, resourceServer, token)
		if err != nil {
			return nil, err
		}
		if !res.Active || res.TokenUse != "access_token" {
			return nil, oauth.ErrInvalidRequest("%s_token is not an active access token of this issuer", what)
		}
		t := &exchangedToken{sub: res.Sub, scopes: strings.Fields(res.Scope)}
		if act, ok := res.Extra["act"].(map[string]any); ok { // an opaque token's
			t.act = act
		} else if res.Act != nil {
			t.act = res.Act
		}
		return t, nil
	case tokenTypeID:
		payload, h, err := p.verifier.Verify([]byte(token))
		var c idClaims
		if err != nil || h.Typ != "JWT" || json.Unmarshal(payload, &c) != nil || c.Iss != p.cfg.Issuer || c.Exp <= p.now().Unix() {
			return nil, oauth.ErrInvalidRequest("%s_token is not a valid, unexpired ID token of this issuer", what)
		}
		return &exchangedToken{sub: c.Sub}, nil
	}
	return nil, oauth.ErrInvalidRequest("%s_token_type must be %s, %s or %s", what, tokenTypeAccess, tokenTypeID, tokenTypeJWT)
}

// tokenExchange is RFC 8693 §2.1.
func (p *Provider) tokenExchange(ctx context.Context, c *storage.Client, req tokenRequest) (*tokenResponse, error) {
	if c.TokenEndpointAuthMethod == authNone || !slices.Contains(c.GrantTypes, grantTokenExchange) {
		return nil, oauth.ErrUnauthorizedClient("this client may not exchange tokens")
	}
	x := req.exchange
	if x.requestedType != "" && x.requestedType != tokenTypeAccess {
		return nil, oauth.ErrInvalidRequest("requested_token_type may only be %s", tokenTypeAccess)
	}
	subj, err := p.readExchangedToken(ctx, x.subject, x.subjectType, "subject")
	if err != nil {
		return nil, err
	}
	var act map[string]any
	if x.actor != "" || x.actorType != "" {
		actor, err := p.readExchangedToken(ctx, x.actor, x.actorType, "actor")
		if err != nil {
			return nil, err
		}
		act = map[string]any{"sub": actor.sub}
		if actor.act != nil {
			act["act"] = actor.act // the actor's own delegation chain (RFC 8693 §4.1)
		}
	} else if subj.act != nil {
		act = subj.act // impersonating a delegated token keeps its chain
	}
	// Scopes: those asked for (default: the subject token's that the client
	// may have), each carried by the subject token or granted by the policy.
	scopes := req.scope
	if scopes == nil {
		for _, s := range subj.scopes {
			if slices.Contains(c.Scopes, s) {
				scopes = append(scopes, s)
			}
		}
	}
	for _, s := range scopes {
		switch {
		case !slices.Contains(c.Scopes, s):
			return nil, oauth.ErrInvalidScope("scope %q is not allowed for this client", s)
		case !slices.Contains(subj.scopes, s) && !slices.Contains(c.TokenExchangeScopes, s):
			return nil, oauth.ErrInvalidScope("scope %q is wider than the subject token's", s)
		}
	}
	aud, err := audiences(c, req)
	if err != nil {
		return nil, err
	}
	now := p.now()
	at, ttl, err := p.mintAccessToken(accessGrant{client: c, subject: subj.sub, scopes: scopes, audience: aud, jkt: req.jkt, x5t: req.x5t, act: act}, now)
	if err != nil {
		return nil, err
	}
	if at.record != nil {
		if err := p.grantDB.CreateAccessToken(ctx, at.record); err != nil {
			return nil, oauth.ErrUnavailable(err)
		}
	}
	p.metrics.issued.WithLabelValues("token_exchange", cmpOr(c.AccessTokenFormat, formatJWT)).Inc()
	return &tokenResponse{AccessToken: at.token, TokenType: tokenType(req.jkt), ExpiresIn: int64(ttl.Seconds()),
		Scope: strings.Join(scopes, " "), IssuedTokenType: tokenTypeAccess}, nil
}
