package edge_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/oidcgate/oidcgate/edge"
	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider/storage/memory"
)

const benchIssuer = "https://id.example.com"

var benchAlgs = []string{keys.ES256, keys.RS256, keys.EdDSA}

// benchRing is a key ring with every benchmarked algorithm.
func benchRing(b testing.TB) *keys.Ring {
	kek := make([]byte, keys.KEKSize)
	rand.Read(kek)
	r, err := keys.NewRing(context.Background(), keys.Config{Algs: benchAlgs, RSABits: 2048, RotationPeriod: 720 * time.Hour,
		PrePublish: time.Hour, RetireGrace: 2 * time.Hour, ReloadInterval: 10 * time.Second, KEK: kek},
		memory.New(time.Now), discard, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

func benchToken(b testing.TB, r *keys.Ring, alg string) string {
	payload, _ := json.Marshal(map[string]any{"iss": benchIssuer, "sub": "5f1c9e2a-7b7e-4c1e-9a57-3f0c8f6d2b11", "aud": api,
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "jti": "b2bq6PZyDq9t2t0RkqG5nA",
		"client_id": "billing-service", "scope": "invoices:read invoices:write"})
	tok, err := r.Sign(alg, "at+jwt", payload)
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// benchValidator validates against the ring directly; cacheTTL 1ns makes
// every validation a miss that still pays for its cache insert.
func benchValidator(b testing.TB, r *keys.Ring, cacheTTL time.Duration) *edge.Validator {
	v, err := edge.NewValidator(edge.ValidatorConfig{Issuer: benchIssuer, Algs: benchAlgs, Leeway: 30 * time.Second,
		RequireTyp: true, CacheTTL: cacheTTL, CacheSize: 100_000, IntrospectionTTL: time.Minute, NegativeTTL: 5 * time.Second},
		r, nil, nil, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.Close)
	return v
}

var benchRoute = mustRoutes().Match([]byte("GET"), []byte("/api"))

func mustRoutes() *edge.Routes {
	r, err := edge.DefaultRoutes(api)
	if err != nil {
		panic(err)
	}
	return r
}

func BenchmarkValidateHit(b *testing.B) {
	r := benchRing(b)
	for _, alg := range benchAlgs {
		b.Run(alg, func(b *testing.B) {
			v := benchValidator(b, r, time.Minute)
			auth := []byte("Bearer " + benchToken(b, r, alg))
			warm(b, v, auth)
			b.ReportAllocs()
			for b.Loop() {
				if _, d := v.Check(context.Background(), time.Now(), auth, benchRoute); d.Status != 200 {
					b.Fatal(d)
				}
			}
		})
	}
}

// warm validates once and waits until the verified-token cache holds it.
func warm(b testing.TB, v *edge.Validator, auth []byte) {
	for range 100 {
		if _, d := v.Check(context.Background(), time.Now(), auth, benchRoute); d.Status != 200 {
			b.Fatal(d)
		}
		v.WaitForCache()
	}
}

// rawVerify is the bare crypto/* cost of checking one JWS signature.
func rawVerify(alg string, pub crypto.PublicKey, input, sig []byte) bool {
	d := sha256.Sum256(input)
	switch alg {
	case keys.ES256:
		return ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), d[:], sig)
	case keys.RS256:
		return rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, d[:], sig) == nil
	default:
		return ed25519.Verify(pub.(ed25519.PublicKey), input, sig)
	}
}

func BenchmarkValidateMiss(b *testing.B) {
	r := benchRing(b)
	for _, alg := range benchAlgs {
		tok := benchToken(b, r, alg)
		b.Run(alg+"/oidcgate", func(b *testing.B) {
			v := benchValidator(b, r, time.Nanosecond)
			auth := []byte("Bearer " + tok)
			b.ReportAllocs()
			for b.Loop() {
				if _, d := v.Check(context.Background(), time.Now(), auth, benchRoute); d.Status != 200 {
					b.Fatal(d)
				}
			}
		})
		b.Run(alg+"/raw", func(b *testing.B) {
			kid, _ := r.SigningKeyID(alg)
			pk, _ := r.PublicKey(kid)
			dot := strings.LastIndexByte(tok, '.')
			input := []byte(tok[:dot])
			sig, _ := base64.RawURLEncoding.DecodeString(tok[dot+1:])
			if alg == keys.ES256 {
				var bld cryptobyte.Builder
				bld.AddASN1(asn1.SEQUENCE, func(c *cryptobyte.Builder) {
					c.AddASN1BigInt(new(big.Int).SetBytes(sig[:32]))
					c.AddASN1BigInt(new(big.Int).SetBytes(sig[32:]))
				})
				sig, _ = bld.Bytes()
			}
			b.ReportAllocs()
			for b.Loop() {
				if !rawVerify(alg, pk.Key, input, sig) {
					b.Fatal("raw verify failed")
				}
			}
		})
	}
}

// inmemory serves h on an in-memory listener and returns a client for it.
func inmemory(b testing.TB, h fasthttp.RequestHandler) *fasthttp.HostClient {
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: h}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Shutdown() })
	return &fasthttp.HostClient{Addr: "edge", Dial: func(string) (net.Conn, error) { return ln.Dial() }}
}

// BenchmarkForwardAuth compares the forward-auth endpoint on a cache hit
// with a bare fasthttp handler that answers 200, through the same
// in-memory listener and client.
func BenchmarkForwardAuth(b *testing.B) {
	r := benchRing(b)
	v := benchValidator(b, r, time.Minute)
	tok := benchToken(b, r, keys.ES256)
	warm(b, v, []byte("Bearer "+tok))
	e, err := edge.New(edge.Config{ForwardAuthPath: "/_oidcgate/auth", Headers: edge.DefaultHeaders()}, v, mustRoutes(), discard,
		prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		h    fasthttp.RequestHandler
	}{
		{"oidcgate", e.Handler()},
		{"baseline", func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(200) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			client := inmemory(b, tc.h)
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI("http://edge/_oidcgate/auth")
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("X-Original-URI", "/api/things")
			req.Header.Set("X-Original-Method", "GET")
			b.ReportAllocs()
			for b.Loop() {
				if err := client.Do(req, resp); err != nil {
					b.Fatal(err)
				}
				if resp.StatusCode() != 200 {
					b.Fatalf("status %d", resp.StatusCode())
				}
			}
		})
	}
}

// BenchmarkClaimRules: issue 17's acceptance 4 — the forward-auth cache-hit
// path with a CEL claim rule and two claim headers (oidcgate) beside
// today's cache-hit path without them (baseline), side by side.
func BenchmarkClaimRules(b *testing.B) {
	r := benchRing(b)
	payload, _ := json.Marshal(map[string]any{"iss": benchIssuer, "sub": "5f1c9e2a-7b7e-4c1e-9a57-3f0c8f6d2b11", "aud": api,
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "jti": "b2bq6PZyDq9t2t0RkqG5nA",
		"client_id": "billing-service", "scope": "invoices:read invoices:write", "email": "ann@example.com",
		"groups": []string{"billing", "admin"}})
	tok, err := r.Sign(keys.ES256, "at+jwt", payload)
	if err != nil {
		b.Fatal(err)
	}
	load := func(rule string) *edge.Routes {
		path := filepath.Join(b.TempDir(), "routes.yaml")
		os.WriteFile(path, []byte(`routes:
  - path_prefix: /api
    audience: `+api+`
    rule: '`+rule+`'
    headers: {X-User-Email: email, X-Groups: groups}
`), 0o600)
		r, err := edge.LoadRoutes(path)
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	// claims/: a rule on claims alone (its verdict kept per token);
	// request/: one that reads the request too (evaluated every time).
	for _, tc := range []struct {
		name   string
		routes *edge.Routes
		keep   bool
	}{{"claims/oidcgate", load(`"admin" in claims.groups`), true}, {"claims/baseline", mustRoutes(), false},
		{"request/oidcgate", load(`"admin" in claims.groups && request.method == "GET"`), true}, {"request/baseline", mustRoutes(), false}} {
		b.Run(tc.name, func(b *testing.B) {
			v, err := edge.NewValidator(edge.ValidatorConfig{Issuer: benchIssuer, Algs: benchAlgs, Leeway: 30 * time.Second,
				RequireTyp: true, CacheTTL: time.Minute, CacheSize: 100_000, IntrospectionTTL: time.Minute, NegativeTTL: 5 * time.Second,
				KeepClaims: tc.keep}, r, nil, nil, prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(v.Close)
			warm(b, v, []byte("Bearer "+tok))
			e, err := edge.New(edge.Config{ForwardAuthPath: "/_oidcgate/auth", Headers: edge.DefaultHeaders()}, v, tc.routes, discard,
				prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			client := inmemory(b, e.Handler())
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI("http://edge/_oidcgate/auth")
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("X-Original-URI", "/api/things")
			req.Header.Set("X-Original-Method", "GET")
			b.ReportAllocs()
			for b.Loop() {
				if err := client.Do(req, resp); err != nil {
					b.Fatal(err)
				}
				if resp.StatusCode() != 200 {
					b.Fatalf("status %d %s", resp.StatusCode(), resp.Body())
				}
			}
			if tc.keep && string(resp.Header.Peek("X-Groups")) != "billing,admin" {
				b.Fatalf("claim header: %q", resp.Header.Peek("X-Groups"))
			}
		})
	}
}
