package migrations_test

import (
	"context"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oidcgate/oidcgate/migrations"
	"github.com/oidcgate/oidcgate/provider/storage/postgres/pgtest"
)

func pool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func tables(t *testing.T, p *pgxpool.Pool) map[string]bool {
	t.Helper()
	rows, err := p.Query(context.Background(), "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		out[name] = true
	}
	return out
}

func TestUpStatusDown(t *testing.T) {
	ctx := context.Background()
	p := pool(t, pgtest.SchemaURL(t))
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := migrations.Pending(ctx, p); err != nil || n != len(all) {
		t.Fatalf("Pending on an empty schema = %d, %v; want %d", n, err, len(all))
	}

	applied, err := migrations.Up(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(all) {
		t.Fatalf("Up applied %d, want %d", len(applied), len(all))
	}
	have := tables(t, p)
	for _, name := range []string{"clients", "users", "auth_codes", "refresh_tokens", "sessions", "consents", "signing_keys", "revocations"} {
		if !have[name] {
			t.Errorf("table %s missing after Up", name)
		}
	}

	again, err := migrations.Up(ctx, p)
	if err != nil || len(again) != 0 {
		t.Fatalf("second Up = %v, %v; want a no-op", again, err)
	}
	if n, _ := migrations.Pending(ctx, p); n != 0 {
		t.Errorf("Pending after Up = %d", n)
	}

	st, err := migrations.Status(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.AppliedAt.IsZero() {
			t.Errorf("status: %04d_%s not applied", s.Version, s.Name)
		}
	}

	last := all[len(all)-1]
	reverted, err := migrations.Down(ctx, p)
	if err != nil || reverted.Version != last.Version {
		t.Fatalf("Down = %v, %v; want version %d", reverted.Version, err, last.Version)
	}
	st, _ = migrations.Status(ctx, p)
	if !st[len(st)-1].AppliedAt.IsZero() {
		t.Error("status still shows the reverted migration applied")
	}
	if len(all) == 1 && tables(t, p)["clients"] {
		t.Error("Down of the only migration left its tables")
	}
	for range all[:len(all)-1] {
		if _, err := migrations.Down(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := migrations.Down(ctx, p); err != migrations.ErrNothingApplied {
		t.Errorf("Down with nothing applied = %v, want ErrNothingApplied", err)
	}
}

func TestConcurrentUp(t *testing.T) {
	url := pgtest.SchemaURL(t)
	pools := []*pgxpool.Pool{pool(t, url), pool(t, url), pool(t, url)}
	var wg sync.WaitGroup
	results := make([][]migrations.Migration, len(pools))
	errs := make([]error, len(pools))
	for i, p := range pools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = migrations.Up(context.Background(), p)
		}()
	}
	wg.Wait()
	total := 0
	for i := range pools {
		if errs[i] != nil {
			t.Errorf("runner %d: %v", i, errs[i])
		}
		total += len(results[i])
	}
	all, _ := migrations.All()
	if total != len(all) {
		t.Errorf("concurrent runners applied %d migrations in total, want each of %d exactly once", total, len(all))
	}
	var n int
	if err := pools[0].QueryRow(context.Background(), "SELECT count(*) FROM oidcgate_schema_migrations").Scan(&n); err != nil || n != len(all) {
		t.Errorf("version table has %d rows (%v), want %d", n, err, len(all))
	}
}

func TestEmbeddedFilesParse(t *testing.T) {
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if m.Up == "" || m.Down == "" {
			t.Errorf("%04d_%s lacks a direction", m.Version, m.Name)
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name  string
		files fstest.MapFS
	}{
		{"missing down", fstest.MapFS{"0001_a.up.sql": {Data: []byte("x")}}},
		{"gap", fstest.MapFS{"0001_a.up.sql": {Data: []byte("x")}, "0001_a.down.sql": {Data: []byte("x")},
			"0003_b.up.sql": {Data: []byte("x")}, "0003_b.down.sql": {Data: []byte("x")}}},
		{"bad name", fstest.MapFS{"1_a.up.sql": {Data: []byte("x")}}},
		{"two names", fstest.MapFS{"0001_a.up.sql": {Data: []byte("x")}, "0001_b.down.sql": {Data: []byte("x")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := migrations.Parse(tc.files); err == nil {
				t.Error("accepted")
			}
		})
	}
}
