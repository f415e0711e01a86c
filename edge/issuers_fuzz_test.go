package edge

import "testing"

// FuzzUnverifiedIss: the iss is read from an unverified token to pick its
// issuer; any input is answered, never a panic.
func FuzzUnverifiedIss(f *testing.F) {
	f.Add([]byte("eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkLmV4YW1wbGUifQ.c2ln"))
	f.Add([]byte("a.b.c"))
	f.Add([]byte(".."))
	f.Fuzz(func(t *testing.T, tok []byte) { unverifiedIss(tok) })
}
