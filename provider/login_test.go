package provider

import (
	"context"
	"errors"
	"testing"
	"time"

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
	var oe *Error
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
	l := newLimiter(5, time.Minute, func() time.Time { return now })
	for range 4 {
		l.failed("user:alice", "ip:10.0.0.1")
	}
	if _, blocked := l.blocked("user:alice", "ip:10.0.0.1"); blocked {
		t.Fatal("blocked after 4 failures")
	}
	l.failed("user:alice", "ip:10.0.0.1")
	wait, blocked := l.blocked("user:alice")
	if !blocked || wait != time.Minute {
		t.Fatalf("after 5 failures: blocked %v for %v", blocked, wait)
	}
	if _, blocked := l.blocked("user:bob", "ip:10.0.0.2"); blocked {
		t.Error("other keys blocked")
	}
	// The IP is blocked for every username it tries.
	if _, blocked := l.blocked("user:bob", "ip:10.0.0.1"); !blocked {
		t.Error("the failing IP may try another user")
	}
	now = now.Add(40 * time.Second)
	if wait, _ := l.blocked("user:alice"); wait != 20*time.Second {
		t.Errorf("Retry-After = %v, want the rest of the window", wait)
	}
	now = now.Add(20 * time.Second)
	if _, blocked := l.blocked("user:alice", "ip:10.0.0.1"); blocked {
		t.Error("still blocked after the window")
	}
	l.failed("user:carol")
	l.reset("user:carol")
	if len(l.fails) != 2 {
		t.Errorf("%d keys tracked", len(l.fails))
	}
}
