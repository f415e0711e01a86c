package provider_test

import (
	"net/url"
	"testing"

	"github.com/oidcgate/oidcgate/provider"
)

const (
	grantExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	typeAccess    = "urn:ietf:params:oauth:token-type:access_token"
	typeID        = "urn:ietf:params:oauth:token-type:id_token"
)

// TestTokenExchange: RFC 8693 — impersonation (same subject, another
// audience), delegation (act, nested), ID tokens as subject tokens, the
// policy on scopes and audiences, and every refusal answered with the
// RFC's error.
func TestTokenExchange(t *testing.T) {
	everyBackend(t, func(t *testing.T, s *server) {
		const orders, billing = "https://orders.example.com", "https://billing.example.com"
		s.register(t, provider.ClientSpec{ID: "gateway", Secret: secret, GrantTypes: []string{grantExchange, "client_credentials"},
			Scopes: []string{"openid", "profile", "read", "write", "admin"}, Audiences: []string{orders, billing}, DefaultAudience: orders,
			TokenExchangeScopes: []string{"read"}})
		exchange := func(v url.Values) response {
			v.Set("grant_type", grantExchange)
			return s.post(t, "/token", v.Encode(), "gateway:"+secret)
		}
		// The subject: alice's tokens from the web client (openid profile).
		tok := s.grant(t, newBrowser(t), "openid profile")
		userAT, idt := tok["access_token"].(string), tok["id_token"].(string)

		r := exchange(url.Values{"subject_token": {userAT}, "subject_token_type": {typeAccess}, "audience": {billing}, "scope": {"profile"}})
		if r.status != 200 || r.json(t)["issued_token_type"] != typeAccess || r.json(t)["refresh_token"] != nil {
			t.Fatalf("impersonation: %d %s", r.status, r.body)
		}
		c := jwtClaims(t, r.json(t)["access_token"].(string))
		if c["sub"] != "alice-sub" || c["aud"] != billing || c["client_id"] != "gateway" || c["scope"] != "profile" || c["act"] != nil {
			t.Errorf("impersonated token: %v", c)
		}
		// Delegation: the gateway acts for alice; a second hop nests the acts.
		actor := s.token(t, "gateway", "")
		r = exchange(url.Values{"subject_token": {userAT}, "subject_token_type": {typeAccess}, "actor_token": {actor}, "actor_token_type": {typeAccess}})
		delegated := r.json(t)["access_token"].(string)
		if act, _ := jwtClaims(t, delegated)["act"].(map[string]any); r.status != 200 || act["sub"] != "gateway" {
			t.Fatalf("delegation: %d %s", r.status, r.body)
		}
		r = exchange(url.Values{"subject_token": {userAT}, "subject_token_type": {typeAccess}, "actor_token": {delegated}, "actor_token_type": {typeAccess}})
		act, _ := jwtClaims(t, r.json(t)["access_token"].(string))["act"].(map[string]any)
		if inner, _ := act["act"].(map[string]any); r.status != 200 || act["sub"] != "alice-sub" || inner["sub"] != "gateway" {
			t.Errorf("a nested act: %d %v", r.status, act)
		}
		// An ID token as the subject token; the policy's read is granted, no more.
		r = exchange(url.Values{"subject_token": {idt}, "subject_token_type": {typeID}, "scope": {"read"}})
		if r.status != 200 || jwtClaims(t, r.json(t)["access_token"].(string))["sub"] != "alice-sub" {
			t.Errorf("an ID token: %d %s", r.status, r.body)
		}
		revoked := s.grant(t, newBrowser(t), "openid")["access_token"].(string)
		s.post(t, "/revoke", "token="+revoked, "web:"+secret)
		for name, tc := range map[string]struct {
			v    url.Values
			code string
		}{
			"a wider scope":           {url.Values{"subject_token": {userAT}, "subject_token_type": {typeAccess}, "scope": {"write"}}, "invalid_scope"},
			"a scope of no one":       {url.Values{"subject_token": {userAT}, "subject_token_type": {typeAccess}, "scope": {"root"}}, "invalid_scope"},
			"another audience":        {url.Values{"subject_token": {userAT}, "subject_token_type": {typeAccess}, "audience": {"https://evil.example"}}, "invalid_target"},
			"a forged subject token":  {url.Values{"subject_token": {userAT + "x"}, "subject_token_type": {typeAccess}}, "invalid_request"},
			"a revoked subject token": {url.Values{"subject_token": {revoked}, "subject_token_type": {typeAccess}}, "invalid_request"},
			"no subject token":        {url.Values{"subject_token_type": {typeAccess}}, "invalid_request"},
			"the wrong type":          {url.Values{"subject_token": {userAT}, "subject_token_type": {typeID}}, "invalid_request"},
			"an unknown type":         {url.Values{"subject_token": {userAT}, "subject_token_type": {"urn:x"}}, "invalid_request"},
			"a refresh token asked":   {url.Values{"subject_token": {userAT}, "subject_token_type": {typeAccess}, "requested_token_type": {"urn:ietf:params:oauth:token-type:refresh_token"}}, "invalid_request"},
			"a bad actor token":       {url.Values{"subject_token": {userAT}, "subject_token_type": {typeAccess}, "actor_token": {"nope"}, "actor_token_type": {typeAccess}}, "invalid_request"},
		} {
			if r := exchange(tc.v); r.status != 400 || r.json(t)["error"] != tc.code {
				t.Errorf("%s: %d %s, want %s", name, r.status, r.body, tc.code)
			}
		}
		// A client without the grant may not exchange.
		if r := s.post(t, "/token", url.Values{"grant_type": {grantExchange}, "subject_token": {userAT}, "subject_token_type": {typeAccess}}.Encode(),
			"svc:"+secret); r.status != 400 || r.json(t)["error"] != "unauthorized_client" {
			t.Errorf("a client without the grant: %d %s", r.status, r.body)
		}
	})
}
