package provider

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// The revocation stream: edges learn of revoked tokens and grants within
// a second instead of at the token's expiry. GET /revocations?after=SEQ
// (long poll: &wait=20s at most) answers the revocations recorded after
// SEQ, in order, as soon as there is one, with next, the SEQ to ask after
// next time — so an edge that was cut off resumes where it stopped and
// misses nothing: revocations are kept until the tokens they revoke have
// expired. Only resource servers (clients with introspect_any) may read it.

// revocationStreamStore is what the stream reads.
type revocationStreamStore interface {
	RevocationsSince(ctx context.Context, after uint64, limit int) ([]*storage.Revocation, error)
}

const (
	maxRevocationWait  = 20 * time.Second
	revocationPage     = 1000
	revocationPollBase = time.Second // the store is read at least this often while waiting
)

type streamedRevocation struct {
	Seq uint64 `json:"seq"`
	JTI string `json:"jti"` // family:<fid> revokes a whole grant
	Exp int64  `json:"exp"`
}

type revocationBatch struct {
	Revocations []streamedRevocation `json:"revocations"`
	Next        uint64               `json:"next,string"`
}

// revocationStream is GET /revocations.
func (p *Provider) revocationStream(rc *fasthttp.RequestCtx) error {
	creds, err := parseCredentials(rc.Request.Header.Peek("Authorization"), nil, nil)
	if err != nil {
		return err
	}
	creds.cert, creds.chained = p.clientCertificate(rc)
	ctx, cancel := requestCtx()
	c, err := p.authenticate(ctx, creds)
	cancel()
	if err != nil {
		return err
	}
	if !c.IntrospectAny || c.TokenEndpointAuthMethod == authNone {
		return oauth.New(http.StatusForbidden, "access_denied", "only resource servers (introspect_any clients) read the revocation stream")
	}
	q := rc.QueryArgs()
	after, err := strconv.ParseUint(cmpOr(string(q.Peek("after")), "0"), 10, 64)
	if err != nil {
		return oauth.ErrInvalidRequest("after must be a revocation sequence number")
	}
	wait := time.Duration(0)
	if w := string(q.Peek("wait")); w != "" {
		if wait, err = time.ParseDuration(w); err != nil || wait < 0 {
			return oauth.ErrInvalidRequest("wait must be a duration like 20s")
		}
		wait = min(wait, maxRevocationWait)
	}
	deadline := time.Now().Add(wait)
	for {
		epoch := p.revs.epoch.Load()
		sctx, cancel := requestCtx()
		list, err := p.revDB.RevocationsSince(sctx, after, revocationPage)
		cancel()
		if err != nil {
			return oauth.ErrUnavailable(err)
		}
		if len(list) > 0 || !time.Now().Before(deadline) {
			page := revocationBatch{Revocations: make([]streamedRevocation, 0, len(list)), Next: after}
			for _, r := range list {
				page.Revocations = append(page.Revocations, streamedRevocation{Seq: r.Seq, JTI: r.JTI, Exp: r.ExpiresAt.Unix()})
				page.Next = r.Seq
			}
			rc.Response.Header.Set("Cache-Control", "no-store")
			return oauth.WriteJSON(rc, http.StatusOK, page)
		}
		// Wait for a revocation here or at a replica (the count moves), or
		// for the next read of the store.
		next := time.Now().Add(revocationPollBase)
		if deadline.Before(next) {
			next = deadline
		}
		for time.Now().Before(next) && p.revs.epoch.Load() == epoch {
			time.Sleep(50 * time.Millisecond)
		}
	}
}
