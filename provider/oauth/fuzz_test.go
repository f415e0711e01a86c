package oauth

import (
	"testing"
	"time"
)

// FuzzVerifyDPoP: a DPoP proof is untrusted input at the provider and the
// edge; whatever it is, verification answers (never panics) and accepts
// nothing unsigned.
func FuzzVerifyDPoP(f *testing.F) {
	f.Add([]byte(`eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6Im5vbmUifQ.eyJqdGkiOiJ4In0.`))
	f.Add([]byte(`eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Im9jdCIsImsiOiJBQUFBIn19.e30.AAAA`))
	f.Add([]byte("a.b.c"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, proof []byte) {
		p, why := VerifyDPoP(proof, "GET", "https://api.example.com/x", "tok", time.Now())
		if why == "" && p.JKT == "" {
			t.Fatalf("accepted without a key: %q", proof)
		}
	})
}

// FuzzForwardedCert: a proxy's certificate header.
func FuzzForwardedCert(f *testing.F) {
	f.Add(`Hash=1;Cert="-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----%0A"`)
	f.Add("MIIB")
	f.Add("%zz")
	f.Fuzz(func(t *testing.T, v string) { ForwardedCert(v) })
}
