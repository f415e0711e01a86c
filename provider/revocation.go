package provider

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/oidcgate/oidcgate/provider/storage"
)

// revocationStore is what revoking needs of the store.
type revocationStore interface {
	RevokeJTI(ctx context.Context, r *storage.Revocation) error
	IsRevoked(ctx context.Context, jti string) (bool, error)
	RevokeRefreshFamily(ctx context.Context, familyID string) error
	DeleteSession(ctx context.Context, id string) error
}

// revocations is the one place anything is revoked — a token (its jti), a
// grant (a token family: a code and the refresh tokens rotated from it,
// with every access token they issued), a session — and the one place
// that answers whether a token was, and tells this process's listeners
// (an in-process edge's caches).
type revocations struct {
	store revocationStore
	now   func() time.Time
	// accessTTL bounds how long an access token can live: a grant's entry
	// on the revocation list outlives every token of it.
	accessTTL time.Duration
	epoch     atomic.Uint64 // revocations made, see Provider.RevocationEpoch
	listeners []func(token string)
	// ending is told of a session about to end (back-channel logout);
	// its failure keeps the session.
	ending func(ctx context.Context, se *storage.Session) error
}

// familyMark is the revocation-list entry that revokes every access token
// of a grant at once (the AccessClaims fid claim names the grant).
func familyMark(familyID string) string { return "family:" + familyID }

// token revokes one JWT access token until it would have expired.
func (r *revocations) token(ctx context.Context, jti string, exp time.Time) error {
	if err := r.store.RevokeJTI(ctx, &storage.Revocation{JTI: jti, ExpiresAt: exp}); err != nil {
		return err
	}
	r.epoch.Add(1)
	return nil
}

// grant revokes a whole grant: its refresh tokens, and — through the
// revocation list — its access tokens, for as long as any can live.
func (r *revocations) grant(ctx context.Context, familyID string) error {
	if err := r.store.RevokeRefreshFamily(ctx, familyID); err != nil {
		return err
	}
	if err := r.store.RevokeJTI(ctx, &storage.Revocation{JTI: familyMark(familyID), ExpiresAt: r.now().Add(r.accessTTL)}); err != nil {
		return err
	}
	r.epoch.Add(1)
	return nil
}

// session ends a browser session; one already gone is no error. The
// clients told of its end are queued first.
func (r *revocations) session(ctx context.Context, se *storage.Session) error {
	if r.ending != nil {
		if err := r.ending(ctx, se); err != nil {
			return err
		}
	}
	if err := r.store.DeleteSession(ctx, se.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return nil
}

// revoked reports whether a token was revoked, by its jti or with its grant.
func (r *revocations) revoked(ctx context.Context, jti, familyID string) (bool, error) {
	if jti != "" {
		if revoked, err := r.store.IsRevoked(ctx, jti); err != nil || revoked {
			return revoked, err
		}
	}
	if familyID != "" {
		return r.store.IsRevoked(ctx, familyMark(familyID))
	}
	return false, nil
}

// notify tells this process's listeners that token was revoked.
func (r *revocations) notify(token string) {
	for _, fn := range r.listeners {
		fn(token)
	}
}

// Revoked reports whether a JWT access token was revoked, by its jti or
// with its grant (an in-process edge asks this too).
func (p *Provider) Revoked(ctx context.Context, jti, family string) (bool, error) {
	return p.revs.revoked(ctx, jti, family)
}

// RevocationEpoch counts the revocations this process made (tokens and
// grants): an in-process edge re-checks its cached tokens when it moves.
func (p *Provider) RevocationEpoch() uint64 { return p.revs.epoch.Load() }

// OnRevoke registers fn to hear of every token this process revokes (an
// in-process edge drops it from its caches). Call it before serving.
func (p *Provider) OnRevoke(fn func(token string)) { p.revs.listeners = append(p.revs.listeners, fn) }
