package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startBinary runs the oidcgate binary and returns the listener addresses
// it logs; it is stopped with SIGTERM when the test ends.
func startBinary(t *testing.T, dir string, want int, args ...string) map[string]string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	addrs := map[string]string{}
	re := regexp.MustCompile(`msg=listening listener=(\w+) addr=(\S+)`)
	lines := bufio.NewScanner(stderr)
	var log strings.Builder
	for len(addrs) < want && lines.Scan() {
		log.WriteString(lines.Text() + "\n")
		if m := re.FindStringSubmatch(lines.Text()); m != nil {
			addrs[m[1]] = m[2]
		}
	}
	if len(addrs) < want {
		t.Fatalf("%v: only %v listening; log:\n%s", args, addrs, log.String())
	}
	go io.Copy(io.Discard, stderr)
	return addrs
}

func demoToken(t *testing.T, issuer string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", issuer+"/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("demo", "demo-secret-0123456789abcdefghijklmnop")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	tok, _ := m["access_token"].(string)
	if tok == "" {
		t.Fatalf("no token: %v", m)
	}
	return tok
}

func edgeGet(t *testing.T, url, token string) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// TestAllAndEdgeModes runs `oidcgate all` with the demo bootstrap in front
// of an upstream, then a standalone `oidcgate edge` that discovers the same
// provider: both refuse a request without a token and pass one with.
func TestAllAndEdgeModes(t *testing.T) {
	var seen atomic.Value // the X-Auth-Client-Id the upstream last saw
	seen.Store("")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("X-Auth-Client-Id"))
		w.Write([]byte("upstream"))
	}))
	defer up.Close()
	wd, _ := os.Getwd()
	bootstrap := filepath.Join(wd, "..", "..", "docs", "demo", "bootstrap.yaml")
	public := freePort(t)
	issuer := "http://" + public
	addrs := startBinary(t, t.TempDir(), 4, "all", "--issuer", issuer, "--public-addr", public,
		"--admin-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0", "--edge-addr", "127.0.0.1:0",
		"--upstream", up.URL, "--audience", "https://api.example.com", "--bootstrap", bootstrap,
		"--argon2-memory-kib", "8192", "--argon2-time", "1")
	allEdge := "http://" + addrs["edge"]
	if code, h := edgeGet(t, allEdge+"/x", ""); code != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("all: no token: %d %v", code, h)
	}
	tok := demoToken(t, issuer)
	if code, _ := edgeGet(t, allEdge+"/x", tok); code != 200 || seen.Load() != "demo" {
		t.Fatalf("all: with a token: %d, upstream saw client %q", code, seen.Load())
	}
	// The demo's declared admin token (make run prints it) opens the admin API; nothing else does.
	for token, want := range map[string]int{"oidcgate-demo-admin-token-0123456789abcdef": 200, "": 401, "oidcgate-demo-admin-token-0123456789abcdeX": 401} {
		req, _ := http.NewRequest("GET", "http://"+addrs["admin"]+"/admin/v1/clients", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("admin API with token %q: %d, want %d", token, resp.StatusCode, want)
		}
	}

	eaddrs := startBinary(t, t.TempDir(), 3, "edge", "--issuer", issuer, "--edge-addr", "127.0.0.1:0",
		"--ops-addr", "127.0.0.1:0", "--upstream", up.URL, "--audience", "https://api.example.com", "--ext-authz-addr", "127.0.0.1:0")
	edgeURL := "http://" + eaddrs["edge"]
	// Its first JWKS fetch runs in the background: wait for /readyz.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + eaddrs["ops"] + "/readyz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the edge never became ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen.Store("")
	if code, _ := edgeGet(t, edgeURL+"/y", tok); code != 200 || seen.Load() != "demo" {
		t.Fatalf("edge: %d, upstream saw %q", code, seen.Load())
	}
	if code, _ := edgeGet(t, edgeURL+"/y", tok+"x"); code != 401 {
		t.Fatalf("edge: tampered token: %d", code)
	}
	// The same decisions over gRPC ext_authz, from a grpc-go client.
	conn, err := grpc.NewClient(eaddrs["ext_authz"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for token, want := range map[string]codes.Code{tok: codes.OK, "": codes.Unauthenticated, tok + "x": codes.Unauthenticated} {
		hdr := map[string]string{}
		if token != "" {
			hdr["authorization"] = "Bearer " + token
		}
		r, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/y", Headers: hdr}}}})
		if err != nil || codes.Code(r.GetStatus().GetCode()) != want {
			t.Errorf("ext_authz with token %.12q: %v %v, want %v", token, r.GetStatus(), err, want)
		}
	}
}

// TestEdgeSeveralIssuers: one `oidcgate edge` trusting two providers from
// an issuers: list; routes accept the issuer they name; per-issuer metrics.
func TestEdgeSeveralIssuers(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("upstream")) }))
	defer up.Close()
	wd, _ := os.Getwd()
	bootstrap := filepath.Join(wd, "..", "..", "docs", "demo", "bootstrap.yaml")
	var issuers []string
	for range 2 {
		public := freePort(t)
		issuers = append(issuers, "http://"+public)
		startBinary(t, t.TempDir(), 3, "provider", "--issuer", "http://"+public, "--public-addr", public, "--admin-addr", "127.0.0.1:0",
			"--ops-addr", "127.0.0.1:0", "--store", "memory", "--bootstrap", bootstrap, "--argon2-memory-kib", "8192", "--argon2-time", "1")
	}
	dir := t.TempDir()
	cfgFile, routesFile := filepath.Join(dir, "edge.yaml"), filepath.Join(dir, "routes.yaml")
	os.WriteFile(cfgFile, []byte("issuers:\n  - issuer: "+issuers[0]+"\n  - issuer: "+issuers[1]+"\n    audiences: [https://api.example.com]\n"), 0o600)
	os.WriteFile(routesFile, []byte("routes:\n  - path_prefix: /one\n    issuers: ["+issuers[0]+"]\n  - path_prefix: /\n"), 0o600)
	addrs := startBinary(t, dir, 2, "edge", "--config", cfgFile, "--routes", routesFile, "--edge-addr", "127.0.0.1:0",
		"--ops-addr", "127.0.0.1:0", "--upstream", up.URL)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addrs["ops"] + "/readyz"); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the edge never became ready")
		}
	}
	edgeURL := "http://" + addrs["edge"]
	t1, t2 := demoToken(t, issuers[0]), demoToken(t, issuers[1])
	for name, tc := range map[string]struct {
		path, tok string
		want      int
	}{"issuer 1 on /one": {"/one", t1, 200}, "issuer 2 on /one": {"/one", t2, 401}, "issuer 2 elsewhere": {"/x", t2, 200},
		"issuer 1 elsewhere": {"/x", t1, 200}} {
		if code, _ := edgeGet(t, edgeURL+tc.path, tc.tok); code != tc.want {
			t.Errorf("%s: %d, want %d", name, code, tc.want)
		}
	}
	resp, err := http.Get("http://" + addrs["ops"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, iss := range issuers {
		if !strings.Contains(string(body), `oidcgate_edge_jwks_fetches_total{issuer="`+iss+`"`) {
			t.Errorf("no JWKS metrics for %s", iss)
		}
	}
	// --issuer and issuers: together are refused.
	if code, _, stderr := runCmd(t, nil, "edge", "--config", cfgFile, "--issuer", issuers[0], "--audience", "any"); code == 0 || !strings.Contains(stderr, "not both") {
		t.Errorf("--issuer with issuers: exit %d: %s", code, stderr)
	}
}

// TestEdgeFollowsRevocations: `oidcgate edge --revocation-stream` refuses
// a token it has cached within 2 s of its revocation at the provider.
func TestEdgeFollowsRevocations(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("upstream")) }))
	defer up.Close()
	dir := t.TempDir()
	boot := filepath.Join(dir, "bootstrap.yaml")
	os.WriteFile(boot, []byte(`clients:
  - id: demo
    secret: demo-secret-0123456789abcdefghijklmnop
    scopes: [read]
    audiences: [https://api.example.com]
  - id: edge
    secret: edge-secret-0123456789abcdefghijklmnopq
    introspect_any: true
    audiences: [https://api.example.com]
`), 0o600)
	public := freePort(t)
	issuer := "http://" + public
	startBinary(t, t.TempDir(), 3, "provider", "--issuer", issuer, "--public-addr", public, "--admin-addr", "127.0.0.1:0",
		"--ops-addr", "127.0.0.1:0", "--store", "memory", "--bootstrap", boot)
	addrs := startBinary(t, dir, 2, "edge", "--issuer", issuer, "--edge-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0",
		"--upstream", up.URL, "--audience", "https://api.example.com", "--client-id", "edge",
		"--client-secret", "edge-secret-0123456789abcdefghijklmnopq", "--revocation-stream", issuer+"/revocations")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addrs["ops"] + "/readyz"); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the edge never became ready")
		}
	}
	tok := demoToken(t, issuer)
	edgeURL := "http://" + addrs["edge"]
	if code, _ := edgeGet(t, edgeURL+"/x", tok); code != 200 {
		t.Fatalf("before: %d", code)
	}
	req, _ := http.NewRequest("POST", issuer+"/revoke", strings.NewReader("token="+tok))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("demo", "demo-secret-0123456789abcdefghijklmnop")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	resp.Body.Close()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := edgeGet(t, edgeURL+"/x", tok); code == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the edge still accepts the revoked token 2 s after its revocation")
		}
	}
}
