package keys

import (
	"context"
	"time"
)

// State is a key's place in the rotation.
type State string

// Key states, in order.
const (
	Next    State = "next"    // published in the JWKS, not yet signing
	Active  State = "active"  // signing
	Retired State = "retired" // published until every token it signed has expired
)

// Record is a key as the store keeps it: the private key only as an
// encrypted blob.
type Record struct {
	ID          string    `json:"id"` // kid
	Alg         string    `json:"alg"`
	State       State     `json:"state"`
	Encrypted   []byte    `json:"encrypted"`
	CreatedAt   time.Time `json:"created_at"` // published from
	ActivatesAt time.Time `json:"activates_at"`
	RetiresAt   time.Time `json:"retires_at,omitzero"`
	RemoveAt    time.Time `json:"remove_at,omitzero"`
}

// KeyStore is where the ring keeps its records. Several rings (provider
// replicas) may share one.
type KeyStore interface {
	CreateSigningKey(ctx context.Context, k *Record) error
	ListSigningKeys(ctx context.Context) ([]*Record, error)
	UpdateSigningKey(ctx context.Context, k *Record) error
	DeleteSigningKey(ctx context.Context, id string) error
	// WithSigningKeyLock runs fn while holding the store's ring lock,
	// which excludes every other ring on the same store (an advisory lock
	// on PostgreSQL).
	WithSigningKeyLock(ctx context.Context, fn func(ctx context.Context) error) error
}
