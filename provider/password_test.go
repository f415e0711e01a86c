package provider

import (
	"strings"
	"testing"
)

func TestHashAndVerifyPassword(t *testing.T) {
	h, err := HashPassword("correct horse", cheap)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := VerifyPassword(h, "correct horse"); !ok || err != nil {
		t.Errorf("right password: %v, %v", ok, err)
	}
	if ok, err := VerifyPassword(h, "correct horsE"); ok || err != nil {
		t.Errorf("wrong password: %v, %v", ok, err)
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=8192,t=1,p=1$c2FsdA$a2V5", "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5",
		strings.Replace(h, "$v=19$", "$v=16$", 1), h[:len(h)-10] + "!!!"} {
		if ok, err := VerifyPassword(bad, "correct horse"); ok || err == nil {
			t.Errorf("VerifyPassword(%q) = %v, %v; want an error", bad, ok, err)
		}
	}
}

// The decoy an unknown user is checked against must be a well-formed hash
// with the configured cost — a malformed one would fail fast, and the time
// would tell that the user does not exist — that no password matches.
func TestDecoyHash(t *testing.T) {
	d := decoyHash(cheap)
	if !strings.HasPrefix(d, "$argon2id$v=19$m=8192,t=1,p=1$") {
		t.Errorf("decoy %q does not carry the configured cost", d)
	}
	for _, pw := range []string{"", "oidcgate: no such user", "password"} {
		if ok, err := VerifyPassword(d, pw); ok || err != nil {
			t.Errorf("VerifyPassword(decoy, %q) = %v, %v; want false, nil", pw, ok, err)
		}
	}
	if decoyHash(cheap) == d {
		t.Error("two decoys are equal: the salt and key are not random")
	}
}
