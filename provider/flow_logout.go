package provider

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).

// endSessionRequest is a sign-out request: its parameters (query, or form
// for a POST), the raw query (the confirmation form posts back to it), and
// the browser.
type endSessionRequest struct {
	params url.Values
	query  string
	post   bool
	visit  visit
}

// endSession signs the browser out, asking first unless the ID token hint
// names this browser's session.
func (p *Provider) endSession(ctx context.Context, r endSessionRequest) (outcome, error) {
	get := r.params.Get
	clientID, sid, sub := get("client_id"), "", ""
	hinted := false
	if hint := get("id_token_hint"); hint != "" {
		payload, h, err := p.verifier.Verify([]byte(hint)) // expiry is ignored: a hint, not a credential
		var c idClaims
		if err != nil || h.Typ != "JWT" || json.Unmarshal(payload, &c) != nil || c.Iss != p.cfg.Issuer {
			return errorPage("The sign-out request carries an ID token this server did not issue."), nil
		}
		if clientID != "" && clientID != c.Aud {
			return errorPage("The sign-out request's client_id does not match its ID token."), nil
		}
		clientID, sid, sub, hinted = c.Aud, c.Sid, c.Sub, true
	}
	returnTo := get("post_logout_redirect_uri")
	if returnTo != "" {
		c, err := p.client(ctx, clientID)
		if err != nil || !slices.Contains(c.PostLogoutRedirectURIs, returnTo) {
			returnTo = "" // never redirect to an unregistered address
		}
	}
	var se *storage.Session // this browser's session
	if r.visit.session != "" {
		var err error
		if se, err = p.flowDB.GetSession(ctx, storage.HashOf(r.visit.session)); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return outcome{}, oauth.ErrUnavailable(err)
		}
	}
	// The hint speaks for this browser's session only when it names it; any
	// other sign-out of a browser with a session is the user's to confirm —
	// a cross-site link, or an ID token of someone else's session, must not
	// sign anyone out.
	if named := hinted && se != nil && sid != "" && se.ID == sid; se != nil && !named {
		switch {
		case !(r.post && get("confirm") == "yes"):
			return pageOutcome(http.StatusOK, "logout", page{Title: "Sign out", CSRF: logoutCSRF(r.visit.session),
				Action: p.issuerPath + "/end_session?" + r.query}), nil
		case r.visit.crossSite:
			return refused("This form was sent from another site. Go back to the application and start again."), nil
		case !equalSecret(get("csrf"), logoutCSRF(r.visit.session)):
			return refused("The sign-out form was not the one this server sent (CSRF check)."), nil
		}
	}
	var out outcome
	switch {
	case se != nil:
		if err := p.revs.session(ctx, se); err != nil {
			return outcome{}, oauth.ErrUnavailable(err)
		}
		out.cookies = append(out.cookies, p.endCookie())
	case r.visit.session != "":
		out.cookies = append(out.cookies, p.endCookie()) // a session already gone
	case hinted && sid != "":
		// No session here: the relying party ends the one its ID token names.
		list, err := p.flowDB.ListSessions(ctx, sub)
		if err != nil {
			return outcome{}, oauth.ErrUnavailable(err)
		}
		for _, s := range list {
			if s.ID == sid {
				if err := p.revs.session(ctx, s); err != nil {
					return outcome{}, oauth.ErrUnavailable(err)
				}
			}
		}
	}
	if returnTo == "" {
		cookies := out.cookies
		out = pageOutcome(http.StatusOK, "message", page{Title: "Signed out", Message: "You are signed out."})
		out.cookies = cookies
		return out, nil
	}
	u, _ := url.Parse(returnTo)
	if st := get("state"); st != "" {
		q := u.Query()
		q.Set("state", st)
		u.RawQuery = q.Encode()
	}
	out.kind, out.location = redirect, u.String()
	return out, nil
}
