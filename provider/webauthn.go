package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// WebAuthn (github.com/go-webauthn/webauthn): security keys and passkeys,
// registered on the account page, used as a second factor at the MFA step
// and — with the passkeys setting — to sign in without a password. The
// browser side is web/webauthn.js, the provider's only script, served from
// this origin under the CSP; these endpoints are its JSON API. Each
// ceremony's challenge is kept server-side (in the interaction, or in the
// session for a registration) and spent by its first answer.

// newWebAuthn is the relying party: its ID is the issuer's host, its only
// origin the issuer's. WebAuthn needs a domain (browsers refuse an IP
// address as RP ID), so an issuer at an IP address has none: nil.
func newWebAuthn(cfg Config, origin string) (*webauthn.WebAuthn, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	if net.ParseIP(u.Hostname()) != nil {
		return nil, nil
	}
	return webauthn.New(&webauthn.Config{RPID: u.Hostname(), RPDisplayName: cfg.BrandName, RPOrigins: []string{origin}})
}

// noWebAuthn answers a WebAuthn endpoint of a provider that has none.
var noWebAuthn = webauthnErr(http.StatusNotFound, "invalid_request",
	"security keys and passkeys need the issuer at a domain name, not an IP address")

// webauthnUser is a user as the library sees them, with their registered
// credentials (each one's sign counter from the store, which owns it).
type webauthnUser struct {
	u       *storage.User
	creds   []webauthn.Credential
	factors []*storage.Factor // parallel to creds
}

func (w *webauthnUser) WebAuthnID() []byte   { return []byte(w.u.ID) }
func (w *webauthnUser) WebAuthnName() string { return w.u.Username }
func (w *webauthnUser) WebAuthnDisplayName() string {
	if name, _ := w.u.Claims["name"].(string); name != "" {
		return name
	}
	return w.u.Username
}
func (w *webauthnUser) WebAuthnCredentials() []webauthn.Credential { return w.creds }

func newWebauthnUser(u *storage.User, factors []*storage.Factor) (*webauthnUser, error) {
	w := &webauthnUser{u: u}
	for _, f := range factors {
		if f.Kind != storage.FactorWebAuthn {
			continue
		}
		var c webauthn.Credential
		if err := json.Unmarshal(f.Credential, &c); err != nil {
			return nil, err
		}
		c.Authenticator.SignCount = uint32(f.Counter)
		w.creds, w.factors = append(w.creds, c), append(w.factors, f)
	}
	return w, nil
}

// factorOf is the stored factor of a credential the library validated.
func (w *webauthnUser) factorOf(c *webauthn.Credential) *storage.Factor {
	for i := range w.creds {
		if bytes.Equal(w.creds[i].ID, c.ID) {
			return w.factors[i]
		}
	}
	return nil
}

// webauthnAMR is a credential's RFC 8176 method: a key that can be synced
// between devices (backup eligible) is software-protected, else hardware.
func webauthnAMR(c *webauthn.Credential) string {
	if c.Flags.BackupEligible {
		return "swk"
	}
	return "hwk"
}

// webauthnRequest is a JSON POST from webauthn.js.
type webauthnRequest struct {
	Interaction string          `json:"interaction"`
	CSRF        string          `json:"csrf"`
	Name        string          `json:"name"`
	Credential  json.RawMessage `json:"credential"`
	visit       visit
}

// jsonAnswer is what a WebAuthn endpoint answers: the ceremony's options,
// where the browser goes next ({"location": …}), or an error shaped as
// OAuth errors are ({"error", "error_description"}).
type jsonAnswer struct {
	status     int
	body       any
	cookies    []cookie
	retryAfter int // seconds, when set
}

// tooMany answers an attempt over the limit.
func tooMany(wait time.Duration) jsonAnswer {
	a := webauthnErr(http.StatusTooManyRequests, "slow_down", "too many failed attempts: wait a minute and try again")
	a.retryAfter = int(wait.Seconds() + 1)
	return a
}

func webauthnErr(status int, code, description string) jsonAnswer {
	return jsonAnswer{status: status, body: map[string]string{"error": code, "error_description": description}}
}

func goTo(location string, cookies ...cookie) jsonAnswer {
	return jsonAnswer{status: http.StatusOK, body: map[string]string{"location": location}, cookies: cookies}
}

var errCeremony = webauthnErr(http.StatusBadRequest, "invalid_request", "no security-key ceremony is under way here (it expired, or was answered already): try again")

// ceremony reads the library's session data off a pending ceremony and
// spends it: an answer is checked against it once.
func (p *Provider) ceremony(cer **storage.Ceremony) (*webauthn.SessionData, bool) {
	c := *cer
	if c == nil || c.WebAuthn == nil || p.now().After(c.ExpiresAt) {
		return nil, false
	}
	var sd webauthn.SessionData
	if err := json.Unmarshal(c.WebAuthn, &sd); err != nil {
		return nil, false
	}
	*cer = nil
	return &sd, true
}

func (p *Provider) newCeremony(sd *webauthn.SessionData) (*storage.Ceremony, error) {
	b, err := json.Marshal(sd)
	return &storage.Ceremony{WebAuthn: b, ExpiresAt: p.now().Add(p.cfg.InteractionTTL)}, err
}

// interactionFor is the interaction a sign-in ceremony belongs to, after
// the checks of every sign-in form.
func (p *Provider) interactionFor(ctx context.Context, r webauthnRequest) (*storage.Interaction, *storage.Client, *jsonAnswer, error) {
	ia, c, stop, err := p.resume(ctx, interactionRequest{id: r.Interaction, csrf: r.CSRF, post: true, visit: r.visit})
	if err != nil {
		return nil, nil, nil, err
	}
	if stop != nil {
		a := webauthnErr(stop.status, "access_denied", stop.data.Message)
		return nil, nil, &a, nil
	}
	return ia, c, nil, nil
}

// continueURL moves a signed-in interaction on (GET /continue).
func (p *Provider) continueURL(ia *storage.Interaction) string {
	return p.issuerPath + "/continue?interaction=" + url.QueryEscape(ia.ID)
}

// mfaWebauthnBegin starts a security-key assertion at the MFA step.
func (p *Provider) mfaWebauthnBegin(ctx context.Context, r webauthnRequest) (jsonAnswer, error) {
	m, stop, err := p.mfaResume(ctx, interactionRequest{id: r.Interaction, csrf: r.CSRF, post: true, visit: r.visit})
	if err != nil || stop != nil {
		return p.stopped(stop), err
	}
	w, err := newWebauthnUser(m.u, m.factors)
	if err != nil {
		return jsonAnswer{}, err
	}
	if len(w.creds) == 0 {
		return webauthnErr(http.StatusBadRequest, "invalid_request", "this account has no security key"), nil
	}
	opts, sd, err := p.webauthn.BeginLogin(w, webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return jsonAnswer{}, err
	}
	if m.ia.Ceremony, err = p.newCeremony(sd); err != nil {
		return jsonAnswer{}, err
	}
	if err := p.flowDB.UpdateInteraction(ctx, m.ia); err != nil {
		return jsonAnswer{}, oauth.ErrUnavailable(err)
	}
	return jsonAnswer{status: http.StatusOK, body: opts}, nil
}

// stopped is a JSON answer for a request the flow's checks stopped: an
// error, or — when the step is passed already — where to go on.
func (p *Provider) stopped(stop *outcome) jsonAnswer {
	if stop == nil {
		return jsonAnswer{}
	}
	if stop.kind == showPage && stop.status >= 400 {
		return webauthnErr(stop.status, "access_denied", stop.data.Message)
	}
	if stop.kind == redirect {
		return goTo(stop.location, stop.cookies...)
	}
	return webauthnErr(http.StatusConflict, "invalid_request", "this sign-in step is over: reload the page")
}

// mfaWebauthnFinish checks the assertion and steps the session up.
func (p *Provider) mfaWebauthnFinish(ctx context.Context, r webauthnRequest) (jsonAnswer, error) {
	m, stop, err := p.mfaResume(ctx, interactionRequest{id: r.Interaction, csrf: r.CSRF, post: true, visit: r.visit})
	if err != nil || stop != nil {
		return p.stopped(stop), err
	}
	sd, ok := p.ceremony(&m.ia.Ceremony)
	if !ok {
		return errCeremony, nil
	}
	if err := p.flowDB.UpdateInteraction(ctx, m.ia); err != nil { // the challenge is spent before it is checked
		return jsonAnswer{}, oauth.ErrUnavailable(err)
	}
	keys := p.mfaKeys(m.u.ID, r.visit.ip)
	wait, allowed := p.limiter.reserve(keys...)
	if !allowed {
		p.metrics.mfa.WithLabelValues("webauthn", "limited").Inc()
		return tooMany(wait), nil
	}
	w, err := newWebauthnUser(m.u, m.factors)
	if err != nil {
		p.limiter.done(false, keys)
		return jsonAnswer{}, err
	}
	cred, refusal := p.verifyAssertion(r.Credential, "webauthn", func(parsed *protocol.ParsedCredentialAssertionData) (*webauthn.Credential, error) {
		return p.webauthn.ValidateLogin(w, *sd, parsed)
	})
	if refusal == nil {
		refusal = p.recordUse(ctx, w, cred, "webauthn")
	}
	p.limiter.settle(keys, refusal == nil, refusal != nil)
	if refusal != nil {
		return *refusal, nil
	}
	sessionCookie, err := p.stepUp(ctx, m.ia, m.se, webauthnAMR(cred))
	if err != nil {
		return jsonAnswer{}, err
	}
	return goTo(p.continueURL(m.ia), sessionCookie), nil
}

// refusal is the answer to a WebAuthn assertion that did not pass.
func (p *Provider) refusal(method, reason, msg string, err error) *jsonAnswer {
	p.log.Info("webauthn assertion refused", "method", method, "reason", reason, "error", err)
	p.metrics.mfa.WithLabelValues(method, "refused").Inc()
	a := webauthnErr(http.StatusUnauthorized, "access_denied", msg)
	return &a
}

// verifyAssertion parses a WebAuthn assertion and validates it (the
// library checks challenge, origin, RP ID, signature, flags and owner).
func (p *Provider) verifyAssertion(raw json.RawMessage, method string,
	validate func(*protocol.ParsedCredentialAssertionData) (*webauthn.Credential, error)) (*webauthn.Credential, *jsonAnswer) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(raw)
	if err != nil {
		return nil, p.refusal(method, "malformed", "the security key's answer is malformed", err)
	}
	cred, err := validate(parsed)
	if err != nil {
		return nil, p.refusal(method, "invalid", "the security key's answer did not verify: it is not a key of this account, or not for this site", err)
	}
	return cred, nil
}

// recordUse refuses a cloned authenticator (its signature counter went
// back) and records the use, moving the stored counter forward.
func (p *Provider) recordUse(ctx context.Context, w *webauthnUser, cred *webauthn.Credential, method string) *jsonAnswer {
	f := w.factorOf(cred)
	if f == nil {
		return p.refusal(method, "unknown", "that security key is not registered to this account", nil)
	}
	if cred.Authenticator.CloneWarning {
		p.audit("mfa.clone_warning", "user_id", w.u.ID, "factor_id", f.ID, "stored_counter", f.Counter)
		return p.refusal(method, "cloned", "this security key's signature counter went back, so it may have been copied: it was refused. Remove it on your account page and register it again, or ask an administrator", nil)
	}
	if err := p.mfaDB.UseFactor(ctx, w.u.ID, f.ID, uint64(cred.Authenticator.SignCount), p.now()); err != nil {
		return p.refusal(method, "counter", "this security key's answer was used already", err)
	}
	p.metrics.mfa.WithLabelValues(method, "ok").Inc()
	return nil
}

// passkeyBegin starts a passwordless sign-in with a discoverable
// credential (the sign-in page's passkey button).
func (p *Provider) passkeyBegin(ctx context.Context, r webauthnRequest) (jsonAnswer, error) {
	if !p.cfg.Passkeys {
		return webauthnErr(http.StatusNotFound, "invalid_request", "passkey sign-in is turned off here"), nil
	}
	ia, _, stop, err := p.interactionFor(ctx, r)
	if err != nil || stop != nil {
		return deref2(stop), err
	}
	opts, sd, err := p.webauthn.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return jsonAnswer{}, err
	}
	if ia.Ceremony, err = p.newCeremony(sd); err != nil {
		return jsonAnswer{}, err
	}
	if err := p.flowDB.UpdateInteraction(ctx, ia); err != nil {
		return jsonAnswer{}, oauth.ErrUnavailable(err)
	}
	return jsonAnswer{status: http.StatusOK, body: opts}, nil
}

func deref2(a *jsonAnswer) jsonAnswer {
	if a == nil {
		return jsonAnswer{}
	}
	return *a
}

// passkeyFinish signs in the user whose passkey answered. A passkey with
// user verification is two factors in one (possession, and the PIN or
// biometric that unlocked it): the session is at the MFA level.
func (p *Provider) passkeyFinish(ctx context.Context, r webauthnRequest) (jsonAnswer, error) {
	if !p.cfg.Passkeys {
		return webauthnErr(http.StatusNotFound, "invalid_request", "passkey sign-in is turned off here"), nil
	}
	ia, _, stop, err := p.interactionFor(ctx, r)
	if err != nil || stop != nil {
		return deref2(stop), err
	}
	sd, ok := p.ceremony(&ia.Ceremony)
	if !ok {
		return errCeremony, nil
	}
	if err := p.flowDB.UpdateInteraction(ctx, ia); err != nil {
		return jsonAnswer{}, oauth.ErrUnavailable(err)
	}
	keys := []limitKey{{"ip:" + r.visit.ip, limitRule{4 * p.cfg.LoginLimit, p.cfg.LoginWindow}}}
	wait, allowed := p.limiter.reserve(keys...)
	if !allowed {
		return tooMany(wait), nil
	}
	var found *webauthnUser
	var lookupErr error
	cred, refusal := p.verifyAssertion(r.Credential, "passkey", func(parsed *protocol.ParsedCredentialAssertionData) (*webauthn.Credential, error) {
		_, c, err := p.webauthn.ValidatePasskeyLogin(func(_, userHandle []byte) (webauthn.User, error) {
			u, err := p.flowDB.GetUser(ctx, string(userHandle))
			if err != nil {
				if !errors.Is(err, storage.ErrNotFound) {
					lookupErr = err
				}
				return nil, err
			}
			factors, err := p.mfaDB.ListFactors(ctx, u.ID)
			if err != nil {
				lookupErr = err
				return nil, err
			}
			found, err = newWebauthnUser(u, factors)
			return found, err
		}, *sd, parsed)
		return c, err
	})
	if lookupErr != nil {
		p.limiter.done(false, keys)
		return jsonAnswer{}, oauth.ErrUnavailable(lookupErr)
	}
	if refusal == nil {
		refusal = p.recordUse(ctx, found, cred, "passkey")
	}
	p.limiter.done(refusal != nil, keys)
	if refusal != nil {
		return *refusal, nil
	}
	if found.u.Disabled {
		return webauthnErr(http.StatusForbidden, "access_denied", "this account is disabled here"), nil
	}
	amr := []string{webauthnAMR(cred)}
	if cred.Flags.UserVerified {
		amr = append(amr, "mfa")
	}
	p.signIn("passkey", "ok", "user_id", found.u.ID, "client_id", ia.ClientID, "ip", r.visit.ip, "amr", amr)
	sessionCookie, err := p.startSignedIn(ctx, ia, found.u, amr)
	if err != nil {
		return jsonAnswer{}, err
	}
	return goTo(p.continueURL(ia), sessionCookie), nil
}

// registerBegin starts registering a security key or passkey from the
// account page.
func (p *Provider) registerBegin(ctx context.Context, r webauthnRequest) (jsonAnswer, error) {
	a, stop, err := p.accountFor(ctx, r)
	if err != nil || stop != nil {
		return deref2(stop), err
	}
	w, err := newWebauthnUser(a.u, a.factors)
	if err != nil {
		return jsonAnswer{}, err
	}
	resident, uv := protocol.ResidentKeyRequirementPreferred, protocol.VerificationPreferred
	if p.cfg.Passkeys {
		resident, uv = protocol.ResidentKeyRequirementRequired, protocol.VerificationRequired
	}
	opts, sd, err := p.webauthn.BeginRegistration(w, webauthn.WithResidentKeyRequirement(resident),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{ResidentKey: resident, UserVerification: uv}),
		webauthn.WithExclusions(webauthn.Credentials(w.creds).CredentialDescriptors()))
	if err != nil {
		return jsonAnswer{}, err
	}
	if a.se.Ceremony, err = p.newCeremony(sd); err != nil {
		return jsonAnswer{}, err
	}
	if err := p.flowDB.UpdateSession(ctx, a.se); err != nil {
		return jsonAnswer{}, oauth.ErrUnavailable(err)
	}
	return jsonAnswer{status: http.StatusOK, body: opts}, nil
}

// registerFinish stores the new credential, named by the user.
func (p *Provider) registerFinish(ctx context.Context, r webauthnRequest) (jsonAnswer, error) {
	a, stop, err := p.accountFor(ctx, r)
	if err != nil || stop != nil {
		return deref2(stop), err
	}
	sd, ok := p.ceremony(&a.se.Ceremony)
	if !ok {
		return errCeremony, nil
	}
	if err := p.flowDB.UpdateSession(ctx, a.se); err != nil {
		return jsonAnswer{}, oauth.ErrUnavailable(err)
	}
	w, err := newWebauthnUser(a.u, a.factors)
	if err != nil {
		return jsonAnswer{}, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(r.Credential)
	if err != nil {
		return webauthnErr(http.StatusBadRequest, "invalid_request", "the security key's answer is malformed"), nil
	}
	cred, err := p.webauthn.CreateCredential(w, *sd, parsed)
	if err != nil {
		p.log.Info("webauthn registration refused", "user_id", a.u.ID, "error", err)
		return webauthnErr(http.StatusBadRequest, "invalid_request", "the security key's answer did not verify (is it for this site?)"), nil
	}
	name := r.Name
	if name == "" || len(name) > 64 {
		name = "Security key"
	}
	record, err := json.Marshal(cred)
	if err != nil {
		return jsonAnswer{}, err
	}
	now := p.now()
	f := &storage.Factor{ID: newJTI(), UserID: a.u.ID, Kind: storage.FactorWebAuthn, Name: name, Credential: record,
		CredentialID: cred.ID, Counter: uint64(cred.Authenticator.SignCount), CreatedAt: now}
	if err := p.mfaDB.CreateFactor(ctx, f); err != nil {
		return jsonAnswer{}, oauth.ErrUnavailable(err)
	}
	p.audit("mfa.enrolled", "user_id", a.u.ID, "kind", storage.FactorWebAuthn, "factor_id", f.ID, "passkey", cred.Flags.BackupEligible || p.cfg.Passkeys)
	p.metrics.mfa.WithLabelValues("enroll", "ok").Inc()
	return goTo(p.issuerPath + "/account"), nil
}

// accountFor is the signed-in account request a registration belongs to,
// after the account page's checks; a password-only session of a user with
// a second factor is sent to step up first.
func (p *Provider) accountFor(ctx context.Context, r webauthnRequest) (*accountCtx, *jsonAnswer, error) {
	se := p.liveSession(ctx, r.visit, p.now())
	switch {
	case se == nil:
		a := webauthnErr(http.StatusUnauthorized, "login_required", "your session has ended: sign in again")
		return nil, &a, nil
	case r.visit.crossSite:
		a := webauthnErr(http.StatusForbidden, "access_denied", "this request was sent from another site")
		return nil, &a, nil
	case !equalSecret(r.CSRF, accountCSRF(r.visit.session)):
		a := webauthnErr(http.StatusForbidden, "access_denied", "the request was not the one this server's page sent (CSRF check)")
		return nil, &a, nil
	}
	u, err := p.flowDB.GetUser(ctx, se.UserID)
	if err != nil {
		return nil, nil, oauth.ErrUnavailable(err)
	}
	factors, err := p.mfaDB.ListFactors(ctx, u.ID)
	if err != nil {
		return nil, nil, oauth.ErrUnavailable(err)
	}
	if secondFactors(factors) && !multiFactor(se.AMR) {
		a := webauthnErr(http.StatusForbidden, "interaction_required", "confirm your second factor first: reload the page")
		return nil, &a, nil
	}
	return &accountCtx{p: p, se: se, u: u, factors: factors, visit: r.visit}, nil, nil
}
