package provider_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/provider/storage"
	"github.com/oidcgate/oidcgate/provider/storage/bolt"
)

// boltBackend is the embedded store, in a temp dir.
func boltBackend(t testing.TB) *bolt.Store {
	s, err := bolt.Open(t.TempDir()+"/oidcgate.db", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// everyBackend runs f against a provider on each store: memory, bolt and
// PostgreSQL.
func everyBackend(t *testing.T, f func(t *testing.T, s *server), opts ...option) {
	for name, open := range map[string]func(t testing.TB) storage.Storage{
		"memory":   backends()[0].open,
		"bolt":     func(t testing.TB) storage.Storage { return boltBackend(t) },
		"postgres": backends()[1].open,
	} {
		t.Run(name, func(t *testing.T) { f(t, start(t, open(t), opts...)) })
	}
}

// TestAdminAPIClientLifecycle: acceptance 1 — a client created through the
// admin API of a running provider (bolt and PostgreSQL) works at once; a
// rotated secret and the old one both work through the overlap, then only
// the new one.
func TestAdminAPIClientLifecycle(t *testing.T) {
	everyBackend(t, func(t *testing.T, s *server) {
		r := s.adminJSON(t, "POST", "/admin/v1/clients", `{"client_id":"billing","client_name":"Billing","scopes":["read"],
			"audiences":["https://api.example.com"],"access_token_ttl":"10m"}`)
		var created struct {
			Secret string `json:"client_secret"`
			TTL    string `json:"access_token_ttl"`
		}
		json.Unmarshal(r.body, &created)
		if r.status != 201 || len(created.Secret) < 32 || created.TTL != "10m0s" || r.header.Get("Location") != "/admin/v1/clients/billing" {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		if tok := s.post(t, "/token", "grant_type=client_credentials", "billing:"+created.Secret); tok.status != 200 {
			t.Fatalf("the new client at once: %d %s", tok.status, tok.body)
		}
		if again := s.adminJSON(t, "POST", "/admin/v1/clients", `{"client_id":"billing"}`); again.status != 409 {
			t.Errorf("a second client of one ID: %d %s", again.status, again.body)
		}
		if got := s.adminDo(t, "GET", "/admin/v1/clients/billing"); strings.Contains(string(got.body), created.Secret) {
			t.Error("the secret is shown again")
		}

		r = s.adminSend(t, s.adminToken, "POST", "/admin/v1/clients/billing/secret?overlap=1h", "", "")
		var rotated struct {
			Secret string `json:"client_secret"`
		}
		json.Unmarshal(r.body, &rotated)
		if r.status != 200 || len(rotated.Secret) < 32 || rotated.Secret == created.Secret {
			t.Fatalf("rotate: %d %s", r.status, r.body)
		}
		for _, secret := range []string{created.Secret, rotated.Secret} {
			if tok := s.post(t, "/token", "grant_type=client_credentials", "billing:"+secret); tok.status != 200 {
				t.Errorf("within the overlap: %d %s", tok.status, tok.body)
			}
		}
		s.clock.Advance(61 * time.Minute)
		if tok := s.post(t, "/token", "grant_type=client_credentials", "billing:"+created.Secret); tok.status != 401 {
			t.Errorf("the old secret after the overlap: %d", tok.status)
		}
		if tok := s.post(t, "/token", "grant_type=client_credentials", "billing:"+rotated.Secret); tok.status != 200 {
			t.Errorf("the new secret after the overlap: %d %s", tok.status, tok.body)
		}

		// A merge patch changes what it names and keeps the secret; a replace too.
		r = s.adminJSON(t, "PATCH", "/admin/v1/clients/billing", `{"scopes":["read","write"],"access_token_ttl":null}`)
		if r.status != 200 || !strings.Contains(string(r.body), `"write"`) || strings.Contains(string(r.body), "access_token_ttl") {
			t.Fatalf("patch: %d %s", r.status, r.body)
		}
		if tok := s.post(t, "/token", "grant_type=client_credentials&scope=write", "billing:"+rotated.Secret); tok.status != 200 {
			t.Errorf("after the patch: %d %s", tok.status, tok.body)
		}
		r = s.adminJSON(t, "PUT", "/admin/v1/clients/billing", `{"client_name":"Billing v2","scopes":["read"],"audiences":["https://api.example.com"]}`)
		if r.status != 200 || !strings.Contains(string(r.body), "Billing v2") {
			t.Fatalf("replace: %d %s", r.status, r.body)
		}
		if tok := s.post(t, "/token", "grant_type=client_credentials&scope=write", "billing:"+rotated.Secret); tok.status != 400 {
			t.Errorf("a scope the replace removed: %d %s", tok.status, tok.body)
		}
		if r := s.adminDo(t, "DELETE", "/admin/v1/clients/billing"); r.status != 204 {
			t.Errorf("delete: %d", r.status)
		}
	})
}

// TestAdminAPIRefusesBadInput: malformed and invalid bodies change nothing.
func TestAdminAPIRefusesBadInput(t *testing.T) {
	s := start(t, backends()[0].open(t))
	for _, tc := range []struct {
		method, path, ct, body string
		status                 int
	}{
		{"POST", "/admin/v1/clients", "application/json", `{"client_id":"x",`, 400},
		{"POST", "/admin/v1/clients", "application/json", `{"client_id":"x","unknown":1}`, 400},
		{"POST", "/admin/v1/clients", "application/json", `{"client_id":"x"} {"again":1}`, 400},
		{"POST", "/admin/v1/clients", "text/plain", `{"client_id":"x"}`, 415},
		{"POST", "/admin/v1/clients", "application/json", `{"client_id":"bad id"}`, 400},
		{"POST", "/admin/v1/clients", "application/json", `{"client_id":"x","client_secret":"short"}`, 400},
		{"POST", "/admin/v1/clients", "application/json", `{"client_id":"x","access_token_ttl":3600}`, 400},
		{"PATCH", "/admin/v1/clients/svc", "application/merge-patch+json", `{"client_id":"renamed"}`, 400},
		{"PATCH", "/admin/v1/clients/svc", "application/merge-patch+json", `{"grant_types":["password"]}`, 400},
		{"PATCH", "/admin/v1/clients/nope", "application/merge-patch+json", `{}`, 404},
		{"POST", "/admin/v1/clients/spa/secret", "", "", 400},
		{"POST", "/admin/v1/clients/svc/secret?overlap=-1h", "", "", 400},
		{"POST", "/admin/v1/users", "application/json", `{"username":" padded "}`, 400},
		{"POST", "/admin/v1/users", "application/json", `{"username":"alice"}`, 409},
		{"POST", "/admin/v1/users", "application/json", `{"username":"carol","password":"short"}`, 400},
		{"PATCH", "/admin/v1/users/alice-sub", "application/merge-patch+json", `{"username":"mallory"}`, 400},
		{"PUT", "/admin/v1/users/alice-sub/password", "application/json", `{"password":"short"}`, 400},
		{"GET", "/admin/v1/users/nobody", "", "", 404},
		{"DELETE", "/admin/v1/users/alice-sub/sessions/nope", "", "", 404},
		{"DELETE", "/admin/v1/users/alice-sub/consents/web", "", "", 404},
	} {
		r := s.adminSend(t, s.adminToken, tc.method, tc.path, tc.ct, tc.body)
		if r.status != tc.status || r.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s %s: %d %s, want %d", tc.method, tc.path, tc.body, r.status, r.body, tc.status)
		}
	}
	if tok := s.post(t, "/token", "grant_type=client_credentials", "svc:"+secret); tok.status != 200 {
		t.Errorf("svc after the refused changes: %d %s", tok.status, tok.body)
	}
}

// TestAdminAPIUsers: create, search, patch (claims, groups, disabled),
// set the password, list and end sessions, list and revoke consents,
// delete.
func TestAdminAPIUsers(t *testing.T) {
	s := start(t, backends()[0].open(t))
	r := s.adminJSON(t, "POST", "/admin/v1/users", `{"username":"carol","password":"carol's password","claims":{"email":"carol@example.com","name":"Carol"},"groups":["ops"]}`)
	var carol struct {
		Sub    string   `json:"sub"`
		Groups []string `json:"groups"`
	}
	json.Unmarshal(r.body, &carol)
	if r.status != 201 || carol.Sub == "" || len(carol.Groups) != 1 || strings.Contains(string(r.body), "argon2") {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if r := s.adminDo(t, "GET", "/admin/v1/users?q=CAROL@"); r.status != 200 || !strings.Contains(string(r.body), `"username":"carol"`) || strings.Contains(string(r.body), `"alice"`) {
		t.Errorf("search: %d %s", r.status, r.body)
	}
	// Alice signs in twice and consents; operators see and end it.
	for range 2 {
		b := newBrowser(t)
		if p := b.signIn(s, b.get(authURL(s, map[string]string{"scope": "openid offline_access"})), alicePassword); strings.Contains(p.body, `value="allow"`) {
			b.decide(s, p, "allow")
		}
	}
	if r := s.adminDo(t, "GET", "/admin/v1/users/alice-sub/sessions"); r.status != 200 || strings.Count(string(r.body), `"id"`) != 2 {
		t.Fatalf("sessions: %d %s", r.status, r.body)
	}
	if r := s.adminDo(t, "GET", "/admin/v1/users/alice-sub/consents"); r.status != 200 || !strings.Contains(string(r.body), `"client_id":"web"`) {
		t.Fatalf("consents: %d %s", r.status, r.body)
	}
	if r := s.adminDo(t, "DELETE", "/admin/v1/users/alice-sub/consents/web"); r.status != http.StatusNoContent {
		t.Errorf("revoke consent: %d %s", r.status, r.body)
	}
	if r := s.adminDo(t, "DELETE", "/admin/v1/users/alice-sub/sessions"); r.status != 200 || r.json(t)["ended"] != 2.0 {
		t.Errorf("end sessions: %d %s", r.status, r.body)
	}
	// Disabled: the password no longer signs in; the password set works once enabled.
	if r := s.adminJSON(t, "PATCH", "/admin/v1/users/"+carol.Sub, `{"disabled":true,"groups":["ops","admins"]}`); r.status != 200 || !strings.Contains(string(r.body), `"admins"`) {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	if r := s.adminJSON(t, "PUT", "/admin/v1/users/"+carol.Sub+"/password", `{"password":"a brand new one"}`); r.status != 200 {
		t.Errorf("set password: %d %s", r.status, r.body)
	}
	if r := s.adminDo(t, "DELETE", "/admin/v1/users/"+carol.Sub); r.status != 204 {
		t.Errorf("delete: %d", r.status)
	}
	if r := s.adminDo(t, "GET", "/admin/v1/users/"+carol.Sub); r.status != 404 {
		t.Errorf("after delete: %d", r.status)
	}
}
