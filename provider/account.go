package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// The account page (/account): a signed-in user changes their password,
// sets up and removes second factors, makes new recovery codes, sees and
// ends their sessions, and withdraws consents. Server-rendered forms with a
// CSRF token bound to the session cookie; only the passkey buttons need
// JavaScript. A user with a second factor changes security settings only
// from a session that passed one: a password-only session is stepped up
// first.

// accountClient is the account page as the sign-in flow sees it: no
// client of the store, no consent, and the flow ends at /account.
var accountClient = &storage.Client{Name: "your account", FirstParty: true}

// accountRequest is the account page's request (a POST is one action).
type accountRequest struct {
	visit  visit
	post   bool
	action string
	csrf   string
	field  func(name string) string // the form's other fields
}

// accountCSRF binds the account page's forms to the session cookie, which
// a cross-site page cannot read.
func accountCSRF(session string) string {
	sum := sha256.Sum256(append([]byte("oidcgate account:"), session...))
	return hex.EncodeToString(sum[:16])
}

// accountSignIn starts a sign-in for the account page itself — with the
// live session if there is one, stepped up to a second factor if stepUp.
func (p *Provider) accountSignIn(ctx context.Context, v visit, stepUp bool) (outcome, error) {
	if !p.pending.allow(v.ip) {
		return pageOutcome(http.StatusTooManyRequests, "message", page{Title: "Too many sign-ins",
			Message: "Too many sign-ins are pending from this address. Try again later."}), nil
	}
	now := p.now()
	ia := &storage.Interaction{ID: randomToken(), CSRF: randomToken(), Account: true, RedirectURI: p.cfg.Issuer + "/account",
		ResponseMode: "query", MaxAge: -1, CreatedAt: now, ExpiresAt: now.Add(p.cfg.InteractionTTL)}
	if stepUp {
		ia.ACRValues = []string{ACRMFA}
	}
	binding, bindCookie := p.bindBrowser(v)
	ia.BrowserHash = storage.HashOf(binding)
	if se := p.liveSession(ctx, v, now); se != nil {
		ia.UserID, ia.SessionID, ia.AuthTime, ia.AMR = se.UserID, se.ID, se.AuthTime, se.AMR
	}
	if err := p.flowDB.CreateInteraction(ctx, ia); err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	out, err := p.next(ctx, ia, accountClient)
	if bindCookie != nil {
		out.cookies = append(out.cookies, *bindCookie)
	}
	return out, err
}

// accountStore is what the account page uses of the store besides the
// flow's and the factors'.
type accountStore interface {
	UpdateUser(ctx context.Context, u *storage.User) error
	ListSessions(ctx context.Context, userID string) ([]*storage.Session, error)
	ListConsents(ctx context.Context, userID string) ([]*storage.Consent, error)
	DeleteConsent(ctx context.Context, userID, clientID string) error
}

// account serves the page (GET) or one of its actions (POST).
func (p *Provider) account(ctx context.Context, r accountRequest) (outcome, error) {
	se := p.liveSession(ctx, r.visit, p.now())
	if se == nil {
		return p.accountSignIn(ctx, r.visit, false)
	}
	u, err := p.flowDB.GetUser(ctx, se.UserID)
	if err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	a := &accountCtx{p: p, se: se, u: u, visit: r.visit}
	if !r.post {
		return a.view(ctx, http.StatusOK, "")
	}
	if r.visit.crossSite {
		return refused("This form was sent from another site. Go back to your account page and try again."), nil
	}
	if !equalSecret(r.csrf, accountCSRF(r.visit.session)) {
		return refused("The form was not the one this server sent (CSRF check). Go back to your account page and try again."), nil
	}
	if a.factors, err = p.mfaDB.ListFactors(ctx, u.ID); err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	switch r.action {
	case "password", "totp-start", "enroll", "remove-factor", "recovery":
		if secondFactors(a.factors) && !multiFactor(se.AMR) {
			return p.accountSignIn(ctx, r.visit, true)
		}
	}
	switch r.action {
	case "password":
		return a.changePassword(ctx, r.field("current"), r.field("new"), r.field("confirm"))
	case "totp-start":
		return a.startTOTP(ctx)
	case "enroll":
		return a.confirmTOTP(ctx, r.field("code"))
	case "remove-factor":
		return a.removeFactor(ctx, r.field("factor"))
	case "recovery":
		if !secondFactors(a.factors) {
			return a.view(ctx, http.StatusBadRequest, "Set up an authenticator app or a security key first.")
		}
		return a.showRecoveryCodes(ctx)
	case "end-session":
		return a.endSession(ctx, r.field("session"))
	case "revoke-consent":
		return a.revokeConsent(ctx, r.field("client"))
	case "step-up":
		return p.accountSignIn(ctx, r.visit, true)
	}
	return a.view(ctx, http.StatusBadRequest, "The form did not say what to do.")
}

// accountCtx is one account request of a signed-in user.
type accountCtx struct {
	p       *Provider
	se      *storage.Session
	u       *storage.User
	factors []*storage.Factor
	visit   visit
}

func (a *accountCtx) changePassword(ctx context.Context, current, next, confirm string) (outcome, error) {
	p := a.p
	if a.u.PasswordHash == "" {
		return a.view(ctx, http.StatusBadRequest, "Your account signs in through another identity provider: change your password there.")
	}
	keys := p.signInKeys(a.u.Username, a.visit.ip)
	wait, ok := p.limiter.reserve(keys...)
	if !ok {
		out, err := a.view(ctx, http.StatusTooManyRequests, "Too many wrong passwords. Wait a minute and try again.")
		out.retryAfter = int(wait.Seconds() + 1)
		return out, err
	}
	right, err := p.passwords.verify(ctx, a.u.PasswordHash, current)
	p.limiter.done(!right && err == nil, keys)
	switch {
	case err != nil:
		return outcome{}, err
	case !right:
		return a.view(ctx, http.StatusUnauthorized, "The current password is not right.")
	case next != confirm:
		return a.view(ctx, http.StatusBadRequest, "The new password and its confirmation differ.")
	}
	if err := ValidatePassword(next); err != nil {
		return a.view(ctx, http.StatusBadRequest, "The new password is too short: "+err.Error()+".")
	}
	hash, err := p.passwords.hash(ctx, next)
	if err != nil {
		return outcome{}, err
	}
	a.u.PasswordHash, a.u.UpdatedAt = hash, p.now()
	if err := p.accountDB.UpdateUser(ctx, a.u); err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	ended, err := a.endOtherSessions(ctx)
	if err != nil {
		return outcome{}, err
	}
	p.audit("password.changed", "user_id", a.u.ID, "sessions_ended", ended, "by", "user", "ip", a.visit.ip)
	return a.view(ctx, http.StatusOK, "Your password was changed. Your other sessions were signed out.")
}

// endOtherSessions signs out every session of the user but this one.
func (a *accountCtx) endOtherSessions(ctx context.Context) (int, error) {
	list, err := a.p.accountDB.ListSessions(ctx, a.u.ID)
	if err != nil {
		return 0, oauth.ErrUnavailable(err)
	}
	n := 0
	for _, s := range list {
		if s.ID != a.se.ID {
			if err := a.p.revs.session(ctx, s); err != nil {
				return n, oauth.ErrUnavailable(err)
			}
			n++
		}
	}
	return n, nil
}

func (a *accountCtx) owner() string { return "session:" + a.se.ID }

func (a *accountCtx) startTOTP(ctx context.Context) (outcome, error) {
	if hasKind(a.factors, storage.FactorTOTP) {
		return a.view(ctx, http.StatusBadRequest, "You have an authenticator app already: remove it first to set up another.")
	}
	cer, setup, err := a.p.newTOTP(a.u, a.owner())
	if err != nil {
		return outcome{}, err
	}
	a.se.Ceremony = cer
	if err := a.p.flowDB.UpdateSession(ctx, a.se); err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	return a.enrollPage(http.StatusOK, setup, ""), nil
}

func (a *accountCtx) enrollPage(status int, setup totpSetup, msg string) outcome {
	return pageOutcome(status, "enroll_totp", page{Title: "Set up an authenticator app", Action: a.p.issuerPath + "/account",
		CSRF: accountCSRF(a.visit.session), Error: msg, TOTP: &setup})
}

func (a *accountCtx) confirmTOTP(ctx context.Context, code string) (outcome, error) {
	p := a.p
	secret, setup, ok := p.pendingTOTP(a.owner(), a.se.Ceremony)
	if !ok || hasKind(a.factors, storage.FactorTOTP) {
		return a.view(ctx, http.StatusBadRequest, "That setup has expired. Start again.")
	}
	keys := p.mfaKeys(a.u.ID, a.visit.ip)
	wait, allowed := p.limiter.reserve(keys...)
	if !allowed {
		out := a.enrollPage(http.StatusTooManyRequests, setup, "Too many wrong codes. Wait a minute and try again.")
		out.retryAfter = int(wait.Seconds() + 1)
		return out, nil
	}
	passed, err := p.enrollTOTP(ctx, a.u, secret, code, "Authenticator app")
	p.limiter.settle(keys, passed, !passed && err == nil)
	if err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	if !passed {
		p.metrics.mfa.WithLabelValues("enroll", "bad_code").Inc()
		return a.enrollPage(http.StatusUnauthorized, setup, "That code is not right. Check the time on your phone, and type the code the app shows now."), nil
	}
	p.metrics.mfa.WithLabelValues("enroll", "ok").Inc()
	a.se.Ceremony = nil
	if err := p.flowDB.UpdateSession(ctx, a.se); err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	if !hasKind(a.factors, storage.FactorRecovery) {
		return a.showRecoveryCodes(ctx)
	}
	return a.view(ctx, http.StatusOK, "Your authenticator app was added.")
}

func (a *accountCtx) showRecoveryCodes(ctx context.Context) (outcome, error) {
	codes, err := a.p.newRecoveryCodes(ctx, a.u)
	if err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	return pageOutcome(http.StatusOK, "recovery_codes", page{Title: "Save your recovery codes", Codes: codes,
		Next: a.p.issuerPath + "/account"}), nil
}

func (a *accountCtx) removeFactor(ctx context.Context, id string) (outcome, error) {
	i := slices.IndexFunc(a.factors, func(f *storage.Factor) bool {
		return f.ID == id && (f.Kind == storage.FactorTOTP || f.Kind == storage.FactorWebAuthn)
	})
	if i < 0 {
		return a.view(ctx, http.StatusNotFound, "There is no such second factor on your account.")
	}
	f := a.factors[i]
	if err := a.p.mfaDB.DeleteFactor(ctx, a.u.ID, f.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	a.factors = slices.Delete(a.factors, i, i+1)
	if !secondFactors(a.factors) { // recovery codes recover nothing then
		if _, err := a.p.mfaDB.DeleteFactors(ctx, a.u.ID, storage.FactorRecovery); err != nil {
			return outcome{}, oauth.ErrUnavailable(err)
		}
	}
	a.p.audit("mfa.removed", "user_id", a.u.ID, "kind", f.Kind, "factor_id", f.ID, "by", "user", "ip", a.visit.ip)
	return a.view(ctx, http.StatusOK, "Removed “"+f.Name+"”.")
}

func (a *accountCtx) endSession(ctx context.Context, id string) (outcome, error) {
	list, err := a.p.accountDB.ListSessions(ctx, a.u.ID)
	if err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	i := slices.IndexFunc(list, func(s *storage.Session) bool { return s.ID == id })
	if i < 0 {
		return a.view(ctx, http.StatusNotFound, "There is no such session.")
	}
	if err := a.p.revs.session(ctx, list[i]); err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	a.p.audit("session.ended", "user_id", a.u.ID, "session_id", id, "by", "user", "ip", a.visit.ip)
	if id == a.se.ID {
		out := pageOutcome(http.StatusOK, "message", page{Title: "Signed out", Message: "You signed out of " + a.p.cfg.BrandName + "."})
		out.cookies = append(out.cookies, a.p.endCookie())
		return out, nil
	}
	return a.view(ctx, http.StatusOK, "The session was signed out.")
}

func (a *accountCtx) revokeConsent(ctx context.Context, clientID string) (outcome, error) {
	err := a.p.accountDB.DeleteConsent(ctx, a.u.ID, clientID)
	if errors.Is(err, storage.ErrNotFound) {
		return a.view(ctx, http.StatusNotFound, "That application has no access to withdraw.")
	}
	if err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	a.p.audit("consent.revoked", "user_id", a.u.ID, "client_id", clientID, "by", "user", "ip", a.visit.ip)
	return a.view(ctx, http.StatusOK, "Access withdrawn: the application's refresh tokens stop working, and it must ask you again.")
}

// accountView is what the account page shows.
type accountView struct {
	Username, Name string
	Local          bool // has a password here
	SecondFactor   bool
	CanChange      bool // may change security settings without a step-up first
	WebAuthn       bool // security keys can be registered here
	TOTP, Keys     []factorView
	RecoveryLeft   int
	Sessions       []sessionView
	Consents       []consentView
}

type factorView struct{ ID, Name, Created, LastUsed string }

type sessionView struct {
	ID, Created, Methods string
	Current              bool
}

type consentView struct{ ClientID, ClientName, Scopes, Created string }

func day(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2 Jan 2006 15:04 UTC")
}

func (a *accountCtx) view(ctx context.Context, status int, msg string) (outcome, error) {
	p := a.p
	var err error
	if a.factors == nil {
		if a.factors, err = p.mfaDB.ListFactors(ctx, a.u.ID); err != nil {
			return outcome{}, oauth.ErrUnavailable(err)
		}
	}
	sessions, err := p.accountDB.ListSessions(ctx, a.u.ID)
	if err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	consents, err := p.accountDB.ListConsents(ctx, a.u.ID)
	if err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	name, _ := a.u.Claims["name"].(string)
	v := &accountView{Username: a.u.Username, Name: name, Local: a.u.PasswordHash != "", SecondFactor: secondFactors(a.factors),
		CanChange: !secondFactors(a.factors) || multiFactor(a.se.AMR), WebAuthn: p.webauthn != nil}
	for _, f := range a.factors {
		fv := factorView{ID: f.ID, Name: f.Name, Created: day(f.CreatedAt), LastUsed: day(f.LastUsedAt)}
		switch f.Kind {
		case storage.FactorTOTP:
			v.TOTP = append(v.TOTP, fv)
		case storage.FactorWebAuthn:
			v.Keys = append(v.Keys, fv)
		case storage.FactorRecovery:
			if f.Counter == 0 {
				v.RecoveryLeft++
			}
		}
	}
	for _, s := range sessions {
		v.Sessions = append(v.Sessions, sessionView{ID: s.ID, Created: day(s.CreatedAt), Methods: strings.Join(s.AMR, ", "),
			Current: s.ID == a.se.ID})
	}
	for _, c := range consents {
		cv := consentView{ClientID: c.ClientID, ClientName: c.ClientID, Scopes: strings.Join(c.Scopes, " "), Created: day(c.CreatedAt)}
		if cl, err := p.client(ctx, c.ClientID); err == nil && cl.Name != "" {
			cv.ClientName = cl.Name
		}
		v.Consents = append(v.Consents, cv)
	}
	return pageOutcome(status, "account", page{Title: "Your account", Action: p.issuerPath + "/account",
		CSRF: accountCSRF(a.visit.session), Message: msg, Account: v}), nil
}
