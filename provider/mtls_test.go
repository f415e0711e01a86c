package provider_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage/memory"
)

// clientCert is a self-signed client certificate with DNS SAN dns.
type clientCert struct {
	der []byte
	key *ecdsa.PrivateKey
}

func newClientCert(t *testing.T, cn, dns string) clientCert { return issueCert(t, cn, dns, nil) }

// issueCert makes a certificate for cn and dns, signed by ca (self-signed
// when nil; a CA when cn is "ca").
func issueCert(t *testing.T, cn, dns string, ca *clientCert) clientCert {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: []string{"Example"}},
		DNSNames: []string{dns}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	if cn == "ca" {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature
	}
	parent, signer := tmpl, key
	if ca != nil {
		parent, _ = x509.ParseCertificate(ca.der)
		signer = ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	return clientCert{der: der, key: key}
}

// nginx is the certificate as nginx's $ssl_client_escaped_cert.
func (c clientCert) nginx() string {
	return url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der})))
}

// xfcc is the certificate in Envoy's X-Forwarded-Client-Cert.
func (c clientCert) xfcc() string {
	sum := sha256.Sum256(c.der)
	return "By=spiffe://cluster.local/ns/id/sa/oidcgate;Hash=" + b64u.EncodeToString(sum[:]) + `;Cert="` + c.nginx() + `";Subject="CN=x"`
}

func (c clientCert) thumbprint() string {
	sum := sha256.Sum256(c.der)
	return b64u.EncodeToString(sum[:])
}

// jwks is the certificate's public key as a JWK set (self-signed clients).
func (c clientCert) jwks(t *testing.T) map[string]any {
	k, _ := jwk.FromRaw(&c.key.PublicKey)
	k.Set(jwk.KeyIDKey, "cert")
	set := jwk.NewSet()
	set.AddKey(k)
	b, _ := json.Marshal(set)
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

func withMTLSProxy(proxies ...string) option {
	return func(c *provider.Config) { c.MTLSCertHeader, c.MTLSTrustedProxies = "X-Client-Cert", proxies }
}

// TestMutualTLS: RFC 8705 through a TLS-terminating proxy's header —
// tls_client_auth (a SAN) and self_signed_tls_client_auth authenticate
// with no secret, their tokens are bound to the certificate (cnf.x5t#S256),
// and every mismatch is refused.
func TestMutualTLS(t *testing.T) {
	everyBackend(t, func(t *testing.T, s *server) {
		cert, otherCert := newClientCert(t, "billing", "billing.internal"), newClientCert(t, "billing", "mallory.internal")
		s.register(t, provider.ClientSpec{ID: "mtls-svc", TokenEndpointAuthMethod: "tls_client_auth", TLSSANDNS: "billing.internal",
			Scopes: []string{"read"}, Audiences: []string{api}})
		s.register(t, provider.ClientSpec{ID: "self-signed", TokenEndpointAuthMethod: "self_signed_tls_client_auth", JWKS: cert.jwks(t),
			Scopes: []string{"read"}, Audiences: []string{api}})
		token := func(client, header string) response {
			h := map[string]string{}
			if header != "" {
				h["X-Client-Cert"] = header
			}
			return sendHeaders(t, "POST", s.issuer+"/token", formType, "grant_type=client_credentials&client_id="+client, h)
		}
		for _, tc := range []struct{ client, header string }{{"mtls-svc", cert.nginx()}, {"mtls-svc", cert.xfcc()}, {"self-signed", cert.nginx()}} {
			r := token(tc.client, tc.header)
			if r.status != 200 {
				t.Fatalf("%s: %d %s", tc.client, r.status, r.body)
			}
			if cnf, _ := jwtClaims(t, r.json(t)["access_token"].(string))["cnf"].(map[string]any); cnf["x5t#S256"] != cert.thumbprint() {
				t.Errorf("%s: cnf %v", tc.client, cnf)
			}
		}
		for name, tc := range map[string]struct{ client, header string }{
			"no certificate":         {"mtls-svc", ""},
			"another SAN":            {"mtls-svc", otherCert.nginx()},
			"another key":            {"self-signed", otherCert.nginx()},
			"not a certificate":      {"mtls-svc", url.QueryEscape("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")},
			"a public client's cert": {"spa", cert.nginx()},
		} {
			if r := token(tc.client, tc.header); r.status != 401 && r.status != 400 {
				t.Errorf("%s: %d %s", name, r.status, r.body)
			}
		}
		if r := s.post(t, "/token", "grant_type=client_credentials", "mtls-svc:"+secret); r.status != 401 {
			t.Errorf("a secret for an mTLS client: %d", r.status)
		}
		// A header from an address that is not a trusted proxy is not believed.
		untrusting := start(t, backends()[0].open(t), withMTLSProxy("10.0.0.1/32"))
		untrusting.register(t, provider.ClientSpec{ID: "mtls-svc", TokenEndpointAuthMethod: "tls_client_auth", TLSSANDNS: "billing.internal",
			Scopes: []string{"read"}, Audiences: []string{api}})
		if r := sendHeaders(t, "POST", untrusting.issuer+"/token", formType, "grant_type=client_credentials&client_id=mtls-svc",
			map[string]string{"X-Client-Cert": cert.nginx()}); r.status != 401 {
			t.Errorf("a certificate header from an untrusted address: %d %s", r.status, r.body)
		}
		// Registrations are checked.
		for name, spec := range map[string]provider.ClientSpec{
			"no certificate field": {ID: "x", TokenEndpointAuthMethod: "tls_client_auth"},
			"two fields":           {ID: "x", TokenEndpointAuthMethod: "tls_client_auth", TLSSANDNS: "a", TLSSubjectDN: "CN=a"},
			"a bad IP":             {ID: "x", TokenEndpointAuthMethod: "tls_client_auth", TLSSANIP: "not-an-ip"},
			"self-signed, no keys": {ID: "x", TokenEndpointAuthMethod: "self_signed_tls_client_auth"},
			"a secret":             {ID: "x", TokenEndpointAuthMethod: "tls_client_auth", TLSSANDNS: "a", Secret: secret},
		} {
			if _, _, err := spec.Build(time.Now()); err == nil {
				t.Errorf("%s: registered", name)
			}
		}
	}, withMTLSProxy("127.0.0.1"))
}

// TestCertificateBoundUserTokens: acceptance 3 — a certificate-bound token
// is refused at /userinfo without its certificate.
func TestCertificateBoundUserTokens(t *testing.T) {
	everyBackend(t, func(t *testing.T, s *server) {
		cert := newClientCert(t, "web", "web.internal")
		s.register(t, provider.ClientSpec{ID: "web-mtls", Name: "Web mTLS", Secret: secret, RedirectURIs: []string{rpRedirect},
			GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid", "profile"}, FirstParty: true, TLSCertBoundAccessTokens: true})
		b := newBrowser(t)
		p := b.signIn(s, b.get(authURL(s, map[string]string{"client_id": "web-mtls", "scope": "openid profile"})), alicePassword)
		code := codeAt(t, s, p, "st")
		r := sendHeaders(t, "POST", s.issuer+"/token", formType, url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {rpRedirect}, "code_verifier": {strings.Repeat("v", 43)}}.Encode(),
			map[string]string{"Authorization": basicAuth("web-mtls", secret), "X-Client-Cert": cert.nginx()})
		if r.status != 200 {
			t.Fatalf("redeem: %d %s", r.status, r.body)
		}
		at := r.json(t)["access_token"].(string)
		ui := s.issuer + "/userinfo"
		if r := sendHeaders(t, "GET", ui, "", "", map[string]string{"Authorization": "Bearer " + at, "X-Client-Cert": cert.nginx()}); r.status != 200 {
			t.Errorf("userinfo with the certificate: %d %s", r.status, r.body)
		}
		if r := sendHeaders(t, "GET", ui, "", "", map[string]string{"Authorization": "Bearer " + at}); r.status != 401 {
			t.Errorf("userinfo without the certificate: %d %s", r.status, r.body)
		}
		other := newClientCert(t, "web", "web.internal")
		if r := sendHeaders(t, "GET", ui, "", "", map[string]string{"Authorization": "Bearer " + at, "X-Client-Cert": other.nginx()}); r.status != 401 {
			t.Errorf("userinfo with another certificate: %d %s", r.status, r.body)
		}
		in := s.post(t, "/introspect", "token="+at, "resource-server:"+secret).json(t)
		if cnf, _ := in["cnf"].(map[string]any); cnf["x5t#S256"] != cert.thumbprint() {
			t.Errorf("introspection: %v", in)
		}
	}, withMTLSProxy("127.0.0.1"))
}

// TestMutualTLSOnTheConnection: the certificate of the TLS connection
// itself (a listener that asks for one) authenticates a tls_client_auth
// client when it chains to --mtls-client-ca — a self-signed one with the
// same subject does not — and binds its token.
func TestMutualTLSOnTheConnection(t *testing.T) {
	store := memory.New(time.Now)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ca := issueCert(t, "ca", "ca.internal", nil)
	caFile := filepath.Join(t.TempDir(), "clients-ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der}), 0o600)
	p := bareProvider(t, "https://"+ln.Addr().String(), store, func(c *provider.Config) { c.MTLSClientCA = caFile })
	spec := provider.ClientSpec{ID: "mtls-svc", TokenEndpointAuthMethod: "tls_client_auth", TLSSubjectDN: "CN=billing,O=Example",
		Scopes: []string{"read"}, Audiences: []string{api}}
	c, _, err := spec.Build(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	store.CreateClient(context.Background(), c)
	server := newClientCert(t, "127.0.0.1", "localhost")
	srvCert := tls.Certificate{Certificate: [][]byte{server.der}, PrivateKey: server.key}
	tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12})
	srv := &fasthttp.Server{Handler: p.Public()}
	go srv.Serve(tln)
	t.Cleanup(func() { srv.Shutdown() })
	client := func(cert *clientCert) *http.Client {
		cfg := &tls.Config{InsecureSkipVerify: true} // the test's own self-signed server
		if cert != nil {
			cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.der}, PrivateKey: cert.key}}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	cert := issueCert(t, "billing", "billing.internal", &ca)
	post := func(hc *http.Client) (int, map[string]any) {
		resp, err := hc.Post("https://"+ln.Addr().String()+"/token", formType, strings.NewReader("grant_type=client_credentials&client_id=mtls-svc"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	status, body := post(client(&cert))
	if status != 200 {
		t.Fatalf("token over mTLS: %d %v", status, body)
	}
	if cnf, _ := jwtClaims(t, body["access_token"].(string))["cnf"].(map[string]any); cnf["x5t#S256"] != cert.thumbprint() {
		t.Errorf("cnf: %v", cnf)
	}
	if status, _ := post(client(nil)); status != 401 {
		t.Errorf("no certificate on the connection: %d", status)
	}
	other := issueCert(t, "mallory", "billing.internal", &ca)
	if status, _ := post(client(&other)); status != 401 {
		t.Errorf("another subject: %d", status)
	}
	forged := newClientCert(t, "billing", "billing.internal") // the right subject, signed by no one trusted
	if status, _ := post(client(&forged)); status != 401 {
		t.Errorf("a self-signed certificate with the client's subject: %d", status)
	}
}
