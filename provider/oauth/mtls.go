package oauth

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Client certificates forwarded by a TLS-terminating proxy (RFC 8705), read
// the same way by the provider (client authentication) and the edge
// (certificate-bound tokens), and only from the proxies configured.

// ForwardedCert parses the certificate a proxy forwarded in a header:
// Envoy's X-Forwarded-Client-Cert (its Cert="…" element) or a header set to
// nginx's $ssl_client_escaped_cert (URL-encoded PEM), or Traefik's
// X-Forwarded-Tls-Client-Cert (base64 DER, URL-encoded); nil when there is none.
func ForwardedCert(v string) *x509.Certificate {
	if v == "" {
		return nil
	}
	if i := strings.Index(v, `Cert="`); i >= 0 { // Envoy XFCC: …;Cert="<url-encoded PEM>";…
		v = v[i+len(`Cert="`):]
		if j := strings.IndexByte(v, '"'); j >= 0 {
			v = v[:j]
		}
	}
	pemText, err := url.QueryUnescape(v)
	if err != nil {
		return nil
	}
	var der []byte
	if block, _ := pem.Decode([]byte(pemText)); block != nil && block.Type == "CERTIFICATE" {
		der = block.Bytes
	} else if der, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(pemText), "")); err != nil {
		return nil // neither PEM nor the base64 DER Traefik's passTLSClientCert sends
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil
	}
	return cert
}

// CertThumbprint is RFC 8705 §3.1's x5t#S256.
func CertThumbprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ParseProxies reads trusted proxies: IP addresses or CIDR blocks.
func ParseProxies(list []string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, s := range list {
		if !strings.Contains(s, "/") {
			if ip := net.ParseIP(s); ip != nil {
				bits := 32
				if ip.To4() == nil {
					bits = 128
				}
				s += "/" + strconv.Itoa(bits)
			}
		}
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address or CIDR block", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// InNets reports whether ip is in one of nets.
func InNets(nets []*net.IPNet, ip net.IP) bool {
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}
