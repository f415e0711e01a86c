package main

import (
	"net/http"
	"path/filepath"
	"regexp"
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

// TestCommandsThroughAdminAPI: with --admin-url, the clients and users commands work
// against a running provider on the embedded store (locked to it), with the
// same output; the new client is usable at once.
func TestCommandsThroughAdminAPI(t *testing.T) {
	dir := t.TempDir()
	_, token, _ := runCmd(t, env("OIDCGATE_DATA_DIR", filepath.Join(dir, "data")), "admin-tokens", "create", "--name", "ci")
	_, addrs := startProvider(t, dir)
	e := env("OIDCGATE_ADMIN_URL", "http://"+addrs["admin"], "OIDCGATE_ADMIN_TOKEN", strings.TrimSpace(token))
	code, out, stderr := runCmd(t, e, "clients", "create", "--client-id", "billing", "--scopes", "read", "--audiences", "https://api.example.com")
	m := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)
	if code != 0 || !strings.HasPrefix(out, "created client billing\n") || m == nil {
		t.Fatalf("create: %d %q %s", code, out, stderr)
	}
	req, _ := http.NewRequest("POST", "http://"+addrs["public"]+"/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("billing", m[1])
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the new client at once: %v %v", resp, err)
	}
	if code, out, _ := runCmd(t, e, "clients", "list"); code != 0 || !strings.Contains(out, "CLIENT ID") || !strings.Contains(out, "billing") {
		t.Errorf("list: %d %s", code, out)
	}
	if code, out, _ := runCmd(t, e, "clients", "get", "billing"); code != 0 || !strings.Contains(out, `"client_id": "billing"`) {
		t.Errorf("get: %d %s", code, out)
	}
	if code, _, stderr := runCmd(t, e, "clients", "create", "--client-id", "billing"); code == 0 || !strings.Contains(stderr, "already exists") {
		t.Errorf("create twice: %d %s", code, stderr)
	}
	if code, out, _ := runCmd(t, e, "clients", "delete", "billing"); code != 0 || !strings.Contains(out, "deleted client billing") {
		t.Errorf("delete: %d %s", code, out)
	}
	if code, _, stderr := runCmd(t, e, "clients", "get", "billing"); code == 0 || !strings.Contains(stderr, `no client "billing"`) {
		t.Errorf("get after delete: %d %s", code, stderr)
	}
	// Users, the same way.
	if code, out, stderr := runCmdInput(t, e, "carol's password\n", "users", "create", "carol", "--claims", `{"email":"carol@example.com"}`); code != 0 ||
		!strings.HasPrefix(out, "created user carol (sub ") {
		t.Fatalf("users create: %d %s %s", code, out, stderr)
	}
	if code, out, _ := runCmd(t, e, "users", "list"); code != 0 || !strings.Contains(out, "USERNAME") || !strings.Contains(out, "carol") {
		t.Errorf("users list: %d %s", code, out)
	}
	if code, out, stderr := runCmdInput(t, e, "a new password\n", "users", "set-password", "carol"); code != 0 || !strings.Contains(out, "password of carol changed") {
		t.Errorf("set-password: %d %s %s", code, out, stderr)
	}
	if code, out, _ := runCmd(t, e, "users", "identities", "carol", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("identities: %d %s", code, out)
	}
	if code, out, _ := runCmd(t, e, "users", "reset-mfa", "carol"); code != 0 || !strings.Contains(out, "removed 0") {
		t.Errorf("reset-mfa: %d %s", code, out)
	}
	if code, out, _ := runCmd(t, e, "users", "delete", "carol"); code != 0 || !strings.Contains(out, "deleted user carol") {
		t.Errorf("users delete: %d %s", code, out)
	}
	if code, _, stderr := runCmd(t, e, "users", "delete", "carol"); code == 0 || !strings.Contains(stderr, `no user "carol"`) {
		t.Errorf("users delete again: %d %s", code, stderr)
	}
	// A wrong token: the admin API's refusal, not a silent success.
	bad := env("OIDCGATE_ADMIN_URL", "http://"+addrs["admin"], "OIDCGATE_ADMIN_TOKEN", "oidcgate_admin_nope")
	if code, _, stderr := runCmd(t, bad, "clients", "list"); code == 0 || !strings.Contains(stderr, "401") {
		t.Errorf("a wrong token: %d %s", code, stderr)
	}
}
