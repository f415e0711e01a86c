//go:build !race

package keys_test

import (
	"strings"
	"testing"

	"github.com/oidcgate/oidcgate/keys"
)

// The fast paths may allocate only a little beyond the crypto they wrap:
// budgets are counted over the raw crypto/* call's own allocations.
func TestAllocationBudgets(t *testing.T) {
	const signBudget, verifyBudget = 1, 3
	r, _ := newRing(t, newClock(), benchAlgs...)
	v, _ := keys.NewVerifier(r, benchAlgs)
	for _, alg := range benchAlgs {
		t.Run(alg, func(t *testing.T) {
			priv, pub := rawKey(t, alg)
			tok, _ := r.Sign(alg, "at+jwt", claims)
			input := []byte(tok[:strings.LastIndexByte(tok, '.')])
			sig := rawSign(alg, priv, input)
			token := []byte(tok)
			buf := make([]byte, 0, 1024)
			runs := 20
			if alg == keys.RS256 {
				runs = 5
			}

			sign := testing.AllocsPerRun(runs, func() { buf, _ = r.AppendSign(buf[:0], alg, "at+jwt", claims) })
			rawS := testing.AllocsPerRun(runs, func() { rawSign(alg, priv, input) })
			if sign-rawS > signBudget {
				t.Errorf("sign: %.0f allocations, raw %.0f: %.0f over, budget %d", sign, rawS, sign-rawS, signBudget)
			}
			verify := testing.AllocsPerRun(runs, func() { v.Verify(token) })
			rawV := testing.AllocsPerRun(runs, func() { rawVerify(alg, pub, input, sig) })
			if verify-rawV > verifyBudget {
				t.Errorf("verify: %.0f allocations, raw %.0f: %.0f over, budget %d", verify, rawV, verify-rawV, verifyBudget)
			}
			t.Logf("sign %.0f (raw %.0f), verify %.0f (raw %.0f)", sign, rawS, verify, rawV)
		})
	}
}
