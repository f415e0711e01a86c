package provider

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"time"

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
// a replay) and fresh (iat within oauth.DPoPWindow). With --dpop-nonce the server
// also demands its own nonce (use_dpop_nonce).

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
	if len(proofs) > 1 {
		return "", errDPoP(status, "invalid_dpop_proof", "more than one DPoP header")
	}
	now := p.now()
	pr, why := oauth.VerifyDPoP(proofs[0], string(rc.Method()), htu, accessToken, now)
	switch {
	case why != "":
		return "", errDPoP(status, "invalid_dpop_proof", why)
	case p.cfg.DPoPNonce && !p.validNonce(pr.Nonce, now):
		return "", errDPoP(status, "use_dpop_nonce", "use the DPoP-Nonce this server sent")
	}
	// Single use, in the store: every replica refuses a replay.
	err := p.assertDB.UseAssertion(ctx, "dpop\x00"+pr.JKT+"\x00"+pr.Jti, pr.Iat.Add(oauth.DPoPWindow))
	if errors.Is(err, storage.ErrAlreadyUsed) {
		return "", errDPoP(status, "invalid_dpop_proof", "the DPoP proof was used before (jti)")
	}
	if err != nil {
		return "", oauth.ErrUnavailable(err)
	}
	return pr.JKT, nil
}

// dpopNonce is the server nonce of the window now is in (back windows
// before): a MAC of the window's number under a key derived from the KEK,
// so every replica sends and accepts the same — this window's and the one
// before.
func (p *Provider) dpopNonce(now time.Time, back int64) string {
	var w [8]byte
	binary.BigEndian.PutUint64(w[:], uint64(now.Unix()/int64(oauth.DPoPWindow/time.Second)-back))
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
