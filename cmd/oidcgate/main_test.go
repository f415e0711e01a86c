package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binary builds the command once per test run.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "oidcgate-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "oidcgate")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// runCmd runs one command line in-process.
func runCmd(t *testing.T, environ func(string) string, args ...string) (int, string, string) {
	t.Helper()
	return runCmdInput(t, environ, "", args...)
}

// runCmdInput runs one command line in-process with stdin.
func runCmdInput(t *testing.T, environ func(string) string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if environ == nil {
		environ = env()
	}
	code := run(context.Background(), args, stdio{in: strings.NewReader(stdin), out: &out, err: &errb, env: environ})
	return code, out.String(), errb.String()
}

func TestBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	unknownKey := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknownKey, []byte("public_addr: \":8080\"\nno_such_setting: 1\n"), 0o600)
	badTypes := filepath.Join(dir, "types.yaml")
	os.WriteFile(badTypes, []byte("read_timeout: soon\nmax_request_body_size: big\n"), 0o600)

	tests := []struct {
		name  string
		env   func(string) string
		args  []string
		lines []string // each must appear, one per bad setting
	}{
		{"not a url", nil, []string{"provider", "--database-url=notaurl"}, []string{"--database-url: not a postgres:// URL"}},
		{"unknown yaml key", nil, []string{"provider", "--config", unknownKey}, []string{"unknown setting no_such_setting"}},
		{"bad yaml types", nil, []string{"provider", "--config", badTypes}, []string{"line 1", "line 2"}},
		{"negative duration", nil, []string{"provider", "--read-timeout=-5s"}, []string{"--read-timeout: must be a positive duration"}},
		{"several at once", nil, []string{"provider", "--idle-timeout=0s", "--log-format=xml", "--public-addr=nohost", "--store=sqlite"},
			[]string{"--idle-timeout:", "--log-format:", "--public-addr:", "--store:"}},
		{"bad env", env("OIDCGATE_SHUTDOWN_TIMEOUT", "forever"), []string{"provider"}, []string{"OIDCGATE_SHUTDOWN_TIMEOUT: not a duration"}},
		{"unknown flag", nil, []string{"provider", "--frobnicate"}, []string{"frobnicate"}},
		{"tls half", nil, []string{"provider", "--tls-cert", "/nonexistent.pem"}, []string{"--tls-cert: --tls-cert and --tls-key go together"}},
		{"migrate no url", nil, []string{"migrate", "up"}, []string{"--database-url: required"}},
		{"migrate no verb", nil, []string{"migrate"}, []string{"want exactly one of: up, down, status"}},
		{"unknown command", nil, []string{"frobnicate"}, []string{`unknown command "frobnicate"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, tc.env, tc.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
			}
			for _, l := range tc.lines {
				if !strings.Contains(stderr, l) {
					t.Errorf("stderr lacks %q:\n%s", l, stderr)
				}
			}
			if len(tc.lines) > 1 && strings.Count(stderr, "\n") < len(tc.lines) {
				t.Errorf("want one line per bad setting:\n%s", stderr)
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	os.WriteFile(file, []byte("public_addr: \"file:1\"\nadmin_addr: \"file:2\"\nops_addr: \"file:3\"\nread_timeout: 3m\n"), 0o600)
	secret := filepath.Join(dir, "db-url")
	os.WriteFile(secret, []byte("postgres://u:pw@db:5432/x\n"), 0o600)
	cfg := defaultProviderConfig()
	_, err := load("provider", &cfg, []string{"--config", file, "--ops-addr", "flag:3"},
		env("OIDCGATE_ADMIN_ADDR", "env:2", "OIDCGATE_OPS_ADDR", "env:3", "OIDCGATE_DATABASE_URL_FILE", secret), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PublicAddr != "file:1" || cfg.AdminAddr != "env:2" || cfg.OpsAddr != "flag:3" || cfg.ReadTimeout != 3*time.Minute {
		t.Errorf("precedence wrong: %+v", cfg)
	}
	if cfg.DatabaseURL != "postgres://u:pw@db:5432/x" {
		t.Errorf("secret from _FILE = %q", cfg.DatabaseURL)
	}
	if cfg.WriteTimeout != 10*time.Second {
		t.Errorf("default lost: %v", cfg.WriteTimeout)
	}
}

func TestHelpDocumentsEverySetting(t *testing.T) {
	code, out, _ := runCmd(t, nil, "provider", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	cfg := defaultProviderConfig()
	for _, s := range settings(&cfg) {
		for _, want := range []string{"--" + s.flagName(), s.envName(), "default "} {
			if !strings.Contains(out, want) {
				t.Errorf("--help lacks %q", want)
			}
		}
	}
}

func TestUnreachableDatabase(t *testing.T) {
	code, _, stderr := runCmd(t, nil, "provider", "--database-url", "postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=2",
		"--public-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr, "cannot reach PostgreSQL") || strings.Contains(stderr, "hunter2") || strings.Contains(stderr, "panic") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// TestProviderLifecycle starts the real binary with no flags in an empty
// directory (listeners moved to free loopback ports through the
// environment), checks the ops endpoints and the bolt file in ./data, then
// sends SIGTERM and expects exit 0 within the drain timeout.
func TestProviderLifecycle(t *testing.T) {
	dir := t.TempDir()
	cmd, addrs := startProvider(t, dir)
	ops := "http://" + addrs["ops"]
	if addrs["ops"] == "" {
		t.Fatalf("no ops listener logged: %v", addrs)
	}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "[+] keys ok", "/metrics": "go_goroutines"} {
		resp, err := http.Get(ops + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d, body lacks %q", path, resp.StatusCode, want)
		}
		if path == "/metrics" && !strings.Contains(string(body), "process_resident_memory_bytes") {
			t.Error("/metrics lacks process metrics")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "oidcgate.db")); err != nil {
		t.Errorf("bolt store not in ./data: %v", err)
	}

	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v, longer than the drain timeout", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit within twice the drain timeout after SIGTERM")
	}
}

func TestWrongKEKIsAClearStartupError(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runCmd(t, nil, "keys", "list", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("keys list on a new data dir: exit %d: %s", code, stderr)
	}
	other := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" // 32 zero bytes, not the generated key
	code, _, stderr = runCmd(t, nil, "keys", "list", "--data-dir", dir, "--key-encryption-key", other)
	if code != 1 || !strings.Contains(stderr, "does not decrypt under the configured key-encryption key") || strings.Contains(stderr, "panic") {
		t.Errorf("exit %d, stderr %q; want 1 and a clear message", code, stderr)
	}
	code, _, stderr = runCmd(t, nil, "keys", "list", "--data-dir", dir, "--key-encryption-key", "c2hvcnQ=")
	if code != exitUsage || !strings.Contains(stderr, "--key-encryption-key: the key-encryption key must decode to 32 bytes") {
		t.Errorf("short KEK: exit %d, stderr %q", code, stderr)
	}
}

// startProvider runs the real binary's provider in dir on free loopback
// ports and returns it with its listeners' addresses by name.
func startProvider(t *testing.T, dir string, extraEnv ...string) (*exec.Cmd, map[string]string) {
	t.Helper()
	cmd := exec.Command(binary, "provider")
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(),
		"OIDCGATE_PUBLIC_ADDR=127.0.0.1:0", "OIDCGATE_ADMIN_ADDR=127.0.0.1:0", "OIDCGATE_OPS_ADDR=127.0.0.1:0",
		"OIDCGATE_SHUTDOWN_TIMEOUT=5s"), extraEnv...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addrs := map[string]string{}
	lines := bufio.NewScanner(stderr)
	re := regexp.MustCompile(`msg=listening listener=(\w+) addr=(\S+)`)
	for len(addrs) < 3 && lines.Scan() {
		if m := re.FindStringSubmatch(lines.Text()); m != nil {
			addrs[m[1]] = m[2]
		}
	}
	go io.Copy(io.Discard, stderr)
	return cmd, addrs
}

// TestKeysRevokeThroughAdminAPI: `keys revoke --admin-url` has the running
// provider revoke the key (its embedded store is locked to the CLI), and it
// stops signing with it at once.
func TestKeysRevokeThroughAdminAPI(t *testing.T) {
	dir := t.TempDir()
	code, token, stderr := runCmd(t, env("OIDCGATE_DATA_DIR", filepath.Join(dir, "data")), "admin-tokens", "create", "--name", "ops")
	if code != 0 {
		t.Fatalf("admin-tokens create: %d %s", code, stderr)
	}
	_, addrs := startProvider(t, dir)
	admin := "http://" + addrs["admin"]
	if code, _, stderr := runCmd(t, nil, "keys", "list", "--admin-url", admin); code != 1 || !strings.Contains(stderr, "401") {
		t.Fatalf("keys list without a token: %d %s", code, stderr)
	}
	e := env("OIDCGATE_ADMIN_TOKEN", strings.TrimSpace(token))
	code, out, stderr := runCmd(t, e, "keys", "list", "--admin-url", admin, "--json")
	if code != 0 {
		t.Fatalf("keys list: %d %s", code, stderr)
	}
	var list []struct {
		KID   string `json:"kid"`
		Alg   string `json:"alg"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) == 0 {
		t.Fatalf("keys list --json: %q %v", out, err)
	}
	victim := ""
	for _, k := range list {
		if k.Alg == "ES256" && k.State == "active" {
			victim = k.KID
		}
	}
	// A kid is base64url and may begin with "-": after "--" it is no flag.
	code, out, stderr = runCmd(t, e, "keys", "revoke", "--admin-url", admin, "--", victim)
	if code != 0 || !strings.Contains(stderr, "revoked "+victim) || strings.Contains(out, victim) {
		t.Fatalf("keys revoke: %d %s %s", code, out, stderr)
	}
	resp, err := http.Get("http://" + addrs["public"] + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), victim) {
		t.Error("the revoked key is still in the JWKS")
	}
	if code, _, stderr := runCmd(t, e, "keys", "revoke", "nope", "--admin-url", admin); code != 1 || !strings.Contains(stderr, "404") {
		t.Errorf("revoke unknown: %d %s", code, stderr)
	}
}
