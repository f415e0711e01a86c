package provider

import (
	"context"
	"encoding/json"
	"slices"
	"sort"

	"github.com/oidcgate/oidcgate/provider/storage"
)

// What tokens say beyond the registered claims: the user claims each scope
// releases to ID tokens and userinfo (scope_claims), and in access tokens
// the claims a client chose, roles mapped from the user's groups per
// audience, static claims, and what the token hook adds.

// registeredClaims are never set from configuration, a user's record or
// the token hook: RFC 9068 §2.2, RFC 7519 §4.1 and oidcgate's own.
var registeredClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", "fid", "auth_time", "acr",
	"amr", "cnf", "azp", "nonce", "at_hash", "sid", "typ", "token_use", "active", "token_type", "act", "may_act"}

// registered reports whether name is a claim nothing may override.
func registered(name string) bool { return slices.Contains(registeredClaims, name) }

// defaultScopeClaims are OIDC Core §5.4's claims per scope, and groups.
var defaultScopeClaims = map[string][]string{
	"profile": {"name", "family_name", "given_name", "middle_name", "nickname", "preferred_username", "profile", "picture",
		"website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"},
	"email":   {"email", "email_verified"},
	"address": {"address"},
	"groups":  {"groups"}, // from the local store or an upstream connector
	"phone":   {"phone_number", "phone_number_verified"},
}

// mergeScopeClaims is the defaults with the configured scopes replacing
// theirs (and adding new ones).
func mergeScopeClaims(configured map[string][]string) map[string][]string {
	out := map[string][]string{}
	for k, v := range defaultScopeClaims {
		out[k] = v
	}
	for k, v := range configured {
		out[k] = v
	}
	return out
}

// releasedClaims are the claims of u that scopes release (ID token and
// userinfo), never a registered one.
func (p *Provider) releasedClaims(u *storage.User, scopes []string) map[string]any {
	out := map[string]any{}
	for _, s := range scopes {
		for _, name := range p.scopeClaims[s] {
			if v, ok := u.Claims[name]; ok && !registered(name) {
				out[name] = v
			}
		}
	}
	if slices.Contains(scopes, "profile") {
		if _, ok := out["preferred_username"]; !ok {
			out["preferred_username"] = u.Username
		}
	}
	return out
}

// groupsOf is the user's groups claim as strings.
func groupsOf(u *storage.User) []string {
	var out []string
	switch gs := u.Claims["groups"].(type) {
	case []any:
		for _, g := range gs {
			if s, ok := g.(string); ok {
				out = append(out, s)
			}
		}
	case []string:
		out = gs
	}
	return out
}

// accessClaims are the claims an access token of c carries beyond the
// registered ones, for user u (nil for client_credentials) and audience:
// the client's static claims, the user claims it chose, and the roles its
// role map gives the user's groups at each audience. The token hook's run
// after (hook.go).
func accessClaims(c *storage.Client, u *storage.User, audience []string) map[string]any {
	if len(c.StaticClaims) == 0 && (u == nil || len(c.AccessTokenClaims) == 0 && len(c.Roles) == 0) {
		return nil
	}
	out := map[string]any{}
	for k, v := range c.StaticClaims {
		if !registered(k) {
			out[k] = v
		}
	}
	if u == nil {
		return out
	}
	for _, name := range c.AccessTokenClaims {
		if v, ok := u.Claims[name]; ok && !registered(name) {
			out[name] = v
		}
	}
	roles := map[string]bool{}
	groups := groupsOf(u)
	for _, aud := range audience {
		for group, rs := range c.Roles[aud] {
			if slices.Contains(groups, group) {
				for _, r := range rs {
					roles[r] = true
				}
			}
		}
	}
	if len(roles) > 0 {
		list := make([]string, 0, len(roles))
		for r := range roles {
			list = append(list, r)
		}
		sort.Strings(list)
		out["roles"] = list // RFC 9068 §2.2.3.1
	}
	return out
}

// withExtra appends claims to a JSON object, leaving out registered names
// (the object's own claims win).
func withExtra(object []byte, extra map[string]any) ([]byte, error) {
	if len(extra) == 0 {
		return object, nil
	}
	names := make([]string, 0, len(extra))
	for k := range extra {
		if !registered(k) {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return object, nil
	}
	sort.Strings(names)
	out := object[:len(object)-1] // without the closing brace
	for _, k := range names {
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(extra[k])
		if err != nil {
			return nil, err
		}
		out = append(append(append(append(out, ','), kb...), ':'), vb...)
	}
	return append(out, '}'), nil
}

// userClaimsFor is the grant's extra access-token claims, hook included.
func (p *Provider) userClaimsFor(ctx context.Context, g userGrant, aud []string, grant string) (map[string]any, error) {
	extra := accessClaims(g.client, g.user, aud)
	return p.hook.run(ctx, hookRequest{GrantType: grant, ClientID: g.client.ID, Subject: g.user.ID, Username: g.user.Username,
		Groups: groupsOf(g.user), Scopes: g.scopes, Audience: aud, AMR: g.amr, Claims: extra})
}
