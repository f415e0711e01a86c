package provider

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// The second-factor step: after sign-in, a client that requires MFA (or
// asks for the MFA level in acr_values) waits until the session has passed
// a second factor. A session signed in earlier with a password alone is
// stepped up here — the user gives the second factor, not the password
// again. A user with no second factor sets up an authenticator app here,
// unless operators keep enrollment to the account page.

func (p *Provider) mfaStep() step {
	return step{name: "mfa", pending: func(ctx context.Context, ia *storage.Interaction, c *storage.Client) (outcome, bool, error) {
		if !wantsMFA(ia, c) || multiFactor(ia.AMR) {
			return outcome{}, false, nil
		}
		if slices.Contains(ia.Prompt, "none") {
			out, err := p.respond(ia, nil, authErr("interaction_required", "the session needs a second factor"))
			return out, true, err
		}
		return redirectTo(p.mfaURL(ia)), true, nil
	}}
}

func (p *Provider) mfaURL(ia *storage.Interaction) string {
	return p.issuerPath + "/mfa?interaction=" + url.QueryEscape(ia.ID)
}

// mfaRequest is the second-factor page's form.
type mfaRequest struct {
	interactionRequest
	method string // totp, recovery, enroll
	code   string
}

// mfaContext is a second-factor request past its checks.
type mfaContext struct {
	ia      *storage.Interaction
	c       *storage.Client
	se      *storage.Session
	u       *storage.User
	factors []*storage.Factor
}

// mfaResume loads what a second-factor request works on. done is set when
// the interaction needs no second factor (any more): it moves on.
func (p *Provider) mfaResume(ctx context.Context, r interactionRequest) (m mfaContext, stop *outcome, err error) {
	ia, c, stop, err := p.resume(ctx, r)
	if stop != nil || err != nil {
		return m, stop, err
	}
	m.ia, m.c = ia, c
	if ia.UserID == "" || !wantsMFA(ia, c) || multiFactor(ia.AMR) {
		out, err := p.next(ctx, ia, c)
		return m, &out, err
	}
	if m.se = p.sessionHere(ctx, r.visit, ia); m.se == nil {
		out := refused("This sign-in belongs to another browser session. Go back to the application and start again.")
		return m, &out, nil
	}
	if m.u, err = p.flowDB.GetUser(ctx, ia.UserID); err != nil {
		return m, nil, oauth.ErrUnavailable(err)
	}
	if m.factors, err = p.mfaDB.ListFactors(ctx, ia.UserID); err != nil {
		return m, nil, oauth.ErrUnavailable(err)
	}
	return m, nil, nil
}

// mfaPage asks for the second factor, or sets one up.
func (p *Provider) mfaPage(ctx context.Context, r interactionRequest) (outcome, error) {
	m, stop, err := p.mfaResume(ctx, r)
	if stop != nil || err != nil {
		return deref(stop), err
	}
	if !secondFactors(m.factors) {
		return p.enrollPage(ctx, m, "")
	}
	return pageOutcome(http.StatusOK, "mfa", p.mfaForm(m, "")), nil
}

func (p *Provider) mfaForm(m mfaContext, msg string) page {
	return page{Title: "Two-step verification", Action: p.issuerPath + "/mfa", ClientName: m.c.Name, Interaction: m.ia.ID,
		CSRF: m.ia.CSRF, Error: msg, HasTOTP: hasKind(m.factors, storage.FactorTOTP),
		HasWebAuthn: hasKind(m.factors, storage.FactorWebAuthn), HasRecovery: hasKind(m.factors, storage.FactorRecovery)}
}

// enrollPage starts (or shows again) setting up an authenticator app.
func (p *Provider) enrollPage(ctx context.Context, m mfaContext, msg string) (outcome, error) {
	if p.cfg.MFAEnrollOnAccountPage {
		return refused("This application needs a second factor, and your account has none. Set one up on your account page, then try again."), nil
	}
	_, setup, ok := p.pendingTOTP("interaction:"+m.ia.ID, m.ia.Ceremony)
	if !ok {
		cer, s, err := p.newTOTP(m.u, "interaction:"+m.ia.ID)
		if err != nil {
			return outcome{}, err
		}
		m.ia.Ceremony, setup = cer, s
		if err := p.flowDB.UpdateInteraction(ctx, m.ia); err != nil {
			return outcome{}, oauth.ErrUnavailable(err)
		}
	}
	status := http.StatusOK
	if msg != "" {
		status = http.StatusUnauthorized
	}
	return pageOutcome(status, "enroll_totp", page{Title: "Set up two-step verification", Action: p.issuerPath + "/mfa",
		ClientName: m.c.Name, Interaction: m.ia.ID, CSRF: m.ia.CSRF, Error: msg, TOTP: &setup}), nil
}

// mfaSubmit checks a second factor (or a first code of a new one).
func (p *Provider) mfaSubmit(ctx context.Context, r mfaRequest) (outcome, error) {
	m, stop, err := p.mfaResume(ctx, r.interactionRequest)
	if stop != nil || err != nil {
		return deref(stop), err
	}
	keys := p.mfaKeys(m.u.ID, r.visit.ip)
	wait, ok := p.limiter.reserve(keys...)
	if !ok {
		p.log.Warn("second factor refused: too many attempts", "user_id", m.u.ID, "ip", r.visit.ip)
		p.metrics.mfa.WithLabelValues(r.method, "limited").Inc()
		out := pageOutcome(http.StatusTooManyRequests, "mfa", p.mfaForm(m, "Too many wrong codes. Wait a minute and try again."))
		out.retryAfter = int(wait.Seconds() + 1)
		return out, nil
	}
	var passed bool
	var codes []string
	switch r.method {
	case "totp":
		passed, err = p.checkTOTP(ctx, m.factors, r.code)
	case "recovery":
		passed, err = p.useRecovery(ctx, m.u, m.factors, r.code)
	case "enroll":
		passed, codes, err = p.confirmEnrollment(ctx, m, r.code)
	default:
		p.limiter.done(false, keys)
		return errorPage("The form did not say which second factor it sends."), nil
	}
	p.limiter.settle(keys, passed, !passed && (err == nil || errors.Is(err, errReplayed)))
	if errors.Is(err, errReplayed) {
		p.log.Info("second factor refused: a code used before", "user_id", m.u.ID, "method", r.method, "ip", r.visit.ip)
		p.metrics.mfa.WithLabelValues(r.method, "replayed").Inc()
		return pageOutcome(http.StatusUnauthorized, "mfa", p.mfaForm(m, "That code was used already. Wait for the next one.")), nil
	}
	if err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	if !passed {
		p.log.Info("second factor refused", "user_id", m.u.ID, "method", r.method, "ip", r.visit.ip)
		p.metrics.mfa.WithLabelValues(r.method, "bad_code").Inc()
		if r.method == "enroll" {
			return p.enrollPage(ctx, m, "That code is not right. Check the time on your phone, and type the code the app shows now.")
		}
		return pageOutcome(http.StatusUnauthorized, "mfa", p.mfaForm(m, "That code is not right.")), nil
	}
	p.metrics.mfa.WithLabelValues(r.method, "ok").Inc()
	method := "otp" // a TOTP or recovery code is a one-time password (RFC 8176)
	sessionCookie, err := p.stepUp(ctx, m.ia, m.se, method)
	if err != nil {
		return outcome{}, err
	}
	if codes != nil { // shown once, before the flow moves on
		out := pageOutcome(http.StatusOK, "recovery_codes", page{Title: "Save your recovery codes", Codes: codes, Next: p.mfaURL(m.ia)})
		out.cookies = append(out.cookies, sessionCookie)
		return out, nil
	}
	out, err := p.next(ctx, m.ia, m.c)
	out.cookies = append(out.cookies, sessionCookie)
	return out, err
}

// confirmEnrollment stores the authenticator app set up in this sign-in,
// once its first code is right, and gives the user recovery codes.
func (p *Provider) confirmEnrollment(ctx context.Context, m mfaContext, code string) (bool, []string, error) {
	if p.cfg.MFAEnrollOnAccountPage || secondFactors(m.factors) {
		return false, nil, nil // a factor exists: it must be used, not replaced
	}
	secret, _, ok := p.pendingTOTP("interaction:"+m.ia.ID, m.ia.Ceremony)
	if !ok {
		return false, nil, nil
	}
	passed, err := p.enrollTOTP(ctx, m.u, secret, code, "Authenticator app")
	if !passed || err != nil {
		return passed, nil, err
	}
	m.ia.Ceremony = nil
	codes, err := p.newRecoveryCodes(ctx, m.u)
	return true, codes, err
}

// stepUp records a passed second factor in the session and the
// interaction. The session keeps its ID but gets a new cookie secret: its
// privileges grew (OWASP session management).
func (p *Provider) stepUp(ctx context.Context, ia *storage.Interaction, se *storage.Session, method string) (cookie, error) {
	secret := randomToken()
	se.AMR, se.Hash = withFactor(se.AMR, method), storage.HashOf(secret)
	if err := p.flowDB.UpdateSession(ctx, se); err != nil {
		return cookie{}, oauth.ErrUnavailable(err)
	}
	ia.AMR = se.AMR
	if err := p.flowDB.UpdateInteraction(ctx, ia); err != nil {
		return cookie{}, oauth.ErrUnavailable(err)
	}
	return cookie{name: p.cookieName(), value: secret, expires: se.ExpiresAt.Unix()}, nil
}

// mfaKeys are what one second-factor attempt counts against: the user
// (six digits are guessable without a limit) and the client IP, shared
// with password attempts.
func (p *Provider) mfaKeys(userID, ip string) []limitKey {
	n, w := p.cfg.LoginLimit, p.cfg.LoginWindow
	return []limitKey{
		{"mfa:" + userID, limitRule{n, w}},
		{"ip:" + ip, limitRule{4 * n, w}},
	}
}

// upstreamAMR is how a sign-in at up counts here: "fed", plus "mfa" when
// the connector trusts the upstream's word that it did MFA.
func upstreamAMR(up *upstream, amr []string, acr string) []string {
	out := []string{"fed"}
	if up.cfg.TrustUpstreamMFA && (slices.Contains(amr, "mfa") || acr != "" && slices.Contains(up.cfg.UpstreamMFAACRValues, acr)) {
		out = append(out, "mfa")
	}
	return out
}
