package keys_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider/storage/storagetest"
)

func TestSealedSecrets(t *testing.T) {
	clk := storagetest.NewClock(time.Now())
	r, _ := newRing(t, clk, keys.ES256)
	plain := []byte("JBSWY3DPEHPK3PXP")
	blob, err := r.Seal("totp:f1", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, plain) {
		t.Fatal("the sealed blob holds the secret in clear")
	}
	if again, _ := r.Seal("totp:f1", plain); bytes.Equal(again, blob) {
		t.Error("two seals of one secret are equal: the nonce is not random")
	}
	got, err := r.Open("totp:f1", blob)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	// Another purpose, an altered blob, a truncated one: none opens.
	if _, err := r.Open("totp:f2", blob); !errors.Is(err, keys.ErrUnsealable) {
		t.Errorf("moved to another record: %v", err)
	}
	altered := bytes.Clone(blob)
	altered[len(altered)-1] ^= 1
	for name, b := range map[string][]byte{"altered": altered, "truncated": blob[:5], "empty": nil} {
		if _, err := r.Open("totp:f1", b); !errors.Is(err, keys.ErrUnsealable) {
			t.Errorf("%s blob: %v", name, err)
		}
	}
	// Another KEK does not open it.
	other, _ := newRing(t, clk, keys.ES256)
	if _, err := other.Open("totp:f1", blob); !errors.Is(err, keys.ErrUnsealable) {
		t.Errorf("another KEK: %v", err)
	}
}
