package provider_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

func TestAdminClients(t *testing.T) {
	s := start(t, backends()[0].open(t))
	s.token(t, "svc", "") // the client is now cached

	r := do(t, "GET", s.admin+"/admin/v1/clients", "", "", "")
	var list []map[string]any
	if err := json.Unmarshal(r.body, &list); err != nil || r.status != 200 || len(list) < 5 {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "secret_hash") {
		t.Error("the admin API shows secret hashes")
	}
	r = do(t, "GET", s.admin+"/admin/v1/clients/svc", "", "", "")
	if r.status != 200 || r.json(t)["client_id"] != "svc" || r.json(t)["confidential"] != true {
		t.Errorf("get: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", s.admin+"/admin/v1/clients/nope", "", "", ""); r.status != 404 || r.json(t)["error"] != "not_found" {
		t.Errorf("get unknown: %d %s", r.status, r.body)
	}
	if r := do(t, "DELETE", s.admin+"/admin/v1/clients/svc", "", "", ""); r.status != 204 {
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
	if r := do(t, "POST", s.admin+"/admin/v1/keys/"+kid+"/revoke", "", "", ""); r.status != 200 || strings.Contains(string(r.body), kid) {
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
	if r := do(t, "POST", s.admin+"/admin/v1/keys/nope/revoke", "", "", ""); r.status != 404 {
		t.Errorf("revoke unknown: %d %s", r.status, r.body)
	}
	if r := do(t, "POST", s.admin+"/admin/v1/keys/rotate?alg=HS256", "", "", ""); r.status != 400 {
		t.Errorf("rotate a foreign alg: %d %s", r.status, r.body)
	}
	r := do(t, "POST", s.admin+"/admin/v1/keys/rotate?alg=EdDSA", "", "", "")
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
