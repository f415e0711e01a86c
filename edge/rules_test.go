package edge_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/edge"
	"github.com/oidcgate/oidcgate/keys"
)

const ruleRoutes = `
routes:
  - path_prefix: /admin
    audience: https://api.example.com
    claims:
      groups: [admin, ops]
      email_verified: true
    headers: {X-User-Email: email, X-Groups: groups}
  - path_prefix: /mfa
    claims:
      amr: {all: [pwd, otp]}
      realm_access.roles: auditor
  - path_prefix: /tenant
    rule: 'claims.tenant == request.headers["x-tenant-id"] && request.method == "GET" && request.path.startsWith("/tenant/")'
    headers: {X-Tenant: tenant, X-Level: level}
  - path_prefix: /
`

// TestClaimRules: matchers (any, all, dotted paths, booleans) and a CEL
// rule over claims and the request, on every request, through the proxy
// and forward-auth; the claim headers reach the upstream, lists joined.
func TestClaimRules(t *testing.T) {
	w := newWorld(t, worldOpts{routes: ruleRoutes})
	admin := w.sign(t, keys.ES256, map[string]any{"groups": []string{"dev", "ops"}, "email_verified": true, "email": "ann@example.com", "jti": "a1"})
	for name, tc := range map[string]struct {
		tok     string
		path    string
		headers []string
		status  int
	}{
		"a group of the list":   {admin, "/admin/x", nil, 200},
		"no group of the list":  {w.sign(t, keys.ES256, map[string]any{"groups": []string{"dev"}, "email_verified": true, "jti": "a2"}), "/admin/x", nil, 403},
		"no groups claim":       {w.sign(t, keys.ES256, map[string]any{"email_verified": true, "jti": "a3"}), "/admin/x", nil, 403},
		"a string, not a list":  {w.sign(t, keys.ES256, map[string]any{"groups": "admin", "email_verified": true, "jti": "a4"}), "/admin/x", nil, 200},
		"email not verified":    {w.sign(t, keys.ES256, map[string]any{"groups": []string{"admin"}, "email_verified": false, "jti": "a5"}), "/admin/x", nil, 403},
		"all of amr, a path":    {w.sign(t, keys.ES256, map[string]any{"amr": []string{"otp", "pwd"}, "realm_access": map[string]any{"roles": []string{"auditor"}}, "jti": "m1"}), "/mfa", nil, 200},
		"one of amr missing":    {w.sign(t, keys.ES256, map[string]any{"amr": []string{"pwd"}, "realm_access": map[string]any{"roles": []string{"auditor"}}, "jti": "m2"}), "/mfa", nil, 403},
		"the nested role wrong": {w.sign(t, keys.ES256, map[string]any{"amr": []string{"otp", "pwd"}, "realm_access": map[string]any{"roles": []string{"viewer"}}, "jti": "m3"}), "/mfa", nil, 403},
		"rule: header matches":  {w.sign(t, keys.ES256, map[string]any{"tenant": "t1", "level": 3, "jti": "t1"}), "/tenant/a", []string{"X-Tenant-Id", "t1"}, 200},
		"rule: another tenant":  {w.sign(t, keys.ES256, map[string]any{"tenant": "t1", "jti": "t2"}), "/tenant/a", []string{"X-Tenant-Id", "t2"}, 403},
		"rule: claim missing":   {w.sign(t, keys.ES256, map[string]any{"jti": "t3"}), "/tenant/a", []string{"X-Tenant-Id", "t1"}, 403},
		"rule: path":            {w.sign(t, keys.ES256, map[string]any{"tenant": "t1", "jti": "t4"}), "/tenant", []string{"X-Tenant-Id", "t1"}, 403},
		"no rule":               {w.sign(t, keys.ES256, map[string]any{"jti": "r1"}), "/other", nil, 200},
	} {
		resp, body := w.get(t, tc.path, append(bearer(tc.tok), tc.headers...)...)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
		if tc.status == 403 && (!strings.Contains(body, "access_denied") || !strings.Contains(body, "rules")) {
			t.Errorf("%s: the denial %s", name, body)
		}
	}
	// The claim headers, lists joined; a client's own copies (any spelling) are gone.
	resp, _ := w.get(t, "/admin/x", append(bearer(admin), "X-User-Email", "forged@example.com", "X_Groups", "admin")...)
	h := w.up.header()
	if resp.StatusCode != 200 || h.Get("X-User-Email") != "ann@example.com" || h.Get("X-Groups") != "dev,ops" || h.Get("X_Groups") != "" {
		t.Errorf("upstream headers: %v", h)
	}
	resp, _ = w.get(t, "/tenant/a", append(bearer(w.sign(t, keys.ES256, map[string]any{"tenant": "t1", "level": 3, "jti": "t5"})), "X-Tenant-Id", "t1", "X-Tenant", "forged", "X-Level", "99")...)
	if h := w.up.header(); resp.StatusCode != 200 || h.Get("X-Level") != "3" || len(h.Values("X-Tenant")) != 1 || h.Get("X-Tenant") != "t1" {
		t.Errorf("a number claim and a client header of a mapped name: %v", h)
	}
	// A mapped claim with a control character refuses the token.
	evil := w.sign(t, keys.ES256, map[string]any{"groups": []string{"admin"}, "email_verified": true, "email": "a@b\r\nX-Injected: 1", "jti": "e1"})
	if resp, body := w.get(t, "/admin/x", bearer(evil)...); resp.StatusCode != 401 || !strings.Contains(body, "control characters") {
		t.Errorf("header injection through a claim: %d %s", resp.StatusCode, body)
	}
	// A cached token is judged by each route's rules anew.
	both := w.sign(t, keys.ES256, map[string]any{"groups": []string{"admin"}, "email_verified": true, "jti": "c1"})
	for i, tc := range []struct {
		path   string
		status int
	}{{"/admin/x", 200}, {"/mfa", 403}, {"/admin/y", 200}, {"/mfa", 403}} {
		if resp, _ := w.get(t, tc.path, bearer(both)...); resp.StatusCode != tc.status {
			t.Errorf("request %d to %s: %d", i, tc.path, resp.StatusCode)
		}
	}
	if n := counter(t, w, "oidcgate_edge_decisions_total", "claim_rule"); n < 1 {
		t.Errorf("claim_rule decisions counted: %v", n)
	}
}

// TestClaimRulesForwardAuth: forward-auth answers with the claim headers,
// and denies by the rules.
func TestClaimRulesForwardAuth(t *testing.T) {
	w := newWorld(t, worldOpts{routes: ruleRoutes, proxyKind: "nginx"})
	ok := w.sign(t, keys.ES256, map[string]any{"groups": []string{"admin"}, "email_verified": true, "email": "ann@example.com", "jti": "f1"})
	resp, _ := w.get(t, "/_oidcgate/auth", append(bearer(ok), "X-Original-URI", "/admin/x")...)
	if resp.StatusCode != 200 || resp.Header.Get("X-User-Email") != "ann@example.com" || resp.Header.Get("X-Groups") != "admin" {
		t.Errorf("forward-auth: %d %v", resp.StatusCode, resp.Header)
	}
	no := w.sign(t, keys.ES256, map[string]any{"groups": []string{"dev"}, "email_verified": true, "jti": "f2"})
	if resp, _ := w.get(t, "/_oidcgate/auth", append(bearer(no), "X-Original-URI", "/admin/x")...); resp.StatusCode != 403 {
		t.Errorf("forward-auth denied by the rules: %d", resp.StatusCode)
	}
}

// TestRuleLoadErrors: a rule that does not compile, or is not a bool, or
// a malformed matcher or header stops the load, naming the route.
func TestRuleLoadErrors(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, says string }{
		"syntax":          {"routes:\n  - path_prefix: /a\n    rule: 'claims.x =='\n", "rule 1 (/a): rule:"},
		"not a bool":      {"routes:\n  - path_prefix: /a\n    rule: 'claims.x'\n", "must be of type bool"},
		"an unknown name": {"routes:\n  - path_prefix: /a\n    rule: 'user.admin == true'\n", "undeclared reference"},
		"a type error":    {"routes:\n  - path_prefix: /a\n    rule: 'request.method + 1 == 2'\n", "rule 1 (/a)"},
		"a matcher key":   {"routes:\n  - path_prefix: /a\n    claims: {groups: {some: [x]}}\n", "any or all"},
		"an empty path":   {"routes:\n  - path_prefix: /a\n    claims: {\"a..b\": x}\n", "not a claim path"},
		"a header name":   {"routes:\n  - path_prefix: /a\n    headers: {\"X Bad\": email}\n", "not a header name"},
		"public + claims": {"routes:\n  - path_prefix: /a\n    public: true\n    claims: {groups: x}\n", "public rule takes no claims"},
		"second route":    {"routes:\n  - path_prefix: /a\n  - path_prefix: /b\n    rule: '1'\n", "rule 2 (/b)"},
	} {
		path := filepath.Join(t.TempDir(), "routes.yaml")
		os.WriteFile(path, []byte(tc.yaml), 0o600)
		_, err := edge.LoadRoutes(path)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// counter is a counter vector's value for one label value (a plain
// counter's with "").
func counter(t *testing.T, w *world, name, reason string) float64 {
	t.Helper()
	mfs, err := w.reg().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if reason == "" && len(m.GetLabel()) == 0 {
				return m.GetCounter().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestRateLimits: a token bucket per subject (or client); an empty one is
// 429 with Retry-After, another subject is not affected, and the bucket
// refills with time.
func TestRateLimits(t *testing.T) {
	w := newWorld(t, worldOpts{routes: `
routes:
  - path_prefix: /limited
    rate_limit: {per: sub, rps: 1, burst: 2}
  - path_prefix: /
`})
	a := w.sign(t, keys.ES256, map[string]any{"sub": "alice", "jti": "r1"})
	a2 := w.sign(t, keys.ES256, map[string]any{"sub": "alice", "jti": "r2"}) // another token, the same subject
	b := w.sign(t, keys.ES256, map[string]any{"sub": "bob", "jti": "r3"})
	for i, tc := range []struct {
		tok    string
		status int
	}{{a, 200}, {a2, 200}, {a, 429}, {b, 200}, {a2, 429}} {
		resp, body := w.get(t, "/limited", bearer(tc.tok)...)
		if resp.StatusCode != tc.status {
			t.Errorf("request %d: %d %s", i, resp.StatusCode, body)
		}
		if tc.status == 429 && (resp.Header.Get("Retry-After") != "1" || !strings.Contains(body, "rate_limited")) {
			t.Errorf("request %d: Retry-After %q, %s", i, resp.Header.Get("Retry-After"), body)
		}
	}
	if resp, _ := w.get(t, "/other", bearer(a)...); resp.StatusCode != 200 {
		t.Errorf("a route without a limit: %d", resp.StatusCode)
	}
	w.clock.Advance(1100 * time.Millisecond)
	if resp, _ := w.get(t, "/limited", bearer(a)...); resp.StatusCode != 200 {
		t.Errorf("after a second: %d", resp.StatusCode)
	}
	for name, y := range map[string]string{
		"per":    "routes:\n  - path_prefix: /a\n    rate_limit: {per: ip, rps: 1}\n",
		"rps":    "routes:\n  - path_prefix: /a\n    rate_limit: {per: sub, rps: 0}\n",
		"public": "routes:\n  - path_prefix: /a\n    public: true\n    rate_limit: {per: sub, rps: 1}\n",
	} {
		path := filepath.Join(t.TempDir(), "routes.yaml")
		os.WriteFile(path, []byte(y), 0o600)
		if _, err := edge.LoadRoutes(path); err == nil || !strings.Contains(err.Error(), "rule 1 (/a)") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
