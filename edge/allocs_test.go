//go:build !race

package edge_test

import (
	"context"
	"testing"
	"time"
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
			if _, d := v.Check(context.Background(), auth, benchRoute); d.Status != 200 {
				t.Fatal(d)
			}
		})
		if n > 2 {
			t.Errorf("%s: %.0f allocations per cache-hit validation, budget 2", alg, n)
		}
	}
}
