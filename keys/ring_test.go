package keys_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider/storage/bolt"
	"github.com/oidcgate/oidcgate/provider/storage/memory"
)

var ctx = context.Background()

// jwksKIDs lists the kids the ring publishes.
func jwksKIDs(t *testing.T, r *keys.Ring) map[string]bool {
	t.Helper()
	body, _ := r.JWKS()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, k := range set.Keys {
		out[k["kid"].(string)] = true
	}
	return out
}

func stateOf(r *keys.Ring, kid string) keys.State {
	for _, rec := range r.Keys() {
		if rec.ID == kid {
			return rec.State
		}
	}
	return "removed"
}

// TestRotationTimeline walks the ring through 105 days in 10-minute steps,
// issuing a one-hour token at every step, with an emergency revoke on day
// 40, and checks the two promises of the ring at every step.
func TestRotationTimeline(t *testing.T) {
	clk := newClock()
	cfg := testConfig(t, keys.ES256)
	store := memory.New(clk.Now)
	r, err := keys.NewRing(ctx, cfg, store, discard, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	const tokenTTL = time.Hour // RetireGrace (2h) covers it plus leeway

	type issued struct {
		kid string
		exp time.Time
	}
	var tokens []issued
	publishedAt := map[string]time.Time{} // first time a kid was seen in the JWKS
	states := map[string][]keys.State{}   // every state each kid was seen in
	exempt := map[string]bool{}           // keys allowed to sign at once
	revoked := map[string]bool{}
	firstKID, _ := r.SigningKeyID(keys.ES256)
	exempt[firstKID] = true

	step := 10 * time.Minute
	for i := 0; i < 105*24*6; i++ {
		now := clk.Now()
		if i == 40*24*6 {
			victim, _ := r.SigningKeyID(keys.ES256)
			if err := r.Revoke(ctx, victim); err != nil {
				t.Fatal(err)
			}
			revoked[victim] = true
			replacement, _ := r.SigningKeyID(keys.ES256)
			if replacement == victim {
				t.Fatal("the revoked key still signs")
			}
			if jwksKIDs(t, r)[victim] {
				t.Fatal("the revoked key is still in the JWKS")
			}
			exempt[replacement] = true
		}
		if err := r.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		published := jwksKIDs(t, r)
		for kid := range published {
			if _, ok := publishedAt[kid]; !ok {
				publishedAt[kid] = now
			}
		}
		for _, rec := range r.Keys() {
			if s := states[rec.ID]; len(s) == 0 || s[len(s)-1] != rec.State {
				states[rec.ID] = append(s, rec.State)
			}
		}

		tok, err := r.Sign(keys.ES256, "at+jwt", claims)
		if err != nil {
			t.Fatal(err)
		}
		kid := headerKID(t, tok)
		if !exempt[kid] && now.Sub(publishedAt[kid]) < cfg.PrePublish {
			t.Fatalf("%v: signed by %s, published only %v ago (< pre-publish lead %v)", now, kid, now.Sub(publishedAt[kid]), cfg.PrePublish)
		}
		tokens = append(tokens, issued{kid: kid, exp: now.Add(tokenTTL)})
		tokens = slices.DeleteFunc(tokens, func(tk issued) bool { return !now.Before(tk.exp) })
		for _, tk := range tokens {
			if !revoked[tk.kid] && !published[tk.kid] {
				t.Fatalf("%v: the JWKS lacks %s, which signed a token valid until %v", now, tk.kid, tk.exp)
			}
		}
		clk.Advance(step)
	}

	// Some key went through the whole life: next → active → retired → removed.
	full := 0
	for kid, s := range states {
		if slices.Equal(s, []keys.State{keys.Next, keys.Active, keys.Retired}) && stateOf(r, kid) == "removed" {
			full++
		}
	}
	if full == 0 {
		t.Errorf("no key walked next → active → retired → removed: %v", states)
	}
	if len(publishedAt) < 5 {
		t.Errorf("only %d keys in 105 days with a 30-day period and a revoke", len(publishedAt))
	}
}

func headerKID(t *testing.T, tok string) string {
	t.Helper()
	var h struct{ Kid string }
	seg, _, _ := strings.Cut(tok, ".")
	b, err := b64dec(seg)
	if err != nil || json.Unmarshal(b, &h) != nil {
		t.Fatalf("bad header in %q", tok)
	}
	return h.Kid
}

func TestRotateStagesAndRevokeReplaces(t *testing.T) {
	clk := newClock()
	r, _ := newRing(t, clk, keys.ES256, keys.RS256)
	first, _ := r.SigningKeyID(keys.ES256)
	staged, err := r.Rotate(ctx, keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	if staged.State != keys.Next || !staged.ActivatesAt.Equal(clk.Now().Add(time.Hour)) {
		t.Errorf("staged = %+v", staged)
	}
	again, _ := r.Rotate(ctx, keys.ES256)
	if again.ID != staged.ID {
		t.Error("a second rotate staged another key instead of returning the staged one")
	}
	if kid, _ := r.SigningKeyID(keys.ES256); kid != first {
		t.Error("the staged key signs before its lead")
	}
	if !jwksKIDs(t, r)[staged.ID] {
		t.Error("the staged key is not published")
	}
	if e := r.KeyEpoch(); e != 0 {
		t.Errorf("key epoch %d after keys were only added, want 0", e)
	}
	clk.Advance(time.Hour)
	if kid, _ := r.SigningKeyID(keys.ES256); kid != staged.ID {
		t.Error("the staged key does not sign after its lead")
	}

	// Revoking the signing key promotes... a fresh key, signing at once.
	if err := r.Revoke(ctx, staged.ID); err != nil {
		t.Fatal(err)
	}
	now, _ := r.SigningKeyID(keys.ES256)
	if now == staged.ID || now == first {
		t.Errorf("after revoking %s the signer is %s", staged.ID, now)
	}
	if _, err := r.PublicKey(staged.ID); !errors.Is(err, keys.ErrUnknownKey) {
		t.Errorf("the revoked key still verifies: %v", err)
	}
	if e := r.KeyEpoch(); e != 1 {
		t.Errorf("key epoch %d after a revocation, want 1 (cached tokens of the revoked key must be checked again)", e)
	}
	if err := r.Revoke(ctx, "no-such-kid"); !errors.Is(err, keys.ErrNoSuchKey) {
		t.Errorf("revoke of an unknown kid: %v", err)
	}
	// RS256 is untouched.
	if err := r.Ready(); err != nil {
		t.Error(err)
	}
}

func TestJWKSHasOnlyPublicMembers(t *testing.T) {
	r, _ := newRing(t, newClock(), keys.ES256, keys.RS256, keys.PS256, keys.EdDSA)
	body, etag := r.JWKS()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 4 || etag == "" {
		t.Fatalf("%d keys, etag %q", len(set.Keys), etag)
	}
	for _, k := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
			if _, ok := k[private]; ok {
				t.Errorf("key %v has private member %q", k["kid"], private)
			}
		}
		if k["use"] != "sig" || k["alg"] == nil || k["kid"] == nil || k["kty"] == nil {
			t.Errorf("key lacks kty/use/alg/kid: %v", k)
		}
	}
}

func TestKIDIsThumbprint(t *testing.T) {
	r, _ := newRing(t, newClock(), keys.ES256, keys.EdDSA)
	for _, rec := range r.Keys() {
		pk, _ := r.PublicKey(rec.ID)
		tp, err := keys.Thumbprint(pk.Key)
		if err != nil || tp != rec.ID {
			t.Errorf("kid %s, thumbprint %s (%v)", rec.ID, tp, err)
		}
	}
}

// plaintextMarkers are byte strings a stored private key in the clear
// would contain: its PKCS #8 encoding is checked by decrypting nothing —
// instead the test looks for the key's public half, which a sealed blob
// hides as well.
func TestPrivateKeysEncryptedInBolt(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "oidcgate.db")
	store, err := bolt.Open(path, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, keys.ES256, keys.RS256, keys.EdDSA)
	r, err := keys.NewRing(ctx, cfg, store, discard, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	secrets := privateMaterial(t, r)
	store.Close()
	raw := readFile(t, path)
	for name, s := range secrets {
		if bytes.Contains(raw, s) {
			t.Errorf("the bolt file contains %s in the clear", name)
		}
	}

	// A wrong KEK is a clear error at start, not a panic or a silent new ring.
	store, err = bolt.Open(path, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cfg.KEK = newKEK(t)
	_, err = keys.NewRing(ctx, cfg, store, discard, clk.Now)
	if !errors.Is(err, keys.ErrWrongKEK) || !strings.Contains(err.Error(), "key-encryption key") {
		t.Errorf("wrong KEK: %v", err)
	}
}
