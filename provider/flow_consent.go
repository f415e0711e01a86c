package provider

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// The consent step: what the user granted each client, remembered.

// consentRequest is a consent form (or, without post, the page's request).
type consentRequest struct {
	interactionRequest
	allow bool
}

// scopeWords are the consent page's descriptions of well-known scopes.
var scopeWords = map[string]string{
	"openid":         "Sign you in with your account",
	"profile":        "See your name and profile",
	"email":          "See your email address",
	"offline_access": "Stay signed in: keep access while you are away",
}

// consentPage asks the signed-in user to allow what the client asks.
func (p *Provider) consentPage(ctx context.Context, r interactionRequest) (outcome, error) {
	ia, c, stop, err := p.resume(ctx, r)
	if stop != nil || err != nil {
		return deref(stop), err
	}
	if !p.signedInHere(ctx, r.visit, ia) {
		return errorPage("Sign in first."), nil
	}
	words := make([]string, 0, len(ia.Scopes))
	for _, s := range ia.Scopes {
		if w, ok := scopeWords[s]; ok {
			words = append(words, w)
		} else {
			words = append(words, "Use the permission “"+s+"”")
		}
	}
	return pageOutcome(http.StatusOK, "consent", page{Title: "Allow access", Action: p.issuerPath + "/consent",
		ClientName: c.Name, Interaction: ia.ID, CSRF: ia.CSRF, Scopes: words, Device: ia.DeviceID != ""}), nil
}

// consent records the user's decision and moves the interaction on.
func (p *Provider) consent(ctx context.Context, r consentRequest) (outcome, error) {
	ia, c, stop, err := p.resume(ctx, r.interactionRequest)
	if stop != nil || err != nil {
		return deref(stop), err
	}
	if !p.signedInHere(ctx, r.visit, ia) {
		return errorPage("Sign in first."), nil
	}
	if !r.allow && ia.DeviceID != "" {
		return p.denyDevice(ctx, ia)
	}
	if !r.allow {
		p.flowDB.DeleteInteraction(ctx, ia.ID)
		return p.respond(ia, nil, authErr("access_denied", "the user denied the request"))
	}
	scopes := ia.Scopes
	if prior, err := p.flowDB.GetConsent(ctx, ia.UserID, ia.ClientID); err == nil {
		for _, s := range prior.Scopes {
			if !slices.Contains(scopes, s) {
				scopes = append(scopes, s)
			}
		}
	}
	if err := p.flowDB.PutConsent(ctx, &storage.Consent{UserID: ia.UserID, ClientID: ia.ClientID, Scopes: scopes,
		CreatedAt: p.now()}); err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	ia.Consented = true
	if err := p.flowDB.UpdateInteraction(ctx, ia); err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	return p.next(ctx, ia, c)
}

// needsConsent: first-party clients skip consent, except for
// offline_access (OIDC Core §11) and prompt=consent; others need a
// remembered consent covering every scope asked for. A consent given on
// this interaction's own page (prompt=consent included) satisfies it.
func (p *Provider) needsConsent(ctx context.Context, c *storage.Client, ia *storage.Interaction) (bool, error) {
	if ia.Consented {
		return false, nil
	}
	if slices.Contains(ia.Prompt, "consent") {
		return true, nil
	}
	if c.FirstParty && !slices.Contains(ia.Scopes, "offline_access") {
		return false, nil
	}
	con, err := p.flowDB.GetConsent(ctx, ia.UserID, c.ID)
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
