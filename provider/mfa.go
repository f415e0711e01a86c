package provider

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"image/png"
	"slices"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/oidcgate/oidcgate/provider/storage"
)

// Second factors: TOTP (RFC 6238) and recovery codes here, WebAuthn in
// webauthn.go; the step that asks for them in flow_mfa.go, the account
// page that manages them in account.go.

// The authentication context classes a client may ask for with acr_values
// (OIDC Core §3.1.2.1) and that ID tokens carry in acr.
const (
	// ACROneFactor: one factor — a password, an upstream sign-in, or a
	// passkey without user verification.
	ACROneFactor = "urn:oidcgate:acr:1fa"
	// ACRMFA: more than one factor — a password or upstream sign-in and a
	// second factor, a passkey with user verification, or an upstream
	// trusted to have done MFA.
	ACRMFA = "urn:oidcgate:acr:mfa"
)

// acrValues are the supported levels, lowest first.
var acrValues = []string{ACROneFactor, ACRMFA}

// multiFactor: amr (RFC 8176) says the user gave more than one factor.
func multiFactor(amr []string) bool { return slices.Contains(amr, "mfa") }

// acrOf is the level amr reaches.
func acrOf(amr []string) string {
	if multiFactor(amr) {
		return ACRMFA
	}
	return ACROneFactor
}

// wantsMFA: the client requires a second factor, or the first level it
// asked for that this server knows is the MFA level (acr_values are in
// order of preference; unknown ones are skipped, OIDC Core §3.1.2.1).
func wantsMFA(ia *storage.Interaction, c *storage.Client) bool {
	if c.RequireMFA {
		return true
	}
	for _, v := range ia.ACRValues {
		if slices.Contains(acrValues, v) {
			return v == ACRMFA
		}
	}
	return false
}

// withFactor is amr after a second factor (method, an RFC 8176 value)
// passed: method and "mfa" added, once each.
func withFactor(amr []string, method string) []string {
	out := slices.Clone(amr)
	for _, m := range []string{method, "mfa"} {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// factorStore is what second factors use of the store.
type factorStore interface {
	CreateFactor(ctx context.Context, f *storage.Factor) error
	ListFactors(ctx context.Context, userID string) ([]*storage.Factor, error)
	UseFactor(ctx context.Context, userID, id string, counter uint64, at time.Time) error
	DeleteFactor(ctx context.Context, userID, id string) error
	DeleteFactors(ctx context.Context, userID, kind string) (int, error)
}

// hasKind reports whether factors has one of kind.
func hasKind(factors []*storage.Factor, kind string) bool {
	return slices.ContainsFunc(factors, func(f *storage.Factor) bool { return f.Kind == kind })
}

// secondFactors: the factors that can be asked for (recovery codes are a
// way back in, not a factor of their own).
func secondFactors(factors []*storage.Factor) bool {
	return hasKind(factors, storage.FactorTOTP) || hasKind(factors, storage.FactorWebAuthn)
}

// TOTP: SHA-1, 6 digits, 30-second steps — what every authenticator app
// reads from an otpauth:// URI — and ±1 step of clock drift.
var totpOpts = totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// totpStep returns the time step (RFC 6238's counter T) whose code is
// code, among the one now and its neighbours, or 0.
func totpStep(secret, code string, now time.Time) uint64 {
	code = strings.ReplaceAll(code, " ", "")
	if len(code) != 6 {
		return 0
	}
	cur := uint64(now.Unix()) / uint64(totpOpts.Period)
	for _, step := range []uint64{cur + 1, cur, cur - 1} {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(int64(step)*int64(totpOpts.Period), 0), totpOpts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step
		}
	}
	return 0
}

// errReplayed: a TOTP code or recovery code that was right, and used before.
var errReplayed = errors.New("this code was used already")

// checkTOTP checks code against u's authenticator apps and spends its
// time step: a code is accepted once, and none older than the last.
func (p *Provider) checkTOTP(ctx context.Context, factors []*storage.Factor, code string) (bool, error) {
	now := p.now()
	for _, f := range factors {
		if f.Kind != storage.FactorTOTP {
			continue
		}
		secret, err := p.ring.Open("totp:"+f.ID, f.Secret)
		if err != nil {
			return false, err
		}
		step := totpStep(string(secret), code, now)
		if step == 0 {
			continue
		}
		err = p.mfaDB.UseFactor(ctx, f.UserID, f.ID, step, now)
		if errors.Is(err, storage.ErrAlreadyUsed) {
			return false, errReplayed
		}
		return err == nil, err
	}
	return false, nil
}

// totpSetup is a TOTP enrollment shown to the user.
type totpSetup struct {
	URI, Secret string
	QR          template.URL // the URI as a QR code, a PNG data: URL
}

// newTOTP makes a secret for u and the ceremony that remembers it (sealed)
// until the user confirms it with a first code.
func (p *Provider) newTOTP(u *storage.User, owner string) (*storage.Ceremony, totpSetup, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: p.cfg.BrandName, AccountName: u.Username,
		Period: totpOpts.Period, Digits: totpOpts.Digits, Algorithm: totpOpts.Algorithm, SecretSize: 20})
	if err != nil {
		return nil, totpSetup{}, err
	}
	// The whole otpauth:// URI is sealed (it holds the secret), so the
	// page can be shown again as it was.
	sealed, err := p.ring.Seal("totp-enrollment:"+owner, []byte(key.URL()))
	if err != nil {
		return nil, totpSetup{}, err
	}
	setup, err := setupOf(key)
	return &storage.Ceremony{TOTPSecret: sealed, ExpiresAt: p.now().Add(p.cfg.InteractionTTL)}, setup, err
}

func setupOf(key *otp.Key) (totpSetup, error) {
	img, err := key.Image(240, 240)
	if err != nil {
		return totpSetup{}, err
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return totpSetup{}, err
	}
	return totpSetup{URI: key.URL(), Secret: key.Secret(),
		QR: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes()))}, nil
}

// pendingTOTP is the setup of a ceremony under way, to show it again (a
// wrong first code), or false when there is none or it expired.
func (p *Provider) pendingTOTP(owner string, cer *storage.Ceremony) (string, totpSetup, bool) {
	if cer == nil || cer.TOTPSecret == nil || p.now().After(cer.ExpiresAt) {
		return "", totpSetup{}, false
	}
	uri, err := p.ring.Open("totp-enrollment:"+owner, cer.TOTPSecret)
	if err != nil {
		return "", totpSetup{}, false
	}
	key, err := otp.NewKeyFromURL(string(uri))
	if err != nil {
		return "", totpSetup{}, false
	}
	setup, err := setupOf(key)
	return key.Secret(), setup, err == nil
}

// enrollTOTP confirms a pending TOTP secret with its first code and stores
// it (sealed again, bound to the new factor); the code's step is spent.
func (p *Provider) enrollTOTP(ctx context.Context, u *storage.User, secret, code, name string) (bool, error) {
	now := p.now()
	step := totpStep(secret, code, now)
	if step == 0 {
		return false, nil
	}
	f := &storage.Factor{ID: newJTI(), UserID: u.ID, Kind: storage.FactorTOTP, Name: name, Counter: step, CreatedAt: now, LastUsedAt: now}
	sealed, err := p.ring.Seal("totp:"+f.ID, []byte(secret))
	if err != nil {
		return false, err
	}
	f.Secret = sealed
	if err := p.mfaDB.CreateFactor(ctx, f); err != nil {
		return false, err
	}
	p.audit("mfa.enrolled", "user_id", u.ID, "kind", storage.FactorTOTP, "factor_id", f.ID)
	return true, nil
}

// Recovery codes: ten, each 10 characters of an unambiguous alphabet (50
// bits), shown once and stored as SHA-256 hashes (their entropy makes a
// slow hash needless).
const (
	recoveryCodes    = 10
	recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"
)

// newRecoveryCodes replaces u's recovery codes with ten new ones.
func (p *Provider) newRecoveryCodes(ctx context.Context, u *storage.User) ([]string, error) {
	if _, err := p.mfaDB.DeleteFactors(ctx, u.ID, storage.FactorRecovery); err != nil {
		return nil, err
	}
	now := p.now()
	codes := make([]string, recoveryCodes)
	for i := range codes {
		raw := make([]byte, 10)
		rand.Read(raw)
		for j, b := range raw {
			raw[j] = recoveryAlphabet[int(b)%len(recoveryAlphabet)]
		}
		codes[i] = string(raw[:5]) + "-" + string(raw[5:])
		f := &storage.Factor{ID: newJTI(), UserID: u.ID, Kind: storage.FactorRecovery, Hash: storage.HashOf(normalRecovery(codes[i])), CreatedAt: now}
		if err := p.mfaDB.CreateFactor(ctx, f); err != nil {
			return nil, err
		}
	}
	p.audit("mfa.recovery_codes_generated", "user_id", u.ID)
	return codes, nil
}

// normalRecovery is a typed recovery code as it was hashed: lower case,
// without spaces or dashes.
func normalRecovery(code string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, strings.ToLower(code))
}

// useRecovery spends one of u's recovery codes.
func (p *Provider) useRecovery(ctx context.Context, u *storage.User, factors []*storage.Factor, code string) (bool, error) {
	h := storage.HashOf(normalRecovery(code))
	left := 0
	var match *storage.Factor
	for _, f := range factors {
		if f.Kind != storage.FactorRecovery {
			continue
		}
		if subtle.ConstantTimeCompare(h[:], f.Hash[:]) == 1 {
			match = f
		} else if f.Counter == 0 {
			left++
		}
	}
	if match == nil {
		return false, nil
	}
	err := p.mfaDB.UseFactor(ctx, u.ID, match.ID, 1, p.now())
	if errors.Is(err, storage.ErrAlreadyUsed) {
		return false, errReplayed
	}
	if err != nil {
		return false, err
	}
	p.audit("mfa.recovery_code_used", "user_id", u.ID, "factor_id", match.ID, "codes_left", left)
	return true, nil
}

// audit records an event operators may need to answer for later: in the
// store (the admin API lists them, for --audit-retention) and in the log
// (log=audit, a stream of its own to route). attrs are key-value pairs;
// "by" (who), "ip", "request_id", "user_id" and "client_id" fill the
// event's fields, the rest its details. Never pass a secret or a token.
// A store that cannot take the event does not fail the request: the log
// line stays, and the failure is logged.
func (p *Provider) audit(event string, attrs ...any) {
	p.auditLog.Info("audit: "+event, append([]any{"audit", event}, attrs...)...)
	now := p.now()
	e := &storage.AuditEvent{ID: storage.AuditID(now, newJTI()[:8]), Time: now, Event: event, ExpiresAt: now.Add(p.cfg.AuditRetention)}
	for i := 0; i+1 < len(attrs); i += 2 {
		k, _ := attrs[i].(string)
		v := attrs[i+1]
		s, _ := v.(string)
		switch k {
		case "by":
			e.Actor = s
		case "ip":
			e.IP = s
		case "request_id":
			e.RequestID = s
		case "user_id":
			e.UserID = s
		case "client_id":
			e.ClientID = s
		default:
			if e.Details == nil {
				e.Details = map[string]any{}
			}
			e.Details[k] = v
		}
	}
	ctx, cancel := requestCtx()
	defer cancel()
	if err := p.auditDB.AppendAuditEvent(ctx, e); err != nil {
		p.log.Error("audit event not stored", "event", event, "error", err)
	}
}
