package edge

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Per-subject rate limits (optional, per route): a token bucket per token
// subject or client, refilled at RPS up to Burst; an empty bucket is 429
// with Retry-After. The buckets are this edge process's own: with N
// replicas, a subject gets up to N times the rate.
//
//	routes:
//	  - path_prefix: /api
//	    rate_limit: {per: sub, rps: 10, burst: 20}

// RateLimit is a route's rate_limit.
type RateLimit struct {
	Per   string  `yaml:"per"` // sub or client_id
	RPS   float64 `yaml:"rps"`
	Burst int     `yaml:"burst"` // default: ceil(RPS)
}

func (rl *RateLimit) check() error {
	switch {
	case rl.Per != "sub" && rl.Per != "client_id":
		return fmt.Errorf("rate_limit: per must be sub or client_id, got %q", rl.Per)
	case rl.RPS <= 0 || math.IsInf(rl.RPS, 0) || math.IsNaN(rl.RPS):
		return errors.New("rate_limit: rps must be positive")
	case rl.Burst < 0:
		return errors.New("rate_limit: burst must not be negative")
	}
	if rl.Burst == 0 {
		rl.Burst = int(math.Ceil(rl.RPS))
	}
	return nil
}

// maxBuckets bounds the buckets a limiter keeps; past it, full (idle) ones
// are dropped — a full bucket is what a new one would be.
const maxBuckets = 100_000

// limiter is one route's buckets.
type limiter struct {
	rl RateLimit
	mu sync.Mutex
	b  map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(rl RateLimit) *limiter { return &limiter{rl: rl, b: map[string]*bucket{}} }

// take spends one token of key's bucket at now, or says how long until
// one is there.
func (l *limiter) take(key string, now time.Time) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.b[key]
	if b == nil {
		if len(l.b) >= maxBuckets {
			l.sweep(now)
		}
		b = &bucket{tokens: float64(l.rl.Burst), at: now}
		l.b[key] = b
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(float64(l.rl.Burst), b.tokens+d.Seconds()*l.rl.RPS)
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rl.RPS * float64(time.Second))
}

// sweep drops the buckets that have refilled.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.b {
		if b.tokens+now.Sub(b.at).Seconds()*l.rl.RPS >= float64(l.rl.Burst) {
			delete(l.b, k)
		}
	}
}

// allow applies r's rate limit to id.
func (r *Route) allow(id *Identity, now time.Time) Decision {
	if r.limiter == nil || id == nil {
		return allowed
	}
	key := id.Subject
	if r.limiter.rl.Per == "client_id" {
		key = id.ClientID
	}
	ok, wait := r.limiter.take(key, now)
	if ok {
		return allowed
	}
	return Decision{Reason: ReasonRateLimited, Status: 429, Description: "too many requests for this " + r.limiter.rl.Per,
		RetryAfter: int(math.Ceil(wait.Seconds()))}
}
