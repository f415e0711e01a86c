package provider_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage"
	"github.com/oidcgate/oidcgate/provider/storage/bolt"
	"github.com/oidcgate/oidcgate/provider/storage/memory"
	"github.com/oidcgate/oidcgate/provider/storage/storagetest"
)

// benchServer serves a provider on store through an in-memory listener,
// with the client spec registered, and returns a fasthttp client for it.
func benchServer(b *testing.B, store storage.Storage, alg string, spec provider.ClientSpec) *fasthttp.HostClient {
	kek := make([]byte, keys.KEKSize)
	rand.Read(kek)
	ring, err := keys.NewRing(context.Background(), keys.Config{Algs: []string{alg}, RSABits: 2048,
		RotationPeriod: 720 * time.Hour, PrePublish: time.Hour, RetireGrace: 2 * time.Hour,
		ReloadInterval: 10 * time.Second, KEK: kek}, store, discard, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	p, err := provider.New(provider.Config{Issuer: "http://127.0.0.1:8080", AccessTokenTTL: time.Hour, AccessTokenAlg: alg,
		ClientCacheTTL: time.Minute, GCInterval: time.Minute, Argon2: provider.DefaultArgon2()},
		store, ring, discard, prometheus.NewRegistry(), time.Now)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	c, _, err := spec.Build(time.Now())
	if err != nil {
		b.Fatal(err)
	}
	store.CreateClient(context.Background(), c)
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: p.Public()}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Shutdown() })
	return &fasthttp.HostClient{Addr: "bench", Dial: func(string) (net.Conn, error) { return ln.Dial() }}
}

// benchPost is a form POST with Basic authentication as client svc.
func benchPost(path, form string) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI("http://bench" + path)
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("svc:"+secret)))
	req.SetBodyString(form)
	return req
}

func benchLoop(b *testing.B, client *fasthttp.HostClient, req *fasthttp.Request) {
	resp := fasthttp.AcquireResponse()
	b.ReportAllocs()
	for b.Loop() {
		if err := client.Do(req, resp); err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode() != 200 {
			b.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
		}
	}
}

// BenchmarkTokenClientCredentials is the whole token endpoint — HTTP
// parsing, client authentication (cache hit), claims, signing, response —
// through an in-memory listener, with a fasthttp client.
func BenchmarkTokenClientCredentials(b *testing.B) {
	for _, alg := range []string{keys.ES256, keys.RS256} {
		b.Run(alg, func(b *testing.B) {
			client := benchServer(b, memory.New(time.Now), alg,
				provider.ClientSpec{ID: "svc", Secret: secret, Scopes: []string{"read"}, Audiences: []string{api}})
			benchLoop(b, client, benchPost("/token", "grant_type=client_credentials&scope=read"))
		})
	}
}

// BenchmarkIntrospectOpaque is the introspection endpoint for an opaque
// token kept in the embedded store: client authentication, a bbolt read
// and a record decode, the JSON answer.
func BenchmarkIntrospectOpaque(b *testing.B) {
	store, err := bolt.Open(filepath.Join(b.TempDir(), "oidcgate.db"), time.Now)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	client := benchServer(b, store, keys.ES256, provider.ClientSpec{ID: "svc", Secret: secret, Scopes: []string{"read"},
		Audiences: []string{api}, AccessTokenFormat: "opaque"})
	resp := fasthttp.AcquireResponse()
	if err := client.Do(benchPost("/token", "grant_type=client_credentials&scope=read"), resp); err != nil || resp.StatusCode() != 200 {
		b.Fatalf("token: %v %d %s", err, resp.StatusCode(), resp.Body())
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(resp.Body(), &tok)
	req := benchPost("/introspect", "token="+tok.AccessToken)
	if err := client.Do(req, resp); err != nil || !strings.Contains(string(resp.Body()), `"active":true`) {
		b.Fatalf("introspect: %v %s", err, resp.Body())
	}
	benchLoop(b, client, req)
}

// BenchmarkTokenClientCredentialsPrivateKeyJWT is the secret path's
// benchmark with the client authenticating by a private_key_jwt assertion
// instead: one more signature verification, and the jti written to the
// store. The client's work — making the assertions — is done before the
// timing, except when the pool runs out.
func BenchmarkTokenClientCredentialsPrivateKeyJWT(b *testing.B) {
	for kt, newKey := range map[string]func(testing.TB, string) clientKey{"ES256": newClientKey, "EdDSA": newEdClientKey, "RS256": newRSAClientKey} {
		b.Run(kt, func(b *testing.B) {
			key := newKey(b, "bench")
			client := benchServer(b, memory.New(time.Now), keys.ES256, provider.ClientSpec{ID: "pkj", TokenEndpointAuthMethod: "private_key_jwt",
				JWKS: key.jwks(b), Scopes: []string{"read"}, Audiences: []string{api}})
			pool := make([]string, 0, 12000)
			next := func() string {
				now := time.Now()
				return assertionForm(key.sign(b, map[string]any{"iss": "pkj", "sub": "pkj", "aud": "http://127.0.0.1:8080/token",
					"exp": now.Add(4 * time.Minute).Unix(), "jti": random()}), "scope", "read", "client_id", "pkj")
			}
			for range cap(pool) {
				pool = append(pool, next())
			}
			req := fasthttp.AcquireRequest()
			req.SetRequestURI("http://bench/token")
			req.Header.SetMethod("POST")
			req.Header.SetContentType("application/x-www-form-urlencoded")
			resp := fasthttp.AcquireResponse()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i >= len(pool) { // the pool is spent: a new assertion each time
					b.StopTimer()
					pool[i%len(pool)] = next()
					b.StartTimer()
				}
				req.SetBodyString(pool[i%len(pool)])
				i++
				if err := client.Do(req, resp); err != nil {
					b.Fatal(err)
				}
				if resp.StatusCode() != 200 {
					b.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
				}
			}
		})
	}
}

// BenchmarkTokenClientCredentialsDPoP is the secret path with a DPoP proof
// (ES256) on each request: the proof's signature verified, its claims
// checked, its jti written to the store, and cnf.jkt in the token. The
// proofs — the client's work — are made before the timing.
func BenchmarkTokenClientCredentialsDPoP(b *testing.B) {
	key := newClientKey(b, "")
	store := memory.New(time.Now)
	client := benchServer(b, store, keys.ES256, provider.ClientSpec{ID: "svc", Secret: secret, Scopes: []string{"read"}, Audiences: []string{api}})
	s := &server{clock: &storagetest.WallClock{}}
	pool := make([]string, 12000)
	for i := range pool {
		pool[i] = key.proof(b, s, "POST", "http://127.0.0.1:8080/token", "", nil)
	}
	req := benchPost("/token", "grant_type=client_credentials&scope=read")
	resp := fasthttp.AcquireResponse()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i >= len(pool) { // the pool is spent: a new proof each time
			b.StopTimer()
			pool[i%len(pool)] = key.proof(b, s, "POST", "http://127.0.0.1:8080/token", "", nil)
			b.StartTimer()
		}
		req.Header.Set("DPoP", pool[i%len(pool)])
		i++
		if err := client.Do(req, resp); err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode() != 200 {
			b.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
		}
	}
}
