package provider

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// DPoP (RFC 9449): a client proves, at each request, possession of the key
// its tokens are bound to. At /token a valid proof binds the access token
// (cnf.jkt, token_type DPoP) and a public client's refresh token to the
// proof's key; /userinfo then takes a DPoP-bound token only with a proof of
// that key for that request (htm, htu, ath); /introspect answers cnf.
// Proofs are single use (their jti, in the store, so every replica refuses
// a replay) and fresh (iat within dpopWindow). With --dpop-nonce the server
// also demands its own nonce (use_dpop_nonce).

// dpopWindow is how old (or, by a tenth, how far ahead) a proof's iat may be.
const dpopWindow = 5 * time.Minute

// errDPoP is a refused proof: invalid_dpop_proof, or use_dpop_nonce.
func errDPoP(status int, code, description string) *oauth.Error {
	e := oauth.New(status, code, "%s", description)
	if status == http.StatusUnauthorized {
		e.WWWAuthenticate = `DPoP error="` + code + `", algs="` + strings.Join(assertionAlgs, " ") + `"`
	}
	return e
}

// dpopProof checks the request's DPoP proof for htu (the endpoint's URL)
// and, on a resource request, the access token it is sent with; it
// returns the proof key's RFC 7638 thumbprint, or "" when the request has
// no proof. status is the HTTP status of a refusal (400 at the token
// endpoint, 401 at resources).
func (p *Provider) dpopProof(ctx context.Context, rc *fasthttp.RequestCtx, htu, accessToken string, status int) (string, error) {
	if p.cfg.DPoPNonce {
		rc.Response.Header.Set("DPoP-Nonce", p.dpopNonce(p.now(), 0))
	}
	if len(rc.Request.Header.Peek("DPoP")) == 0 { // the usual case, without allocating
		return "", nil
	}
	proofs := rc.Request.Header.PeekAll("DPoP")
	switch {
	case len(proofs) > 1:
		return "", errDPoP(status, "invalid_dpop_proof", "more than one DPoP header")
	case len(proofs[0]) > 8192:
		return "", errDPoP(status, "invalid_dpop_proof", "the DPoP proof is too large")
	}
	proof := proofs[0]
	msg, err := jws.Parse(proof)
	if err != nil || len(msg.Signatures()) != 1 {
		return "", errDPoP(status, "invalid_dpop_proof", "the DPoP proof is not a compact JWS")
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	key := h.JWK()
	alg := h.Algorithm().String()
	switch {
	case h.Type() != "dpop+jwt":
		return "", errDPoP(status, "invalid_dpop_proof", "the DPoP proof's typ must be dpop+jwt")
	case !slices.Contains(assertionAlgs, alg):
		return "", errDPoP(status, "invalid_dpop_proof", "the DPoP proof's alg must be one of "+strings.Join(assertionAlgs, ", "))
	case key == nil || privateJWK(key):
		return "", errDPoP(status, "invalid_dpop_proof", "the DPoP proof's header must carry its public key (jwk), never a private one")
	}
	payload, err := jws.Verify(proof, jws.WithKey(jwa.SignatureAlgorithm(alg), key))
	if err != nil {
		return "", errDPoP(status, "invalid_dpop_proof", "the DPoP proof's signature does not verify under its jwk")
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
		return "", errDPoP(status, "invalid_dpop_proof", "the DPoP proof's claims are malformed")
	}
	now := p.now()
	iat := time.Unix(c.Iat, 0)
	switch {
	case c.Jti == "" || len(c.Jti) > 256:
		return "", errDPoP(status, "invalid_dpop_proof", "the DPoP proof needs a jti")
	case c.Htm != string(rc.Method()):
		return "", errDPoP(status, "invalid_dpop_proof", "the DPoP proof's htm is not this request's method")
	case normalHTU(c.Htu) != normalHTU(htu):
		return "", errDPoP(status, "invalid_dpop_proof", "the DPoP proof's htu is not this endpoint")
	case c.Iat == 0 || now.Sub(iat) > dpopWindow || iat.Sub(now) > dpopWindow/10:
		return "", errDPoP(status, "invalid_dpop_proof", "the DPoP proof's iat is not recent")
	case accessToken != "" && !hmac.Equal([]byte(c.Ath), []byte(tokenHash(accessToken))):
		return "", errDPoP(status, "invalid_dpop_proof", "the DPoP proof's ath is not this access token's hash")
	case p.cfg.DPoPNonce && !p.validNonce(c.Nonce, now):
		return "", errDPoP(status, "use_dpop_nonce", "use the DPoP-Nonce this server sent")
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", errDPoP(status, "invalid_dpop_proof", "the DPoP proof's jwk has no thumbprint")
	}
	jkt := base64.RawURLEncoding.EncodeToString(tp)
	err = p.assertDB.UseAssertion(ctx, "dpop\x00"+jkt+"\x00"+c.Jti, iat.Add(dpopWindow))
	if errors.Is(err, storage.ErrAlreadyUsed) {
		return "", errDPoP(status, "invalid_dpop_proof", "the DPoP proof was used before (jti)")
	}
	if err != nil {
		return "", oauth.ErrUnavailable(err)
	}
	return jkt, nil
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

// normalHTU is a URL as htu is compared (RFC 9449 §4.3): no query or
// fragment, scheme and host in lower case, the default port dropped.
func normalHTU(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "\x00invalid"
	}
	host := strings.ToLower(u.Host)
	scheme := strings.ToLower(u.Scheme)
	host = strings.TrimSuffix(strings.TrimSuffix(host, map[string]string{"https": ":443", "http": ":80"}[scheme]), ":")
	return scheme + "://" + host + u.EscapedPath()
}

// tokenHash is RFC 9449's ath: base64url(SHA-256(the access token)).
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// dpopNonce is the server nonce of the window now is in (back windows
// before): a MAC of the window's number under a key derived from the KEK,
// so every replica sends and accepts the same — this window's and the one
// before.
func (p *Provider) dpopNonce(now time.Time, back int64) string {
	var w [8]byte
	binary.BigEndian.PutUint64(w[:], uint64(now.Unix()/int64(dpopWindow/time.Second)-back))
	return base64.RawURLEncoding.EncodeToString(p.ring.MAC("dpop-nonce", w[:])[:16])
}

func (p *Provider) validNonce(n string, now time.Time) bool {
	return n != "" && (hmac.Equal([]byte(n), []byte(p.dpopNonce(now, 0))) || hmac.Equal([]byte(n), []byte(p.dpopNonce(now, 1))))
}

// authorizationScheme splits an Authorization header: its scheme (lower
// case) and credentials.
func authorizationScheme(h []byte) (string, string) {
	scheme, cred, ok := bytes.Cut(bytes.TrimSpace(h), []byte(" "))
	if !ok {
		return "", ""
	}
	return strings.ToLower(string(scheme)), string(bytes.TrimSpace(cred))
}
