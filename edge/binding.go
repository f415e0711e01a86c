package edge

import (
	"bytes"
	"crypto/subtle"
	"crypto/x509"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/oauth"
)

// Sender-constrained tokens (RFC 9449 §7, RFC 8705 §3): a token whose cnf
// names a key (jkt) is accepted only with the DPoP scheme and a fresh,
// single-use proof of that key for this request — htm the method, htu the
// URL the client called, ath the token's hash; a token whose cnf names a
// certificate (x5t#S256) only from a client showing that certificate, on
// the edge's own TLS listener or as forwarded by a trusted proxy. The
// proof replay cache is this edge's: each edge accepts a proof once.

// origin is what the client's request looked like before any proxy: the
// URL it called (a DPoP proof's htu) and the certificate it showed.
type origin struct {
	scheme, host, path []byte
	cert               *x509.Certificate
}

// htu is the request's URL as a proof names it.
func (o *origin) htu(publicURL string) string {
	if publicURL != "" {
		return publicURL + string(o.path)
	}
	scheme := o.scheme
	if len(scheme) == 0 {
		scheme = []byte("http")
	}
	return string(scheme) + "://" + string(o.host) + string(o.path)
}

// replays remembers proofs (key thumbprint and jti) until they expire.
type replays struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

const maxReplays = 200_000

// use records key until exp, or reports that it was used before.
func (r *replays) use(key string, exp, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]time.Time{}
	}
	if t, ok := r.seen[key]; ok && now.Before(t) {
		return false
	}
	if len(r.seen) >= maxReplays {
		for k, t := range r.seen {
			if !now.Before(t) {
				delete(r.seen, k)
			}
		}
		if len(r.seen) >= maxReplays { // all live: refuse rather than forget one (a replay could pass)
			return false
		}
	}
	r.seen[key] = exp
	return true
}

func denyBinding(description string, dpop bool) Decision {
	d := deny(ReasonSenderConstrained, description)
	d.DPoP = dpop
	return d
}

// checkBinding applies a token's cnf to the request.
func (e *Edge) checkBinding(id *Identity, authorization, method []byte, h *fasthttp.RequestHeader, o *origin, now time.Time) Decision {
	scheme, tok, _ := bytes.Cut(authorization, []byte(" "))
	dpopScheme := bytes.EqualFold(scheme, []byte("DPoP"))
	if id.JKT == "" && id.X5t == "" && !dpopScheme {
		return allowed
	}
	if id.X5t != "" {
		if o == nil || o.cert == nil || subtle.ConstantTimeCompare([]byte(oauth.CertThumbprint(o.cert)), []byte(id.X5t)) != 1 {
			return denyBinding("the token is bound to a client certificate this request does not carry", false)
		}
	}
	switch {
	case id.JKT != "" && !dpopScheme:
		return denyBinding("the token is DPoP-bound: send it with the DPoP scheme and a proof", true)
	case id.JKT == "" && dpopScheme:
		return denyBinding("the token is not DPoP-bound: send it as Bearer", true)
	case !dpopScheme:
		return allowed
	}
	proofs := h.PeekAll("DPoP")
	if len(proofs) != 1 {
		return denyBinding("send exactly one DPoP proof", true)
	}
	if o == nil {
		return denyBinding("the request's URL is unknown", true)
	}
	pr, why := oauth.VerifyDPoP(proofs[0], string(method), o.htu(e.cfg.PublicURL), string(bytes.TrimSpace(tok)), now)
	switch {
	case why != "":
		return denyBinding(why, true)
	case subtle.ConstantTimeCompare([]byte(pr.JKT), []byte(id.JKT)) != 1:
		return denyBinding("the DPoP proof's key is not the one the token is bound to", true)
	case !e.replays.use(pr.JKT+"\x00"+pr.Jti, pr.Iat.Add(oauth.DPoPWindow), now):
		return denyBinding("the DPoP proof was used before (jti)", true)
	}
	return allowed
}

// proxyCert is the client certificate of a proxied or forward-auth
// request: the edge's own TLS connection's, or a trusted proxy's header.
func (e *Edge) proxyCert(ctx *fasthttp.RequestCtx) *x509.Certificate {
	if st := ctx.TLSConnectionState(); st != nil && len(st.PeerCertificates) > 0 {
		return st.PeerCertificates[0]
	}
	if e.cfg.ClientCertHeader == "" || !oauth.InNets(e.certProxies, ctx.RemoteIP()) {
		return nil
	}
	return oauth.ForwardedCert(string(ctx.Request.Header.Peek(e.cfg.ClientCertHeader)))
}
