package provider_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// response is what a test request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not JSON: %s", r.body)
	}
	return m
}

// do sends a request; basic, when set, is "id:secret".
func do(t *testing.T, method, url, contentType, body, basic string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if basic != "" {
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(basic)))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

const formType = "application/x-www-form-urlencoded"

func (s *server) post(t *testing.T, path, body, basic string) response {
	return do(t, "POST", s.issuer+path, formType, body, basic)
}

func (s *server) token(t *testing.T, clientID string, extra string) string {
	t.Helper()
	r := s.post(t, "/token", "grant_type=client_credentials"+extra, clientID+":"+secret)
	if r.status != 200 {
		t.Fatalf("token for %s: %d %s", clientID, r.status, r.body)
	}
	return r.json(t)["access_token"].(string)
}

func TestClientCredentialsEndToEnd(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s := start(t, b.open(t))
			ctx := context.Background()
			cc := clientcredentials.Config{ClientID: "svc", ClientSecret: secret, TokenURL: s.issuer + "/token",
				Scopes: []string{"read"}, EndpointParams: url.Values{"resource": {"https://billing.example.com"}},
				AuthStyle: 0}
			tok, err := cc.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tok.TokenType != "Bearer" || time.Until(tok.Expiry) > testAccessTT || time.Until(tok.Expiry) < testAccessTT-time.Minute {
				t.Errorf("token type %q, expiry in %v", tok.TokenType, time.Until(tok.Expiry))
			}

			// go-oidc, with the served JWKS.
			ks := oidc.NewRemoteKeySet(ctx, s.issuer+"/jwks")
			v := oidc.NewVerifier(s.issuer, ks, &oidc.Config{ClientID: "https://billing.example.com",
				SupportedSigningAlgs: []string{"ES256"}})
			if _, err := v.Verify(ctx, tok.AccessToken); err != nil {
				t.Fatalf("go-oidc: %v", err)
			}

			// jwx, with the served JWKS and full claim validation.
			set, err := jwk.Fetch(ctx, s.issuer+"/jwks")
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := jwt.Parse([]byte(tok.AccessToken), jwt.WithKeySet(set), jwt.WithValidate(true),
				jwt.WithIssuer(s.issuer), jwt.WithAudience("https://billing.example.com"))
			if err != nil {
				t.Fatalf("jwx: %v", err)
			}
			msg, _ := jws.Parse([]byte(tok.AccessToken))
			if typ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != "at+jwt" {
				t.Errorf("typ = %q, want at+jwt (RFC 9068 §2.1)", typ)
			}
			claims := parsed.PrivateClaims()
			if parsed.Subject() != "svc" || claims["client_id"] != "svc" || claims["scope"] != "read" || parsed.JwtID() == "" ||
				parsed.IssuedAt().IsZero() || !slices.Equal(parsed.Audience(), []string{"https://billing.example.com"}) {
				t.Errorf("claims: sub %q aud %v jti %q private %v", parsed.Subject(), parsed.Audience(), parsed.JwtID(), claims)
			}
		})
	}
}

func TestClientSecretPostAndDefaults(t *testing.T) {
	s := start(t, backends()[0].open(t))
	r := s.post(t, "/token", "grant_type=client_credentials&client_id=svc-post&client_secret="+secret, "")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["scope"] != "read" || m["token_type"] != "Bearer" || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("response %v, Cache-Control %q", m, r.header.Get("Cache-Control"))
	}
	// No scope requested: all the client's scopes. No audience: its default.
	tok := s.token(t, "svc", "")
	claims := jwtClaims(t, tok)
	if claims["scope"] != "read write" || claims["aud"] != api {
		t.Errorf("defaults: %v", claims)
	}
}

func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

func TestRS256AccessTokens(t *testing.T) {
	s := start(t, backends()[0].open(t), withAlg(keys.RS256))
	tok := s.token(t, "svc", "")
	set, _ := jwk.Fetch(context.Background(), s.issuer+"/jwks")
	msg, err := jws.Verify([]byte(tok), jws.WithKeySet(set))
	if err != nil {
		t.Fatal(err)
	}
	_ = msg
	hdr, _ := jws.Parse([]byte(tok))
	if alg := hdr.Signatures()[0].ProtectedHeaders().Algorithm(); alg != "RS256" {
		t.Errorf("alg = %v", alg)
	}
}

func (s *server) introspect(t *testing.T, caller, token string) map[string]any {
	t.Helper()
	r := s.post(t, "/introspect", "token="+url.QueryEscape(token), caller)
	if r.status != 200 {
		t.Fatalf("introspect: %d %s", r.status, r.body)
	}
	return r.json(t)
}

func (s *server) revoke(t *testing.T, caller, token string) response {
	t.Helper()
	return s.post(t, "/revoke", "token="+url.QueryEscape(token), caller)
}

func TestIntrospectionAndRevocation(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s := start(t, b.open(t))
			svc, other, rs := "svc:"+secret, "other:"+otherSecret, "resource-server:"+secret

			for _, tc := range []struct {
				name, client string
				creds        string
			}{{"jwt", "svc", svc}, {"opaque", "opaque", "opaque:" + secret}} {
				t.Run(tc.name, func(t *testing.T) {
					tok := s.token(t, tc.client, "&scope=read")
					m := s.introspect(t, tc.creds, tok)
					if m["active"] != true || m["client_id"] != tc.client || m["sub"] != tc.client || m["scope"] != "read" ||
						m["aud"] != api || m["iss"] != s.issuer || m["token_type"] != "Bearer" {
						t.Errorf("introspection by the owner: %v", m)
					}
					if m := s.introspect(t, rs, tok); m["active"] != true {
						t.Errorf("introspection by a resource server: %v", m)
					}
					if m := s.introspect(t, other, tok); m["active"] != false || len(m) != 1 {
						t.Errorf("introspection by another client: %v, want only active=false", m)
					}
					if r := s.revoke(t, other, tok); r.status != 400 || r.json(t)["error"] != "unauthorized_client" {
						t.Errorf("revocation by another client: %d %s", r.status, r.body)
					}
					if m := s.introspect(t, tc.creds, tok); m["active"] != true {
						t.Error("another client's revocation attempt revoked the token")
					}
					if r := s.revoke(t, tc.creds, tok); r.status != 200 {
						t.Fatalf("revoke: %d %s", r.status, r.body)
					}
					if m := s.introspect(t, tc.creds, tok); m["active"] != false {
						t.Errorf("after revocation: %v", m)
					}
					if r := s.revoke(t, tc.creds, tok); r.status != 200 {
						t.Errorf("revoking again: %d", r.status)
					}
				})
			}

			t.Run("refresh token", func(t *testing.T) {
				rt := "refresh-token-of-svc-0123456789"
				err := s.store.CreateRefreshToken(context.Background(), &storage.RefreshToken{Hash: storage.HashOf(rt),
					FamilyID: "fam-1", ClientID: "svc", UserID: "u1", Scopes: []string{"openid"}, CreatedAt: time.Now(),
					ExpiresAt: time.Now().Add(time.Hour)})
				if err != nil {
					t.Fatal(err)
				}
				sibling := "refresh-token-of-svc-sibling"
				s.store.CreateRefreshToken(context.Background(), &storage.RefreshToken{Hash: storage.HashOf(sibling),
					FamilyID: "fam-1", ClientID: "svc", UserID: "u1", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
				m := s.introspect(t, svc, rt)
				if m["active"] != true || m["token_use"] != "refresh_token" || m["sub"] != "u1" {
					t.Errorf("refresh introspection: %v", m)
				}
				if r := s.revoke(t, svc, rt); r.status != 200 {
					t.Fatalf("revoke: %d %s", r.status, r.body)
				}
				for _, tok := range []string{rt, sibling} {
					if m := s.introspect(t, svc, tok); m["active"] != false {
						t.Errorf("after revoking the family: %v", m)
					}
				}
			})

			t.Run("unknown and forged", func(t *testing.T) {
				forged := strings.Split(s.token(t, "svc", ""), ".")
				forged[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"` + s.issuer + `","client_id":"svc","exp":9999999999}`))
				for _, tok := range []string{"nonsense", strings.Join(forged, "."), "a.b.c"} {
					if m := s.introspect(t, svc, tok); m["active"] != false {
						t.Errorf("introspect %q: %v", tok, m)
					}
					if r := s.revoke(t, svc, tok); r.status != 200 {
						t.Errorf("revoke %q: %d", tok, r.status)
					}
				}
			})
		})
	}
}

func TestTokenRejects(t *testing.T) {
	s := start(t, backends()[0].open(t))
	good := "grant_type=client_credentials"
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		basic       string
		header      map[string]string
		status      int
		code        string
		wwwAuth     bool
	}{
		{name: "wrong secret", body: good, basic: "svc:wrong-secret", status: 401, code: "invalid_client", wwwAuth: true},
		{name: "unknown client", body: good, basic: "nobody:" + secret, status: 401, code: "invalid_client", wwwAuth: true},
		{name: "wrong secret in body", body: good + "&client_id=svc-post&client_secret=nope", status: 401, code: "invalid_client"},
		{name: "no client authentication", body: good, status: 401, code: "invalid_client"},
		{name: "basic client using post", body: good + "&client_id=svc&client_secret=" + secret, status: 401, code: "invalid_client"},
		{name: "public client using client_credentials", body: good + "&client_id=spa", status: 400, code: "unauthorized_client"},
		{name: "scope not allowed", body: good + "&scope=read+admin", basic: "svc:" + secret, status: 400, code: "invalid_scope"},
		{name: "scope malformed", body: good + "&scope=read++write", basic: "svc:" + secret, status: 400, code: "invalid_scope"},
		{name: "audience not allowed", body: good + "&audience=https://evil.example.com", basic: "svc:" + secret, status: 400, code: "invalid_target"},
		{name: "resource not allowed", body: good + "&resource=https://evil.example.com", basic: "svc:" + secret, status: 400, code: "invalid_target"},
		{name: "resource not absolute", body: good + "&resource=api", basic: "svc:" + secret, status: 400, code: "invalid_target"},
		{name: "missing grant_type", body: "scope=read", basic: "svc:" + secret, status: 400, code: "invalid_request"},
		{name: "unsupported grant_type", body: "grant_type=password", basic: "svc:" + secret, status: 400, code: "unsupported_grant_type"},
		{name: "GET on /token", method: "GET", status: 405, code: "invalid_request"},
		{name: "JSON body", contentType: "application/json", body: `{"grant_type":"client_credentials"}`, basic: "svc:" + secret, status: 400, code: "invalid_request"},
		{name: "repeated parameter", body: good + "&scope=read&scope=write", basic: "svc:" + secret, status: 400, code: "invalid_request"},
		{name: "repeated grant_type", body: good + "&" + good, basic: "svc:" + secret, status: 400, code: "invalid_request"},
		{name: "body over the limit", body: good + "&pad=" + strings.Repeat("x", maxBody), basic: "svc:" + secret, status: 400, code: "invalid_request"},
		{name: "basic header malformed", body: good, header: map[string]string{"Authorization": "Basic"}, status: 401, code: "invalid_client", wwwAuth: true},
		{name: "basic header bad base64", body: good, header: map[string]string{"Authorization": "Basic !!!notbase64"}, status: 401, code: "invalid_client", wwwAuth: true},
		{name: "basic header without colon", body: good, header: map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("svc"))}, status: 401, code: "invalid_client", wwwAuth: true},
		{name: "bearer scheme", body: good, header: map[string]string{"Authorization": "Bearer abc"}, status: 401, code: "invalid_client", wwwAuth: true},
		{name: "secret in header and body", body: good + "&client_secret=" + secret, basic: "svc:" + secret, status: 400, code: "invalid_request"},
		{name: "client_id differs from header", body: good + "&client_id=other", basic: "svc:" + secret, status: 400, code: "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method, ct := tc.method, tc.contentType
			if method == "" {
				method = "POST"
			}
			if ct == "" && method == "POST" {
				ct = formType
			}
			req, _ := http.NewRequest(method, s.issuer+"/token", strings.NewReader(tc.body))
			if ct != "" {
				req.Header.Set("Content-Type", ct)
			}
			if tc.basic != "" {
				id, sec, _ := strings.Cut(tc.basic, ":")
				req.SetBasicAuth(id, sec)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("not a JSON error body: %s", body)
			}
			if resp.StatusCode != tc.status || e.Error != tc.code {
				t.Errorf("got %d %s, want %d %s", resp.StatusCode, body, tc.status, tc.code)
			}
			if got := resp.Header.Get("WWW-Authenticate"); (got != "") != tc.wwwAuth || (tc.wwwAuth && !strings.HasPrefix(got, "Basic")) {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Error("error without Cache-Control: no-store")
			}
		})
	}
	// Nothing was issued by any of them.
	if n := counter(t, s, "oidcgate_tokens_issued_total"); n != 0 {
		t.Errorf("%v tokens issued by rejected requests", n)
	}
}

func counter(t *testing.T, s *server, name string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func TestIntrospectionRequiresClientAuthentication(t *testing.T) {
	s := start(t, backends()[0].open(t))
	tok := s.token(t, "svc", "")
	for name, r := range map[string]response{
		"no credentials":  s.post(t, "/introspect", "token="+tok, ""),
		"public client":   s.post(t, "/introspect", "token="+tok+"&client_id=spa", ""),
		"wrong secret":    s.post(t, "/introspect", "token="+tok, "svc:nope"),
		"revoke, no auth": s.post(t, "/revoke", "token="+tok, ""),
	} {
		if r.status != 401 || r.json(t)["error"] != "invalid_client" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if r := s.post(t, "/introspect", "", "svc:"+secret); r.status != 400 || r.json(t)["error"] != "invalid_request" {
		t.Errorf("missing token: %d %s", r.status, r.body)
	}
}

func doWithHeader(t *testing.T, url, name, value string) response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set(name, value)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}
