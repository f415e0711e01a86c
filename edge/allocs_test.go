//go:build !race

package edge_test

import (
	"context"
	"encoding/json"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/keys"
)

// A verified-token cache hit — the edge's common case — allocates at most
// twice.
func TestCacheHitAllocations(t *testing.T) {
	r := benchRing(t)
	for _, alg := range benchAlgs {
		v := benchValidator(t, r, time.Minute)
		auth := []byte("Bearer " + benchToken(t, r, alg))
		warm(t, v, auth)
		n := testing.AllocsPerRun(200, func() {
			if _, d := v.Check(context.Background(), time.Now(), auth, benchRoute); d.Status != 200 {
				t.Fatal(d)
			}
		})
		if n > 2 {
			t.Errorf("%s: %.0f allocations per cache-hit validation, budget 2", alg, n)
		}
	}
}

// A cached token costs at most footprintBudget bytes of heap: the edge's
// memory is this times the tokens it caches (plus the GC's headroom).
// Measured: ~200 bytes (a 64-byte entry, ristretto's map slot, policy and
// expiry bookkeeping); 361 when ristretto's own metrics were on.
func TestCachedTokenFootprint(t *testing.T) {
	const n, footprintBudget = 50_000, 280
	r := benchRing(t)
	v := benchValidator(t, r, time.Hour)
	auths := make([][]byte, n)
	for i := range auths {
		payload, _ := json.Marshal(map[string]any{"iss": benchIssuer, "sub": "5f1c9e2a-7b7e-4c1e-9a57-3f0c8f6d2b11",
			"aud": api, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "jti": "t" + strconv.Itoa(i),
			"client_id": "billing-service", "scope": "invoices:read invoices:write"})
		tok, err := r.Sign(keys.EdDSA, "at+jwt", payload)
		if err != nil {
			t.Fatal(err)
		}
		auths[i] = []byte("Bearer " + tok)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, auth := range auths {
		if _, d := v.Check(context.Background(), time.Now(), auth, benchRoute); d.Status != 200 {
			t.Fatal(d)
		}
	}
	v.WaitForCache()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(auths)
	per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	t.Logf("%.0f bytes of heap per cached token", per)
	if per > footprintBudget {
		t.Errorf("%.0f bytes of heap per cached token, budget %d", per, footprintBudget)
	}
}
