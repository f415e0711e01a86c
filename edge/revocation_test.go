package edge_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/keys"
)

// TestEmergencyRevokeNewKeyServes: after an emergency revocation the
// replacement key signs at once; an edge whose key set was fetched just
// before, or whose unknown-kid refetch budget is spent, must still accept
// the replacement's tokens — one fetch for a token newer than its keys.
func TestEmergencyRevokeNewKeyServes(t *testing.T) {
	for _, order := range []string{"fetched just before the revocation", "unknown-kid budget spent"} {
		t.Run(order, func(t *testing.T) {
			w := newWorld(t, worldOpts{minRefresh: time.Hour})
			good := strings.Split(w.sign(t, keys.ES256, nil), ".")
			switch order {
			case "fetched just before the revocation":
				if err := w.jwks.Refresh(context.Background()); err != nil {
					t.Fatal(err)
				}
			default: // an old token with an unknown kid spends the refetch budget
				old := b64(fmt.Sprintf(`{"iss":%q,"sub":"x","aud":%q,"exp":%d,"iat":%d}`, w.issuer, api,
					time.Now().Unix()+60, time.Now().Unix()-3600))
				tok := b64(`{"alg":"ES256","kid":"gone","typ":"at+jwt"}`) + "." + old + "." + good[2]
				if resp, _ := w.get(t, "/api/x", bearer(tok)...); resp.StatusCode != 401 {
					t.Fatalf("unknown kid: %d", resp.StatusCode)
				}
			}
			kid, _ := w.ring.SigningKeyID(keys.ES256)
			if err := w.ring.Revoke(context.Background(), kid); err != nil {
				t.Fatal(err)
			}
			if next, _ := w.ring.SigningKeyID(keys.ES256); next == kid {
				t.Fatal("the revoked key still signs")
			}
			before := jwksFetches(t, w)
			for i := range 20 {
				tok := w.sign(t, keys.ES256, map[string]any{"jti": fmt.Sprint("after-", i)})
				if resp, _ := w.get(t, "/api/x", bearer(tok)...); resp.StatusCode != 200 {
					t.Fatalf("token %d of the replacement key: %d %s", i, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
				}
			}
			if n := jwksFetches(t, w) - before; n != 1 {
				t.Errorf("%d JWKS fetches for the replacement key, want 1", n)
			}
		})
	}
}

// TestNewerTokenFloodIsBounded: made-up tokens with unknown kids that all
// claim to be newer than the key set cost at most one fetch per distinct iat
// and per second, and none for an iat in the future.
func TestNewerTokenFloodIsBounded(t *testing.T) {
	w := newWorld(t, worldOpts{minRefresh: time.Hour})
	good := strings.Split(w.sign(t, keys.ES256, nil), ".")
	before := jwksFetches(t, w)
	now := time.Now().Unix()
	for i := range 200 {
		iat := now
		if i%2 == 1 {
			iat = now + 3600 // the future: never fetched for
		}
		claims := b64(fmt.Sprintf(`{"iss":%q,"sub":"x","aud":%q,"exp":%d,"iat":%d}`, w.issuer, api, now+60, iat))
		tok := b64(fmt.Sprintf(`{"alg":"ES256","kid":"made-up-%d","typ":"at+jwt"}`, i)) + "." + claims + "." + good[2]
		if resp, _ := w.get(t, "/api/x", bearer(tok)...); resp.StatusCode != 401 {
			t.Fatalf("made-up kid: %d", resp.StatusCode)
		}
	}
	if n := jwksFetches(t, w) - before; n > 1 {
		t.Errorf("%d JWKS fetches for 200 made-up newer tokens, want at most 1", n)
	}
}

// TestRevokedKeyBoundedByMaxRefresh: without anyone calling for it, a
// standalone edge drops a revoked key within its refresh cap, although the
// JWKS max-age is longer.
func TestRevokedKeyBoundedByMaxRefresh(t *testing.T) {
	w := newWorld(t, worldOpts{minRefresh: time.Hour, maxRefresh: time.Second})
	tok := w.sign(t, keys.ES256, nil)
	if resp, _ := w.get(t, "/api/x", bearer(tok)...); resp.StatusCode != 200 {
		t.Fatalf("before: %d", resp.StatusCode)
	}
	kid, _ := w.ring.SigningKeyID(keys.ES256)
	if err := w.ring.Revoke(context.Background(), kid); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, _ := w.get(t, "/api/x", bearer(tok)...)
		if resp.StatusCode == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked key's token still %d after 10 s with a 1 s refresh cap", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The refreshes in between were conditional and kept the other keys.
	if resp, _ := w.get(t, "/api/x", bearer(w.sign(t, keys.EdDSA, nil))...); resp.StatusCode != 200 {
		t.Errorf("another key's token after the refreshes: %d", resp.StatusCode)
	}
}
