package bolt

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/oidcgate/oidcgate/provider/storage"
)

// BenchmarkDeleteExpiredStall measures what the clean-up costs the writers
// beside it: with 240,000 live refresh tokens and 1,000 expired ones, one
// DeleteExpired runs while another goroutine writes access tokens one after
// another; stall-ms is the longest any of those writes waited.
func BenchmarkDeleteExpiredStall(b *testing.B) {
	const live, expired = 240_000, 1_000
	now := time.Now()
	clock := func() time.Time { return now }
	s, err := Open(filepath.Join(b.TempDir(), "gc.db"), clock)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.db.NoSync = true // loading only
	load := func(prefix string, n int, exp time.Time) {
		var wg sync.WaitGroup
		for w := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 64 {
					t := &storage.RefreshToken{Hash: storage.HashOf(fmt.Sprint(prefix, i)), FamilyID: fmt.Sprint("f", i),
						ClientID: "c", UserID: "u", Scopes: []string{"openid", "offline_access"}, CreatedAt: now, ExpiresAt: exp}
					if err := s.CreateRefreshToken(context.Background(), t); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	load("live-", live, now.Add(24*time.Hour))
	s.db.NoSync = false
	var worst time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		s.db.NoSync = true
		load(fmt.Sprint("exp-", i, "-"), expired, now.Add(time.Minute))
		s.db.NoSync = false
		now = now.Add(2 * time.Minute)
		stop := make(chan struct{})
		done := make(chan time.Duration)
		go func() {
			var longest time.Duration
			for j := 0; ; j++ {
				select {
				case <-stop:
					done <- longest
					return
				default:
				}
				t0 := time.Now()
				s.CreateAccessToken(context.Background(), &storage.AccessToken{Hash: storage.HashOf(fmt.Sprint("at-", i, "-", j)),
					ClientID: "c", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
				longest = max(longest, time.Since(t0))
			}
		}()
		time.Sleep(5 * time.Millisecond)
		b.StartTimer()
		n, err := s.DeleteExpired(context.Background())
		b.StopTimer()
		close(stop)
		worst = max(worst, <-done)
		if err != nil || n < expired {
			b.Fatalf("DeleteExpired = %d, %v", n, err)
		}
		now = now.Add(-2 * time.Minute) // the live ones stay live
		b.StartTimer()
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "stall-ms")
}

// TestReindexOldFile: a file written before the expiry index gets one at
// Open, and its expired records are collected.
func TestReindexOldFile(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), "old.db")
	s, err := Open(path, clock)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, life := range []time.Duration{time.Minute, time.Hour} {
		if err := s.CreateAccessToken(ctx, &storage.AccessToken{Hash: storage.HashOf(fmt.Sprint("at-", i)), ClientID: "c",
			CreatedAt: now, ExpiresAt: now.Add(life)}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSession(ctx, &storage.Session{ID: fmt.Sprint("s-", i), Hash: storage.HashOf(fmt.Sprint("c-", i)),
			UserID: "u", AuthTime: now, CreatedAt: now, IdleExpiresAt: now.Add(life), ExpiresAt: now.Add(24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	// As the file was before the index existed.
	if err := s.db.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket(bExpiry) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path, clock); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now = now.Add(2 * time.Minute)
	n, err := s.DeleteExpired(ctx)
	if err != nil || n != 2 {
		t.Fatalf("DeleteExpired = %d, %v; want 2", n, err)
	}
	if _, err := s.GetAccessToken(ctx, storage.HashOf("at-1")); err != nil {
		t.Errorf("the live token went: %v", err)
	}
}

// TestDeleteExpiredInChunks: more expired records than one transaction
// takes are all collected, chunk by chunk.
func TestDeleteExpiredInChunks(t *testing.T) {
	now := time.Now()
	s, err := Open(filepath.Join(t.TempDir(), "chunks.db"), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.db.NoSync = true
	ctx := context.Background()
	total := 3*sweepChunk + 7
	for i := range total {
		if err := s.CreateAccessToken(ctx, &storage.AccessToken{Hash: storage.HashOf(fmt.Sprint(i)), ClientID: "c",
			CreatedAt: now, ExpiresAt: now.Add(time.Duration(i%5+1) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(time.Minute)
	n, err := s.DeleteExpired(ctx)
	if err != nil || n != total {
		t.Fatalf("DeleteExpired = %d, %v; want %d", n, err, total)
	}
	s.db.View(func(tx *bbolt.Tx) error {
		if k := tx.Bucket(bExpiry).Stats().KeyN; k != 0 {
			t.Errorf("%d index entries left", k)
		}
		return nil
	})
}
