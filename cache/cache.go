package cache

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Cache maps keys to values of type V with a TTL per entry. A uint64 key
// is used as its own hash: callers that key by a digest (of a token, say)
// pay no allocation or hashing on lookup, and must confirm a hit against
// the full digest kept in the value.
type Cache[K ristretto.Key, V any] struct {
	c            *ristretto.Cache[K, V]
	hits, misses counter
}

// counter is a count spread over cache lines, so that cores counting at
// once do not contend for one. (Ristretto's own metrics would do, but with
// them on it also remembers the admission time of up to 100,000 keys for an
// eviction-age histogram nobody reads: ~70 bytes per cached token.)
type counter [16]struct {
	n atomic.Uint64
	_ [56]byte
}

func (c *counter) inc() { c[rand.Uint32()%uint32(len(c))].n.Add(1) }

func (c *counter) value() float64 {
	var sum uint64
	for i := range c {
		sum += c[i].n.Load()
	}
	return float64(sum)
}

// Config sizes a cache.
type Config struct {
	// Name labels its metrics (cache="NAME"); a fixed, bounded set.
	Name string
	// MaxItems is the most entries kept; each Set costs 1.
	MaxItems int64
}

// New builds a cache and registers its hit and miss counters with reg.
func New[K ristretto.Key, V any](cfg Config, reg prometheus.Registerer) (*Cache[K, V], error) {
	if cfg.MaxItems <= 0 || cfg.Name == "" {
		return nil, fmt.Errorf("cache: a name and a positive MaxItems are required")
	}
	c, err := ristretto.NewCache(&ristretto.Config[K, V]{
		NumCounters: 10 * cfg.MaxItems, // ristretto's advice: 10× the items kept
		MaxCost:     cfg.MaxItems,
		BufferItems: 64,
		// Costs count entries, not bytes.
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", cfg.Name, err)
	}
	cc := &Cache[K, V]{c: c}
	labels := prometheus.Labels{"cache": cfg.Name}
	for _, m := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "oidcgate_cache_hits_total",
			Help: "Cache lookups that found a live entry.", ConstLabels: labels}, cc.hits.value),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "oidcgate_cache_misses_total",
			Help: "Cache lookups that found nothing.", ConstLabels: labels}, cc.misses.value),
	} {
		if err := reg.Register(m); err != nil {
			c.Close()
			return nil, fmt.Errorf("cache %s: register metrics: %w", cfg.Name, err)
		}
	}
	return cc, nil
}

// Get returns the live entry for key.
func (c *Cache[K, V]) Get(key K) (V, bool) {
	v, ok := c.c.Get(key)
	if ok {
		c.hits.inc()
	} else {
		c.misses.inc()
	}
	return v, ok
}

// RecordHit counts a hit the caller served from a front of its own (the
// edge's recent-token slots), so the hit ratio stays the whole cache's.
func (c *Cache[K, V]) RecordHit() { c.hits.inc() }

// Set stores v for ttl (> 0). It may be dropped; see the package doc.
func (c *Cache[K, V]) Set(key K, v V, ttl time.Duration) {
	c.c.SetWithTTL(key, v, 1, ttl)
}

// Del removes key at once.
func (c *Cache[K, V]) Del(key K) { c.c.Del(key) }

// Wait blocks until earlier Sets are applied (for tests).
func (c *Cache[K, V]) Wait() { c.c.Wait() }

// Close stops the cache's goroutines.
func (c *Cache[K, V]) Close() { c.c.Close() }
