package keys

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// generate makes a new private key for alg.
func generate(alg string, rsaBits int) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256, PS256:
		return rsa.GenerateKey(rand.Reader, rsaBits)
	case EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("keys: cannot generate a key for %q", alg)
}

// Thumbprint is the RFC 7638 JWK SHA-256 thumbprint of pub, base64url: the
// kid of every key this package makes.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	k, err := jwk.FromRaw(pub)
	if err != nil {
		return "", fmt.Errorf("keys: %w", err)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("keys: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// KEKSize is the length of a key-encryption key: AES-256.
const KEKSize = 32

// sealer encrypts private keys at rest with AES-256-GCM under the KEK.
type sealer struct{ aead cipher.AEAD }

func newSealer(kek []byte) (*sealer, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("keys: the key-encryption key must be %d bytes, got %d", KEKSize, len(kek))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// sealVersion prefixes every blob, so the format can change later.
const sealVersion = 1

// seal encrypts priv (PKCS #8) bound to its kid and alg as additional data,
// so a blob cannot be moved onto another key record.
func (s *sealer) seal(kid, alg string, priv crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("keys: encode private key: %w", err)
	}
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(der)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return s.aead.Seal(out, out[1:], der, []byte(kid+"\x00"+alg)), nil
}

// ErrWrongKEK: a stored key does not decrypt under the configured KEK.
var ErrWrongKEK = errors.New("a signing key does not decrypt under the configured key-encryption key (wrong --key-encryption-key?)")

func (s *sealer) open(kid, alg string, blob []byte) (crypto.Signer, error) {
	n := s.aead.NonceSize()
	if len(blob) < 1+n || blob[0] != sealVersion {
		return nil, fmt.Errorf("keys: key %s: unknown encryption format", kid)
	}
	der, err := s.aead.Open(nil, blob[1:1+n], blob[1+n:], []byte(kid+"\x00"+alg))
	if err != nil {
		return nil, fmt.Errorf("keys: key %s: %w", kid, ErrWrongKEK)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("keys: key %s: %w", kid, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("keys: key %s: %T is not a signing key", kid, k)
	}
	return signer, nil
}

// DecodeKEK parses a base64 (standard or URL alphabet, padded or not)
// 32-byte key-encryption key.
func DecodeKEK(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KEKSize {
				return nil, fmt.Errorf("the key-encryption key must decode to %d bytes, got %d", KEKSize, len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("the key-encryption key is not base64")
}

// LoadOrCreateKEK reads the KEK kept in dir, creating one (0600) if there
// is none; created reports whether it did. For development: production
// configures --key-encryption-key from a secret store.
func LoadOrCreateKEK(dir string) (kek []byte, created bool, err error) {
	path := filepath.Join(dir, "key-encryption-key")
	if b, err := os.ReadFile(path); err == nil {
		kek, err := DecodeKEK(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return kek, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	kek = make([]byte, KEKSize)
	if _, err := rand.Read(kek); err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, err
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(kek) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, err
	}
	return kek, true, nil
}

// privateBytes are the encodings in which a private key could leak: its
// PKCS #8 DER and its bare secret scalar or seed.
func privateBytes(priv crypto.Signer) map[string][]byte {
	out := map[string][]byte{}
	if der, err := x509.MarshalPKCS8PrivateKey(priv); err == nil {
		out["pkcs8"] = der
	}
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		if b, err := k.Bytes(); err == nil {
			out["scalar"] = b
		}
	case *rsa.PrivateKey:
		out["d"] = k.D.Bytes()
		out["p"] = k.Primes[0].Bytes()
	case ed25519.PrivateKey:
		out["seed"] = k.Seed()
	}
	return out
}
