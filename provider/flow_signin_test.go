package provider

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
	"github.com/oidcgate/oidcgate/provider/storage/memory"
)

var cheap = Argon2Params{Time: 1, Memory: 8 * 1024, Threads: 1}

func TestPasswordCheck(t *testing.T) {
	ctx := context.Background()
	store := memory.New(time.Now)
	hash, _ := HashPassword("correct horse", cheap)
	store.CreateUser(ctx, &storage.User{ID: "u1", Username: "alice", PasswordHash: hash})
	store.CreateUser(ctx, &storage.User{ID: "u2", Username: "bob", PasswordHash: hash, Disabled: true})
	p := newPasswords(store, cheap)
	if u, err := p.check(ctx, "alice", "correct horse"); err != nil || u.ID != "u1" {
		t.Fatalf("right password: %v %v", u, err)
	}
	for _, tc := range []struct{ name, user, pw string }{
		{"wrong password", "alice", "wrong"},
		{"unknown user", "mallory", "correct horse"},
		{"disabled user", "bob", "correct horse"},
		{"empty password", "alice", ""},
	} {
		if u, err := p.check(ctx, tc.user, tc.pw); !errors.Is(err, errBadCredentials) || u != nil {
			t.Errorf("%s: %v %v, want the one generic error", tc.name, u, err)
		}
	}
}

// Hashes run at most one per core at once; a sign-in waiting for a slot
// gives up with its request.
func TestPasswordChecksQueue(t *testing.T) {
	store := memory.New(time.Now)
	hash, _ := HashPassword("correct horse", cheap)
	store.CreateUser(context.Background(), &storage.User{ID: "u1", Username: "alice", PasswordHash: hash})
	p := newPasswords(store, cheap)
	for range cap(p.slots) {
		p.slots <- struct{}{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var oe *oauth.Error
	if u, err := p.check(ctx, "alice", "correct horse"); !errors.As(err, &oe) || oe.Status != 503 || u != nil {
		t.Fatalf("with every slot taken: %v %v, want 503 once the request is gone", u, err)
	}
	<-p.slots
	if u, err := p.check(context.Background(), "alice", "correct horse"); err != nil || u.ID != "u1" {
		t.Fatalf("with a slot free: %v %v", u, err)
	}
}

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(func() time.Time { return now })
	rule := limitRule{5, time.Minute}
	alice := []limitKey{{"user:alice", rule}, {"ip:10.0.0.1", limitRule{20, time.Minute}}}
	fail := func(keys []limitKey) {
		t.Helper()
		if _, ok := l.reserve(keys...); !ok {
			t.Fatal("refused before its limit")
		}
		l.done(true, keys)
	}
	for range 4 {
		fail(alice)
	}
	if _, ok := l.reserve(alice...); !ok {
		t.Fatal("blocked after 4 failures")
	}
	l.done(true, alice)
	wait, ok := l.reserve(alice...)
	if ok || wait != time.Minute {
		t.Fatalf("after 5 failures: allowed %v, wait %v", ok, wait)
	}
	bob := []limitKey{{"user:bob", rule}, {"ip:10.0.0.2", limitRule{20, time.Minute}}}
	if _, ok := l.reserve(bob...); !ok {
		t.Error("other keys blocked")
	}
	l.done(false, bob)
	// The IP's own, looser limit: another user from it may still try, until it too is spent.
	bobThere := []limitKey{{"user:bob", rule}, {"ip:10.0.0.1", limitRule{20, time.Minute}}}
	if _, ok := l.reserve(bobThere...); !ok {
		t.Error("another user from the IP refused before the IP's limit")
	}
	l.done(true, bobThere)
	now = now.Add(40 * time.Second)
	if wait, _ := l.reserve(alice...); wait != 20*time.Second {
		t.Errorf("Retry-After = %v, want the rest of the window", wait)
	}
	now = now.Add(20 * time.Second)
	if _, ok := l.reserve(alice...); !ok {
		t.Error("still blocked after the window")
	}
	l.done(false, alice, "user:alice") // a success forgets the user's failures
	if a := l.keys["user:alice"]; a != nil {
		t.Errorf("user key kept after a success: %+v", a)
	}
}

// TestLimiterReservesBeforeChecking: attempts under way count, so however
// many arrive at once, at most the limit get a password check.
func TestLimiterReservesBeforeChecking(t *testing.T) {
	l := newLimiter(time.Now)
	keys := []limitKey{{"user@ip:alice", limitRule{5, time.Minute}}}
	granted := 0
	for range 40 { // all at once: none has finished
		if _, ok := l.reserve(keys...); ok {
			granted++
		}
	}
	if granted != 5 {
		t.Fatalf("%d of 40 concurrent attempts reserved a check, want 5", granted)
	}
	for range granted {
		l.done(true, keys)
	}
	if _, ok := l.reserve(keys...); ok {
		t.Error("a sixth attempt after five failures")
	}
}
