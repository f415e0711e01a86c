// Package postgres is the PostgreSQL storage backend (pgx/v5 pool), for
// several provider replicas sharing one database. Its schema is owned by the
// migrations package; Open refuses a schema that is behind unless asked to
// migrate it. Single-use operations are one conditional UPDATE … RETURNING.
package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oidcgate/oidcgate/migrations"
	"github.com/oidcgate/oidcgate/provider/storage"
)

var _ storage.Storage = (*Store)(nil)

// Config says how to reach the database.
type Config struct {
	URL string
	// AutoMigrate applies pending migrations at Open instead of refusing.
	AutoMigrate bool
	// MaxConns caps the pool; 0 keeps pgx's default.
	MaxConns int32
}

// Store is a PostgreSQL-backed storage.Storage.
type Store struct {
	pool    *pgxpool.Pool
	now     func() time.Time
	keyLock sync.Mutex // see WithSigningKeyLock
}

// Redact hides the password of a database URL for messages.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// Connect opens a pool and checks that the server answers, without
// looking at the schema (the migrate command's entry point).
func Connect(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("database URL %s: %w", Redact(cfg.URL), err)
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", Redact(cfg.URL), err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cannot reach PostgreSQL at %s: %w", Redact(cfg.URL), err)
	}
	return pool, nil
}

// Open connects, checks (or with AutoMigrate brings up) the schema, and
// returns the store.
func Open(ctx context.Context, cfg Config, now func() time.Time) (*Store, error) {
	pool, err := Connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := checkSchema(ctx, pool, cfg.AutoMigrate); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool, now: now}, nil
}

func checkSchema(ctx context.Context, pool *pgxpool.Pool, auto bool) error {
	n, err := migrations.Pending(ctx, pool)
	switch {
	case err != nil:
		return err
	case n > 0 && auto:
		_, err := migrations.Up(ctx, pool)
		return err
	case n > 0:
		return fmt.Errorf("the database schema is %d migration(s) behind this binary: run `oidcgate migrate up` (or start with --auto-migrate)", n)
	case n < 0:
		return fmt.Errorf("the database schema is %d migration(s) ahead of this binary: upgrade oidcgate, or run `oidcgate migrate down` with the newer one", -n)
	}
	return nil
}

// mapErr turns driver errors into the storage sentinels.
func mapErr(err error) error {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return storage.ErrNotFound
	case errors.As(err, &pgErr) && pgErr.Code == "23505": // unique_violation
		return storage.ErrAlreadyExists
	case errors.As(err, &pgErr) && pgErr.Code == "23503": // foreign_key_violation: what it refers to is gone
		return storage.ErrNotFound
	}
	return fmt.Errorf("postgres: %w", err)
}

// exec runs a statement that must touch a row; none is ErrNotFound.
func (s *Store) exec(ctx context.Context, sql string, args ...any) error {
	tag, err := s.pool.Exec(ctx, sql, args...)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// record JSON-encodes a normalised copy of *rec.
func record[T any](rec *T) []byte {
	cp := *rec
	storage.Normalize(&cp)
	b, err := json.Marshal(&cp)
	if err != nil {
		panic(err) // records are plain data
	}
	return b
}

func decode[T any](b []byte) (*T, error) {
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("postgres: decode %T: %w", out, err)
	}
	return out, nil
}

// getJSON reads one JSON record.
func getJSON[T any](ctx context.Context, s *Store, sql string, args ...any) (*T, error) {
	var b []byte
	if err := s.pool.QueryRow(ctx, sql, args...).Scan(&b); err != nil {
		return nil, mapErr(err)
	}
	return decode[T](b)
}

func listJSON[T any](ctx context.Context, s *Store, sql string, args ...any) ([]*T, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	out := []*T{}
	var b []byte
	_, err = pgx.ForEachRow(rows, []any{&b}, func() error {
		r, err := decode[T](b)
		out = append(out, r)
		return err
	})
	return out, mapErr(err)
}

// ts is a timestamp argument: NULL for the zero time.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return storage.Timestamp(t)
}

// fromDB turns a nullable timestamptz back into the storage form.
func fromDB(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return storage.Timestamp(*t)
}

// CreateClient implements storage.Clients.
func (s *Store) CreateClient(ctx context.Context, c *storage.Client) error {
	_, err := s.pool.Exec(ctx, "INSERT INTO clients (id, data) VALUES ($1, $2)", c.ID, record(c))
	return mapErr(err)
}

// GetClient implements storage.Clients.
func (s *Store) GetClient(ctx context.Context, id string) (*storage.Client, error) {
	return getJSON[storage.Client](ctx, s, "SELECT data FROM clients WHERE id = $1", id)
}

// UpdateClient implements storage.Clients.
func (s *Store) UpdateClient(ctx context.Context, c *storage.Client) error {
	return s.exec(ctx, "UPDATE clients SET data = $2 WHERE id = $1", c.ID, record(c))
}

// DeleteClient implements storage.Clients.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.exec(ctx, "DELETE FROM clients WHERE id = $1", id)
}

// ListClients implements storage.Clients.
func (s *Store) ListClients(ctx context.Context) ([]*storage.Client, error) {
	return listJSON[storage.Client](ctx, s, "SELECT data FROM clients ORDER BY id")
}

// CreateUser implements storage.Users.
func (s *Store) CreateUser(ctx context.Context, u *storage.User) error {
	_, err := s.pool.Exec(ctx, "INSERT INTO users (id, username, data) VALUES ($1, $2, $3)", u.ID, u.Username, record(u))
	return mapErr(err)
}

// GetUser implements storage.Users.
func (s *Store) GetUser(ctx context.Context, id string) (*storage.User, error) {
	return getJSON[storage.User](ctx, s, "SELECT data FROM users WHERE id = $1", id)
}

// GetUserByUsername implements storage.Users.
func (s *Store) GetUserByUsername(ctx context.Context, username string) (*storage.User, error) {
	return getJSON[storage.User](ctx, s, "SELECT data FROM users WHERE username = $1", username)
}

// UpdateUser implements storage.Users.
func (s *Store) UpdateUser(ctx context.Context, u *storage.User) error {
	return s.exec(ctx, "UPDATE users SET username = $2, data = $3 WHERE id = $1", u.ID, u.Username, record(u))
}

// DeleteUser implements storage.Users.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return s.exec(ctx, "DELETE FROM users WHERE id = $1", id)
}

// ListUsers implements storage.Users.
func (s *Store) ListUsers(ctx context.Context) ([]*storage.User, error) {
	return listJSON[storage.User](ctx, s, "SELECT data FROM users ORDER BY username")
}

// CreateIdentity implements storage.Identities.
func (s *Store) CreateIdentity(ctx context.Context, i *storage.Identity) error {
	_, err := s.pool.Exec(ctx, "INSERT INTO identities (connector_id, subject, user_id, data) VALUES ($1, $2, $3, $4)",
		i.ConnectorID, i.Subject, i.UserID, record(i))
	return mapErr(err)
}

// GetIdentity implements storage.Identities.
func (s *Store) GetIdentity(ctx context.Context, connectorID, subject string) (*storage.Identity, error) {
	return getJSON[storage.Identity](ctx, s, "SELECT data FROM identities WHERE connector_id = $1 AND subject = $2",
		connectorID, subject)
}

// UpdateIdentity implements storage.Identities.
func (s *Store) UpdateIdentity(ctx context.Context, i *storage.Identity) error {
	return s.exec(ctx, "UPDATE identities SET user_id = $3, data = $4 WHERE connector_id = $1 AND subject = $2",
		i.ConnectorID, i.Subject, i.UserID, record(i))
}

// ListIdentities implements storage.Identities.
func (s *Store) ListIdentities(ctx context.Context, userID string) ([]*storage.Identity, error) {
	return listJSON[storage.Identity](ctx, s, "SELECT data FROM identities WHERE user_id = $1 ORDER BY connector_id, subject", userID)
}

// DeleteIdentity implements storage.Identities.
func (s *Store) DeleteIdentity(ctx context.Context, connectorID, subject string) error {
	return s.exec(ctx, "DELETE FROM identities WHERE connector_id = $1 AND subject = $2", connectorID, subject)
}

// CreateFactor implements storage.Factors.
func (s *Store) CreateFactor(ctx context.Context, f *storage.Factor) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO factors (user_id, id, kind, counter, last_used_at, data)
		VALUES ($1, $2, $3, $4, $5, $6)`, f.UserID, f.ID, f.Kind, int64(f.Counter), ts(f.LastUsedAt), record(f))
	return mapErr(err)
}

// ListFactors implements storage.Factors.
func (s *Store) ListFactors(ctx context.Context, userID string) ([]*storage.Factor, error) {
	rows, err := s.pool.Query(ctx, "SELECT data, counter, last_used_at FROM factors WHERE user_id = $1", userID)
	if err != nil {
		return nil, mapErr(err)
	}
	out := []*storage.Factor{}
	var (
		b       []byte
		counter int64
		used    *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&b, &counter, &used}, func() error {
		f, err := decode[storage.Factor](b)
		if err == nil {
			f.Counter, f.LastUsedAt = uint64(counter), fromDB(used)
			out = append(out, f)
		}
		return err
	})
	storage.SortFactors(out)
	return out, mapErr(err)
}

// UseFactor implements storage.Factors: one conditional UPDATE, so
// concurrent uses of one counter value serialise on the row.
func (s *Store) UseFactor(ctx context.Context, userID, id string, counter uint64, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE factors SET counter = $3, last_used_at = $4
		WHERE user_id = $1 AND id = $2 AND (counter < $3 OR (counter = 0 AND $3 = 0))`,
		userID, id, int64(counter), storage.Timestamp(at))
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var one int
	if err := s.pool.QueryRow(ctx, "SELECT 1 FROM factors WHERE user_id = $1 AND id = $2", userID, id).Scan(&one); err != nil {
		return mapErr(err)
	}
	return storage.ErrAlreadyUsed
}

// DeleteFactor implements storage.Factors.
func (s *Store) DeleteFactor(ctx context.Context, userID, id string) error {
	return s.exec(ctx, "DELETE FROM factors WHERE user_id = $1 AND id = $2", userID, id)
}

// DeleteFactors implements storage.Factors.
func (s *Store) DeleteFactors(ctx context.Context, userID, kind string) (int, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM factors WHERE user_id = $1 AND ($2 = '' OR kind = $2)", userID, kind)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}

// CreateAuthCode implements storage.AuthCodes.
func (s *Store) CreateAuthCode(ctx context.Context, c *storage.AuthCode) error {
	_, err := s.pool.Exec(ctx, "INSERT INTO auth_codes (hash, data, expires_at, used_at) VALUES ($1, $2, $3, $4)",
		c.Hash[:], record(c), ts(c.ExpiresAt), ts(c.UsedAt))
	return mapErr(err)
}

// GetAuthCode implements storage.AuthCodes.
func (s *Store) GetAuthCode(ctx context.Context, h storage.Hash) (*storage.AuthCode, error) {
	var b []byte
	var usedAt *time.Time
	err := s.pool.QueryRow(ctx, "SELECT data, used_at FROM auth_codes WHERE hash = $1 AND expires_at > $2",
		h[:], storage.Timestamp(s.now())).Scan(&b, &usedAt)
	if err != nil {
		return nil, mapErr(err)
	}
	c, err := decode[storage.AuthCode](b)
	if err != nil {
		return nil, err
	}
	c.UsedAt = fromDB(usedAt)
	return c, nil
}

// errLost ends a consuming transaction whose conditional UPDATE matched no
// row: the record is unknown, expired or used, which the caller tells apart.
var errLost = errors.New("postgres: no unused record")

// ConsumeAuthCode implements storage.AuthCodes: a conditional UPDATE (so
// PostgreSQL's row lock decides the single winner) and the grant's inserts,
// in one transaction.
func (s *Store) ConsumeAuthCode(ctx context.Context, h storage.Hash, out storage.Issued) (*storage.AuthCode, error) {
	now := storage.Timestamp(s.now())
	var c *storage.AuthCode
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var b []byte
		var usedAt *time.Time
		err := tx.QueryRow(ctx, `UPDATE auth_codes SET used_at = $2
			WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING data, used_at`, h[:], now).Scan(&b, &usedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return errLost
		}
		if err != nil {
			return err
		}
		if c, err = decode[storage.AuthCode](b); err != nil {
			return err
		}
		c.UsedAt = fromDB(usedAt)
		return writeIssued(ctx, tx, out)
	})
	if errors.Is(err, errLost) {
		// Lost the race, replayed, expired or unknown: tell which.
		if c, err = s.GetAuthCode(ctx, h); err != nil {
			return nil, err
		}
		return c, storage.ErrAlreadyUsed
	}
	if err != nil {
		return nil, mapErr(err)
	}
	return c, nil
}

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// writeIssued inserts a grant's new tokens inside its transaction.
func writeIssued(ctx context.Context, tx execer, out storage.Issued) error {
	if out.Refresh != nil {
		if err := insertRefresh(ctx, tx, out.Refresh); err != nil {
			return err
		}
	}
	if out.Access != nil {
		return insertAccess(ctx, tx, out.Access)
	}
	return nil
}

func insertRefresh(ctx context.Context, q execer, t *storage.RefreshToken) error {
	_, err := q.Exec(ctx, `INSERT INTO refresh_tokens (hash, family_id, data, expires_at, used_at, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, t.Hash[:], t.FamilyID, record(t), ts(t.ExpiresAt), ts(t.UsedAt), ts(t.RevokedAt))
	return mapErr(err)
}

func insertAccess(ctx context.Context, q execer, t *storage.AccessToken) error {
	_, err := q.Exec(ctx, "INSERT INTO access_tokens (hash, data, expires_at) VALUES ($1, $2, $3)",
		t.Hash[:], record(t), storage.Timestamp(t.ExpiresAt))
	return mapErr(err)
}

// DeleteAuthCode implements storage.AuthCodes.
func (s *Store) DeleteAuthCode(ctx context.Context, h storage.Hash) error {
	return s.exec(ctx, "DELETE FROM auth_codes WHERE hash = $1", h[:])
}

// CreateRefreshToken implements storage.RefreshTokens.
func (s *Store) CreateRefreshToken(ctx context.Context, t *storage.RefreshToken) error {
	return insertRefresh(ctx, s.pool, t)
}

const refreshCols = "data, used_at, revoked_at"

func scanRefresh(row pgx.Row) (*storage.RefreshToken, error) {
	var b []byte
	var usedAt, revokedAt *time.Time
	if err := row.Scan(&b, &usedAt, &revokedAt); err != nil {
		return nil, mapErr(err)
	}
	t, err := decode[storage.RefreshToken](b)
	if err != nil {
		return nil, err
	}
	t.UsedAt, t.RevokedAt = fromDB(usedAt), fromDB(revokedAt)
	return t, nil
}

// GetRefreshToken implements storage.RefreshTokens.
func (s *Store) GetRefreshToken(ctx context.Context, h storage.Hash) (*storage.RefreshToken, error) {
	return scanRefresh(s.pool.QueryRow(ctx, "SELECT "+refreshCols+" FROM refresh_tokens WHERE hash = $1 AND expires_at > $2",
		h[:], storage.Timestamp(s.now())))
}

// UseRefreshToken implements storage.RefreshTokens: the conditional UPDATE
// and the successor's insert in one transaction.
func (s *Store) UseRefreshToken(ctx context.Context, h storage.Hash, out storage.Issued) (*storage.RefreshToken, error) {
	now := storage.Timestamp(s.now())
	var t *storage.RefreshToken
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		t, err = scanRefresh(tx.QueryRow(ctx, `UPDATE refresh_tokens SET used_at = $2
			WHERE hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 RETURNING `+refreshCols, h[:], now))
		if errors.Is(err, storage.ErrNotFound) {
			return errLost
		}
		if err != nil {
			return err
		}
		return writeIssued(ctx, tx, out)
	})
	if errors.Is(err, errLost) {
		if t, err = s.GetRefreshToken(ctx, h); err != nil {
			return nil, err
		}
		return t, storage.ErrAlreadyUsed
	}
	if err != nil {
		return nil, mapErr(err)
	}
	return t, nil
}

// RevokeRefreshFamily implements storage.RefreshTokens.
func (s *Store) RevokeRefreshFamily(ctx context.Context, familyID string) error {
	_, err := s.pool.Exec(ctx, "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
		familyID, storage.Timestamp(s.now()))
	return mapErr(err)
}

// CreateAccessToken implements storage.AccessTokens.
func (s *Store) CreateAccessToken(ctx context.Context, t *storage.AccessToken) error {
	return insertAccess(ctx, s.pool, t)
}

// GetAccessToken implements storage.AccessTokens.
func (s *Store) GetAccessToken(ctx context.Context, h storage.Hash) (*storage.AccessToken, error) {
	return getJSON[storage.AccessToken](ctx, s, "SELECT data FROM access_tokens WHERE hash = $1 AND expires_at > $2",
		h[:], storage.Timestamp(s.now()))
}

// DeleteAccessToken implements storage.AccessTokens.
func (s *Store) DeleteAccessToken(ctx context.Context, h storage.Hash) error {
	return s.exec(ctx, "DELETE FROM access_tokens WHERE hash = $1", h[:])
}

// CreateInteraction implements storage.Interactions.
func (s *Store) CreateInteraction(ctx context.Context, i *storage.Interaction) error {
	_, err := s.pool.Exec(ctx, "INSERT INTO interactions (id, data, expires_at) VALUES ($1, $2, $3)",
		i.ID, record(i), storage.Timestamp(i.ExpiresAt))
	return mapErr(err)
}

// GetInteraction implements storage.Interactions.
func (s *Store) GetInteraction(ctx context.Context, id string) (*storage.Interaction, error) {
	return getJSON[storage.Interaction](ctx, s, "SELECT data FROM interactions WHERE id = $1 AND expires_at > $2",
		id, storage.Timestamp(s.now()))
}

// UpdateInteraction implements storage.Interactions.
func (s *Store) UpdateInteraction(ctx context.Context, i *storage.Interaction) error {
	return s.exec(ctx, "UPDATE interactions SET data = $2, expires_at = $3 WHERE id = $1", i.ID, record(i), storage.Timestamp(i.ExpiresAt))
}

// DeleteInteraction implements storage.Interactions.
func (s *Store) DeleteInteraction(ctx context.Context, id string) error {
	return s.exec(ctx, "DELETE FROM interactions WHERE id = $1", id)
}

// CreateSession implements storage.Sessions.
func (s *Store) CreateSession(ctx context.Context, se *storage.Session) error {
	_, err := s.pool.Exec(ctx, "INSERT INTO sessions (id, hash, data, deadline) VALUES ($1, $2, $3, $4)",
		se.ID, se.Hash[:], record(se), storage.Timestamp(se.Deadline()))
	return mapErr(err)
}

// GetSession implements storage.Sessions.
func (s *Store) GetSession(ctx context.Context, h storage.Hash) (*storage.Session, error) {
	return getJSON[storage.Session](ctx, s, "SELECT data FROM sessions WHERE hash = $1 AND deadline > $2",
		h[:], storage.Timestamp(s.now()))
}

// UpdateSession implements storage.Sessions.
func (s *Store) UpdateSession(ctx context.Context, se *storage.Session) error {
	return s.exec(ctx, "UPDATE sessions SET hash = $2, data = $3, deadline = $4 WHERE id = $1",
		se.ID, se.Hash[:], record(se), storage.Timestamp(se.Deadline()))
}

// DeleteSession implements storage.Sessions.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	return s.exec(ctx, "DELETE FROM sessions WHERE id = $1", id)
}

// CreateAdminToken implements storage.AdminTokens.
func (s *Store) CreateAdminToken(ctx context.Context, t *storage.AdminToken) error {
	_, err := s.pool.Exec(ctx, "INSERT INTO admin_tokens (id, name, hash, data, expires_at) VALUES ($1, $2, $3, $4, $5)",
		t.ID, t.Name, t.Hash[:], record(t), ts(t.ExpiresAt))
	return mapErr(err)
}

// GetAdminToken implements storage.AdminTokens.
func (s *Store) GetAdminToken(ctx context.Context, h storage.Hash) (*storage.AdminToken, error) {
	return getJSON[storage.AdminToken](ctx, s, "SELECT data FROM admin_tokens WHERE hash = $1 AND (expires_at IS NULL OR expires_at > $2)",
		h[:], storage.Timestamp(s.now()))
}

// ListAdminTokens implements storage.AdminTokens.
func (s *Store) ListAdminTokens(ctx context.Context) ([]*storage.AdminToken, error) {
	return listJSON[storage.AdminToken](ctx, s, "SELECT data FROM admin_tokens ORDER BY name")
}

// DeleteAdminToken implements storage.AdminTokens.
func (s *Store) DeleteAdminToken(ctx context.Context, id string) error {
	return s.exec(ctx, "DELETE FROM admin_tokens WHERE id = $1", id)
}

// UseAssertion implements storage.Assertions: one INSERT that an
// unexpired row of the same key turns into nothing.
func (s *Store) UseAssertion(ctx context.Context, key string, exp time.Time) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO assertions (key, expires_at) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE assertions.expires_at <= $3`,
		hashKey(key), storage.Timestamp(exp), storage.Timestamp(s.now()))
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return storage.ErrAlreadyUsed
	}
	return nil
}

// EnqueueLogouts implements storage.LogoutQueue: one transaction.
func (s *Store) EnqueueLogouts(ctx context.Context, ds []*storage.LogoutDelivery) error {
	b := &pgx.Batch{}
	for _, d := range ds {
		b.Queue("INSERT INTO logout_deliveries (id, next_at, data) VALUES ($1, $2, $3)", d.ID, storage.Timestamp(d.NextAt), record(d))
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return mapErr(err)
	}
	defer tx.Rollback(ctx)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return mapErr(err)
	}
	return mapErr(tx.Commit(ctx))
}

// ClaimLogouts implements storage.LogoutQueue: rows another claimant holds
// locked are skipped.
func (s *Store) ClaimLogouts(ctx context.Context, now, until time.Time, limit int) ([]*storage.LogoutDelivery, error) {
	rows, err := s.pool.Query(ctx, `UPDATE logout_deliveries SET next_at = $2,
		data = jsonb_set(data, '{next_at}', to_jsonb($2::timestamptz))
		WHERE id IN (SELECT id FROM logout_deliveries WHERE next_at <= $1 ORDER BY next_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING data`, storage.Timestamp(now), storage.Timestamp(until), limit)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*storage.LogoutDelivery, error) {
		var d storage.LogoutDelivery
		var raw []byte
		if err := r.Scan(&raw); err != nil {
			return nil, err
		}
		return &d, json.Unmarshal(raw, &d)
	})
	if err != nil {
		return nil, mapErr(err)
	}
	slices.SortFunc(out, func(a, b *storage.LogoutDelivery) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// UpdateLogout implements storage.LogoutQueue.
func (s *Store) UpdateLogout(ctx context.Context, d *storage.LogoutDelivery) error {
	return s.exec(ctx, "UPDATE logout_deliveries SET next_at = $2, data = $3 WHERE id = $1", d.ID, storage.Timestamp(d.NextAt), record(d))
}

// DeleteLogout implements storage.LogoutQueue.
func (s *Store) DeleteLogout(ctx context.Context, id string) error {
	return s.exec(ctx, "DELETE FROM logout_deliveries WHERE id = $1", id)
}

// AppendAuditEvent implements storage.AuditEvents.
func (s *Store) AppendAuditEvent(ctx context.Context, e *storage.AuditEvent) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_events (id, time, event, actor, user_id, client_id, data, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, e.ID, storage.Timestamp(e.Time), e.Event, e.Actor, e.UserID, e.ClientID, record(e),
		storage.Timestamp(e.ExpiresAt))
	return mapErr(err)
}

// ListAuditEvents implements storage.AuditEvents.
func (s *Store) ListAuditEvents(ctx context.Context, f storage.AuditFilter) ([]*storage.AuditEvent, error) {
	prefix := strings.HasSuffix(f.Event, ".")
	return listJSON[storage.AuditEvent](ctx, s, `SELECT data FROM audit_events
		WHERE expires_at > $1 AND ($2 = '' OR event = $2 OR ($3 AND starts_with(event, $2)))
		AND ($4 = '' OR user_id = $4) AND ($5 = '' OR client_id = $5) AND ($6 = '' OR actor = $6)
		AND ($7::timestamptz IS NULL OR time >= $7) AND ($8::timestamptz IS NULL OR time < $8)
		ORDER BY id DESC LIMIT $9`, storage.Timestamp(s.now()), f.Event, prefix, f.UserID, f.ClientID, f.Actor, ts(f.Since), ts(f.Until),
		cmp.Or(f.Limit, 100))
}

// ListSessions implements storage.Sessions.
func (s *Store) ListSessions(ctx context.Context, userID string) ([]*storage.Session, error) {
	out, err := listJSON[storage.Session](ctx, s, "SELECT data FROM sessions WHERE data->>'user_id' = $1 AND deadline > $2",
		userID, storage.Timestamp(s.now()))
	storage.SortSessions(out)
	return out, err
}

// PutConsent implements storage.Consents.
func (s *Store) PutConsent(ctx context.Context, c *storage.Consent) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO consents (user_id, client_id, data, expires_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, client_id) DO UPDATE SET data = EXCLUDED.data, expires_at = EXCLUDED.expires_at`,
		c.UserID, c.ClientID, record(c), ts(c.ExpiresAt))
	return mapErr(err)
}

// GetConsent implements storage.Consents.
func (s *Store) GetConsent(ctx context.Context, userID, clientID string) (*storage.Consent, error) {
	return getJSON[storage.Consent](ctx, s, `SELECT data FROM consents
		WHERE user_id = $1 AND client_id = $2 AND (expires_at IS NULL OR expires_at > $3)`,
		userID, clientID, storage.Timestamp(s.now()))
}

// ListConsents implements storage.Consents.
func (s *Store) ListConsents(ctx context.Context, userID string) ([]*storage.Consent, error) {
	return listJSON[storage.Consent](ctx, s, `SELECT data FROM consents
		WHERE user_id = $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY client_id`, userID, storage.Timestamp(s.now()))
}

// DeleteConsent implements storage.Consents.
func (s *Store) DeleteConsent(ctx context.Context, userID, clientID string) error {
	return s.exec(ctx, "DELETE FROM consents WHERE user_id = $1 AND client_id = $2", userID, clientID)
}

// CreateSigningKey implements storage.SigningKeys.
func (s *Store) CreateSigningKey(ctx context.Context, k *storage.SigningKey) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO signing_keys (id, alg, state, encrypted, created_at, activates_at, retires_at, remove_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		k.ID, k.Alg, string(k.State), k.Encrypted, ts(k.CreatedAt), ts(k.ActivatesAt), ts(k.RetiresAt), ts(k.RemoveAt))
	return s.notifyKeys(ctx, mapErr(err))
}

// ListSigningKeys implements storage.SigningKeys.
func (s *Store) ListSigningKeys(ctx context.Context) ([]*storage.SigningKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, alg, state, encrypted, created_at, activates_at, retires_at, remove_at
		FROM signing_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, mapErr(err)
	}
	out := []*storage.SigningKey{}
	var k storage.SigningKey
	var state string
	var created, activates, retires, remove *time.Time
	_, err = pgx.ForEachRow(rows, []any{&k.ID, &k.Alg, &state, &k.Encrypted, &created, &activates, &retires, &remove}, func() error {
		cp := k
		cp.State = storage.KeyState(state)
		cp.Encrypted = append([]byte(nil), k.Encrypted...)
		cp.CreatedAt, cp.ActivatesAt, cp.RetiresAt, cp.RemoveAt = fromDB(created), fromDB(activates), fromDB(retires), fromDB(remove)
		out = append(out, &cp)
		return nil
	})
	return out, mapErr(err)
}

// UpdateSigningKey implements storage.SigningKeys.
func (s *Store) UpdateSigningKey(ctx context.Context, k *storage.SigningKey) error {
	return s.notifyKeys(ctx, s.exec(ctx, `UPDATE signing_keys SET alg = $2, state = $3, encrypted = $4, created_at = $5, activates_at = $6,
		retires_at = $7, remove_at = $8 WHERE id = $1`,
		k.ID, k.Alg, string(k.State), k.Encrypted, ts(k.CreatedAt), ts(k.ActivatesAt), ts(k.RetiresAt), ts(k.RemoveAt)))
}

// DeleteSigningKey implements storage.SigningKeys.
func (s *Store) DeleteSigningKey(ctx context.Context, id string) error {
	return s.notifyKeys(ctx, s.exec(ctx, "DELETE FROM signing_keys WHERE id = $1", id))
}

// changesChannel is the LISTEN/NOTIFY channel replicas tell each other of
// revocations and key-ring changes on.
const changesChannel = "oidcgate_changes"

// notifyKeys tells the replicas the ring changed, after a change that
// succeeded (its error is passed through).
func (s *Store) notifyKeys(ctx context.Context, err error) error {
	if err != nil {
		return err
	}
	// The change is committed; should the notification fail, replicas
	// still reload at their interval.
	s.pool.Exec(ctx, "SELECT pg_notify('"+changesChannel+"', '"+storage.ChangedKeys+"')")
	return nil
}

// Watch implements storage.Watcher: it LISTENs on one connection of its
// own and calls fn with what changed, until ctx ends. A lost connection is
// re-established (every second at most), and fn is then called with
// storage.ChangedAll, since notifications may have been missed meanwhile.
func (s *Store) Watch(ctx context.Context, fn func(what string)) {
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			continue
		}
		if _, err := conn.Exec(ctx, "LISTEN "+changesChannel); err != nil {
			conn.Release()
			continue
		}
		if !first {
			fn(storage.ChangedAll)
		}
		for {
			n, err := conn.Conn().WaitForNotification(ctx)
			if err != nil {
				break
			}
			fn(n.Payload)
		}
		conn.Conn().Close(context.Background()) // a LISTENing connection is not returned to the pool
		conn.Release()
	}
}

// keyLockKey is the advisory lock that serialises ring changes across
// replicas ("oidcgate-keys").
const keyLockKey int64 = 0x6f6964636b657973

// WithSigningKeyLock implements keys.KeyStore with a session advisory lock
// held on one pooled connection while fn runs. Callers in this process
// queue on a mutex first, so waiting for the lock never ties up more than
// one pooled connection (fn needs the others).
func (s *Store) WithSigningKeyLock(ctx context.Context, fn func(context.Context) error) error {
	s.keyLock.Lock()
	defer s.keyLock.Unlock()
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return mapErr(err)
	}
	defer c.Release()
	if _, err := c.Exec(ctx, "SELECT pg_advisory_lock($1)", keyLockKey); err != nil {
		return mapErr(err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.Exec(uctx, "SELECT pg_advisory_unlock($1)", keyLockKey); err != nil {
			c.Hijack().Close(uctx) // closing the session releases the lock
		}
	}()
	return fn(ctx)
}

// RevokeJTI implements storage.Revocations.
func (s *Store) RevokeJTI(ctx context.Context, r *storage.Revocation) error {
	// Revocations take a Seq in commit order (a transaction-scoped lock
	// around the insert), and the notification goes out with the commit:
	// replicas and revocation streams hear of it at once, in order.
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return mapErr(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", revocationSeqLock); err != nil {
		return mapErr(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO revocations (jti, expires_at, seq) VALUES ($1, $2, nextval('revocations_seq'))
		ON CONFLICT (jti) DO UPDATE SET expires_at = GREATEST(revocations.expires_at, EXCLUDED.expires_at), seq = EXCLUDED.seq`,
		r.JTI, storage.Timestamp(r.ExpiresAt)); err != nil {
		return mapErr(err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_notify('"+changesChannel+"', '"+storage.ChangedRevocations+"')"); err != nil {
		return mapErr(err)
	}
	return mapErr(tx.Commit(ctx))
}

// revocationSeqLock orders revocation inserts ("oidcgate-revseq").
const revocationSeqLock int64 = 0x6f696463_72737172

// RevocationsSince implements storage.Revocations.
func (s *Store) RevocationsSince(ctx context.Context, after uint64, limit int) ([]*storage.Revocation, error) {
	rows, err := s.pool.Query(ctx, `SELECT jti, expires_at, seq FROM revocations WHERE seq > $1 AND expires_at > $2
		ORDER BY seq LIMIT $3`, int64(after), storage.Timestamp(s.now()), limit)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*storage.Revocation, error) {
		var rv storage.Revocation
		var seq int64
		if err := r.Scan(&rv.JTI, &rv.ExpiresAt, &seq); err != nil {
			return nil, err
		}
		rv.Seq = uint64(seq)
		return &rv, nil
	})
	return out, mapErr(err)
}

// IsRevoked implements storage.Revocations.
func (s *Store) IsRevoked(ctx context.Context, jti string) (bool, error) {
	var revoked bool
	err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM revocations WHERE jti = $1 AND expires_at > $2)",
		jti, storage.Timestamp(s.now())).Scan(&revoked)
	return revoked, mapErr(err)
}

// DeleteExpired implements storage.Storage, one statement per table in one
// transaction.
func (s *Store) DeleteExpired(ctx context.Context) (int, error) {
	now := storage.Timestamp(s.now())
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, sql := range []string{
			"DELETE FROM auth_codes WHERE expires_at <= $1",
			"DELETE FROM refresh_tokens WHERE expires_at <= $1",
			"DELETE FROM access_tokens WHERE expires_at <= $1",
			"DELETE FROM interactions WHERE expires_at <= $1",
			"DELETE FROM sessions WHERE deadline <= $1",
			"DELETE FROM consents WHERE expires_at <= $1",
			"DELETE FROM revocations WHERE expires_at <= $1",
			"DELETE FROM audit_events WHERE expires_at <= $1",
			"DELETE FROM assertions WHERE expires_at <= $1",
		} {
			tag, err := tx.Exec(ctx, sql, now)
			if err != nil {
				return err
			}
			n += int(tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		return 0, mapErr(err)
	}
	return n, nil
}

// Ping implements storage.Storage.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Close implements storage.Storage.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Pool exposes the connection pool, for tests that look at the rows
// themselves (that keys are stored encrypted).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// hashKey is an untrusted key as a fixed-size column value.
func hashKey(key string) []byte {
	h := storage.HashOf(key)
	return h[:]
}
