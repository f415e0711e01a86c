package edge_test

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oidcgate/oidcgate/edge"
	"github.com/oidcgate/oidcgate/keys"
)

// thirdParty answers introspection as another provider would: the token is
// active, and it is a refresh token (Hydra's token_use, Keycloak-style
// token_type).
type thirdParty struct{ res edge.Introspection }

func (p thirdParty) Introspect(context.Context, string) (*edge.Introspection, error) {
	r := p.res
	return &r, nil
}

// TestRefreshTokenIsNoAccessToken: a refresh token presented at the edge is
// refused even when introspection calls it active.
func TestRefreshTokenIsNoAccessToken(t *testing.T) {
	route := &edge.Route{PathPrefix: "/", Token: edge.TokenEither}
	for _, tc := range []struct {
		name string
		res  edge.Introspection
		want int
	}{
		{"token_use refresh_token", edge.Introspection{Active: true, Sub: "u", Exp: time.Now().Add(time.Hour).Unix(), TokenUse: "refresh_token"}, 401},
		{"token_type refresh_token", edge.Introspection{Active: true, Sub: "u", Exp: time.Now().Add(time.Hour).Unix(), TokenType: "refresh_token"}, 401},
		{"an access token", edge.Introspection{Active: true, Sub: "u", Exp: time.Now().Add(time.Hour).Unix(), TokenType: "Bearer", TokenUse: "access_token"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := edge.NewValidator(edge.ValidatorConfig{Issuer: benchIssuer, Algs: benchAlgs, Leeway: 30 * time.Second,
				CacheTTL: time.Minute, CacheSize: 1000, IntrospectionTTL: time.Minute, NegativeTTL: time.Second},
				benchRing(t), nil, thirdParty{tc.res}, prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			if _, d := v.Check(context.Background(), time.Now(), []byte("Bearer an-opaque-token"), route); d.Status != tc.want {
				t.Errorf("%+v, want %d", d, tc.want)
			}
		})
	}
}

// raw sends exactly these request bytes to addr and returns the status.
func raw(t *testing.T, baseURL, request string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(request)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestPathConfusion: paths the edge and the upstream could read apart —
// here /admin/..%2fpublic/x, which an upstream router decoding after
// routing sends to /admin — are refused, through the proxy and through
// forward-auth with nginx- and Traefik-style headers; route prefixes end at
// segment boundaries.
func TestPathConfusion(t *testing.T) {
	w := newWorld(t, worldOpts{routes: routesYAML})
	for _, target := range []string{"/admin/..%2fpublic/x", "/admin/..%2Fpublic/x", "/public/..%2fadmin", "/public/%2e%2e/admin",
		"/public/../admin", "/public/./x", "//admin", "/public;x=1/../admin", "/public/%252e%252e/admin", "/public\\..\\admin",
		"/public/x%00"} {
		if st := raw(t, w.edgeURL, "GET "+target+" HTTP/1.1\r\nHost: x\r\n\r\n"); st != 400 {
			t.Errorf("proxy %s: %d, want 400", target, st)
		}
		for _, h := range []string{"X-Original-URI", "X-Forwarded-Uri"} {
			if st := raw(t, w.edgeURL, "GET /_oidcgate/auth HTTP/1.1\r\nHost: x\r\n"+h+": "+target+"\r\n\r\n"); st != 400 {
				t.Errorf("forward-auth %s %s: %d, want 400", h, target, st)
			}
		}
	}
	if w.up.hits != 0 {
		t.Errorf("%d ambiguous requests reached the upstream", w.up.hits)
	}
	// Segment-bounded prefixes: /publicadmin is not under /public.
	if st := raw(t, w.edgeURL, "GET /publicadmin HTTP/1.1\r\nHost: x\r\n\r\n"); st == 200 {
		t.Error("/publicadmin matched the public /public rule")
	}
	if st := raw(t, w.edgeURL, "GET /public/ok HTTP/1.1\r\nHost: x\r\n\r\n"); st != 200 {
		t.Errorf("/public/ok: %d", st)
	}
	// Percent-encoded ordinary characters keep their segments: matched decoded.
	if st := raw(t, w.edgeURL, "GET /%61dmin/x HTTP/1.1\r\nHost: x\r\n\r\n"); st != 401 {
		t.Errorf("/%%61dmin/x without a token: %d, want 401 (the /admin rule)", st)
	}
}

// TestForwardAuthHeaderTrust: Traefik copies a client's X-Original-URI into
// the auth request beside its own X-Forwarded-Uri; the edge refuses the
// disagreement, or — told the proxy kind — reads only that proxy's header.
func TestForwardAuthHeaderTrust(t *testing.T) {
	spoof := "GET /_oidcgate/auth HTTP/1.1\r\nHost: x\r\nX-Original-URI: /public/x\r\nX-Forwarded-Uri: /admin/x\r\nX-Forwarded-Method: GET\r\n\r\n"
	if st := raw(t, newWorld(t, worldOpts{routes: routesYAML}).edgeURL, spoof); st != 400 {
		t.Errorf("both headers, no proxy kind: %d, want 400", st)
	}
	if st := raw(t, newWorld(t, worldOpts{routes: routesYAML, proxyKind: edge.ProxyTraefik}).edgeURL, spoof); st != 401 {
		t.Errorf("traefik: %d, want 401 (the /admin rule, the client's header ignored)", st)
	}
	nginx := newWorld(t, worldOpts{routes: routesYAML, proxyKind: edge.ProxyNginx})
	if st := raw(t, nginx.edgeURL, "GET /_oidcgate/auth HTTP/1.1\r\nHost: x\r\nX-Original-URI: /admin/x\r\nX-Forwarded-Uri: /public/x\r\n\r\n"); st != 401 {
		t.Errorf("nginx: %d, want 401", st)
	}
	if st := raw(t, nginx.edgeURL, "GET /_oidcgate/auth/public/x HTTP/1.1\r\nHost: x\r\n\r\n"); st != 400 {
		t.Errorf("nginx without X-Original-URI: %d, want 400", st)
	}
}

// TestIdentityHeadersSurviveTheClient: a client's Connection header naming
// an identity header, its underscore spellings of them, two Authorization
// headers, and its Host: none reach the upstream as sent.
func TestIdentityHeadersSurviveTheClient(t *testing.T) {
	w := newWorld(t, worldOpts{routes: routesYAML})
	tok := w.sign(t, keys.ES256, nil)
	req := "GET /api/x HTTP/1.1\r\nHost: attacker.example\r\nAuthorization: Bearer " + tok + "\r\n" +
		"Connection: keep-alive, X-Auth-Subject, X-Auth-Scopes\r\nX_Auth_Subject: admin\r\nx_auth_scopes: admin\r\n\r\n"
	if st := raw(t, w.edgeURL, req); st != 200 {
		t.Fatalf("%d", st)
	}
	h := w.up.header()
	if h.Get("X-Auth-Subject") != "user-1" || h.Get("X-Auth-Scopes") != "read write" {
		t.Errorf("identity headers at the upstream: subject %q scopes %q", h.Get("X-Auth-Subject"), h.Get("X-Auth-Scopes"))
	}
	for k := range h {
		if strings.Contains(k, "_") {
			t.Errorf("an underscore spelling reached the upstream: %s: %v", k, h[k])
		}
	}
	w.up.mu.Lock()
	host := w.up.host
	w.up.mu.Unlock()
	if host == "attacker.example" || h.Get("X-Forwarded-Host") != "attacker.example" {
		t.Errorf("upstream Host %q, X-Forwarded-Host %q", host, h.Get("X-Forwarded-Host"))
	}
	// Absolute-form target: the upstream still gets its own host.
	if st := raw(t, w.edgeURL, "GET http://attacker.example/api/x HTTP/1.1\r\nHost: attacker.example\r\nAuthorization: Bearer "+tok+"\r\n\r\n"); st != 200 {
		t.Fatalf("absolute form: %d", st)
	}
	w.up.mu.Lock()
	host, uri := w.up.host, w.up.uri
	w.up.mu.Unlock()
	if host == "attacker.example" || strings.Contains(uri, "attacker") {
		t.Errorf("absolute form: upstream Host %q, URI %q", host, uri)
	}
	dup := "GET /api/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nAuthorization: Bearer other\r\n\r\n"
	if st := raw(t, w.edgeURL, dup); st != 400 {
		t.Errorf("two Authorization headers through the proxy: %d, want 400", st)
	}
	dupFA := "GET /_oidcgate/auth HTTP/1.1\r\nHost: x\r\nX-Original-URI: /api/x\r\nAuthorization: Bearer " + tok + "\r\nAuthorization: Bearer other\r\n\r\n"
	if st := raw(t, w.edgeURL, dupFA); st != 400 {
		t.Errorf("two Authorization headers at forward-auth: %d, want 400", st)
	}
}

// panicking is an introspection endpoint client that panics: a bug in any
// part of a request's handling.
type panicking struct{}

func (panicking) Introspect(context.Context, string) (*edge.Introspection, error) {
	panic("introspector bug")
}

// TestPanicIsRecovered: a panic while serving a request is that request's
// 500, with the request ID it is logged under; the sidecar keeps serving.
func TestPanicIsRecovered(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(b)
	}), nil))
	r := benchRing(t)
	v, err := edge.NewValidator(edge.ValidatorConfig{Issuer: benchIssuer, Algs: benchAlgs, Leeway: 30 * time.Second,
		CacheTTL: time.Minute, CacheSize: 1000, IntrospectionTTL: time.Minute, NegativeTTL: time.Second},
		r, nil, panicking{}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	routes, _ := edge.DefaultRoutes(api)
	e, err := edge.New(edge.Config{ForwardAuthPath: "/_oidcgate/auth", Headers: edge.DefaultHeaders()}, v, routes, log,
		prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, e.Handler())
	get := func(tok string) *http.Response {
		req, _ := http.NewRequest("GET", url+"/_oidcgate/auth/x", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := get("an-opaque-token")
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 500 || id == "" {
		t.Fatalf("a panicking request: %d, request ID %q", resp.StatusCode, id)
	}
	mu.Lock()
	logged := logs.String()
	mu.Unlock()
	if !strings.Contains(logged, "introspector bug") || !strings.Contains(logged, id) {
		t.Errorf("the panic is not logged under its request ID %s:\n%s", id, logged)
	}
	if resp := get(benchToken(t, r, keys.ES256)); resp.StatusCode != 200 {
		t.Errorf("after the panic: %d", resp.StatusCode)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
