package oauth

import "github.com/oidcgate/oidcgate/keys"

// The wire formats the provider writes and the edge reads, defined once.

// Introspection is an RFC 7662 §2.2 response. Inactive tokens carry only
// active=false.
type Introspection struct {
	Active    bool          `json:"active"`
	Scope     string        `json:"scope,omitempty"`
	ClientID  string        `json:"client_id,omitempty"`
	Sub       string        `json:"sub,omitempty"`
	Aud       keys.Audience `json:"aud,omitempty"`
	Iss       string        `json:"iss,omitempty"`
	Exp       int64         `json:"exp,omitempty"`
	Iat       int64         `json:"iat,omitempty"`
	Jti       string        `json:"jti,omitempty"`
	TokenType string        `json:"token_type,omitempty"` // "Bearer" for access tokens
	TokenUse  string        `json:"token_use,omitempty"`  // access_token or refresh_token, as Hydra says
}

// AccessClaims are an RFC 9068 §2.2 JWT access token's claims, as the
// provider issues them and the edge reads them (a zero exp, nbf or iat is
// one the token does not carry).
//
// Fid is oidcgate's own private claim (RFC 7519 §4.3): the grant the token
// was issued from — an authorization code and every refresh token rotated
// from it, one token family. Revoking the grant (a replayed code, a reused
// or revoked refresh token) revokes all its access tokens with one
// revocation-list entry. Tokens of client_credentials carry none.
type AccessClaims struct {
	Iss      string        `json:"iss"`
	Sub      string        `json:"sub"`
	Aud      keys.Audience `json:"aud"`
	Exp      int64         `json:"exp"`
	Nbf      int64         `json:"nbf,omitempty"`
	Iat      int64         `json:"iat"`
	Jti      string        `json:"jti"`
	ClientID string        `json:"client_id"`
	Scope    string        `json:"scope,omitempty"`
	Fid      string        `json:"fid,omitempty"`
}
