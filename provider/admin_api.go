package provider

import (
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"gopkg.in/yaml.v3"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// The admin REST API's writes: clients (create with a generated secret
// shown once, replace, merge-patch, rotate the secret with an overlap),
// users (create, search, patch, set the password, delete), a user's
// sessions and consents. Errors are RFC 9457 problem details; every
// operation is in admin_openapi.yaml, served at /admin/v1/openapi.json.

//go:embed admin_openapi.yaml
var adminOpenAPIYAML []byte

// adminOpenAPI is the admin API's OpenAPI document, as served (JSON).
var adminOpenAPI = func() []byte {
	var doc any
	if err := yaml.Unmarshal(adminOpenAPIYAML, &doc); err != nil {
		panic(err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return b
}()

// adminWriteStore is what the admin API's writes use of the store.
type adminWriteStore interface {
	CreateClient(ctx context.Context, c *storage.Client) error
	UpdateClient(ctx context.Context, c *storage.Client) error
	CreateUser(ctx context.Context, u *storage.User) error
	UpdateUser(ctx context.Context, u *storage.User) error
	DeleteUser(ctx context.Context, id string) error
	ListUsers(ctx context.Context) ([]*storage.User, error)
	ListSessions(ctx context.Context, userID string) ([]*storage.Session, error)
	ListConsents(ctx context.Context, userID string) ([]*storage.Consent, error)
	DeleteConsent(ctx context.Context, userID, clientID string) error
}

// durationJSON is a duration written as Go writes one ("1h30m").
type durationJSON time.Duration

func (d durationJSON) MarshalJSON() ([]byte, error) {
	if d == 0 {
		return []byte(`""`), nil
	}
	return json.Marshal(time.Duration(d).String())
}

func (d *durationJSON) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`a duration is a string like "1h30m"`)
	}
	if s == "" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a duration like \"1h30m\"", s)
	}
	*d = durationJSON(v)
	return nil
}

// clientSpecJSON is ClientSpec in the admin API: lifetimes as strings.
type clientSpecJSON struct {
	ClientSpec
	AccessTokenTTL  durationJSON `json:"access_token_ttl"`
	RefreshTokenTTL durationJSON `json:"refresh_token_ttl"`
	IDTokenTTL      durationJSON `json:"id_token_ttl"`
}

func (s clientSpecJSON) spec() ClientSpec {
	c := s.ClientSpec
	c.AccessTokenTTL, c.RefreshTokenTTL, c.IDTokenTTL = time.Duration(s.AccessTokenTTL), time.Duration(s.RefreshTokenTTL), time.Duration(s.IDTokenTTL)
	return c
}

// SpecOf is the spec that builds c (without its secret).
func SpecOf(c *storage.Client) ClientSpec {
	return ClientSpec{ID: c.ID, Name: c.Name, Public: c.TokenEndpointAuthMethod == authNone, TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
		RedirectURIs: c.RedirectURIs, PostLogoutRedirectURIs: c.PostLogoutRedirectURIs, GrantTypes: c.GrantTypes, Scopes: c.Scopes,
		Audiences: c.Audiences, DefaultAudience: c.DefaultAudience, AccessTokenFormat: c.AccessTokenFormat,
		AccessTokenTTL: c.AccessTokenTTL, RefreshTokenTTL: c.RefreshTokenTTL, IDTokenTTL: c.IDTokenTTL, FirstParty: c.FirstParty,
		IDTokenSignedResponseAlg: c.IDTokenSignedResponseAlg, IntrospectAny: c.IntrospectAny, DefaultConnector: c.DefaultConnector,
		RequireMFA: c.RequireMFA, AccessTokenClaims: c.AccessTokenClaims, StaticClaims: c.StaticClaims, Roles: c.Roles, TokenHook: c.TokenHook,
		JWKS: jwksMap(c.JWKS), JWKSURI: c.JWKSURI, FederatedIssuer: c.FederatedIssuer, FederatedSubject: c.FederatedSubject,
		FederatedAudience: c.FederatedAudience, FederatedJWKSURI: c.FederatedJWKSURI, DPoPBoundAccessTokens: c.DPoPBoundAccessTokens,
		TokenExchangeScopes: c.TokenExchangeScopes,
		TLSSubjectDN:        c.TLSSubjectDN, TLSSANDNS: c.TLSSANDNS, TLSSANURI: c.TLSSANURI, TLSSANIP: c.TLSSANIP,
		TLSSANEmail: c.TLSSANEmail, TLSCertBoundAccessTokens: c.TLSCertBoundAccessTokens,
		RequirePAR: c.RequirePAR, BackchannelLogoutURI: c.BackchannelLogoutURI, BackchannelLogoutSessionRequired: c.BackchannelLogoutSessionRequired}
}

// jwksMap is a stored JWKS as the spec holds it.
func jwksMap(b []byte) map[string]any {
	if len(b) == 0 {
		return nil
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// AdminClientBody is spec as the admin API takes it (lifetimes as strings).
func AdminClientBody(spec ClientSpec) any { return specJSON(spec) }

func specJSON(s ClientSpec) clientSpecJSON {
	return clientSpecJSON{ClientSpec: s, AccessTokenTTL: durationJSON(s.AccessTokenTTL), RefreshTokenTTL: durationJSON(s.RefreshTokenTTL),
		IDTokenTTL: durationJSON(s.IDTokenTTL)}
}

// readJSON decodes the request body strictly (unknown fields, trailing
// data and other media types are errors).
func readJSON(rc *fasthttp.RequestCtx, v any, types ...string) error {
	ct, _, _ := strings.Cut(string(rc.Request.Header.ContentType()), ";")
	if !slices.Contains(append(types, "application/json"), strings.TrimSpace(strings.ToLower(ct))) {
		return oauth.New(http.StatusUnsupportedMediaType, "invalid_request", "the body must be %s", strings.Join(append(types, "application/json"), " or "))
	}
	dec := json.NewDecoder(bytes.NewReader(rc.PostBody()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return oauth.ErrInvalidRequest("the body is not the JSON this operation takes: %v", err)
	}
	if dec.More() {
		return oauth.ErrInvalidRequest("the body has data after its JSON value")
	}
	return nil
}

// createdClient is a new client's view with its secret, shown once.
type createdClient struct {
	ClientView
	Secret string `json:"client_secret,omitempty"`
}

func (p *Provider) adminCreateClient(rc *fasthttp.RequestCtx) error {
	var in clientSpecJSON
	if err := readJSON(rc, &in); err != nil {
		return err
	}
	spec := in.spec()
	c, generated, err := spec.Build(p.now())
	if err != nil {
		return oauth.ErrInvalidRequest("%v", err)
	}
	if err := SealClientSecret(p.ring, c, cmpOr(spec.Secret, generated)); err != nil {
		return oauth.ErrUnavailable(err)
	}
	sctx, cancel := requestCtx()
	defer cancel()
	if err := p.adminWrites.CreateClient(sctx, c); errors.Is(err, storage.ErrAlreadyExists) {
		return oauth.New(http.StatusConflict, "conflict", "a client %q exists", c.ID)
	} else if err != nil {
		return oauth.ErrUnavailable(err)
	}
	p.ForgetClient(c.ID)
	p.audit("client.created", "client_id", c.ID, "by", adminBy(rc), "ip", rc.RemoteIP().String(), "request_id", oauth.RequestID(rc))
	rc.Response.Header.Set("Location", "/admin/v1/clients/"+c.ID)
	return oauth.WriteJSON(rc, http.StatusCreated, createdClient{ClientView: ViewClient(c), Secret: generated})
}

// adminListClients pages through clients by ID: ?limit= (1-500, 100) and
// ?after= (the last ID of the page before).
func (p *Provider) adminListClients(rc *fasthttp.RequestCtx) error {
	limit, after, err := paging(rc)
	if err != nil {
		return err
	}
	sctx, cancel := requestCtx()
	defer cancel()
	clients, err := p.adminDB.ListClients(sctx)
	if err != nil {
		return storeErr(err)
	}
	slices.SortFunc(clients, func(a, b *storage.Client) int { return cmp.Compare(a.ID, b.ID) })
	page, next := pageOf(clients, func(c *storage.Client) string { return c.ID }, after, limit)
	out := page2[ClientView]{Items: make([]ClientView, len(page)), Next: next}
	for i, c := range page {
		out.Items[i] = ViewClient(c)
	}
	return oauth.WriteJSON(rc, http.StatusOK, out)
}

// page2 is one page of a listing; Next is the ?after= of the next page.
type page2[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

func paging(rc *fasthttp.RequestCtx) (limit int, after string, err error) {
	q := rc.QueryArgs()
	limit = 100
	if s := string(q.Peek("limit")); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 500 {
			return 0, "", oauth.ErrInvalidRequest("limit must be 1 to 500")
		}
	}
	return limit, string(q.Peek("after")), nil
}

// pageOf is the page of sorted items after the key after, and the key to
// ask the next page after ("" on the last).
func pageOf[T any](sorted []T, key func(T) string, after string, limit int) ([]T, string) {
	i := 0
	if after != "" {
		i, _ = slices.BinarySearchFunc(sorted, after, func(x T, k string) int { return cmp.Compare(key(x), k) })
		if i < len(sorted) && key(sorted[i]) == after {
			i++
		}
	}
	end := min(i+limit, len(sorted))
	page := sorted[i:end]
	if end < len(sorted) {
		return page, key(sorted[end-1])
	}
	return page, ""
}

// adminReplaceClient is PUT: the body is the whole client; its secret is
// kept unless the body gives one.
func (p *Provider) adminReplaceClient(rc *fasthttp.RequestCtx) error {
	var in clientSpecJSON
	if err := readJSON(rc, &in); err != nil {
		return err
	}
	return p.updateClient(rc, func(ClientSpec) (ClientSpec, error) { return in.spec(), nil })
}

// adminPatchClient is PATCH with a JSON merge patch (RFC 7396).
func (p *Provider) adminPatchClient(rc *fasthttp.RequestCtx) error {
	var patch map[string]any
	if err := readJSON(rc, &patch, "application/merge-patch+json"); err != nil {
		return err
	}
	return p.updateClient(rc, func(old ClientSpec) (ClientSpec, error) {
		var doc map[string]any
		b, _ := json.Marshal(specJSON(old))
		json.Unmarshal(b, &doc)
		merged, _ := json.Marshal(mergePatch(doc, patch))
		var out clientSpecJSON
		dec := json.NewDecoder(bytes.NewReader(merged))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&out); err != nil {
			return ClientSpec{}, oauth.ErrInvalidRequest("the patched client is not valid: %v", err)
		}
		return out.spec(), nil
	})
}

// mergePatch applies an RFC 7396 merge patch to doc.
func mergePatch(doc, patch map[string]any) map[string]any {
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(doc, k)
		case map[string]any:
			sub, _ := doc[k].(map[string]any)
			if sub == nil {
				sub = map[string]any{}
			}
			doc[k] = mergePatch(sub, pv)
		default:
			doc[k] = v
		}
	}
	return doc
}

// updateClient rebuilds the client {id} from change(its spec), keeping
// its ID, creation time and secret (unless the new spec sets one).
func (p *Provider) updateClient(rc *fasthttp.RequestCtx, change func(ClientSpec) (ClientSpec, error)) error {
	id, _ := rc.UserValue("id").(string)
	sctx, cancel := requestCtx()
	defer cancel()
	old, err := p.adminDB.GetClient(sctx, id)
	if err != nil {
		return storeErr(err)
	}
	spec, err := change(SpecOf(old))
	if err != nil {
		return err
	}
	if spec.ID != "" && spec.ID != id {
		return oauth.ErrInvalidRequest("client_id cannot change")
	}
	spec.ID = id
	c, _, err := spec.Build(p.now())
	if err != nil {
		return oauth.ErrInvalidRequest("%v", err)
	}
	if spec.Secret == "" && !spec.Public {
		c.SecretHash, c.SecretSalt = old.SecretHash, old.SecretSalt
		c.PreviousSecretHash, c.PreviousSecretExpiresAt = old.PreviousSecretHash, old.PreviousSecretExpiresAt
		if c.TokenEndpointAuthMethod == authSecretJWT {
			if len(old.SealedSecret) == 0 {
				return oauth.ErrInvalidRequest("a client_secret_jwt client needs its secret kept sealed: give client_secret, or rotate the secret after the change")
			}
			c.SealedSecret, c.PreviousSealedSecret = old.SealedSecret, old.PreviousSealedSecret
		}
	} else if err := SealClientSecret(p.ring, c, spec.Secret); err != nil {
		return oauth.ErrUnavailable(err)
	}
	c.CreatedAt = old.CreatedAt
	if err := p.adminWrites.UpdateClient(sctx, c); err != nil {
		return storeErr(err)
	}
	p.ForgetClient(id)
	p.audit("client.updated", "client_id", id, "by", adminBy(rc), "ip", rc.RemoteIP().String(), "request_id", oauth.RequestID(rc))
	return oauth.WriteJSON(rc, http.StatusOK, ViewClient(c))
}

// adminRotateSecret gives a confidential client a new secret; the old one
// keeps working for ?overlap= (default 24h, at most 30 days; 0: ends now).
func (p *Provider) adminRotateSecret(rc *fasthttp.RequestCtx) error {
	id, _ := rc.UserValue("id").(string)
	overlap := 24 * time.Hour
	if s := string(rc.QueryArgs().Peek("overlap")); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > 30*24*time.Hour {
			return oauth.ErrInvalidRequest("overlap must be a duration from 0 to 720h, like 24h")
		}
		overlap = d
	}
	sctx, cancel := requestCtx()
	defer cancel()
	c, err := p.adminDB.GetClient(sctx, id)
	if err != nil {
		return storeErr(err)
	}
	if c.TokenEndpointAuthMethod == authNone {
		return oauth.ErrInvalidRequest("a public client has no secret")
	}
	now := p.now()
	secret := GenerateSecret()
	c.PreviousSecretHash, c.PreviousSecretExpiresAt = c.SecretHash, now.Add(overlap)
	c.SecretHash, c.UpdatedAt = hashSecret(secret, c.SecretSalt), now
	previous := c.SealedSecret
	if err := SealClientSecret(p.ring, c, secret); err != nil {
		return oauth.ErrUnavailable(err)
	}
	if len(c.SealedSecret) > 0 {
		c.PreviousSealedSecret = previous
	}
	if err := p.adminWrites.UpdateClient(sctx, c); err != nil {
		return storeErr(err)
	}
	p.ForgetClient(id)
	p.audit("client.secret_rotated", "client_id", id, "overlap", overlap.String(), "by", adminBy(rc), "ip", rc.RemoteIP().String(), "request_id", oauth.RequestID(rc))
	return oauth.WriteJSON(rc, http.StatusOK, map[string]string{"client_id": id, "client_secret": secret,
		"previous_secret_expires_at": c.PreviousSecretExpiresAt.Format(time.RFC3339)})
}

// adminBy names who made an admin request (its token's name).
func adminBy(rc *fasthttp.RequestCtx) string {
	who, _ := rc.UserValue(adminWho).(string)
	return who
}

// UserView is a user as operators see it: never the password hash.
type UserView struct {
	Sub       string         `json:"sub"`
	Username  string         `json:"username"`
	Claims    map[string]any `json:"claims"`
	Groups    []string       `json:"groups"`
	Disabled  bool           `json:"disabled"`
	Password  bool           `json:"has_password"`
	CreatedAt string         `json:"created_at"`
	UpdatedAt string         `json:"updated_at"`
}

// ViewUser is u as operators see it; groups are the "groups" claim.
func ViewUser(u *storage.User) UserView {
	v := UserView{Sub: u.ID, Username: u.Username, Claims: u.Claims, Groups: []string{}, Disabled: u.Disabled, Password: u.PasswordHash != "",
		CreatedAt: u.CreatedAt.Format(time.RFC3339), UpdatedAt: u.UpdatedAt.Format(time.RFC3339)}
	if v.Claims == nil {
		v.Claims = map[string]any{}
	}
	if gs, ok := u.Claims["groups"].([]any); ok {
		for _, g := range gs {
			if s, ok := g.(string); ok {
				v.Groups = append(v.Groups, s)
			}
		}
	}
	return v
}

// userInput is a user created or patched through the admin API.
type userInput struct {
	Username *string         `json:"username"`
	Password *string         `json:"password"`
	Claims   *map[string]any `json:"claims"`
	Groups   *[]string       `json:"groups"`
	Disabled *bool           `json:"disabled"`
}

// apply sets what in gives on u (its password hashed with cost).
func (p *Provider) applyUser(ctx context.Context, u *storage.User, in userInput) error {
	if in.Claims != nil {
		u.Claims = *in.Claims
		delete(u.Claims, "sub") // the subject is the user's ID, never a claim to set
	}
	if in.Groups != nil {
		if u.Claims == nil {
			u.Claims = map[string]any{}
		}
		groups := make([]any, len(*in.Groups))
		for i, g := range *in.Groups {
			groups[i] = g
		}
		u.Claims["groups"] = groups
	}
	if in.Disabled != nil {
		u.Disabled = *in.Disabled
	}
	if in.Password != nil {
		if err := ValidatePassword(*in.Password); err != nil {
			return oauth.ErrInvalidRequest("%v", err)
		}
		hash, err := p.passwords.hash(ctx, *in.Password)
		if err != nil {
			return err
		}
		u.PasswordHash = hash
	}
	return nil
}

func (p *Provider) adminCreateUser(rc *fasthttp.RequestCtx) error {
	var in userInput
	if err := readJSON(rc, &in); err != nil {
		return err
	}
	if in.Username == nil || !ValidUsername(*in.Username) {
		return oauth.ErrInvalidRequest("username: 1-256 characters, no surrounding spaces or line breaks")
	}
	now := p.now()
	u := &storage.User{ID: NewUserID(), Username: *in.Username, CreatedAt: now, UpdatedAt: now}
	sctx, cancel := requestCtx()
	defer cancel()
	if err := p.applyUser(sctx, u, in); err != nil {
		return err
	}
	if err := p.adminWrites.CreateUser(sctx, u); errors.Is(err, storage.ErrAlreadyExists) {
		return oauth.New(http.StatusConflict, "conflict", "a user %q exists", u.Username)
	} else if err != nil {
		return oauth.ErrUnavailable(err)
	}
	p.audit("user.created", "user_id", u.ID, "by", adminBy(rc), "ip", rc.RemoteIP().String(), "request_id", oauth.RequestID(rc))
	rc.Response.Header.Set("Location", "/admin/v1/users/"+u.ID)
	return oauth.WriteJSON(rc, http.StatusCreated, ViewUser(u))
}

// adminListUsers pages through users by username (?limit=, ?after=); ?q=
// keeps those whose username, email or name contains it (any case).
func (p *Provider) adminListUsers(rc *fasthttp.RequestCtx) error {
	limit, after, err := paging(rc)
	if err != nil {
		return err
	}
	q := strings.ToLower(string(rc.QueryArgs().Peek("q")))
	sctx, cancel := requestCtx()
	defer cancel()
	users, err := p.adminWrites.ListUsers(sctx)
	if err != nil {
		return storeErr(err)
	}
	users = slices.DeleteFunc(users, func(u *storage.User) bool {
		email, _ := u.Claims["email"].(string)
		name, _ := u.Claims["name"].(string)
		return q != "" && !strings.Contains(strings.ToLower(u.Username+"\x00"+email+"\x00"+name), q)
	})
	slices.SortFunc(users, func(a, b *storage.User) int { return cmp.Compare(a.Username, b.Username) })
	page, next := pageOf(users, func(u *storage.User) string { return u.Username }, after, limit)
	out := page2[UserView]{Items: make([]UserView, len(page)), Next: next}
	for i, u := range page {
		out.Items[i] = ViewUser(u)
	}
	return oauth.WriteJSON(rc, http.StatusOK, out)
}

func (p *Provider) adminGetUser(rc *fasthttp.RequestCtx) error {
	id, _ := rc.UserValue("id").(string)
	sctx, cancel := requestCtx()
	defer cancel()
	u, err := p.adminDB.GetUser(sctx, id)
	if err != nil {
		return storeErr(err)
	}
	return oauth.WriteJSON(rc, http.StatusOK, ViewUser(u))
}

// adminPatchUser changes what the body names: claims, groups, disabled,
// password. Disabling a user ends their sessions.
func (p *Provider) adminPatchUser(rc *fasthttp.RequestCtx) error {
	var in userInput
	if err := readJSON(rc, &in, "application/merge-patch+json"); err != nil {
		return err
	}
	if in.Username != nil {
		return oauth.ErrInvalidRequest("a username cannot change: its user's sub is what applications know")
	}
	return p.changeUser(rc, in, "user.updated")
}

// adminSetPassword is PUT …/password {"password": "…"}.
func (p *Provider) adminSetPassword(rc *fasthttp.RequestCtx) error {
	var in struct {
		Password string `json:"password"`
	}
	if err := readJSON(rc, &in); err != nil {
		return err
	}
	return p.changeUser(rc, userInput{Password: &in.Password}, "user.password_set")
}

func (p *Provider) changeUser(rc *fasthttp.RequestCtx, in userInput, event string) error {
	id, _ := rc.UserValue("id").(string)
	sctx, cancel := requestCtx()
	defer cancel()
	u, err := p.adminDB.GetUser(sctx, id)
	if err != nil {
		return storeErr(err)
	}
	if err := p.applyUser(sctx, u, in); err != nil {
		return err
	}
	u.UpdatedAt = p.now()
	if err := p.adminWrites.UpdateUser(sctx, u); err != nil {
		return storeErr(err)
	}
	if u.Disabled {
		if _, err := p.endSessions(sctx, u.ID, ""); err != nil {
			return err
		}
	}
	p.audit(event, "user_id", u.ID, "by", adminBy(rc), "ip", rc.RemoteIP().String(), "request_id", oauth.RequestID(rc))
	return oauth.WriteJSON(rc, http.StatusOK, ViewUser(u))
}

func (p *Provider) adminDeleteUser(rc *fasthttp.RequestCtx) error {
	id, _ := rc.UserValue("id").(string)
	sctx, cancel := requestCtx()
	defer cancel()
	if _, err := p.endSessions(sctx, id, ""); err != nil {
		return err
	}
	if err := p.adminWrites.DeleteUser(sctx, id); err != nil {
		return storeErr(err)
	}
	p.audit("user.deleted", "user_id", id, "by", adminBy(rc), "ip", rc.RemoteIP().String(), "request_id", oauth.RequestID(rc))
	rc.SetStatusCode(http.StatusNoContent)
	return nil
}

// SessionView is a browser session as operators see it.
type SessionView struct {
	ID        string   `json:"id"`
	AuthTime  string   `json:"auth_time"`
	AMR       []string `json:"amr"`
	CreatedAt string   `json:"created_at"`
	ExpiresAt string   `json:"expires_at"`
}

// adminUserListing answers a listing of the user {id}'s records as view
// renders them; 404 when there is no such user.
func adminUserListing[T any](p *Provider, rc *fasthttp.RequestCtx, list func(ctx context.Context, userID string) ([]T, error), view func([]T) any) error {
	id, _ := rc.UserValue("id").(string)
	sctx, cancel := requestCtx()
	defer cancel()
	if _, err := p.adminDB.GetUser(sctx, id); err != nil {
		return storeErr(err)
	}
	records, err := list(sctx, id)
	if err != nil {
		return storeErr(err)
	}
	return oauth.WriteJSON(rc, http.StatusOK, view(records))
}

func (p *Provider) adminListSessions(rc *fasthttp.RequestCtx) error {
	return adminUserListing(p, rc, p.adminWrites.ListSessions, func(list []*storage.Session) any {
		out := make([]SessionView, len(list))
		for i, s := range list {
			out[i] = SessionView{ID: s.ID, AuthTime: s.AuthTime.Format(time.RFC3339), AMR: nonNil(s.AMR),
				CreatedAt: s.CreatedAt.Format(time.RFC3339), ExpiresAt: s.Deadline().Format(time.RFC3339)}
		}
		return out
	})
}

// adminEndSessions signs out one session of the user ({sid}) or all.
func (p *Provider) adminEndSessions(rc *fasthttp.RequestCtx) error {
	id, _ := rc.UserValue("id").(string)
	sid, _ := rc.UserValue("sid").(string)
	sctx, cancel := requestCtx()
	defer cancel()
	if _, err := p.adminDB.GetUser(sctx, id); err != nil {
		return storeErr(err)
	}
	n, err := p.endSessions(sctx, id, sid)
	if err != nil {
		return err
	}
	if sid != "" && n == 0 {
		return storeErr(storage.ErrNotFound)
	}
	p.audit("session.ended", "user_id", id, "sessions", n, "by", adminBy(rc), "ip", rc.RemoteIP().String(), "request_id", oauth.RequestID(rc))
	return oauth.WriteJSON(rc, http.StatusOK, map[string]int{"ended": n})
}

// endSessions ends the user's session sid, or all of them ("").
func (p *Provider) endSessions(ctx context.Context, userID, sid string) (int, error) {
	list, err := p.adminWrites.ListSessions(ctx, userID)
	if err != nil {
		return 0, oauth.ErrUnavailable(err)
	}
	n := 0
	for _, s := range list {
		if sid == "" || s.ID == sid {
			if err := p.revs.session(ctx, s); err != nil {
				return n, oauth.ErrUnavailable(err)
			}
			n++
		}
	}
	return n, nil
}

// ConsentView is a consent (a grant) as operators see it.
type ConsentView struct {
	ClientID  string   `json:"client_id"`
	Scopes    []string `json:"scopes"`
	CreatedAt string   `json:"created_at"`
}

func (p *Provider) adminListConsents(rc *fasthttp.RequestCtx) error {
	return adminUserListing(p, rc, p.adminWrites.ListConsents, func(list []*storage.Consent) any {
		out := make([]ConsentView, len(list))
		for i, c := range list {
			out[i] = ConsentView{ClientID: c.ClientID, Scopes: nonNil(c.Scopes), CreatedAt: c.CreatedAt.Format(time.RFC3339)}
		}
		return out
	})
}

// adminRevokeConsent withdraws a user's consent to a client: the grant's
// refresh tokens are refused (and revoked) at their next use.
func (p *Provider) adminRevokeConsent(rc *fasthttp.RequestCtx) error {
	id, _ := rc.UserValue("id").(string)
	client, _ := rc.UserValue("client").(string)
	sctx, cancel := requestCtx()
	defer cancel()
	if err := p.adminWrites.DeleteConsent(sctx, id, client); err != nil {
		return storeErr(err)
	}
	p.audit("consent.revoked", "user_id", id, "client_id", client, "by", adminBy(rc), "ip", rc.RemoteIP().String(), "request_id", oauth.RequestID(rc))
	rc.SetStatusCode(http.StatusNoContent)
	return nil
}

// nonNil is s, or an empty slice (JSON [] rather than null).
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// adminListAudit lists audit events, most recent first: ?event= (a name,
// or a prefix ending in "."), ?user_id=, ?client_id=, ?actor=, ?since=,
// ?until= (RFC 3339), ?limit= (1-500, 100).
func (p *Provider) adminListAudit(rc *fasthttp.RequestCtx) error {
	limit, _, err := paging(rc)
	if err != nil {
		return err
	}
	q := rc.QueryArgs()
	f := storage.AuditFilter{Event: string(q.Peek("event")), UserID: string(q.Peek("user_id")), ClientID: string(q.Peek("client_id")),
		Actor: string(q.Peek("actor")), Limit: limit}
	for name, t := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if s := string(q.Peek(name)); s != "" {
			if *t, err = time.Parse(time.RFC3339, s); err != nil {
				return oauth.ErrInvalidRequest("%s must be an RFC 3339 time", name)
			}
		}
	}
	sctx, cancel := requestCtx()
	defer cancel()
	events, err := p.auditDB.ListAuditEvents(sctx, f)
	if err != nil {
		return storeErr(err)
	}
	out := page2[auditView]{Items: make([]auditView, len(events))}
	for i, e := range events {
		out.Items[i] = auditView{ID: e.ID, Time: e.Time.Format(time.RFC3339Nano), Event: e.Event, Actor: e.Actor, IP: e.IP,
			RequestID: e.RequestID, UserID: e.UserID, ClientID: e.ClientID, Details: e.Details}
	}
	return oauth.WriteJSON(rc, http.StatusOK, out)
}

// auditView is an audit event in the admin API.
type auditView struct {
	ID        string         `json:"id"`
	Time      string         `json:"time"`
	Event     string         `json:"event"`
	Actor     string         `json:"actor,omitempty"`
	IP        string         `json:"ip,omitempty"`
	RequestID string         `json:"request_id,omitempty"`
	UserID    string         `json:"user_id,omitempty"`
	ClientID  string         `json:"client_id,omitempty"`
	Details   map[string]any `json:"details,omitempty"`
}

// adminCreateRegistrationToken makes an initial access token for dynamic
// registration ({"name": …, "ttl": "720h"}), shown once.
func (p *Provider) adminCreateRegistrationToken(rc *fasthttp.RequestCtx) error {
	var in struct {
		Name string       `json:"name"`
		TTL  durationJSON `json:"ttl"`
	}
	if err := readJSON(rc, &in); err != nil {
		return err
	}
	if in.Name == "" || len(in.Name) > 128 {
		return oauth.ErrInvalidRequest("name: 1-128 characters")
	}
	token, rec := NewAdminToken(in.Name, time.Duration(in.TTL), p.now())
	rec.Kind = storage.TokenKindRegistration
	sctx, cancel := requestCtx()
	defer cancel()
	if err := p.adminTokenWrites.CreateAdminToken(sctx, rec); errors.Is(err, storage.ErrAlreadyExists) {
		return oauth.New(http.StatusConflict, "conflict", "a token named %q exists", in.Name)
	} else if err != nil {
		return oauth.ErrUnavailable(err)
	}
	p.audit("registration_token.created", "name", in.Name, "by", adminBy(rc), "ip", rc.RemoteIP().String(), "request_id", oauth.RequestID(rc))
	v := ViewAdminToken(rec, p.now())
	return oauth.WriteJSON(rc, http.StatusCreated, struct {
		AdminTokenView
		Token string `json:"token"`
	}{v, token})
}

// adminListRegistrationTokens lists the initial access tokens (never one
// of them).
func (p *Provider) adminListRegistrationTokens(rc *fasthttp.RequestCtx) error {
	sctx, cancel := requestCtx()
	defer cancel()
	all, err := p.adminTokenWrites.ListAdminTokens(sctx)
	if err != nil {
		return storeErr(err)
	}
	out := []AdminTokenView{}
	for _, t := range all {
		if t.Kind == storage.TokenKindRegistration {
			out = append(out, ViewAdminToken(t, p.now()))
		}
	}
	return oauth.WriteJSON(rc, http.StatusOK, out)
}

// adminRevokeRegistrationToken revokes the initial access token {name}.
func (p *Provider) adminRevokeRegistrationToken(rc *fasthttp.RequestCtx) error {
	name, _ := rc.UserValue("name").(string)
	sctx, cancel := requestCtx()
	defer cancel()
	all, err := p.adminTokenWrites.ListAdminTokens(sctx)
	if err != nil {
		return storeErr(err)
	}
	for _, t := range all {
		if t.Kind == storage.TokenKindRegistration && t.Name == name {
			if err := p.adminTokenWrites.DeleteAdminToken(sctx, t.ID); err != nil {
				return storeErr(err)
			}
			p.audit("registration_token.revoked", "name", name, "by", adminBy(rc), "ip", rc.RemoteIP().String(), "request_id", oauth.RequestID(rc))
			rc.SetStatusCode(http.StatusNoContent)
			return nil
		}
	}
	return storeErr(storage.ErrNotFound)
}
