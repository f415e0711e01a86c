package provider

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// adminStore is what the admin API changes in the store.
type adminStore interface {
	ListClients(ctx context.Context) ([]*storage.Client, error)
	GetClient(ctx context.Context, id string) (*storage.Client, error)
	DeleteClient(ctx context.Context, id string) error
	GetUser(ctx context.Context, id string) (*storage.User, error)
	GetIdentity(ctx context.Context, connectorID, subject string) (*storage.Identity, error)
	ListIdentities(ctx context.Context, userID string) ([]*storage.Identity, error)
	DeleteIdentity(ctx context.Context, connectorID, subject string) error
	ListFactors(ctx context.Context, userID string) ([]*storage.Factor, error)
	DeleteFactors(ctx context.Context, userID, kind string) (int, error)
}

// The admin API: JSON over the admin listener, for operators and scripts.

// ClientView is a client as operators see it (admin API, CLI): never the
// secret hash.
type ClientView struct {
	ID                               string                         `json:"client_id"`
	Name                             string                         `json:"client_name"`
	Confidential                     bool                           `json:"confidential"`
	RedirectURIs                     []string                       `json:"redirect_uris,omitempty"`
	GrantTypes                       []string                       `json:"grant_types,omitempty"`
	TokenEndpointAuthMethod          string                         `json:"token_endpoint_auth_method"`
	Scopes                           []string                       `json:"scopes,omitempty"`
	Audiences                        []string                       `json:"audiences,omitempty"`
	DefaultAudience                  string                         `json:"default_audience,omitempty"`
	PostLogoutRedirectURIs           []string                       `json:"post_logout_redirect_uris,omitempty"`
	AccessTokenFormat                string                         `json:"access_token_format"`
	AccessTokenTTL                   string                         `json:"access_token_ttl,omitempty"`
	FirstParty                       bool                           `json:"first_party"`
	IntrospectAny                    bool                           `json:"introspect_any"`
	DefaultConnector                 string                         `json:"default_connector,omitempty"`
	RequireMFA                       bool                           `json:"require_mfa,omitempty"`
	AccessTokenClaims                []string                       `json:"access_token_claims,omitempty"`
	StaticClaims                     map[string]any                 `json:"static_claims,omitempty"`
	Roles                            map[string]map[string][]string `json:"roles,omitempty"`
	TokenHook                        bool                           `json:"token_hook,omitempty"`
	JWKS                             map[string]any                 `json:"jwks,omitempty"`
	JWKSURI                          string                         `json:"jwks_uri,omitempty"`
	FederatedIssuer                  string                         `json:"federated_issuer,omitempty"`
	FederatedSubject                 string                         `json:"federated_subject,omitempty"`
	FederatedAudience                string                         `json:"federated_audience,omitempty"`
	FederatedJWKSURI                 string                         `json:"federated_jwks_uri,omitempty"`
	RequirePAR                       bool                           `json:"require_pushed_authorization_requests,omitempty"`
	BackchannelLogoutURI             string                         `json:"backchannel_logout_uri,omitempty"`
	BackchannelLogoutSessionRequired bool                           `json:"backchannel_logout_session_required,omitempty"`
	CreatedAt                        string                         `json:"created_at"`
}

// ViewClient is c as operators see it.
func ViewClient(c *storage.Client) ClientView {
	v := ClientView{
		ID: c.ID, Name: c.Name, Confidential: len(c.SecretHash) > 0, RedirectURIs: c.RedirectURIs,
		GrantTypes: c.GrantTypes, TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, Scopes: c.Scopes,
		Audiences: c.Audiences, DefaultAudience: c.DefaultAudience, PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
		AccessTokenFormat: c.AccessTokenFormat, FirstParty: c.FirstParty, IntrospectAny: c.IntrospectAny,
		DefaultConnector: c.DefaultConnector, RequireMFA: c.RequireMFA,
		AccessTokenClaims: c.AccessTokenClaims, StaticClaims: c.StaticClaims, Roles: c.Roles, TokenHook: c.TokenHook,
		JWKS: jwksMap(c.JWKS), JWKSURI: c.JWKSURI, FederatedIssuer: c.FederatedIssuer, FederatedSubject: c.FederatedSubject,
		FederatedAudience: c.FederatedAudience, FederatedJWKSURI: c.FederatedJWKSURI, CreatedAt: c.CreatedAt.Format(time.RFC3339),
		RequirePAR: c.RequirePAR, BackchannelLogoutURI: c.BackchannelLogoutURI, BackchannelLogoutSessionRequired: c.BackchannelLogoutSessionRequired,
	}
	if c.AccessTokenTTL > 0 {
		v.AccessTokenTTL = c.AccessTokenTTL.String()
	}
	return v
}

func (p *Provider) adminRoutes(a *oauth.Adapter) fasthttp.RequestHandler {
	r := newRouter(a)
	r.GET("/admin/v1/openapi.json", a.Handle("admin_openapi", p.serveBytes(adminOpenAPI)))
	r.GET("/admin/v1/clients", a.Handle("admin_clients_list", p.adminListClients))
	r.POST("/admin/v1/clients", a.Handle("admin_clients_create", p.adminCreateClient))
	r.GET("/admin/v1/clients/{id}", a.Handle("admin_clients_get", p.adminGetClient))
	r.PUT("/admin/v1/clients/{id}", a.Handle("admin_clients_replace", p.adminReplaceClient))
	r.PATCH("/admin/v1/clients/{id}", a.Handle("admin_clients_patch", p.adminPatchClient))
	r.DELETE("/admin/v1/clients/{id}", a.Handle("admin_clients_delete", p.adminDeleteClient))
	r.POST("/admin/v1/clients/{id}/secret", a.Handle("admin_clients_rotate_secret", p.adminRotateSecret))
	r.GET("/admin/v1/users", a.Handle("admin_users_list", p.adminListUsers))
	r.POST("/admin/v1/users", a.Handle("admin_users_create", p.adminCreateUser))
	r.GET("/admin/v1/users/{id}", a.Handle("admin_users_get", p.adminGetUser))
	r.PATCH("/admin/v1/users/{id}", a.Handle("admin_users_patch", p.adminPatchUser))
	r.DELETE("/admin/v1/users/{id}", a.Handle("admin_users_delete", p.adminDeleteUser))
	r.PUT("/admin/v1/users/{id}/password", a.Handle("admin_users_password", p.adminSetPassword))
	r.GET("/admin/v1/users/{id}/sessions", a.Handle("admin_sessions_list", p.adminListSessions))
	r.DELETE("/admin/v1/users/{id}/sessions", a.Handle("admin_sessions_end", p.adminEndSessions))
	r.DELETE("/admin/v1/users/{id}/sessions/{sid}", a.Handle("admin_sessions_end", p.adminEndSessions))
	r.GET("/admin/v1/users/{id}/consents", a.Handle("admin_consents_list", p.adminListConsents))
	r.DELETE("/admin/v1/users/{id}/consents/{client}", a.Handle("admin_consents_revoke", p.adminRevokeConsent))
	r.GET("/admin/v1/connectors", a.Handle("admin_connectors_list", p.adminListConnectors))
	r.GET("/admin/v1/users/{id}/identities", a.Handle("admin_identities_list", p.adminListIdentities))
	r.DELETE("/admin/v1/users/{id}/identities", a.Handle("admin_identities_unlink", p.adminUnlink))
	r.GET("/admin/v1/users/{id}/factors", a.Handle("admin_factors_list", p.adminListFactors))
	r.DELETE("/admin/v1/users/{id}/factors", a.Handle("admin_factors_reset", p.adminResetFactors))
	r.GET("/admin/v1/audit", a.Handle("admin_audit_list", p.adminListAudit))
	r.GET("/admin/v1/registration-tokens", a.Handle("admin_registration_tokens_list", p.adminListRegistrationTokens))
	r.POST("/admin/v1/registration-tokens", a.Handle("admin_registration_tokens_create", p.adminCreateRegistrationToken))
	r.DELETE("/admin/v1/registration-tokens/{name}", a.Handle("admin_registration_tokens_revoke", p.adminRevokeRegistrationToken))
	r.GET("/admin/v1/keys", a.Handle("admin_keys_list", p.adminListKeys))
	r.POST("/admin/v1/keys/rotate", a.Handle("admin_keys_rotate", p.adminRotateKey))
	r.POST("/admin/v1/keys/{kid}/revoke", a.Handle("admin_keys_revoke", p.adminRevokeKey))
	return r.Handler
}

func storeErr(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return oauth.New(http.StatusNotFound, "not_found", "no such record")
	}
	return oauth.ErrUnavailable(err)
}

func (p *Provider) adminGetClient(ctx *fasthttp.RequestCtx) error {
	id, _ := ctx.UserValue("id").(string)
	sctx, cancel := requestCtx()
	defer cancel()
	c, err := p.adminDB.GetClient(sctx, id)
	if err != nil {
		return storeErr(err)
	}
	return oauth.WriteJSON(ctx, http.StatusOK, ViewClient(c))
}

func (p *Provider) adminDeleteClient(ctx *fasthttp.RequestCtx) error {
	id, _ := ctx.UserValue("id").(string)
	sctx, cancel := requestCtx()
	defer cancel()
	if err := p.adminDB.DeleteClient(sctx, id); err != nil {
		return storeErr(err)
	}
	p.ForgetClient(id)
	p.audit("client.deleted", "client_id", id, "by", adminBy(ctx), "ip", ctx.RemoteIP().String(), "request_id", oauth.RequestID(ctx))
	ctx.SetStatusCode(http.StatusNoContent)
	return nil
}

// KeyView is a signing key as operators see it: never the private half.
type KeyView struct {
	KID       string `json:"kid"`
	Alg       string `json:"alg"`
	State     string `json:"state"`
	CreatedAt string `json:"created_at"`
	Activates string `json:"activates_at"`
	Retires   string `json:"retires_at,omitempty"`
}

func viewKeys(recs []keys.Record) []KeyView {
	out := make([]KeyView, len(recs))
	for i, r := range recs {
		out[i] = KeyView{KID: r.ID, Alg: r.Alg, State: string(r.State), CreatedAt: r.CreatedAt.Format(time.RFC3339),
			Activates: r.ActivatesAt.Format(time.RFC3339)}
		if !r.RetiresAt.IsZero() {
			out[i].Retires = r.RetiresAt.Format(time.RFC3339)
		}
	}
	return out
}

func (p *Provider) adminListKeys(ctx *fasthttp.RequestCtx) error {
	return oauth.WriteJSON(ctx, http.StatusOK, viewKeys(p.ring.Keys()))
}

// adminRotateKey stages a new key for ?alg= (default: the access token
// algorithm); it signs once it has been published for the pre-publish lead.
func (p *Provider) adminRotateKey(ctx *fasthttp.RequestCtx) error {
	alg := string(ctx.QueryArgs().Peek("alg"))
	if alg == "" {
		alg = p.cfg.AccessTokenAlg
	}
	if !slices.Contains(p.ring.Algs(), alg) {
		return oauth.ErrInvalidRequest("alg %q is not one the ring keeps", alg)
	}
	sctx, cancel := requestCtx()
	defer cancel()
	staged, err := p.ring.Rotate(sctx, alg)
	if err != nil {
		return oauth.ErrUnavailable(err)
	}
	p.audit("key.rotated", "kid", staged.ID, "alg", alg, "by", adminBy(ctx), "ip", ctx.RemoteIP().String(), "request_id", oauth.RequestID(ctx))
	return oauth.WriteJSON(ctx, http.StatusOK, viewKeys(p.ring.Keys()))
}

// adminRevokeKey is the emergency revocation: the key leaves the JWKS, and
// this process stops signing with it before answering (other replicas on
// their next ring reload).
func (p *Provider) adminRevokeKey(ctx *fasthttp.RequestCtx) error {
	kid, _ := ctx.UserValue("kid").(string)
	sctx, cancel := requestCtx()
	defer cancel()
	if err := p.ring.Revoke(sctx, kid); errors.Is(err, keys.ErrNoSuchKey) {
		return oauth.New(http.StatusNotFound, "not_found", "no such key")
	} else if err != nil {
		return oauth.ErrUnavailable(err)
	}
	p.audit("key.revoked", "kid", kid, "by", adminBy(ctx), "ip", ctx.RemoteIP().String(), "request_id", oauth.RequestID(ctx))
	return oauth.WriteJSON(ctx, http.StatusOK, viewKeys(p.ring.Keys()))
}

// ConnectorStatus is a connector and whether it answers.
type ConnectorStatus struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Healthy bool   `json:"healthy"`
	Error   string `json:"error,omitempty"`
	Latency string `json:"latency"`
}

// checkUpstreams asks each connector, at once, whether its upstream
// answers (discovery, the API root, a service bind), within timeout.
func checkUpstreams(ctx context.Context, ups []*upstream, timeout time.Duration) []ConnectorStatus {
	out := make([]ConnectorStatus, len(ups))
	var wg sync.WaitGroup
	for i, up := range ups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			start := time.Now()
			err := up.check(cctx)
			out[i] = ConnectorStatus{ID: up.cfg.ID, Type: up.cfg.Type, Name: up.cfg.Name, Healthy: err == nil,
				Latency: time.Since(start).Round(time.Millisecond).String()}
			if err != nil {
				out[i].Error = err.Error()
			}
		}()
	}
	wg.Wait()
	return out
}

// CheckConnectors builds cfg's connectors and checks each, as `oidcgate
// connectors list` does from wherever it runs.
func CheckConnectors(ctx context.Context, cfg Config) ([]ConnectorStatus, error) {
	ups, err := newUpstreams(cfg, time.Now)
	if err != nil {
		return nil, err
	}
	return checkUpstreams(ctx, ups, 10*time.Second), nil
}

// adminListConnectors reports the connectors as this process sees them.
func (p *Provider) adminListConnectors(ctx *fasthttp.RequestCtx) error {
	return oauth.WriteJSON(ctx, http.StatusOK, checkUpstreams(context.Background(), p.upstreams, 5*time.Second))
}

// IdentityView is a linked upstream identity as operators see it.
type IdentityView struct {
	Connector   string         `json:"connector"`
	Subject     string         `json:"subject"`
	Claims      map[string]any `json:"claims,omitempty"`
	CreatedAt   string         `json:"created_at"`
	LastLoginAt string         `json:"last_login_at"`
}

// ViewIdentities is links as operators see them.
func ViewIdentities(links []*storage.Identity) []IdentityView {
	out := make([]IdentityView, len(links))
	for i, l := range links {
		out[i] = IdentityView{Connector: l.ConnectorID, Subject: l.Subject, Claims: l.Claims,
			CreatedAt: l.CreatedAt.Format(time.RFC3339), LastLoginAt: l.LastLoginAt.Format(time.RFC3339)}
	}
	return out
}

func (p *Provider) adminListIdentities(ctx *fasthttp.RequestCtx) error {
	return adminUserListing(p, ctx, p.adminDB.ListIdentities, func(l []*storage.Identity) any { return ViewIdentities(l) })
}

// adminUnlink removes the link ?connector=&subject= of the user: that
// upstream identity's next sign-in links anew — to the user created for it
// at its first sign-in if that user still exists (its username is
// connector:subject), else by email where the connector allows it, else to
// a new user. Unlink from a local user to undo a link made by email.
func (p *Provider) adminUnlink(ctx *fasthttp.RequestCtx) error {
	id, _ := ctx.UserValue("id").(string)
	q := ctx.QueryArgs()
	conn, sub := string(q.Peek("connector")), string(q.Peek("subject"))
	if conn == "" || sub == "" {
		return oauth.ErrInvalidRequest("connector and subject are required")
	}
	sctx, cancel := requestCtx()
	defer cancel()
	if err := UnlinkIdentity(sctx, p.adminDB, id, conn, sub); err != nil {
		return storeErr(err)
	}
	p.audit("identity.unlinked", "user_id", id, "connector", conn, "by", adminBy(ctx), "ip", ctx.RemoteIP().String())
	ctx.SetStatusCode(http.StatusNoContent)
	return nil
}

// FactorView is a second factor as operators see it: never its secret.
type FactorView struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	Name       string `json:"name,omitempty"`
	CreatedAt  string `json:"created_at"`
	LastUsedAt string `json:"last_used_at,omitempty"`
}

// ViewFactors is a user's factors as operators see them; recovery codes
// are listed only while unused.
func ViewFactors(factors []*storage.Factor) []FactorView {
	out := []FactorView{}
	for _, f := range factors {
		if f.Kind == storage.FactorRecovery && f.Counter != 0 {
			continue
		}
		v := FactorView{ID: f.ID, Kind: f.Kind, Name: f.Name, CreatedAt: f.CreatedAt.Format(time.RFC3339)}
		if !f.LastUsedAt.IsZero() {
			v.LastUsedAt = f.LastUsedAt.Format(time.RFC3339)
		}
		out = append(out, v)
	}
	return out
}

func (p *Provider) adminListFactors(ctx *fasthttp.RequestCtx) error {
	return adminUserListing(p, ctx, p.adminDB.ListFactors, func(l []*storage.Factor) any { return ViewFactors(l) })
}

// adminResetFactors removes a user's second factors (?kind= one kind):
// the user who lost a phone or key signs in with the password again and
// sets up a new one.
func (p *Provider) adminResetFactors(ctx *fasthttp.RequestCtx) error {
	id, _ := ctx.UserValue("id").(string)
	kind := string(ctx.QueryArgs().Peek("kind"))
	if kind != "" && kind != storage.FactorTOTP && kind != storage.FactorWebAuthn && kind != storage.FactorRecovery {
		return oauth.ErrInvalidRequest("kind must be totp, webauthn or recovery")
	}
	sctx, cancel := requestCtx()
	defer cancel()
	n, err := ResetFactors(sctx, p.adminDB, id, kind)
	if err != nil {
		return storeErr(err)
	}
	p.audit("mfa.reset", "user_id", id, "kind", kind, "removed", n, "by", adminBy(ctx), "ip", ctx.RemoteIP().String(), "request_id", oauth.RequestID(ctx))
	return oauth.WriteJSON(ctx, http.StatusOK, map[string]int{"removed": n})
}

// ResetFactors removes the second factors of the user userID of kind (""
// all); removing the last factor that can be asked for removes the
// recovery codes too. storage.ErrNotFound when there is no such user.
func ResetFactors(ctx context.Context, store interface {
	GetUser(ctx context.Context, id string) (*storage.User, error)
	ListFactors(ctx context.Context, userID string) ([]*storage.Factor, error)
	DeleteFactors(ctx context.Context, userID, kind string) (int, error)
}, userID, kind string) (int, error) {
	if _, err := store.GetUser(ctx, userID); err != nil {
		return 0, err
	}
	n, err := store.DeleteFactors(ctx, userID, kind)
	if err != nil || kind == "" || kind == storage.FactorRecovery {
		return n, err
	}
	left, err := store.ListFactors(ctx, userID)
	if err != nil || secondFactors(left) {
		return n, err
	}
	m, err := store.DeleteFactors(ctx, userID, storage.FactorRecovery)
	return n + m, err
}

// UnlinkIdentity removes the link (connector, subject) of the user userID;
// storage.ErrNotFound when that user has no such link.
func UnlinkIdentity(ctx context.Context, store interface {
	GetIdentity(ctx context.Context, connectorID, subject string) (*storage.Identity, error)
	DeleteIdentity(ctx context.Context, connectorID, subject string) error
}, userID, connectorID, subject string) error {
	l, err := store.GetIdentity(ctx, connectorID, subject)
	if err != nil {
		return err
	}
	if l.UserID != userID {
		return storage.ErrNotFound
	}
	return store.DeleteIdentity(ctx, connectorID, subject)
}
