package edge_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/edge"
	"github.com/oidcgate/oidcgate/keys"
)

// proxyTo builds an edge over a ring that proxies to upstream.
func proxyTo(t *testing.T, upstream string, timeout time.Duration) (edgeURL string, token string) {
	t.Helper()
	r := benchRing(t)
	v := benchValidator(t, r, time.Minute)
	routes, _ := edge.DefaultRoutes(api)
	e, err := edge.New(edge.Config{Upstream: upstream, UpstreamTimeout: timeout, ForwardAuthPath: "/_oidcgate/auth",
		Headers: edge.DefaultHeaders(), PassAuthorization: true}, v, routes, slog.New(slog.NewTextHandler(io.Discard, nil)),
		prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, e.Handler()), benchToken(t, r, keys.ES256)
}

func TestProxyUpstreamFailures(t *testing.T) {
	// Nothing listens on a port we just closed.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	edgeURL, tok := proxyTo(t, dead, time.Second)
	req, _ := http.NewRequest("GET", edgeURL+"/x", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 {
		t.Errorf("upstream down: %d, want 502", resp.StatusCode)
	}

	slow := serve(t, func(ctx *fasthttp.RequestCtx) { time.Sleep(2 * time.Second); ctx.SetBodyString("late") })
	edgeURL, tok = proxyTo(t, slow, 200*time.Millisecond)
	req, _ = http.NewRequest("GET", edgeURL+"/x", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 504 {
		t.Errorf("upstream too slow: %d, want 504", resp.StatusCode)
	}
}

func TestProxyPreservesRequestAndStripsHopByHop(t *testing.T) {
	type seen struct {
		method, uri, body string
		header            http.Header
	}
	got := make(chan seen, 1)
	up := serve(t, func(ctx *fasthttp.RequestCtx) {
		h := http.Header{}
		ctx.Request.Header.VisitAll(func(k, v []byte) { h.Add(string(k), string(v)) })
		got <- seen{string(ctx.Method()), string(ctx.RequestURI()), string(ctx.PostBody()), h}
		ctx.Response.Header.Set("Keep-Alive", "timeout=5")
		ctx.Response.Header.Set("X-Upstream", "yes")
		ctx.SetStatusCode(201)
	})
	edgeURL, tok := proxyTo(t, up, time.Second)
	req, _ := http.NewRequestWithContext(context.Background(), "PUT", edgeURL+"/things/1?x=1&y=2", strings.NewReader("payload"))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Connection", "keep-alive, X-Private")
	req.Header.Set("X-Private", "hop")
	req.Header.Set("Proxy-Authorization", "secret")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("X-Custom", "kept")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 || resp.Header.Get("X-Upstream") != "yes" || resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("response: %d %v", resp.StatusCode, resp.Header)
	}
	s := <-got
	if s.method != "PUT" || s.uri != "/things/1?x=1&y=2" || s.body != "payload" {
		t.Errorf("upstream saw %s %s %q", s.method, s.uri, s.body)
	}
	for _, h := range []string{"X-Private", "Proxy-Authorization"} {
		if s.header.Get(h) != "" {
			t.Errorf("hop-by-hop header %s reached the upstream", h)
		}
	}
	if s.header.Get("X-Custom") != "kept" || s.header.Get("Authorization") == "" {
		t.Errorf("end-to-end headers lost: %v", s.header)
	}
	if xff := s.header.Get("X-Forwarded-For"); !strings.HasPrefix(xff, "203.0.113.7, 127.0.0.1") {
		t.Errorf("X-Forwarded-For = %q, want the client's appended", xff)
	}
}
