package keys

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Config is the ring's rotation policy. Each field but KEK is a setting,
// declared here once: its yaml tag is its name (the binary derives --flag
// and OIDCGATE_ENV from it), its help tag what it means, DefaultConfig its
// default and ValidatePolicy its bounds.
type Config struct {
	// Algs are the algorithms kept with one active key each.
	Algs []string `yaml:"signing_algs" help:"algorithms kept with an active signing key: ES256, RS256, PS256, EdDSA; RS256 is always kept (OIDC Core requires it for ID tokens)"`
	// RSABits is the size of new RSA keys: 2048, 3072 or 4096.
	RSABits int `yaml:"rsa_key_bits" help:"size of new RSA keys: 2048, 3072 or 4096"`
	// RotationPeriod is how long a key signs before its successor takes over.
	RotationPeriod time.Duration `yaml:"key_rotation_period" help:"how long a key signs before its successor takes over"`
	// PrePublish is how long a new key is in the JWKS before it signs. It
	// must be at least the edges' JWKS cache lifetime plus ReloadInterval,
	// so no edge sees an unknown kid on a valid token.
	PrePublish time.Duration `yaml:"key_prepublish" help:"how long a new key is in the JWKS before it signs; must be at least every edge's JWKS cache lifetime plus --key-reload-interval"`
	// RetireGrace is how long a retired key stays published: at least the
	// longest token lifetime plus clock leeway.
	RetireGrace time.Duration `yaml:"key_retire_grace" help:"how long a retired key stays in the JWKS: at least the longest token lifetime plus clock leeway"`
	// ReloadInterval is how often the ring re-reads the store, picking up
	// changes made by other replicas.
	ReloadInterval time.Duration `yaml:"key_reload_interval" help:"how often each replica re-reads the key ring from the store"`
	// KEK is the 32-byte key-encryption key (the caller resolves it).
	KEK []byte `yaml:"-"`
}

// DefaultConfig is the default rotation policy (no KEK).
func DefaultConfig() Config {
	return Config{Algs: []string{ES256, RS256}, RSABits: 2048, RotationPeriod: 30 * 24 * time.Hour, PrePublish: time.Hour,
		RetireGrace: 2 * time.Hour, ReloadInterval: 10 * time.Second}
}

// SettingError is one bad setting, named by its yaml key. The packages
// whose configuration the binary loads (keys, provider, edge) report their
// bad settings with it, so the binary can name each one.
type SettingError struct{ Name, Why string }

func (e *SettingError) Error() string { return e.Name + ": " + e.Why }

// BadSetting is a *SettingError for the setting with yaml key name.
func BadSetting(name, format string, args ...any) error {
	return &SettingError{Name: name, Why: fmt.Sprintf(format, args...)}
}

func bad(name, format string, args ...any) error { return BadSetting(name, format, args...) }

// Validate reports every bad setting, the KEK included.
func (c Config) Validate() error {
	err := c.ValidatePolicy()
	if len(c.KEK) != KEKSize {
		err = errors.Join(err, fmt.Errorf("key-encryption key must be %d bytes, got %d", KEKSize, len(c.KEK)))
	}
	return err
}

// ValidatePolicy reports every bad rotation setting (each a *SettingError),
// for a caller that resolves the KEK later.
func (c Config) ValidatePolicy() error {
	var errs []error
	if len(c.Algs) == 0 {
		errs = append(errs, bad("signing_algs", "at least one signing algorithm is needed"))
	}
	for _, a := range c.Algs {
		if !Supported(a) {
			errs = append(errs, bad("signing_algs", "%q is not one of ES256, RS256, PS256, EdDSA", a))
		}
	}
	if c.RSABits != 2048 && c.RSABits != 3072 && c.RSABits != 4096 {
		errs = append(errs, bad("rsa_key_bits", "must be 2048, 3072 or 4096, got %d", c.RSABits))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"key_rotation_period", c.RotationPeriod}, {"key_prepublish", c.PrePublish}, {"key_retire_grace", c.RetireGrace},
		{"key_reload_interval", c.ReloadInterval}} {
		if d.v <= 0 {
			errs = append(errs, bad(d.name, "must be a positive duration, got %s", d.v))
		}
	}
	if c.PrePublish >= c.RotationPeriod && c.RotationPeriod > 0 {
		errs = append(errs, bad("key_prepublish", "must be shorter than --key-rotation-period (%s)", c.RotationPeriod))
	}
	if c.ReloadInterval >= c.PrePublish && c.PrePublish > 0 {
		errs = append(errs, bad("key_reload_interval", "must be shorter than --key-prepublish (%s)", c.PrePublish))
	}
	return errors.Join(errs...)
}

// key is a decrypted ring member.
type key struct {
	rec    Record
	pub    PublicKey
	signer *signer
}

// snapshot is an immutable view of the ring, swapped atomically on reload.
type snapshot struct {
	keys []*key // sorted by ActivatesAt, then ID
	byID map[string]*key
	jwks []byte
	etag string
}

// Ring is the key ring. Signing and lookups read an atomic snapshot; every
// change is made in the store under its lock and then re-read.
type Ring struct {
	cfg     Config
	store   KeyStore
	log     *slog.Logger
	now     func() time.Time
	sealer  *sealer
	secrets *sealer // for Seal and Open
	macKey  []byte  // for MAC

	snap  atomic.Pointer[snapshot]
	epoch atomic.Uint64 // see KeyEpoch

	mu        sync.Mutex      // guards decrypted
	decrypted map[string]*key // by kid: decryption and parsing happen once
}

// NewRing loads the ring from store, creating the first keys if there are
// none, and fails if a stored key does not decrypt under the KEK.
func NewRing(ctx context.Context, cfg Config, store KeyStore, log *slog.Logger, now func() time.Time) (*Ring, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	s, err := newSealer(cfg.KEK)
	if err != nil {
		return nil, err
	}
	secrets, err := newSecretSealer(cfg.KEK)
	if err != nil {
		return nil, err
	}
	macKey, err := hkdf.Key(sha256.New, cfg.KEK, nil, "oidcgate mac v1", KEKSize)
	if err != nil {
		return nil, err
	}
	r := &Ring{cfg: cfg, store: store, log: log, now: now, sealer: s, secrets: secrets, macKey: macKey, decrypted: map[string]*key{}}
	if err := r.Reload(ctx); err != nil {
		return nil, err
	}
	if len(r.plan(r.records(), r.now())) > 0 {
		if err := r.Reconcile(ctx); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *Ring) records() []Record {
	snap := r.snap.Load()
	out := make([]Record, len(snap.keys))
	for i, k := range snap.keys {
		out[i] = k.rec
	}
	return out
}

// Reload re-reads the store and swaps in a new snapshot.
func (r *Ring) Reload(ctx context.Context) error {
	recs, err := r.store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("keys: load the ring: %w", err)
	}
	snap := &snapshot{byID: make(map[string]*key, len(recs))}
	r.mu.Lock()
	seen := map[string]bool{}
	for _, rec := range recs {
		k, err := r.decrypt(rec)
		if err != nil {
			r.mu.Unlock()
			return err
		}
		seen[rec.ID] = true
		snap.keys = append(snap.keys, k)
		snap.byID[rec.ID] = k
	}
	for id := range r.decrypted {
		if !seen[id] {
			delete(r.decrypted, id)
		}
	}
	r.mu.Unlock()
	sort.Slice(snap.keys, func(i, j int) bool {
		a, b := snap.keys[i].rec, snap.keys[j].rec
		if !a.ActivatesAt.Equal(b.ActivatesAt) {
			return a.ActivatesAt.Before(b.ActivatesAt)
		}
		return a.ID < b.ID
	})
	if snap.jwks, err = renderJWKS(snap.keys); err != nil {
		return err
	}
	sum := sha256.Sum256(snap.jwks)
	snap.etag = `"` + hex.EncodeToString(sum[:12]) + `"`
	old := r.snap.Load()
	r.snap.Store(snap)
	if old != nil && lostKey(old.byID, snap.byID) {
		r.epoch.Add(1) // after the swap: see KeyEpoch
	}
	return nil
}

// lostKey reports whether a kid of before is not in after.
func lostKey(before, after map[string]*key) bool {
	for id := range before {
		if _, ok := after[id]; !ok {
			return true
		}
	}
	return false
}

// KeyEpoch counts the times a key left the ring (revoked, or removed after
// its retirement). A verifier that caches verified tokens records the epoch
// it read before verifying and trusts a cached token only while the epoch is
// unchanged: the epoch moves after the new key set is in place, so a token
// verified under the new epoch was verified against the new set.
func (r *Ring) KeyEpoch() uint64 { return r.epoch.Load() }

// decrypt returns the ring member for rec, reusing an earlier decryption of
// the same blob. r.mu is held.
func (r *Ring) decrypt(rec *Record) (*key, error) {
	if k, ok := r.decrypted[rec.ID]; ok && string(k.rec.Encrypted) == string(rec.Encrypted) {
		cp := *k
		cp.rec = *rec
		return &cp, nil
	}
	priv, err := r.sealer.open(rec.ID, rec.Alg, rec.Encrypted)
	if err != nil {
		return nil, err
	}
	k := &key{rec: *rec, pub: PublicKey{ID: rec.ID, Alg: rec.Alg, Key: priv.Public()}, signer: newSigner(rec.Alg, rec.ID, priv)}
	r.decrypted[rec.ID] = k
	return k, nil
}

// whichSigns is the one rule for which key signs for alg at now: of the
// active and next keys whose activation time has come, the latest (ties:
// the greatest kid). Every replica computes the same answer from the same
// records, whether or not a reconcile has written the promotion yet. It
// returns the index of that record among n (rec reads one), or -1.
func whichSigns(n int, rec func(i int) *Record, alg string, now time.Time) int {
	best := -1
	for i := range n {
		k := rec(i)
		if k.Alg != alg || k.State == Retired || k.ActivatesAt.After(now) {
			continue
		}
		if b := best; b < 0 || k.ActivatesAt.After(rec(b).ActivatesAt) || k.ActivatesAt.Equal(rec(b).ActivatesAt) && k.ID > rec(b).ID {
			best = i
		}
	}
	return best
}

// signingKey is whichSigns over the ring's decrypted keys.
func (s *snapshot) signingKey(alg string, now time.Time) *key {
	if i := whichSigns(len(s.keys), func(i int) *Record { return &s.keys[i].rec }, alg, now); i >= 0 {
		return s.keys[i]
	}
	return nil
}

// pickSigner is whichSigns over plain records, for planning.
func pickSigner(recs []Record, alg string, now time.Time) *Record {
	if i := whichSigns(len(recs), func(i int) *Record { return &recs[i] }, alg, now); i >= 0 {
		return &recs[i]
	}
	return nil
}

// change is one step the policy asks for.
type change struct {
	create *createKey // a new key
	update *Record    // a record's new state
	delete string     // a kid to remove
}

type createKey struct {
	alg         string
	state       State
	activatesAt time.Time
}

// plan lists what the rotation policy wants done to recs at now. It is pure,
// so Run can decide cheaply whether to take the lock.
func (r *Ring) plan(recs []Record, now time.Time) []change {
	var out []change
	for _, alg := range r.cfg.Algs {
		cur := pickSigner(recs, alg, now)
		if cur == nil {
			// An empty ring for alg: the one case (with an emergency
			// revoke) where a key signs as soon as it is made.
			out = append(out, change{create: &createKey{alg: alg, state: Active, activatesAt: now}})
			continue
		}
		if cur.State == Next {
			up := *cur
			up.State = Active
			out = append(out, change{update: &up})
		}
		hasNext := false
		for _, k := range recs {
			switch {
			case k.Alg != alg || k.ID == cur.ID:
			case k.State == Next && k.ActivatesAt.After(now):
				hasNext = true
			case k.State != Retired:
				// Superseded by cur: retire it from cur's activation.
				up := k
				up.State, up.RetiresAt, up.RemoveAt = Retired, cur.ActivatesAt, cur.ActivatesAt.Add(r.cfg.RetireGrace)
				out = append(out, change{update: &up})
			}
		}
		due := cur.ActivatesAt.Add(r.cfg.RotationPeriod)
		if !hasNext && !now.Before(due.Add(-r.cfg.PrePublish)) {
			at := due
			if earliest := now.Add(r.cfg.PrePublish); at.Before(earliest) {
				at = earliest
			}
			out = append(out, change{create: &createKey{alg: alg, state: Next, activatesAt: at}})
		}
	}
	for _, k := range recs {
		switch {
		case k.State == Retired && !now.Before(k.RemoveAt):
			out = append(out, change{delete: k.ID})
		case !slices.Contains(r.cfg.Algs, k.Alg) && k.State == Next:
			out = append(out, change{delete: k.ID}) // never signed: nothing to keep it for
		case !slices.Contains(r.cfg.Algs, k.Alg) && k.State == Active:
			up := k
			up.State, up.RetiresAt, up.RemoveAt = Retired, now, now.Add(r.cfg.RetireGrace)
			out = append(out, change{update: &up})
		}
	}
	return out
}

// Reconcile applies the rotation policy under the store's ring lock.
func (r *Ring) Reconcile(ctx context.Context) error {
	return r.locked(ctx, func(ctx context.Context, recs []Record, now time.Time) error {
		for _, c := range r.plan(recs, now) {
			if err := r.apply(ctx, c, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// locked runs fn under the ring lock with the store's current records, then
// reloads.
func (r *Ring) locked(ctx context.Context, fn func(ctx context.Context, recs []Record, now time.Time) error) error {
	err := r.store.WithSigningKeyLock(ctx, func(ctx context.Context) error {
		list, err := r.store.ListSigningKeys(ctx)
		if err != nil {
			return err
		}
		recs := make([]Record, len(list))
		for i, k := range list {
			recs[i] = *k
		}
		return fn(ctx, recs, r.now())
	})
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	return r.Reload(ctx)
}

func (r *Ring) apply(ctx context.Context, c change, now time.Time) error {
	switch {
	case c.create != nil:
		rec, err := r.newRecord(c.create.alg, c.create.state, now, c.create.activatesAt)
		if err != nil {
			return err
		}
		if err := r.store.CreateSigningKey(ctx, rec); err != nil {
			return err
		}
		r.log.Info("signing key created", "kid", rec.ID, "alg", rec.Alg, "state", rec.State, "activates_at", rec.ActivatesAt)
	case c.update != nil:
		if err := r.store.UpdateSigningKey(ctx, c.update); err != nil {
			return err
		}
		r.log.Info("signing key changed state", "kid", c.update.ID, "alg", c.update.Alg, "state", c.update.State)
	case c.delete != "":
		if err := r.store.DeleteSigningKey(ctx, c.delete); err != nil {
			return err
		}
		r.log.Info("signing key removed", "kid", c.delete)
	}
	return nil
}

func (r *Ring) newRecord(alg string, state State, now, activatesAt time.Time) (*Record, error) {
	priv, err := generate(alg, r.cfg.RSABits)
	if err != nil {
		return nil, err
	}
	kid, err := Thumbprint(priv.Public())
	if err != nil {
		return nil, err
	}
	blob, err := r.sealer.seal(kid, alg, priv)
	if err != nil {
		return nil, err
	}
	return &Record{ID: kid, Alg: alg, State: state, Encrypted: blob, CreatedAt: now, ActivatesAt: activatesAt}, nil
}

// Rotate stages a successor for alg: published now, signing after the
// pre-publish lead. If one is already staged, that one is returned.
func (r *Ring) Rotate(ctx context.Context, alg string) (Record, error) {
	if !Supported(alg) {
		return Record{}, fmt.Errorf("keys: algorithm %q is not supported", alg)
	}
	var staged Record
	err := r.locked(ctx, func(ctx context.Context, recs []Record, now time.Time) error {
		for _, k := range recs {
			if k.Alg == alg && k.State == Next && k.ActivatesAt.After(now) {
				staged = k
				return nil
			}
		}
		rec, err := r.newRecord(alg, Next, now, now.Add(r.cfg.PrePublish))
		if err != nil {
			return err
		}
		if err := r.store.CreateSigningKey(ctx, rec); err != nil {
			return err
		}
		r.log.Info("signing key rotation staged", "kid", rec.ID, "alg", alg, "activates_at", rec.ActivatesAt)
		staged = *rec
		return nil
	})
	return staged, err
}

// ErrNoSuchKey: Revoke was given a kid the ring does not have.
var ErrNoSuchKey = errors.New("no such key")

// Revoke removes kid from the ring at once (a compromised key). If it was
// signing, its successor — the staged key, or a new one — signs at once.
func (r *Ring) Revoke(ctx context.Context, kid string) error {
	return r.locked(ctx, func(ctx context.Context, recs []Record, now time.Time) error {
		i := slices.IndexFunc(recs, func(k Record) bool { return k.ID == kid })
		if i < 0 {
			return fmt.Errorf("%w: %s", ErrNoSuchKey, kid)
		}
		victim := recs[i]
		wasSigning := pickSigner(recs, victim.Alg, now)
		if err := r.store.DeleteSigningKey(ctx, kid); err != nil {
			return err
		}
		r.log.Warn("signing key revoked", "kid", kid, "alg", victim.Alg)
		if wasSigning == nil || wasSigning.ID != kid {
			return nil
		}
		rest := slices.Delete(slices.Clone(recs), i, i+1)
		for _, k := range rest {
			if k.Alg == victim.Alg && k.State == Next {
				k.State, k.ActivatesAt = Active, now
				return r.store.UpdateSigningKey(ctx, &k)
			}
		}
		rec, err := r.newRecord(victim.Alg, Active, now, now)
		if err != nil {
			return err
		}
		return r.store.CreateSigningKey(ctx, rec)
	})
}

// Run reloads every ReloadInterval and applies the policy when it asks for
// something, until ctx is cancelled.
func (r *Ring) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.Tick(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("key ring maintenance failed; serving the last loaded ring", "error", err)
		}
	}
}

// Tick is one round of Run: reload, then reconcile if the policy asks.
func (r *Ring) Tick(ctx context.Context) error {
	if err := r.Reload(ctx); err != nil {
		return err
	}
	if len(r.plan(r.records(), r.now())) == 0 {
		return nil
	}
	return r.Reconcile(ctx)
}

// Algs returns the algorithms the ring keeps keys for.
func (r *Ring) Algs() []string { return slices.Clone(r.cfg.Algs) }

// ErrNoSigningKey: the ring has no key for the algorithm (not configured).
var ErrNoSigningKey = errors.New("keys: no signing key for this algorithm")

// Sign returns the compact JWS of payload signed by alg's current key,
// with typ in the protected header (e.g. "at+jwt", RFC 9068 §2.1).
func (r *Ring) Sign(alg, typ string, payload []byte) (string, error) {
	b, err := r.AppendSign(nil, alg, typ, payload)
	return string(b), err
}

// AppendSign is Sign appending to dst.
func (r *Ring) AppendSign(dst []byte, alg, typ string, payload []byte) ([]byte, error) {
	k := r.snap.Load().signingKey(alg, r.now())
	if k == nil {
		return dst, fmt.Errorf("%w: %s", ErrNoSigningKey, alg)
	}
	return k.signer.appendSign(dst, k.rec.ID, typ, payload)
}

// SigningKeyID returns the kid that signs for alg now.
func (r *Ring) SigningKeyID(alg string) (string, bool) {
	k := r.snap.Load().signingKey(alg, r.now())
	if k == nil {
		return "", false
	}
	return k.rec.ID, true
}

// PublicKey implements KeySet over every published key.
func (r *Ring) PublicKey(kid string) (*PublicKey, error) {
	k, ok := r.snap.Load().byID[kid]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKey, kid)
	}
	return &k.pub, nil
}

// JWKS returns the published key set (RFC 7517 §5) and its ETag. The bytes
// are rendered once per ring change; callers must not modify them.
func (r *Ring) JWKS() (body []byte, etag string) {
	s := r.snap.Load()
	return s.jwks, s.etag
}

// JWKSMaxAge is how long clients may cache the JWKS: short enough that a
// key staged on another replica (seen here within ReloadInterval) reaches
// every cache before it signs, and never over five minutes.
func (r *Ring) JWKSMaxAge() time.Duration {
	return min(5*time.Minute, r.cfg.PrePublish-r.cfg.ReloadInterval)
}

// Keys lists the ring's records (without the encrypted blobs), ordered by
// activation time.
func (r *Ring) Keys() []Record {
	recs := r.records()
	for i := range recs {
		recs[i].Encrypted = nil
	}
	return recs
}

// Ready reports whether every configured algorithm has a signing key.
func (r *Ring) Ready() error {
	s, now := r.snap.Load(), r.now()
	for _, alg := range r.cfg.Algs {
		if s.signingKey(alg, now) == nil {
			return fmt.Errorf("%w: %s", ErrNoSigningKey, alg)
		}
	}
	return nil
}

// renderJWKS renders the public members of every key (RFC 7517 §4, §5).
func renderJWKS(keys []*key) ([]byte, error) {
	set := jwk.NewSet()
	for _, k := range keys {
		jk, err := jwk.FromRaw(k.pub.Key)
		if err != nil {
			return nil, fmt.Errorf("keys: render %s: %w", k.rec.ID, err)
		}
		for name, v := range map[string]any{jwk.KeyIDKey: k.rec.ID, jwk.AlgorithmKey: k.rec.Alg, jwk.KeyUsageKey: "sig"} {
			if err := jk.Set(name, v); err != nil {
				return nil, fmt.Errorf("keys: render %s: %w", k.rec.ID, err)
			}
		}
		if err := set.AddKey(jk); err != nil {
			return nil, err
		}
	}
	return json.Marshal(set)
}
