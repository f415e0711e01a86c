package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClientsCommand(t *testing.T) {
	e := env("OIDCGATE_DATA_DIR", t.TempDir())
	code, out, stderr := runCmd(t, e, "clients", "create", "--client-id", "billing", "--scopes", "read,write",
		"--audiences", "https://api.example.com", "--json")
	if code != 0 {
		t.Fatalf("create: %d %s", code, stderr)
	}
	var created struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.ID != "billing" || len(created.Secret) < 43 {
		t.Fatalf("create --json printed %q", out)
	}
	if code, _, stderr := runCmd(t, e, "clients", "create", "--client-id", "billing"); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Errorf("duplicate create: %d %s", code, stderr)
	}
	// A supplied secret comes from stdin, never a flag; short ones are refused.
	if code, _, stderr := runCmdInput(t, e, "short\n", "clients", "create", "--client-id", "x", "--secret-file", "-"); code != 2 ||
		!strings.Contains(stderr, "at least 32 characters") {
		t.Errorf("short secret: %d %s", code, stderr)
	}
	if code, out, _ := runCmdInput(t, e, strings.Repeat("k", 40)+"\n", "clients", "create", "--client-id", "x", "--secret-file", "-"); code != 0 ||
		strings.Contains(out, "client_secret:") {
		t.Errorf("supplied secret: %d %q (must not be echoed)", code, out)
	}
	code, out, _ = runCmd(t, e, "clients", "get", "billing")
	if code != 0 || !strings.Contains(out, `"client_id": "billing"`) || strings.Contains(out, "secret_hash") || strings.Contains(out, "client_secret\"") {
		t.Errorf("get: %d %s", code, out)
	}
	code, out, _ = runCmd(t, e, "clients", "list")
	if code != 0 || !strings.Contains(out, "billing") || !strings.Contains(out, "x ") {
		t.Errorf("list: %d %s", code, out)
	}
	if code, _, _ := runCmd(t, e, "clients", "delete", "billing"); code != 0 {
		t.Error("delete failed")
	}
	if code, _, stderr := runCmd(t, e, "clients", "get", "billing"); code != 1 || !strings.Contains(stderr, `no client "billing"`) {
		t.Errorf("get after delete: %d %s", code, stderr)
	}
	if code, _, stderr := runCmd(t, e, "clients", "create", "--client-id", "bad id", "--grant-types", "password"); code != 2 ||
		!strings.Contains(stderr, "client id") || !strings.Contains(stderr, `grant type "password"`) {
		t.Errorf("bad create: %d %s", code, stderr)
	}
}

func TestUsersCommand(t *testing.T) {
	dir := t.TempDir()
	e := env("OIDCGATE_DATA_DIR", dir, "OIDCGATE_ARGON2_MEMORY_KIB", "8192", "OIDCGATE_ARGON2_TIME", "1")
	code, out, stderr := runCmdInput(t, e, "correct horse battery\n", "users", "create", "alice", "--claims", `{"email":"a@example.com"}`)
	if code != 0 || !strings.Contains(out, "created user alice") {
		t.Fatalf("create: %d %s %s", code, out, stderr)
	}
	if strings.Contains(out+stderr, "correct horse") {
		t.Error("the password was echoed")
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("new password here\n"), 0o600)
	if code, _, stderr := runCmd(t, e, "users", "set-password", "alice", "--password-file", pwFile); code != 0 {
		t.Errorf("set-password: %s", stderr)
	}
	if code, _, stderr := runCmdInput(t, e, "short\n", "users", "set-password", "alice"); code != 2 || !strings.Contains(stderr, "at least 8") {
		t.Errorf("short password: %d %s", code, stderr)
	}
	code, out, _ = runCmd(t, e, "users", "list", "--json")
	if code != 0 || !strings.Contains(out, `"username": "alice"`) || strings.Contains(out, "argon2") {
		t.Errorf("list: %d %s", code, out)
	}
	if code, _, _ := runCmd(t, e, "users", "delete", "alice"); code != 0 {
		t.Error("delete failed")
	}
	if code, _, stderr := runCmd(t, e, "users", "delete", "alice"); code != 1 || !strings.Contains(stderr, `no user "alice"`) {
		t.Errorf("delete again: %d %s", code, stderr)
	}
	if code, _, _ := runCmd(t, e, "users", "create"); code != 2 {
		t.Error("create without a username accepted")
	}
}

// TestEdgeNeedsAnAudience: an edge without routes and without --audience
// would accept tokens minted for any API: it refuses to start, unless told
// "any" on purpose.
func TestEdgeNeedsAnAudience(t *testing.T) {
	for _, mode := range []string{"edge", "all"} {
		code, _, stderr := runCmd(t, env("OIDCGATE_DATA_DIR", t.TempDir()), mode, "--issuer", "http://127.0.0.1:1",
			"--forward-auth-proxy", "haproxy")
		if code != exitUsage || !strings.Contains(stderr, "--audience: required without --routes") ||
			!strings.Contains(stderr, "--forward-auth-proxy: must be nginx") {
			t.Errorf("%s without --audience: exit %d, %s", mode, code, stderr)
		}
	}
}
