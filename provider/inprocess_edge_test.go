package provider_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oidcgate/oidcgate/edge"
	"github.com/oidcgate/oidcgate/keys"
)

// TestFamilyRevocationReachesCachedTokens: in `oidcgate all` the edge
// verifies with the provider's ring and checks its revocation list; a
// replayed code, and a refresh token revoked at /revoke, end the family's
// access tokens at the edge at once — also those its cache already holds.
func TestFamilyRevocationReachesCachedTokens(t *testing.T) {
	s := start(t, backends()[0].open(t))
	v, err := edge.NewValidator(edge.ValidatorConfig{Issuer: s.issuer, Algs: []string{keys.ES256}, Leeway: 30 * time.Second,
		RequireTyp: true, CacheTTL: 5 * time.Minute, CacheSize: 1000}, s.ring, s.p, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	route := &edge.Route{PathPrefix: "/", Token: edge.TokenEither}
	check := func(at string) int {
		_, d := v.Check(context.Background(), time.Now(), []byte("Bearer "+at), route)
		return d.Status
	}
	verifier := strings.Repeat("v", 43)
	grant := func() (code string, tok map[string]any) {
		b := newBrowser(t)
		p := b.get(authURL(s, map[string]string{"scope": "openid offline_access"}))
		p = b.signIn(s, p, alicePassword)
		if p.loc == nil {
			p = b.decide(s, p, "allow")
		}
		code = codeAt(t, s, p, "st")
		r := s.post(t, "/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect},
			"code_verifier": {verifier}}.Encode(), "web:"+secret)
		if r.status != 200 {
			t.Fatalf("redeem: %d %s", r.status, r.body)
		}
		return code, r.json(t)
	}
	code, tok := grant()
	at := tok["access_token"].(string)
	for range 2 { // verified, then from the cache
		if st := check(at); st != 200 {
			t.Fatalf("before: %d", st)
		}
	}
	v.WaitForCache()
	s.post(t, "/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect},
		"code_verifier": {verifier}}.Encode(), "web:"+secret) // the replay
	if st := check(at); st != 401 {
		t.Errorf("a replayed code's cached access token at the edge: %d, want 401", st)
	}

	_, tok = grant()
	at = tok["access_token"].(string)
	for range 2 {
		if st := check(at); st != 200 {
			t.Fatalf("second grant: %d", st)
		}
	}
	if r := s.revoke(t, "web:"+secret, tok["refresh_token"].(string)); r.status != 200 {
		t.Fatalf("revoke: %d", r.status)
	}
	if m := s.introspect(t, "resource-server:"+secret, at); m["active"] != false {
		t.Errorf("an access token of a revoked refresh token's grant: %v", m)
	}
	if st := check(at); st != 401 {
		t.Errorf("at the edge: %d, want 401", st)
	}
}
