package provider

import (
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/pquerna/otp/totp"
)

const fuzzSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

// TestTOTPStepWindow: a code is accepted at its own step and the two
// beside it, never further, and the step it matched is returned.
func TestTOTPStepWindow(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	code, _ := totp.GenerateCodeCustom(fuzzSecret, at, totpOpts)
	step := uint64(at.Unix()) / 30
	for _, tc := range []struct {
		now  time.Time
		want uint64
	}{
		{at, step}, {at.Add(30 * time.Second), step}, {at.Add(-30 * time.Second), step},
		{at.Add(61 * time.Second), 0}, {at.Add(-61 * time.Second), 0},
	} {
		if got := totpStep(fuzzSecret, code, tc.now); got != tc.want {
			t.Errorf("code of %v checked at %v: step %d, want %d", at, tc.now, got, tc.want)
		}
	}
	if got := totpStep(fuzzSecret, code[:5], at); got != 0 {
		t.Error("five digits matched")
	}
}

// FuzzTOTPStep: whatever is typed, only the six digits of a step within
// the window match, and nothing panics.
func FuzzTOTPStep(f *testing.F) {
	at := time.Unix(1_800_000_000, 0)
	code, _ := totp.GenerateCodeCustom(fuzzSecret, at, totpOpts)
	for _, s := range []string{code, " " + code, code[:3] + " " + code[3:], "000000", "", "１２３４５６", "12345\x00", strings.Repeat("9", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, typed string) {
		step := totpStep(fuzzSecret, typed, at)
		if step == 0 {
			return
		}
		want, _ := totp.GenerateCodeCustom(fuzzSecret, time.Unix(int64(step)*30, 0), totpOpts)
		if strings.ReplaceAll(typed, " ", "") != want || step+1 < uint64(at.Unix())/30 || step > uint64(at.Unix())/30+1 {
			t.Fatalf("%q matched step %d", typed, step)
		}
	})
}

// FuzzRecoveryCode: normalising a typed recovery code never panics and
// is idempotent.
func FuzzRecoveryCode(f *testing.F) {
	for _, s := range []string{"abcde-fghjk", "ABCDE FGHJK", "", "-- --", "ÅBC"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, typed string) {
		n := normalRecovery(typed)
		if normalRecovery(n) != n || strings.ContainsAny(n, "- ") {
			t.Fatalf("normalRecovery(%q) = %q", typed, n)
		}
	})
}

// FuzzWebAuthnAnswer: what a browser posts as a WebAuthn answer is parsed
// without panicking, assertion or creation alike.
func FuzzWebAuthnAnswer(f *testing.F) {
	for _, s := range []string{`{}`, `{"id":"x","rawId":"eA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"","signature":""}}`,
		`{"id":"x","rawId":"eA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA"}}`, `null`, `[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		protocol.ParseCredentialRequestResponseBytes(raw)
		protocol.ParseCredentialCreationResponseBytes(raw)
	})
}
