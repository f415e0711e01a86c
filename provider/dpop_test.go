package provider_test

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/oidcgate/oidcgate/provider"
)

// proof is a DPoP proof (RFC 9449 §4) of k for htm and htu at s's time,
// with ath when accessToken is set.
func (k clientKey) proof(t testing.TB, s *server, htm, htu, accessToken string, change func(h jws.Headers, c map[string]any)) string {
	c := map[string]any{"jti": random(), "htm": htm, "htu": htu, "iat": s.clock.Now().Unix()}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		c["ath"] = b64u.EncodeToString(sum[:])
	}
	h := jws.NewHeaders()
	h.Set(jws.TypeKey, "dpop+jwt")
	h.Set(jws.JWKKey, k.pub)
	if change != nil {
		change(h, c)
	}
	payload, _ := json.Marshal(c)
	alg := k.alg
	if alg == "" {
		alg = jwa.ES256
	}
	b, err := jws.Sign(payload, jws.WithKey(alg, k.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// thumbprint is k's RFC 7638 SHA-256 thumbprint.
func (k clientKey) thumbprint(t testing.TB) string {
	tp, err := k.pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return b64u.EncodeToString(tp)
}

// send is a request with an Authorization header and DPoP proofs.
func send(t testing.TB, method, u, contentType, body, authorization string, proofs ...string) response {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// sendHeaders is a request with the given headers.
func sendHeaders(t testing.TB, method, u, contentType, body string, headers map[string]string) response {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

// TestDPoP: acceptance 1 and 3 — on every backend, a code redeemed with a
// proof gives a DPoP-bound token (cnf.jkt); /userinfo takes it only with
// the DPoP scheme and a fresh proof of that key for that request.
func TestDPoP(t *testing.T) {
	everyBackend(t, func(t *testing.T, s *server) {
		key, other := newClientKey(t, ""), newClientKey(t, "")
		code := s.codeIn(t, newBrowser(t), "openid offline_access")
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect},
			"code_verifier": {strings.Repeat("v", 43)}}.Encode()
		r := send(t, "POST", s.issuer+"/token", formType, form, basicAuth("web", secret), key.proof(t, s, "POST", s.issuer+"/token", "", nil))
		if r.status != 200 || r.json(t)["token_type"] != "DPoP" {
			t.Fatalf("token with a proof: %d %s", r.status, r.body)
		}
		at := r.json(t)["access_token"].(string)
		if cnf, _ := jwtClaims(t, at)["cnf"].(map[string]any); cnf["jkt"] != key.thumbprint(t) {
			t.Fatalf("cnf of the access token: %v", jwtClaims(t, at)["cnf"])
		}
		ui := s.issuer + "/userinfo"
		if r := send(t, "GET", ui, "", "", "DPoP "+at, key.proof(t, s, "GET", ui, at, nil)); r.status != 200 || r.json(t)["sub"] != "alice-sub" {
			t.Errorf("userinfo with a proof: %d %s", r.status, r.body)
		}
		replayed := key.proof(t, s, "GET", ui, at, nil)
		send(t, "GET", ui, "", "", "DPoP "+at, replayed)
		for name, tc := range map[string]struct {
			auth, proof string
		}{
			"the Bearer scheme":      {"Bearer " + at, ""},
			"no proof":               {"DPoP " + at, ""},
			"another key's proof":    {"DPoP " + at, other.proof(t, s, "GET", ui, at, nil)},
			"a replayed proof":       {"DPoP " + at, replayed},
			"another endpoint (htu)": {"DPoP " + at, key.proof(t, s, "GET", s.issuer+"/token", at, nil)},
			"another method (htm)":   {"DPoP " + at, key.proof(t, s, "POST", ui, at, nil)},
			"no ath":                 {"DPoP " + at, key.proof(t, s, "GET", ui, "", nil)},
		} {
			var proofs []string
			if tc.proof != "" {
				proofs = append(proofs, tc.proof)
			}
			if r := send(t, "GET", ui, "", "", tc.auth, proofs...); r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "DPoP") {
				t.Errorf("userinfo with %s: %d %s %v", name, r.status, r.body, r.header.Get("WWW-Authenticate"))
			}
		}
		in := s.post(t, "/introspect", "token="+at, "resource-server:"+secret).json(t)
		if cnf, _ := in["cnf"].(map[string]any); cnf["jkt"] != key.thumbprint(t) || in["token_type"] != "DPoP" {
			t.Errorf("introspection of a DPoP-bound token: %v", in)
		}
	})
}

// TestDPoPTokenEndpointRefusals: malformed, stale, replayed and
// mis-keyed proofs at /token are invalid_dpop_proof, and nothing is issued.
func TestDPoPTokenEndpointRefusals(t *testing.T) {
	s := start(t, backends()[0].open(t))
	key := newClientKey(t, "")
	tokURL := s.issuer + "/token"
	cc := "grant_type=client_credentials"
	replayed := key.proof(t, s, "POST", tokURL, "", nil)
	if r := send(t, "POST", tokURL, formType, cc, basicAuth("svc", secret), replayed); r.status != 200 || r.json(t)["token_type"] != "DPoP" {
		t.Fatalf("client_credentials with a proof: %d %s", r.status, r.body)
	}
	noneProof := func() string {
		h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": key.pub})
		c, _ := json.Marshal(map[string]any{"jti": random(), "htm": "POST", "htu": tokURL, "iat": s.clock.Now().Unix()})
		return b64u.EncodeToString(h) + "." + b64u.EncodeToString(c) + "."
	}
	for name, proofs := range map[string][]string{
		"replayed":       {replayed},
		"two proofs":     {key.proof(t, s, "POST", tokURL, "", nil), key.proof(t, s, "POST", tokURL, "", nil)},
		"wrong typ":      {key.proof(t, s, "POST", tokURL, "", func(h jws.Headers, _ map[string]any) { h.Set(jws.TypeKey, "JWT") })},
		"a private jwk":  {key.proof(t, s, "POST", tokURL, "", func(h jws.Headers, _ map[string]any) { h.Set(jws.JWKKey, key.priv) })},
		"alg none":       {noneProof()},
		"stale iat":      {key.proof(t, s, "POST", tokURL, "", func(_ jws.Headers, c map[string]any) { c["iat"] = s.clock.Now().Add(-time.Hour).Unix() })},
		"future iat":     {key.proof(t, s, "POST", tokURL, "", func(_ jws.Headers, c map[string]any) { c["iat"] = s.clock.Now().Add(time.Hour).Unix() })},
		"no jti":         {key.proof(t, s, "POST", tokURL, "", func(_ jws.Headers, c map[string]any) { delete(c, "jti") })},
		"wrong htu":      {key.proof(t, s, "POST", "https://elsewhere.example/token", "", nil)},
		"htu with query": {key.proof(t, s, "GET", tokURL+"?x=1", "", nil)},
		"a JWT, not JWS": {"not-a-proof"},
		"another signer": {key.proof(t, s, "POST", tokURL, "", func(h jws.Headers, _ map[string]any) { h.Set(jws.JWKKey, newClientKey(t, "").pub) })},
	} {
		r := send(t, "POST", tokURL, formType, cc, basicAuth("svc", secret), proofs...)
		if r.status != 400 || r.json(t)["error"] != "invalid_dpop_proof" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	// A client registered with dpop_bound_access_tokens needs a proof.
	s.register(t, provider.ClientSpec{ID: "bound", Secret: secret, Scopes: []string{"read"}, Audiences: []string{api}, DPoPBoundAccessTokens: true})
	if r := send(t, "POST", tokURL, formType, cc, basicAuth("bound", secret)); r.status != 400 {
		t.Errorf("a dpop_bound_access_tokens client without a proof: %d %s", r.status, r.body)
	}
}

// TestDPoPPublicClientRefresh: a public client's refresh token is bound to
// its key: a refresh needs a proof of that key.
func TestDPoPPublicClientRefresh(t *testing.T) {
	s := start(t, backends()[0].open(t))
	key := newClientKey(t, "")
	b := newBrowser(t)
	verifier := strings.Repeat("w", 43)
	p := b.get(s.issuer + "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"native"}, "redirect_uri": {"http://127.0.0.1/cb"},
		"scope": {"openid offline_access"}, "state": {"st"}, "code_challenge": {s256Of(verifier)}, "code_challenge_method": {"S256"}}.Encode())
	p = b.decide(s, b.signIn(s, p, alicePassword), "allow")
	code := p.loc.Query().Get("code")
	tokURL := s.issuer + "/token"
	r := send(t, "POST", tokURL, formType, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"native"},
		"redirect_uri": {"http://127.0.0.1/cb"}, "code_verifier": {verifier}}.Encode(), "", key.proof(t, s, "POST", tokURL, "", nil))
	if r.status != 200 {
		t.Fatalf("redeem: %d %s", r.status, r.body)
	}
	rt := r.json(t)["refresh_token"].(string)
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"native"}}.Encode()
	if r := send(t, "POST", tokURL, formType, refresh, ""); r.status != 400 || r.json(t)["error"] != "invalid_dpop_proof" {
		t.Errorf("refresh without a proof: %d %s", r.status, r.body)
	}
	if r := send(t, "POST", tokURL, formType, refresh, "", newClientKey(t, "").proof(t, s, "POST", tokURL, "", nil)); r.status != 400 {
		t.Errorf("refresh with another key: %d %s", r.status, r.body)
	}
	if r := send(t, "POST", tokURL, formType, refresh, "", key.proof(t, s, "POST", tokURL, "", nil)); r.status != 200 || r.json(t)["token_type"] != "DPoP" {
		t.Errorf("refresh with the key: %d %s", r.status, r.body)
	}
}

// TestDPoPNonce: with --dpop-nonce, a proof without the server's nonce is
// answered use_dpop_nonce with one, and a proof carrying it passes.
func TestDPoPNonce(t *testing.T) {
	s := start(t, backends()[0].open(t), func(c *provider.Config) { c.DPoPNonce = true })
	key := newClientKey(t, "")
	tokURL := s.issuer + "/token"
	r := send(t, "POST", tokURL, formType, "grant_type=client_credentials", basicAuth("svc", secret), key.proof(t, s, "POST", tokURL, "", nil))
	nonce := r.header.Get("DPoP-Nonce")
	if r.status != 400 || r.json(t)["error"] != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("a proof without the nonce: %d %s %q", r.status, r.body, nonce)
	}
	withNonce := key.proof(t, s, "POST", tokURL, "", func(_ jws.Headers, c map[string]any) { c["nonce"] = nonce })
	if r := send(t, "POST", tokURL, formType, "grant_type=client_credentials", basicAuth("svc", secret), withNonce); r.status != 200 {
		t.Errorf("a proof with the nonce: %d %s", r.status, r.body)
	}
	stale := key.proof(t, s, "POST", tokURL, "", func(_ jws.Headers, c map[string]any) { c["nonce"] = "made-up" })
	if r := send(t, "POST", tokURL, formType, "grant_type=client_credentials", basicAuth("svc", secret), stale); r.status != 400 {
		t.Errorf("a made-up nonce: %d %s", r.status, r.body)
	}
}
