package provider_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage/memory"
)

// BenchmarkTokenClientCredentials is the whole token endpoint — HTTP
// parsing, client authentication (cache hit), claims, signing, response —
// through an in-memory listener, with a fasthttp client.
func BenchmarkTokenClientCredentials(b *testing.B) {
	for _, alg := range []string{keys.ES256, keys.RS256} {
		b.Run(alg, func(b *testing.B) {
			store := memory.New(time.Now)
			kek := make([]byte, keys.KEKSize)
			rand.Read(kek)
			ring, err := keys.NewRing(context.Background(), keys.Config{Algs: []string{alg}, RSABits: 2048,
				RotationPeriod: 720 * time.Hour, PrePublish: time.Hour, RetireGrace: 2 * time.Hour,
				ReloadInterval: 10 * time.Second, KEK: kek}, store, discard, time.Now)
			if err != nil {
				b.Fatal(err)
			}
			p, err := provider.New(provider.Config{Issuer: "http://127.0.0.1:8080", AccessTokenTTL: time.Hour, AccessTokenAlg: alg,
				ClientCacheTTL: time.Minute, GCInterval: time.Minute, Argon2: provider.DefaultArgon2},
				store, ring, discard, prometheus.NewRegistry(), time.Now)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			c, _, _ := provider.ClientSpec{ID: "svc", Secret: secret, Scopes: []string{"read"}, Audiences: []string{api}}.Build(time.Now())
			store.CreateClient(context.Background(), c)

			ln := fasthttputil.NewInmemoryListener()
			srv := &fasthttp.Server{Handler: p.Public()}
			go srv.Serve(ln)
			defer srv.Shutdown()
			client := &fasthttp.HostClient{Addr: "bench", Dial: func(string) (net.Conn, error) { return ln.Dial() }}

			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI("http://bench/token")
			req.Header.SetMethod("POST")
			req.Header.SetContentType("application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("svc:"+secret)))
			req.SetBodyString("grant_type=client_credentials&scope=read")
			b.ReportAllocs()
			for b.Loop() {
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
