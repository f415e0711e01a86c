package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// Algorithms (RFC 7518 §3.1, RFC 8037 §3.1).
const (
	ES256 = "ES256"
	RS256 = "RS256"
	PS256 = "PS256"
	EdDSA = "EdDSA"
)

// Supported reports whether alg is one this package signs and verifies.
func Supported(alg string) bool {
	switch alg {
	case ES256, RS256, PS256, EdDSA:
		return true
	}
	return false
}

// Verification errors. Every rejection wraps exactly one of them.
var (
	// ErrMalformed: not a compact JWS of three base64url segments with a
	// JSON header, or too large.
	ErrMalformed = errors.New("malformed token")
	// ErrAlgorithm: the header's alg is none, not allowed, or not the
	// algorithm of the key its kid names.
	ErrAlgorithm = errors.New("algorithm not allowed")
	// ErrUnknownKey: no key with the header's kid.
	ErrUnknownKey = errors.New("unknown key ID")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("invalid signature")
	// ErrCritical: the header names critical extensions (RFC 7515 §4.1.11);
	// this verifier understands none, so it must reject them.
	ErrCritical = errors.New("unsupported critical header")
)

// MaxTokenSize bounds what Verify will look at.
const MaxTokenSize = 16 << 10

var b64 = base64.RawURLEncoding

// signer is a private key with the JWS algorithm it signs for.
type signer struct {
	alg  string
	priv crypto.Signer
	// headers holds the base64url protected header per typ, built once.
	headers map[string]string
}

// headerTypes are the typ values whose headers are pre-serialised.
var headerTypes = []string{"JWT", "at+jwt", "logout+jwt"}

func newSigner(alg, kid string, priv crypto.Signer) *signer {
	s := &signer{alg: alg, priv: priv, headers: make(map[string]string, len(headerTypes))}
	for _, typ := range headerTypes {
		s.headers[typ] = encodeHeader(alg, kid, typ)
	}
	return s
}

func encodeHeader(alg, kid, typ string) string {
	h, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ,omitempty"`
	}{alg, kid, typ})
	return b64.EncodeToString(h)
}

// appendSign appends the compact JWS of payload to dst.
func (s *signer) appendSign(dst []byte, kid, typ string, payload []byte) ([]byte, error) {
	h, ok := s.headers[typ]
	if !ok {
		h = encodeHeader(s.alg, kid, typ)
	}
	start := len(dst)
	dst = append(dst, h...)
	dst = append(dst, '.')
	dst = b64.AppendEncode(dst, payload)
	input := dst[start:]
	sig, err := s.sign(input)
	if err != nil {
		return dst[:start], err
	}
	dst = append(dst, '.')
	return b64.AppendEncode(dst, sig), nil
}

// sign signs the JWS signing input.
func (s *signer) sign(input []byte) ([]byte, error) {
	switch s.alg {
	case EdDSA:
		return ed25519.Sign(s.priv.(ed25519.PrivateKey), input), nil
	case ES256:
		digest := sha256.Sum256(input)
		der, err := ecdsa.SignASN1(rand.Reader, s.priv.(*ecdsa.PrivateKey), digest[:])
		if err != nil {
			return nil, err
		}
		return derToRaw(der, 32)
	case RS256:
		digest := sha256.Sum256(input)
		return rsa.SignPKCS1v15(rand.Reader, s.priv.(*rsa.PrivateKey), crypto.SHA256, digest[:])
	case PS256:
		digest := sha256.Sum256(input)
		return rsa.SignPSS(rand.Reader, s.priv.(*rsa.PrivateKey), crypto.SHA256, digest[:],
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	}
	return nil, fmt.Errorf("keys: cannot sign with %q", s.alg)
}

// derToRaw turns an ASN.1 ECDSA signature into the fixed-width r||s that
// JWS uses (RFC 7518 §3.4).
func derToRaw(der []byte, size int) ([]byte, error) {
	var r, s cryptobyte.String
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !seq.ReadASN1(&r, asn1.INTEGER) || !seq.ReadASN1(&s, asn1.INTEGER) {
		return nil, errors.New("keys: bad ECDSA signature encoding")
	}
	out := make([]byte, 2*size)
	r, s = trimZeros(r), trimZeros(s)
	if len(r) > size || len(s) > size {
		return nil, errors.New("keys: ECDSA signature too long")
	}
	copy(out[size-len(r):size], r)
	copy(out[2*size-len(s):], s)
	return out, nil
}

func trimZeros(b []byte) []byte {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

// rawToDER turns a JWS r||s signature into the ASN.1 DER that
// ecdsa.VerifyASN1 takes, without big.Int: SEQUENCE { INTEGER r, INTEGER s }.
func rawToDER(dst *[72]byte, raw []byte) ([]byte, bool) {
	if len(raw) != 64 {
		return nil, false
	}
	der := append(dst[:0], 0x30, 0)
	for _, n := range [][]byte{raw[:32], raw[32:]} {
		n = trimZeros(n)
		if len(n) == 0 {
			return nil, false // zero is never a valid r or s
		}
		pad := n[0]&0x80 != 0
		l := len(n)
		if pad {
			l++
		}
		der = append(der, 0x02, byte(l))
		if pad {
			der = append(der, 0)
		}
		der = append(der, n...)
	}
	der[1] = byte(len(der) - 2)
	return der, true
}

// PublicKey is a verification key with its ID and algorithm.
type PublicKey struct {
	ID  string
	Alg string
	Key crypto.PublicKey
}

// KeySet finds verification keys by kid. The ring implements it on the
// provider, the JWKS cache on the edge.
type KeySet interface {
	// PublicKey returns the key with this kid, or an error wrapping
	// ErrUnknownKey.
	PublicKey(kid string) (*PublicKey, error)
}

// Header is the part of a JWS protected header a verifier acts on.
type Header struct {
	Alg  string   `json:"alg"`
	Kid  string   `json:"kid"`
	Typ  string   `json:"typ"`
	Crit []string `json:"crit"`
}

// Verifier checks compact JWS tokens against a KeySet, accepting only the
// algorithms it was configured with — never the token's own say.
type Verifier struct {
	keys    KeySet
	allowed [4]string
	n       int
	// headers caches the parsed protected headers of tokens that verified:
	// a signer's header bytes never change, so the JSON is parsed once per
	// key and typ. Only verified headers enter, so a flood of forged ones
	// cannot grow it; it is copied on insert and bounded.
	headers atomic.Pointer[map[string]Header]
}

// maxCachedHeaders bounds the verified-header cache.
const maxCachedHeaders = 256

// NewVerifier returns a verifier allowing algs (a non-empty subset of the
// supported algorithms).
func NewVerifier(keys KeySet, algs []string) (*Verifier, error) {
	v := &Verifier{keys: keys}
	v.headers.Store(&map[string]Header{})
	for _, a := range algs {
		if !Supported(a) {
			return nil, fmt.Errorf("keys: algorithm %q is not supported (want ES256, RS256, PS256 or EdDSA)", a)
		}
		if !v.allows(a) {
			v.allowed[v.n] = a
			v.n++
		}
	}
	if v.n == 0 {
		return nil, errors.New("keys: a verifier needs at least one algorithm")
	}
	return v, nil
}

func (v *Verifier) allows(alg string) bool {
	for _, a := range v.allowed[:v.n] {
		if a == alg {
			return true
		}
	}
	return false
}

// Verify checks token and returns its decoded payload and header. The
// payload is only returned when the signature verifies under a key whose
// algorithm is both allowed and the one the header names.
func (v *Verifier) Verify(token []byte) ([]byte, Header, error) {
	var h Header
	if len(token) > MaxTokenSize {
		return nil, h, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, MaxTokenSize)
	}
	dot1 := bytes.IndexByte(token, '.')
	if dot1 < 0 {
		return nil, h, fmt.Errorf("%w: not three segments", ErrMalformed)
	}
	dot2 := bytes.IndexByte(token[dot1+1:], '.')
	if dot2 < 0 {
		return nil, h, fmt.Errorf("%w: not three segments", ErrMalformed)
	}
	dot2 += dot1 + 1
	if bytes.IndexByte(token[dot2+1:], '.') >= 0 {
		return nil, h, fmt.Errorf("%w: more than three segments", ErrMalformed)
	}
	cached, known := (*v.headers.Load())[string(token[:dot1])]
	if known {
		h = cached
	} else if err := parseHeader(token[:dot1], &h); err != nil {
		return nil, h, err
	}
	if h.Crit != nil {
		return nil, h, fmt.Errorf("%w: %q", ErrCritical, h.Crit)
	}
	if !v.allows(h.Alg) {
		return nil, h, fmt.Errorf("%w: %q", ErrAlgorithm, h.Alg)
	}
	key, err := v.keys.PublicKey(h.Kid)
	if err != nil {
		return nil, h, err
	}
	if key.Alg != h.Alg {
		return nil, h, fmt.Errorf("%w: header says %s, key %s is %s", ErrAlgorithm, h.Alg, key.ID, key.Alg)
	}
	var sbuf [512]byte
	if b64.DecodedLen(len(token)-dot2-1) > len(sbuf) {
		return nil, h, fmt.Errorf("%w: signature too large", ErrMalformed)
	}
	sn, err := b64.Decode(sbuf[:], token[dot2+1:])
	if err != nil {
		return nil, h, fmt.Errorf("%w: signature is not base64url", ErrMalformed)
	}
	if !verifySignature(key, token[:dot2], sbuf[:sn]) {
		return nil, h, ErrSignature
	}
	if !known {
		v.remember(string(token[:dot1]), h)
	}
	payload := make([]byte, b64.DecodedLen(dot2-dot1-1))
	n, err := b64.Decode(payload, token[dot1+1:dot2])
	if err != nil {
		return nil, h, fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	return payload[:n], h, nil
}

func parseHeader(seg []byte, h *Header) error {
	var hbuf [512]byte
	if b64.DecodedLen(len(seg)) > len(hbuf) {
		return fmt.Errorf("%w: header too large", ErrMalformed)
	}
	hn, err := b64.Decode(hbuf[:], seg)
	if err != nil {
		return fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	if err := json.Unmarshal(hbuf[:hn], h); err != nil {
		return fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
	}
	return nil
}

// remember adds a verified header to the cache (copy on write).
func (v *Verifier) remember(seg string, h Header) {
	for {
		old := v.headers.Load()
		if len(*old) >= maxCachedHeaders {
			return
		}
		m := make(map[string]Header, len(*old)+1)
		for k, x := range *old {
			m[k] = x
		}
		m[seg] = h
		if v.headers.CompareAndSwap(old, &m) {
			return
		}
	}
}

func verifySignature(key *PublicKey, input, sig []byte) bool {
	switch key.Alg {
	case EdDSA:
		pub, ok := key.Key.(ed25519.PublicKey)
		return ok && ed25519.Verify(pub, input, sig)
	case ES256:
		pub, ok := key.Key.(*ecdsa.PublicKey)
		if !ok {
			return false
		}
		var buf [72]byte
		der, ok := rawToDER(&buf, sig)
		if !ok {
			return false
		}
		digest := sha256.Sum256(input)
		return ecdsa.VerifyASN1(pub, digest[:], der)
	case RS256, PS256:
		pub, ok := key.Key.(*rsa.PublicKey)
		if !ok {
			return false
		}
		digest := sha256.Sum256(input)
		if key.Alg == RS256 {
			return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil
		}
		return rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	}
	return false
}
