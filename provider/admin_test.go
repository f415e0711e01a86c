package provider_test

import (
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
