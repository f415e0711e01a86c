package edge_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/edge"
	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage"
	"github.com/oidcgate/oidcgate/provider/storage/memory"
	"github.com/oidcgate/oidcgate/provider/storage/storagetest"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

const (
	secret = "edge-test-secret-edge-test-secret-0123"
	api    = "https://api.example.com"
)

// serve runs h on a loopback port until the test ends.
func serve(t testing.TB, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// upstream records what reached it.
type upstream struct {
	mu        sync.Mutex
	last      http.Header
	host, uri string // of the last request, as it arrived
	hits      int
}

func (u *upstream) handler(ctx *fasthttp.RequestCtx) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.hits++
	u.last = http.Header{}
	ctx.Request.Header.VisitAll(func(k, v []byte) { u.last.Add(string(k), string(v)) })
	u.host, u.uri = string(ctx.Request.Header.Host()), string(ctx.Request.Header.RequestURI())
	ctx.SetBodyString("from upstream")
}

func (u *upstream) header() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

// world is a provider, an upstream and an edge, all on loopback.
type world struct {
	registry *prometheus.Registry
	issuer   string
	ring     *keys.Ring
	p        *provider.Provider
	up       *upstream
	edgeURL  string
	edge     *edge.Edge
	jwks     *edge.RemoteKeys
	clock    *storagetest.WallClock
	provider func() // stops the provider's listener
	store    storage.Storage
}

type worldOpts struct {
	routes      string // YAML; empty: default routes for api
	negativeTTL time.Duration
	introTTL    time.Duration
	minRefresh  time.Duration
	maxRefresh  time.Duration
	proxyKind   string // Config.ForwardAuthProxy
	maxStale    time.Duration
	prePublish  time.Duration
	reload      time.Duration
	upstream    string   // the upstream's URL; empty: the recording upstream
	certHeader  string   // Config.ClientCertHeader
	certProxies []string // Config.ClientCertProxies
}

func newWorld(t testing.TB, o worldOpts) *world {
	t.Helper()
	if o.negativeTTL == 0 {
		o.negativeTTL = 5 * time.Second
	}
	if o.introTTL == 0 {
		o.introTTL = time.Minute
	}
	if o.minRefresh == 0 {
		o.minRefresh = 30 * time.Second
	}
	if o.maxStale == 0 {
		o.maxStale = 24 * time.Hour
	}
	if o.prePublish == 0 {
		o.prePublish, o.reload = time.Hour, 10*time.Second
	}
	ctx := context.Background()
	w := &world{up: &upstream{}, clock: &storagetest.WallClock{}}
	store := memory.New(time.Now)
	w.store = store
	kek := make([]byte, keys.KEKSize)
	rand.Read(kek)
	ring, err := keys.NewRing(ctx, keys.Config{Algs: []string{keys.ES256, keys.RS256, keys.EdDSA}, RSABits: 2048,
		RotationPeriod: 720 * time.Hour, PrePublish: o.prePublish, RetireGrace: 2 * time.Hour, ReloadInterval: o.reload, KEK: kek},
		store, discard, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	w.ring = ring

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.issuer = "http://" + ln.Addr().String()
	p, err := provider.New(provider.Config{Issuer: w.issuer, AccessTokenTTL: time.Hour, AccessTokenAlg: keys.ES256,
		ClientCacheTTL: time.Minute, GCInterval: time.Minute, Argon2: provider.DefaultArgon2()}, store, ring, discard,
		prometheus.NewRegistry(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	w.p = p
	psrv := &fasthttp.Server{Handler: p.Public()}
	go psrv.Serve(ln)
	var once sync.Once
	w.provider = func() { once.Do(func() { psrv.Shutdown(); ln.Close() }) }
	t.Cleanup(func() { w.provider(); p.Close() })
	for _, spec := range []provider.ClientSpec{
		{ID: "svc", Secret: secret, Scopes: []string{"read", "write"}, Audiences: []string{api, "https://other.example.com"}, DefaultAudience: api},
		{ID: "opaque", Secret: secret, Scopes: []string{"read"}, Audiences: []string{api}, AccessTokenFormat: "opaque"},
		{ID: "edge", Secret: secret, IntrospectAny: true, Audiences: []string{api}},
	} {
		c, _, err := spec.Build(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		store.CreateClient(ctx, c)
	}

	reg := prometheus.NewRegistry()
	w.registry = reg
	w.jwks, err = edge.NewRemoteKeys(edge.RemoteKeysConfig{URL: w.issuer + "/jwks", MinRefresh: o.minRefresh, MaxStale: o.maxStale,
		MaxRefresh: o.maxRefresh, DefaultRefresh: 5 * time.Minute, FetchTimeout: 2 * time.Second}, discard, reg, w.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go w.jwks.Run(rctx)
	in := edge.NewHTTPIntrospector(w.issuer+"/introspect", "edge", secret, 2*time.Second)
	v, err := edge.NewValidator(edge.ValidatorConfig{Issuer: w.issuer, Algs: []string{keys.ES256, keys.RS256, keys.EdDSA},
		Leeway: 30 * time.Second, RequireTyp: true, CacheTTL: 5 * time.Minute, CacheSize: 10_000,
		IntrospectionTTL: o.introTTL, NegativeTTL: o.negativeTTL, KeepClaims: true}, w.jwks, nil, in, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	var routes *edge.Routes
	if o.routes == "" {
		routes, err = edge.DefaultRoutes(api)
	} else {
		path := filepath.Join(t.TempDir(), "routes.yaml")
		os.WriteFile(path, []byte(o.routes), 0o600)
		routes, err = edge.LoadRoutes(path)
	}
	if err != nil {
		t.Fatal(err)
	}
	upURL := o.upstream
	if upURL == "" {
		upURL = serve(t, w.up.handler)
	}
	e, err := edge.New(edge.Config{Upstream: upURL, UpstreamTimeout: 5 * time.Second, ForwardAuthPath: "/_oidcgate/auth",
		Headers: edge.DefaultHeaders(), SendClaims: true, PassAuthorization: false, Clock: w.clock.Now,
		ForwardAuthProxy: o.proxyKind, ClientCertHeader: o.certHeader, ClientCertProxies: o.certProxies}, v, routes, discard, reg)
	if err != nil {
		t.Fatal(err)
	}
	w.edgeURL, w.edge = serve(t, e.Handler()), e
	// Wait for the first JWKS fetch.
	for i := 0; w.jwks.Ready() != nil; i++ {
		if i > 200 {
			t.Fatal("the edge never fetched the JWKS")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return w
}

// get sends a request to the edge.
func (w *world) get(t testing.TB, path string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", w.edgeURL+path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// token gets a real access token from the provider.
func (w *world) token(t testing.TB, client, params string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", w.issuer+"/token", strings.NewReader("grant_type=client_credentials"+params))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	tok, ok := m["access_token"].(string)
	if !ok {
		t.Fatalf("no token: %v", m)
	}
	return tok
}

// sign makes a JWT with the ring's current alg key and the given claims,
// adjusting the standard ones with overrides.
func (w *world) sign(t testing.TB, alg string, overrides map[string]any) string {
	t.Helper()
	now := time.Now().Unix()
	claims := map[string]any{"iss": w.issuer, "sub": "user-1", "aud": api, "exp": now + 300, "iat": now,
		"jti": "j-" + alg, "client_id": "svc", "scope": "read write"}
	for k, v := range overrides {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	payload, _ := json.Marshal(claims)
	tok, err := w.ring.Sign(alg, "at+jwt", payload)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func (w *world) reg() *prometheus.Registry { return w.registry }
