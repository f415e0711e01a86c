// Package cache owns the in-process caches (clients on the provider;
// verified tokens and introspection results on the edge — the edge's JWKS is
// an atomic map, never a cache that may drop a key): ristretto
// underneath, with per-entry TTLs and hit/miss counters for Prometheus.
//
// A cache is never needed for correctness: ristretto admits entries
// asynchronously and may refuse them, so every caller can fall back to the
// source of truth.
package cache
