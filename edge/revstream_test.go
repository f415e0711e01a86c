package edge_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oidcgate/oidcgate/edge"
	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// cuttable is a TCP proxy on loopback that can be cut (listener and every
// connection closed) and restored on the same address.
type cuttable struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newCuttable(t *testing.T, target string) *cuttable {
	c := &cuttable{t: t, target: target}
	c.restore()
	t.Cleanup(c.cut)
	return c
}

func (c *cuttable) restore() {
	addr := c.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.ln, c.addr = ln, ln.Addr().String()
	c.mu.Unlock()
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", c.target)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
}

func (c *cuttable) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ln != nil {
		c.ln.Close()
		c.ln = nil
	}
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

// pushedEdge is an edge in front of w's upstream following w's revocation
// stream at streamURL.
func pushedEdge(t *testing.T, w *world, streamURL string, failClosed bool) (*world, *edge.PushedRevocations) {
	t.Helper()
	reg := prometheus.NewRegistry()
	pushed, err := edge.NewPushedRevocations(edge.RevocationStreamConfig{URL: streamURL, ClientID: "edge", ClientSecret: secret,
		MaxGap: time.Second, FailClosed: failClosed}, discard, reg, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go pushed.Run(ctx)
	v, err := edge.NewValidator(edge.ValidatorConfig{Issuer: w.issuer, Algs: []string{keys.ES256, keys.RS256, keys.EdDSA}, Leeway: 30 * time.Second,
		RequireTyp: true, CacheTTL: 5 * time.Minute, CacheSize: 1000, IntrospectionTTL: time.Minute, NegativeTTL: 5 * time.Second},
		w.jwks, pushed, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	routes, _ := edge.DefaultRoutes(api)
	e, err := edge.New(edge.Config{Upstream: serve(t, w.up.handler), UpstreamTimeout: 5 * time.Second, ForwardAuthPath: "/_oidcgate/auth",
		Headers: edge.DefaultHeaders()}, v, routes, discard, reg)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "the first read of the stream", func() bool { return pushed.Ready() == nil })
	return &world{edgeURL: serve(t, e.Handler()), registry: reg}, pushed
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func status(t *testing.T, e *world, tok string) int {
	t.Helper()
	resp, _ := e.get(t, "/api/x", bearer(tok)...)
	return resp.StatusCode
}

// TestPushedRevocation: a standalone edge following the revocation stream
// refuses a token it has cached within 2 s of its revocation at the
// provider (RFC 7009), and a whole grant (its family), with no call to the
// provider per request.
func TestPushedRevocation(t *testing.T) {
	w := newWorld(t, worldOpts{})
	e, _ := pushedEdge(t, w, w.issuer+"/revocations", false)
	tok := w.token(t, "svc", "")
	if st := status(t, e, tok); st != 200 {
		t.Fatalf("before: %d", st)
	}
	revoke(t, w, tok)
	took := waitUntil(t, 2*time.Second, "the revoked token refused", func() bool { return status(t, e, tok) == 401 })
	t.Logf("refused %s after its revocation", took)
	// A grant: every token of the family.
	fam := w.sign(t, keys.ES256, map[string]any{"fid": "grant-1", "jti": "g-1"})
	if st := status(t, e, fam); st != 200 {
		t.Fatalf("a family token before: %d", st)
	}
	w.store.RevokeJTI(context.Background(), &storage.Revocation{JTI: "family:grant-1", ExpiresAt: time.Now().Add(time.Hour)})
	waitUntil(t, 2*time.Second, "the revoked grant refused", func() bool { return status(t, e, fam) == 401 })
	if st := status(t, e, w.token(t, "svc", "")); st != 200 {
		t.Errorf("another token: %d", st)
	}
}

// TestPushedRevocationAcrossACut: acceptance 3 — with the stream cut for
// 60 s and revocations made meanwhile, the edge keeps serving what it
// knows (fail-open, the default) and refuses every revoked token within
// 2 s of the stream's return: it resumes where it stopped.
func TestPushedRevocationAcrossACut(t *testing.T) {
	w := newWorld(t, worldOpts{})
	proxy := newCuttable(t, w.issuer[len("http://"):])
	e, _ := pushedEdge(t, w, "http://"+proxy.addr+"/revocations", false)
	toks := []string{w.token(t, "svc", ""), w.token(t, "svc", ""), w.token(t, "svc", "")}
	for _, tok := range toks {
		if st := status(t, e, tok); st != 200 {
			t.Fatalf("before: %d", st)
		}
	}
	proxy.cut()
	time.Sleep(500 * time.Millisecond)
	revoke(t, w, toks[0])
	time.Sleep(30 * time.Second)
	revoke(t, w, toks[1])
	time.Sleep(29 * time.Second)
	if st := status(t, e, toks[0]); st != 200 {
		t.Errorf("fail-open: a cached token while cut off: %d", st)
	}
	proxy.restore()
	took := waitUntil(t, 2*time.Second, "both revocations made while cut off", func() bool {
		return status(t, e, toks[0]) == 401 && status(t, e, toks[1]) == 401
	})
	t.Logf("refused %s after the stream's return", took)
	if st := status(t, e, toks[2]); st != 200 {
		t.Errorf("the token not revoked: %d", st)
	}
}

// TestPushedRevocationFailClosed: cut off past the gap with FailClosed,
// the edge answers 503, and serves again once the stream is back.
func TestPushedRevocationFailClosed(t *testing.T) {
	w := newWorld(t, worldOpts{})
	proxy := newCuttable(t, w.issuer[len("http://"):])
	e, _ := pushedEdge(t, w, "http://"+proxy.addr+"/revocations", true)
	tok := w.token(t, "svc", "")
	if st := status(t, e, tok); st != 200 {
		t.Fatalf("before: %d", st)
	}
	proxy.cut()
	waitUntil(t, 25*time.Second, "503 once cut off past the gap", func() bool { return status(t, e, tok) == 503 })
	proxy.restore()
	waitUntil(t, 25*time.Second, "served again", func() bool { return status(t, e, tok) == 200 })
}

// revoke is RFC 7009 at w's provider, by the token's client.
func revoke(t *testing.T, w *world, tok string) {
	t.Helper()
	resp, err := postForm(w.issuer+"/revoke", "token="+tok, "svc", secret)
	if err != nil || resp != 200 {
		t.Fatalf("revoke: %d %v", resp, err)
	}
}

func postForm(u, body, user, pass string) (int, error) {
	req, _ := http.NewRequest("POST", u, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
