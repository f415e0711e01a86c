package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// Admin API authentication: every request carries a bearer token made by
// `oidcgate admin-tokens create` (or declared in the bootstrap file),
// stored only as its SHA-256 hash. Failures are logged and limited per
// client IP. --admin-insecure turns this off, with a warning.

// AdminTokenPrefix starts every generated admin token, so a leaked one is
// recognisable (secret scanners, logs).
const AdminTokenPrefix = "oidcgate_admin_"

// MinAdminTokenLength bounds a declared token from below: it must be as
// hard to guess as a generated one.
const MinAdminTokenLength = 32

// NewAdminToken makes a token for name, valid for ttl (0: until revoked).
// The token is returned once; only its hash is kept.
func NewAdminToken(name string, ttl time.Duration, now time.Time) (string, *storage.AdminToken) {
	token := AdminTokenPrefix + randomToken()
	t, _ := AdminTokenFor(name, token, ttl, now)
	return token, t
}

// AdminTokenFor is the record of a declared token.
func AdminTokenFor(name, token string, ttl time.Duration, now time.Time) (*storage.AdminToken, error) {
	if name == "" || len(name) > 128 {
		return nil, errors.New("an admin token needs a name of 1-128 characters")
	}
	if len(token) < MinAdminTokenLength {
		return nil, fmt.Errorf("admin token %q: at least %d characters", name, MinAdminTokenLength)
	}
	t := &storage.AdminToken{ID: newJTI(), Name: name, Hash: storage.HashOf(token), CreatedAt: now}
	if ttl > 0 {
		t.ExpiresAt = now.Add(ttl)
	}
	return t, nil
}

// AdminTokenView is an admin token as operators see it: never its hash.
type AdminTokenView struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"` // admin, or registration (an initial access token)
	CreatedAt string `json:"created_at"`
	ExpiresAt string `json:"expires_at,omitempty"`
	Expired   bool   `json:"expired,omitempty"`
}

// ViewAdminToken is t as operators see it at now.
func ViewAdminToken(t *storage.AdminToken, now time.Time) AdminTokenView {
	v := AdminTokenView{Name: t.Name, Kind: cmpOr(t.Kind, "admin"), CreatedAt: t.CreatedAt.Format(time.RFC3339)}
	if !t.ExpiresAt.IsZero() {
		v.ExpiresAt, v.Expired = t.ExpiresAt.Format(time.RFC3339), !now.Before(t.ExpiresAt)
	}
	return v
}

// adminTokenStore is what admin authentication reads.
type adminTokenStore interface {
	GetAdminToken(ctx context.Context, h storage.Hash) (*storage.AdminToken, error)
}

// adminAttempts bounds failed admin authentications per client IP.
var adminAttempts = limitRule{limit: 20, window: time.Minute}

// authenticateAdmin admits a request with a valid admin token, recording
// the token's name as who made it.
func (p *Provider) authenticateAdmin(rc *fasthttp.RequestCtx) error {
	if p.cfg.AdminInsecure {
		rc.SetUserValue(adminWho, "insecure")
		return nil
	}
	ip := rc.RemoteIP().String()
	keys := []limitKey{{"admin:" + ip, adminAttempts}}
	wait, ok := p.limiter.reserve(keys...)
	if !ok {
		p.log.Warn("admin request refused: too many failed authentications", "ip", ip)
		rc.Response.Header.Set("Retry-After", fmt.Sprint(int(wait.Seconds()+1)))
		return oauth.New(http.StatusTooManyRequests, "slow_down", "too many failed authentications from this address")
	}
	auth := rc.Request.Header.Peek("Authorization")
	token, found := bytes.CutPrefix(auth, []byte("Bearer "))
	if !found || len(token) == 0 {
		p.limiter.settle(keys, false, true)
		p.log.Warn("admin request refused: no bearer token", "ip", ip, "path", string(rc.Path()))
		return adminUnauthorized("the admin API needs a bearer token (oidcgate admin-tokens create)")
	}
	ctx, cancel := requestCtx()
	defer cancel()
	t, err := p.adminTokens.GetAdminToken(ctx, storage.HashOf(string(token)))
	switch {
	case errors.Is(err, storage.ErrNotFound) || err == nil && t.Kind != storage.TokenKindAdmin:
		p.limiter.settle(keys, false, true)
		p.log.Warn("admin request refused: unknown, revoked or expired token", "ip", ip, "path", string(rc.Path()))
		return adminUnauthorized("the bearer token is unknown, revoked or expired")
	case err != nil:
		p.limiter.settle(keys, false, false)
		return oauth.ErrUnavailable(err)
	}
	p.limiter.settle(keys, true, false)
	rc.SetUserValue(adminWho, t.Name)
	return nil
}

// adminWho is the request's user value naming who made an admin request.
const adminWho = "oidcgate.admin_token"

func adminUnauthorized(msg string) error {
	e := oauth.New(http.StatusUnauthorized, "invalid_token", "%s", msg)
	e.WWWAuthenticate = `Bearer realm="oidcgate-admin", error="invalid_token"`
	return e
}
