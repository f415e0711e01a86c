package provider

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// Pushed authorization requests (RFC 9126): a client posts its
// authorization request to /par, authenticated as at /token, and gets a
// request_uri — single use, short-lived — that the browser then takes to
// /authorize instead of the parameters. The request is validated here, as
// /authorize would, and its errors go to the client, never to a browser.
// A pushed request is stored as an interaction marked Pushed; /authorize
// starts the real one from it.

const requestURIPrefix = "urn:ietf:params:oauth:request_uri:"

// par is POST /par.
func (p *Provider) par(rc *fasthttp.RequestCtx) error {
	f, err := readForm(rc)
	if err != nil {
		return err
	}
	creds, err := clientCredentials(rc.Request.Header.Peek("Authorization"), f)
	if err != nil {
		return err
	}
	creds.cert, creds.chained = p.clientCertificate(rc)
	ctx, cancel := requestCtx()
	defer cancel()
	client, err := p.authenticate(ctx, creds)
	if err != nil {
		return err
	}
	params := url.Values{}
	f.args.VisitAll(func(k, v []byte) { params.Add(string(k), string(v)) })
	uri, err := p.push(ctx, client, params)
	if err != nil {
		return err
	}
	rc.Response.Header.Set("Cache-Control", "no-store")
	return oauth.WriteJSON(rc, http.StatusCreated, map[string]any{"request_uri": uri, "expires_in": int(p.cfg.PARLifetime.Seconds())})
}

// push validates and stores an authorization request of client, and
// returns its request_uri.
func (p *Provider) push(ctx context.Context, client *storage.Client, params url.Values) (string, error) {
	switch {
	case params.Has("request_uri"):
		return "", oauth.ErrInvalidRequest("request_uri cannot be pushed (RFC 9126 §2.1)")
	case params.Get("client_id") != "" && params.Get("client_id") != client.ID:
		return "", oauth.ErrInvalidRequest("client_id is not the authenticated client")
	case !slices.Contains(client.GrantTypes, grantAuthorizationCode):
		return "", oauth.ErrUnauthorizedClient("this client may not use the authorization code flow")
	}
	ia, err := p.readAuthorization(client, params)
	var bad *badRedirect
	var ae *authError
	switch {
	case errors.As(err, &bad):
		return "", oauth.ErrInvalidRequest("redirect_uri is not registered for this client")
	case errors.As(err, &ae):
		return "", oauth.New(http.StatusBadRequest, ae.code, "%s", ae.description)
	case err != nil:
		return "", err
	}
	now := p.now()
	ia.ID, ia.Pushed = randomToken(), true
	ia.CreatedAt, ia.ExpiresAt = now, now.Add(p.cfg.PARLifetime)
	if err := p.flowDB.CreateInteraction(ctx, ia); err != nil {
		return "", oauth.ErrUnavailable(err)
	}
	return requestURIPrefix + ia.ID, nil
}

// redeemPushed turns client's request_uri into the interaction it
// pushed, once: nil when it is unknown, another client's, expired or used.
func (p *Provider) redeemPushed(ctx context.Context, client *storage.Client, requestURI string) (*storage.Interaction, error) {
	id, ok := strings.CutPrefix(requestURI, requestURIPrefix)
	if !ok || id == "" {
		return nil, nil
	}
	ia, err := p.flowDB.GetInteraction(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !ia.Pushed || ia.ClientID != client.ID || !p.now().Before(ia.ExpiresAt) {
		p.log.Info("request_uri refused", "client_id", client.ID, "pushed_by", ia.ClientID)
		return nil, nil
	}
	// Single use on every replica: the first redemption wins.
	switch err := p.assertDB.UseAssertion(ctx, "\x00par\x00"+id, ia.ExpiresAt); {
	case errors.Is(err, storage.ErrAlreadyUsed):
		p.log.Info("request_uri used again", "client_id", client.ID)
		return nil, nil
	case err != nil:
		return nil, err
	}
	if err := p.flowDB.DeleteInteraction(ctx, id); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	ia.Pushed = false
	return ia, nil
}
