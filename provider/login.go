package provider

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/oidcgate/oidcgate/provider/storage"
)

// errBadCredentials is the one answer to a failed login, whatever failed:
// an unknown user, a wrong password or a disabled account.
var errBadCredentials = errors.New("invalid username or password")

// passwords checks sign-ins with argon2id.
type passwords struct {
	users storage.Users
	// decoy is what an unknown user's attempt is checked against, so it
	// costs what a wrong password costs. It is not made by hashing: that
	// would hold the argon2 memory (64 MiB by default) from the start.
	decoy string
	// slots bounds the hashes computed at once to the cores that compute
	// them: each takes the argon2 memory, so a flood of sign-ins queues
	// here instead of growing the heap by 64 MiB per request.
	slots chan struct{}
}

func newPasswords(users storage.Users, cost Argon2Params) *passwords {
	return &passwords{users: users, decoy: decoyHash(cost), slots: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

// check returns the user whose password this is, or errBadCredentials.
func (p *passwords) check(ctx context.Context, username, password string) (*storage.User, error) {
	u, err := p.users.GetUserByUsername(ctx, username)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, ErrUnavailable(err)
	}
	hash := p.decoy
	if u != nil {
		hash = u.PasswordHash
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ErrUnavailable(ctx.Err())
	}
	ok, err := VerifyPassword(hash, password)
	<-p.slots
	if u == nil || err != nil || !ok || u.Disabled {
		return nil, errBadCredentials
	}
	return u, nil
}

// limiter counts failed sign-ins per key (a username, a client IP) in
// fixed windows: after limit failures within window, a key is refused
// until its window ends.
type limiter struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	fails map[string]*failures
}

type failures struct {
	n     int
	until time.Time // the window's end
}

// maxTracked bounds the keys kept; past it, ended windows are swept.
const maxTracked = 100_000

func newLimiter(limit int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{limit: limit, window: window, now: now, fails: map[string]*failures{}}
}

// blocked reports whether any key is over its limit and, if so, how long
// until the latest of their windows ends (for Retry-After).
func (l *limiter) blocked(keys ...string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		if f, ok := l.fails[k]; ok && f.n >= l.limit && now.Before(f.until) {
			wait = max(wait, f.until.Sub(now))
		}
	}
	return wait, wait > 0
}

// failed records a failure against every key.
func (l *limiter) failed(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.fails) >= maxTracked {
		for k, f := range l.fails {
			if !now.Before(f.until) {
				delete(l.fails, k)
			}
		}
	}
	for _, k := range keys {
		f, ok := l.fails[k]
		if !ok || !now.Before(f.until) {
			f = &failures{until: now.Add(l.window)}
			l.fails[k] = f
		}
		f.n++
	}
}

// reset forgets a key's failures (a successful sign-in of that user).
func (l *limiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, key)
}
