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

// flowStore is what the sign-in flow uses of the store.
type flowStore interface {
	CreateInteraction(ctx context.Context, i *storage.Interaction) error
	GetInteraction(ctx context.Context, id string) (*storage.Interaction, error)
	UpdateInteraction(ctx context.Context, i *storage.Interaction) error
	DeleteInteraction(ctx context.Context, id string) error
	CreateSession(ctx context.Context, s *storage.Session) error
	GetSession(ctx context.Context, h storage.Hash) (*storage.Session, error)
	UpdateSession(ctx context.Context, s *storage.Session) error
	ListSessions(ctx context.Context, userID string) ([]*storage.Session, error)
	PutConsent(ctx context.Context, c *storage.Consent) error
	GetConsent(ctx context.Context, userID, clientID string) (*storage.Consent, error)
	CreateAuthCode(ctx context.Context, c *storage.AuthCode) error
	GetUser(ctx context.Context, id string) (*storage.User, error)
}

// The sign-in flow: /authorize (OIDC Core §3.1.2), the sign-in and consent
// pages, RP-initiated logout, and the code they end in — without HTTP.
//
// A handler (browser.go) copies what it needs out of the request into a
// typed request — the parameters, and what the browser carries (visit) —
// calls one entry point here, and renders the outcome it gets back: a page,
// a redirect, or an authorization response (query or form_post). Nothing in
// these files sees a fasthttp.RequestCtx.
//
// An interaction (a pending authorization request) passes the steps of
// p.steps in order — authenticate, then consent; later a second factor —
// each of which either is satisfied or stops the interaction with the
// outcome that asks the user (or, under prompt=none, the protocol error).
// When all are satisfied, the interaction is issued its code. A new step is
// one value of type step and one line in New.

// visit is what a browser brings to the flow besides the parameters.
type visit struct {
	session   string // the session cookie's value
	binding   string // the browser-binding cookie's value
	ip        string
	crossSite bool // a form POST sent from another site (Origin, Sec-Fetch-Site)
}

// outcomeKind says how an outcome is rendered.
type outcomeKind int

const (
	showPage outcomeKind = iota // an HTML page
	redirect                    // 303 to location
	formPost                    // the form_post page to the client (OAuth 2.0 Form Post Response Mode)
)

// outcome is what the flow decided; browser.go renders it.
type outcome struct {
	kind       outcomeKind
	status     int    // of a page
	template   string // of a page
	data       page
	location   string // of a redirect
	cookies    []cookie
	retryAfter int // seconds, when set
}

// cookie is one the outcome sets; an empty value deletes it.
type cookie struct {
	name, value string
	expires     int64 // Unix seconds; 0: a browser-session cookie
}

func pageOutcome(status int, template string, data page) outcome {
	return outcome{kind: showPage, status: status, template: template, data: data}
}

func redirectTo(location string) outcome { return outcome{kind: redirect, location: location} }

// errorPage answers a request that cannot be redirected (unknown client,
// unregistered redirect URI, an expired interaction): never a redirect.
func errorPage(message string) outcome {
	return pageOutcome(http.StatusBadRequest, "message", page{Title: "This request cannot continue", Message: message})
}

// refused is a 403 page.
func refused(message string) outcome {
	return pageOutcome(http.StatusForbidden, "message", page{Title: "Request refused", Message: message})
}

// authError is an error sent back to the client's redirect URI (RFC 6749
// §4.1.2.1), once the client and redirect URI are known good.
type authError struct{ code, description string }

func (e *authError) Error() string { return e.code + ": " + e.description }

func authErr(code, description string) error { return &authError{code, description} }

// respond is an authorization response, or error, to the client's
// redirect URI with state and iss (RFC 9207), in the query or as an
// auto-submitted form.
func (p *Provider) respond(ia *storage.Interaction, fields map[string]string, err error) (outcome, error) {
	if ia.DeviceID != "" { // the verification page's sign-in has no redirect URI
		var ae *authError
		if errors.As(err, &ae) {
			return errorPage("Signing in for the device cannot continue: " + ae.description + "."), nil
		}
		return outcome{}, err
	}
	if fields == nil {
		fields = map[string]string{}
	}
	if err != nil {
		var ae *authError
		if !errors.As(err, &ae) {
			return outcome{}, err
		}
		fields["error"], fields["error_description"] = ae.code, ae.description
	}
	if ia.State != "" {
		fields["state"] = ia.State
	}
	fields["iss"] = p.cfg.Issuer
	if ia.ResponseMode == "form_post" {
		return outcome{kind: formPost, status: http.StatusOK, template: "form_post", data: page{Action: ia.RedirectURI, Fields: fields}}, nil
	}
	u, perr := url.Parse(ia.RedirectURI)
	if perr != nil {
		return errorPage("The application's return address is malformed."), nil
	}
	q := u.Query()
	for k, v := range fields {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return redirectTo(u.String()), nil
}

// step is one stage of the pipeline. pending reports whether the
// interaction still has to pass it and, if so, the outcome that asks for
// it.
type step struct {
	name    string
	pending func(ctx context.Context, ia *storage.Interaction, c *storage.Client) (outcome, bool, error)
}

// next moves an interaction on: to the first step it has not passed, or,
// past them all, to its code.
func (p *Provider) next(ctx context.Context, ia *storage.Interaction, c *storage.Client) (outcome, error) {
	for _, s := range p.steps {
		out, pending, err := s.pending(ctx, ia, c)
		if err != nil || pending {
			return out, err
		}
	}
	return p.issue(ctx, ia)
}

// authenticateStep: the user has signed in (or had a live session).
func (p *Provider) authenticateStep() step {
	return step{name: "authenticate", pending: func(ctx context.Context, ia *storage.Interaction, c *storage.Client) (outcome, bool, error) {
		if ia.UserID != "" {
			return outcome{}, false, nil
		}
		if slices.Contains(ia.Prompt, "none") {
			out, err := p.respond(ia, nil, authErr("login_required", "the user is not signed in"))
			return out, true, err
		}
		if up := p.hinted(ia, c); up != nil {
			out, err := p.redirectUpstream(ctx, ia, up)
			return out, true, err
		}
		return redirectTo(p.issuerPath + "/login?interaction=" + url.QueryEscape(ia.ID)), true, nil
	}}
}

// consentStep: the user has consented to what the client asks, now or
// before.
func (p *Provider) consentStep() step {
	return step{name: "consent", pending: func(ctx context.Context, ia *storage.Interaction, c *storage.Client) (outcome, bool, error) {
		need, err := p.needsConsent(ctx, c, ia)
		if err != nil || !need {
			return outcome{}, false, unavailable(err)
		}
		if slices.Contains(ia.Prompt, "none") {
			out, err := p.respond(ia, nil, authErr("consent_required", "the user has not consented"))
			return out, true, err
		}
		return redirectTo(p.issuerPath + "/consent?interaction=" + url.QueryEscape(ia.ID)), true, nil
	}}
}

// unavailable is ErrUnavailable for a store error, nil for nil.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	return oauth.ErrUnavailable(err)
}

// issue ends the interaction with its code (RFC 6749 §4.1.2).
func (p *Provider) issue(ctx context.Context, ia *storage.Interaction) (outcome, error) {
	if ia.DeviceID != "" { // the verification page's sign-in: the device's approval
		return p.approveDevice(ctx, ia)
	}
	if ia.Account { // the account page's own sign-in: no code, back to the page
		if err := p.flowDB.DeleteInteraction(ctx, ia.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return outcome{}, oauth.ErrUnavailable(err)
		}
		return redirectTo(p.issuerPath + "/account"), nil
	}
	now := p.now()
	code := randomToken()
	err := p.flowDB.CreateAuthCode(ctx, &storage.AuthCode{
		Hash: storage.HashOf(code), ClientID: ia.ClientID, UserID: ia.UserID, SessionID: ia.SessionID,
		RedirectURI: ia.RedirectURI, Scopes: ia.Scopes, Nonce: ia.Nonce, CodeChallenge: ia.CodeChallenge,
		AuthTime: ia.AuthTime, AMR: ia.AMR, FamilyID: newJTI(), CreatedAt: now, ExpiresAt: now.Add(p.cfg.CodeTTL),
	})
	if err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	if err := p.rememberLogoutClient(ctx, ia.ClientID, ia.UserID, ia.SessionID, ia.Scopes); err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	if err := p.flowDB.DeleteInteraction(ctx, ia.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	return p.respond(ia, map[string]string{"code": code}, nil)
}

// interactionRequest is a sign-in or consent page's request.
type interactionRequest struct {
	id, csrf string
	post     bool
	visit    visit
}

// resume loads the live interaction a sign-in or consent request belongs
// to, with its client, after the checks every such request passes: the
// form comes from this site, from the browser that started the
// interaction, with its CSRF token. stop is the outcome that ends the
// request instead, when one fails.
func (p *Provider) resume(ctx context.Context, r interactionRequest) (ia *storage.Interaction, c *storage.Client, stop *outcome, err error) {
	if r.post && r.visit.crossSite {
		p.log.Warn("cross-site form refused", "ip", r.visit.ip)
		out := refused("This form was sent from another site. Go back to the application and start again.")
		return nil, nil, &out, nil
	}
	ia, err = p.flowDB.GetInteraction(ctx, r.id)
	if errors.Is(err, storage.ErrNotFound) || r.id == "" || err == nil && (ia.Pushed || ia.Device != nil) {
		out := errorPage("This sign-in request has expired. Go back to the application and start again.")
		return nil, nil, &out, nil
	}
	if err != nil {
		return nil, nil, nil, oauth.ErrUnavailable(err)
	}
	if !sameBrowser(r.visit, ia) {
		p.log.Warn("sign-in step refused: not the browser that started it", "interaction_client", ia.ClientID, "ip", r.visit.ip)
		out := refused("This sign-in was started in another browser. Go back to the application and start again.")
		return nil, nil, &out, nil
	}
	if r.post && !equalSecret(r.csrf, ia.CSRF) {
		out := refused("The form was not the one this server sent (CSRF check). Go back to the application and start again.")
		return nil, nil, &out, nil
	}
	if ia.Account {
		return ia, accountClient, nil, nil
	}
	if c, err = p.client(ctx, ia.ClientID); err != nil {
		return nil, nil, nil, oauth.ErrUnavailable(err)
	}
	return ia, c, nil, nil
}
