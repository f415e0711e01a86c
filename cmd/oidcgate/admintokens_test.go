package main

import (
	"strings"
	"testing"
)

// TestAdminTokensCommand: create prints a token once, list never shows it
// (nor its hash), names are unique, revoke removes it.
func TestAdminTokensCommand(t *testing.T) {
	e := env("OIDCGATE_DATA_DIR", t.TempDir())
	code, token, stderr := runCmd(t, e, "admin-tokens", "create", "--name", "deploy", "--ttl", "24h")
	token = strings.TrimSpace(token)
	if code != 0 || !strings.HasPrefix(token, "oidcgate_admin_") || len(token) < 40 || !strings.Contains(stderr, "shown only now") {
		t.Fatalf("create: %d %q %s", code, token, stderr)
	}
	if code, _, stderr := runCmd(t, e, "admin-tokens", "create", "--name", "deploy"); code == 0 || !strings.Contains(stderr, "exists") {
		t.Errorf("a second token of one name: %d %s", code, stderr)
	}
	if code, _, stderr := runCmd(t, e, "admin-tokens", "create"); code != 2 || !strings.Contains(stderr, "--name") {
		t.Errorf("create without a name: %d %s", code, stderr)
	}
	code, out, _ := runCmd(t, e, "admin-tokens", "list", "--json")
	if code != 0 || !strings.Contains(out, `"name": "deploy"`) || !strings.Contains(out, "expires_at") || strings.Contains(out, token[15:]) || strings.Contains(out, "hash") {
		t.Errorf("list: %d %s", code, out)
	}
	if code, out, _ := runCmd(t, e, "admin-tokens", "revoke", "deploy"); code != 0 || !strings.Contains(out, "revoked") {
		t.Errorf("revoke: %d %s", code, out)
	}
	if code, _, stderr := runCmd(t, e, "admin-tokens", "revoke", "deploy"); code == 0 || !strings.Contains(stderr, "no admin token") {
		t.Errorf("revoke again: %d %s", code, stderr)
	}
}
