package provider_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

type auditItem struct {
	Event     string         `json:"event"`
	Actor     string         `json:"actor"`
	IP        string         `json:"ip"`
	RequestID string         `json:"request_id"`
	UserID    string         `json:"user_id"`
	ClientID  string         `json:"client_id"`
	Details   map[string]any `json:"details"`
}

// auditOf lists the audit events named event, newest first.
func auditOf(t *testing.T, s *server, event string) []auditItem {
	t.Helper()
	r := s.adminDo(t, "GET", "/admin/v1/audit?limit=500&event="+url.QueryEscape(event))
	var page struct {
		Items []auditItem `json:"items"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &page) != nil {
		t.Fatalf("audit: %d %s", r.status, r.body)
	}
	return page.Items
}

// TestAuditEvents: acceptance 5 — each listed action leaves exactly its
// event (who, from where, about whom), and no event holds a secret.
func TestAuditEvents(t *testing.T) {
	s := start(t, backends()[0].open(t), withRefresh(0, 0))
	var secrets []string // everything that must never appear in an event
	// expect runs act and checks that it added exactly one event named event.
	expect := func(event string, act func(), check func(e auditItem) bool) {
		t.Helper()
		before := len(auditOf(t, s, event))
		act()
		after := auditOf(t, s, event)
		if len(after) != before+1 {
			t.Errorf("%s: %d new events, want 1", event, len(after)-before)
			return
		}
		if !check(after[0]) {
			t.Errorf("%s: %+v", event, after[0])
		}
	}
	admin := func(e auditItem) bool {
		return strings.HasPrefix(e.Actor, "tests-") && e.IP == "127.0.0.1" && e.RequestID != ""
	}

	b := newBrowser(t)
	var code string
	expect("signin.succeeded", func() { code = s.codeIn(t, b, "openid offline_access") }, func(e auditItem) bool {
		return e.UserID == "alice-sub" && e.ClientID == "web" && e.IP == "127.0.0.1" && e.Details["connector"] == "local"
	})
	expect("signin.failed", func() {
		bad := newBrowser(t)
		bad.signIn(s, bad.get(authURL(s, nil)), "wrong password")
	}, func(e auditItem) bool { return e.Details["reason"] == "bad_credentials" && e.IP == "127.0.0.1" })
	secrets = append(secrets, alicePassword, "wrong password", code)

	tok := s.redeem(t, code).json(t)
	rt := tok["refresh_token"].(string)
	secrets = append(secrets, rt, tok["access_token"].(string))
	expect("code.replayed", func() { s.redeem(t, code) }, func(e auditItem) bool { return e.ClientID == "web" && e.IP == "127.0.0.1" })

	code2 := s.codeIn(t, b, "openid offline_access")
	rt2 := s.redeem(t, code2).json(t)["refresh_token"].(string)
	refresh := func() response {
		return s.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}}.Encode(), "web:"+secret)
	}
	refresh()
	s.clock.Advance(time.Second)
	expect("refresh.reuse_detected", func() { refresh() }, func(e auditItem) bool { return e.UserID == "alice-sub" && e.ClientID == "web" })
	secrets = append(secrets, rt2, code2)

	// An authenticator app and a recovery code.
	r := newRP(t, s, "web", secret, rpRedirect)
	var totpSecret string
	var codes []string
	expect("mfa.enrolled", func() { totpSecret, codes = enrollTOTP(t, s, newBrowser(t), r) }, func(e auditItem) bool {
		return e.UserID == "alice-sub" && e.Details["kind"] == "totp"
	})
	secrets = append(secrets, totpSecret, codes[0], normal(codes[0]))
	expect("mfa.recovery_code_used", func() {
		b := newBrowser(t)
		_, p := r.start(b, askMFA)
		b.mfa(s, b.signIn(s, p, alicePassword), "recovery", codes[0])
	}, func(e auditItem) bool { return e.UserID == "alice-sub" && e.Details["codes_left"] == 9.0 })

	// Admin changes, with who made them.
	var created struct {
		Secret string `json:"client_secret"`
	}
	expect("client.created", func() {
		json.Unmarshal(s.adminJSON(t, "POST", "/admin/v1/clients", `{"client_id":"audited","scopes":["read"],"audiences":["`+api+`"]}`).body, &created)
	}, func(e auditItem) bool { return admin(e) && e.ClientID == "audited" })
	var rotated struct {
		Secret string `json:"client_secret"`
	}
	expect("client.secret_rotated", func() {
		json.Unmarshal(s.adminSend(t, s.adminToken, "POST", "/admin/v1/clients/audited/secret", "", "").body, &rotated)
	}, func(e auditItem) bool { return admin(e) && e.ClientID == "audited" })
	secrets = append(secrets, created.Secret, rotated.Secret, s.adminToken, secret)
	expect("client.updated", func() { s.adminJSON(t, "PATCH", "/admin/v1/clients/audited", `{"client_name":"Audited"}`) }, admin)
	expect("client.deleted", func() { s.adminDo(t, "DELETE", "/admin/v1/clients/audited") }, admin)
	var carol struct {
		Sub string `json:"sub"`
	}
	expect("user.created", func() {
		json.Unmarshal(s.adminJSON(t, "POST", "/admin/v1/users", `{"username":"carol","password":"carol's secret pw"}`).body, &carol)
	}, admin)
	secrets = append(secrets, "carol's secret pw")
	expect("user.updated", func() { s.adminJSON(t, "PATCH", "/admin/v1/users/"+carol.Sub, `{"disabled":true}`) }, admin)
	expect("user.deleted", func() { s.adminDo(t, "DELETE", "/admin/v1/users/"+carol.Sub) }, admin)
	expect("session.ended", func() { s.adminDo(t, "DELETE", "/admin/v1/users/alice-sub/sessions") },
		func(e auditItem) bool { return admin(e) && e.UserID == "alice-sub" })
	expect("consent.revoked", func() { s.adminDo(t, "DELETE", "/admin/v1/users/alice-sub/consents/web") }, admin)
	expect("mfa.reset", func() { s.adminDo(t, "DELETE", "/admin/v1/users/alice-sub/factors") }, admin)
	var kid string
	expect("key.rotated", func() {
		var keys []struct {
			KID, State string
		}
		json.Unmarshal(s.adminSend(t, s.adminToken, "POST", "/admin/v1/keys/rotate?alg=ES256", "", "").body, &keys)
		for _, k := range keys {
			if k.State == "active" {
				kid = k.KID
			}
		}
	}, func(e auditItem) bool { return admin(e) && e.Details["alg"] == "ES256" })
	expect("key.revoked", func() { s.adminSend(t, s.adminToken, "POST", "/admin/v1/keys/"+kid+"/revoke", "", "") },
		func(e auditItem) bool { return admin(e) && e.Details["kid"] == kid })

	// Filters, and no secret anywhere in the events.
	if got := auditOf(t, s, "mfa."); len(got) < 3 {
		t.Errorf("the mfa. prefix: %d events", len(got))
	}
	all := s.adminDo(t, "GET", "/admin/v1/audit?limit=500")
	for _, sec := range secrets {
		if sec != "" && strings.Contains(string(all.body), sec) {
			t.Errorf("an audit event holds a secret or token: %.12s…", sec)
		}
	}
	if r := s.adminDo(t, "GET", "/admin/v1/audit?user_id=alice-sub&event=signin.succeeded"); !strings.Contains(string(r.body), "signin.succeeded") ||
		strings.Contains(string(r.body), "client.created") {
		t.Errorf("filters: %s", r.body)
	}
	if r := s.adminDo(t, "GET", "/admin/v1/audit?since=yesterday"); r.status != 400 {
		t.Errorf("a bad since: %d", r.status)
	}
}
