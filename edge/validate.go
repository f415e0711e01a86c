package edge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/oidcgate/oidcgate/cache"
	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider/oauth"
)

// Decision reasons: the label values of oidcgate_edge_decisions_total.
const (
	ReasonOK                = "ok"
	ReasonPublic            = "public"
	ReasonMissing           = "missing"
	ReasonMalformed         = "malformed"
	ReasonExpired           = "expired"
	ReasonBadSignature      = "bad_signature"
	ReasonUnknownKID        = "unknown_kid"
	ReasonWrongIssuer       = "wrong_issuer"
	ReasonWrongAudience     = "wrong_audience"
	ReasonInsufficientScope = "insufficient_scope"
	ReasonInactive          = "inactive"
	ReasonUnavailable       = "unavailable"
	ReasonNoRoute           = "no_route"
	ReasonBadRequest        = "bad_request" // an ambiguous path, conflicting headers
	ReasonClaimRule         = "claim_rule"  // a route's claim matchers or rule said no
	ReasonRateLimited       = "rate_limited"
	ReasonSenderConstrained = "sender_constrained" // a DPoP- or certificate-bound token without its proof
)

// Decision is the outcome for one request.
type Decision struct {
	Reason      string
	Status      int    // 200, 400, 401, 403 or 503
	Description string // for error_description: plain ASCII, no quotes
	Scope       string // with insufficient_scope: what the route needs
	RetryAfter  int    // with 429 and 503: seconds
	DPoP        bool   // the challenge is DPoP's (RFC 9449 §7.1)
}

var (
	allowed = Decision{Reason: ReasonOK, Status: 200}
	public  = Decision{Reason: ReasonPublic, Status: 200}
)

func deny(reason, description string) Decision {
	status := 401
	switch reason {
	case ReasonUnavailable:
		status = 503
	case ReasonNoRoute:
		status = 403
	case ReasonBadRequest:
		status = 400
	}
	return Decision{Reason: reason, Status: status, Description: description}
}

// Identity is what a valid token says, forwarded upstream in headers.
type Identity struct {
	Subject  string
	ClientID string
	JKT      string // cnf.jkt: the DPoP key the token is bound to
	X5t      string // cnf.x5t#S256: the client certificate it is bound to
	Scopes   []string
	Scope    string // as in the token: space-separated
	Audience []string
	Claims   []byte // the JWT payload, or the introspection response (only with KeepClaims)

	audienceHeader string
	parsed         map[string]any // Claims decoded, once (only with KeepClaims)
	memoPtr        atomic.Pointer[idMemo]
}

// memo is the identity's route memo, made on first use.
func (id *Identity) memo() *idMemo {
	if m := id.memoPtr.Load(); m != nil {
		return m
	}
	id.memoPtr.CompareAndSwap(nil, &idMemo{})
	return id.memoPtr.Load()
}

// claimsMap is the decoded claims (nil without KeepClaims).
func (id *Identity) claimsMap() map[string]any { return id.parsed }

// audience is Audience comma-joined, for the audience header.
func (id *Identity) audience() string { return id.audienceHeader }

func (id *Identity) hasAudience(aud string) bool {
	for _, a := range id.Audience {
		if a == aud {
			return true
		}
	}
	return false
}

func (id *Identity) hasScopes(need []string) bool {
	for _, s := range need {
		found := false
		for _, have := range id.Scopes {
			if have == s {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// entry is a cached verdict. sum confirms a hit against the whole token:
// the cache key is only the first 64 bits of it.
// One is kept per cached token, so it is kept small: 64 bytes.
type entry struct {
	sum    [sha256.Size]byte
	id     *Identity // nil: inactive (introspection's negative answer); shared between tokens
	exp    int64     // Unix seconds
	reason *string   // why inactive: one of the texts below
	epoch  uint32    // keyEpoch when the token was verified or introspected
}

// Why an introspected token is refused (entry.reason).
var (
	whyNotActive    = "the token is not active"
	whyOtherIssuer  = "the token is from another issuer"
	whyNotAccess    = "the token is not an access token"
	whyExpired      = "the token has expired"
	whyUnsafeClaims = "the token claims hold control characters"
)

// keyEpochs is a key set that counts the keys it has lost (keys.Ring,
// RemoteKeys). A token cached under an earlier count is verified again, so
// the tokens of a revoked key stop when the key leaves the set, not when
// their cache entries lapse.
type keyEpochs interface{ KeyEpoch() uint64 }

// revocationEpochs is a revocation list that counts its revocations (the
// provider, in `oidcgate all`): after one, cached tokens are checked again,
// so a replayed code's or a reused refresh token's family stops at once,
// not when the cache entries lapse.
type revocationEpochs interface{ RevocationEpoch() uint64 }

// identityKey is what makes two tokens' identities the same.
type identityKey struct{ sub, client, scope, audience, jkt, x5t string }

// maxSharedIdentities bounds the table of identities shared between cached
// tokens; past it, identities are simply not shared.
const maxSharedIdentities = 100_000

// ValidatorConfig is the token policy. Its settings (the fields with a
// yaml name) are declared here once, with DefaultValidatorConfig and
// Validate; the others are the caller's.
type ValidatorConfig struct {
	Issuer string   `yaml:"-"`
	Algs   []string `yaml:"allowed_algs" help:"JWT algorithms accepted (never taken from the token)"`
	// Leeway tolerates clock skew on exp, nbf and iat.
	Leeway time.Duration `yaml:"leeway" help:"clock skew tolerated on exp, nbf and iat"`
	// RequireTyp demands typ at+jwt (RFC 9068 §2.1) on JWTs.
	RequireTyp bool `yaml:"require_typ" help:"require typ at+jwt on JWT access tokens (RFC 9068); turn off for issuers that do not set it"`
	// CacheTTL caps how long a verified token is trusted without checking
	// its signature again; CacheSize bounds the entries.
	CacheTTL  time.Duration `yaml:"token_cache_ttl" help:"longest time a verified token skips signature verification (its exp is checked on every request)"`
	CacheSize int64         `yaml:"token_cache_size" help:"most tokens kept in the verified-token and introspection caches"`
	// IntrospectionTTL caps how long an active introspection result is
	// cached; NegativeTTL is how long an inactive one is.
	IntrospectionTTL time.Duration `yaml:"introspection_ttl" help:"longest time an active introspection result is cached (inactive ones: 5s)"`
	NegativeTTL      time.Duration `yaml:"-"`
	// KeepClaims keeps each token's claims for the claims header; off, a
	// cached token costs a few hundred bytes less.
	KeepClaims bool `yaml:"-"`
	// Audiences, when set, are the audiences this issuer's tokens must
	// carry one of (beside each route's own audience).
	Audiences []string `yaml:"-"`
}

// DefaultValidatorConfig is the token policy's defaults.
func DefaultValidatorConfig() ValidatorConfig {
	return ValidatorConfig{Algs: []string{keys.ES256, keys.RS256, keys.PS256, keys.EdDSA}, Leeway: 30 * time.Second,
		RequireTyp: true, CacheTTL: 5 * time.Minute, CacheSize: 200_000, IntrospectionTTL: time.Minute, NegativeTTL: 5 * time.Second}
}

// Validate reports every bad setting, each a *SettingError.
func (c ValidatorConfig) Validate() error {
	var errs []error
	if len(c.Algs) == 0 {
		errs = append(errs, bad("allowed_algs", "at least one algorithm is needed"))
	}
	for _, a := range c.Algs {
		if !keys.Supported(a) {
			errs = append(errs, bad("allowed_algs", "%q is not one of ES256, RS256, PS256, EdDSA", a))
		}
	}
	if c.Leeway < 0 || c.Leeway > 5*time.Minute {
		errs = append(errs, bad("leeway", "must be between 0s and 5m, got %s", c.Leeway))
	}
	for name, d := range map[string]time.Duration{"token_cache_ttl": c.CacheTTL, "introspection_ttl": c.IntrospectionTTL} {
		if d <= 0 {
			errs = append(errs, bad(name, "must be a positive duration, got %s", d))
		}
	}
	if c.CacheSize <= 0 {
		errs = append(errs, bad("token_cache_size", "must be positive, got %d", c.CacheSize))
	}
	return errors.Join(errs...)
}

// RevocationList reports whether a JWT was revoked, by its jti or with its
// token family (a replayed code revokes the family); in `oidcgate all` the
// provider is one.
type RevocationList interface {
	Revoked(ctx context.Context, jti, family string) (bool, error)
}

// Validator decides on bearer tokens.
type Validator struct {
	cfg          ValidatorConfig
	verifier     *keys.Verifier
	revocations  RevocationList // optional
	introspector Introspector   // optional: without one, opaque tokens are refused
	verified     *cache.Cache[uint64, *entry]
	introspected *cache.Cache[uint64, *entry]
	sf           singleflight.Group

	// identities holds one Identity per distinct (sub, client, scope,
	// audience): a service's thousands of cached tokens then cost a few
	// dozen bytes each instead of a copy of every string.
	identities sync.Map // identityKey → *Identity
	shared     atomic.Int64

	// recent is the verified-token cache's front: the tokens verified
	// last, one per slot chosen by a fast hash, each confirmed by comparing
	// the whole token — a hit costs no SHA-256 and no ristretto look-up.
	recent [recentSlots]atomic.Pointer[recentToken]
	seed   maphash.Seed

	epochs keyEpochs        // the key set's, when it counts them
	revs   revocationEpochs // the revocation list's, when it counts them
	newer  newerKeys        // the key set's, when it can fetch for a newer token
}

// newerKeys is a key set that can fetch again for a token issued after its
// last fetch (RemoteKeys.RefreshFor).
type newerKeys interface {
	RefreshFor(iat int64) bool
}

// unverifiedIat reads a JWT's iat before its signature is checked: only to
// decide whether fetching the key set again could help.
func unverifiedIat(tok []byte) (int64, bool) {
	parts := bytes.SplitN(tok, []byte("."), 3)
	if len(parts) != 3 || len(parts[1]) > keys.MaxTokenSize {
		return 0, false
	}
	payload := make([]byte, base64.RawURLEncoding.DecodedLen(len(parts[1])))
	n, err := base64.RawURLEncoding.Decode(payload, parts[1])
	if err != nil {
		return 0, false
	}
	var c struct {
		Iat int64 `json:"iat"`
	}
	if gojson.Unmarshal(payload[:n], &c) != nil || c.Iat == 0 {
		return 0, false
	}
	return c.Iat, true
}

const recentSlots = 1024

// recentSlot picks tok's slot by its last 32 bytes — the end of the
// signature, as good as random for a signed token. Tokens that share
// them (crafted ones) merely share a slot: a hit compares the whole token.
func (v *Validator) recentSlot(tok []byte) *atomic.Pointer[recentToken] {
	return &v.recent[maphash.Bytes(v.seed, tok[max(0, len(tok)-32):])%recentSlots]
}

type recentToken struct {
	tok        string
	id         *Identity
	exp, until int64 // exp: Unix seconds; until: Unix nanoseconds
	epoch      uint32
}

// NewValidator builds a validator over a key set.
func NewValidator(cfg ValidatorConfig, ks keys.KeySet, revocations RevocationList, introspector Introspector,
	reg prometheus.Registerer) (*Validator, error) {
	v, err := keys.NewVerifier(ks, cfg.Algs)
	if err != nil {
		return nil, err
	}
	verified, err := cache.New[uint64, *entry](cache.Config{Name: "edge_verified_tokens", MaxItems: cfg.CacheSize}, reg)
	if err != nil {
		return nil, err
	}
	val := &Validator{cfg: cfg, verifier: v, revocations: revocations, introspector: introspector,
		verified: verified, seed: maphash.MakeSeed()}
	val.epochs, _ = ks.(keyEpochs)
	val.revs, _ = revocations.(revocationEpochs)
	val.newer, _ = ks.(newerKeys)
	// Without an introspector there is nothing to cache, and a cache's
	// admission sketch alone is ~30 bytes per entry it is sized for.
	if introspector != nil {
		val.introspected, err = cache.New[uint64, *entry](cache.Config{Name: "edge_introspection", MaxItems: cfg.CacheSize}, reg)
		if err != nil {
			verified.Close()
			return nil, err
		}
	}
	return val, nil
}

// Close stops the caches.
func (v *Validator) Close() {
	v.verified.Close()
	if v.introspected != nil {
		v.introspected.Close()
	}
}

// bearer extracts the token of an `Authorization: Bearer` header (RFC 6750
// §2.1; the scheme is case-insensitive). Its characters are checked by
// validToken, off the cache-hit path: a hit is confirmed by the SHA-256 of
// the whole header value's token, which no malformed token can match.
func bearer(authorization []byte) ([]byte, bool) {
	n := len("bearer ")
	switch {
	case len(authorization) > n && bytes.EqualFold(authorization[:n], []byte("bearer ")):
	case len(authorization) > len("dpop ") && bytes.EqualFold(authorization[:len("dpop ")], []byte("dpop ")): // RFC 9449 §7.1
		n = len("dpop ")
	default:
		return nil, false
	}
	tok := bytes.TrimLeft(authorization[n:], " ")
	if len(tok) == 0 || len(tok) > keys.MaxTokenSize {
		return nil, false
	}
	return tok, true
}

// validToken reports whether tok is an RFC 6750 b64token.
func validToken(tok []byte) bool {
	i := 0
	for i < len(tok) && b64token[tok[i]] {
		i++
	}
	for j := i; j < len(tok); j++ {
		if tok[j] != '=' {
			return false
		}
	}
	return i > 0
}

// b64token marks the characters of RFC 6750 §2.1's b64token (before its
// trailing '=' padding).
var b64token = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/") {
		t[c] = true
	}
	return t
}()

func cacheKey(sum *[sha256.Size]byte) uint64 { return binary.LittleEndian.Uint64(sum[:8]) }

// keyEpoch is the key set's count of lost keys plus the revocation list's
// count of revocations (0 for what keeps none): both only grow, so their
// sum moves when either does, and the low 32 bits are plenty to tell
// "changed" from "unchanged".
func (v *Validator) keyEpoch() uint32 {
	var n uint64
	if v.epochs != nil {
		n = v.epochs.KeyEpoch()
	}
	if v.revs != nil {
		n += v.revs.RevocationEpoch()
	}
	return uint32(n)
}

// Check decides, at time now, on the Authorization header of a request
// matched to r.
func (v *Validator) Check(ctx context.Context, now time.Time, authorization []byte, r *Route) (*Identity, Decision) {
	if r.Public {
		return nil, public
	}
	if len(authorization) == 0 {
		return nil, deny(ReasonMissing, "")
	}
	tok, ok := bearer(authorization)
	if !ok {
		return nil, deny(ReasonMalformed, "the Authorization header is not a Bearer token")
	}
	// A JWT verified a moment ago is in the recent slots: checked first,
	// as it is most requests and costs least.
	slot, epoch := v.recentSlot(tok), v.keyEpoch()
	if rt := slot.Load(); rt != nil && rt.tok == string(tok) && now.UnixNano() < rt.until && rt.epoch == epoch &&
		r.Token != TokenOpaque {
		if !v.alive(rt.exp, now) {
			return nil, deny(ReasonExpired, "the token has expired")
		}
		v.verified.RecordHit()
		return rt.id, v.authorize(rt.id, r)
	}
	isJWT := bytes.Count(tok, []byte(".")) == 2
	switch {
	case isJWT && r.Token == TokenOpaque:
		return nil, deny(ReasonMalformed, "this route takes opaque tokens")
	case !isJWT && r.Token == TokenJWT:
		return nil, deny(ReasonMalformed, "this route takes JWT access tokens")
	}
	var id *Identity
	var d Decision
	if isJWT {
		id, d = v.checkJWT(ctx, now, tok, slot, epoch)
	} else {
		sum := sha256.Sum256(tok)
		id, d = v.checkOpaque(ctx, now, tok, &sum, epoch)
	}
	if d.Status != 200 {
		return nil, d
	}
	return id, v.authorize(id, r)
}

// authorize applies the route's audience and scopes; it runs on every
// request, cached or not.
func (v *Validator) authorize(id *Identity, r *Route) Decision {
	if len(v.cfg.Audiences) > 0 && !v.anyAudience(id) {
		return deny(ReasonWrongAudience, "the token is not for an audience this issuer is trusted for")
	}
	if r.Audience != "" && !id.hasAudience(r.Audience) {
		return deny(ReasonWrongAudience, "the token is not for this audience")
	}
	if !id.hasScopes(r.Scopes) {
		return Decision{Reason: ReasonInsufficientScope, Status: 403, Description: "the token lacks a scope this route needs", Scope: r.scope}
	}
	return allowed
}

func (v *Validator) anyAudience(id *Identity) bool {
	for _, a := range v.cfg.Audiences {
		if id.hasAudience(a) {
			return true
		}
	}
	return false
}

// alive checks exp (Unix seconds) against now with leeway.
func (v *Validator) alive(exp int64, now time.Time) bool {
	return now.Unix() < exp+int64(v.cfg.Leeway/time.Second)
}

// headerSafe reports whether s can go into a header value as it is: no
// control characters (a CR or LF would split the header).
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 && s[i] != '\t' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// identity returns the (shared, when it can be) identity of a token, or
// nil when a claim could not be forwarded safely in a header.
func (v *Validator) identity(sub, client, scope string, aud []string, cnf *oauth.Confirmation, claims []byte) *Identity {
	k := identityKey{sub: sub, client: client, scope: scope, audience: strings.Join(aud, ",")}
	if cnf != nil {
		k.jkt, k.x5t = cnf.Jkt, cnf.X5tS256
	}
	if !headerSafe(k.sub) || !headerSafe(k.client) || !headerSafe(k.scope) || !headerSafe(k.audience) {
		return nil
	}
	if claims == nil {
		if id, ok := v.identities.Load(k); ok {
			return id.(*Identity)
		}
	}
	id := &Identity{Subject: sub, ClientID: client, JKT: k.jkt, X5t: k.x5t, Scope: scope, Scopes: strings.Fields(scope), Audience: aud,
		Claims: claims, audienceHeader: k.audience}
	if claims != nil {
		json.Unmarshal(claims, &id.parsed) // verified JSON: an object
	}
	if claims == nil && v.shared.Load() < maxSharedIdentities {
		if prior, loaded := v.identities.LoadOrStore(k, id); loaded {
			return prior.(*Identity)
		}
		v.shared.Add(1)
	}
	return id
}

// checkJWT verifies a JWT not in its recent slot, from the verified-token
// cache if it can, and leaves it in the slot.
// epoch is the key set's, read before anything is verified (see
// keys.Ring.KeyEpoch).
func (v *Validator) checkJWT(ctx context.Context, now time.Time, tok []byte, slot *atomic.Pointer[recentToken],
	epoch uint32) (*Identity, Decision) {
	sum := sha256.Sum256(tok)
	key := cacheKey(&sum)
	if e, ok := v.verified.Get(key); ok && e.sum == sum && e.epoch == epoch {
		if !v.alive(e.exp, now) {
			v.verified.Del(key)
			return nil, deny(ReasonExpired, "the token has expired")
		}
		return e.id, allowed
	}
	if !validToken(tok) {
		return nil, deny(ReasonMalformed, "the token is not a bearer token")
	}
	payload, hdr, err := v.verifier.Verify(tok)
	if errors.Is(err, keys.ErrUnknownKey) && v.newer != nil {
		if iat, ok := unverifiedIat(tok); ok && v.newer.RefreshFor(iat) {
			payload, hdr, err = v.verifier.Verify(tok)
		}
	}
	switch {
	case errors.Is(err, ErrUnavailable):
		return nil, deny(ReasonUnavailable, "no verification keys are available")
	case errors.Is(err, keys.ErrUnknownKey):
		return nil, deny(ReasonUnknownKID, "the token is signed by an unknown key")
	case errors.Is(err, keys.ErrSignature), errors.Is(err, keys.ErrAlgorithm):
		return nil, deny(ReasonBadSignature, "the token signature is invalid")
	case err != nil:
		return nil, deny(ReasonMalformed, "the token is malformed")
	}
	if v.cfg.RequireTyp && !strings.EqualFold(hdr.Typ, "at+jwt") && !strings.EqualFold(hdr.Typ, "application/at+jwt") {
		return nil, deny(ReasonMalformed, "the token is not an access token (typ)")
	}
	var c oauth.AccessClaims
	// goccy/go-json parses claims several times faster than encoding/json;
	// on a cache miss with a cheap signature (RS256 verify) that matters.
	if err := gojson.Unmarshal(payload, &c); err != nil {
		return nil, deny(ReasonMalformed, "the token claims are not a JSON object")
	}
	if c.Iss != v.cfg.Issuer {
		return nil, deny(ReasonWrongIssuer, "the token is from another issuer")
	}
	lw := int64(v.cfg.Leeway / time.Second)
	switch {
	case c.Exp == 0:
		return nil, deny(ReasonMalformed, "the token has no exp")
	case now.Unix() >= c.Exp+lw:
		return nil, deny(ReasonExpired, "the token has expired")
	case c.Nbf != 0 && now.Unix() < c.Nbf-lw, c.Iat != 0 && now.Unix() < c.Iat-lw:
		return nil, deny(ReasonExpired, "the token is not valid yet")
	}
	if v.revocations != nil && (c.Jti != "" || c.Fid != "") {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		revoked, err := v.revocations.Revoked(rctx, c.Jti, c.Fid)
		cancel()
		if err != nil {
			return nil, deny(ReasonUnavailable, "the revocation list is unavailable")
		}
		if revoked {
			return nil, deny(ReasonInactive, "the token was revoked")
		}
	}
	var claims []byte
	if v.cfg.KeepClaims {
		claims = payload
	}
	id := v.identity(c.Sub, c.ClientID, c.Scope, c.Aud, c.Cnf, claims)
	if id == nil {
		return nil, deny(ReasonMalformed, "the token claims hold control characters")
	}
	if ttl := min(time.Unix(c.Exp, 0).Sub(now), v.cfg.CacheTTL); ttl > 0 {
		v.verified.Set(key, &entry{sum: sum, id: id, exp: c.Exp, epoch: epoch}, ttl)
		slot.Store(&recentToken{tok: string(tok), id: id, exp: c.Exp, until: now.Add(ttl).UnixNano(), epoch: epoch})
	}
	return id, allowed
}

func (v *Validator) checkOpaque(ctx context.Context, now time.Time, tok []byte, sum *[sha256.Size]byte, epoch uint32) (*Identity, Decision) {
	if v.introspector == nil {
		return nil, deny(ReasonMalformed, "opaque tokens are not accepted")
	}
	if !validToken(tok) {
		return nil, deny(ReasonMalformed, "the token is not a bearer token")
	}
	key := cacheKey(sum)
	e, ok := v.introspected.Get(key)
	if !ok || e.sum != *sum || e.epoch != epoch {
		// Concurrent requests with one token share one introspection.
		res, err, _ := v.sf.Do(string(sum[:]), func() (any, error) {
			return v.introspect(ctx, string(tok), sum, now, epoch)
		})
		if err != nil {
			return nil, deny(ReasonUnavailable, "the token cannot be introspected now")
		}
		e = res.(*entry)
	}
	if e.id == nil {
		return nil, deny(ReasonInactive, *e.reason)
	}
	if !v.alive(e.exp, now) {
		v.introspected.Del(key)
		return nil, deny(ReasonExpired, "the token has expired")
	}
	return e.id, allowed
}

func (v *Validator) introspect(ctx context.Context, tok string, sum *[sha256.Size]byte, now time.Time, epoch uint32) (*entry, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := v.introspector.Introspect(ctx, tok)
	if err != nil {
		return nil, err
	}
	key := cacheKey(sum)
	e := &entry{sum: *sum, epoch: epoch}
	switch {
	case !res.Active:
		e.reason = &whyNotActive
	case res.Iss != "" && res.Iss != v.cfg.Issuer:
		e.reason = &whyOtherIssuer
	case res.TokenUse != "" && res.TokenUse != "access_token",
		strings.EqualFold(res.TokenType, "refresh_token"), strings.EqualFold(res.TokenType, "refresh"):
		// A refresh token is a credential for the token endpoint, never
		// for a resource (RFC 6749 §1.5).
		e.reason = &whyNotAccess
	case res.Exp != 0 && now.Unix() >= res.Exp:
		e.reason = &whyExpired
	}
	if e.reason != nil {
		v.introspected.Set(key, e, v.cfg.NegativeTTL)
		return e, nil
	}
	exp := now.Add(v.cfg.IntrospectionTTL)
	if res.Exp != 0 {
		exp = time.Unix(res.Exp, 0)
	}
	var claims []byte
	if v.cfg.KeepClaims {
		claims, _ = json.Marshal(res)
	}
	e.id, e.exp = v.identity(res.Sub, res.ClientID, res.Scope, res.Aud, res.Cnf, claims), exp.Unix()
	if e.id == nil {
		e.reason = &whyUnsafeClaims
		v.introspected.Set(key, e, v.cfg.NegativeTTL)
		return e, nil
	}
	if ttl := min(exp.Sub(now), v.cfg.IntrospectionTTL); ttl > 0 {
		v.introspected.Set(key, e, ttl)
	}
	return e, nil
}

// Forget drops a token from the caches (after its revocation in-process).
func (v *Validator) Forget(token string) {
	slot := v.recentSlot([]byte(token))
	if r := slot.Load(); r != nil && r.tok == token {
		slot.CompareAndSwap(r, nil)
	}
	sum := sha256.Sum256([]byte(token))
	v.verified.Del(cacheKey(&sum))
	if v.introspected != nil {
		v.introspected.Del(cacheKey(&sum))
	}
}

// WaitForCache blocks until earlier cache inserts are applied (tests and
// benchmarks: ristretto admits entries asynchronously).
func (v *Validator) WaitForCache() {
	v.verified.Wait()
	if v.introspected != nil {
		v.introspected.Wait()
	}
}
