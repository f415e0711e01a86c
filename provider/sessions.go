package provider

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// Browser sessions and the browser binding: random cookie secrets, stored
// only as their hashes.

func (p *Provider) cookieName() string {
	if strings.HasPrefix(p.cfg.Issuer, "https://") {
		return "__Host-oidcgate_session"
	}
	return "oidcgate_session"
}

// liveSession returns the visit's session, sliding its idle expiry, or
// nil. A disabled user's session is ended.
func (p *Provider) liveSession(ctx context.Context, v visit, now time.Time) *storage.Session {
	if v.session == "" {
		return nil
	}
	se, err := p.flowDB.GetSession(ctx, storage.HashOf(v.session))
	if err != nil {
		return nil
	}
	if u, err := p.flowDB.GetUser(ctx, se.UserID); err != nil || u.Disabled {
		p.revs.session(ctx, se)
		return nil
	}
	se.IdleExpiresAt = minTime(now.Add(p.cfg.SessionIdleTTL), se.ExpiresAt)
	p.flowDB.UpdateSession(ctx, se)
	return se
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// startSession signs u in: a new session and the cookie that carries it
// (never the old one, against session fixation).
func (p *Provider) startSession(ctx context.Context, u *storage.User, amr []string) (*storage.Session, cookie, error) {
	now := p.now()
	secret := randomToken()
	se := &storage.Session{ID: newJTI(), Hash: storage.HashOf(secret), UserID: u.ID, AuthTime: now, AMR: amr,
		CreatedAt: now, IdleExpiresAt: now.Add(p.cfg.SessionIdleTTL), ExpiresAt: now.Add(p.cfg.SessionTTL)}
	if err := p.flowDB.CreateSession(ctx, se); err != nil {
		return nil, cookie{}, oauth.ErrUnavailable(err)
	}
	return se, cookie{name: p.cookieName(), value: secret, expires: se.ExpiresAt.Unix()}, nil
}

// endCookie deletes the session cookie.
func (p *Provider) endCookie() cookie { return cookie{name: p.cookieName()} }

// signedInHere: the interaction has a user, and the visit carries the
// session that signed them in — consent is given by whoever signed in, in
// this browser, not by whoever holds the interaction.
func (p *Provider) signedInHere(ctx context.Context, v visit, ia *storage.Interaction) bool {
	return p.sessionHere(ctx, v, ia) != nil
}

// sessionHere is the session that signed the interaction's user in, when
// the visit carries it; else nil.
func (p *Provider) sessionHere(ctx context.Context, v visit, ia *storage.Interaction) *storage.Session {
	if ia.UserID == "" || ia.SessionID == "" || v.session == "" {
		return nil
	}
	se, err := p.flowDB.GetSession(ctx, storage.HashOf(v.session))
	if err != nil || se.ID != ia.SessionID || se.UserID != ia.UserID {
		return nil
	}
	return se
}

// Browser binding: a random cookie, set at /authorize when the browser has
// none, whose hash every interaction records. A sign-in link or consent
// form handed to another browser is refused there (interaction hijack), and
// a cross-site form cannot sign a victim's browser in (login CSRF).

func (p *Provider) browserCookieName() string {
	if strings.HasPrefix(p.cfg.Issuer, "https://") {
		return "__Host-oidcgate_browser"
	}
	return "oidcgate_browser"
}

// bindBrowser returns the visit's binding value and, when it had none (or a
// malformed one), the cookie that sets a new one — for as long as the
// browser session lasts.
func (p *Provider) bindBrowser(v visit) (string, *cookie) {
	if len(v.binding) == 43 { // randomToken's length
		return v.binding, nil
	}
	value := randomToken()
	return value, &cookie{name: p.browserCookieName(), value: value}
}

// sameBrowser: the visit carries the binding of the browser that started
// the interaction.
func sameBrowser(v visit, ia *storage.Interaction) bool {
	h := storage.HashOf(v.binding)
	return v.binding != "" && subtle.ConstantTimeCompare(h[:], ia.BrowserHash[:]) == 1
}

// equalSecret compares a presented secret (a CSRF token) in constant time.
func equalSecret(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// crossSite reports a form POST sent from another site (login CSRF,
// forced consent or sign-out), from what the browser said: Sec-Fetch-Site,
// decisive when sent (Chromium sends Origin: null for a same-origin form on
// a page with a strict referrer policy), else Origin. A request saying
// neither (a script) has only the CSRF token and the browser binding to
// pass.
func (p *Provider) crossSite(secFetchSite, origin string) bool {
	if secFetchSite != "" {
		return secFetchSite != "same-origin" && secFetchSite != "none"
	}
	return origin != "" && origin != p.origin
}

// s256 is the PKCE S256 transform (RFC 7636 §4.2).
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// logoutCSRF binds the sign-out confirmation to the session cookie, which
// a cross-site page cannot read.
func logoutCSRF(session string) string {
	sum := sha256.Sum256(append([]byte("oidcgate logout:"), session...))
	return hex.EncodeToString(sum[:16])
}
