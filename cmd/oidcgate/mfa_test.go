package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/provider/storage"
	"github.com/oidcgate/oidcgate/provider/storage/bolt"
)

// TestUsersFactorsAndResetMFA: operators list a user's second factors
// (never their secrets) and reset them for a user who lost a phone.
func TestUsersFactorsAndResetMFA(t *testing.T) {
	dir := t.TempDir()
	e := env("OIDCGATE_DATA_DIR", dir, "OIDCGATE_ARGON2_MEMORY_KIB", "8192", "OIDCGATE_ARGON2_TIME", "1")
	if code, _, stderr := runCmdInput(t, e, "correct horse battery\n", "users", "create", "alice"); code != 0 {
		t.Fatal(stderr)
	}
	st, err := bolt.Open(filepath.Join(dir, "oidcgate.db"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u, _ := st.GetUserByUsername(ctx, "alice")
	for _, f := range []*storage.Factor{
		{ID: "f1", UserID: u.ID, Kind: storage.FactorTOTP, Name: "Pixel", Secret: []byte("sealed-secret"), CreatedAt: time.Now()},
		{ID: "f2", UserID: u.ID, Kind: storage.FactorWebAuthn, Name: "YubiKey", Credential: []byte(`{}`), CreatedAt: time.Now()},
		{ID: "r1", UserID: u.ID, Kind: storage.FactorRecovery, Hash: storage.HashOf("code"), CreatedAt: time.Now()},
	} {
		if err := st.CreateFactor(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	code, out, stderr := runCmd(t, e, "users", "factors", "alice")
	if code != 0 || !strings.Contains(out, "Pixel") || !strings.Contains(out, "YubiKey") || !strings.Contains(out, "recovery") {
		t.Fatalf("factors: %d %s %s", code, out, stderr)
	}
	if _, out, _ := runCmd(t, e, "users", "factors", "alice", "--json"); strings.Contains(out, "sealed-secret") || strings.Contains(out, "c2VhbGVk") {
		t.Errorf("a factor's secret is shown: %s", out)
	}
	if code, out, _ := runCmd(t, e, "users", "reset-mfa", "alice"); code != 0 || !strings.Contains(out, "removed 3") {
		t.Errorf("reset-mfa: %d %s", code, out)
	}
	if code, _, stderr := runCmd(t, e, "users", "reset-mfa", "nobody"); code == 0 || !strings.Contains(stderr, `no user "nobody"`) {
		t.Errorf("reset-mfa of an unknown user: %d %s", code, stderr)
	}
	if _, out, _ := runCmd(t, e, "users", "factors", "alice", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("factors after the reset: %s", out)
	}
}
