package provider_test

import (
	"context"
	"encoding/json"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage"
)

func withRegistration(mode string) option {
	return func(c *provider.Config) { c.Registration = mode }
}

// regDo is a request to the registration endpoints with an optional
// bearer token.
func regDo(t *testing.T, method, url, token, body string) response {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return response{status: resp.StatusCode, header: resp.Header, body: []byte(b.String())}
}

// TestDynamicRegistration: acceptance 4 — register, read, update and
// delete (RFC 7591/7592), the registered client completing a code flow;
// bad metadata refused with invalid_redirect_uri / invalid_client_metadata;
// a wrong registration access token refused.
func TestDynamicRegistration(t *testing.T) {
	s := start(t, backends()[0].open(t), withRegistration("open"))
	if d := do(t, "GET", s.issuer+"/.well-known/openid-configuration", "", "", ""); !strings.Contains(string(d.body), `"registration_endpoint":"`+s.issuer+`/register"`) {
		t.Fatalf("discovery: %s", d.body)
	}
	r := regDo(t, "POST", s.issuer+"/register", "", `{"redirect_uris":["`+rpRedirect+`"],"client_name":"Dynamic","grant_types":["authorization_code","refresh_token"],
		"scope":"openid offline_access","logo_uri":"https://rp.example.com/logo.png"}`)
	var reg struct {
		ClientID    string   `json:"client_id"`
		Secret      string   `json:"client_secret"`
		RAT         string   `json:"registration_access_token"`
		URI         string   `json:"registration_client_uri"`
		SecretExp   *int64   `json:"client_secret_expires_at"`
		IssuedAt    int64    `json:"client_id_issued_at"`
		AuthMethod  string   `json:"token_endpoint_auth_method"`
		Scope       string   `json:"scope"`
		ClientName  string   `json:"client_name"`
		RedirectURI []string `json:"redirect_uris"`
	}
	json.Unmarshal(r.body, &reg)
	if r.status != 201 || reg.ClientID == "" || len(reg.Secret) < 32 || reg.RAT == "" || reg.URI != s.issuer+"/register/"+reg.ClientID ||
		reg.SecretExp == nil || *reg.SecretExp != 0 || reg.IssuedAt == 0 || reg.AuthMethod != "client_secret_basic" || reg.Scope != "openid offline_access" {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	// The registered client signs a user in (with consent: never first-party).
	rp := newRP(t, s, reg.ClientID, reg.Secret, rpRedirect)
	rp.cfg.Scopes = []string{"openid"}
	b := newBrowser(t)
	f, p := rp.start(b)
	rp.redeem(t, s, b.decide(s, b.signIn(s, p, alicePassword), "allow"), f.state, f.verifier)

	if got := regDo(t, "GET", reg.URI, reg.RAT, ""); got.status != 200 || !strings.Contains(string(got.body), `"client_name":"Dynamic"`) ||
		strings.Contains(string(got.body), reg.Secret) || strings.Contains(string(got.body), reg.RAT) {
		t.Errorf("read: %d %s", got.status, got.body)
	}
	for name, token := range map[string]string{"no token": "", "a wrong token": reg.RAT + "x", "an admin token": s.adminToken} {
		if got := regDo(t, "GET", reg.URI, token, ""); got.status != 401 || got.json(t)["error"] != "invalid_token" {
			t.Errorf("read with %s: %d %s", name, got.status, got.body)
		}
	}
	// Another client's URI with this token: the same 401.
	if got := regDo(t, "GET", s.issuer+"/register/web", reg.RAT, ""); got.status != 401 {
		t.Errorf("another client with this token: %d", got.status)
	}
	up := regDo(t, "PUT", reg.URI, reg.RAT, `{"client_id":"`+reg.ClientID+`","redirect_uris":["`+rpRedirect+`","https://rp.example.com/cb2"],"client_name":"Renamed","scope":"openid"}`)
	if up.status != 200 || !strings.Contains(string(up.body), "Renamed") || !strings.Contains(string(up.body), "cb2") {
		t.Fatalf("update: %d %s", up.status, up.body)
	}
	if tok := s.post(t, "/token", "grant_type=client_credentials", reg.ClientID+":"+reg.Secret); tok.status == 401 {
		t.Error("the secret changed with the update")
	}
	if got := regDo(t, "PUT", reg.URI, reg.RAT, `{"client_id":"other","redirect_uris":["`+rpRedirect+`"]}`); got.status != 400 || got.json(t)["error"] != "invalid_client_metadata" {
		t.Errorf("update with another client_id: %d %s", got.status, got.body)
	}
	if got := regDo(t, "DELETE", reg.URI, reg.RAT, ""); got.status != 204 {
		t.Errorf("delete: %d %s", got.status, got.body)
	}
	if got := regDo(t, "GET", reg.URI, reg.RAT, ""); got.status != 401 {
		t.Errorf("read after delete: %d", got.status)
	}
	if _, err := s.store.GetClient(context.Background(), reg.ClientID); err == nil {
		t.Error("the deleted client is still stored")
	}
	// A client made by an operator cannot be managed through registration.
	if got := regDo(t, "DELETE", s.issuer+"/register/web", "", ""); got.status != 401 {
		t.Errorf("an operator's client through RFC 7592: %d", got.status)
	}
}

func TestDynamicRegistrationRefusals(t *testing.T) {
	s := start(t, backends()[0].open(t), withRegistration("open"))
	for _, tc := range []struct {
		body, code string
	}{
		{`{"redirect_uris":["http://rp.example.com/cb"]}`, "invalid_redirect_uri"},
		{`{"redirect_uris":["https://rp.example.com/cb#frag"]}`, "invalid_redirect_uri"},
		{`{"redirect_uris":["https://user@rp.example.com/cb"]}`, "invalid_redirect_uri"},
		{`{"redirect_uris":["com.example.app:/cb"]}`, "invalid_redirect_uri"}, // a private-use scheme, confidential
		{`{"redirect_uris":["javascript:alert(1)"],"token_endpoint_auth_method":"none"}`, "invalid_redirect_uri"},
		{`{"redirect_uris":["/relative"]}`, "invalid_redirect_uri"},
		{`{}`, "invalid_redirect_uri"}, // authorization_code needs one
		{`{"redirect_uris":["https://rp.example.com/cb"],"grant_types":["client_credentials"]}`, "invalid_client_metadata"},
		{`{"redirect_uris":["https://rp.example.com/cb"],"grant_types":["password"]}`, "invalid_client_metadata"},
		{`{"redirect_uris":["https://rp.example.com/cb"],"token_endpoint_auth_method":"private_key_jwt"}`, "invalid_client_metadata"},
		{`{"redirect_uris":["https://rp.example.com/cb"],"scope":"openid admin"}`, "invalid_client_metadata"},
		{`{"redirect_uris":["https://rp.example.com/cb"],"response_types":["token"]}`, "invalid_client_metadata"},
		{`{"redirect_uris":["https://rp.example.com/cb"],"id_token_signed_response_alg":"none"}`, "invalid_client_metadata"},
		{`{"redirect_uris":"https://rp.example.com/cb"}`, "invalid_client_metadata"},
		{`not json`, "invalid_client_metadata"},
	} {
		r := regDo(t, "POST", s.issuer+"/register", "", tc.body)
		if r.status != 400 || r.json(t)["error"] != tc.code {
			t.Errorf("%s: %d %s, want %s", tc.body, r.status, r.body, tc.code)
		}
	}
	// A native app: public, a loopback or reverse-domain redirect.
	r := regDo(t, "POST", s.issuer+"/register", "", `{"redirect_uris":["http://127.0.0.1/cb","com.example.app:/oauth"],"token_endpoint_auth_method":"none"}`)
	if r.status != 201 || strings.Contains(string(r.body), "client_secret") {
		t.Errorf("a native app: %d %s", r.status, r.body)
	}
	if clients, _ := s.store.ListClients(context.Background()); len(clients) != 9 { // the harness's 8 and the native app
		t.Errorf("clients after the refusals: %d", len(clients))
	}
	// Registration off: no endpoint.
	off := start(t, backends()[0].open(t))
	if r := regDo(t, "POST", off.issuer+"/register", "", `{"redirect_uris":["https://rp.example.com/cb"]}`); r.status != 404 {
		t.Errorf("registration off: %d", r.status)
	}
}

// TestRegistrationNeedsAnInitialAccessToken: with registration: token,
// only an initial access token registers; an admin token does not.
func TestRegistrationNeedsAnInitialAccessToken(t *testing.T) {
	s := start(t, backends()[0].open(t), withRegistration("token"))
	iat, rec := provider.NewAdminToken("mcp-clients", 0, s.clock.Now())
	rec.Kind = storage.TokenKindRegistration
	s.store.CreateAdminToken(context.Background(), rec)
	body := `{"redirect_uris":["https://rp.example.com/cb"]}`
	for name, token := range map[string]string{"no token": "", "a wrong token": "nope", "an admin token": s.adminToken} {
		if r := regDo(t, "POST", s.issuer+"/register", token, body); r.status != 401 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if r := regDo(t, "POST", s.issuer+"/register", iat, body); r.status != 201 {
		t.Errorf("with the initial access token: %d %s", r.status, r.body)
	}
	// And an initial access token opens no admin API.
	if r := s.adminAs(t, iat, "GET", "/admin/v1/clients"); r.status != 401 {
		t.Errorf("the admin API with an initial access token: %d", r.status)
	}
}

// TestRegistrationTokensThroughAdminAPI: operators make, list and revoke
// initial access tokens through the admin API.
func TestRegistrationTokensThroughAdminAPI(t *testing.T) {
	s := start(t, backends()[0].open(t), withRegistration("token"))
	r := s.adminJSON(t, "POST", "/admin/v1/registration-tokens", `{"name":"mcp","ttl":"1h"}`)
	iat, _ := r.json(t)["token"].(string)
	if r.status != 201 || iat == "" || r.json(t)["kind"] != "registration" {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if l := s.adminDo(t, "GET", "/admin/v1/registration-tokens"); l.status != 200 || !strings.Contains(string(l.body), `"name":"mcp"`) || strings.Contains(string(l.body), iat) {
		t.Errorf("list: %d %s", l.status, l.body)
	}
	body := `{"redirect_uris":["https://rp.example.com/cb"]}`
	if reg := regDo(t, "POST", s.issuer+"/register", iat, body); reg.status != 201 {
		t.Errorf("register with it: %d %s", reg.status, reg.body)
	}
	if d := s.adminDo(t, "DELETE", "/admin/v1/registration-tokens/mcp"); d.status != 204 {
		t.Errorf("revoke: %d %s", d.status, d.body)
	}
	if reg := regDo(t, "POST", s.issuer+"/register", iat, body); reg.status != 401 {
		t.Errorf("register after the revocation: %d", reg.status)
	}
	if d := s.adminDo(t, "DELETE", "/admin/v1/registration-tokens/mcp"); d.status != 404 {
		t.Errorf("revoke again: %d", d.status)
	}
}

// TestDynamicRegistrationSecretJWT: a client_secret_jwt client registers,
// authenticates with an HMAC assertion, and keeps its secret through an
// RFC 7592 update.
func TestDynamicRegistrationSecretJWT(t *testing.T) {
	s := start(t, backends()[0].open(t), withRegistration("open"))
	r := regDo(t, "POST", s.issuer+"/register", "", `{"redirect_uris":["`+rpRedirect+`"],"grant_types":["authorization_code"],"token_endpoint_auth_method":"client_secret_jwt"}`)
	var reg struct {
		ClientID string `json:"client_id"`
		Secret   string `json:"client_secret"`
		RAT      string `json:"registration_access_token"`
	}
	json.Unmarshal(r.body, &reg)
	if r.status != 201 || len(reg.Secret) < 32 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	// It authenticates at /introspect (a code-flow client) with an HMAC assertion.
	introspect := func() response {
		return s.post(t, "/introspect", url.Values{"token": {"unknown"}, "client_assertion_type": {jwtBearer},
			"client_assertion": {secretAssertion(t, s, reg.ClientID, reg.Secret, jwa.HS256, func(c map[string]any) { c["aud"] = s.issuer })}}.Encode(), "")
	}
	if in := introspect(); in.status != 200 {
		t.Fatalf("introspect: %d %s", in.status, in.body)
	}
	u := regDo(t, "PUT", s.issuer+"/register/"+reg.ClientID, reg.RAT, `{"client_id":"`+reg.ClientID+`","client_name":"Renamed","redirect_uris":["`+rpRedirect+`"],"grant_types":["authorization_code"],"token_endpoint_auth_method":"client_secret_jwt"}`)
	if u.status != 200 {
		t.Fatalf("update: %d %s", u.status, u.body)
	}
	if in := introspect(); in.status != 200 {
		t.Errorf("introspect after the update: %d %s", in.status, in.body)
	}
}
