package keys_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider/storage/memory"
	"github.com/oidcgate/oidcgate/provider/storage/storagetest"
)

// newClock is a settable clock, as the storage conformance suite uses.
func newClock() *storagetest.Clock {
	return storagetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func newKEK(t testing.TB) []byte {
	kek := make([]byte, keys.KEKSize)
	rand.Read(kek)
	return kek
}

func testConfig(t testing.TB, algs ...string) keys.Config {
	return keys.Config{
		Algs:           algs,
		RSABits:        2048,
		RotationPeriod: 30 * 24 * time.Hour,
		PrePublish:     time.Hour,
		RetireGrace:    2 * time.Hour,
		ReloadInterval: 10 * time.Second,
		KEK:            newKEK(t),
	}
}

// newRing is a ring over a fresh memory store.
func newRing(t testing.TB, clk *storagetest.Clock, algs ...string) (*keys.Ring, *memory.Store) {
	t.Helper()
	store := memory.New(clk.Now)
	r, err := keys.NewRing(context.Background(), testConfig(t, algs...), store, discard, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return r, store
}

// claims is a realistic RFC 9068 access token payload.
var claims = []byte(`{"iss":"https://id.example.com","sub":"5f1c9e2a-7b7e-4c1e-9a57-3f0c8f6d2b11","aud":"https://api.example.com",` +
	`"exp":4102444800,"iat":1767225600,"jti":"b2bq6PZyDq9t2t0RkqG5nA","client_id":"billing-service","scope":"invoices:read invoices:write"}`)

func b64dec(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func privateMaterial(t *testing.T, r *keys.Ring) map[string][]byte {
	m := r.PrivateMaterial()
	if len(m) == 0 {
		t.Fatal("no private material to look for")
	}
	return m
}

func readFile(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
