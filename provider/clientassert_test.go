package provider_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oidcgate/oidcgate/provider"
)

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// clientKey is a client's ES256 key pair (jwx), with kid.
type clientKey struct {
	priv jwk.Key
	pub  jwk.Key
	alg  jwa.SignatureAlgorithm // ES256 when unset
}

func newClientKey(t testing.TB, kid string) clientKey {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := jwk.FromRaw(raw)
	priv.Set(jwk.KeyIDKey, kid)
	priv.Set(jwk.AlgorithmKey, jwa.ES256)
	pub, _ := priv.PublicKey()
	return clientKey{priv: priv, pub: pub}
}

// newEdClientKey is an Ed25519 (EdDSA) client key pair.
func newEdClientKey(t testing.TB, kid string) clientKey {
	_, raw, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := jwk.FromRaw(raw)
	priv.Set(jwk.KeyIDKey, kid)
	priv.Set(jwk.AlgorithmKey, jwa.EdDSA)
	pub, _ := priv.PublicKey()
	return clientKey{priv: priv, pub: pub, alg: jwa.EdDSA}
}

// newRSAClientKey is an RSA 2048 (RS256) client key pair.
func newRSAClientKey(t testing.TB, kid string) clientKey {
	raw, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := jwk.FromRaw(raw)
	priv.Set(jwk.KeyIDKey, kid)
	priv.Set(jwk.AlgorithmKey, jwa.RS256)
	pub, _ := priv.PublicKey()
	return clientKey{priv: priv, pub: pub, alg: jwa.RS256}
}

// jwks is the public set, as a client registers it.
func (k clientKey) jwks(t testing.TB) map[string]any {
	set := jwk.NewSet()
	set.AddKey(k.pub)
	b, _ := json.Marshal(set)
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// sign makes a JWT of claims with the key (header typ JWT, the key's kid).
func (k clientKey) sign(t testing.TB, claims map[string]any) string {
	tok := jwt.New()
	for name, v := range claims {
		if err := tok.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	alg := k.alg
	if alg == "" {
		alg = jwa.ES256
	}
	b, err := jwt.Sign(tok, jwt.WithKey(alg, k.priv))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// assertion is a valid RFC 7523 client assertion of client at s.
func (k clientKey) assertion(t testing.TB, s *server, client string, change func(map[string]any)) string {
	now := s.clock.Now()
	claims := map[string]any{"iss": client, "sub": client, "aud": s.issuer + "/token", "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": random()}
	if change != nil {
		change(claims)
	}
	return k.sign(t, claims)
}

func assertionForm(assertion string, extra ...string) string {
	v := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {jwtBearer}, "client_assertion": {assertion}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v.Encode()
}

// TestPrivateKeyJWT: acceptance 1 for private_key_jwt — on every backend, a
// client with no secret authenticates by assertion (x/oauth2, and jwx to
// sign) at /token, /introspect and /revoke; a replay is refused.
func TestPrivateKeyJWT(t *testing.T) {
	everyBackend(t, func(t *testing.T, s *server) {
		key := newClientKey(t, "k1")
		s.register(t, provider.ClientSpec{ID: "pkj", TokenEndpointAuthMethod: "private_key_jwt", JWKS: key.jwks(t),
			Scopes: []string{"read"}, Audiences: []string{api}, IntrospectAny: true})
		// golang.org/x/oauth2's client_credentials, the assertion as endpoint parameters.
		assertion := key.assertion(t, s, "pkj", nil)
		cc := clientcredentials.Config{ClientID: "pkj", TokenURL: s.issuer + "/token", AuthStyle: oauth2.AuthStyleInParams,
			EndpointParams: url.Values{"client_assertion_type": {jwtBearer}, "client_assertion": {assertion}}}
		tok, err := cc.Token(context.Background())
		if err != nil {
			t.Fatalf("x/oauth2 client_credentials with private_key_jwt: %v", err)
		}
		if c := jwtClaims(t, tok.AccessToken); c["client_id"] != "pkj" || c["sub"] != "pkj" {
			t.Errorf("access token: %v", c)
		}
		// The same assertion again: its jti is spent, on every replica (the store).
		if r := s.post(t, "/token", assertionForm(assertion), ""); r.status != 401 || !strings.Contains(string(r.body), "used before") {
			t.Errorf("a replayed assertion: %d %s", r.status, r.body)
		}
		// Introspection and revocation take assertions too (aud: the issuer).
		aud := func(c map[string]any) { c["aud"] = s.issuer }
		in := s.post(t, "/introspect", url.Values{"token": {tok.AccessToken}, "client_assertion_type": {jwtBearer},
			"client_assertion": {key.assertion(t, s, "pkj", aud)}}.Encode(), "")
		if in.status != 200 || in.json(t)["active"] != true {
			t.Errorf("introspect with an assertion: %d %s", in.status, in.body)
		}
		rv := s.post(t, "/revoke", url.Values{"token": {tok.AccessToken}, "client_assertion_type": {jwtBearer},
			"client_assertion": {key.assertion(t, s, "pkj", aud)}}.Encode(), "")
		if rv.status != 200 {
			t.Errorf("revoke with an assertion: %d %s", rv.status, rv.body)
		}
	})
}

// TestPrivateKeyJWTRefusals: the negative table — each refused with
// invalid_client and nothing issued.
func TestPrivateKeyJWTRefusals(t *testing.T) {
	s := start(t, backends()[0].open(t))
	key, other := newClientKey(t, "k1"), newClientKey(t, "k1") // other: the same kid, another key
	s.register(t, provider.ClientSpec{ID: "pkj", TokenEndpointAuthMethod: "private_key_jwt", JWKS: key.jwks(t),
		Scopes: []string{"read"}, Audiences: []string{api}})
	now := s.clock.Now()
	none := func() string { // alg none
		h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
		p, _ := json.Marshal(map[string]any{"iss": "pkj", "sub": "pkj", "aud": s.issuer, "exp": now.Add(time.Minute).Unix(), "jti": random()})
		return b64u.EncodeToString(h) + "." + b64u.EncodeToString(p) + "."
	}
	hmacWithPublic := func() string { // HS256 keyed with the public key's JSON
		pubJSON, _ := json.Marshal(key.pub)
		hk, _ := jwk.FromRaw(pubJSON)
		tok := jwt.New()
		for k, v := range map[string]any{"iss": "pkj", "sub": "pkj", "aud": s.issuer, "exp": now.Add(time.Minute).Unix(), "jti": random()} {
			tok.Set(k, v)
		}
		b, _ := jwt.Sign(tok, jwt.WithKey(jwa.HS256, hk, jws.WithProtectedHeaders(func() jws.Headers {
			h := jws.NewHeaders()
			h.Set(jws.KeyIDKey, "k1")
			return h
		}())))
		return string(b)
	}
	for name, tc := range map[string]struct{ assertion, says string }{
		"wrong aud":        {key.assertion(t, s, "pkj", func(c map[string]any) { c["aud"] = "https://elsewhere.example" }), "aud"},
		"expired":          {key.assertion(t, s, "pkj", func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }), "expired"},
		"no exp":           {key.assertion(t, s, "pkj", func(c map[string]any) { delete(c, "exp") }), "exp is required"},
		"exp too far":      {key.assertion(t, s, "pkj", func(c map[string]any) { c["exp"] = now.Add(time.Hour).Unix() }), "ahead"},
		"no jti":           {key.assertion(t, s, "pkj", func(c map[string]any) { delete(c, "jti") }), "jti"},
		"iss is not sub":   {key.assertion(t, s, "pkj", func(c map[string]any) { c["iss"] = "someone" }), "iss and sub"},
		"not yet valid":    {key.assertion(t, s, "pkj", func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }), "nbf"},
		"another key":      {other.assertion(t, s, "pkj", nil), "signature"},
		"alg none":         {none(), "signature"},
		"HMAC, public key": {hmacWithPublic(), "signature"},
		"not a JWT":        {"not.a.jwt", "signature"},
	} {
		r := s.post(t, "/token", assertionForm(tc.assertion, "client_id", "pkj"), "")
		if r.status != 401 || r.json(t)["error"] != "invalid_client" || !strings.Contains(string(r.body), tc.says) {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	// The registered method is enforced: no secret, no fallback.
	if r := s.post(t, "/token", "grant_type=client_credentials", "pkj:"+secret); r.status != 401 {
		t.Errorf("a secret for a private_key_jwt client: %d", r.status)
	}
	if r := s.post(t, "/token", assertionForm(key.assertion(t, s, "svc", nil), "client_id", "svc"), ""); r.status != 401 {
		t.Errorf("an assertion for a secret client: %d", r.status)
	}
	if r := s.post(t, "/token", assertionForm(key.assertion(t, s, "pkj", nil), "client_assertion_type", "urn:other"), ""); r.status != 401 {
		t.Errorf("another assertion type: %d", r.status)
	}
	// A registration with a private key, or without keys, is refused.
	bad := provider.ClientSpec{ID: "bad", TokenEndpointAuthMethod: "private_key_jwt", Scopes: []string{"read"}}
	if _, _, err := bad.Build(now); err == nil {
		t.Error("a private_key_jwt client without keys")
	}
	privSet := jwk.NewSet()
	privSet.AddKey(key.priv)
	b, _ := json.Marshal(privSet)
	json.Unmarshal(b, &bad.JWKS)
	if _, _, err := bad.Build(now); err == nil {
		t.Error("a private_key_jwt client registering a private key")
	}
}

// TestPrivateKeyJWTByURI: keys by jwks_uri are fetched once and cached.
func TestPrivateKeyJWTByURI(t *testing.T) {
	key := newClientKey(t, "uri-key")
	var fetches atomic.Int32
	keysrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", "max-age=300")
		json.NewEncoder(w).Encode(key.jwks(t))
	}))
	defer keysrv.Close()
	s := start(t, backends()[0].open(t))
	s.register(t, provider.ClientSpec{ID: "pkj-uri", TokenEndpointAuthMethod: "private_key_jwt", JWKSURI: keysrv.URL + "/jwks",
		Scopes: []string{"read"}, Audiences: []string{api}})
	for i := range 5 {
		if r := s.post(t, "/token", assertionForm(key.assertion(t, s, "pkj-uri", nil)), ""); r.status != 200 {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("the JWKS was fetched %d times for 5 requests, want 1", n)
	}
}

// TestWorkloadIdentity: acceptance 2 — a Kubernetes-style projected
// service-account token, minted by a test issuer with its own discovery
// document and JWKS on loopback, authenticates a client with no secret.
func TestWorkloadIdentity(t *testing.T) {
	cluster := newClientKey(t, "cluster-key-1")
	var issuer string
	k8s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration": // as kube-apiserver serves it
			json.NewEncoder(w).Encode(map[string]any{"issuer": issuer, "jwks_uri": issuer + "/openid/v1/jwks",
				"response_types_supported": []string{"id_token"}, "subject_types_supported": []string{"public"},
				"id_token_signing_alg_values_supported": []string{"ES256"}})
		case "/openid/v1/jwks":
			json.NewEncoder(w).Encode(cluster.jwks(t))
		default:
			http.NotFound(w, r)
		}
	}))
	defer k8s.Close()
	issuer = k8s.URL
	everyBackend(t, func(t *testing.T, s *server) {
		const sa = "system:serviceaccount:payments:billing"
		s.register(t, provider.ClientSpec{ID: "billing-workload", TokenEndpointAuthMethod: "federated_jwt", FederatedIssuer: issuer,
			FederatedSubject: sa, Scopes: []string{"read"}, Audiences: []string{api}})
		now := s.clock.Now()
		saToken := func(change func(map[string]any)) string {
			c := map[string]any{"iss": issuer, "sub": sa, "aud": []string{s.issuer}, "iat": now.Unix(), "nbf": now.Unix(),
				"exp": now.Add(time.Hour).Unix(), "kubernetes.io": map[string]any{"namespace": "payments",
					"serviceaccount": map[string]any{"name": "billing", "uid": "5d3b2a6e"}}}
			if change != nil {
				change(c)
			}
			return cluster.sign(t, c)
		}
		tok := saToken(nil)
		for i := range 2 { // the kubelet hands the same token out until it rotates it
			r := s.post(t, "/token", assertionForm(tok, "client_id", "billing-workload"), "")
			if r.status != 200 {
				t.Fatalf("use %d of the service-account token: %d %s", i, r.status, r.body)
			}
			if c := jwtClaims(t, r.json(t)["access_token"].(string)); c["sub"] != "billing-workload" {
				t.Errorf("access token sub: %v", c["sub"])
			}
		}
		for name, a := range map[string]string{
			"another service account": saToken(func(c map[string]any) { c["sub"] = "system:serviceaccount:payments:other" }),
			"another audience":        saToken(func(c map[string]any) { c["aud"] = []string{"https://kubernetes.default.svc"} }),
			"expired":                 saToken(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }),
			"another issuer's key":    newClientKey(t, "cluster-key-1").sign(t, map[string]any{"iss": issuer, "sub": sa, "aud": s.issuer, "exp": now.Add(time.Hour).Unix()}),
		} {
			if r := s.post(t, "/token", assertionForm(a, "client_id", "billing-workload"), ""); r.status != 401 {
				t.Errorf("%s: %d %s", name, r.status, r.body)
			}
		}
	})
}

// secretAssertion is a client_secret_jwt assertion: an HMAC keyed with the
// client's secret (RFC 7523 §2.2, OIDC Core §9).
func secretAssertion(t testing.TB, s *server, client, secret string, alg jwa.SignatureAlgorithm, change func(map[string]any)) string {
	now := s.clock.Now()
	tok := jwt.New()
	claims := map[string]any{"iss": client, "sub": client, "aud": s.issuer + "/token", "iat": now.Unix(),
		"exp": now.Add(2 * time.Minute).Unix(), "jti": random()}
	if change != nil {
		change(claims)
	}
	for name, v := range claims {
		tok.Set(name, v)
	}
	b, err := jwt.Sign(tok, jwt.WithKey(alg, []byte(secret)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// createSecretJWTClient makes a client_secret_jwt client through the admin
// API (its secret sealed under the key-encryption key) and returns the secret.
func createSecretJWTClient(t *testing.T, s *server, id string) string {
	r := s.adminJSON(t, "POST", "/admin/v1/clients", `{"client_id":"`+id+`","token_endpoint_auth_method":"client_secret_jwt",
		"scopes":["read"],"audiences":["`+api+`"],"introspect_any":true}`)
	var created struct {
		Secret string `json:"client_secret"`
	}
	json.Unmarshal(r.body, &created)
	if r.status != 201 || len(created.Secret) < 32 {
		t.Fatalf("create a client_secret_jwt client: %d %s", r.status, r.body)
	}
	return created.Secret
}

// TestClientSecretJWT: acceptance 1 for client_secret_jwt — on every
// backend, x/oauth2 with an HS256 assertion at /token, /introspect and
// /revoke; a replay is refused; a rotated secret's overlap covers both.
func TestClientSecretJWT(t *testing.T) {
	everyBackend(t, func(t *testing.T, s *server) {
		secret := createSecretJWTClient(t, s, "csj")
		cc := clientcredentials.Config{ClientID: "csj", TokenURL: s.issuer + "/token", AuthStyle: oauth2.AuthStyleInParams,
			EndpointParams: url.Values{"client_assertion_type": {jwtBearer}, "client_assertion": {secretAssertion(t, s, "csj", secret, jwa.HS256, nil)}}}
		tok, err := cc.Token(context.Background())
		if err != nil {
			t.Fatalf("x/oauth2 client_credentials with client_secret_jwt: %v", err)
		}
		if c := jwtClaims(t, tok.AccessToken); c["client_id"] != "csj" {
			t.Errorf("access token: %v", c)
		}
		if r := s.post(t, "/token", assertionForm(cc.EndpointParams.Get("client_assertion")), ""); r.status != 401 || !strings.Contains(string(r.body), "used before") {
			t.Errorf("a replayed assertion: %d %s", r.status, r.body)
		}
		aud := func(c map[string]any) { c["aud"] = s.issuer }
		in := s.post(t, "/introspect", url.Values{"token": {tok.AccessToken}, "client_assertion_type": {jwtBearer},
			"client_assertion": {secretAssertion(t, s, "csj", secret, jwa.HS256, aud)}}.Encode(), "")
		if in.status != 200 || in.json(t)["active"] != true {
			t.Errorf("introspect with client_secret_jwt: %d %s", in.status, in.body)
		}
		if rv := s.post(t, "/revoke", url.Values{"token": {tok.AccessToken}, "client_assertion_type": {jwtBearer},
			"client_assertion": {secretAssertion(t, s, "csj", secret, jwa.HS256, aud)}}.Encode(), ""); rv.status != 200 {
			t.Errorf("revoke with client_secret_jwt: %d %s", rv.status, rv.body)
		}
		// Rotation: both secrets sign through the overlap, then only the new one.
		r := s.adminSend(t, s.adminToken, "POST", "/admin/v1/clients/csj/secret?overlap=1h", "", "")
		var rotated struct {
			Secret string `json:"client_secret"`
		}
		json.Unmarshal(r.body, &rotated)
		if r.status != 200 || rotated.Secret == secret {
			t.Fatalf("rotate: %d %s", r.status, r.body)
		}
		for _, sec := range []string{secret, rotated.Secret} {
			if r := s.post(t, "/token", assertionForm(secretAssertion(t, s, "csj", sec, jwa.HS256, nil)), ""); r.status != 200 {
				t.Errorf("within the overlap: %d %s", r.status, r.body)
			}
		}
		s.clock.Advance(61 * time.Minute)
		if r := s.post(t, "/token", assertionForm(secretAssertion(t, s, "csj", secret, jwa.HS256, nil)), ""); r.status != 401 {
			t.Errorf("the old secret after the overlap: %d %s", r.status, r.body)
		}
		if r := s.post(t, "/token", assertionForm(secretAssertion(t, s, "csj", rotated.Secret, jwa.HS256, nil)), ""); r.status != 200 {
			t.Errorf("the new secret after the overlap: %d %s", r.status, r.body)
		}
		// A replace without a secret keeps the sealed one.
		if r := s.adminJSON(t, "PATCH", "/admin/v1/clients/csj", `{"client_name":"Renamed"}`); r.status != 200 {
			t.Fatalf("patch: %d %s", r.status, r.body)
		}
		if r := s.post(t, "/token", assertionForm(secretAssertion(t, s, "csj", rotated.Secret, jwa.HS256, nil)), ""); r.status != 200 {
			t.Errorf("after a patch: %d %s", r.status, r.body)
		}
	})
}

// TestClientSecretJWTRefusals: the negative table.
func TestClientSecretJWTRefusals(t *testing.T) {
	s := start(t, backends()[0].open(t))
	secret := createSecretJWTClient(t, s, "csj")
	now := s.clock.Now()
	none := func() string {
		h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
		p, _ := json.Marshal(map[string]any{"iss": "csj", "sub": "csj", "aud": s.issuer, "exp": now.Add(time.Minute).Unix(), "jti": random()})
		return b64u.EncodeToString(h) + "." + b64u.EncodeToString(p) + "."
	}
	key := newClientKey(t, "k1")
	for name, tc := range map[string]struct{ assertion, says string }{
		"wrong secret":     {secretAssertion(t, s, "csj", strings.Repeat("x", 43), jwa.HS256, nil), "signature"},
		"alg none":         {none(), "alg"},
		"a key, not HMAC":  {key.assertion(t, s, "csj", nil), "alg"},
		"HS512, short key": {secretAssertion(t, s, "csj", secret, jwa.HS512, nil), "too short"},
		"wrong aud":        {secretAssertion(t, s, "csj", secret, jwa.HS256, func(c map[string]any) { c["aud"] = "https://elsewhere.example" }), "aud"},
		"expired":          {secretAssertion(t, s, "csj", secret, jwa.HS256, func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }), "expired"},
		"exp too far":      {secretAssertion(t, s, "csj", secret, jwa.HS256, func(c map[string]any) { c["exp"] = now.Add(time.Hour).Unix() }), "ahead"},
		"no jti":           {secretAssertion(t, s, "csj", secret, jwa.HS256, func(c map[string]any) { delete(c, "jti") }), "jti"},
		"not a JWT":        {"not.a.jwt", "compact JWS"},
	} {
		r := s.post(t, "/token", assertionForm(tc.assertion, "client_id", "csj"), "")
		if r.status != 401 || r.json(t)["error"] != "invalid_client" || !strings.Contains(string(r.body), tc.says) {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	// The stored record holds the secret sealed, never in the clear.
	stored, err := s.store.GetClient(context.Background(), "csj")
	if err != nil || len(stored.SealedSecret) == 0 {
		t.Fatalf("stored: %v %v", stored, err)
	}
	if b, _ := json.Marshal(stored); strings.Contains(string(b), secret) || strings.Contains(string(b), b64u.EncodeToString([]byte(secret))) {
		t.Error("the secret is stored in the clear")
	}
	// The registered method is enforced: the secret itself does not authenticate.
	if r := s.post(t, "/token", "grant_type=client_credentials", "csj:"+secret); r.status != 401 {
		t.Errorf("the secret by Basic for a client_secret_jwt client: %d", r.status)
	}
	// A secret client's secret cannot key an assertion (its secret is only hashed).
	if r := s.post(t, "/token", assertionForm(secretAssertion(t, s, "svc", secret, jwa.HS256, nil), "client_id", "svc"), ""); r.status != 401 {
		t.Errorf("an HMAC assertion for a client_secret_basic client: %d", r.status)
	}
	// Without the key-encryption key (the CLI on a store) it is refused.
	c, gen, err := provider.ClientSpec{ID: "x", TokenEndpointAuthMethod: "client_secret_jwt"}.Build(now)
	if err != nil {
		t.Fatal(err)
	}
	if err := provider.SealClientSecret(nil, c, gen); err == nil {
		t.Error("a client_secret_jwt client without a key-encryption key")
	}
	// Discovery advertises the method and its algorithms.
	doc := do(t, "GET", s.issuer+"/.well-known/openid-configuration", "", "", "").json(t)
	if !strings.Contains(jsonString(doc["token_endpoint_auth_methods_supported"]), "client_secret_jwt") ||
		!strings.Contains(jsonString(doc["token_endpoint_auth_signing_alg_values_supported"]), "HS256") ||
		strings.Contains(jsonString(doc["dpop_signing_alg_values_supported"]), "HS256") {
		t.Errorf("discovery: %v %v", doc["token_endpoint_auth_methods_supported"], doc["token_endpoint_auth_signing_alg_values_supported"])
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
