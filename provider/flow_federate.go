package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/oidcgate/oidcgate/provider/connector"
	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// Sign-in at the identity sources a company already has (package
// connector): buttons on the sign-in page that send the browser to an
// upstream OIDC provider or GitHub and back to /connectors/{id}/callback,
// and LDAP behind the sign-in form. Whichever way the user came, the
// upstream identity (connector, subject) is linked to a local user, whose
// sub never changes; the claims the upstream sent refresh at each sign-in.

// fedStore is what federation uses of the store.
type fedStore interface {
	GetIdentity(ctx context.Context, connectorID, subject string) (*storage.Identity, error)
	CreateIdentity(ctx context.Context, i *storage.Identity) error
	UpdateIdentity(ctx context.Context, i *storage.Identity) error
	GetUser(ctx context.Context, id string) (*storage.User, error)
	GetUserByUsername(ctx context.Context, username string) (*storage.User, error)
	CreateUser(ctx context.Context, u *storage.User) error
	UpdateUser(ctx context.Context, u *storage.User) error
	ListUsers(ctx context.Context) ([]*storage.User, error)
}

// redirectConnector is an upstream the browser is sent to (oidc, github).
type redirectConnector interface {
	AuthCodeURL(ctx context.Context, state, nonce, verifier string) (string, error)
	Exchange(ctx context.Context, code, verifier, nonce, iss string) (connector.Identity, error)
}

// passwordConnector checks the sign-in form's credentials (ldap).
type passwordConnector interface {
	Login(ctx context.Context, username, password string) (connector.Identity, error)
}

// upstream is one configured connector.
type upstream struct {
	cfg      connector.Config
	redirect redirectConnector // one of these two
	password passwordConnector
	check    func(context.Context) error
}

// upstreamTimeout bounds one callback's or one LDAP sign-in's work at the
// upstream (each request is bounded by the connector's own timeout too).
const upstreamTimeout = 30 * time.Second

// newUpstreams builds the configured connectors, in order.
func newUpstreams(cfg Config, now func() time.Time) ([]*upstream, error) {
	var out []*upstream
	for _, cc := range cfg.Connectors {
		if cc.Name == "" {
			cc.Name = cc.ID
		}
		up := &upstream{cfg: cc}
		redirectURI := cfg.Issuer + "/connectors/" + cc.ID + "/callback"
		var err error
		switch {
		case cc.OIDC != nil:
			var c *connector.OIDC
			c, err = connector.NewOIDC(*cc.OIDC, redirectURI, now)
			up.redirect, up.check = c, func(ctx context.Context) error { return c.Check(ctx) }
		case cc.GitHub != nil:
			var c *connector.GitHub
			c, err = connector.NewGitHub(*cc.GitHub, redirectURI)
			up.redirect, up.check = c, c.Check
		case cc.LDAP != nil:
			var c *connector.LDAP
			c, err = connector.NewLDAP(*cc.LDAP)
			up.password, up.check = c, c.Check
		}
		if err != nil {
			return nil, bad("connectors", "connector %q: %v", cc.ID, err)
		}
		out = append(out, up)
	}
	return out, nil
}

func (p *Provider) upstream(id string) *upstream {
	for _, up := range p.upstreams {
		if up.cfg.ID == id {
			return up
		}
	}
	return nil
}

// hinted is the redirect connector a sign-in goes straight to: the one
// the request named (idp_hint), else the client's default.
func (p *Provider) hinted(ia *storage.Interaction, c *storage.Client) *upstream {
	for _, id := range []string{ia.IDPHint, c.DefaultConnector} {
		if up := p.upstream(id); id != "" && up != nil && up.redirect != nil {
			return up
		}
	}
	return nil
}

// formConnector is the connector that checks a username typed in the
// sign-in form, and the username to give it: the ldap connector whose
// username_domains has the username's @domain (the name without it), else
// password_connector; nil for the local users.
func (p *Provider) formConnector(username string) (*upstream, string) {
	if at := strings.LastIndexByte(username, '@'); at > 0 {
		domain := strings.ToLower(username[at+1:])
		for _, up := range p.upstreams {
			if slices.ContainsFunc(up.cfg.UsernameDomains, func(d string) bool { return strings.EqualFold(d, domain) }) {
				return up, username[:at]
			}
		}
	}
	if up := p.upstream(p.cfg.PasswordConnector); up != nil {
		return up, username
	}
	return nil, username
}

// startUpstream is the sign-in page's button for a redirect connector.
func (p *Provider) startUpstream(ctx context.Context, r interactionRequest, id string) (outcome, error) {
	ia, _, stop, err := p.resume(ctx, r)
	if stop != nil || err != nil {
		return deref(stop), err
	}
	up := p.upstream(id)
	if up == nil || up.redirect == nil {
		return errorPage("There is no such way to sign in here."), nil
	}
	return p.redirectUpstream(ctx, ia, up)
}

// redirectUpstream sends the browser to sign in at up, keeping the state's
// secret (as a hash), the nonce and the PKCE verifier in the interaction.
// The state names the interaction, so the callback finds it.
func (p *Provider) redirectUpstream(ctx context.Context, ia *storage.Interaction, up *upstream) (outcome, error) {
	secret, nonce, verifier := randomToken(), randomToken(), randomToken()
	ia.Upstream = &storage.UpstreamSignIn{Connector: up.cfg.ID, StateHash: storage.HashOf(secret), Nonce: nonce, Verifier: verifier}
	if err := p.flowDB.UpdateInteraction(ctx, ia); err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), upstreamTimeout)
	defer cancel()
	start := time.Now()
	u, err := up.redirect.AuthCodeURL(uctx, ia.ID+"."+secret, nonce, verifier)
	if err != nil {
		p.metrics.upstreamLatency.WithLabelValues(up.cfg.ID, "discovery").Observe(time.Since(start).Seconds())
		return p.upstreamFailed(up, err), nil
	}
	return redirectTo(u), nil
}

// callbackRequest is an upstream's authorization response (RFC 6749
// §4.1.2), at /connectors/{id}/callback.
type callbackRequest struct {
	connector               string
	state, code, iss        string
	errCode, errDescription string
	visit                   visit
}

// upstreamCallback finishes a sign-in at a redirect connector: the state
// must be the one this browser's interaction sent (it is spent at once, so
// a replay finds none), then the code is redeemed and what the upstream
// answered is verified by the connector.
func (p *Provider) upstreamCallback(ctx context.Context, r callbackRequest) (outcome, error) {
	iaID, secret, _ := strings.Cut(r.state, ".")
	ia, c, stop, err := p.resume(ctx, interactionRequest{id: iaID, visit: r.visit})
	if stop != nil || err != nil {
		return deref(stop), err
	}
	up, pending := p.upstream(r.connector), ia.Upstream
	if up == nil || up.redirect == nil || pending == nil || pending.Connector != r.connector || secret == "" ||
		!equalHash(storage.HashOf(secret), pending.StateHash) {
		p.log.Warn("upstream callback refused: its state is not the one this sign-in sent", "connector", fmt.Sprintf("%q", r.connector), "ip", r.visit.ip)
		p.signIn(r.connector, "invalid", "ip", r.visit.ip)
		return refused("This sign-in response does not belong to a sign-in under way here: it was replayed or forged, or that sign-in has finished. Go back to the application and start again."), nil
	}
	ia.Upstream = nil
	if err := p.flowDB.UpdateInteraction(ctx, ia); err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	if r.errCode != "" {
		p.signIn(up.cfg.ID, "upstream_error")
		return p.upstreamFailed(up, &connector.UpstreamError{Code: r.errCode, Description: r.errDescription}), nil
	}
	if r.code == "" {
		p.signIn(up.cfg.ID, "invalid")
		return errorPage("The sign-in response has no code. Go back to the application and start again."), nil
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), upstreamTimeout)
	defer cancel()
	start := time.Now()
	id, err := up.redirect.Exchange(uctx, r.code, pending.Verifier, pending.Nonce, r.iss)
	p.metrics.upstreamLatency.WithLabelValues(up.cfg.ID, "exchange").Observe(time.Since(start).Seconds())
	if err != nil {
		return p.upstreamFailed(up, err), nil
	}
	sctx, scancel := requestCtx() // the store's own time, after the upstream's
	defer scancel()
	return p.signInAs(sctx, ia, c, up, id, upstreamAMR(up, id.AMR, id.ACR), r.visit.ip)
}

// upstreamFailed is the page for a sign-in an upstream did not complete.
// The upstream's own words are shown (the template escapes them).
func (p *Provider) upstreamFailed(up *upstream, err error) outcome {
	name := up.cfg.Name
	var ue *connector.UpstreamError
	var re *connector.RefusedError
	switch {
	case errors.Is(err, connector.ErrUnavailable):
		p.log.Warn("upstream unavailable", "connector", up.cfg.ID, "error", err)
		p.signIn(up.cfg.ID, "unavailable")
		out := pageOutcome(http.StatusServiceUnavailable, "message", page{Title: "Sign-in is unavailable",
			Message: name + " cannot be reached right now. Wait a moment, then try again."})
		out.retryAfter = 5
		return out
	case errors.As(err, &ue):
		p.log.Info("upstream refused the sign-in", "connector", up.cfg.ID, "error", fmt.Sprintf("%q: %q", ue.Code, ue.Description))
		p.signIn(up.cfg.ID, "upstream_error")
		msg := name + " did not sign you in: " + ue.Code
		if ue.Description != "" {
			msg += " (" + ue.Description + ")"
		}
		return pageOutcome(http.StatusBadRequest, "message", page{Title: "Sign-in did not complete", Message: msg + "."})
	case errors.As(err, &re):
		p.signIn(up.cfg.ID, "refused")
		return refused("Your account at " + name + " may not sign in here: " + re.Reason + ".")
	}
	p.log.Warn("upstream answer refused", "connector", up.cfg.ID, "error", err)
	p.signIn(up.cfg.ID, "invalid")
	return pageOutcome(http.StatusBadGateway, "message", page{Title: "Sign-in did not complete",
		Message: "The answer from " + name + " did not pass this server's checks, so you were not signed in. Go back to the application and start again."})
}

// signIn counts a sign-in's outcome and records it as an audit event
// (signin.succeeded, or signin.failed with the reason).
func (p *Provider) signIn(connectorID, outcome string, attrs ...any) {
	p.metrics.signins.WithLabelValues(connectorID, outcome).Inc()
	if outcome == "ok" {
		p.audit("signin.succeeded", append([]any{"connector", connectorID}, attrs...)...)
		return
	}
	p.audit("signin.failed", append([]any{"connector", connectorID, "reason", outcome}, attrs...)...)
}

// signInAs signs in the local user linked to id (creating or linking one
// on a first sign-in), when up's policy admits it.
func (p *Provider) signInAs(ctx context.Context, ia *storage.Interaction, c *storage.Client, up *upstream, id connector.Identity, amr []string, ip string) (outcome, error) {
	if id.Subject == "" || len(id.Subject) > 512 || strings.ContainsRune(id.Subject, 0) {
		return p.upstreamFailed(up, errors.New("the upstream subject is empty, too long or has a NUL")), nil
	}
	if reason := up.admits(id); reason != "" {
		p.log.Info("sign-in refused by connector policy", "connector", up.cfg.ID, "reason", reason)
		return p.upstreamFailed(up, &connector.RefusedError{Reason: reason}), nil
	}
	u, err := p.linkedUser(ctx, up, id)
	if err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	if u.Disabled {
		p.signIn(up.cfg.ID, "refused", "user_id", u.ID, "ip", ip)
		return refused("This account is disabled here."), nil
	}
	p.signIn(up.cfg.ID, "ok", "user_id", u.ID, "client_id", ia.ClientID, "ip", ip, "amr", amr)
	return p.signedIn(ctx, ia, c, u, amr)
}

// admits applies the connector's restrictions; the reason when they refuse.
func (up *upstream) admits(id connector.Identity) string {
	if g := up.cfg.AllowedGroups; len(g) > 0 && !slices.ContainsFunc(id.Groups, func(x string) bool { return slices.Contains(g, x) }) {
		return "you are not in a group allowed here"
	}
	if d := up.cfg.AllowedEmailDomains; len(d) > 0 {
		_, domain, _ := strings.Cut(id.Email, "@")
		if !id.EmailVerified || !slices.ContainsFunc(d, func(x string) bool { return strings.EqualFold(x, domain) }) {
			return "your verified email address is not at a domain allowed here"
		}
	}
	return ""
}

// mappedClaims are the local claims an upstream identity sets.
func mappedClaims(id connector.Identity) map[string]any {
	c := map[string]any{}
	if id.Email != "" {
		c["email"], c["email_verified"] = id.Email, id.EmailVerified
	}
	if id.Name != "" {
		c["name"] = id.Name
	}
	if id.PreferredUsername != "" {
		c["preferred_username"] = id.PreferredUsername
	}
	if len(id.Groups) > 0 {
		c["groups"] = id.Groups
	}
	return c
}

// upstreamClaims are the claims an upstream owns on a linked user: each
// is set from the last sign-in, or removed when it no longer sends it.
var upstreamClaims = []string{"email", "email_verified", "name", "preferred_username", "groups"}

// linkedUser returns the local user of an upstream identity, refreshing
// the claims the upstream owns. On a first sign-in it links the identity
// to the local user with the same verified email (where the connector
// enables that) or creates a user just in time, with a new random sub.
func (p *Provider) linkedUser(ctx context.Context, up *upstream, id connector.Identity) (*storage.User, error) {
	now := p.now()
	claims := mappedClaims(id)
	link, err := p.fedDB.GetIdentity(ctx, up.cfg.ID, id.Subject)
	if errors.Is(err, storage.ErrNotFound) {
		link, err = p.link(ctx, up, id, claims, now)
	}
	if err != nil {
		return nil, err
	}
	u, err := p.fedDB.GetUser(ctx, link.UserID)
	if err != nil {
		return nil, err
	}
	link.Claims, link.LastLoginAt = claims, now
	if err := p.fedDB.UpdateIdentity(ctx, link); err != nil {
		return nil, err
	}
	changed := false
	if u.Claims == nil {
		u.Claims = map[string]any{}
	}
	for _, k := range upstreamClaims {
		v, ok := claims[k]
		old, had := u.Claims[k]
		switch {
		case ok && (!had || fmt.Sprint(old) != fmt.Sprint(v)):
			u.Claims[k], changed = v, true
		case !ok && had:
			delete(u.Claims, k)
			changed = true
		}
	}
	if changed {
		u.UpdatedAt = now
		if err := p.fedDB.UpdateUser(ctx, u); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// link makes the first link of an identity. Concurrent first sign-ins of
// one identity agree: the user created for it has a username derived from
// it (connector:subject, unique), and the link is written once.
func (p *Provider) link(ctx context.Context, up *upstream, id connector.Identity, claims map[string]any, now time.Time) (*storage.Identity, error) {
	var u *storage.User
	if up.cfg.LinkByEmail && id.EmailVerified && id.Email != "" {
		var err error
		if u, err = p.userByVerifiedEmail(ctx, id.Email); err != nil {
			return nil, err
		}
	}
	if u == nil {
		username := up.cfg.ID + ":" + id.Subject
		u = &storage.User{ID: NewUserID(), Username: username, Claims: claims, CreatedAt: now, UpdatedAt: now}
		err := p.fedDB.CreateUser(ctx, u)
		if errors.Is(err, storage.ErrAlreadyExists) {
			u, err = p.fedDB.GetUserByUsername(ctx, username)
		}
		if err != nil {
			return nil, err
		}
	}
	link := &storage.Identity{ConnectorID: up.cfg.ID, Subject: id.Subject, UserID: u.ID, Claims: claims, CreatedAt: now, LastLoginAt: now}
	err := p.fedDB.CreateIdentity(ctx, link)
	if errors.Is(err, storage.ErrAlreadyExists) {
		return p.fedDB.GetIdentity(ctx, up.cfg.ID, id.Subject)
	}
	if err != nil {
		return nil, err
	}
	p.log.Info("upstream identity linked", "connector", up.cfg.ID, "user_id", u.ID)
	return link, nil
}

// userByVerifiedEmail is the one local user whose email is email and
// verified, or nil. It reads every user (a first sign-in with link_by_email
// only); two such users link neither.
func (p *Provider) userByVerifiedEmail(ctx context.Context, email string) (*storage.User, error) {
	users, err := p.fedDB.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	var found *storage.User
	for _, u := range users {
		if e, _ := u.Claims["email"].(string); strings.EqualFold(e, email) && u.Claims["email_verified"] == true {
			if found != nil {
				p.log.Warn("not linking by email: several local users have it", "email_domain", domainOf(email))
				return nil, nil
			}
			found = u
		}
	}
	return found, nil
}

func domainOf(email string) string {
	_, d, _ := strings.Cut(email, "@")
	return d
}

// equalHash compares two hashes in constant time.
func equalHash(a, b storage.Hash) bool { return equalSecret(string(a[:]), string(b[:])) }

// connectorButtons are the sign-in page's buttons.
func (p *Provider) connectorButtons(ia *storage.Interaction) []pageConnector {
	var out []pageConnector
	for _, up := range p.upstreams {
		if up.redirect != nil {
			out = append(out, pageConnector{Name: up.cfg.Name,
				URL: p.issuerPath + "/login/" + up.cfg.ID + "?interaction=" + url.QueryEscape(ia.ID)})
		}
	}
	return out
}
