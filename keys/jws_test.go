package keys_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/oidcgate/oidcgate/keys"
)

var allAlgs = []string{keys.ES256, keys.RS256, keys.PS256, keys.EdDSA}

func TestSignVerifyRoundTrip(t *testing.T) {
	r, _ := newRing(t, newClock(), allAlgs...)
	v, err := keys.NewVerifier(r, allAlgs)
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			tok, err := r.Sign(alg, "at+jwt", claims)
			if err != nil {
				t.Fatal(err)
			}
			payload, h, err := v.Verify([]byte(tok))
			if err != nil {
				t.Fatal(err)
			}
			if string(payload) != string(claims) || h.Alg != alg || h.Typ != "at+jwt" {
				t.Errorf("payload %s header %+v", payload, h)
			}
			kid, _ := r.SigningKeyID(alg)
			if h.Kid != kid {
				t.Errorf("kid = %q, want %q", h.Kid, kid)
			}
		})
	}
}

// jwxSet parses the ring's JWKS with jwx, as a relying party would.
func jwxSet(t *testing.T, r *keys.Ring) jwk.Set {
	t.Helper()
	body, _ := r.JWKS()
	set, err := jwk.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestFastPathVerifiesWithJWX(t *testing.T) {
	r, _ := newRing(t, newClock(), allAlgs...)
	set := jwxSet(t, r)
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			tok, err := r.Sign(alg, "at+jwt", claims)
			if err != nil {
				t.Fatal(err)
			}
			payload, err := jws.Verify([]byte(tok), jws.WithKeySet(set, jws.WithRequireKid(true)))
			if err != nil {
				t.Fatalf("jwx rejects the fast path's %s token: %v", alg, err)
			}
			if string(payload) != string(claims) {
				t.Errorf("payload = %s", payload)
			}
		})
	}
}

func TestFastPathVerifiesWithGoOIDC(t *testing.T) {
	r, _ := newRing(t, newClock(), allAlgs...)
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			// go-oidc tries each static key in turn; give it only keys of the
			// token's algorithm so a mismatch cannot hide a failure.
			kid, _ := r.SigningKeyID(alg)
			pk, _ := r.PublicKey(kid)
			ks := &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{pk.Key}}
			v := oidc.NewVerifier("https://id.example.com", ks, &oidc.Config{
				ClientID: "https://api.example.com", SupportedSigningAlgs: []string{alg}})
			tok, err := r.Sign(alg, "JWT", claims)
			if err != nil {
				t.Fatal(err)
			}
			idt, err := v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("go-oidc rejects the fast path's %s token: %v", alg, err)
			}
			if idt.Subject != "5f1c9e2a-7b7e-4c1e-9a57-3f0c8f6d2b11" {
				t.Errorf("sub = %q", idt.Subject)
			}
		})
	}
}

// staticKeys is a KeySet of fixed keys.
type staticKeys map[string]*keys.PublicKey

func (s staticKeys) PublicKey(kid string) (*keys.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, keys.ErrUnknownKey
}

func rawKey(t testing.TB, alg string) (priv any, pub any) {
	t.Helper()
	switch alg {
	case keys.ES256:
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		return k, &k.PublicKey
	case keys.RS256, keys.PS256:
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		return k, &k.PublicKey
	default:
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		return priv, pub
	}
}

func TestJWXTokensVerifyWithFastPath(t *testing.T) {
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			priv, pub := rawKey(t, alg)
			kid, err := keys.Thumbprint(pub)
			if err != nil {
				t.Fatal(err)
			}
			hdr := jws.NewHeaders()
			hdr.Set(jws.KeyIDKey, kid)
			hdr.Set(jws.TypeKey, "at+jwt")
			tok, err := jws.Sign(claims, jws.WithKey(jwa.SignatureAlgorithm(alg), priv, jws.WithProtectedHeaders(hdr)))
			if err != nil {
				t.Fatal(err)
			}
			v, _ := keys.NewVerifier(staticKeys{kid: {ID: kid, Alg: alg, Key: pub}}, allAlgs)
			payload, _, err := v.Verify(tok)
			if err != nil {
				t.Fatalf("fast path rejects jwx's %s token: %v", alg, err)
			}
			if string(payload) != string(claims) {
				t.Errorf("payload = %s", payload)
			}
		})
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerifyRejects(t *testing.T) {
	r, _ := newRing(t, newClock(), keys.ES256, keys.RS256, keys.EdDSA)
	v, _ := keys.NewVerifier(r, []string{keys.ES256, keys.RS256, keys.EdDSA})
	es, _ := r.Sign(keys.ES256, "at+jwt", claims)
	rs, _ := r.Sign(keys.RS256, "at+jwt", claims)
	esKID, _ := r.SigningKeyID(keys.ES256)
	rsKID, _ := r.SigningKeyID(keys.RS256)
	parts := strings.Split(es, ".")

	// HS256 "signed" with the RSA public key's bytes: the classic key-confusion attack.
	body, _ := r.JWKS()
	hsHeader := b64(`{"alg":"HS256","kid":"` + rsKID + `","typ":"at+jwt"}`)
	hsTok, err := jws.Sign(claims, jws.WithKey(jwa.HS256, body))
	if err != nil {
		t.Fatal(err)
	}
	hsParts := strings.Split(string(hsTok), ".")

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"tampered payload", parts[0] + "." + b64(`{"sub":"admin"}`) + "." + parts[2], keys.ErrSignature},
		{"tampered header", b64(`{"alg":"ES256","kid":"`+esKID+`","typ":"JWT"}`) + "." + parts[1] + "." + parts[2], keys.ErrSignature},
		{"tampered signature", parts[0] + "." + parts[1] + "." + b64(strings.Repeat("x", 64)), keys.ErrSignature},
		{"signature of wrong length", parts[0] + "." + parts[1] + "." + b64("short"), keys.ErrSignature},
		{"alg none", b64(`{"alg":"none","kid":"`+esKID+`"}`) + "." + parts[1] + ".", keys.ErrAlgorithm},
		{"alg NONE", b64(`{"alg":"NONE"}`) + "." + parts[1] + ".", keys.ErrAlgorithm},
		{"alg missing", b64(`{"kid":"`+esKID+`"}`) + "." + parts[1] + "." + parts[2], keys.ErrAlgorithm},
		{"HS256 with public key bytes", hsHeader + "." + hsParts[1] + "." + hsParts[2], keys.ErrAlgorithm},
		{"unknown kid", b64(`{"alg":"ES256","kid":"nope"}`) + "." + parts[1] + "." + parts[2], keys.ErrUnknownKey},
		{"wrong alg for key", b64(`{"alg":"RS256","kid":"`+esKID+`"}`) + "." + parts[1] + "." + parts[2], keys.ErrAlgorithm},
		{"ES256 signature under RSA key", b64(`{"alg":"ES256","kid":"`+rsKID+`"}`) + "." + strings.Split(rs, ".")[1] + "." + parts[2], keys.ErrAlgorithm},
		{"crit header", b64(`{"alg":"ES256","kid":"`+esKID+`","crit":["exp"],"exp":1}`) + "." + parts[1] + "." + parts[2], keys.ErrCritical},
		{"two segments", parts[0] + "." + parts[1], keys.ErrMalformed},
		{"four segments", es + ".x", keys.ErrMalformed},
		{"one segment", "abc", keys.ErrMalformed},
		{"empty", "", keys.ErrMalformed},
		{"header not base64", "!!!." + parts[1] + "." + parts[2], keys.ErrMalformed},
		{"header padded base64", base64.URLEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"`+esKID+`"} `)) + "." + parts[1] + "." + parts[2], keys.ErrMalformed},
		{"header not json", b64("not json") + "." + parts[1] + "." + parts[2], keys.ErrMalformed},
		{"header json array", b64(`["ES256"]`) + "." + parts[1] + "." + parts[2], keys.ErrMalformed},
		{"payload not base64", parts[0] + ".!!!." + parts[2], keys.ErrSignature},
		{"signature not base64", parts[0] + "." + parts[1] + ".!!!", keys.ErrMalformed},
		{"huge token", parts[0] + "." + strings.Repeat("A", keys.MaxTokenSize) + "." + parts[2], keys.ErrMalformed},
		{"huge header", b64(`{"alg":"ES256","x":"`+strings.Repeat("a", 4000)+`"}`) + "." + parts[1] + "." + parts[2], keys.ErrMalformed},
		{"huge signature", parts[0] + "." + parts[1] + "." + b64(strings.Repeat("s", 2000)), keys.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload, _, err := v.Verify([]byte(tc.token))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if payload != nil {
				t.Error("a rejected token returned its payload")
			}
		})
	}
}

func TestVerifierAllowList(t *testing.T) {
	r, _ := newRing(t, newClock(), keys.ES256, keys.RS256)
	v, _ := keys.NewVerifier(r, []string{keys.ES256})
	rs, _ := r.Sign(keys.RS256, "at+jwt", claims)
	if _, _, err := v.Verify([]byte(rs)); !errors.Is(err, keys.ErrAlgorithm) {
		t.Errorf("RS256 token through an ES256-only verifier: %v", err)
	}
	for _, bad := range [][]string{nil, {"HS256"}, {"none"}} {
		if _, err := keys.NewVerifier(r, bad); err == nil {
			t.Errorf("NewVerifier(%v) accepted", bad)
		}
	}
}

func FuzzVerify(f *testing.F) {
	clk := newClock()
	r, _ := newRing(f, clk, keys.ES256, keys.EdDSA)
	v, _ := keys.NewVerifier(r, []string{keys.ES256, keys.EdDSA})
	es, _ := r.Sign(keys.ES256, "at+jwt", claims)
	ed, _ := r.Sign(keys.EdDSA, "JWT", claims)
	for _, seed := range []string{es, ed, "", ".", "..", "...", "a.b.c", b64(`{"alg":"none"}`) + ".e30.",
		b64(`{"alg":"ES256","crit":[]}`) + ".e30.AA", es[:len(es)-3], strings.Replace(es, ".", "..", 1)} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, token []byte) {
		payload, h, err := v.Verify(token)
		if err == nil {
			// Only an untouched signature can pass: the token must be one we signed.
			if string(payload) != string(claims) {
				t.Fatalf("accepted a token with payload %q", payload)
			}
			if h.Alg != keys.ES256 && h.Alg != keys.EdDSA {
				t.Fatalf("accepted alg %q", h.Alg)
			}
			var m map[string]any
			if json.Unmarshal(payload, &m) != nil {
				t.Fatal("accepted payload is not JSON")
			}
		} else if payload != nil {
			t.Fatal("payload returned with an error")
		}
	})
}
