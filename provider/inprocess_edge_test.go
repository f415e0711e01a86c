package provider_test

import (
	"context"
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
	code := s.codeIn(t, newBrowser(t), "openid offline_access")
	r := s.redeem(t, code)
	if r.status != 200 {
		t.Fatalf("redeem: %d %s", r.status, r.body)
	}
	at := r.json(t)["access_token"].(string)
	for range 2 { // verified, then from the cache
		if st := check(at); st != 200 {
			t.Fatalf("before: %d", st)
		}
	}
	v.WaitForCache()
	s.redeem(t, code) // the replay
	if st := check(at); st != 401 {
		t.Errorf("a replayed code's cached access token at the edge: %d, want 401", st)
	}

	tok := s.grant(t, newBrowser(t), "openid offline_access")
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
