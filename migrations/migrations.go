package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed *.sql
var files embed.FS

// lockKey is the pg_advisory_lock key every runner takes ("oidcgate" as
// a big-endian int64 prefix).
const lockKey int64 = 0x6f6964636761_7465

const versionTable = "oidcgate_schema_migrations"

// Migration is one numbered schema change.
type Migration struct {
	Version int
	Name    string
	Up      string
	Down    string
}

// State is a migration and, if it has been applied, when.
type State struct {
	Migration
	AppliedAt time.Time // zero: pending
}

var fileName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$`)

// All returns the embedded migrations in order. Every version must have
// both an up and a down file, and versions must run 1, 2, 3, … .
func All() ([]Migration, error) { return Parse(files) }

// Parse reads migrations from fsys, as All does from the embedded files.
func Parse(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	byVersion := map[int]*Migration{}
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migrations: %q is not named NNNN_name.up.sql or NNNN_name.down.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, err
		}
		mig := byVersion[v]
		if mig == nil {
			mig = &Migration{Version: v, Name: m[2]}
			byVersion[v] = mig
		}
		if mig.Name != m[2] {
			return nil, fmt.Errorf("migrations: version %d has two names, %q and %q", v, mig.Name, m[2])
		}
		if m[3] == "up" {
			mig.Up = string(body)
		} else {
			mig.Down = string(body)
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.Up == "" || m.Down == "" {
			return nil, fmt.Errorf("migrations: version %d (%s) needs both an up and a down file", m.Version, m.Name)
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrations: version %d follows %d; versions must be consecutive from 1", m.Version, i)
		}
	}
	return out, nil
}

// locked runs fn on one connection holding the migration advisory lock,
// after making sure the version table exists.
func locked(ctx context.Context, pool *pgxpool.Pool, fn func(conn *pgx.Conn) error) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrations: connect: %w", err)
	}
	defer c.Release()
	conn := c.Conn()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return fmt.Errorf("migrations: take the advisory lock: %w", err)
	}
	defer func() {
		// Unlock on a fresh context: ctx may be cancelled by now.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", lockKey); err != nil {
			// The session still holds the lock; drop the connection so it is released.
			c.Hijack().Close(uctx)
		}
	}()
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+versionTable+` (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`)
	if err != nil {
		return fmt.Errorf("migrations: create %s: %w", versionTable, err)
	}
	return fn(conn)
}

func applied(ctx context.Context, conn *pgx.Conn) (map[int]time.Time, error) {
	rows, err := conn.Query(ctx, "SELECT version, applied_at FROM "+versionTable)
	if err != nil {
		return nil, fmt.Errorf("migrations: read %s: %w", versionTable, err)
	}
	out := map[int]time.Time{}
	var v int
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&v, &at}, func() error {
		out[v] = at.UTC()
		return nil
	})
	return out, err
}

// Up applies every pending migration, each in its own transaction, and
// returns those it applied (none when the schema is current).
func Up(ctx context.Context, pool *pgxpool.Pool) ([]Migration, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	var done []Migration
	err = locked(ctx, pool, func(conn *pgx.Conn) error {
		have, err := applied(ctx, conn)
		if err != nil {
			return err
		}
		for _, m := range all {
			if _, ok := have[m.Version]; ok {
				continue
			}
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, m.Up); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "INSERT INTO "+versionTable+" (version, name) VALUES ($1, $2)", m.Version, m.Name)
				return err
			})
			if err != nil {
				return fmt.Errorf("migrations: apply %04d_%s: %w", m.Version, m.Name, err)
			}
			done = append(done, m)
		}
		return nil
	})
	return done, err
}

// ErrNothingApplied is returned by Down when no migration is applied.
var ErrNothingApplied = errors.New("migrations: nothing to revert")

// Down reverts the most recently applied migration in one transaction.
func Down(ctx context.Context, pool *pgxpool.Pool) (Migration, error) {
	all, err := All()
	if err != nil {
		return Migration{}, err
	}
	var reverted Migration
	err = locked(ctx, pool, func(conn *pgx.Conn) error {
		have, err := applied(ctx, conn)
		if err != nil {
			return err
		}
		for i := len(all) - 1; i >= 0; i-- {
			m := all[i]
			if _, ok := have[m.Version]; !ok {
				continue
			}
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, m.Down); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "DELETE FROM "+versionTable+" WHERE version = $1", m.Version)
				return err
			})
			if err != nil {
				return fmt.Errorf("migrations: revert %04d_%s: %w", m.Version, m.Name, err)
			}
			reverted = m
			return nil
		}
		return ErrNothingApplied
	})
	return reverted, err
}

// Status lists every known migration and when it was applied.
func Status(ctx context.Context, pool *pgxpool.Pool) ([]State, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	var out []State
	err = locked(ctx, pool, func(conn *pgx.Conn) error {
		have, err := applied(ctx, conn)
		if err != nil {
			return err
		}
		for _, m := range all {
			out = append(out, State{Migration: m, AppliedAt: have[m.Version]})
		}
		return nil
	})
	return out, err
}

// Pending counts the migrations not yet applied, without taking the lock
// (a read-only check at start-up).
func Pending(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	all, err := All()
	if err != nil {
		return 0, err
	}
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", versionTable).Scan(&exists); err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	if !exists {
		return len(all), nil
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+versionTable).Scan(&n); err != nil {
		return 0, fmt.Errorf("migrations: read %s: %w", versionTable, err)
	}
	return len(all) - n, nil
}
