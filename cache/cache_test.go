package cache_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/oidcgate/oidcgate/cache"
)

func TestSetGetDelAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, err := cache.New[string, string](cache.Config{Name: "test", MaxItems: 100}, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Set("a", "1", time.Minute)
	c.Wait()
	if v, ok := c.Get("a"); !ok || v != "1" {
		t.Fatalf("Get(a) = %q, %v", v, ok)
	}
	if _, ok := c.Get("b"); ok {
		t.Fatal("Get(b) found something")
	}
	c.Del("a")
	if _, ok := c.Get("a"); ok {
		t.Fatal("Get after Del found the entry")
	}
	if n := testutil.CollectAndCount(reg, "oidcgate_cache_hits_total", "oidcgate_cache_misses_total"); n != 2 {
		t.Errorf("%d metric series, want 2", n)
	}
	if hits, misses := counter(t, reg, "oidcgate_cache_hits_total"), counter(t, reg, "oidcgate_cache_misses_total"); hits != 1 || misses != 2 {
		t.Errorf("hits %v misses %v, want 1 and 2", hits, misses)
	}
}

func TestTTLExpires(t *testing.T) {
	c, err := cache.New[string, int](cache.Config{Name: "ttl", MaxItems: 10}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Set("k", 1, 50*time.Millisecond)
	c.Wait()
	if _, ok := c.Get("k"); !ok {
		t.Fatal("fresh entry missing")
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := c.Get("k"); !ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("entry outlived its TTL by seconds")
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := cache.New[string, int](cache.Config{Name: "x"}, prometheus.NewRegistry()); err == nil {
		t.Error("MaxItems 0 accepted")
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestRecordHitCountsAsAHit(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, err := cache.New[uint64, int](cache.Config{Name: "front", MaxItems: 10}, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.RecordHit()
	c.RecordHit()
	if hits := counter(t, reg, "oidcgate_cache_hits_total"); hits != 2 {
		t.Errorf("hits %v, want 2", hits)
	}
}
