package provider

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/oauth"
)

// The browser endpoints' handlers: each copies the request into the
// flow's typed request, calls the flow, and renders its outcome.

// visitOf is what the browser brings, copied out of the request.
func (p *Provider) visitOf(rc *fasthttp.RequestCtx) visit {
	return visit{
		session:   string(rc.Request.Header.Cookie(p.cookieName())),
		binding:   string(rc.Request.Header.Cookie(p.browserCookieName())),
		ip:        rc.RemoteIP().String(),
		crossSite: rc.IsPost() && p.crossSite(string(rc.Request.Header.Peek("Sec-Fetch-Site")), string(rc.Request.Header.Peek("Origin"))),
	}
}

// params copies a request's query (GET) or form (POST) into url.Values;
// repeated is set when a parameter repeats (RFC 6749 §3.1).
func params(rc *fasthttp.RequestCtx) (v url.Values, repeatedErr error, err error) {
	args := rc.QueryArgs()
	if rc.IsPost() {
		f, err := readForm(rc)
		if err != nil {
			return nil, nil, err
		}
		args = f.args
	}
	if name, dup := repeated(args); dup {
		repeatedErr = oauth.ErrInvalidRequest("parameter %q appears more than once", name)
	}
	v = url.Values{}
	args.VisitAll(func(k, val []byte) { v.Add(string(k), string(val)) })
	return v, repeatedErr, nil
}

func (p *Provider) authorizeHandler(rc *fasthttp.RequestCtx) error {
	v, dup, err := params(rc)
	if err != nil {
		return p.render(rc, outcome{}, err)
	}
	ctx, cancel := requestCtx()
	defer cancel()
	out, err := p.authorize(ctx, authorizeRequest{params: v, malformed: dup, visit: p.visitOf(rc)})
	return p.render(rc, out, err)
}

// interactionOf reads the interaction a sign-in or consent request names:
// in the query (GET) or the form (POST).
func (p *Provider) interactionOf(rc *fasthttp.RequestCtx) (interactionRequest, form, error) {
	r := interactionRequest{id: string(rc.QueryArgs().Peek("interaction")), visit: p.visitOf(rc)}
	var f form
	if rc.IsPost() {
		var err error
		if f, err = readForm(rc); err != nil {
			return r, f, err
		}
		r.id, r.csrf, r.post = f.str("interaction"), f.str("csrf"), true
	}
	return r, f, nil
}

// interactionHandler serves a step's page: show on GET, submit on POST
// (with the form's own fields).
func (p *Provider) interactionHandler(show func(context.Context, interactionRequest) (outcome, error),
	submit func(context.Context, interactionRequest, form) (outcome, error)) oauth.HandlerFunc {
	return func(rc *fasthttp.RequestCtx) error {
		r, f, err := p.interactionOf(rc)
		if err != nil {
			return p.render(rc, outcome{}, err)
		}
		ctx, cancel := requestCtx()
		defer cancel()
		var out outcome
		if r.post {
			out, err = submit(ctx, r, f)
		} else {
			out, err = show(ctx, r)
		}
		return p.render(rc, out, err)
	}
}

func (p *Provider) loginHandler() oauth.HandlerFunc {
	return p.interactionHandler(p.loginPage, func(ctx context.Context, r interactionRequest, f form) (outcome, error) {
		return p.login(ctx, loginRequest{interactionRequest: r, username: f.str("username"), password: f.str("password")})
	})
}

// startUpstreamHandler is a sign-in page's connector button.
func (p *Provider) startUpstreamHandler(rc *fasthttp.RequestCtx) error {
	r, _, err := p.interactionOf(rc)
	if err != nil {
		return p.render(rc, outcome{}, err)
	}
	id, _ := rc.UserValue("connector").(string)
	ctx, cancel := requestCtx()
	defer cancel()
	out, err := p.startUpstream(ctx, r, id)
	return p.render(rc, out, err)
}

// callbackHandler is an upstream connector's redirect URI.
func (p *Provider) callbackHandler(rc *fasthttp.RequestCtx) error {
	q := rc.QueryArgs()
	id, _ := rc.UserValue("connector").(string)
	ctx, cancel := requestCtx()
	defer cancel()
	out, err := p.upstreamCallback(ctx, callbackRequest{connector: id, state: string(q.Peek("state")), code: string(q.Peek("code")),
		iss: string(q.Peek("iss")), errCode: string(q.Peek("error")), errDescription: string(q.Peek("error_description")),
		visit: p.visitOf(rc)})
	return p.render(rc, out, err)
}

func (p *Provider) mfaHandler() oauth.HandlerFunc {
	return p.interactionHandler(p.mfaPage, func(ctx context.Context, r interactionRequest, f form) (outcome, error) {
		return p.mfaSubmit(ctx, mfaRequest{interactionRequest: r, method: f.str("method"), code: f.str("code")})
	})
}

// accountHandler serves the account page and its forms.
func (p *Provider) accountHandler(rc *fasthttp.RequestCtx) error {
	r := accountRequest{visit: p.visitOf(rc), post: rc.IsPost(), field: func(string) string { return "" }}
	if r.post {
		f, err := readForm(rc)
		if err != nil {
			return p.render(rc, outcome{}, err)
		}
		r.action, r.csrf, r.field = cmp.Or(f.str("action"), f.str("method")), f.str("csrf"), f.str
	}
	ctx, cancel := requestCtx()
	defer cancel()
	out, err := p.account(ctx, r)
	return p.render(rc, out, err)
}

// webauthnHandler serves one of webauthn.js's JSON endpoints.
func (p *Provider) webauthnHandler(fn func(context.Context, webauthnRequest) (jsonAnswer, error)) oauth.HandlerFunc {
	return func(rc *fasthttp.RequestCtx) error {
		var r webauthnRequest
		if p.webauthn == nil {
			return p.writeJSON(rc, noWebAuthn)
		}
		ct := string(rc.Request.Header.ContentType())
		if mt, _, _ := strings.Cut(ct, ";"); strings.TrimSpace(mt) != "application/json" {
			return p.writeJSON(rc, webauthnErr(http.StatusUnsupportedMediaType, "invalid_request", "the body must be application/json"))
		}
		if err := json.Unmarshal(rc.PostBody(), &r); err != nil {
			return p.writeJSON(rc, webauthnErr(http.StatusBadRequest, "invalid_request", "the body is not the JSON this endpoint reads"))
		}
		r.visit = p.visitOf(rc)
		ctx, cancel := requestCtx()
		defer cancel()
		a, err := fn(ctx, r)
		if err != nil {
			e := oauth.As(err)
			if e.Status >= 500 {
				p.log.Error("request failed", "request_id", string(rc.Response.Header.Peek("X-Request-Id")), "error", err)
			}
			a = webauthnErr(e.Status, e.Code, e.Description)
			if e.Status == http.StatusServiceUnavailable {
				a.retryAfter = 2
			}
		}
		return p.writeJSON(rc, a)
	}
}

// writeJSON writes a JSON answer with its cookies.
func (p *Provider) writeJSON(rc *fasthttp.RequestCtx, a jsonAnswer) error {
	for _, c := range a.cookies {
		p.writeCookie(rc, c)
	}
	if a.retryAfter > 0 {
		rc.Response.Header.Set("Retry-After", strconv.Itoa(a.retryAfter))
	}
	b, err := json.Marshal(a.body)
	if err != nil {
		return err
	}
	rc.Response.Header.Set("Cache-Control", "no-store")
	rc.SetStatusCode(a.status)
	rc.SetContentType("application/json")
	rc.SetBody(b)
	return nil
}

// continueHandler moves a signed-in interaction on (after a WebAuthn
// ceremony, whose script navigates here).
func (p *Provider) continueHandler(rc *fasthttp.RequestCtx) error {
	r, _, err := p.interactionOf(rc)
	if err != nil {
		return p.render(rc, outcome{}, err)
	}
	ctx, cancel := requestCtx()
	defer cancel()
	ia, c, stop, err := p.resume(ctx, r)
	if stop != nil || err != nil {
		return p.render(rc, deref(stop), err)
	}
	out, err := p.next(ctx, ia, c)
	return p.render(rc, out, err)
}

// webauthnScript serves web/webauthn.js.
func (p *Provider) webauthnScript(rc *fasthttp.RequestCtx) error {
	rc.SetContentType("text/javascript; charset=utf-8")
	rc.Response.Header.Set("Cache-Control", "public, max-age=3600")
	rc.Response.Header.Set("X-Content-Type-Options", "nosniff")
	rc.SetBody(webauthnJS)
	return nil
}

func (p *Provider) consentHandler() oauth.HandlerFunc {
	return p.interactionHandler(p.consentPage, func(ctx context.Context, r interactionRequest, f form) (outcome, error) {
		return p.consent(ctx, consentRequest{interactionRequest: r, allow: f.str("decision") == "allow"})
	})
}

func (p *Provider) endSessionHandler(rc *fasthttp.RequestCtx) error {
	v, _, err := params(rc)
	if err != nil {
		return p.render(rc, outcome{}, err)
	}
	ctx, cancel := requestCtx()
	defer cancel()
	out, err := p.endSession(ctx, endSessionRequest{params: v, query: rc.QueryArgs().String(), post: rc.IsPost(),
		visit: p.visitOf(rc)})
	return p.render(rc, out, err)
}

// render writes an outcome: its cookies, then the page, redirect or
// form_post. An error becomes an HTML page with its status (a 503 with
// Retry-After; a 5xx's cause logged under the request ID, which the page
// shows, and never shown itself).
func (p *Provider) render(rc *fasthttp.RequestCtx, out outcome, err error) error {
	if err != nil {
		e := oauth.As(err)
		id := string(rc.Response.Header.Peek("X-Request-Id"))
		msg := e.Description
		switch {
		case e.Status == http.StatusServiceUnavailable:
			out.retryAfter = 2
			msg = "The sign-in service is briefly unavailable. Wait a moment, then try again."
		case e.Status >= 500:
			msg = "Something went wrong on our side. If it happens again, quote this reference: " + id
		}
		if e.Status >= 500 {
			p.log.Error("request failed", "request_id", id, "error", err)
		}
		out = outcome{kind: showPage, status: e.Status, template: "message", data: page{Title: "This request cannot continue", Message: msg},
			retryAfter: out.retryAfter}
	}
	for _, c := range out.cookies {
		p.writeCookie(rc, c)
	}
	if out.retryAfter > 0 {
		rc.Response.Header.Set("Retry-After", strconv.Itoa(out.retryAfter))
	}
	switch out.kind {
	case redirect:
		rc.Response.Header.Set("Cache-Control", "no-store")
		rc.Redirect(out.location, http.StatusSeeOther)
		return nil
	default: // a page, or the form_post page
		return p.renderPage(rc, out.status, out.template, out.data)
	}
}

// writeCookie sets one of the provider's cookies: HttpOnly, SameSite=Lax,
// Secure on an https issuer; an empty value deletes it.
func (p *Provider) writeCookie(rc *fasthttp.RequestCtx, c cookie) {
	fc := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(fc)
	fc.SetKey(c.name)
	fc.SetValue(c.value)
	fc.SetPath("/")
	fc.SetHTTPOnly(true)
	fc.SetSameSite(fasthttp.CookieSameSiteLaxMode)
	fc.SetSecure(p.https)
	switch {
	case c.value == "":
		fc.SetExpire(fasthttp.CookieExpireDelete)
	case c.expires > 0:
		fc.SetExpire(time.Unix(c.expires, 0))
	}
	rc.Response.Header.SetCookie(fc)
}
