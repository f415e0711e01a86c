package provider_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/provider"
)

func TestAdminClients(t *testing.T) {
	s := start(t, backends()[0].open(t))
	s.token(t, "svc", "") // the client is now cached

	r := s.adminDo(t, "GET", "/admin/v1/clients")
	var list struct {
		Items []map[string]any `json:"items"`
		Next  string           `json:"next"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil || r.status != 200 || len(list.Items) < 5 || list.Next != "" {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	// Pages of three, by client_id, until the last.
	var ids []string
	for after := ""; ; {
		page := s.adminDo(t, "GET", "/admin/v1/clients?limit=3&after="+after)
		var pg struct {
			Items []struct {
				ID string `json:"client_id"`
			} `json:"items"`
			Next string `json:"next"`
		}
		json.Unmarshal(page.body, &pg)
		for _, c := range pg.Items {
			ids = append(ids, c.ID)
		}
		if pg.Next == "" {
			break
		}
		after = pg.Next
	}
	if len(ids) != len(list.Items) || !slices.IsSorted(ids) {
		t.Errorf("paged listing: %v", ids)
	}
	if r := s.adminDo(t, "GET", "/admin/v1/clients?limit=0"); r.status != 400 {
		t.Errorf("limit=0: %d", r.status)
	}
	if strings.Contains(string(r.body), "secret_hash") {
		t.Error("the admin API shows secret hashes")
	}
	r = s.adminDo(t, "GET", "/admin/v1/clients/svc")
	if r.status != 200 || r.json(t)["client_id"] != "svc" || r.json(t)["confidential"] != true {
		t.Errorf("get: %d %s", r.status, r.body)
	}
	if r := s.adminDo(t, "GET", "/admin/v1/clients/nope"); r.status != 404 || r.json(t)["error"] != "not_found" {
		t.Errorf("get unknown: %d %s", r.status, r.body)
	}
	if r := s.adminDo(t, "DELETE", "/admin/v1/clients/svc"); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	// A deletion through this process takes effect at once, cache or not.
	if r := s.post(t, "/token", "grant_type=client_credentials", "svc:"+secret); r.status != 401 {
		t.Errorf("token for a deleted client: %d %s", r.status, r.body)
	}
	// The admin routes are not on the public listener.
	if r := do(t, "GET", s.issuer+"/admin/v1/clients", "", "", ""); r.status != 404 {
		t.Errorf("admin API on the public listener: %d", r.status)
	}
}

// TestAdminRevokeKeyStopsSigningAtOnce: an emergency revocation through
// the admin API takes effect in this process before the answer: the next
// token is signed by another key, and the revoked key's tokens are inactive.
func TestAdminRevokeKeyStopsSigningAtOnce(t *testing.T) {
	s := start(t, backends()[0].open(t))
	before := s.token(t, "svc", "")
	kid, _ := s.ring.SigningKeyID("ES256")
	if r := s.adminDo(t, "POST", "/admin/v1/keys/"+kid+"/revoke"); r.status != 200 || strings.Contains(string(r.body), kid) {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	after := s.token(t, "svc", "")
	if h := jwtHeader(t, after); h["kid"] == kid {
		t.Fatalf("signed with the revoked key right after its revocation: %v", h)
	}
	if m := s.introspect(t, "resource-server:"+secret, before); m["active"] != false {
		t.Errorf("a token of the revoked key is still active: %v", m)
	}
	if m := s.introspect(t, "resource-server:"+secret, after); m["active"] != true {
		t.Errorf("a token of the replacement key: %v", m)
	}
	if r := s.adminDo(t, "POST", "/admin/v1/keys/nope/revoke"); r.status != 404 {
		t.Errorf("revoke unknown: %d %s", r.status, r.body)
	}
	if r := s.adminDo(t, "POST", "/admin/v1/keys/rotate?alg=HS256"); r.status != 400 {
		t.Errorf("rotate a foreign alg: %d %s", r.status, r.body)
	}
	r := s.adminDo(t, "POST", "/admin/v1/keys/rotate?alg=EdDSA")
	var list []map[string]any
	if err := json.Unmarshal(r.body, &list); err != nil || r.status != 200 {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	}
	next := 0
	for _, k := range list {
		if k["alg"] == "EdDSA" && k["state"] == "next" {
			next++
		}
	}
	if next != 1 {
		t.Errorf("after rotate, %d EdDSA keys staged: %s", next, r.body)
	}
}

func jwtHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	json.Unmarshal(b, &h)
	return h
}

// TestAdminAuthentication: every admin request needs a valid bearer token
// — none, a wrong one, an expired or a revoked one is 401 with
// WWW-Authenticate — and failures from one address are limited.
func TestAdminAuthentication(t *testing.T) {
	s := start(t, backends()[0].open(t))
	ctx := context.Background()
	expired, rec := provider.NewAdminToken("short-lived", time.Minute, s.clock.Now())
	if err := s.store.CreateAdminToken(ctx, rec); err != nil {
		t.Fatal(err)
	}
	revoked, rec2 := provider.NewAdminToken("revoked", 0, s.clock.Now())
	s.store.CreateAdminToken(ctx, rec2)
	if r := s.adminAs(t, revoked, "GET", "/admin/v1/clients"); r.status != 200 {
		t.Fatalf("a valid token: %d %s", r.status, r.body)
	}
	s.store.DeleteAdminToken(ctx, rec2.ID)
	s.clock.Advance(2 * time.Minute)
	for name, token := range map[string]string{"no token": "", "a wrong token": s.adminToken + "x", "an expired token": expired,
		"a revoked token": revoked, "a client secret": secret} {
		r := s.adminAs(t, token, "GET", "/admin/v1/clients")
		if r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") || strings.Contains(string(r.body), `"client_id"`) {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	// Basic credentials are no bearer token either.
	if r := do(t, "GET", s.admin+"/admin/v1/clients", "", "", "svc:"+secret); r.status != 401 {
		t.Errorf("Basic credentials: %d", r.status)
	}
	for range 20 {
		s.adminAs(t, "guess", "GET", "/admin/v1/keys")
	}
	if r := s.adminAs(t, "guess", "GET", "/admin/v1/keys"); r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Errorf("after 20 failures: %d %v", r.status, r.header)
	}
}

// TestAdminInsecure: --admin-insecure serves the admin API without a token.
func TestAdminInsecure(t *testing.T) {
	s := start(t, backends()[0].open(t), func(c *provider.Config) { c.AdminInsecure = true })
	if r := s.adminAs(t, "", "GET", "/admin/v1/clients"); r.status != 200 {
		t.Errorf("insecure admin API: %d %s", r.status, r.body)
	}
}
