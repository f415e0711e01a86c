// Package keys owns signing keys: generation (ES256, RS256, PS256, EdDSA;
// kid = RFC 7638 thumbprint), encryption at rest (AES-256-GCM under a
// key-encryption key), the ring that rotates them through next → active →
// retired → removed, the JWKS it publishes, and the JWS sign and verify
// fast paths that every token passes through.
//
// It declares the small KeyStore it needs; provider/storage satisfies it.
package keys
