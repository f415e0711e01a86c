package bench_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/bench"
	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage/memory"
)

const secret = "bench-test-secret-bench-test-secret-01"

// providerURL runs a provider with a JWT and an opaque client on loopback.
func providerURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	store := memory.New(time.Now)
	kek := make([]byte, keys.KEKSize)
	rand.Read(kek)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ring, err := keys.NewRing(context.Background(), keys.Config{Algs: []string{keys.ES256, keys.RS256}, RSABits: 2048,
		RotationPeriod: 720 * time.Hour, PrePublish: time.Hour, RetireGrace: 2 * time.Hour, ReloadInterval: 10 * time.Second,
		KEK: kek}, store, log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	p, err := provider.New(provider.Config{Issuer: issuer, AccessTokenTTL: time.Hour, AccessTokenAlg: keys.ES256,
		ClientCacheTTL: time.Minute, GCInterval: time.Minute, Argon2: provider.DefaultArgon2()}, store, ring, log,
		prometheus.NewRegistry(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []provider.ClientSpec{
		{ID: "jwt", Secret: secret, Scopes: []string{"read"}, Audiences: []string{"https://api.example.com"}},
		{ID: "opaque", Secret: secret, Scopes: []string{"read"}, Audiences: []string{"https://api.example.com"}, AccessTokenFormat: "opaque"},
	} {
		c, _, _ := spec.Build(time.Now())
		store.CreateClient(context.Background(), c)
	}
	srv := &fasthttp.Server{Handler: p.Public()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(); p.Close() })
	return issuer
}

func TestScenarios(t *testing.T) {
	target := providerURL(t)
	for _, tc := range []struct {
		scenario, client string
	}{{bench.Token, "jwt"}, {bench.Token, "opaque"}, {bench.Introspect, "opaque"}, {bench.Introspect, "jwt"},
		{bench.JWKS, ""}, {bench.Discovery, ""}} {
		t.Run(tc.scenario+"/"+tc.client, func(t *testing.T) {
			res, err := bench.Run(context.Background(), bench.Config{Scenario: tc.scenario, Target: target, ClientID: tc.client,
				ClientSecret: secret, Connections: 4, Duration: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK() || res.Statuses[200] != res.Requests || res.RPS <= 0 || res.Latency["p99"] <= 0 {
				t.Errorf("result %+v", res)
			}
		})
	}
}

func TestWrongAnswersFailTheRun(t *testing.T) {
	target := providerURL(t)
	_, err := bench.Run(context.Background(), bench.Config{Scenario: bench.Token, Target: target, ClientID: "jwt",
		ClientSecret: "not-the-secret-not-the-secret-000000", Connections: 1, Duration: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a run whose every answer is 401 = %v, want an error naming it", err)
	}
	if err := (&bench.Config{Scenario: "nope", Target: "x", Connections: 0}).Validate(); err == nil {
		t.Error("bad config accepted")
	}
}

// With --server-pid the run reports the server's CPU time per request
// (here the server is this process, so it includes the load's own).
func TestServerCPU(t *testing.T) {
	target := providerURL(t)
	res, err := bench.Run(context.Background(), bench.Config{Scenario: bench.Token, Target: target, ClientID: "jwt",
		ClientSecret: secret, Connections: 4, Duration: 500 * time.Millisecond, ServerPID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if res.ServerCPU <= 0 || res.CPUPerRequest <= 0 || res.CPUPerRequest > res.ServerCPU {
		t.Errorf("server CPU %v, per request %v", res.ServerCPU, res.CPUPerRequest)
	}
	if _, err := bench.Run(context.Background(), bench.Config{Scenario: bench.JWKS, Target: target, Connections: 1,
		Duration: 100 * time.Millisecond, ServerPID: 1 << 30}); err == nil {
		t.Error("a server PID that does not exist was accepted")
	}
}
