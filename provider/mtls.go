package provider

import (
	"crypto"
	"crypto/x509"
	"net"
	"net/url"
	"os"
	"slices"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/edge"
	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// Mutual TLS (RFC 8705): a client authenticates with its TLS client
// certificate — tls_client_auth (the certificate's subject DN or a SAN is
// the registered one; the chain is the TLS layer's or the proxy's to
// verify) or self_signed_tls_client_auth (the certificate's key is in the
// client's registered JWKS) — and its access tokens are bound to that
// certificate (cnf.x5t#S256). The certificate comes from the TLS
// connection, or from a trusted TLS-terminating proxy's header (Envoy's
// X-Forwarded-Client-Cert, or nginx's $ssl_client_escaped_cert), accepted
// only from the configured proxy addresses.

const (
	authTLSClient           = "tls_client_auth"
	authSelfSignedTLSClient = "self_signed_tls_client_auth"
)

// clientCertificate is the request's client certificate, or nil; chained
// says whether its chain is verified: against --mtls-client-ca for the TLS
// connection's (which asks for a certificate without verifying it), or by
// the trusted proxy that forwarded it.
func (p *Provider) clientCertificate(rc *fasthttp.RequestCtx) (cert *x509.Certificate, chained bool) {
	if st := rc.TLSConnectionState(); st != nil && len(st.PeerCertificates) > 0 {
		cert := st.PeerCertificates[0]
		if p.mtlsRoots == nil {
			return cert, false
		}
		inter := x509.NewCertPool()
		for _, c := range st.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cert.Verify(x509.VerifyOptions{Roots: p.mtlsRoots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			CurrentTime: p.now()})
		return cert, err == nil
	}
	if p.cfg.MTLSCertHeader == "" || !p.trustedProxy(rc.RemoteIP()) {
		return nil, false
	}
	cert = oauth.ForwardedCert(string(rc.Request.Header.Peek(p.cfg.MTLSCertHeader)))
	if cert == nil {
		return nil, false
	}
	return cert, true // the proxy verified the chain
}

// loadRoots reads --mtls-client-ca (nil when unset).
func loadRoots(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, bad("mtls_client_ca", "%v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, bad("mtls_client_ca", "no PEM certificate in %s", file)
	}
	return pool, nil
}

// trustedProxy: ip is one of the configured TLS-terminating proxies.
func (p *Provider) trustedProxy(ip net.IP) bool { return oauth.InNets(p.mtlsProxies, ip) }

// certThumbprint is RFC 8705 §3.1's x5t#S256.
func certThumbprint(c *x509.Certificate) string { return oauth.CertThumbprint(c) }

// certMatches reports whether cert authenticates c (its registered method
// being one of the two mTLS ones). tls_client_auth trusts the certificate's
// names only with its chain verified.
func certMatches(c *storage.Client, cert *x509.Certificate, chained bool) bool {
	if cert == nil || c.TokenEndpointAuthMethod == authTLSClient && !chained {
		return false
	}
	if c.TokenEndpointAuthMethod == authSelfSignedTLSClient {
		set, err := edge.ParseJWKS(c.JWKS)
		if err != nil {
			return false
		}
		k, err := jwk.FromRaw(cert.PublicKey)
		if err != nil {
			return false
		}
		want, err := k.Thumbprint(crypto.SHA256)
		if err != nil {
			return false
		}
		for _, pk := range set {
			if jk, err := jwk.FromRaw(pk.Key); err == nil {
				if got, err := jk.Thumbprint(crypto.SHA256); err == nil && string(got) == string(want) {
					return true
				}
			}
		}
		return false
	}
	switch {
	case c.TLSSubjectDN != "":
		return cert.Subject.String() == c.TLSSubjectDN
	case c.TLSSANDNS != "":
		return slices.Contains(cert.DNSNames, c.TLSSANDNS)
	case c.TLSSANURI != "":
		return slices.ContainsFunc(cert.URIs, func(u *url.URL) bool { return u.String() == c.TLSSANURI })
	case c.TLSSANIP != "":
		return slices.ContainsFunc(cert.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.ParseIP(c.TLSSANIP)) })
	case c.TLSSANEmail != "":
		return slices.Contains(cert.EmailAddresses, c.TLSSANEmail)
	}
	return false
}

// parseProxies reads --mtls-trusted-proxies.
func parseProxies(list []string) ([]*net.IPNet, error) {
	nets, err := oauth.ParseProxies(list)
	if err != nil {
		return nil, bad("mtls_trusted_proxies", "%v", err)
	}
	return nets, nil
}
