package provider_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"

	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// softKey is a WebAuthn authenticator in software (a P-256 key, "none"
// attestation), so the server's WebAuthn checks run on every test run and
// bad answers — another origin, another user's key, a cloned key — can be
// made at will. The real browser and its JavaScript are tested in Chromium
// (chromium_test.go).
type softKey struct {
	t      *testing.T
	id     []byte
	priv   *ecdsa.PrivateKey
	count  uint32
	user   []byte // the user handle, from the registration
	origin string
}

func newSoftKey(t *testing.T, origin string) *softKey {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	return &softKey{t: t, id: id, priv: priv, origin: origin}
}

var b64u = base64.RawURLEncoding

func (k *softKey) clientData(typ string, challenge protocol.URLEncodedBase64, origin string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge.String(), "origin": origin, "crossOrigin": false})
	return b
}

func authData(rpID string, flags byte, count uint32, attested []byte) []byte {
	h := sha256.Sum256([]byte(rpID))
	out := append(h[:], flags)
	out = binary.BigEndian.AppendUint32(out, count)
	return append(out, attested...)
}

// create answers /webauthn/register/begin's options.
func (k *softKey) create(options []byte) json.RawMessage {
	var cc protocol.CredentialCreation
	if err := json.Unmarshal(options, &cc); err != nil {
		k.t.Fatalf("creation options %s: %v", options, err)
	}
	o := cc.Response
	id, _ := o.User.ID.(string) // base64url, as sent
	k.user, _ = b64u.DecodeString(id)
	cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1,
		-2: k.priv.PublicKey.X.FillBytes(make([]byte, 32)), -3: k.priv.PublicKey.Y.FillBytes(make([]byte, 32))})
	if err != nil {
		k.t.Fatal(err)
	}
	attested := append(make([]byte, 16), byte(len(k.id)>>8), byte(len(k.id)))
	attested = append(append(attested, k.id...), cose...)
	k.count = 0
	auth := authData(o.RelyingParty.ID, 0x01|0x04|0x40, k.count, attested) // UP, UV, AT
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": auth})
	if err != nil {
		k.t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"id": b64u.EncodeToString(k.id), "rawId": b64u.EncodeToString(k.id), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{"clientDataJSON": b64u.EncodeToString(k.clientData("webauthn.create", o.Challenge, k.origin)),
			"attestationObject": b64u.EncodeToString(att)}})
	return b
}

// get answers an assertion's options, as if at origin.
func (k *softKey) get(options []byte, origin string) json.RawMessage {
	var ca protocol.CredentialAssertion
	if err := json.Unmarshal(options, &ca); err != nil {
		k.t.Fatalf("assertion options %s: %v", options, err)
	}
	o := ca.Response
	cd := k.clientData("webauthn.get", o.Challenge, origin)
	k.count++
	auth := authData(o.RelyingPartyID, 0x01|0x04, k.count, nil) // UP, UV
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(bytes.Clone(auth), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	if err != nil {
		k.t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"id": b64u.EncodeToString(k.id), "rawId": b64u.EncodeToString(k.id), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{"clientDataJSON": b64u.EncodeToString(cd), "authenticatorData": b64u.EncodeToString(auth),
			"signature": b64u.EncodeToString(sig), "userHandle": b64u.EncodeToString(k.user)}})
	return b
}

// postJSON sends a WebAuthn endpoint its JSON.
func (b *browser) postJSON(u string, body any) page {
	b.t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", u, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	return b.do(req)
}

var (
	dataCSRF        = regexp.MustCompile(`data-csrf="([^"]+)"`)
	dataInteraction = regexp.MustCompile(`data-interaction="([^"]+)" data-csrf="([^"]+)"`)
)

// registerKey adds k to the signed-in user of b on the account page.
func registerKey(t *testing.T, s *server, b *browser, k *softKey, name string, account page) {
	t.Helper()
	m := dataCSRF.FindStringSubmatch(account.body)
	if m == nil {
		t.Fatalf("no key button on the account page: %s", account.body)
	}
	begin := b.postJSON(s.issuer+"/webauthn/register/begin", map[string]string{"csrf": m[1]})
	if begin.status != http.StatusOK {
		t.Fatalf("register/begin: %d %s", begin.status, begin.body)
	}
	done := b.postJSON(s.issuer+"/webauthn/register/finish", map[string]any{"csrf": m[1], "name": name, "credential": k.create([]byte(begin.body))})
	if done.status != http.StatusOK || !strings.Contains(done.body, `"location":"/account"`) {
		t.Fatalf("register/finish: %d %s", done.status, done.body)
	}
}

// keyAt answers the MFA step (or, with passkey, the sign-in page's passkey
// button) on page p with k, as if at origin; it returns the answer.
func keyAt(s *server, b *browser, p page, k *softKey, origin, kind string) page {
	b.t.Helper()
	m := dataInteraction.FindStringSubmatch(p.body)
	if m == nil {
		b.t.Fatalf("no key button on the page: %s", p.body)
	}
	req := map[string]any{"interaction": m[1], "csrf": m[2]}
	begin := b.postJSON(s.issuer+"/webauthn/"+kind+"/begin", req)
	if begin.status != http.StatusOK {
		b.t.Fatalf("%s/begin: %d %s", kind, begin.status, begin.body)
	}
	req["credential"] = k.get([]byte(begin.body), origin)
	return b.postJSON(s.issuer+"/webauthn/"+kind+"/finish", req)
}

// buttonFields are the interaction and CSRF token a page's key button sends.
func buttonFields(t *testing.T, p page) url.Values {
	m := dataInteraction.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no key button on the page: %s", p.body)
	}
	return url.Values{"interaction": {m[1]}, "csrf": {m[2]}}
}

// follow goes where a WebAuthn answer sends the browser.
func follow(t *testing.T, s *server, b *browser, answer page) page {
	t.Helper()
	var loc struct{ Location string }
	if answer.status != http.StatusOK || json.Unmarshal([]byte(answer.body), &loc) != nil || loc.Location == "" {
		t.Fatalf("the key's answer was refused: %d %s", answer.status, answer.body)
	}
	return b.get(s.issuer + loc.Location)
}

func TestWebAuthnSecondFactor(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			s := start(t, be.open(t), atLocalhost)
			k := newSoftKey(t, s.issuer)
			b := newBrowser(t)
			registerKey(t, s, b, k, "YubiKey 5", b.account(s, alicePassword))
			if p := b.account(s, alicePassword); !strings.Contains(p.body, "YubiKey 5") || !strings.Contains(p.body, "0 recovery codes left") {
				t.Fatalf("the account page after the registration: %s", p.body)
			}

			r := newRP(t, s, "web", secret, rpRedirect)
			b2 := newBrowser(t)
			f, p := r.start(b2, askMFA)
			p = b2.signIn(s, p, alicePassword)
			if p.url.Path != "/mfa" || !strings.Contains(p.body, `data-webauthn="get"`) || !strings.Contains(p.body, `<script src="/static/webauthn.js">`) {
				t.Fatalf("no security key asked: %s %s", p.url, p.body)
			}
			p = follow(t, s, b2, keyAt(s, b2, p, k, s.issuer, "mfa"))
			_, idt := r.redeem(t, s, b2.decide(s, p, "allow"), f.state, f.verifier)
			if acr, amr := claimsOf(t, idt); acr != provider.ACRMFA || !slices.Equal(amr, []string{"pwd", "hwk", "mfa"}) {
				t.Errorf("password then security key: acr %q amr %v", acr, amr)
			}
		})
	}
}

// TestWebAuthnRefusals: acceptance 5 — an assertion from another origin,
// with another user's key, from a cloned key, or replayed, is refused with
// a clear message; so are malformed requests.
func TestWebAuthnRefusals(t *testing.T) {
	s := start(t, backends()[0].open(t), atLocalhost)
	hash, _ := provider.HashPassword("bob's password", provider.Argon2Params{Time: 1, Memory: 8 * 1024, Threads: 1})
	s.store.CreateUser(context.Background(), &storage.User{ID: "bob-sub", Username: "bob", PasswordHash: hash})
	alices, bobs := newSoftKey(t, s.issuer), newSoftKey(t, s.issuer)
	b := newBrowser(t)
	registerKey(t, s, b, alices, "Alice's key", b.account(s, alicePassword))
	bob := newBrowser(t)
	p := bob.get(s.issuer + "/account")
	f := fields(p.body)
	f.Set("username", "bob")
	f.Set("password", "bob's password")
	registerKey(t, s, bob, bobs, "Bob's key", bob.post(s.issuer+"/login", f))

	r := newRP(t, s, "web", secret, rpRedirect)
	mfaPage := func() (*browser, page) {
		b := newBrowser(t)
		_, p := r.start(b, askMFA)
		return b, b.signIn(s, p, alicePassword)
	}
	refusedWith := func(what string, got page, status int, says string) {
		t.Helper()
		if got.status != status || !strings.Contains(got.body, says) {
			t.Errorf("%s: %d %s", what, got.status, got.body)
		}
	}
	b, p = mfaPage()
	refusedWith("another origin", keyAt(s, b, p, alices, "https://evil.example", "mfa"), http.StatusUnauthorized, "did not verify")
	refusedWith("another user's key", keyAt(s, b, p, bobs, s.issuer, "mfa"), http.StatusUnauthorized, "did not verify")

	// A replayed answer finds its challenge spent.
	fs := buttonFields(t, p)
	req := map[string]any{"interaction": fs.Get("interaction"), "csrf": fs.Get("csrf")}
	begin := b.postJSON(s.issuer+"/webauthn/mfa/begin", req)
	req["credential"] = alices.get([]byte(begin.body), s.issuer)
	if first := b.postJSON(s.issuer+"/webauthn/mfa/finish", req); first.status != http.StatusOK {
		t.Fatalf("a good answer: %d %s", first.status, first.body)
	}
	b, p = mfaPage()
	fs = buttonFields(t, p)
	req["interaction"], req["csrf"] = fs.Get("interaction"), fs.Get("csrf")
	refusedWith("a replayed answer", b.postJSON(s.issuer+"/webauthn/mfa/finish", req), http.StatusBadRequest, "no security-key ceremony")

	// A clone made now lags behind the original once that is used again.
	clone := *alices
	follow(t, s, b, keyAt(s, b, p, alices, s.issuer, "mfa"))
	b, p = mfaPage()
	refusedWith("a cloned key", keyAt(s, b, p, &clone, s.issuer, "mfa"), http.StatusUnauthorized, "may have been copied")

	// Malformed requests.
	refusedWith("wrong CSRF", b.postJSON(s.issuer+"/webauthn/mfa/begin", map[string]string{"interaction": buttonFields(t, p).Get("interaction"), "csrf": "x"}),
		http.StatusForbidden, "CSRF")
	raw, _ := http.NewRequest("POST", s.issuer+"/webauthn/mfa/begin", strings.NewReader(url.Values{"a": {"b"}}.Encode()))
	raw.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	refusedWith("a form body", b.do(raw), http.StatusUnsupportedMediaType, "application/json")
	bad, _ := http.NewRequest("POST", s.issuer+"/webauthn/mfa/finish", strings.NewReader(`{"interaction":`))
	bad.Header.Set("Content-Type", "application/json")
	refusedWith("broken JSON", b.do(bad), http.StatusBadRequest, "invalid_request")
	fs = buttonFields(t, p)
	b.postJSON(s.issuer+"/webauthn/mfa/begin", map[string]string{"interaction": fs.Get("interaction"), "csrf": fs.Get("csrf")})
	refusedWith("a malformed credential", b.postJSON(s.issuer+"/webauthn/mfa/finish", map[string]any{"interaction": fs.Get("interaction"),
		"csrf": fs.Get("csrf"), "credential": map[string]string{"id": "x"}}), http.StatusUnauthorized, "malformed")
	refusedWith("passkeys off", b.postJSON(s.issuer+"/webauthn/passkey/begin", map[string]string{"interaction": fs.Get("interaction"),
		"csrf": fs.Get("csrf")}), http.StatusNotFound, "turned off")
}

// TestPasskeySignIn: with passkeys on, a discoverable credential signs the
// user in without a password, at the MFA level.
func TestPasskeySignIn(t *testing.T) {
	s := start(t, backends()[0].open(t), atLocalhost, withPasskeys)
	k := newSoftKey(t, s.issuer)
	b := newBrowser(t)
	registerKey(t, s, b, k, "Phone", b.account(s, alicePassword))
	r := newRP(t, s, "web", secret, rpRedirect)
	b2 := newBrowser(t)
	f, p := r.start(b2, askMFA)
	if !strings.Contains(p.body, "Sign in with a passkey") {
		t.Fatalf("no passkey button: %s", p.body)
	}
	p = follow(t, s, b2, keyAt(s, b2, p, k, s.issuer, "passkey"))
	_, idt := r.redeem(t, s, b2.decide(s, p, "allow"), f.state, f.verifier)
	if acr, amr := claimsOf(t, idt); acr != provider.ACRMFA || !slices.Equal(amr, []string{"hwk", "mfa"}) || idt.Subject != "alice-sub" {
		t.Errorf("passkey sign-in: sub %q acr %q amr %v", idt.Subject, acr, amr)
	}
}
