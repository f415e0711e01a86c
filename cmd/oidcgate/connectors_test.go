package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/provider/connector/ldaptest"
	"github.com/oidcgate/oidcgate/provider/storage"
	"github.com/oidcgate/oidcgate/provider/storage/bolt"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConnectorsList reads connectors from a provider configuration file
// (secrets from _file) and checks each: a real slapd answers, a closed
// port does not.
func TestConnectorsList(t *testing.T) {
	dir := ldaptest.Start(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String()
	ln.Close()
	bindPW := writeFile(t, "bind", ldaptest.ServicePassword+"\n")
	cfg := writeFile(t, "oidcgate.yaml", fmt.Sprintf(`issuer: http://127.0.0.1:8080
connectors:
  - id: corp-ldap
    type: ldap
    name: Corp directory
    username_domains: [corp.example]
    config:
      url: %s
      start_tls: true
      root_ca: %s
      bind_dn: %s
      bind_password_file: %s
      user_search: {base_dn: "ou=people,%s"}
  - id: gone
    type: oidc
    name: Gone SSO
    config: {issuer: %q, client_id: x, client_secret: y, timeout: 1s}
`, dir.URL, dir.CAFile, ldaptest.ServiceDN, bindPW, ldaptest.Base, closed))
	code, out, stderr := runCmd(t, nil, "connectors", "list", "--config", cfg)
	if code != 1 || !strings.Contains(out, "corp-ldap") || !strings.Contains(out, "gone") ||
		!strings.Contains(stderr, "1 of 2 connectors unreachable") {
		t.Fatalf("connectors list: exit %d\n%s%s", code, out, stderr)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "corp-ldap") && !strings.Contains(line, " ok ") {
			t.Errorf("the directory is reported unhealthy: %q", line)
		}
		if strings.HasPrefix(line, "gone") && !strings.Contains(line, "unreachable") {
			t.Errorf("a closed port is reported healthy: %q", line)
		}
	}
	if code, out, _ := runCmd(t, nil, "connectors", "list", "--json", "--config", cfg); code != 1 || !strings.Contains(out, `"healthy": true`) {
		t.Errorf("--json: %d %s", code, out)
	}
}

func TestConnectorsConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown key in config":  {`connectors: [{id: a, type: oidc, config: {issuer: "https://x.example", client_id: c, clientid: typo}}]`, "clientid"},
		"unknown type":           {`connectors: [{id: a, type: saml, config: {}}]`, `type "saml"`},
		"no config block":        {`connectors: [{id: a, type: oidc}]`, "no config block"},
		"bad id":                 {`connectors: [{id: "Bad Id", type: github, config: {client_id: c}}]`, "connector id"},
		"duplicate id":           {"connectors: [{id: a, type: github, config: {client_id: c}}, {id: a, type: github, config: {client_id: d}}]", "appears twice"},
		"plain ldap":             {`connectors: [{id: l, type: ldap, config: {url: "ldap://10.0.0.1", user_search: {base_dn: "dc=x"}}}]`, "start_tls"},
		"http upstream":          {`connectors: [{id: a, type: oidc, config: {issuer: "http://sso.example", client_id: c}}]`, "must be https"},
		"alg none":               {`connectors: [{id: a, type: oidc, config: {issuer: "https://x.example", client_id: c, signing_algs: [none]}}]`, "signing_algs"},
		"password connector":     {`password_connector: nope`, "password-connector"},
		"hidden form, no button": {`hide_password_form: true`, "no way to sign in"},
		"missing secret file":    {`connectors: [{id: a, type: oidc, config: {issuer: "https://x.example", client_id: c, client_secret_file: /nonexistent/secret}}]`, "client_secret_file"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := writeFile(t, "c.yaml", tc.yaml)
			code, _, stderr := runCmd(t, nil, "provider", "--config", cfg, "--store", "memory",
				"--public-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0")
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want it to name %q", code, stderr, tc.want)
			}
		})
	}
}

func TestUsersIdentitiesAndUnlink(t *testing.T) {
	dir := t.TempDir()
	e := env("OIDCGATE_DATA_DIR", dir, "OIDCGATE_ARGON2_MEMORY_KIB", "8192", "OIDCGATE_ARGON2_TIME", "1")
	if code, _, stderr := runCmdInput(t, e, "correct horse battery\n", "users", "create", "alice"); code != 0 {
		t.Fatal(stderr)
	}
	st, err := bolt.Open(filepath.Join(dir, "oidcgate.db"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := st.GetUserByUsername(context.Background(), "alice")
	for _, sub := range []string{"up-1", "up-2"} {
		if err := st.CreateIdentity(context.Background(), &storage.Identity{ConnectorID: "corp", Subject: sub, UserID: u.ID, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	code, out, stderr := runCmd(t, e, "users", "identities", "alice")
	if code != 0 || !strings.Contains(out, "corp") || !strings.Contains(out, "up-1") || !strings.Contains(out, "up-2") {
		t.Fatalf("identities: %d %s %s", code, out, stderr)
	}
	if code, out, _ := runCmd(t, e, "users", "unlink", "alice", "corp", "up-1"); code != 0 || !strings.Contains(out, "unlinked up-1") {
		t.Errorf("unlink: %d %s", code, out)
	}
	if code, _, stderr := runCmd(t, e, "users", "unlink", "alice", "corp", "up-1"); code == 0 || !strings.Contains(stderr, "has no identity") {
		t.Errorf("second unlink: %d %s", code, stderr)
	}
	if _, out, _ := runCmd(t, e, "users", "identities", "alice", "--json"); strings.Contains(out, "up-1") || !strings.Contains(out, `"subject": "up-2"`) {
		t.Errorf("after unlink: %s", out)
	}
}

// TestConnectorsExampleIsValid: the documented example (shown in the
// README as it is in the file) loads and validates.
func TestConnectorsExampleIsValid(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "demo", "connectors.example.yaml")
	cfg := defaultProviderConfig()
	if _, err := load("provider", &cfg, []string{"--config", path}, env(), io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Config.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Connectors) != 3 || cfg.Connectors[0].OIDC == nil || cfg.Connectors[1].GitHub == nil || cfg.Connectors[2].LDAP == nil ||
		cfg.Connectors[0].OIDC.Claims.Groups != "realm_access.roles" {
		t.Errorf("example decoded as %+v", cfg.Connectors)
	}
	example, _ := os.ReadFile(path)
	readme, _ := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if !strings.Contains(string(readme), string(example)) {
		t.Error("README.md does not show docs/demo/connectors.example.yaml as it is")
	}
}
