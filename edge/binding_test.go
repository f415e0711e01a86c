package edge_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider/oauth"
)

// dpopKey is a client's DPoP key (jwx).
type dpopKey struct{ priv, pub jwk.Key }

func newDPoPKey(t *testing.T) dpopKey {
	raw, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	priv, _ := jwk.FromRaw(raw)
	pub, _ := priv.PublicKey()
	return dpopKey{priv, pub}
}

func (k dpopKey) jkt() string {
	tp, _ := k.pub.Thumbprint(crypto.SHA256)
	return base64.RawURLEncoding.EncodeToString(tp)
}

// proof is a DPoP proof of k for method and htu, bound to token (ath).
func (k dpopKey) proof(t *testing.T, method, htu, token string, change func(map[string]any)) string {
	t.Helper()
	sum := sha256.Sum256([]byte(token))
	claims := map[string]any{"jti": random(), "htm": method, "htu": htu, "iat": time.Now().Unix(),
		"ath": base64.RawURLEncoding.EncodeToString(sum[:])}
	if change != nil {
		change(claims)
	}
	tok := jwt.New()
	for n, v := range claims {
		tok.Set(n, v)
	}
	h := jws.NewHeaders()
	h.Set(jws.TypeKey, "dpop+jwt")
	h.Set(jws.JWKKey, k.pub)
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, k.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func random() string {
	b := make([]byte, 12)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestDPoPBoundTokensAtTheEdge: acceptance 1 for DPoP at the edge, through
// the proxy — a cnf.jkt token passes only with the DPoP scheme and a
// fresh proof of its key for this request; each failure is RFC 9449's
// 401 with the DPoP challenge.
func TestDPoPBoundTokensAtTheEdge(t *testing.T) {
	w := newWorld(t, worldOpts{})
	key, other := newDPoPKey(t), newDPoPKey(t)
	tok := w.sign(t, keys.ES256, map[string]any{"cnf": map[string]any{"jkt": key.jkt()}, "jti": "d1"})
	htu := w.edgeURL + "/api/things"
	good := key.proof(t, "GET", htu, tok, nil)
	if resp, body := w.get(t, "/api/things?x=1", "Authorization", "DPoP "+tok, "DPoP", good); resp.StatusCode != 200 {
		t.Fatalf("a bound token with its proof: %d %s", resp.StatusCode, body)
	}
	unbound := w.sign(t, keys.ES256, map[string]any{"jti": "d2"})
	for name, tc := range map[string]struct{ auth, proof, says string }{
		"the same proof again":   {"DPoP " + tok, good, "used before"},
		"the Bearer scheme":      {"Bearer " + tok, "", "DPoP scheme"},
		"no proof":               {"DPoP " + tok, "", "exactly one DPoP proof"},
		"another key's proof":    {"DPoP " + tok, other.proof(t, "GET", htu, tok, nil), "not the one the token is bound to"},
		"another method":         {"DPoP " + tok, key.proof(t, "POST", htu, tok, nil), "htm"},
		"another URL":            {"DPoP " + tok, key.proof(t, "GET", w.edgeURL+"/api/other", tok, nil), "htu"},
		"another token's hash":   {"DPoP " + tok, key.proof(t, "GET", htu, "x", nil), "ath"},
		"an old proof":           {"DPoP " + tok, key.proof(t, "GET", htu, tok, func(c map[string]any) { c["iat"] = time.Now().Add(-time.Hour).Unix() }), "iat"},
		"an unbound token, DPoP": {"DPoP " + unbound, key.proof(t, "GET", htu, unbound, nil), "not DPoP-bound"},
		"a malformed proof":      {"DPoP " + tok, "not-a-jws", "compact JWS"},
	} {
		hdr := []string{"Authorization", tc.auth}
		if tc.proof != "" {
			hdr = append(hdr, "DPoP", tc.proof)
		}
		resp, body := w.get(t, "/api/things", hdr...)
		if resp.StatusCode != 401 || !strings.Contains(body, tc.says) || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "DPoP ") {
			t.Errorf("%s: %d %q %s", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	}
	if n := counter(t, w, "oidcgate_edge_decisions_total", "sender_constrained"); n < 9 {
		t.Errorf("sender_constrained decisions: %v", n)
	}
	// An unbound token as Bearer is as before.
	if resp, _ := w.get(t, "/api/things", bearer(unbound)...); resp.StatusCode != 200 {
		t.Errorf("an unbound token: %d", resp.StatusCode)
	}
}

// TestDPoPThroughForwardAuth: the proof's htu is the URL the client called,
// as the proxy reports it (X-Forwarded-Proto/-Host and the original URI).
func TestDPoPThroughForwardAuth(t *testing.T) {
	w := newWorld(t, worldOpts{proxyKind: "nginx"})
	key := newDPoPKey(t)
	tok := w.sign(t, keys.ES256, map[string]any{"cnf": map[string]any{"jkt": key.jkt()}, "jti": "f1"})
	proof := key.proof(t, "GET", "https://api.example.com/api/things", tok, nil)
	hdr := []string{"Authorization", "DPoP " + tok, "DPoP", proof, "X-Original-URI", "/api/things?q=1", "X-Forwarded-Proto", "https",
		"X-Forwarded-Host", "api.example.com"}
	if resp, body := w.get(t, "/_oidcgate/auth", hdr...); resp.StatusCode != 200 {
		t.Fatalf("forward-auth with a proof: %d %s", resp.StatusCode, body)
	}
	hdr[3] = key.proof(t, "GET", "https://evil.example.com/api/things", tok, nil)
	if resp, _ := w.get(t, "/_oidcgate/auth", hdr...); resp.StatusCode != 401 {
		t.Errorf("forward-auth with a proof for another host: %d", resp.StatusCode)
	}
}

// selfCert is a fresh self-signed client certificate.
func selfCert(t *testing.T, cn string) *x509.Certificate {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func escapedPEM(c *x509.Certificate) string {
	return url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
}

func x5t(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestCertificateBoundTokensAtTheEdge: a cnf.x5t#S256 token passes only
// with its certificate, forwarded by a trusted proxy (nginx's escaped PEM,
// Envoy's XFCC).
func TestCertificateBoundTokensAtTheEdge(t *testing.T) {
	w := newWorld(t, worldOpts{proxyKind: "nginx", certHeader: "X-Client-Cert", certProxies: []string{"127.0.0.1"}})
	cert, other := selfCert(t, "billing"), selfCert(t, "billing")
	tok := w.sign(t, keys.ES256, map[string]any{"cnf": map[string]any{"x5t#S256": x5t(cert)}, "jti": "c1"})
	base := append(bearer(tok), "X-Original-URI", "/api/things")
	for name, tc := range map[string]struct {
		header string
		status int
	}{
		"its certificate (nginx)": {escapedPEM(cert), 200},
		"its certificate (XFCC)":  {`By=spiffe://edge;Hash=abc;Cert="` + escapedPEM(cert) + `";Subject="CN=billing"`, 200},
		"another certificate":     {escapedPEM(other), 401},
		"no certificate":          {"", 401},
		"garbage":                 {"not a certificate", 401},
	} {
		hdr := base
		if tc.header != "" {
			hdr = append(append([]string{}, base...), "X-Client-Cert", tc.header)
		}
		if resp, body := w.get(t, "/_oidcgate/auth", hdr...); resp.StatusCode != tc.status {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
	// From a proxy that is not trusted, the header counts for nothing.
	w2 := newWorld(t, worldOpts{proxyKind: "nginx", certHeader: "X-Client-Cert", certProxies: []string{"10.0.0.1"}})
	tok2 := w2.sign(t, keys.ES256, map[string]any{"cnf": map[string]any{"x5t#S256": x5t(cert)}, "jti": "c2"})
	if resp, _ := w2.get(t, "/_oidcgate/auth", append(bearer(tok2), "X-Original-URI", "/api/things", "X-Client-Cert", escapedPEM(cert))...); resp.StatusCode != 401 {
		t.Errorf("a certificate header from an untrusted address: %d", resp.StatusCode)
	}
}

// TestForwardedCertForms: the header forms proxies send.
func TestForwardedCertForms(t *testing.T) {
	c := selfCert(t, "x")
	der := base64.StdEncoding.EncodeToString(c.Raw)
	for name, v := range map[string]string{
		"nginx escaped PEM": escapedPEM(c),
		"Envoy XFCC":        `Hash=1;Cert="` + escapedPEM(c) + `"`,
		"Traefik DER":       url.QueryEscape(der),
	} {
		if got := oauth.ForwardedCert(v); got == nil || !got.Equal(c) {
			t.Errorf("%s: not read", name)
		}
	}
	for _, v := range []string{"", "garbage", url.QueryEscape("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")} {
		if oauth.ForwardedCert(v) != nil {
			t.Errorf("%q read as a certificate", v)
		}
	}
}
