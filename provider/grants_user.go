package provider

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// grantStore is what the user grants use of the store.
type grantStore interface {
	GetAuthCode(ctx context.Context, h storage.Hash) (*storage.AuthCode, error)
	ConsumeAuthCode(ctx context.Context, h storage.Hash, out storage.Issued) (*storage.AuthCode, error)
	GetRefreshToken(ctx context.Context, h storage.Hash) (*storage.RefreshToken, error)
	UseRefreshToken(ctx context.Context, h storage.Hash, out storage.Issued) (*storage.RefreshToken, error)
	CreateRefreshToken(ctx context.Context, t *storage.RefreshToken) error
	CreateAccessToken(ctx context.Context, t *storage.AccessToken) error
	GetUser(ctx context.Context, id string) (*storage.User, error)
	GetConsent(ctx context.Context, userID, clientID string) (*storage.Consent, error)
}

// The grants that issue tokens for a user: authorization_code and
// refresh_token (RFC 6749 §4.1.3, §6), and the ID tokens they carry.

// authorizationCode is RFC 6749 §4.1.3 with RFC 7636 §4.6. The code is
// checked first and spent last, in the one store transaction that writes
// the tokens it buys: a crash or a store error before that leaves it unused.
func (p *Provider) authorizationCode(ctx context.Context, c *storage.Client, req tokenRequest) (*tokenResponse, error) {
	if !slices.Contains(c.GrantTypes, grantAuthorizationCode) {
		return nil, oauth.ErrUnauthorizedClient("this client may not use the authorization code flow")
	}
	if req.code == "" {
		return nil, oauth.ErrInvalidRequest("code is required")
	}
	h := storage.HashOf(req.code)
	code, err := p.grantDB.GetAuthCode(ctx, h)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, oauth.ErrInvalidGrant("the code is unknown or expired")
	case err != nil:
		return nil, oauth.ErrUnavailable(err)
	case !code.UsedAt.IsZero():
		return nil, p.replayedCode(ctx, code, req.ip)
	}
	if err := checkCode(c, code, req); err != nil {
		// A failed redemption spends the code: whoever holds it without its
		// client or verifier gets no second try.
		if _, cerr := p.grantDB.ConsumeAuthCode(ctx, h, storage.Issued{}); cerr != nil && !errors.Is(cerr, storage.ErrAlreadyUsed) &&
			!errors.Is(cerr, storage.ErrNotFound) {
			return nil, oauth.ErrUnavailable(cerr)
		}
		return nil, err
	}
	u, err := p.grantUser(ctx, code.UserID)
	if err != nil {
		return nil, err
	}
	now := p.now()
	g := userGrant{client: c, user: u, jkt: req.jkt, x5t: req.x5t, scopes: code.Scopes, granted: code.Scopes, familyID: code.FamilyID, sessionID: code.SessionID,
		authTime: code.AuthTime, amr: code.AMR, nonce: code.Nonce}
	var refreshExp time.Time
	if slices.Contains(code.Scopes, "offline_access") && slices.Contains(c.GrantTypes, grantRefreshToken) {
		ttl := c.RefreshTokenTTL
		if ttl == 0 {
			ttl = p.cfg.RefreshTokenTTL
		}
		refreshExp = now.Add(ttl)
	}
	resp, out, err := p.mintUserTokens(ctx, g, grantAuthorizationCode, refreshExp, now)
	if err != nil {
		return nil, err
	}
	switch used, err := p.grantDB.ConsumeAuthCode(ctx, h, out); {
	case errors.Is(err, storage.ErrAlreadyUsed): // another redemption won the race
		return nil, p.replayedCode(ctx, used, req.ip)
	case errors.Is(err, storage.ErrNotFound):
		return nil, oauth.ErrInvalidGrant("the code is unknown or expired")
	case err != nil:
		return nil, oauth.ErrUnavailable(err)
	}
	p.metrics.issued.WithLabelValues(grantAuthorizationCode, c.AccessTokenFormat).Inc()
	return resp, nil
}

// checkCode is RFC 6749 §4.1.3's and RFC 7636 §4.6's checks of a code
// against the request redeeming it.
func checkCode(c *storage.Client, code *storage.AuthCode, req tokenRequest) error {
	switch {
	case code.ClientID != c.ID:
		return oauth.ErrInvalidGrant("the code was issued to another client")
	case req.redirectURI != code.RedirectURI &&
		// Omitted in both requests: the client's only registered URI (RFC 6749 §4.1.3).
		!(req.redirectURI == "" && len(c.RedirectURIs) == 1 && c.RedirectURIs[0] == code.RedirectURI):
		return oauth.ErrInvalidGrant("redirect_uri differs from the authorization request's")
	case code.CodeChallenge == "" && req.verifier != "":
		return oauth.ErrInvalidGrant("code_verifier sent for a request without code_challenge")
	case code.CodeChallenge != "" && !validVerifier(req.verifier):
		return oauth.ErrInvalidGrant("code_verifier is missing or malformed")
	case code.CodeChallenge != "" && subtle.ConstantTimeCompare([]byte(s256(req.verifier)), []byte(code.CodeChallenge)) != 1:
		return oauth.ErrInvalidGrant("code_verifier does not match the code_challenge")
	}
	return nil
}

// replayedCode answers a second redemption of a code: whoever holds the
// first tokens may be an attacker, so they are all revoked (RFC 6749 §4.1.2).
func (p *Provider) replayedCode(ctx context.Context, code *storage.AuthCode, ip net.IP) error {
	p.audit("code.replayed", "client_id", code.ClientID, "user_id", code.UserID, "family", code.FamilyID, "ip", ip.String())
	if err := p.revs.grant(ctx, code.FamilyID); err != nil {
		return oauth.ErrUnavailable(err)
	}
	return oauth.ErrInvalidGrant("the code was already used; every token issued from it is revoked")
}

// grantUser is the user a code or refresh token was issued for: one that no
// longer exists or is disabled ends the grant, a store failure does not.
func (p *Provider) grantUser(ctx context.Context, id string) (*storage.User, error) {
	u, err := p.grantDB.GetUser(ctx, id)
	switch {
	case errors.Is(err, storage.ErrNotFound) || err == nil && u.Disabled:
		return nil, oauth.ErrInvalidGrant("the user cannot sign in")
	case err != nil:
		return nil, oauth.ErrUnavailable(err)
	}
	return u, nil
}

// userGrant is what tokens issued for a user carry.
type userGrant struct {
	client    *storage.Client
	user      *storage.User
	scopes    []string // of the access token
	granted   []string // of the refresh token: the whole grant (RFC 6749 §6)
	familyID  string
	sessionID string
	authTime  time.Time
	amr       []string
	nonce     string
	jkt       string // DPoP: the key the tokens are bound to
	x5t       string // mTLS: the certificate they are bound to
}

// mintUserTokens makes an access token, a refresh token (when familyExp,
// the refresh family's absolute end, is set) and an ID token (for openid),
// and returns the records the caller must store with its grant.
func (p *Provider) mintUserTokens(ctx context.Context, g userGrant, grant string, familyExp, now time.Time) (*tokenResponse, storage.Issued, error) {
	var out storage.Issued
	aud, err := audiences(g.client, tokenRequest{})
	if err != nil {
		aud = []string{p.cfg.Issuer} // the provider itself: userinfo
	}
	extra, err := p.userClaimsFor(ctx, g, aud, grant)
	if err != nil {
		return nil, out, err
	}
	at, ttl, err := p.mintAccessToken(accessGrant{client: g.client, subject: g.user.ID, scopes: g.scopes, audience: aud,
		familyID: g.familyID, extra: extra, jkt: g.jkt, x5t: g.x5t}, now)
	if err != nil {
		return nil, out, err
	}
	out.Access = at.record
	resp := &tokenResponse{AccessToken: at.token, TokenType: tokenType(g.jkt), ExpiresIn: int64(ttl / time.Second), Scope: strings.Join(g.scopes, " ")}
	if !familyExp.IsZero() {
		rt := randomToken()
		out.Refresh = &storage.RefreshToken{Hash: storage.HashOf(rt), FamilyID: g.familyID,
			ClientID: g.client.ID, UserID: g.user.ID, SessionID: g.sessionID, Scopes: g.granted, Audience: aud,
			AuthTime: g.authTime, AMR: g.amr, CreatedAt: now, ExpiresAt: minTime(familyExp, now.Add(p.cfg.RefreshIdleTTL)),
			FamilyExpiresAt: familyExp}
		if g.client.TokenEndpointAuthMethod == authNone {
			out.Refresh.Jkt = g.jkt // a public client's refresh tokens are bound to its key
		}
		resp.RefreshToken = rt
	}
	if slices.Contains(g.scopes, "openid") {
		if resp.IDToken, err = p.idToken(g, at.token, now); err != nil {
			return nil, out, err
		}
	}
	return resp, out, nil
}

// idClaims is an ID token (OIDC Core §2).
type idClaims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      string   `json:"aud"`
	Exp      int64    `json:"exp"`
	Iat      int64    `json:"iat"`
	AuthTime int64    `json:"auth_time"`
	Nonce    string   `json:"nonce,omitempty"`
	AtHash   string   `json:"at_hash,omitempty"`
	Sid      string   `json:"sid,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	ACR      string   `json:"acr"`
	Azp      string   `json:"azp"`
}

// idTokenAlg is the client's registered algorithm, or RS256 (OIDC Core
// §3.1.3.7's default).
func (p *Provider) idTokenAlg(c *storage.Client) string {
	if c.IDTokenSignedResponseAlg != "" && slices.Contains(p.ring.Algs(), c.IDTokenSignedResponseAlg) {
		return c.IDTokenSignedResponseAlg
	}
	return keys.RS256
}

func (p *Provider) idToken(g userGrant, accessToken string, now time.Time) (string, error) {
	alg := p.idTokenAlg(g.client)
	ttl := g.client.IDTokenTTL
	if ttl == 0 {
		ttl = p.cfg.IDTokenTTL
	}
	payload, err := json.Marshal(idClaims{Iss: p.cfg.Issuer, Sub: g.user.ID, Aud: g.client.ID, Exp: now.Add(ttl).Unix(),
		Iat: now.Unix(), AuthTime: g.authTime.Unix(), Nonce: g.nonce, AtHash: atHash(alg, accessToken), Sid: g.sessionID,
		AMR: g.amr, ACR: acrOf(g.amr), Azp: g.client.ID})
	if err != nil {
		return "", err
	}
	// The claims the scopes release, as userinfo answers them (OIDC Core §5.4).
	if payload, err = withExtra(payload, p.releasedClaims(g.user, g.scopes)); err != nil {
		return "", err
	}
	return p.ring.Sign(alg, "JWT", payload)
}

// atHash is OIDC Core §3.1.3.6: the left half of the access token's hash
// under the ID token's algorithm's hash (SHA-512 for Ed25519).
func atHash(alg, token string) string {
	if alg == keys.EdDSA {
		sum := sha512.Sum512([]byte(token))
		return base64.RawURLEncoding.EncodeToString(sum[:32])
	}
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// consentWithdrawn: the grant needed the user's consent (a client that is
// not first-party, or offline access), and the user has withdrawn it since
// (the account page): its refresh tokens stop with it.
func (p *Provider) consentWithdrawn(ctx context.Context, c *storage.Client, rt *storage.RefreshToken) (bool, error) {
	if c.FirstParty && !slices.Contains(rt.Scopes, "offline_access") {
		return false, nil
	}
	_, err := p.grantDB.GetConsent(ctx, rt.UserID, c.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return true, nil
	}
	return false, err
}

// refreshToken is RFC 6749 §6: the token rotates on every use, and a
// rotated token's reuse revokes the family — except within the reuse grace,
// where it is a client retrying an answer it lost. Everything is checked
// before the token is spent, in the transaction that writes its successor.
func (p *Provider) refreshToken(ctx context.Context, c *storage.Client, req tokenRequest) (*tokenResponse, error) {
	if !slices.Contains(c.GrantTypes, grantRefreshToken) {
		return nil, oauth.ErrUnauthorizedClient("this client may not use refresh tokens")
	}
	if req.refresh == "" {
		return nil, oauth.ErrInvalidRequest("refresh_token is required")
	}
	h := storage.HashOf(req.refresh)
	rt, err := p.grantDB.GetRefreshToken(ctx, h)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, oauth.ErrInvalidGrant("the refresh token is unknown or expired")
	case err != nil:
		return nil, oauth.ErrUnavailable(err)
	case rt.ClientID != c.ID:
		return nil, oauth.ErrInvalidGrant("the refresh token was issued to another client")
	}
	scopes := rt.Scopes
	if req.scope != nil {
		for _, s := range req.scope {
			if !slices.Contains(rt.Scopes, s) {
				return nil, oauth.ErrInvalidScope("scope %q was not granted", s)
			}
		}
		scopes = req.scope
	}
	now := p.now()
	if !rt.UsedAt.IsZero() || !rt.RevokedAt.IsZero() {
		if !p.inGrace(rt, now) {
			return nil, p.reusedRefresh(ctx, rt, req.ip)
		}
	}
	// A family revoked while this token was being rotated may have missed
	// its successor; the revocation list does not.
	if revoked, err := p.revs.revoked(ctx, "", rt.FamilyID); err != nil {
		return nil, oauth.ErrUnavailable(err)
	} else if revoked {
		return nil, oauth.ErrInvalidGrant("the refresh token was revoked")
	}
	if withdrawn, err := p.consentWithdrawn(ctx, c, rt); err != nil {
		return nil, oauth.ErrUnavailable(err)
	} else if withdrawn {
		if err := p.revs.grant(ctx, rt.FamilyID); err != nil {
			return nil, oauth.ErrUnavailable(err)
		}
		return nil, oauth.ErrInvalidGrant("the user withdrew this application's access")
	}
	u, err := p.grantUser(ctx, rt.UserID)
	if err != nil {
		return nil, err
	}
	// A refresh token bound to a DPoP key (a public client's) needs a proof
	// of that key (RFC 9449 §5).
	if rt.Jkt != "" && req.jkt != rt.Jkt {
		return nil, oauth.New(http.StatusBadRequest, "invalid_dpop_proof", "this refresh token is bound to a DPoP key: send a proof of that key")
	}
	g := userGrant{client: c, user: u, jkt: req.jkt, x5t: req.x5t, scopes: scopes, granted: rt.Scopes, familyID: rt.FamilyID, sessionID: rt.SessionID,
		authTime: rt.AuthTime, amr: rt.AMR}
	// The family keeps its absolute expiry; narrowed scopes stay narrowed
	// only for this access token, the new refresh token keeps the grant.
	familyExp := rt.FamilyExpiresAt
	if familyExp.IsZero() {
		familyExp = rt.ExpiresAt
	}
	resp, out, err := p.mintUserTokens(ctx, g, grantRefreshToken, familyExp, now)
	if err != nil {
		return nil, err
	}
	if rt.UsedAt.IsZero() {
		used, err := p.grantDB.UseRefreshToken(ctx, h, out)
		switch {
		case errors.Is(err, storage.ErrAlreadyUsed) && !p.inGrace(used, now):
			return nil, p.reusedRefresh(ctx, used, req.ip)
		case errors.Is(err, storage.ErrAlreadyUsed): // a concurrent retry: answered like a late one, below
		case errors.Is(err, storage.ErrNotFound):
			return nil, oauth.ErrInvalidGrant("the refresh token is unknown or expired")
		case err != nil:
			return nil, oauth.ErrUnavailable(err)
		default:
			p.metrics.issued.WithLabelValues(grantRefreshToken, c.AccessTokenFormat).Inc()
			return resp, nil
		}
	}
	// A retry within the grace: a fresh pair of the same family, the
	// rotated token staying rotated.
	if err := p.grantDB.CreateRefreshToken(ctx, out.Refresh); err != nil {
		return nil, oauth.ErrUnavailable(err)
	}
	if out.Access != nil {
		if err := p.grantDB.CreateAccessToken(ctx, out.Access); err != nil {
			return nil, oauth.ErrUnavailable(err)
		}
	}
	p.metrics.issued.WithLabelValues(grantRefreshToken, c.AccessTokenFormat).Inc()
	return resp, nil
}

// inGrace: a rotated (not revoked) token presented again within the reuse
// grace of its rotation is a client retrying an answer it never got.
func (p *Provider) inGrace(rt *storage.RefreshToken, now time.Time) bool {
	return rt.RevokedAt.IsZero() && !rt.UsedAt.IsZero() && p.cfg.RefreshReuseGrace > 0 && now.Before(rt.UsedAt.Add(p.cfg.RefreshReuseGrace))
}

// reusedRefresh answers a rotated or revoked token presented again: the
// family is revoked, since the token may have been stolen.
func (p *Provider) reusedRefresh(ctx context.Context, rt *storage.RefreshToken, ip net.IP) error {
	p.audit("refresh.reuse_detected", "client_id", rt.ClientID, "user_id", rt.UserID, "family", rt.FamilyID, "ip", ip.String())
	if err := p.revs.grant(ctx, rt.FamilyID); err != nil {
		return oauth.ErrUnavailable(err)
	}
	return oauth.ErrInvalidGrant("the refresh token was already used or revoked; its family is revoked")
}
