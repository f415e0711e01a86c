package edge_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// FuzzCheck throws arbitrary Authorization headers at the validator: it must
// never panic, and it may only allow the tokens the ring really signed.
func FuzzCheck(f *testing.F) {
	r := benchRing(f)
	v := benchValidator(f, r, time.Minute)
	valid := map[string]bool{}
	for _, alg := range benchAlgs {
		tok := benchToken(f, r, alg)
		valid[tok] = true
		f.Add([]byte("Bearer " + tok))
		f.Add([]byte("bearer  " + tok + "=="))
		parts := strings.Split(tok, ".")
		f.Add([]byte("Bearer " + parts[0] + "." + parts[1] + "."))
		f.Add([]byte("Bearer " + parts[0] + ".e30." + parts[2]))
	}
	for _, seed := range []string{"", "Bearer", "Bearer ", "Basic abc", "Bearer a.b.c", "Bearer ....", "Bearer \x00\xff",
		"Bearer eyJhbGciOiJub25lIn0.e30.", "BEARER x=y", "Bearer " + strings.Repeat("A", 20000)} {
		f.Add([]byte(seed))
	}
	route := mustRoutes().Match([]byte("GET"), []byte("/x"))
	f.Fuzz(func(t *testing.T, authorization []byte) {
		id, d := v.Check(context.Background(), time.Now(), authorization, route)
		if d.Status != 200 {
			if id != nil {
				t.Fatal("a denial carried an identity")
			}
			return
		}
		tok := bytes.TrimLeft(authorization[len("bearer "):], " ")
		if !valid[string(tok)] {
			t.Fatalf("allowed a token the ring did not sign: %q", authorization)
		}
		if id == nil || id.Subject == "" {
			t.Fatal("allowed without an identity")
		}
	})
}
