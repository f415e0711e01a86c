package oauth

import (
	"encoding/json"

	"github.com/oidcgate/oidcgate/keys"
)

// The wire formats the provider writes and the edge reads, defined once.

// Introspection is an RFC 7662 §2.2 response. Inactive tokens carry only
// active=false.
type Introspection struct {
	Active    bool           `json:"active"`
	Scope     string         `json:"scope,omitempty"`
	ClientID  string         `json:"client_id,omitempty"`
	Sub       string         `json:"sub,omitempty"`
	Aud       keys.Audience  `json:"aud,omitempty"`
	Iss       string         `json:"iss,omitempty"`
	Exp       int64          `json:"exp,omitempty"`
	Iat       int64          `json:"iat,omitempty"`
	Jti       string         `json:"jti,omitempty"`
	TokenType string         `json:"token_type,omitempty"` // "Bearer" for access tokens
	TokenUse  string         `json:"token_use,omitempty"`  // access_token or refresh_token, as Hydra says
	Cnf       *Confirmation  `json:"cnf,omitempty"`        // the key a DPoP-bound token is bound to
	Act       map[string]any `json:"act,omitempty"`        // the actor of an exchanged token (RFC 8693 §4.1)
	// Extra are the token's other claims (roles, chosen user claims, the
	// token hook's): answered beside the fields above, never over them.
	Extra map[string]any `json:"-"`
}

// MarshalJSON writes the fields, then Extra's names that are not theirs.
func (i Introspection) MarshalJSON() ([]byte, error) {
	type plain Introspection
	b, err := json.Marshal(plain(i))
	if err != nil || len(i.Extra) == 0 {
		return b, err
	}
	var own map[string]json.RawMessage
	if err := json.Unmarshal(b, &own); err != nil {
		return nil, err
	}
	all := make(map[string]any, len(own)+len(i.Extra))
	for k, v := range i.Extra {
		all[k] = v
	}
	for k, v := range own {
		all[k] = v
	}
	return json.Marshal(all)
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
	// Cnf binds the token to a key (RFC 9449 §6: jkt) or a certificate.
	Cnf *Confirmation `json:"cnf,omitempty"`
	// Act is RFC 8693 §4.1's actor of a delegated (exchanged) token.
	Act map[string]any `json:"act,omitempty"`
}

// Confirmation is RFC 7800's cnf: the holder's key (DPoP, jkt) or client
// certificate (RFC 8705, x5t#S256).
type Confirmation struct {
	Jkt     string `json:"jkt,omitempty"`
	X5tS256 string `json:"x5t#S256,omitempty"`
}
