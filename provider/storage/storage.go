package storage

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/oidcgate/oidcgate/keys"
)

// Sentinel errors. Backends map driver errors onto these at their boundary;
// callers test them with errors.Is only.
var (
	// ErrNotFound: no such record, or it has expired.
	ErrNotFound = errors.New("storage: not found")
	// ErrAlreadyExists: a record with the same key (or unique field) exists.
	ErrAlreadyExists = errors.New("storage: already exists")
	// ErrAlreadyUsed: a single-use record was consumed before, or its
	// refresh-token family was revoked. The record is returned with it so
	// the caller can act on the replay (revoke the family).
	ErrAlreadyUsed = errors.New("storage: already used")
)

// Hash is the SHA-256 of a token or secret; the only form in which codes,
// refresh tokens and session cookies are stored.
type Hash [sha256.Size]byte

// HashOf returns the SHA-256 of s.
func HashOf(s string) Hash { return sha256.Sum256([]byte(s)) }

// MarshalText encodes the hash as hex, for JSON records.
func (h Hash) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h[:])), nil }

// UnmarshalText decodes a hex hash.
func (h *Hash) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(h) {
		return fmt.Errorf("storage: hash of %d hex characters, want %d", len(b), 2*len(h))
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// Client is a registered OAuth 2.0 client (RFC 7591 §2 metadata).
type Client struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	SecretHash []byte `json:"secret_hash,omitempty"` // HMAC-SHA-256 of the secret under SecretSalt (SHA-256 without one); empty for public clients
	SecretSalt []byte `json:"secret_salt,omitempty"` // per-client random salt
	// PreviousSecretHash is the secret before the last rotation: it still
	// authenticates until PreviousSecretExpiresAt (the overlap window).
	PreviousSecretHash      []byte    `json:"previous_secret_hash,omitempty"`
	PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at,omitzero"`
	// SealedSecret (and PreviousSealedSecret in the overlap window): a
	// client_secret_jwt client's secret, encrypted under the key-encryption
	// key, since its assertions are HMACs keyed with the secret itself.
	SealedSecret             []byte        `json:"sealed_secret,omitempty"`
	PreviousSealedSecret     []byte        `json:"previous_sealed_secret,omitempty"`
	RedirectURIs             []string      `json:"redirect_uris,omitempty"`
	PostLogoutRedirectURIs   []string      `json:"post_logout_redirect_uris,omitempty"`
	GrantTypes               []string      `json:"grant_types,omitempty"`
	ResponseTypes            []string      `json:"response_types,omitempty"`
	TokenEndpointAuthMethod  string        `json:"token_endpoint_auth_method"`
	Scopes                   []string      `json:"scopes,omitempty"`
	Audiences                []string      `json:"audiences,omitempty"` // RFC 8707 resources it may ask for
	DefaultAudience          string        `json:"default_audience,omitempty"`
	AccessTokenFormat        string        `json:"access_token_format,omitempty"` // "jwt" (default) or "opaque"
	AccessTokenTTL           time.Duration `json:"access_token_ttl,omitempty"`
	RefreshTokenTTL          time.Duration `json:"refresh_token_ttl,omitempty"`
	IDTokenTTL               time.Duration `json:"id_token_ttl,omitempty"`
	FirstParty               bool          `json:"first_party,omitempty"`
	IDTokenSignedResponseAlg string        `json:"id_token_signed_response_alg,omitempty"`
	IntrospectAny            bool          `json:"introspect_any,omitempty"`    // a resource server: may introspect other clients' tokens
	DefaultConnector         string        `json:"default_connector,omitempty"` // sign-in goes straight to this connector
	RequireMFA               bool          `json:"require_mfa,omitempty"`       // a code only for a session with a second factor
	// What its access tokens carry besides the registered claims: user
	// claims by name, static claims, and roles per audience mapped from
	// the user's groups (audience → group → roles).
	AccessTokenClaims []string                       `json:"access_token_claims,omitempty"`
	StaticClaims      map[string]any                 `json:"static_claims,omitempty"`
	Roles             map[string]map[string][]string `json:"roles,omitempty"`
	// TokenHook: the token hook runs for its client_credentials tokens too.
	TokenHook bool `json:"token_hook,omitempty"`
	// Registered: made by dynamic registration (RFC 7591), managed with
	// the registration access token whose hash this is (RFC 7592).
	Registered            bool `json:"registered,omitempty"`
	RegistrationTokenHash Hash `json:"registration_token_hash,omitzero"`
	// JWKS (a JWK set, JSON) or JWKSURI: the keys of a private_key_jwt
	// client's assertions (RFC 7523).
	JWKS    []byte `json:"jwks,omitempty"`
	JWKSURI string `json:"jwks_uri,omitempty"`
	// A federated_jwt client trusts tokens of another issuer (workload
	// identity): that issuer and subject, for FederatedAudience (default:
	// this issuer), verified against FederatedJWKSURI (default: from the
	// issuer's discovery document).
	FederatedIssuer   string `json:"federated_issuer,omitempty"`
	FederatedSubject  string `json:"federated_subject,omitempty"`
	FederatedAudience string `json:"federated_audience,omitempty"`
	FederatedJWKSURI  string `json:"federated_jwks_uri,omitempty"`
	// DPoPBoundAccessTokens: every token request must carry a DPoP proof.
	DPoPBoundAccessTokens bool `json:"dpop_bound_access_tokens,omitempty"`
	// TokenExchangeScopes may be added by a token exchange (RFC 8693).
	TokenExchangeScopes []string `json:"token_exchange_scopes,omitempty"`
	// mTLS (RFC 8705): the certificate a tls_client_auth client must show
	// (one of these), and whether its tokens are bound to its certificate.
	TLSSubjectDN string `json:"tls_client_auth_subject_dn,omitempty"`
	TLSSANDNS    string `json:"tls_client_auth_san_dns,omitempty"`
	TLSSANURI    string `json:"tls_client_auth_san_uri,omitempty"`
	TLSSANIP     string `json:"tls_client_auth_san_ip,omitempty"`
	TLSSANEmail  string `json:"tls_client_auth_san_email,omitempty"`
	// RequirePAR: authorization requests only by request_uri (RFC 9126).
	RequirePAR bool `json:"require_pushed_authorization_requests,omitempty"`
	// Back-channel logout (OIDC Back-Channel Logout 1.0).
	BackchannelLogoutURI             string    `json:"backchannel_logout_uri,omitempty"`
	BackchannelLogoutSessionRequired bool      `json:"backchannel_logout_session_required,omitempty"`
	TLSCertBoundAccessTokens         bool      `json:"tls_client_certificate_bound_access_tokens,omitempty"`
	CreatedAt                        time.Time `json:"created_at"`
	UpdatedAt                        time.Time `json:"updated_at"`
}

// User is an end user. ID is the stable, opaque OIDC subject.
type User struct {
	ID           string         `json:"id"`
	Username     string         `json:"username"`
	PasswordHash string         `json:"password_hash,omitempty"` // PHC-encoded argon2id
	Claims       map[string]any `json:"claims,omitempty"`        // OIDC Core §5.1 standard claims
	Disabled     bool           `json:"disabled,omitempty"`
	CreatedAt    time.Time      `json:"created_at"`
	UpdatedAt    time.Time      `json:"updated_at"`
}

// Identity links an identity at an upstream identity source (a
// connector's subject, which never changes there) to a local user. The
// user's own ID, the OIDC sub, is separate from it: a new upstream email
// or name never changes the local sub.
type Identity struct {
	ConnectorID string         `json:"connector_id"`
	Subject     string         `json:"subject"` // the upstream subject
	UserID      string         `json:"user_id"`
	Claims      map[string]any `json:"claims,omitempty"` // as mapped at the last sign-in
	CreatedAt   time.Time      `json:"created_at"`
	LastLoginAt time.Time      `json:"last_login_at"`
}

// AuthCode is an authorization code (RFC 6749 §4.1.2), keyed by its hash.
type AuthCode struct {
	Hash          Hash      `json:"hash"`
	ClientID      string    `json:"client_id"`
	UserID        string    `json:"user_id"`
	SessionID     string    `json:"session_id,omitempty"`
	RedirectURI   string    `json:"redirect_uri"`
	Scopes        []string  `json:"scopes,omitempty"`
	Audience      []string  `json:"audience,omitempty"`
	Nonce         string    `json:"nonce,omitempty"`
	CodeChallenge string    `json:"code_challenge,omitempty"`
	AuthTime      time.Time `json:"auth_time"`
	AMR           []string  `json:"amr,omitempty"`
	// FamilyID names every token issued from this code, so a replay can
	// revoke them all (RFC 6749 §4.1.2).
	FamilyID  string    `json:"family_id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	UsedAt    time.Time `json:"used_at,omitzero"`
}

// RefreshToken is one member of a rotation family, keyed by its hash.
type RefreshToken struct {
	Hash      Hash      `json:"hash"`
	FamilyID  string    `json:"family_id"`
	ClientID  string    `json:"client_id"`
	UserID    string    `json:"user_id"`
	SessionID string    `json:"session_id,omitempty"`
	Scopes    []string  `json:"scopes,omitempty"`
	Audience  []string  `json:"audience,omitempty"`
	AuthTime  time.Time `json:"auth_time"`
	AMR       []string  `json:"amr,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	UsedAt    time.Time `json:"used_at,omitzero"`    // rotated
	RevokedAt time.Time `json:"revoked_at,omitzero"` // its family was revoked
	// FamilyExpiresAt is the family's absolute end; ExpiresAt, its idle end
	// (no later than FamilyExpiresAt), moves forward with every rotation.
	FamilyExpiresAt time.Time `json:"family_expires_at,omitzero"`
	// Jkt binds a public client's refresh tokens to its DPoP key (RFC 9449
	// §5): a refresh needs a proof of that key.
	Jkt string `json:"jkt,omitempty"`
}

// AccessToken is an opaque access token's metadata, keyed by its hash.
type AccessToken struct {
	Hash     Hash     `json:"hash"`
	ClientID string   `json:"client_id"`
	Subject  string   `json:"sub"`
	Scopes   []string `json:"scopes,omitempty"`
	Audience []string `json:"audience,omitempty"`
	FamilyID string   `json:"family_id,omitempty"` // the code or refresh family it came from, if any
	Jkt      string   `json:"jkt,omitempty"`       // DPoP: the thumbprint of the key it is bound to
	X5t      string   `json:"x5t,omitempty"`       // mTLS: the thumbprint of the certificate it is bound to
	// Claims are what the token carries besides the registered claims
	// (introspection answers them).
	Claims    map[string]any `json:"claims,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
	ExpiresAt time.Time      `json:"expires_at"`
}

// Interaction is a pending authorization request (OIDC Core §3.1.2.1)
// while the user signs in and consents; ID is random and travels in the
// login and consent forms together with CSRF.
type Interaction struct {
	ID            string   `json:"id"`
	CSRF          string   `json:"csrf"`
	ClientID      string   `json:"client_id"`
	RedirectURI   string   `json:"redirect_uri"`
	ResponseMode  string   `json:"response_mode"`
	State         string   `json:"state,omitempty"`
	Nonce         string   `json:"nonce,omitempty"`
	Scopes        []string `json:"scopes,omitempty"`
	CodeChallenge string   `json:"code_challenge,omitempty"`
	Prompt        []string `json:"prompt,omitempty"`
	MaxAge        int      `json:"max_age"` // -1: none
	LoginHint     string   `json:"login_hint,omitempty"`
	ACRValues     []string `json:"acr_values,omitempty"` // the levels the client asked for, in its order
	IDPHint       string   `json:"idp_hint,omitempty"`   // the connector the client asked for
	// Device: this record is a device authorization (RFC 8628) waiting for
	// its user, keyed by its user code; DeviceID: this sign-in approves the
	// device authorization of that ID (the verification page's).
	Device   *DeviceGrant `json:"device,omitempty"`
	DeviceID string       `json:"device_id,omitempty"`
	// Pushed: a request pushed to /par (RFC 9126), waiting for the browser
	// to bring its request_uri to /authorize.
	Pushed bool `json:"pushed,omitempty"`
	// Account: a sign-in to the account page itself, which ends there
	// instead of in a code (no client).
	Account bool `json:"account,omitempty"`
	// Upstream is the sign-in under way at a connector, if any.
	Upstream *UpstreamSignIn `json:"upstream,omitempty"`
	// BrowserHash is the hash of the browser-binding cookie of the browser
	// that started the request: every later step must come from it.
	BrowserHash Hash `json:"browser_hash"`
	// Set once the user has signed in (or had a live session).
	UserID    string    `json:"user_id,omitempty"`
	SessionID string    `json:"session_id,omitempty"`
	AuthTime  time.Time `json:"auth_time,omitzero"`
	AMR       []string  `json:"amr,omitempty"`
	// Consented: the user allowed this request on its consent page.
	Consented bool `json:"consented,omitempty"`
	// Ceremony is a second-factor ceremony under way in this sign-in.
	Ceremony  *Ceremony `json:"ceremony,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// DeviceGrant is a device authorization's state (RFC 8628 §3.5): the hash
// of its device code, its polling interval and last poll, whether the user
// denied it, and when it ends. Its approval is the authorization code the
// provider stores under the device code's hash.
type DeviceGrant struct {
	DeviceHash Hash          `json:"device_hash"`
	Interval   time.Duration `json:"interval"`
	LastPollAt time.Time     `json:"last_poll_at,omitzero"`
	Denied     bool          `json:"denied,omitempty"`
	ExpiresAt  time.Time     `json:"expires_at"`
}

// UpstreamSignIn is what an interaction keeps while the user signs in at
// an upstream connector: the hash of the state's secret, and the nonce and
// PKCE verifier it sent.
type UpstreamSignIn struct {
	Connector string `json:"connector"`
	StateHash Hash   `json:"state_hash"`
	Nonce     string `json:"nonce"`
	Verifier  string `json:"verifier"`
}

// Session is a server-side browser session; the cookie carries a secret
// whose hash is Hash. ID is the public `sid` (OIDC Front/Back-Channel).
type Session struct {
	ID        string    `json:"id"`
	Hash      Hash      `json:"hash"`
	UserID    string    `json:"user_id"`
	AuthTime  time.Time `json:"auth_time"`
	AMR       []string  `json:"amr,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// IdleExpiresAt moves forward on use; ExpiresAt is the absolute limit.
	IdleExpiresAt time.Time `json:"idle_expires_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	// Ceremony is an enrollment under way on the account page.
	Ceremony *Ceremony `json:"ceremony,omitempty"`
	// Clients are the clients with a back-channel logout URI that were
	// issued an ID token in this session: told when it ends.
	Clients []string `json:"clients,omitempty"`
}

// Ceremony is a second-factor ceremony waiting for the user's answer: a
// TOTP secret shown for enrollment but not yet confirmed by a code (sealed
// under the key-encryption key), or a WebAuthn challenge (the webauthn
// library's session data).
type Ceremony struct {
	TOTPSecret []byte    `json:"totp_secret,omitempty"`
	WebAuthn   []byte    `json:"webauthn,omitempty"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// Factor kinds.
const (
	FactorTOTP     = "totp"     // an authenticator app (RFC 6238)
	FactorWebAuthn = "webauthn" // a security key or passkey
	FactorRecovery = "recovery" // one single-use recovery code
)

// Factor is one of a user's second factors (or passkeys).
type Factor struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	Kind   string `json:"kind"`
	Name   string `json:"name,omitempty"` // the user's name for it
	// Secret is a TOTP secret, sealed under the key-encryption key.
	Secret []byte `json:"secret,omitempty"`
	// Hash is a recovery code's hash.
	Hash Hash `json:"hash,omitzero"`
	// Credential is a WebAuthn credential record (its public key and
	// flags), as the webauthn library encodes it; CredentialID is its ID.
	Credential   []byte `json:"credential,omitempty"`
	CredentialID []byte `json:"credential_id,omitempty"`
	// Counter only grows (UseFactor): a TOTP's last accepted time step, a
	// WebAuthn signature counter, 1 once a recovery code is used.
	Counter    uint64    `json:"counter"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

// AdminToken is a bearer token of the admin API, stored as its hash.
type AdminToken struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind,omitempty"` // TokenKindAdmin or TokenKindRegistration
	Name      string    `json:"name"`           // unique: who or what holds it
	Hash      Hash      `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"` // zero: never
}

// AuditEvent is something operators may need to answer for later: an
// admin change or a security event. It never holds a secret or a token.
type AuditEvent struct {
	ID        string         `json:"id"` // orders events by time (AuditID)
	Time      time.Time      `json:"time"`
	Event     string         `json:"event"`           // e.g. signin.failed, client.secret_rotated
	Actor     string         `json:"actor,omitempty"` // who: an admin token's name, "user", a client
	IP        string         `json:"ip,omitempty"`
	RequestID string         `json:"request_id,omitempty"`
	UserID    string         `json:"user_id,omitempty"`
	ClientID  string         `json:"client_id,omitempty"`
	Details   map[string]any `json:"details,omitempty"`
	ExpiresAt time.Time      `json:"expires_at"` // the retention's end
}

// AuditID is an event ID that sorts as its time does.
func AuditID(t time.Time, random string) string { return fmt.Sprintf("%016x-%s", t.UnixNano(), random) }

// AuditFilter selects audit events; empty fields select all.
type AuditFilter struct {
	Event, UserID, ClientID, Actor string
	Since, Until                   time.Time // Since ≤ time < Until
	Limit                          int       // most recent first; 0: 100
}

// Match reports whether e is selected.
func (f AuditFilter) Match(e *AuditEvent) bool {
	return (f.Event == "" || e.Event == f.Event || strings.HasSuffix(f.Event, ".") && strings.HasPrefix(e.Event, f.Event)) &&
		(f.UserID == "" || e.UserID == f.UserID) && (f.ClientID == "" || e.ClientID == f.ClientID) &&
		(f.Actor == "" || e.Actor == f.Actor) && (f.Since.IsZero() || !e.Time.Before(Timestamp(f.Since))) &&
		(f.Until.IsZero() || e.Time.Before(Timestamp(f.Until)))
}

// Consent records the scopes a user granted a client.
type Consent struct {
	UserID    string    `json:"user_id"`
	ClientID  string    `json:"client_id"`
	Scopes    []string  `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"` // zero: never
}

// KeyState is a signing key's place in the rotation; SigningKey is a
// private key as the store sees it (an opaque encrypted blob). Both are the
// keys package's, whose KeyStore interface this package satisfies.
type (
	KeyState   = keys.State
	SigningKey = keys.Record
)

// Key states, in order.
const (
	KeyNext    = keys.Next
	KeyActive  = keys.Active
	KeyRetired = keys.Retired
)

// Revocation is a revoked JWT ID, kept until the token would have expired.
type Revocation struct {
	JTI       string    `json:"jti"`
	ExpiresAt time.Time `json:"expires_at"`
	// Seq orders revocations as they were recorded (RevokeJTI sets it):
	// what an edge's revocation stream resumes from.
	Seq uint64 `json:"seq,omitempty"`
}

// Clients stores registered clients.
type Clients interface {
	CreateClient(ctx context.Context, c *Client) error
	GetClient(ctx context.Context, id string) (*Client, error)
	UpdateClient(ctx context.Context, c *Client) error
	DeleteClient(ctx context.Context, id string) error
	ListClients(ctx context.Context) ([]*Client, error)
}

// Users stores end users; usernames are unique.
type Users interface {
	CreateUser(ctx context.Context, u *User) error
	GetUser(ctx context.Context, id string) (*User, error)
	GetUserByUsername(ctx context.Context, username string) (*User, error)
	UpdateUser(ctx context.Context, u *User) error
	DeleteUser(ctx context.Context, id string) error
	ListUsers(ctx context.Context) ([]*User, error)
}

// Identities stores the links from upstream identities to local users.
// Deleting a user deletes its links.
type Identities interface {
	// CreateIdentity links i; ErrAlreadyExists when (connector, subject)
	// is linked already, ErrNotFound when the user does not exist.
	CreateIdentity(ctx context.Context, i *Identity) error
	GetIdentity(ctx context.Context, connectorID, subject string) (*Identity, error)
	UpdateIdentity(ctx context.Context, i *Identity) error
	// ListIdentities returns a user's links, ordered by connector and subject.
	ListIdentities(ctx context.Context, userID string) ([]*Identity, error)
	DeleteIdentity(ctx context.Context, connectorID, subject string) error
}

// Issued is what a grant writes in the transaction that consumes its code
// or rotates its refresh token: either all of it is written and the code or
// token is used, or nothing is and it is still usable. A crash or a store
// error between the steps can then never leave a used token without its
// successor.
type Issued struct {
	Refresh *RefreshToken // the new refresh token, if any
	Access  *AccessToken  // the opaque access token, if any (a JWT is not stored)
}

// AuthCodes stores single-use authorization codes.
type AuthCodes interface {
	CreateAuthCode(ctx context.Context, c *AuthCode) error
	// GetAuthCode returns an unexpired code, used or not (UsedAt says).
	GetAuthCode(ctx context.Context, h Hash) (*AuthCode, error)
	// ConsumeAuthCode marks the code used and writes out in one
	// transaction: of concurrent callers exactly one gets it; the others get
	// the record and ErrAlreadyUsed, and write nothing. Should a write of
	// out fail (ErrAlreadyExists, a lost connection), the code stays unused.
	ConsumeAuthCode(ctx context.Context, h Hash, out Issued) (*AuthCode, error)
	DeleteAuthCode(ctx context.Context, h Hash) error
}

// RefreshTokens stores refresh tokens grouped in rotation families.
type RefreshTokens interface {
	CreateRefreshToken(ctx context.Context, t *RefreshToken) error
	GetRefreshToken(ctx context.Context, h Hash) (*RefreshToken, error)
	// UseRefreshToken marks the token rotated and writes out (its
	// successor) in one transaction: of concurrent callers exactly one gets
	// it; the others (and any later caller, or any caller after the family's
	// revocation) get the record and ErrAlreadyUsed, and write nothing.
	// Should a write of out fail, the token stays unused.
	UseRefreshToken(ctx context.Context, h Hash, out Issued) (*RefreshToken, error)
	// RevokeRefreshFamily revokes every token of a family in one operation.
	RevokeRefreshFamily(ctx context.Context, familyID string) error
}

// AccessTokens stores opaque access tokens.
type AccessTokens interface {
	CreateAccessToken(ctx context.Context, t *AccessToken) error
	GetAccessToken(ctx context.Context, h Hash) (*AccessToken, error)
	DeleteAccessToken(ctx context.Context, h Hash) error
}

// Interactions stores pending authorization requests.
type Interactions interface {
	CreateInteraction(ctx context.Context, i *Interaction) error
	GetInteraction(ctx context.Context, id string) (*Interaction, error)
	UpdateInteraction(ctx context.Context, i *Interaction) error
	DeleteInteraction(ctx context.Context, id string) error
}

// Sessions stores server-side browser sessions.
type Sessions interface {
	CreateSession(ctx context.Context, s *Session) error
	GetSession(ctx context.Context, h Hash) (*Session, error)
	// UpdateSession replaces the session with the same ID.
	UpdateSession(ctx context.Context, s *Session) error
	DeleteSession(ctx context.Context, id string) error
	// ListSessions returns a user's live sessions, oldest first.
	ListSessions(ctx context.Context, userID string) ([]*Session, error)
}

// Consents stores what each user granted each client.
type Consents interface {
	// PutConsent creates or replaces the consent of c.UserID for c.ClientID.
	PutConsent(ctx context.Context, c *Consent) error
	GetConsent(ctx context.Context, userID, clientID string) (*Consent, error)
	DeleteConsent(ctx context.Context, userID, clientID string) error
	// ListConsents returns a user's unexpired consents, ordered by client.
	ListConsents(ctx context.Context, userID string) ([]*Consent, error)
}

// Token kinds: an admin API token, or an initial access token of dynamic
// registration (RFC 7591 §3), which opens nothing else.
const (
	TokenKindAdmin        = ""
	TokenKindRegistration = "registration"
)

// AdminTokens stores the admin API's bearer tokens.
type AdminTokens interface {
	// CreateAdminToken adds t; ErrAlreadyExists when its ID, name or hash
	// is taken.
	CreateAdminToken(ctx context.Context, t *AdminToken) error
	// GetAdminToken returns the unexpired token with hash h.
	GetAdminToken(ctx context.Context, h Hash) (*AdminToken, error)
	// ListAdminTokens returns every token, expired ones too, by name.
	ListAdminTokens(ctx context.Context) ([]*AdminToken, error)
	DeleteAdminToken(ctx context.Context, id string) error
}

// Assertions remembers the JWT IDs of client assertions (RFC 7523) until
// they expire, so a replay is refused by every replica.
type Assertions interface {
	// UseAssertion records key (an issuer and a jti) until exp; a key
	// recorded already (and not expired) is ErrAlreadyUsed: of concurrent
	// uses exactly one wins.
	UseAssertion(ctx context.Context, key string, exp time.Time) error
}

// AuditEvents stores audit events until their retention ends
// (DeleteExpired removes them).
type AuditEvents interface {
	AppendAuditEvent(ctx context.Context, e *AuditEvent) error
	// ListAuditEvents returns the events f selects, most recent first.
	ListAuditEvents(ctx context.Context, f AuditFilter) ([]*AuditEvent, error)
}

// Factors stores users' second factors. Deleting a user deletes them.
type Factors interface {
	// CreateFactor adds f; ErrAlreadyExists when its ID is taken,
	// ErrNotFound when the user does not exist.
	CreateFactor(ctx context.Context, f *Factor) error
	// ListFactors returns a user's factors, oldest first.
	ListFactors(ctx context.Context, userID string) ([]*Factor, error)
	// UseFactor records a use: it sets the factor's counter and last use
	// when counter is above the stored one (or both are 0: an authenticator
	// without a counter), atomically, and otherwise fails with
	// ErrAlreadyUsed and changes nothing — so of concurrent uses of one TOTP
	// code or recovery code exactly one wins.
	UseFactor(ctx context.Context, userID, id string, counter uint64, at time.Time) error
	DeleteFactor(ctx context.Context, userID, id string) error
	// DeleteFactors removes a user's factors of kind ("": all) and
	// reports how many it removed.
	DeleteFactors(ctx context.Context, userID, kind string) (int, error)
}

// LogoutDelivery is one logout token owed to one client (OpenID Connect
// Back-Channel Logout 1.0): whom to tell about which session, and how its
// retries stand. The token itself is minted at each attempt.
type LogoutDelivery struct {
	ID        string    `json:"id"`
	ClientID  string    `json:"client_id"`
	Subject   string    `json:"sub"`
	SessionID string    `json:"sid"`
	Attempts  int       `json:"attempts"`
	NextAt    time.Time `json:"next_at"`
	CreatedAt time.Time `json:"created_at"`
}

// LogoutQueue is the durable queue of back-channel logout deliveries: a
// delivery stays until it succeeds or is given up, across restarts.
type LogoutQueue interface {
	EnqueueLogouts(ctx context.Context, ds []*LogoutDelivery) error
	// ClaimLogouts returns up to limit deliveries due at now, the longest
	// due first, and in the same transaction moves their NextAt to until:
	// another claimant (a replica) does not get them before then.
	ClaimLogouts(ctx context.Context, now, until time.Time, limit int) ([]*LogoutDelivery, error)
	// UpdateLogout stores a delivery's Attempts and NextAt.
	UpdateLogout(ctx context.Context, d *LogoutDelivery) error
	DeleteLogout(ctx context.Context, id string) error
}

// Watcher is a store shared by replicas that tells each of the others'
// changes as they commit (PostgreSQL: LISTEN/NOTIFY).
type Watcher interface {
	Watch(ctx context.Context, fn func(what string))
}

// What a Watcher reports changed.
const (
	ChangedRevocations = "revocations"
	ChangedKeys        = "keys"
	ChangedAll         = "all" // after a gap: anything may have
)

// SigningKeys stores the key ring; it is keys.KeyStore.
type SigningKeys = keys.KeyStore

// Revocations stores revoked JWT IDs until the tokens would have expired.
type Revocations interface {
	// RevokeJTI records jti as revoked; revoking it again is not an error.
	// RevokeJTI records jti as revoked (again: with a new Seq); Seqs
	// increase in commit order, so a reader following RevocationsSince
	// misses none.
	RevokeJTI(ctx context.Context, r *Revocation) error
	IsRevoked(ctx context.Context, jti string) (bool, error)
	// RevocationsSince returns up to limit unexpired revocations with a
	// Seq above after, in Seq order.
	RevocationsSince(ctx context.Context, after uint64, limit int) ([]*Revocation, error)
}

// Storage is every role together, plus the lifecycle a backend needs.
type Storage interface {
	Clients
	Users
	Identities
	Factors
	AdminTokens
	AuditEvents
	Assertions
	LogoutQueue
	AuthCodes
	RefreshTokens
	AccessTokens
	Interactions
	Sessions
	Consents
	SigningKeys
	Revocations

	// DeleteExpired removes every record whose expiry has passed and
	// reports how many it removed.
	DeleteExpired(ctx context.Context) (int, error)
	// Ping reports whether the backend is reachable.
	Ping(ctx context.Context) error
	Close() error
}

// Advances reports whether a factor's counter may move from stored to
// next (Factors.UseFactor's rule).
func Advances(stored, next uint64) bool { return next > stored || next == 0 && stored == 0 }

// SortSessions orders sessions oldest first (Sessions.ListSessions).
func SortSessions(s []*Session) {
	slices.SortFunc(s, func(a, b *Session) int { return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID)) })
}

// SortAdminTokens orders admin tokens by name (AdminTokens.ListAdminTokens).
func SortAdminTokens(t []*AdminToken) {
	slices.SortFunc(t, func(a, b *AdminToken) int { return cmp.Compare(a.Name, b.Name) })
}

// SortFactors orders factors oldest first (Factors.ListFactors).
func SortFactors(f []*Factor) {
	slices.SortFunc(f, func(a, b *Factor) int { return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID)) })
}

// Timestamp normalises t to the precision and zone every backend keeps.
func Timestamp(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Truncate(time.Microsecond).UTC()
}

// Normalize rounds every timestamp of a record (a pointer to one of this
// package's record types) with Timestamp. Backends call it on the copy they
// write, so every backend returns the same values.
func Normalize(rec any) {
	ts := func(ps ...*time.Time) {
		for _, p := range ps {
			*p = Timestamp(*p)
		}
	}
	switch r := rec.(type) {
	case *Client:
		ts(&r.CreatedAt, &r.UpdatedAt, &r.PreviousSecretExpiresAt)
	case *User:
		ts(&r.CreatedAt, &r.UpdatedAt)
	case *Identity:
		ts(&r.CreatedAt, &r.LastLoginAt)
	case *Factor:
		ts(&r.CreatedAt, &r.LastUsedAt)
	case *AuditEvent:
		ts(&r.Time, &r.ExpiresAt)
	case *AdminToken:
		ts(&r.CreatedAt, &r.ExpiresAt)
	case *AuthCode:
		ts(&r.AuthTime, &r.CreatedAt, &r.ExpiresAt, &r.UsedAt)
	case *RefreshToken:
		ts(&r.AuthTime, &r.CreatedAt, &r.ExpiresAt, &r.UsedAt, &r.RevokedAt, &r.FamilyExpiresAt)
	case *AccessToken:
		ts(&r.CreatedAt, &r.ExpiresAt)
	case *Interaction:
		ts(&r.AuthTime, &r.CreatedAt, &r.ExpiresAt)
		if r.Device != nil {
			ts(&r.Device.LastPollAt, &r.Device.ExpiresAt)
		}
	case *Session:
		ts(&r.AuthTime, &r.CreatedAt, &r.IdleExpiresAt, &r.ExpiresAt)
	case *Consent:
		ts(&r.CreatedAt, &r.ExpiresAt)
	case *SigningKey:
		ts(&r.CreatedAt, &r.ActivatesAt, &r.RetiresAt, &r.RemoveAt)
	case *Revocation:
		ts(&r.ExpiresAt)
	case *LogoutDelivery:
		ts(&r.NextAt, &r.CreatedAt)
	default:
		panic(fmt.Sprintf("storage: Normalize of %T", rec))
	}
}

// Expired reports whether a record with expiry at is expired at now; a zero
// expiry never expires.
func Expired(at, now time.Time) bool { return !at.IsZero() && !now.Before(at) }

// Deadline is when a session stops being usable: the earlier of its idle
// and absolute expiries.
func (s *Session) Deadline() time.Time {
	if s.IdleExpiresAt.Before(s.ExpiresAt) {
		return s.IdleExpiresAt
	}
	return s.ExpiresAt
}
