package keys_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/oidcgate/oidcgate/keys"
)

// benchAlgs are the algorithms with speed goals (docs/benchmarks.md).
var benchAlgs = []string{keys.ES256, keys.RS256, keys.EdDSA}

// rawSign is the bare crypto/* cost of one JWS signature over input: the
// baseline the fast path is measured against.
func rawSign(alg string, priv any, input []byte) []byte {
	switch alg {
	case keys.ES256:
		d := sha256.Sum256(input)
		sig, _ := ecdsa.SignASN1(rand.Reader, priv.(*ecdsa.PrivateKey), d[:])
		return sig
	case keys.RS256:
		d := sha256.Sum256(input)
		sig, _ := rsa.SignPKCS1v15(rand.Reader, priv.(*rsa.PrivateKey), crypto.SHA256, d[:])
		return sig
	default:
		return ed25519.Sign(priv.(ed25519.PrivateKey), input)
	}
}

func rawVerify(alg string, pub any, input, sig []byte) bool {
	switch alg {
	case keys.ES256:
		d := sha256.Sum256(input)
		return ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), d[:], sig)
	case keys.RS256:
		d := sha256.Sum256(input)
		return rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, d[:], sig) == nil
	default:
		return ed25519.Verify(pub.(ed25519.PublicKey), input, sig)
	}
}

func BenchmarkSign(b *testing.B) {
	r, _ := newRing(b, newClock(), benchAlgs...)
	for _, alg := range benchAlgs {
		b.Run(alg+"/oidcgate", func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 1024)
			for b.Loop() {
				var err error
				if buf, err = r.AppendSign(buf[:0], alg, "at+jwt", claims); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/raw", func(b *testing.B) {
			priv, _ := rawKey(b, alg)
			tok, _ := r.Sign(alg, "at+jwt", claims)
			input := []byte(tok[:strings.LastIndexByte(tok, '.')])
			b.ReportAllocs()
			for b.Loop() {
				rawSign(alg, priv, input)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	r, _ := newRing(b, newClock(), benchAlgs...)
	v, _ := keys.NewVerifier(r, benchAlgs)
	for _, alg := range benchAlgs {
		b.Run(alg+"/oidcgate", func(b *testing.B) {
			tok, _ := r.Sign(alg, "at+jwt", claims)
			token := []byte(tok)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := v.Verify(token); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/raw", func(b *testing.B) {
			priv, pub := rawKey(b, alg)
			tok, _ := r.Sign(alg, "at+jwt", claims)
			input := []byte(tok[:strings.LastIndexByte(tok, '.')])
			sig := rawSign(alg, priv, input)
			b.ReportAllocs()
			for b.Loop() {
				if !rawVerify(alg, pub, input, sig) {
					b.Fatal("raw verify failed")
				}
			}
		})
	}
}
