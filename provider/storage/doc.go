// Package storage owns the provider's persistent state, split by role:
// clients, users, authorization codes, refresh tokens, sessions, consents,
// signing keys and revoked token IDs.
//
// The Storage interface is satisfied by three backends — memory (tests and
// throw-away runs), bolt (the embedded default) and postgres — and every one
// of them runs the conformance suite in storagetest. Secrets and tokens are
// never stored raw: codes, refresh tokens and session cookies are keyed by a
// SHA-256 hash of the value the client holds.
//
// All timestamps are kept at microsecond precision (PostgreSQL's), so every
// backend rounds down to the microsecond on write and returns UTC.
package storage
