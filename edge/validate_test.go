package edge_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oidcgate/oidcgate/edge"
	"github.com/oidcgate/oidcgate/keys"
)

// revocations is a revocation list held in memory, as the provider's is
// seen by the edge in `oidcgate all`.
type revocations struct {
	mu  sync.Mutex
	jti map[string]bool
}

func (r *revocations) Revoked(_ context.Context, jti, _ string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.jti[jti], nil
}

// The cache's front holds the token itself: a token that differs from a
// cached one anywhere — even one that shares its signature, and so its
// slot — is verified, not served from the cache.
func TestCachedTokenIsConfirmedWhole(t *testing.T) {
	r := benchRing(t)
	v := benchValidator(t, r, time.Minute)
	good := benchToken(t, r, keys.ES256)
	now := time.Now()
	for range 3 {
		if _, d := v.Check(context.Background(), now, []byte("Bearer "+good), benchRoute); d.Status != 200 {
			t.Fatalf("good token: %+v", d)
		}
	}
	parts := strings.Split(good, ".")
	forged := parts[0] + "." + b64(`{"iss":"`+benchIssuer+`","sub":"admin","aud":"`+api+`","exp":9999999999,"scope":"admin"}`) + "." + parts[2]
	if _, d := v.Check(context.Background(), now, []byte("Bearer "+forged), benchRoute); d.Reason != edge.ReasonBadSignature {
		t.Fatalf("forged payload with the cached token's signature: %+v, want bad_signature", d)
	}
	// Still cached, still good.
	if id, d := v.Check(context.Background(), now, []byte("Bearer "+good), benchRoute); d.Status != 200 || id.Subject == "admin" {
		t.Fatalf("good token after the forgery: %+v %+v", id, d)
	}
}

// exp is checked on every hit, at the time the caller gives.
func TestCachedTokenExpires(t *testing.T) {
	r := benchRing(t)
	v := benchValidator(t, r, 24*time.Hour)
	auth := []byte("Bearer " + benchToken(t, r, keys.EdDSA)) // exp in an hour
	now := time.Now()
	if _, d := v.Check(context.Background(), now, auth, benchRoute); d.Status != 200 {
		t.Fatal(d)
	}
	v.WaitForCache()
	if _, d := v.Check(context.Background(), now.Add(50*time.Minute), auth, benchRoute); d.Status != 200 {
		t.Fatalf("cached, before exp: %+v", d)
	}
	if _, d := v.Check(context.Background(), now.Add(2*time.Hour), auth, benchRoute); d.Reason != edge.ReasonExpired {
		t.Fatalf("cached, after exp: %+v, want expired", d)
	}
}

// Forget drops a token from every cache: its next use is checked in full,
// revocation list included.
func TestForgetDropsACachedToken(t *testing.T) {
	r := benchRing(t)
	revoked := &revocations{jti: map[string]bool{}}
	v, err := edge.NewValidator(edge.ValidatorConfig{Issuer: benchIssuer, Algs: benchAlgs, Leeway: 30 * time.Second,
		RequireTyp: true, CacheTTL: time.Minute, CacheSize: 1000, IntrospectionTTL: time.Minute, NegativeTTL: 5 * time.Second},
		r, revoked, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	tok := benchToken(t, r, keys.ES256) // jti b2bq6PZyDq9t2t0RkqG5nA
	auth := []byte("Bearer " + tok)
	if _, d := v.Check(context.Background(), time.Now(), auth, benchRoute); d.Status != 200 {
		t.Fatal(d)
	}
	v.WaitForCache()
	revoked.mu.Lock()
	revoked.jti["b2bq6PZyDq9t2t0RkqG5nA"] = true
	revoked.mu.Unlock()
	v.Forget(tok)
	if _, d := v.Check(context.Background(), time.Now(), auth, benchRoute); d.Reason != edge.ReasonInactive {
		t.Fatalf("after Forget: %+v, want inactive", d)
	}
}

// In `oidcgate all` the key set is the provider's ring: revoking a key ends
// its cached tokens there too.
func TestRingRevocationEndsCachedTokens(t *testing.T) {
	r := benchRing(t)
	v := benchValidator(t, r, time.Hour)
	auth := []byte("Bearer " + benchToken(t, r, keys.ES256))
	for range 2 {
		if _, d := v.Check(context.Background(), time.Now(), auth, benchRoute); d.Status != 200 {
			t.Fatal(d)
		}
	}
	v.WaitForCache()
	kid, _ := r.SigningKeyID(keys.ES256)
	if err := r.Revoke(context.Background(), kid); err != nil {
		t.Fatal(err)
	}
	if _, d := v.Check(context.Background(), time.Now(), auth, benchRoute); d.Reason != edge.ReasonUnknownKID {
		t.Fatalf("cached token of a revoked key: %+v, want unknown_kid", d)
	}
}
