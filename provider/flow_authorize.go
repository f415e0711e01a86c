package provider

import (
	"cmp"
	"context"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// authorizeRequest is an authorization request (OIDC Core §3.1.2.1): its
// parameters, from the query or the form, and the browser it came in.
type authorizeRequest struct {
	params url.Values
	// malformed, when set, is why the parameters could not be read as they
	// should (a repeated one): an error for the client, once it is trusted.
	malformed error
	visit     visit
}

// maxParamLen bounds the free-form parameters an unauthenticated
// authorization request stores (state, nonce, login_hint).
const maxParamLen = 2048

// authorize is the authorization endpoint's decision.
func (p *Provider) authorize(ctx context.Context, r authorizeRequest) (outcome, error) {
	get := r.params.Get
	// The client and the redirect URI first: until both are known good,
	// nothing is redirected anywhere.
	client, err := p.client(ctx, get("client_id"))
	if errors.Is(err, storage.ErrNotFound) || get("client_id") == "" {
		return errorPage("The application asking you to sign in is not registered here."), nil
	} else if err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	var ia *storage.Interaction
	if strings.HasPrefix(get("request_uri"), requestURIPrefix) {
		// RFC 9126 §4: only the pushed parameters count.
		if ia, err = p.redeemPushed(ctx, client, get("request_uri")); err != nil || ia == nil {
			return errorPage("The application's pushed sign-in request is unknown, expired or used. Go back to the application and start again."), unavailable(err)
		}
	} else {
		ia, err = p.readAuthorization(client, r.params)
		var bad *badRedirect
		if errors.As(err, &bad) {
			return errorPage(bad.message), nil
		}
		if ia != nil && r.malformed != nil {
			err = authErr("invalid_request", oauth.As(r.malformed).Description)
		}
		if err == nil && (client.RequirePAR || p.cfg.RequirePAR) {
			err = authErr("invalid_request", "this client must push its authorization requests (RFC 9126): use request_uri from "+p.cfg.Issuer+"/par")
		}
		if err != nil {
			return p.respond(ia, nil, err)
		}
	}
	if !p.pending.allow(r.visit.ip) {
		p.log.Warn("authorization requests refused: too many pending from one address", "ip", r.visit.ip)
		return p.respond(ia, nil, authErr("temporarily_unavailable", "too many pending sign-ins from this address; try again later"))
	}
	now := p.now()
	ia.ID, ia.CSRF = randomToken(), randomToken()
	ia.CreatedAt, ia.ExpiresAt = now, now.Add(p.cfg.InteractionTTL)
	binding, bindCookie := p.bindBrowser(r.visit)
	ia.BrowserHash = storage.HashOf(binding)
	// A live session that satisfies prompt and max_age signs the user in.
	if se := p.liveSession(ctx, r.visit, now); se != nil && !slices.Contains(ia.Prompt, "login") &&
		(ia.MaxAge < 0 || now.Sub(se.AuthTime) <= time.Duration(ia.MaxAge)*time.Second) {
		ia.UserID, ia.SessionID, ia.AuthTime, ia.AMR = se.UserID, se.ID, se.AuthTime, se.AMR
	}
	var out outcome
	if ia.UserID == "" && slices.Contains(ia.Prompt, "none") {
		out, err = p.respond(ia, nil, authErr("login_required", "the user is not signed in"))
	} else if err = p.flowDB.CreateInteraction(ctx, ia); err != nil {
		// The client and its redirect URI are trusted: tell it (RFC 6749 §4.1.2.1).
		p.log.Error("authorization request not stored", "client_id", client.ID, "error", err)
		out, err = p.respond(ia, nil, authErr("temporarily_unavailable", "the authorization server cannot take requests now; try again shortly"))
	} else {
		out, err = p.next(ctx, ia, client)
	}
	if bindCookie != nil {
		out.cookies = append(out.cookies, *bindCookie)
	}
	return out, err
}

// badRedirect: the client or redirect URI cannot be trusted with an
// error response (shown to the user, never redirected).
type badRedirect struct{ message string }

func (e *badRedirect) Error() string { return e.message }

// readAuthorization validates an authorization request's parameters (from
// /authorize or pushed to /par) into an interaction. A *badRedirect
// error comes with no interaction; any other error (an *authError) with
// the one to answer it by.
func (p *Provider) readAuthorization(client *storage.Client, params url.Values) (*storage.Interaction, error) {
	get := params.Get
	redirectURI := get("redirect_uri")
	if redirectURI == "" && len(client.RedirectURIs) == 1 {
		redirectURI = client.RedirectURIs[0]
	}
	public := client.TokenEndpointAuthMethod == authNone
	if redirectURI == "" || !redirectAllowed(client.RedirectURIs, redirectURI, public) {
		return nil, &badRedirect{"The address the application asked to return to is not registered for it."}
	}
	mode := get("response_mode")
	if mode == "" {
		mode = "query"
	}
	ia := &storage.Interaction{ClientID: client.ID, RedirectURI: redirectURI, ResponseMode: mode, State: get("state")}
	if mode != "query" && mode != "form_post" {
		ia.ResponseMode = "query"
		return ia, authErr("invalid_request", "response_mode must be query or form_post")
	}
	return ia, p.checkRequest(client, params, ia)
}

// checkRequest validates the rest of an authorization request into ia.
func (p *Provider) checkRequest(c *storage.Client, params url.Values, ia *storage.Interaction) error {
	get := params.Get
	switch {
	case params.Has("request"):
		return authErr("request_not_supported", "request objects are not supported")
	case params.Has("request_uri"): // by reference (OIDC Core §6.2), not one of /par's
		return authErr("request_uri_not_supported", "request_uri is supported only as issued by /par")
	case get("response_type") != "code":
		return authErr("unsupported_response_type", "response_type must be code")
	case !slices.Contains(c.GrantTypes, grantAuthorizationCode):
		return authErr("unauthorized_client", "this client may not use the authorization code flow")
	}
	scopes, err := parseScope(get("scope"))
	if err != nil {
		return authErr("invalid_scope", oauth.As(err).Description)
	}
	for _, s := range scopes {
		if !slices.Contains(c.Scopes, s) {
			return authErr("invalid_scope", "scope "+strconv.Quote(s)+" is not allowed for this client")
		}
	}
	ia.Scopes = scopes
	ia.Nonce, ia.LoginHint = get("nonce"), get("login_hint")
	// idp_hint names the connector to sign in at; kc_idp_hint is
	// Keycloak's name for it, read for clients moving over.
	ia.IDPHint = cmp.Or(get("idp_hint"), get("kc_idp_hint"))
	ia.ACRValues = strings.Fields(get("acr_values"))
	for name, v := range map[string]string{"state": ia.State, "nonce": ia.Nonce, "login_hint": ia.LoginHint, "idp_hint": ia.IDPHint,
		"acr_values": get("acr_values")} {
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
