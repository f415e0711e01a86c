package keys_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider/storage/postgres"
	"github.com/oidcgate/oidcgate/provider/storage/postgres/pgtest"
	"github.com/oidcgate/oidcgate/provider/storage/storagetest"
)

func openPG(t *testing.T, url string, clk *storagetest.Clock) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Config{URL: url, AutoMigrate: true}, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestTwoReplicasOnePostgres runs two rings on one database, as two provider
// replicas do, stepping their reload loops by hand with a shared clock.
func TestTwoReplicasOnePostgres(t *testing.T) {
	url := pgtest.SchemaURL(t)
	clk := newClock()
	cfg := testConfig(t, keys.ES256, keys.RS256)
	a, err := keys.NewRing(ctx, cfg, openPG(t, url, clk), discard, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := keys.NewRing(ctx, cfg, openPG(t, url, clk), discard, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	agree := func(when string) {
		t.Helper()
		ka, _ := a.SigningKeyID(keys.ES256)
		kb, _ := b.SigningKeyID(keys.ES256)
		if ka != kb {
			t.Fatalf("%s: replicas sign with %s and %s", when, ka, kb)
		}
	}
	agree("after start") // B found A's keys instead of making its own
	if n := len(a.Keys()); n != 2 {
		t.Fatalf("%d keys after two rings started, want 2 (one per algorithm)", n)
	}

	staged, err := a.Rotate(ctx, keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	// B publishes the new key by its next reload…
	if err := b.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if !jwksKIDs(t, b)[staged.ID] {
		t.Fatal("replica B does not publish the key A staged after one reload interval")
	}
	// …and signs with it only once it is active, in step with A.
	for clk.Now().Before(staged.ActivatesAt.Add(time.Minute)) {
		if kb, _ := b.SigningKeyID(keys.ES256); kb == staged.ID && clk.Now().Before(staged.ActivatesAt) {
			t.Fatal("replica B signs with the staged key before it is active")
		}
		agree(clk.Now().String())
		clk.Advance(cfg.ReloadInterval)
		for _, r := range []*keys.Ring{a, b} {
			if err := r.Tick(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if kb, _ := b.SigningKeyID(keys.ES256); kb != staged.ID {
		t.Fatal("replica B does not sign with the staged key once active")
	}

	// An emergency revoke on A: B disagrees for at most one reload interval.
	if err := a.Revoke(ctx, staged.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	agree("one reload after a revoke")
	if jwksKIDs(t, b)[staged.ID] {
		t.Error("replica B still publishes the revoked key after a reload")
	}
}

func TestPrivateKeysEncryptedInPostgres(t *testing.T) {
	url := pgtest.SchemaURL(t)
	clk := newClock()
	store := openPG(t, url, clk)
	r, err := keys.NewRing(ctx, testConfig(t, keys.ES256, keys.RS256, keys.EdDSA), store, discard, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := store.Pool().Query(ctx, "SELECT id::bytea || alg::bytea || encrypted FROM signing_keys")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			t.Fatal(err)
		}
		n++
		for name, secret := range privateMaterial(t, r) {
			if bytes.Contains(raw, secret) {
				t.Errorf("signing_keys row holds %s in the clear", name)
			}
		}
	}
	if n != 3 {
		t.Errorf("%d rows, want 3", n)
	}
}

func TestReplicasStartingTogetherMakeOneKeyPerAlg(t *testing.T) {
	url := pgtest.SchemaURL(t)
	clk := newClock()
	cfg := testConfig(t, keys.ES256, keys.RS256)
	rings := make([]*keys.Ring, 4)
	errs := make(chan error, len(rings))
	for i := range rings {
		store := openPG(t, url, clk)
		go func() {
			var err error
			rings[i], err = keys.NewRing(ctx, cfg, store, discard, clk.Now)
			errs <- err
		}()
	}
	for range rings {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rings {
		if err := r.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(r.Keys()); n != 2 {
			t.Fatalf("%d keys after four replicas started together, want 2", n)
		}
	}
}
