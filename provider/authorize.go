package provider

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/storage"
)

// The browser flows: /authorize (OIDC Core §3.1.2), the sign-in and
// consent pages, and the code they end in.

// authError is an error sent back to the client's redirect URI (RFC 6749
// §4.1.2.1), once the client and redirect URI are known good.
type authError struct{ code, description string }

func (e *authError) Error() string { return e.code + ": " + e.description }

func authErr(code, description string) error { return &authError{code, description} }

// params reads the authorization request from the query (GET) or the form
// (POST), refusing repeated parameters (RFC 6749 §3.1).
func authorizeParams(ctx *fasthttp.RequestCtx) (*fasthttp.Args, error) {
	args := ctx.QueryArgs()
	if ctx.IsPost() {
		f, err := readForm(ctx)
		if err != nil {
			return nil, err
		}
		args = f.args
	}
	if name, dup := repeated(args); dup {
		return args, ErrInvalidRequest("parameter %q appears more than once", name)
	}
	return args, nil
}

// authorize is the authorization endpoint.
func (p *Provider) authorize(ctx *fasthttp.RequestCtx) error {
	args, perr := authorizeParams(ctx)
	if args == nil {
		return perr
	}
	get := func(k string) string { return string(args.Peek(k)) }
	sctx, cancel := requestCtx()
	defer cancel()

	// The client and the redirect URI first: until both are known good,
	// nothing is redirected anywhere.
	client, err := p.client(sctx, get("client_id"))
	if errors.Is(err, storage.ErrNotFound) || get("client_id") == "" {
		return p.errorPage(ctx, "The application asking you to sign in is not registered here.")
	} else if err != nil {
		return ErrUnavailable(err)
	}
	redirectURI := get("redirect_uri")
	if redirectURI == "" && len(client.RedirectURIs) == 1 {
		redirectURI = client.RedirectURIs[0]
	}
	public := client.TokenEndpointAuthMethod == authNone
	if redirectURI == "" || !redirectAllowed(client.RedirectURIs, redirectURI, public) {
		return p.errorPage(ctx, "The address the application asked to return to is not registered for it.")
	}
	mode := get("response_mode")
	if mode == "" {
		mode = "query"
	}
	ia := &storage.Interaction{ClientID: client.ID, RedirectURI: redirectURI, ResponseMode: mode, State: get("state")}
	if mode != "query" && mode != "form_post" {
		ia.ResponseMode = "query"
		return p.respond(ctx, ia, nil, authErr("invalid_request", "response_mode must be query or form_post"))
	}
	if perr != nil {
		return p.respond(ctx, ia, nil, authErr("invalid_request", asError(perr).Description))
	}
	if err := p.checkRequest(client, args, ia); err != nil {
		return p.respond(ctx, ia, nil, err)
	}

	if !p.pending.allow(ctx.RemoteIP().String()) {
		p.log.Warn("authorization requests refused: too many pending from one address", "ip", ctx.RemoteIP().String())
		return p.respond(ctx, ia, nil, authErr("temporarily_unavailable", "too many pending sign-ins from this address; try again later"))
	}
	now := p.now()
	ia.ID, ia.CSRF = randomToken(), randomToken()
	ia.CreatedAt, ia.ExpiresAt = now, now.Add(p.cfg.InteractionTTL)
	ia.BrowserHash = p.bindBrowser(ctx)
	// A live session that satisfies prompt and max_age signs the user in.
	if se := p.liveSession(sctx, ctx, now); se != nil && !slices.Contains(ia.Prompt, "login") &&
		(ia.MaxAge < 0 || now.Sub(se.AuthTime) <= time.Duration(ia.MaxAge)*time.Second) {
		ia.UserID, ia.SessionID, ia.AuthTime, ia.AMR = se.UserID, se.ID, se.AuthTime, se.AMR
	}
	if ia.UserID == "" && slices.Contains(ia.Prompt, "none") {
		return p.respond(ctx, ia, nil, authErr("login_required", "the user is not signed in"))
	}
	if err := p.store.CreateInteraction(sctx, ia); err != nil {
		// The client and its redirect URI are trusted: tell it (RFC 6749 §4.1.2.1).
		p.log.Error("authorization request not stored", "client_id", client.ID, "error", err)
		return p.respond(ctx, ia, nil, authErr("temporarily_unavailable", "the authorization server cannot take requests now; try again shortly"))
	}
	return p.next(ctx, sctx, client, ia)
}

// checkRequest validates the rest of an authorization request into ia.
func (p *Provider) checkRequest(c *storage.Client, args *fasthttp.Args, ia *storage.Interaction) error {
	get := func(k string) string { return string(args.Peek(k)) }
	switch {
	case args.Has("request"):
		return authErr("request_not_supported", "request objects are not supported")
	case args.Has("request_uri"):
		return authErr("request_uri_not_supported", "request_uri is not supported")
	case get("response_type") != "code":
		return authErr("unsupported_response_type", "response_type must be code")
	case !slices.Contains(c.GrantTypes, grantAuthorizationCode):
		return authErr("unauthorized_client", "this client may not use the authorization code flow")
	}
	scopes, err := parseScope(get("scope"))
	if err != nil {
		return authErr("invalid_scope", asError(err).Description)
	}
	for _, s := range scopes {
		if !slices.Contains(c.Scopes, s) {
			return authErr("invalid_scope", "scope "+strconv.Quote(s)+" is not allowed for this client")
		}
	}
	ia.Scopes = scopes
	ia.Nonce, ia.LoginHint = get("nonce"), get("login_hint")
	for name, v := range map[string]string{"state": ia.State, "nonce": ia.Nonce, "login_hint": ia.LoginHint} {
		if len(v) > maxParamLen {
			return authErr("invalid_request", name+" is longer than "+strconv.Itoa(maxParamLen)+" bytes")
		}
	}

	// PKCE (RFC 7636): S256 only; required for public clients.
	challenge, method := get("code_challenge"), get("code_challenge_method")
	switch {
	case challenge == "" && (c.TokenEndpointAuthMethod == authNone || p.cfg.RequirePKCE):
		return authErr("invalid_request", "code_challenge is required (PKCE, S256)")
	case challenge != "" && method != "S256":
		return authErr("invalid_request", "code_challenge_method must be S256")
	case challenge != "" && !validVerifier(challenge):
		return authErr("invalid_request", "code_challenge is not a base64url SHA-256")
	}
	ia.CodeChallenge = challenge

	if pr := get("prompt"); pr != "" {
		ia.Prompt = strings.Fields(pr)
		for _, v := range ia.Prompt {
			if v != "none" && v != "login" && v != "consent" && v != "select_account" {
				return authErr("invalid_request", "unknown prompt value "+strconv.Quote(v))
			}
		}
		if slices.Contains(ia.Prompt, "none") && len(ia.Prompt) > 1 {
			return authErr("invalid_request", "prompt=none cannot be combined with other values")
		}
	}
	ia.MaxAge = -1
	if ma := get("max_age"); ma != "" {
		n, err := strconv.Atoi(ma)
		if err != nil || n < 0 {
			return authErr("invalid_request", "max_age must be a non-negative number of seconds")
		}
		ia.MaxAge = n
	}
	return nil
}

// maxParamLen bounds the free-form parameters an unauthenticated
// authorization request stores (state, nonce, login_hint).
const maxParamLen = 2048

// validVerifier is RFC 7636 §4.1's code_verifier (and an S256 challenge's)
// form: 43 to 128 unreserved characters.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// next moves an interaction on: to the sign-in page, the consent page, or
// the code.
func (p *Provider) next(ctx *fasthttp.RequestCtx, sctx context.Context, c *storage.Client, ia *storage.Interaction) error {
	if ia.UserID == "" {
		ctx.Redirect(p.issuerPath+"/login?interaction="+url.QueryEscape(ia.ID), http.StatusSeeOther)
		return nil
	}
	need, err := p.needsConsent(sctx, c, ia)
	if err != nil {
		return ErrUnavailable(err)
	}
	if need {
		if slices.Contains(ia.Prompt, "none") {
			return p.respond(ctx, ia, nil, authErr("consent_required", "the user has not consented"))
		}
		ctx.Redirect(p.issuerPath+"/consent?interaction="+url.QueryEscape(ia.ID), http.StatusSeeOther)
		return nil
	}
	return p.finish(ctx, sctx, ia)
}

// needsConsent: first-party clients skip consent, except for
// offline_access (OIDC Core §11) and prompt=consent; others need a
// remembered consent covering every scope asked for.
func (p *Provider) needsConsent(ctx context.Context, c *storage.Client, ia *storage.Interaction) (bool, error) {
	if slices.Contains(ia.Prompt, "consent") {
		return true, nil
	}
	if c.FirstParty && !slices.Contains(ia.Scopes, "offline_access") {
		return false, nil
	}
	con, err := p.store.GetConsent(ctx, ia.UserID, c.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return len(ia.Scopes) > 0 || !c.FirstParty, nil
	}
	if err != nil {
		return false, err
	}
	for _, s := range ia.Scopes {
		if !slices.Contains(con.Scopes, s) {
			return true, nil
		}
	}
	return false, nil
}

// finish issues the code and sends it to the client.
func (p *Provider) finish(ctx *fasthttp.RequestCtx, sctx context.Context, ia *storage.Interaction) error {
	now := p.now()
	code := randomToken()
	err := p.store.CreateAuthCode(sctx, &storage.AuthCode{
		Hash: storage.HashOf(code), ClientID: ia.ClientID, UserID: ia.UserID, SessionID: ia.SessionID,
		RedirectURI: ia.RedirectURI, Scopes: ia.Scopes, Nonce: ia.Nonce, CodeChallenge: ia.CodeChallenge,
		AuthTime: ia.AuthTime, AMR: ia.AMR, FamilyID: newJTI(), CreatedAt: now, ExpiresAt: now.Add(p.cfg.CodeTTL),
	})
	if err != nil {
		return ErrUnavailable(err)
	}
	if err := p.store.DeleteInteraction(sctx, ia.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return ErrUnavailable(err)
	}
	return p.respond(ctx, ia, map[string]string{"code": code}, nil)
}

// respond sends an authorization response, or error, to the client's
// redirect URI with state and iss (RFC 9207), in the query or as an
// auto-submitted form (OAuth 2.0 Form Post Response Mode).
func (p *Provider) respond(ctx *fasthttp.RequestCtx, ia *storage.Interaction, fields map[string]string, err error) error {
	if fields == nil {
		fields = map[string]string{}
	}
	if err != nil {
		var ae *authError
		if !errors.As(err, &ae) {
			return err
		}
		fields["error"], fields["error_description"] = ae.code, ae.description
	}
	if ia.State != "" {
		fields["state"] = ia.State
	}
	fields["iss"] = p.cfg.Issuer
	if ia.ResponseMode == "form_post" {
		return p.render(ctx, http.StatusOK, "form_post", page{Action: ia.RedirectURI, Fields: fields})
	}
	u, perr := url.Parse(ia.RedirectURI)
	if perr != nil {
		return p.errorPage(ctx, "The application's return address is malformed.")
	}
	q := u.Query()
	for k, v := range fields {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Redirect(u.String(), http.StatusSeeOther)
	return nil
}

// interaction loads the interaction a sign-in or consent form belongs to
// and checks its CSRF token; forms without a live one get a page, not a
// redirect.
func (p *Provider) interaction(ctx *fasthttp.RequestCtx, sctx context.Context, id, csrf string, post bool) (*storage.Interaction, error) {
	ia, err := p.store.GetInteraction(sctx, id)
	if errors.Is(err, storage.ErrNotFound) || id == "" {
		return nil, p.errorPage(ctx, "This sign-in request has expired. Go back to the application and start again.")
	}
	if err != nil {
		return nil, ErrUnavailable(err)
	}
	if !p.sameBrowser(ctx, ia) {
		p.log.Warn("sign-in step refused: not the browser that started it", "interaction_client", ia.ClientID,
			"ip", ctx.RemoteIP().String())
		return nil, p.render(ctx, http.StatusForbidden, "message", page{Title: "Request refused",
			Message: "This sign-in was started in another browser. Go back to the application and start again."})
	}
	if post && subtle.ConstantTimeCompare([]byte(csrf), []byte(ia.CSRF)) != 1 {
		return nil, p.render(ctx, http.StatusForbidden, "message", page{Title: "Request refused",
			Message: "The form was not the one this server sent (CSRF check). Go back to the application and start again."})
	}
	return ia, nil
}

// step is a handler of the sign-in or consent page: it gets the live
// interaction (its CSRF token checked, for a POST) and its client.
type step func(ctx *fasthttp.RequestCtx, sctx context.Context, f form, ia *storage.Interaction, c *storage.Client) error

func (p *Provider) interactionStep(fn step) handlerFunc {
	return func(ctx *fasthttp.RequestCtx) error {
		var f form
		id, csrf := string(ctx.QueryArgs().Peek("interaction")), ""
		if ctx.IsPost() {
			if p.crossSite(ctx) {
				return p.refuseCrossSite(ctx)
			}
			var err error
			if f, err = readForm(ctx); err != nil {
				return err
			}
			id, csrf = f.str("interaction"), f.str("csrf")
		}
		sctx, cancel := requestCtx()
		defer cancel()
		ia, err := p.interaction(ctx, sctx, id, csrf, ctx.IsPost())
		if ia == nil {
			return err
		}
		c, err := p.client(sctx, ia.ClientID)
		if err != nil {
			return ErrUnavailable(err)
		}
		return fn(ctx, sctx, f, ia, c)
	}
}

func (p *Provider) loginPage(ctx *fasthttp.RequestCtx, _ context.Context, _ form, ia *storage.Interaction, c *storage.Client) error {
	return p.render(ctx, http.StatusOK, "login", page{Title: "Sign in", Action: p.issuerPath + "/login", ClientName: c.Name,
		Interaction: ia.ID, CSRF: ia.CSRF, Username: ia.LoginHint})
}

func (p *Provider) login(ctx *fasthttp.RequestCtx, sctx context.Context, f form, ia *storage.Interaction, c *storage.Client) error {
	username, ip := f.str("username"), ctx.RemoteIP().String()
	retry := func(status int, msg string) error {
		return p.render(ctx, status, "login", page{Title: "Sign in", Action: p.issuerPath + "/login", ClientName: c.Name,
			Interaction: ia.ID, CSRF: ia.CSRF, Username: username, Error: msg})
	}
	keys := p.signInKeys(username, ip)
	wait, ok := p.limiter.reserve(keys...)
	if !ok {
		p.log.Warn("sign-in refused: too many attempts", "username", fmt.Sprintf("%q", username), "ip", ip)
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(int(wait.Seconds()+1)))
		return retry(http.StatusTooManyRequests, "Too many failed attempts. Wait a minute and try again.")
	}
	u, err := p.passwords.check(sctx, username, f.str("password"))
	if err == nil {
		p.limiter.done(false, keys, keys[0].key)
	} else {
		p.limiter.done(errors.Is(err, errBadCredentials), keys) // an outage is no guess
	}
	if errors.Is(err, errBadCredentials) {
		p.log.Info("sign-in failed", "username", fmt.Sprintf("%q", username), "ip", ip)
		return retry(http.StatusUnauthorized, "Invalid username or password.")
	}
	if err != nil {
		return err
	}
	se, err := p.startSession(ctx, sctx, u)
	if err != nil {
		return err
	}
	ia.UserID, ia.SessionID, ia.AuthTime, ia.AMR = u.ID, se.ID, se.AuthTime, se.AMR
	if err := p.store.UpdateInteraction(sctx, ia); err != nil {
		return ErrUnavailable(err)
	}
	return p.next(ctx, sctx, c, ia)
}

// signInKeys are what one sign-in attempt counts against, as OWASP's
// authentication cheat sheet advises: the username at this IP (the tight
// limit, cleared by a success), the IP across usernames (spraying), and the
// username across IPs — a slower limit, so strangers cannot lock a user out
// for long.
func (p *Provider) signInKeys(username, ip string) []limitKey {
	n, w := p.cfg.LoginLimit, p.cfg.LoginWindow
	return []limitKey{
		{"user@ip:" + username + "\x00" + ip, limitRule{n, w}},
		{"ip:" + ip, limitRule{4 * n, w}},
		{"user:" + username, limitRule{4 * n, 15 * w}},
	}
}

// scopeWords are the consent page's descriptions of well-known scopes.
var scopeWords = map[string]string{
	"openid":         "Sign you in with your account",
	"profile":        "See your name and profile",
	"email":          "See your email address",
	"offline_access": "Stay signed in: keep access while you are away",
}

func (p *Provider) consentPage(ctx *fasthttp.RequestCtx, sctx context.Context, _ form, ia *storage.Interaction, c *storage.Client) error {
	if !p.signedInHere(ctx, sctx, ia) {
		return p.errorPage(ctx, "Sign in first.")
	}
	words := make([]string, 0, len(ia.Scopes))
	for _, s := range ia.Scopes {
		if w, ok := scopeWords[s]; ok {
			words = append(words, w)
		} else {
			words = append(words, "Use the permission “"+s+"”")
		}
	}
	return p.render(ctx, http.StatusOK, "consent", page{Title: "Allow access", Action: p.issuerPath + "/consent",
		ClientName: c.Name, Interaction: ia.ID, CSRF: ia.CSRF, Scopes: words})
}

func (p *Provider) consent(ctx *fasthttp.RequestCtx, sctx context.Context, f form, ia *storage.Interaction, _ *storage.Client) error {
	if !p.signedInHere(ctx, sctx, ia) {
		return p.errorPage(ctx, "Sign in first.")
	}
	if f.str("decision") != "allow" {
		p.store.DeleteInteraction(sctx, ia.ID)
		return p.respond(ctx, ia, nil, authErr("access_denied", "the user denied the request"))
	}
	scopes := ia.Scopes
	if prior, err := p.store.GetConsent(sctx, ia.UserID, ia.ClientID); err == nil {
		for _, s := range prior.Scopes {
			if !slices.Contains(scopes, s) {
				scopes = append(scopes, s)
			}
		}
	}
	if err := p.store.PutConsent(sctx, &storage.Consent{UserID: ia.UserID, ClientID: ia.ClientID, Scopes: scopes,
		CreatedAt: p.now()}); err != nil {
		return ErrUnavailable(err)
	}
	return p.finish(ctx, sctx, ia)
}

// signedInHere: the interaction has a user, and the request carries the
// session that signed them in — consent is given by whoever signed in, in
// this browser, not by whoever holds the interaction.
func (p *Provider) signedInHere(ctx *fasthttp.RequestCtx, sctx context.Context, ia *storage.Interaction) bool {
	if ia.UserID == "" || ia.SessionID == "" {
		return false
	}
	v := ctx.Request.Header.Cookie(p.cookieName())
	if len(v) == 0 {
		return false
	}
	se, err := p.store.GetSession(sctx, storage.HashOf(string(v)))
	return err == nil && se.ID == ia.SessionID && se.UserID == ia.UserID
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

// bindBrowser returns the hash of the request's browser cookie, setting a
// new one if it has none (or a malformed one).
func (p *Provider) bindBrowser(ctx *fasthttp.RequestCtx) storage.Hash {
	v := string(ctx.Request.Header.Cookie(p.browserCookieName()))
	if len(v) != 43 { // randomToken's length
		v = randomToken()
		p.writeCookie(ctx, p.browserCookieName(), v, time.Time{}) // lasts as long as the browser session
	}
	return storage.HashOf(v)
}

// sameBrowser: the request carries the cookie of the browser that started
// the interaction.
func (p *Provider) sameBrowser(ctx *fasthttp.RequestCtx, ia *storage.Interaction) bool {
	v := ctx.Request.Header.Cookie(p.browserCookieName())
	h := storage.HashOf(string(v))
	return len(v) > 0 && subtle.ConstantTimeCompare(h[:], ia.BrowserHash[:]) == 1
}

// crossSite reports a form POST sent from another site (login CSRF,
// forced consent or sign-out). A browser says where a request comes from in
// Sec-Fetch-Site, which is decisive when sent (Chromium sends Origin: null
// for a same-origin form on a page with a strict referrer policy); an older
// browser only in Origin. A request saying neither (a script) has only the
// CSRF token and the browser binding to pass.
func (p *Provider) crossSite(ctx *fasthttp.RequestCtx) bool {
	if site := string(ctx.Request.Header.Peek("Sec-Fetch-Site")); site != "" {
		return site != "same-origin" && site != "none"
	}
	origin := string(ctx.Request.Header.Peek("Origin"))
	return origin != "" && origin != p.origin
}

func (p *Provider) refuseCrossSite(ctx *fasthttp.RequestCtx) error {
	p.log.Warn("cross-site form refused", "path", string(ctx.Path()), "origin", string(ctx.Request.Header.Peek("Origin")),
		"sec_fetch_site", string(ctx.Request.Header.Peek("Sec-Fetch-Site")))
	return p.render(ctx, http.StatusForbidden, "message", page{Title: "Request refused",
		Message: "This form was sent from another site. Go back to the application and start again."})
}

// Sessions: a random cookie secret, stored only as its hash.

func (p *Provider) cookieName() string {
	if strings.HasPrefix(p.cfg.Issuer, "https://") {
		return "__Host-oidcgate_session"
	}
	return "oidcgate_session"
}

// setCookie sets the session cookie (an empty value deletes it).
func (p *Provider) setCookie(ctx *fasthttp.RequestCtx, value string, expires time.Time) {
	if value == "" {
		expires = fasthttp.CookieExpireDelete
	}
	p.writeCookie(ctx, p.cookieName(), value, expires)
}

// writeCookie sets one of the provider's cookies: HttpOnly, SameSite=Lax,
// Secure on an https issuer; no expiry: a browser-session cookie.
func (p *Provider) writeCookie(ctx *fasthttp.RequestCtx, name, value string, expires time.Time) {
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(name)
	c.SetValue(value)
	c.SetPath("/")
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteLaxMode)
	c.SetSecure(strings.HasPrefix(p.cfg.Issuer, "https://"))
	if !expires.IsZero() {
		c.SetExpire(expires)
	}
	ctx.Response.Header.SetCookie(c)
}

// liveSession returns the request's session, sliding its idle expiry, or
// nil. A disabled user's session is ended.
func (p *Provider) liveSession(sctx context.Context, ctx *fasthttp.RequestCtx, now time.Time) *storage.Session {
	v := ctx.Request.Header.Cookie(p.cookieName())
	if len(v) == 0 {
		return nil
	}
	se, err := p.store.GetSession(sctx, storage.HashOf(string(v)))
	if err != nil {
		return nil
	}
	if u, err := p.store.GetUser(sctx, se.UserID); err != nil || u.Disabled {
		p.store.DeleteSession(sctx, se.ID)
		return nil
	}
	se.IdleExpiresAt = minTime(now.Add(p.cfg.SessionIdleTTL), se.ExpiresAt)
	p.store.UpdateSession(sctx, se)
	return se
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// startSession signs u in: a new session and a new cookie (never the old
// one, against session fixation).
func (p *Provider) startSession(ctx *fasthttp.RequestCtx, sctx context.Context, u *storage.User) (*storage.Session, error) {
	now := p.now()
	secret := randomToken()
	se := &storage.Session{ID: newJTI(), Hash: storage.HashOf(secret), UserID: u.ID, AuthTime: now, AMR: []string{"pwd"},
		CreatedAt: now, IdleExpiresAt: now.Add(p.cfg.SessionIdleTTL), ExpiresAt: now.Add(p.cfg.SessionTTL)}
	if err := p.store.CreateSession(sctx, se); err != nil {
		return nil, ErrUnavailable(err)
	}
	p.setCookie(ctx, secret, se.ExpiresAt)
	return se, nil
}

// s256 is the PKCE S256 transform (RFC 7636 §4.2).
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// logoutCSRF binds the sign-out confirmation to the session cookie, which
// a cross-site page cannot read.
func logoutCSRF(cookie []byte) string {
	sum := sha256.Sum256(append([]byte("oidcgate logout:"), cookie...))
	return hex.EncodeToString(sum[:16])
}
