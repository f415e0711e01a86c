package oauth

import (
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// DPoP proofs (RFC 9449 §4.3), checked the same way by the provider (at
// /token, /userinfo, /introspect) and the edge (at every resource
// request). What is stateful — the jti replay check, the server nonce —
// is each caller's.

// DPoPWindow is how old (or, by a tenth, how far ahead) a proof's iat may be.
const DPoPWindow = 5 * time.Minute

// DPoPAlgs are the algorithms a proof may be signed with: asymmetric only.
var DPoPAlgs = []string{"ES256", "RS256", "PS256", "EdDSA"}

// MaxDPoPProof bounds a proof's size.
const MaxDPoPProof = 8192

// DPoPProof is what a verified proof says.
type DPoPProof struct {
	JKT   string // the RFC 7638 thumbprint of its key, base64url
	Jti   string
	Nonce string
	Iat   time.Time
}

// VerifyDPoP checks a proof for a request of method to htu and, on a
// resource request, the access token it comes with (ath): typ, alg, a
// public jwk, the signature, jti, htm, htu, iat. It returns the proof, or
// why it is refused (a plain-ASCII description).
func VerifyDPoP(proof []byte, method, htu, accessToken string, now time.Time) (DPoPProof, string) {
	if len(proof) > MaxDPoPProof {
		return DPoPProof{}, "the DPoP proof is too large"
	}
	msg, err := jws.Parse(proof)
	if err != nil || len(msg.Signatures()) != 1 {
		return DPoPProof{}, "the DPoP proof is not a compact JWS"
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	key := h.JWK()
	alg := h.Algorithm().String()
	switch {
	case h.Type() != "dpop+jwt":
		return DPoPProof{}, "the DPoP proof's typ must be dpop+jwt"
	case !slices.Contains(DPoPAlgs, alg):
		return DPoPProof{}, "the DPoP proof's alg must be one of " + strings.Join(DPoPAlgs, ", ")
	case key == nil || privateJWK(key):
		return DPoPProof{}, "the DPoP proof's header must carry its public key (jwk), never a private one"
	}
	payload, err := jws.Verify(proof, jws.WithKey(jwa.SignatureAlgorithm(alg), key))
	if err != nil {
		return DPoPProof{}, "the DPoP proof's signature does not verify under its jwk"
	}
	var c struct {
		Jti   string `json:"jti"`
		Htm   string `json:"htm"`
		Htu   string `json:"htu"`
		Iat   int64  `json:"iat"`
		Ath   string `json:"ath"`
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return DPoPProof{}, "the DPoP proof's claims are malformed"
	}
	iat := time.Unix(c.Iat, 0)
	switch {
	case c.Jti == "" || len(c.Jti) > 256:
		return DPoPProof{}, "the DPoP proof needs a jti"
	case c.Htm != method:
		return DPoPProof{}, "the DPoP proof's htm is not this request's method"
	case NormalHTU(c.Htu) != NormalHTU(htu):
		return DPoPProof{}, "the DPoP proof's htu is not this endpoint"
	case c.Iat == 0 || now.Sub(iat) > DPoPWindow || iat.Sub(now) > DPoPWindow/10:
		return DPoPProof{}, "the DPoP proof's iat is not recent"
	case accessToken != "" && !hmac.Equal([]byte(c.Ath), []byte(TokenHash(accessToken))):
		return DPoPProof{}, "the DPoP proof's ath is not this access token's hash"
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return DPoPProof{}, "the DPoP proof's jwk has no thumbprint"
	}
	return DPoPProof{JKT: base64.RawURLEncoding.EncodeToString(tp), Jti: c.Jti, Nonce: c.Nonce, Iat: iat}, ""
}

// privateJWK: the key carries private material (RFC 9449 §4.2: never).
func privateJWK(k jwk.Key) bool {
	if k.KeyType() == "oct" {
		return true
	}
	b, _ := json.Marshal(k)
	var m map[string]any
	json.Unmarshal(b, &m)
	_, d := m["d"]
	return d
}

// NormalHTU is a URL as htu is compared (RFC 9449 §4.3): no query or
// fragment, scheme and host in lower case, the default port dropped.
func NormalHTU(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "\x00invalid"
	}
	host := strings.ToLower(u.Host)
	scheme := strings.ToLower(u.Scheme)
	host = strings.TrimSuffix(strings.TrimSuffix(host, map[string]string{"https": ":443", "http": ":80"}[scheme]), ":")
	return scheme + "://" + host + u.EscapedPath()
}

// TokenHash is RFC 9449's ath: base64url(SHA-256(the access token)).
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
