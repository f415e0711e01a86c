package provider

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the argon2id cost parameters for new password hashes
// (RFC 9106 §4). Existing hashes keep the parameters they were made with.
type Argon2Params struct {
	Time    uint32 `yaml:"argon2_time" help:"argon2id passes for new password hashes (1 to 65536)"`
	Memory  uint32 `yaml:"argon2_memory_kib" help:"argon2id memory in KiB for new password hashes (8192 to 4 GiB)"`
	Threads uint8  `yaml:"argon2_threads" help:"argon2id parallelism for new password hashes (1 to 255)"`
}

// DefaultArgon2 is RFC 9106's second recommended option, scaled to two passes.
func DefaultArgon2() Argon2Params { return Argon2Params{Time: 2, Memory: 64 * 1024, Threads: 2} }

// Validate reports unusable parameters: RFC 9106 §3.1's ranges, memory at
// least 8 MiB and at most 4 GiB.
func (p Argon2Params) Validate() error {
	if p.Time < 1 || p.Time > 1<<16 || p.Memory < 8*1024 || p.Memory > 4<<20 || p.Threads < 1 {
		return bad("argon2_time", "argon2id needs 1 ≤ time ≤ 65536, 8192 ≤ memory KiB ≤ 4 GiB, 1 ≤ threads ≤ 255; got %d, %d, %d",
			p.Time, p.Memory, p.Threads)
	}
	return nil
}

// MinPasswordLength is the password policy, the same wherever a password is
// set: the users command, the bootstrap file, the admin API.
const MinPasswordLength = 8

// ValidatePassword applies the password policy.
func ValidatePassword(password string) error {
	if len([]rune(password)) < MinPasswordLength {
		return fmt.Errorf("the password must have at least %d characters", MinPasswordLength)
	}
	return nil
}

var b64raw = base64.RawStdEncoding

// HashPassword returns the PHC-format argon2id hash of password.
func HashPassword(password string, p Argon2Params) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return encodeHash(p, salt, argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, 32)), nil
}

// decoyHash is a PHC hash with p's cost that no password matches: its key
// is random, not derived. Checking a password against it costs what a real
// check costs, while making it costs nothing (no argon2 memory held).
func decoyHash(p Argon2Params) string {
	salt, key := make([]byte, 16), make([]byte, 32)
	rand.Read(salt)
	rand.Read(key)
	return encodeHash(p, salt, key)
}

func encodeHash(p Argon2Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64raw.EncodeToString(salt), b64raw.EncodeToString(key))
}

var errBadHash = errors.New("not a PHC argon2id hash")

// VerifyPassword reports whether password matches the PHC hash, comparing
// in constant time.
func VerifyPassword(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false, errBadHash
	}
	var p Argon2Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || p.Validate() != nil {
		return false, errBadHash
	}
	salt, err1 := b64raw.DecodeString(parts[4])
	want, err2 := b64raw.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) < 16 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
