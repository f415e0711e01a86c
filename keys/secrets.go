package keys

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
)

// Secrets other than signing keys (a user's TOTP seed) are sealed at rest
// with AES-256-GCM under a key derived from the KEK (HKDF-SHA256), so they
// and the signing keys never share a key, and bound to a purpose as
// additional data, so a sealed blob cannot be moved onto another record.

// ErrUnsealable: a sealed secret does not open (another KEK, or altered).
var ErrUnsealable = errors.New("keys: a sealed secret does not open under the configured key-encryption key")

func newSecretSealer(kek []byte) (*sealer, error) {
	sub, err := hkdf.Key(sha256.New, kek, nil, "oidcgate secrets v1", KEKSize)
	if err != nil {
		return nil, err
	}
	return newSealer(sub)
}

// MAC is HMAC-SHA-256 of msg under a key derived from the KEK for purpose:
// the same on every replica that shares the KEK (DPoP nonces).
func (r *Ring) MAC(purpose string, msg []byte) []byte {
	m := hmac.New(sha256.New, r.macKey)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write(msg)
	return m.Sum(nil)
}

// Seal encrypts plain for purpose (say "totp:" + a factor's ID).
func (r *Ring) Seal(purpose string, plain []byte) ([]byte, error) {
	a := r.secrets.aead
	out := make([]byte, 1+a.NonceSize(), 1+a.NonceSize()+len(plain)+a.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return a.Seal(out, out[1:], plain, []byte(purpose)), nil
}

// Open decrypts what Seal sealed for the same purpose.
func (r *Ring) Open(purpose string, blob []byte) ([]byte, error) {
	a := r.secrets.aead
	n := a.NonceSize()
	if len(blob) < 1+n || blob[0] != sealVersion {
		return nil, ErrUnsealable
	}
	plain, err := a.Open(nil, blob[1:1+n], blob[1+n:], []byte(purpose))
	if err != nil {
		return nil, ErrUnsealable
	}
	return plain, nil
}
