package provider_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// openidClient runs testdata/rp/rp.mjs (panva's openid-client, pinned by
// its package-lock.json) as a relying party of s, installing it with
// `npm ci` the first time. Without Node.js and npm the test is skipped
// loudly; under CI it fails.
func openidClient(t *testing.T, s *server, clientID, redirect string) func(args ...string) map[string]any {
	t.Helper()
	node, npm := lookPath("node"), lookPath("npm")
	if node == "" || npm == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("Node.js and npm are needed for the openid-client check")
		}
		t.Skip("SKIPPED LOUDLY: Node.js and npm are not installed; the openid-client relying-party check did not run")
	}
	dir, _ := filepath.Abs(filepath.Join("testdata", "rp"))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openid-client")); err != nil {
		if out, err := exec.Command(npm, "ci", "--prefix", dir, "--no-audit", "--no-fund").CombinedOutput(); err != nil {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
	}
	cfg, _ := json.Marshal(map[string]string{"issuer": s.issuer, "client_id": clientID, "client_secret": secret, "redirect_uri": redirect})
	return func(args ...string) map[string]any {
		t.Helper()
		cmd := exec.Command(node, append([]string{filepath.Join(dir, "rp.mjs")}, args...)...)
		cmd.Env = append(os.Environ(), "RP_CONFIG="+string(cfg))
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("openid-client %s: %v\n%s", args[0], err, stderr)
		}
		var res map[string]any
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("openid-client %s printed %q", args[0], out)
		}
		return res
	}
}

func lookPath(name string) string {
	p, _ := exec.LookPath(name)
	return p
}

// TestOpenIDClientThroughUpstreamConnector: openid-client, a certified
// relying party library, completes the code flow (PKCE, state, nonce, iss
// per RFC 9207, ID token and userinfo checks) at the downstream oidcgate
// while the user signs in through its upstream connector.
func TestOpenIDClientThroughUpstreamConnector(t *testing.T) {
	f := federate(t, backends()[0].open(t))
	rp := openidClient(t, f.down, "web", rpRedirect)
	start := rp("start")
	b := newBrowser(t)
	p := b.get(start["url"].(string))
	p = b.button(f.down, p, "Corp SSO")
	p = b.signIn(f.up, p, alicePassword)
	p = b.decide(f.down, p, "allow")
	if p.loc == nil {
		t.Fatalf("no redirect to the RP: %d %s", p.status, p.body)
	}
	res := rp("finish", p.loc.String(), start["code_verifier"].(string), start["state"].(string), start["nonce"].(string))
	claims, _ := res["claims"].(map[string]any)
	userinfo, _ := res["userinfo"].(map[string]any)
	sub, _ := claims["sub"].(string)
	if sub == "" || sub == "alice-sub" || claims["iss"] != f.down.issuer {
		t.Errorf("ID token claims %v", claims)
	}
	amr, _ := claims["amr"].([]any)
	if !slices.Contains(amr, any("fed")) {
		t.Errorf("amr %v, want fed", amr)
	}
	if userinfo["sub"] != sub || userinfo["email"] != "alice@example.com" {
		t.Errorf("userinfo %v", userinfo)
	}
}
