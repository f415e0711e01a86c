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
