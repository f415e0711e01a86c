// Package bolt is the embedded storage backend (the default): one bbolt
// file under the data directory, so a restart keeps everything. Records are
// JSON; every operation is one bbolt transaction, which also makes the
// single-use operations atomic (bbolt serialises writers).
package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	// goccy/go-json reads the same JSON as encoding/json in a third of the
	// time: every introspection decodes a record.
	json "github.com/goccy/go-json"
	bbolt "go.etcd.io/bbolt"

	"github.com/oidcgate/oidcgate/provider/storage"
)

var _ storage.Storage = (*Store)(nil)

var (
	bClients     = []byte("clients")
	bUsers       = []byte("users")
	bUsernames   = []byte("usernames")       // username → user ID
	bIdentities  = []byte("identities")      // connector ID 0x00 subject → identity
	bUserIDs     = []byte("user_identities") // user ID 0x00 connector ID 0x00 subject → nothing
	bFactors     = []byte("factors")         // user ID 0x00 factor ID → factor
	bAdminTokens = []byte("admin_tokens")    // hash → token
	bAudit       = []byte("audit_events")    // ID (time-ordered) → event
	bAssertions  = []byte("assertions")      // SHA-256 of a key → its expiry
	bCodes       = []byte("auth_codes")
	bRefresh     = []byte("refresh_tokens")
	bFamilies    = []byte("refresh_families") // family ID 0x00 hash → nothing
	bAccess      = []byte("access_tokens")
	bInteract    = []byte("interactions")
	bSessions    = []byte("sessions")
	bSessionHash = []byte("session_hashes") // hash → session ID
	bConsents    = []byte("consents")       // user ID 0x00 client ID → consent
	bKeys        = []byte("signing_keys")
	bRevocations = []byte("revocations")
	bLogouts     = []byte("logout_deliveries") // ID → delivery
	bRevSeq      = []byte("revocation_seq")    // Seq (big-endian) → jti
	// bExpiry indexes the expiring records by deadline, so the clean-up
	// reads only what has expired: see expiryKey.
	bExpiry    = []byte("expiry")
	allBuckets = [][]byte{bClients, bUsers, bUsernames, bIdentities, bUserIDs, bFactors, bAdminTokens, bAudit, bAssertions, bCodes, bRefresh, bFamilies, bAccess, bInteract, bSessions, bSessionHash, bConsents, bKeys, bRevocations, bRevSeq, bLogouts, bExpiry}
)

// Store is a bbolt-backed storage.Storage.
type Store struct {
	db  *bbolt.DB
	now func() time.Time
	// keyLock is the ring lock. One process holds the file (bbolt's flock),
	// so a process-local mutex excludes every other ring on this store.
	keyLock sync.Mutex
}

// Open opens (creating if needed) the store file at path. It fails after
// a second if another process holds the file.
func Open(path string, now func() time.Time) (*Store, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: the file is locked by another process (is another oidcgate running on this data directory?)", path)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		indexed := tx.Bucket(bExpiry) != nil
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if !indexed { // a file from before the expiry index: build it once
			return reindex(tx)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.MaxBatchDelay = time.Millisecond
	return &Store{db: db, now: now}, nil
}

func put(b *bbolt.Bucket, key []byte, rec any) error {
	storage.Normalize(rec)
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return b.Put(key, v)
}

// putCopy writes a normalised copy of *rec, leaving the caller's value alone.
func putCopy[T any](b *bbolt.Bucket, key []byte, rec *T) error {
	cp := *rec
	return put(b, key, &cp)
}

func get[T any](b *bbolt.Bucket, key []byte) (*T, error) {
	v := b.Get(key)
	if v == nil {
		return nil, storage.ErrNotFound
	}
	out := new(T)
	if err := json.Unmarshal(v, out); err != nil {
		return nil, fmt.Errorf("bolt: decode record %x: %w", key, err)
	}
	return out, nil
}

func list[T any](b *bbolt.Bucket) ([]*T, error) {
	out := []*T{}
	err := b.ForEach(func(k, v []byte) error {
		rec := new(T)
		if err := json.Unmarshal(v, rec); err != nil {
			return fmt.Errorf("bolt: decode %q: %w", k, err)
		}
		out = append(out, rec)
		return nil
	})
	return out, err
}

func pair(a, b string) []byte { return []byte(a + "\x00" + b) }

// update runs a write. Concurrent writes share one transaction and one
// fsync (bbolt's Batch): a write then waits at most MaxBatchDelay for
// company, instead of paying a disk flush of its own. fn may run twice (a
// failed batch is retried write by write after its rollback), so it keeps no
// state outside the transaction but its results.
//
// An expected outcome (ErrNotFound, ErrAlreadyExists, ErrAlreadyUsed) is not
// an error to the batch: returned from fn it would roll back every other
// writer's work and re-run them one by one. fn returns one only before it
// has written anything, so update commits the (empty) work and hands the
// outcome to its caller.
func (s *Store) update(fn func(tx *bbolt.Tx) error) error {
	var outcome error
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		outcome = nil
		err := fn(tx)
		if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrAlreadyExists) || errors.Is(err, storage.ErrAlreadyUsed) {
			outcome = err
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	return outcome
}

// Expiry index: a key is the deadline (big-endian Unix nanoseconds), the
// record's kind and its key; the value is empty. Writers add an entry for a
// record's deadline and never remove one: a record deleted or given a later
// deadline (a sliding session) leaves a stale entry, which the clean-up
// drops when it reaches it.
const (
	kindCode byte = 'c' + iota
	kindRefresh
	kindAccess
	kindInteraction
	kindSession
	kindConsent
	kindRevocation
	kindAudit
	kindAssertion
)

func expiryKey(deadline time.Time, kind byte, key []byte) []byte {
	k := make([]byte, 9, 9+len(key))
	binary.BigEndian.PutUint64(k, uint64(deadline.UnixNano()))
	k[8] = kind
	return append(k, key...)
}

// expires indexes a record that expires at deadline (never, when zero).
func expires(tx *bbolt.Tx, deadline time.Time, kind byte, key []byte) error {
	if deadline.IsZero() {
		return nil
	}
	return tx.Bucket(bExpiry).Put(expiryKey(deadline, kind, key), nil)
}
func (s *Store) view(fn func(tx *bbolt.Tx) error) error { return s.db.View(fn) }

// CreateClient implements storage.Clients.
func (s *Store) CreateClient(_ context.Context, c *storage.Client) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bClients)
		if b.Get([]byte(c.ID)) != nil {
			return storage.ErrAlreadyExists
		}
		return putCopy(b, []byte(c.ID), c)
	})
}

// GetClient implements storage.Clients.
func (s *Store) GetClient(_ context.Context, id string) (c *storage.Client, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		c, err = get[storage.Client](tx.Bucket(bClients), []byte(id))
		return err
	})
	return c, err
}

// UpdateClient implements storage.Clients.
func (s *Store) UpdateClient(_ context.Context, c *storage.Client) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bClients)
		if b.Get([]byte(c.ID)) == nil {
			return storage.ErrNotFound
		}
		return putCopy(b, []byte(c.ID), c)
	})
}

// DeleteClient implements storage.Clients.
func (s *Store) DeleteClient(_ context.Context, id string) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bClients)
		if b.Get([]byte(id)) == nil {
			return storage.ErrNotFound
		}
		return b.Delete([]byte(id))
	})
}

// ListClients implements storage.Clients.
func (s *Store) ListClients(_ context.Context) (out []*storage.Client, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		out, err = list[storage.Client](tx.Bucket(bClients))
		return err
	})
	return out, err
}

// CreateUser implements storage.Users.
func (s *Store) CreateUser(_ context.Context, u *storage.User) error {
	return s.update(func(tx *bbolt.Tx) error {
		b, names := tx.Bucket(bUsers), tx.Bucket(bUsernames)
		if b.Get([]byte(u.ID)) != nil || names.Get([]byte(u.Username)) != nil {
			return storage.ErrAlreadyExists
		}
		if err := names.Put([]byte(u.Username), []byte(u.ID)); err != nil {
			return err
		}
		return putCopy(b, []byte(u.ID), u)
	})
}

// GetUser implements storage.Users.
func (s *Store) GetUser(_ context.Context, id string) (u *storage.User, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		u, err = get[storage.User](tx.Bucket(bUsers), []byte(id))
		return err
	})
	return u, err
}

// GetUserByUsername implements storage.Users.
func (s *Store) GetUserByUsername(_ context.Context, username string) (u *storage.User, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		id := tx.Bucket(bUsernames).Get([]byte(username))
		if id == nil {
			return storage.ErrNotFound
		}
		u, err = get[storage.User](tx.Bucket(bUsers), id)
		return err
	})
	return u, err
}

// UpdateUser implements storage.Users.
func (s *Store) UpdateUser(_ context.Context, u *storage.User) error {
	return s.update(func(tx *bbolt.Tx) error {
		b, names := tx.Bucket(bUsers), tx.Bucket(bUsernames)
		old, err := get[storage.User](b, []byte(u.ID))
		if err != nil {
			return err
		}
		if old.Username != u.Username {
			if names.Get([]byte(u.Username)) != nil {
				return storage.ErrAlreadyExists
			}
			if err := names.Delete([]byte(old.Username)); err != nil {
				return err
			}
			if err := names.Put([]byte(u.Username), []byte(u.ID)); err != nil {
				return err
			}
		}
		return putCopy(b, []byte(u.ID), u)
	})
}

// DeleteUser implements storage.Users.
func (s *Store) DeleteUser(_ context.Context, id string) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bUsers)
		old, err := get[storage.User](b, []byte(id))
		if err != nil {
			return err
		}
		if err := tx.Bucket(bUsernames).Delete([]byte(old.Username)); err != nil {
			return err
		}
		links, ids := tx.Bucket(bUserIDs), tx.Bucket(bIdentities)
		prefix := []byte(id + "\x00")
		var linked [][]byte
		c := links.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			linked = append(linked, bytes.Clone(k))
		}
		for _, k := range linked {
			if err := ids.Delete(k[len(prefix):]); err != nil {
				return err
			}
			if err := links.Delete(k); err != nil {
				return err
			}
		}
		if _, err := deleteFactors(tx, id, ""); err != nil {
			return err
		}
		return b.Delete([]byte(id))
	})
}

// CreateFactor implements storage.Factors.
func (s *Store) CreateFactor(_ context.Context, f *storage.Factor) error {
	return s.update(func(tx *bbolt.Tx) error {
		b, key := tx.Bucket(bFactors), pair(f.UserID, f.ID)
		if b.Get(key) != nil {
			return storage.ErrAlreadyExists
		}
		if tx.Bucket(bUsers).Get([]byte(f.UserID)) == nil {
			return storage.ErrNotFound
		}
		return putCopy(b, key, f)
	})
}

// ListFactors implements storage.Factors.
func (s *Store) ListFactors(_ context.Context, userID string) (out []*storage.Factor, err error) {
	out = []*storage.Factor{}
	err = s.view(func(tx *bbolt.Tx) error {
		prefix := []byte(userID + "\x00")
		c := tx.Bucket(bFactors).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			f := new(storage.Factor)
			if err := json.Unmarshal(v, f); err != nil {
				return fmt.Errorf("bolt: decode factor %q: %w", k, err)
			}
			out = append(out, f)
		}
		return nil
	})
	storage.SortFactors(out)
	return out, err
}

// UseFactor implements storage.Factors.
func (s *Store) UseFactor(_ context.Context, userID, id string, counter uint64, at time.Time) error {
	return s.update(func(tx *bbolt.Tx) error {
		b, key := tx.Bucket(bFactors), pair(userID, id)
		f, err := get[storage.Factor](b, key)
		if err != nil {
			return err
		}
		if !storage.Advances(f.Counter, counter) {
			return storage.ErrAlreadyUsed
		}
		f.Counter, f.LastUsedAt = counter, at
		return putCopy(b, key, f)
	})
}

// DeleteFactor implements storage.Factors.
func (s *Store) DeleteFactor(_ context.Context, userID, id string) error {
	return s.update(func(tx *bbolt.Tx) error {
		b, key := tx.Bucket(bFactors), pair(userID, id)
		if b.Get(key) == nil {
			return storage.ErrNotFound
		}
		return b.Delete(key)
	})
}

// DeleteFactors implements storage.Factors.
func (s *Store) DeleteFactors(_ context.Context, userID, kind string) (n int, err error) {
	err = s.update(func(tx *bbolt.Tx) error {
		n, err = deleteFactors(tx, userID, kind)
		return err
	})
	return n, err
}

// deleteFactors removes a user's factors of kind ("": all).
func deleteFactors(tx *bbolt.Tx, userID, kind string) (int, error) {
	b, prefix := tx.Bucket(bFactors), []byte(userID+"\x00")
	var doomed [][]byte
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var f struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(v, &f); err != nil {
			return 0, fmt.Errorf("bolt: decode factor %q: %w", k, err)
		}
		if kind == "" || f.Kind == kind {
			doomed = append(doomed, bytes.Clone(k))
		}
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(doomed), nil
}

// CreateIdentity implements storage.Identities.
func (s *Store) CreateIdentity(_ context.Context, i *storage.Identity) error {
	return s.update(func(tx *bbolt.Tx) error {
		b, key := tx.Bucket(bIdentities), pair(i.ConnectorID, i.Subject)
		if b.Get(key) != nil {
			return storage.ErrAlreadyExists
		}
		if tx.Bucket(bUsers).Get([]byte(i.UserID)) == nil {
			return storage.ErrNotFound
		}
		if err := tx.Bucket(bUserIDs).Put(pair(i.UserID, string(key)), nil); err != nil {
			return err
		}
		return putCopy(b, key, i)
	})
}

// GetIdentity implements storage.Identities.
func (s *Store) GetIdentity(_ context.Context, connectorID, subject string) (i *storage.Identity, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		i, err = get[storage.Identity](tx.Bucket(bIdentities), pair(connectorID, subject))
		return err
	})
	return i, err
}

// UpdateIdentity implements storage.Identities.
func (s *Store) UpdateIdentity(_ context.Context, i *storage.Identity) error {
	return s.update(func(tx *bbolt.Tx) error {
		b, key := tx.Bucket(bIdentities), pair(i.ConnectorID, i.Subject)
		old, err := get[storage.Identity](b, key)
		if err != nil {
			return err
		}
		if old.UserID != i.UserID {
			if tx.Bucket(bUsers).Get([]byte(i.UserID)) == nil {
				return storage.ErrNotFound
			}
			links := tx.Bucket(bUserIDs)
			if err := links.Delete(pair(old.UserID, string(key))); err != nil {
				return err
			}
			if err := links.Put(pair(i.UserID, string(key)), nil); err != nil {
				return err
			}
		}
		return putCopy(b, key, i)
	})
}

// ListIdentities implements storage.Identities.
func (s *Store) ListIdentities(_ context.Context, userID string) (out []*storage.Identity, err error) {
	out = []*storage.Identity{}
	err = s.view(func(tx *bbolt.Tx) error {
		ids, prefix := tx.Bucket(bIdentities), []byte(userID+"\x00")
		c := tx.Bucket(bUserIDs).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			i, err := get[storage.Identity](ids, k[len(prefix):])
			if err != nil {
				return err
			}
			out = append(out, i)
		}
		return nil
	})
	return out, err
}

// DeleteIdentity implements storage.Identities.
func (s *Store) DeleteIdentity(_ context.Context, connectorID, subject string) error {
	return s.update(func(tx *bbolt.Tx) error {
		b, key := tx.Bucket(bIdentities), pair(connectorID, subject)
		old, err := get[storage.Identity](b, key)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bUserIDs).Delete(pair(old.UserID, string(key))); err != nil {
			return err
		}
		return b.Delete(key)
	})
}

// ListUsers implements storage.Users.
func (s *Store) ListUsers(_ context.Context) (out []*storage.User, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		out, err = list[storage.User](tx.Bucket(bUsers))
		return err
	})
	return out, err
}

// CreateAuthCode implements storage.AuthCodes.
func (s *Store) CreateAuthCode(_ context.Context, c *storage.AuthCode) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bCodes)
		if b.Get(c.Hash[:]) != nil {
			return storage.ErrAlreadyExists
		}
		if err := expires(tx, c.ExpiresAt, kindCode, c.Hash[:]); err != nil {
			return err
		}
		return putCopy(b, c.Hash[:], c)
	})
}

// GetAuthCode implements storage.AuthCodes.
func (s *Store) GetAuthCode(_ context.Context, h storage.Hash) (c *storage.AuthCode, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		c, err = get[storage.AuthCode](tx.Bucket(bCodes), h[:])
		if err == nil && storage.Expired(c.ExpiresAt, s.now()) {
			c, err = nil, storage.ErrNotFound
		}
		return err
	})
	return c, err
}

// ConsumeAuthCode implements storage.AuthCodes.
func (s *Store) ConsumeAuthCode(_ context.Context, h storage.Hash, out storage.Issued) (c *storage.AuthCode, err error) {
	err = s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bCodes)
		c, err = get[storage.AuthCode](b, h[:])
		now := s.now()
		if err != nil || storage.Expired(c.ExpiresAt, now) {
			c = nil
			return storage.ErrNotFound
		}
		if !c.UsedAt.IsZero() {
			return storage.ErrAlreadyUsed
		}
		if err := writeIssued(tx, out); err != nil {
			return err
		}
		c.UsedAt = now
		return put(b, h[:], c)
	})
	return c, err
}

// DeleteAuthCode implements storage.AuthCodes.
func (s *Store) DeleteAuthCode(_ context.Context, h storage.Hash) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bCodes)
		if b.Get(h[:]) == nil {
			return storage.ErrNotFound
		}
		return b.Delete(h[:])
	})
}

// CreateRefreshToken implements storage.RefreshTokens.
func (s *Store) CreateRefreshToken(_ context.Context, t *storage.RefreshToken) error {
	return s.update(func(tx *bbolt.Tx) error { return writeIssued(tx, storage.Issued{Refresh: t}) })
}

// writeIssued writes a grant's new tokens; when one exists already it
// writes nothing and says so.
func writeIssued(tx *bbolt.Tx, out storage.Issued) error {
	rb, ab := tx.Bucket(bRefresh), tx.Bucket(bAccess)
	if out.Refresh != nil && rb.Get(out.Refresh.Hash[:]) != nil || out.Access != nil && ab.Get(out.Access.Hash[:]) != nil {
		return storage.ErrAlreadyExists
	}
	if t := out.Refresh; t != nil {
		if err := tx.Bucket(bFamilies).Put(pair(t.FamilyID, string(t.Hash[:])), nil); err != nil {
			return err
		}
		if err := expires(tx, t.ExpiresAt, kindRefresh, t.Hash[:]); err != nil {
			return err
		}
		if err := putCopy(rb, t.Hash[:], t); err != nil {
			return err
		}
	}
	if t := out.Access; t != nil {
		if err := expires(tx, t.ExpiresAt, kindAccess, t.Hash[:]); err != nil {
			return err
		}
		return putCopy(ab, t.Hash[:], t)
	}
	return nil
}

// GetRefreshToken implements storage.RefreshTokens.
func (s *Store) GetRefreshToken(_ context.Context, h storage.Hash) (t *storage.RefreshToken, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		t, err = get[storage.RefreshToken](tx.Bucket(bRefresh), h[:])
		if err == nil && storage.Expired(t.ExpiresAt, s.now()) {
			t, err = nil, storage.ErrNotFound
		}
		return err
	})
	return t, err
}

// UseRefreshToken implements storage.RefreshTokens.
func (s *Store) UseRefreshToken(_ context.Context, h storage.Hash, out storage.Issued) (t *storage.RefreshToken, err error) {
	err = s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bRefresh)
		t, err = get[storage.RefreshToken](b, h[:])
		now := s.now()
		if err != nil || storage.Expired(t.ExpiresAt, now) {
			t = nil
			return storage.ErrNotFound
		}
		if !t.UsedAt.IsZero() || !t.RevokedAt.IsZero() {
			return storage.ErrAlreadyUsed
		}
		if err := writeIssued(tx, out); err != nil {
			return err
		}
		t.UsedAt = now
		return put(b, h[:], t)
	})
	return t, err
}

// RevokeRefreshFamily implements storage.RefreshTokens.
func (s *Store) RevokeRefreshFamily(_ context.Context, familyID string) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bRefresh)
		now := s.now()
		prefix := pair(familyID, "")
		c := tx.Bucket(bFamilies).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			h := k[len(prefix):]
			t, err := get[storage.RefreshToken](b, h)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if t.RevokedAt.IsZero() {
				t.RevokedAt = now
				if err := put(b, h, t); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// CreateAccessToken implements storage.AccessTokens.
func (s *Store) CreateAccessToken(_ context.Context, t *storage.AccessToken) error {
	return s.update(func(tx *bbolt.Tx) error { return writeIssued(tx, storage.Issued{Access: t}) })
}

// GetAccessToken implements storage.AccessTokens.
func (s *Store) GetAccessToken(_ context.Context, h storage.Hash) (t *storage.AccessToken, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		t, err = get[storage.AccessToken](tx.Bucket(bAccess), h[:])
		if err == nil && storage.Expired(t.ExpiresAt, s.now()) {
			t, err = nil, storage.ErrNotFound
		}
		return err
	})
	return t, err
}

// DeleteAccessToken implements storage.AccessTokens.
func (s *Store) DeleteAccessToken(_ context.Context, h storage.Hash) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bAccess)
		if b.Get(h[:]) == nil {
			return storage.ErrNotFound
		}
		return b.Delete(h[:])
	})
}

// CreateInteraction implements storage.Interactions.
func (s *Store) CreateInteraction(_ context.Context, i *storage.Interaction) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bInteract)
		if b.Get([]byte(i.ID)) != nil {
			return storage.ErrAlreadyExists
		}
		if err := expires(tx, i.ExpiresAt, kindInteraction, []byte(i.ID)); err != nil {
			return err
		}
		return putCopy(b, []byte(i.ID), i)
	})
}

// GetInteraction implements storage.Interactions.
func (s *Store) GetInteraction(_ context.Context, id string) (i *storage.Interaction, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		i, err = get[storage.Interaction](tx.Bucket(bInteract), []byte(id))
		if err == nil && storage.Expired(i.ExpiresAt, s.now()) {
			i, err = nil, storage.ErrNotFound
		}
		return err
	})
	return i, err
}

// UpdateInteraction implements storage.Interactions.
func (s *Store) UpdateInteraction(_ context.Context, i *storage.Interaction) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bInteract)
		if b.Get([]byte(i.ID)) == nil {
			return storage.ErrNotFound
		}
		if err := expires(tx, i.ExpiresAt, kindInteraction, []byte(i.ID)); err != nil {
			return err
		}
		return putCopy(b, []byte(i.ID), i)
	})
}

// DeleteInteraction implements storage.Interactions.
func (s *Store) DeleteInteraction(_ context.Context, id string) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bInteract)
		if b.Get([]byte(id)) == nil {
			return storage.ErrNotFound
		}
		return b.Delete([]byte(id))
	})
}

// CreateSession implements storage.Sessions.
func (s *Store) CreateSession(_ context.Context, se *storage.Session) error {
	return s.update(func(tx *bbolt.Tx) error {
		b, hashes := tx.Bucket(bSessions), tx.Bucket(bSessionHash)
		if b.Get([]byte(se.ID)) != nil || hashes.Get(se.Hash[:]) != nil {
			return storage.ErrAlreadyExists
		}
		if err := hashes.Put(se.Hash[:], []byte(se.ID)); err != nil {
			return err
		}
		if err := expires(tx, se.Deadline(), kindSession, []byte(se.ID)); err != nil {
			return err
		}
		return putCopy(b, []byte(se.ID), se)
	})
}

// GetSession implements storage.Sessions.
func (s *Store) GetSession(_ context.Context, h storage.Hash) (se *storage.Session, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		id := tx.Bucket(bSessionHash).Get(h[:])
		if id == nil {
			return storage.ErrNotFound
		}
		se, err = get[storage.Session](tx.Bucket(bSessions), id)
		if err == nil && storage.Expired(se.Deadline(), s.now()) {
			se, err = nil, storage.ErrNotFound
		}
		return err
	})
	return se, err
}

// UpdateSession implements storage.Sessions.
func (s *Store) UpdateSession(_ context.Context, se *storage.Session) error {
	return s.update(func(tx *bbolt.Tx) error {
		b, hashes := tx.Bucket(bSessions), tx.Bucket(bSessionHash)
		old, err := get[storage.Session](b, []byte(se.ID))
		if err != nil {
			return err
		}
		if old.Hash != se.Hash {
			if hashes.Get(se.Hash[:]) != nil {
				return storage.ErrAlreadyExists
			}
			if err := hashes.Delete(old.Hash[:]); err != nil {
				return err
			}
			if err := hashes.Put(se.Hash[:], []byte(se.ID)); err != nil {
				return err
			}
		}
		if err := expires(tx, se.Deadline(), kindSession, []byte(se.ID)); err != nil {
			return err
		}
		return putCopy(b, []byte(se.ID), se)
	})
}

// DeleteSession implements storage.Sessions.
func (s *Store) DeleteSession(_ context.Context, id string) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bSessions)
		old, err := get[storage.Session](b, []byte(id))
		if err != nil {
			return err
		}
		if err := tx.Bucket(bSessionHash).Delete(old.Hash[:]); err != nil {
			return err
		}
		return b.Delete([]byte(id))
	})
}

// CreateAdminToken implements storage.AdminTokens. Tokens are few: the
// name and ID checks read them all.
func (s *Store) CreateAdminToken(_ context.Context, t *storage.AdminToken) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bAdminTokens)
		all, err := list[storage.AdminToken](b)
		if err != nil {
			return err
		}
		for _, o := range all {
			if o.ID == t.ID || o.Name == t.Name || o.Hash == t.Hash {
				return storage.ErrAlreadyExists
			}
		}
		return putCopy(b, t.Hash[:], t)
	})
}

// GetAdminToken implements storage.AdminTokens.
func (s *Store) GetAdminToken(_ context.Context, h storage.Hash) (t *storage.AdminToken, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		t, err = get[storage.AdminToken](tx.Bucket(bAdminTokens), h[:])
		if err == nil && storage.Expired(t.ExpiresAt, s.now()) {
			t, err = nil, storage.ErrNotFound
		}
		return err
	})
	return t, err
}

// ListAdminTokens implements storage.AdminTokens.
func (s *Store) ListAdminTokens(_ context.Context) (out []*storage.AdminToken, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		out, err = list[storage.AdminToken](tx.Bucket(bAdminTokens))
		return err
	})
	storage.SortAdminTokens(out)
	return out, err
}

// DeleteAdminToken implements storage.AdminTokens.
func (s *Store) DeleteAdminToken(_ context.Context, id string) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bAdminTokens)
		all, err := list[storage.AdminToken](b)
		if err != nil {
			return err
		}
		for _, t := range all {
			if t.ID == id {
				return b.Delete(t.Hash[:])
			}
		}
		return storage.ErrNotFound
	})
}

// UseAssertion implements storage.Assertions.
func (s *Store) UseAssertion(_ context.Context, key string, exp time.Time) error {
	return s.update(func(tx *bbolt.Tx) error {
		b, h := tx.Bucket(bAssertions), storage.HashOf(key) // a bounded key, whatever the jti
		k := h[:]
		if old, err := get[assertionRecord](b, k); err == nil && !storage.Expired(old.ExpiresAt, s.now()) {
			return storage.ErrAlreadyUsed
		}
		if err := expires(tx, exp, kindAssertion, k); err != nil {
			return err
		}
		v, err := json.Marshal(&assertionRecord{ExpiresAt: storage.Timestamp(exp)})
		if err != nil {
			return err
		}
		return b.Put(k, v)
	})
}

// EnqueueLogouts implements storage.LogoutQueue.
func (s *Store) EnqueueLogouts(_ context.Context, ds []*storage.LogoutDelivery) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bLogouts)
		for _, d := range ds { // all checked before any is written: an expected error commits the batch
			if b.Get([]byte(d.ID)) != nil {
				return storage.ErrAlreadyExists
			}
		}
		for _, d := range ds {
			if err := putCopy(b, []byte(d.ID), d); err != nil {
				return err
			}
		}
		return nil
	})
}

// ClaimLogouts implements storage.LogoutQueue. The queue is short (it
// holds only undelivered tokens), so it is read whole.
func (s *Store) ClaimLogouts(_ context.Context, now, until time.Time, limit int) (out []*storage.LogoutDelivery, err error) {
	err = s.update(func(tx *bbolt.Tx) error {
		out = nil
		b := tx.Bucket(bLogouts)
		all, err := list[storage.LogoutDelivery](b)
		if err != nil {
			return err
		}
		for _, d := range all {
			if !d.NextAt.After(now) {
				out = append(out, d)
			}
		}
		slices.SortFunc(out, func(a, b *storage.LogoutDelivery) int {
			return cmp.Or(a.NextAt.Compare(b.NextAt), cmp.Compare(a.ID, b.ID))
		})
		out = out[:min(len(out), limit)]
		for _, d := range out {
			d.NextAt = storage.Timestamp(until)
			if err := putCopy(b, []byte(d.ID), d); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// UpdateLogout implements storage.LogoutQueue.
func (s *Store) UpdateLogout(_ context.Context, d *storage.LogoutDelivery) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bLogouts)
		if b.Get([]byte(d.ID)) == nil {
			return storage.ErrNotFound
		}
		return putCopy(b, []byte(d.ID), d)
	})
}

// DeleteLogout implements storage.LogoutQueue.
func (s *Store) DeleteLogout(_ context.Context, id string) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bLogouts)
		if b.Get([]byte(id)) == nil {
			return storage.ErrNotFound
		}
		return b.Delete([]byte(id))
	})
}

// AppendAuditEvent implements storage.AuditEvents.
func (s *Store) AppendAuditEvent(_ context.Context, e *storage.AuditEvent) error {
	return s.update(func(tx *bbolt.Tx) error {
		if err := expires(tx, e.ExpiresAt, kindAudit, []byte(e.ID)); err != nil {
			return err
		}
		return putCopy(tx.Bucket(bAudit), []byte(e.ID), e)
	})
}

// ListAuditEvents implements storage.AuditEvents: newest first, from the
// end of the time-ordered bucket.
func (s *Store) ListAuditEvents(_ context.Context, f storage.AuditFilter) (out []*storage.AuditEvent, err error) {
	out = []*storage.AuditEvent{}
	limit := cmp.Or(f.Limit, 100)
	err = s.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bAudit).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			e := new(storage.AuditEvent)
			if err := json.Unmarshal(v, e); err != nil {
				return fmt.Errorf("bolt: decode audit event %q: %w", k, err)
			}
			if f.Match(e) && !storage.Expired(e.ExpiresAt, s.now()) {
				out = append(out, e)
			}
		}
		return nil
	})
	return out, err
}

// ListSessions implements storage.Sessions. It reads every session: the
// embedded store serves one node, whose sessions number in the thousands.
func (s *Store) ListSessions(_ context.Context, userID string) (out []*storage.Session, err error) {
	out = []*storage.Session{}
	err = s.view(func(tx *bbolt.Tx) error {
		all, err := list[storage.Session](tx.Bucket(bSessions))
		for _, se := range all {
			if se.UserID == userID && !storage.Expired(se.Deadline(), s.now()) {
				out = append(out, se)
			}
		}
		return err
	})
	storage.SortSessions(out)
	return out, err
}

// PutConsent implements storage.Consents.
func (s *Store) PutConsent(_ context.Context, c *storage.Consent) error {
	return s.update(func(tx *bbolt.Tx) error {
		k := pair(c.UserID, c.ClientID)
		if err := expires(tx, c.ExpiresAt, kindConsent, k); err != nil {
			return err
		}
		return putCopy(tx.Bucket(bConsents), k, c)
	})
}

// GetConsent implements storage.Consents.
func (s *Store) GetConsent(_ context.Context, userID, clientID string) (c *storage.Consent, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		c, err = get[storage.Consent](tx.Bucket(bConsents), pair(userID, clientID))
		if err == nil && storage.Expired(c.ExpiresAt, s.now()) {
			c, err = nil, storage.ErrNotFound
		}
		return err
	})
	return c, err
}

// ListConsents implements storage.Consents.
func (s *Store) ListConsents(_ context.Context, userID string) (out []*storage.Consent, err error) {
	out = []*storage.Consent{}
	err = s.view(func(tx *bbolt.Tx) error {
		prefix := []byte(userID + "\x00")
		c := tx.Bucket(bConsents).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			rec := new(storage.Consent)
			if err := json.Unmarshal(v, rec); err != nil {
				return fmt.Errorf("bolt: decode consent %q: %w", k, err)
			}
			if !storage.Expired(rec.ExpiresAt, s.now()) {
				out = append(out, rec)
			}
		}
		return nil
	})
	return out, err
}

// DeleteConsent implements storage.Consents.
func (s *Store) DeleteConsent(_ context.Context, userID, clientID string) error {
	return s.update(func(tx *bbolt.Tx) error {
		b, k := tx.Bucket(bConsents), pair(userID, clientID)
		if b.Get(k) == nil {
			return storage.ErrNotFound
		}
		return b.Delete(k)
	})
}

// CreateSigningKey implements storage.SigningKeys.
func (s *Store) CreateSigningKey(_ context.Context, k *storage.SigningKey) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bKeys)
		if b.Get([]byte(k.ID)) != nil {
			return storage.ErrAlreadyExists
		}
		return putCopy(b, []byte(k.ID), k)
	})
}

// ListSigningKeys implements storage.SigningKeys.
func (s *Store) ListSigningKeys(_ context.Context) (out []*storage.SigningKey, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		out, err = list[storage.SigningKey](tx.Bucket(bKeys))
		return err
	})
	return out, err
}

// UpdateSigningKey implements storage.SigningKeys.
func (s *Store) UpdateSigningKey(_ context.Context, k *storage.SigningKey) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bKeys)
		if b.Get([]byte(k.ID)) == nil {
			return storage.ErrNotFound
		}
		return putCopy(b, []byte(k.ID), k)
	})
}

// DeleteSigningKey implements storage.SigningKeys.
func (s *Store) DeleteSigningKey(_ context.Context, id string) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bKeys)
		if b.Get([]byte(id)) == nil {
			return storage.ErrNotFound
		}
		return b.Delete([]byte(id))
	})
}

// WithSigningKeyLock implements keys.KeyStore.
func (s *Store) WithSigningKeyLock(ctx context.Context, fn func(context.Context) error) error {
	s.keyLock.Lock()
	defer s.keyLock.Unlock()
	return fn(ctx)
}

// RevokeJTI implements storage.Revocations.
func (s *Store) RevokeJTI(_ context.Context, r *storage.Revocation) error {
	return s.update(func(tx *bbolt.Tx) error {
		if err := expires(tx, r.ExpiresAt, kindRevocation, []byte(r.JTI)); err != nil {
			return err
		}
		b, idx := tx.Bucket(bRevocations), tx.Bucket(bRevSeq)
		if old, err := get[storage.Revocation](b, []byte(r.JTI)); err == nil && old.Seq != 0 {
			idx.Delete(seqKey(old.Seq))
		}
		seq, err := idx.NextSequence() // in the write transaction: commit order
		if err != nil {
			return err
		}
		rec := *r
		rec.Seq = seq
		if err := idx.Put(seqKey(seq), []byte(r.JTI)); err != nil {
			return err
		}
		return put(b, []byte(r.JTI), &rec)
	})
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// RevocationsSince implements storage.Revocations: a walk of the Seq index.
func (s *Store) RevocationsSince(_ context.Context, after uint64, limit int) (out []*storage.Revocation, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		b, c := tx.Bucket(bRevocations), tx.Bucket(bRevSeq).Cursor()
		now := s.now()
		for k, jti := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, jti = c.Next() {
			r, err := get[storage.Revocation](b, jti)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if r.Seq == binary.BigEndian.Uint64(k) && !storage.Expired(r.ExpiresAt, now) {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, err
}

// IsRevoked implements storage.Revocations.
func (s *Store) IsRevoked(_ context.Context, jti string) (revoked bool, err error) {
	err = s.view(func(tx *bbolt.Tx) error {
		r, err := get[storage.Revocation](tx.Bucket(bRevocations), []byte(jti))
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		revoked = err == nil && !storage.Expired(r.ExpiresAt, s.now())
		return err
	})
	return revoked, err
}

// expiring says, per kind of record, where it lives, when it expires and
// what else goes with it.
type expiring struct {
	bucket []byte
	// expired reports whether the record at key has expired at now, and
	// deletes whatever indexes it besides its bucket when it has.
	expired func(tx *bbolt.Tx, key []byte, now time.Time) (bool, error)
}

func expiry[T any](bucket []byte, deadline func(*T) time.Time, also func(tx *bbolt.Tx, k []byte, r *T) error) expiring {
	return expiring{bucket: bucket, expired: func(tx *bbolt.Tx, k []byte, now time.Time) (bool, error) {
		r, err := get[T](tx.Bucket(bucket), k)
		if errors.Is(err, storage.ErrNotFound) || err == nil && !storage.Expired(deadline(r), now) {
			return false, nil // a stale index entry
		}
		if err != nil || also == nil {
			return err == nil, err
		}
		return true, also(tx, k, r)
	}}
}

var expiringKinds = map[byte]expiring{
	kindCode: expiry(bCodes, func(r *storage.AuthCode) time.Time { return r.ExpiresAt }, nil),
	kindRefresh: expiry(bRefresh, func(r *storage.RefreshToken) time.Time { return r.ExpiresAt },
		func(tx *bbolt.Tx, k []byte, r *storage.RefreshToken) error {
			return tx.Bucket(bFamilies).Delete(pair(r.FamilyID, string(k)))
		}),
	kindAccess:      expiry(bAccess, func(r *storage.AccessToken) time.Time { return r.ExpiresAt }, nil),
	kindInteraction: expiry(bInteract, func(r *storage.Interaction) time.Time { return r.ExpiresAt }, nil),
	kindSession: expiry(bSessions, (*storage.Session).Deadline, func(tx *bbolt.Tx, _ []byte, r *storage.Session) error {
		return tx.Bucket(bSessionHash).Delete(r.Hash[:])
	}),
	kindConsent: expiry(bConsents, func(r *storage.Consent) time.Time { return r.ExpiresAt }, nil),
	kindRevocation: expiry(bRevocations, func(r *storage.Revocation) time.Time { return r.ExpiresAt },
		func(tx *bbolt.Tx, _ []byte, r *storage.Revocation) error {
			if r.Seq == 0 {
				return nil
			}
			return tx.Bucket(bRevSeq).Delete(seqKey(r.Seq))
		}),
	kindAudit:     expiry(bAudit, func(r *storage.AuditEvent) time.Time { return r.ExpiresAt }, nil),
	kindAssertion: expiry(bAssertions, func(r *assertionRecord) time.Time { return r.ExpiresAt }, nil),
}

// assertionRecord is a used assertion's key, kept until it expires.
type assertionRecord struct {
	ExpiresAt time.Time `json:"expires_at"`
}

// sweepChunk bounds the index entries one clean-up transaction handles, so
// the writers waiting behind it wait milliseconds, however large the store.
const sweepChunk = 100

// DeleteExpired implements storage.Storage. It walks the expiry index up to
// now in short transactions of sweepChunk entries each, and reads only the
// records the index names.
func (s *Store) DeleteExpired(ctx context.Context) (n int, err error) {
	now := s.now()
	limit := expiryKey(now, 0xff, nil)
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		seen, deleted := 0, 0
		err := s.db.Update(func(tx *bbolt.Tx) error {
			idx := tx.Bucket(bExpiry)
			var done [][]byte
			c := idx.Cursor()
			for k, _ := c.First(); k != nil && bytes.Compare(k, limit) < 0 && len(done) < sweepChunk; k, _ = c.Next() {
				done = append(done, k)
			}
			for _, k := range done {
				kind, key := k[8], k[9:]
				if e, ok := expiringKinds[kind]; ok {
					gone, err := e.expired(tx, key, now)
					if err != nil {
						return err
					}
					if gone {
						if err := tx.Bucket(e.bucket).Delete(key); err != nil {
							return err
						}
						deleted++
					}
				}
				if err := idx.Delete(k); err != nil {
					return err
				}
			}
			seen = len(done)
			return nil
		})
		if err != nil {
			return n, err
		}
		n += deleted
		if seen < sweepChunk {
			return n, nil
		}
	}
}

// reindex builds the expiry index of a file written before it existed.
func reindex(tx *bbolt.Tx) error {
	for kind, e := range expiringKinds {
		err := tx.Bucket(e.bucket).ForEach(func(k, v []byte) error {
			var r struct {
				ExpiresAt     time.Time `json:"expires_at"`
				IdleExpiresAt time.Time `json:"idle_expires_at"`
			}
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("bolt: decode %s/%x: %w", e.bucket, k, err)
			}
			deadline := r.ExpiresAt
			if !r.IdleExpiresAt.IsZero() && r.IdleExpiresAt.Before(deadline) {
				deadline = r.IdleExpiresAt
			}
			return expires(tx, deadline, kind, k)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Ping implements storage.Storage.
func (s *Store) Ping(context.Context) error {
	return s.view(func(*bbolt.Tx) error { return nil })
}

// Close implements storage.Storage.
func (s *Store) Close() error { return s.db.Close() }
