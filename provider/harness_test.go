package provider_test

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
	"github.com/oidcgate/oidcgate/provider/storage/memory"
	"github.com/oidcgate/oidcgate/provider/storage/postgres"
	"github.com/oidcgate/oidcgate/provider/storage/postgres/pgtest"
	"github.com/oidcgate/oidcgate/provider/storage/storagetest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

const (
	secret       = "s3cret-s3cret-s3cret-s3cret-s3cret-42"
	otherSecret  = "another-secret-another-secret-0123456"
	api          = "https://api.example.com"
	maxBody      = 16 << 10
	testAccessTT = 5 * time.Minute

	rpRedirect    = "https://rp.example.com/cb"
	alicePassword = "correct horse battery"
)

// server is a provider behind a real loopback listener.
type server struct {
	issuer string
	admin  string
	store  storage.Storage
	p      *provider.Provider
	ring   *keys.Ring
	reg    *prometheus.Registry
	clock  *storagetest.WallClock // the time the provider, its ring and its store read
	// adminToken authenticates to the admin API (adminDo).
	adminToken string
	// stop shuts the provider down (as at the test's end); runCtx is what
	// run's background work lives by.
	stop   func()
	runCtx context.Context
}

// testKEK is the key-encryption key of every provider the tests start.
var testKEK = func() []byte {
	k := make([]byte, keys.KEKSize)
	rand.Read(k)
	return k
}()

// run starts the provider's background work (clean-up, back-channel
// logout delivery) until the test or stop ends it.
func (s *server) run() { go s.p.Run(s.runCtx) }

// adminDo is an admin API request with the harness's token.
func (s *server) adminDo(t testing.TB, method, path string) response {
	t.Helper()
	return s.adminAs(t, s.adminToken, method, path)
}

// adminAs is an admin API request with token ("": none).
func (s *server) adminAs(t testing.TB, token, method, path string) response {
	t.Helper()
	return s.adminSend(t, token, method, path, "", "")
}

// adminJSON is an admin API request with a JSON body (a merge patch for
// PATCH), with the harness's token.
func (s *server) adminJSON(t testing.TB, method, path, body string) response {
	t.Helper()
	ct := "application/json"
	if method == "PATCH" {
		ct = "application/merge-patch+json"
	}
	return s.adminSend(t, s.adminToken, method, path, ct, body)
}

// adminSend makes an admin API request and checks its answer against the
// OpenAPI document (admin_openapi.yaml): every admin test is also a test
// of the document.
func (s *server) adminSend(t testing.TB, token, method, path, contentType, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, s.admin+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	checkAdminAnswer(t, method, path, body, contentType, resp, b)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// clocked is a store opened on a test clock, which start then gives the
// provider and its ring too.
type clocked struct {
	storage.Storage
	clock *storagetest.WallClock
}

type backend struct {
	name string
	open func(t testing.TB) storage.Storage
}

func backends() []backend {
	return []backend{
		{"memory", func(t testing.TB) storage.Storage {
			c := &storagetest.WallClock{}
			return clocked{memory.New(c.Now), c}
		}},
		{"postgres", func(t testing.TB) storage.Storage {
			c := &storagetest.WallClock{}
			s, err := postgres.Open(context.Background(), postgres.Config{URL: pgtest.SchemaURL(t), AutoMigrate: true}, c.Now)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return clocked{s, c}
		}},
	}
}

type option func(*provider.Config)

// atLocalhost names the issuer http://localhost:port (it listens on
// 127.0.0.1): WebAuthn needs a domain, browsers refuse an IP address.
func atLocalhost(c *provider.Config) {
	u, _ := url.Parse(c.Issuer)
	c.Issuer = "http://localhost:" + u.Port()
}

func withPasskeys(c *provider.Config) { c.Passkeys = true }

func withAlg(alg string) option { return func(c *provider.Config) { c.AccessTokenAlg = alg } }

func withRefresh(idle, grace time.Duration) option {
	return func(c *provider.Config) { c.RefreshIdleTTL, c.RefreshReuseGrace = idle, grace }
}

// start runs a provider over store on a loopback port, with the standard
// test clients registered.
func start(t testing.TB, store storage.Storage, opts ...option) *server {
	t.Helper()
	return startLogged(t, store, discard, opts...)
}

// startLogged is start with the provider logging to log.
func startLogged(t testing.TB, store storage.Storage, log *slog.Logger, opts ...option) *server {
	t.Helper()
	return startAt(t, "127.0.0.1", store, log, opts...)
}

// startAt is startLogged on a loopback address of its own (127.0.0.2, …),
// so two providers in one test keep their cookies apart in one browser.
func startAt(t testing.TB, host string, store storage.Storage, log *slog.Logger, opts ...option) *server {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	clk := &storagetest.WallClock{}
	if c, ok := store.(clocked); ok {
		clk = c.clock
	}
	kek := testKEK // one for every provider of the test binary: a restarted one opens its predecessor's keys
	ring, err := keys.NewRing(context.Background(), keys.Config{
		Algs: []string{keys.ES256, keys.RS256, keys.EdDSA}, RSABits: 2048, RotationPeriod: 720 * time.Hour,
		PrePublish: time.Hour, RetireGrace: 2 * time.Hour, ReloadInterval: 10 * time.Second, KEK: kek,
	}, store, discard, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := provider.Config{Issuer: issuer, AccessTokenTTL: testAccessTT, AccessTokenAlg: keys.ES256,
		ClientCacheTTL: time.Minute, GCInterval: time.Minute, Argon2: provider.Argon2Params{Time: 1, Memory: 8 * 1024, Threads: 1}}
	for _, o := range opts {
		o(&cfg)
	}
	issuer = cfg.Issuer
	reg := prometheus.NewRegistry()
	p, err := provider.New(cfg, store, ring, log, reg, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: p.Public(), ErrorHandler: oauth.RejectMalformed, MaxRequestBodySize: maxBody,
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	go srv.Serve(ln)
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	asrv := &fasthttp.Server{Handler: p.Admin()}
	go asrv.Serve(aln)
	runCtx, stopRun := context.WithCancel(context.Background())
	var once sync.Once
	stop := func() { once.Do(func() { stopRun(); srv.Shutdown(); asrv.Shutdown(); p.Close() }) }
	t.Cleanup(stop)
	s := &server{issuer: issuer, admin: "http://" + aln.Addr().String(), store: store, p: p, ring: ring, reg: reg, clock: clk,
		stop: stop, runCtx: runCtx}
	token, rec := provider.NewAdminToken("tests-"+random(), 0, clk.Now())
	if err := store.CreateAdminToken(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	s.adminToken = token
	s.register(t, provider.ClientSpec{ID: "svc", Secret: secret, Scopes: []string{"read", "write"},
		Audiences: []string{api, "https://billing.example.com"}, DefaultAudience: api})
	s.register(t, provider.ClientSpec{ID: "svc-post", Secret: secret, TokenEndpointAuthMethod: "client_secret_post",
		Scopes: []string{"read"}, Audiences: []string{api}})
	s.register(t, provider.ClientSpec{ID: "opaque", Secret: secret, Scopes: []string{"read"}, Audiences: []string{api},
		AccessTokenFormat: "opaque"})
	s.register(t, provider.ClientSpec{ID: "other", Secret: otherSecret, Scopes: []string{"read"}, Audiences: []string{api}})
	s.register(t, provider.ClientSpec{ID: "resource-server", Secret: secret, IntrospectAny: true, Audiences: []string{api}})
	s.register(t, provider.ClientSpec{ID: "spa", Public: true, RedirectURIs: []string{"https://spa.example.com/cb"}})
	s.register(t, provider.ClientSpec{ID: "web", Name: "Web App", Secret: secret, RedirectURIs: []string{rpRedirect},
		PostLogoutRedirectURIs: []string{"https://rp.example.com/bye"}, GrantTypes: []string{"authorization_code", "refresh_token"},
		Scopes: []string{"openid", "profile", "email", "offline_access"}})
	s.register(t, provider.ClientSpec{ID: "native", Public: true, RedirectURIs: []string{"http://127.0.0.1/cb"},
		Scopes: []string{"openid", "profile", "offline_access"}})
	hash, _ := provider.HashPassword(alicePassword, provider.Argon2Params{Time: 1, Memory: 8 * 1024, Threads: 1})
	store.CreateUser(context.Background(), &storage.User{ID: "alice-sub", Username: "alice", PasswordHash: hash,
		Claims: map[string]any{"name": "Alice Example", "email": "alice@example.com", "email_verified": true}})
	return s
}

func (s *server) register(t testing.TB, spec provider.ClientSpec) {
	t.Helper()
	c, _, err := spec.Build(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	err = s.store.CreateClient(context.Background(), c)
	if errors.Is(err, storage.ErrAlreadyExists) { // a restarted provider on its predecessor's store
		err = s.store.UpdateClient(context.Background(), c)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs from the golden file:\n got: %s\nwant: %s", name, got, want)
	}
}

// bareProvider is a provider for issuer over store (ES256 and RS256 keys),
// for tests that drive it without the harness's listeners and clients.
func bareProvider(t testing.TB, issuer string, store storage.Storage, opts ...option) *provider.Provider {
	t.Helper()
	kek := make([]byte, keys.KEKSize)
	rand.Read(kek)
	ring, err := keys.NewRing(context.Background(), keys.Config{Algs: []string{keys.ES256, keys.RS256}, RSABits: 2048,
		RotationPeriod: 720 * time.Hour, PrePublish: time.Hour, RetireGrace: 2 * time.Hour, ReloadInterval: 10 * time.Second,
		KEK: kek}, store, discard, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := provider.Config{Issuer: issuer, AccessTokenTTL: time.Hour, AccessTokenAlg: keys.ES256,
		ClientCacheTTL: time.Hour, GCInterval: time.Minute, Argon2: provider.DefaultArgon2()}
	for _, o := range opts {
		o(&cfg)
	}
	p, err := provider.New(cfg, store, ring, discard, prometheus.NewRegistry(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
