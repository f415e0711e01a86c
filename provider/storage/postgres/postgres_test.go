package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/provider/storage"
	"github.com/oidcgate/oidcgate/provider/storage/postgres"
	"github.com/oidcgate/oidcgate/provider/storage/postgres/pgtest"
	"github.com/oidcgate/oidcgate/provider/storage/storagetest"
)

func open(t *testing.T, url string, now func() time.Time) storage.Storage {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Config{URL: url, AutoMigrate: true}, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, now func() time.Time) (storage.Storage, func() storage.Storage) {
		url := pgtest.SchemaURL(t)
		s := open(t, url, now)
		return s, func() storage.Storage {
			s.Close()
			return open(t, url, now) // a new pool on the same schema
		}
	})
}

func TestOpenRefusesSchemaBehind(t *testing.T) {
	url := pgtest.SchemaURL(t)
	_, err := postgres.Open(context.Background(), postgres.Config{URL: url}, time.Now)
	if err == nil || !strings.Contains(err.Error(), "oidcgate migrate up") {
		t.Fatalf("Open on an empty schema = %v, want an error naming `oidcgate migrate up`", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// Port 1 on loopback: nothing listens there.
	_, err := postgres.Open(ctx, postgres.Config{URL: "postgres://u:secret@127.0.0.1:1/db?connect_timeout=2"}, time.Now)
	if err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
	if !strings.Contains(err.Error(), "cannot reach PostgreSQL") || strings.Contains(err.Error(), "secret") {
		t.Errorf("error = %q, want a clear message without the password", err)
	}
}
