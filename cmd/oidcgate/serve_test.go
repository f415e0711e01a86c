package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/oauth"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with the given
// serial number.
func writeCert(t *testing.T, certFile, keyFile string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  nil,
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Write to temporary names and rename, as cert-manager and certbot do.
	for file, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: kb}} {
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func servedSerial(t *testing.T, addr string) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestTLSCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, certFile, keyFile, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	certs, err := newCertReloader(certFile, keyFile, log)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Now()}
	certs.now = clk.now

	cfg := defaultServeConfig()
	s, err := listen("public", "127.0.0.1:0", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("hi") }, nil, cfg, certs, log)
	if err != nil {
		t.Fatal(err)
	}
	serving(t, log, s)
	addr := s.ln.Addr().String()

	if got := servedSerial(t, addr); got != 1 {
		t.Fatalf("serial = %d, want 1", got)
	}
	writeCert(t, certFile, keyFile, 2)
	clk.advance(2 * time.Second)
	if got := servedSerial(t, addr); got != 2 {
		t.Fatalf("after replacing the files: serial = %d, want 2", got)
	}

	// A broken pair on disk keeps the good certificate in service.
	os.WriteFile(keyFile, []byte("not a key"), 0o600)
	clk.advance(2 * time.Second)
	if got := servedSerial(t, addr); got != 2 {
		t.Fatalf("after a broken key file: serial = %d, want 2 still", got)
	}

	// TLS below 1.2 is refused.
	if conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		conn.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
}

func TestOversizedBodyRejected(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := defaultServeConfig()
	cfg.MaxRequestBodySize = 1024
	s, err := listen("public", "127.0.0.1:0", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("hi") }, oauth.RejectMalformed, cfg, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	serving(t, log, s)

	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://" + s.ln.Addr().String() + "/")
	req.Header.SetMethod("POST")
	req.SetBody(make([]byte, 4096))
	if err := fasthttp.Do(req, resp); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != fasthttp.StatusBadRequest || !strings.Contains(string(resp.Body()), `"error":"invalid_request"`) {
		t.Errorf("oversized body: %d %s, want 400 invalid_request", resp.StatusCode(), resp.Body())
	}
}

// TestShutdownDrainsInFlight: on shutdown the listener stops accepting, a
// request already being served still gets its answer, and serveAll returns.
func TestShutdownDrainsInFlight(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	started := make(chan struct{})
	s, err := listen("public", "127.0.0.1:0", func(ctx *fasthttp.RequestCtx) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		ctx.SetBodyString("finished")
	}, nil, defaultServeConfig(), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- serveAll(ctx, &lifecycle{}, []*server{s}, shutdown{drain: 5 * time.Second}, log) }()
	addr := s.ln.Addr().String()

	got := make(chan string, 1)
	go func() {
		status, body, err := fasthttp.Get(nil, "http://"+addr+"/")
		if err != nil {
			got <- err.Error()
			return
		}
		got <- fmt.Sprint(status, " ", string(body))
	}()
	<-started
	cancel() // SIGTERM, as main delivers it
	if r := <-got; r != "200 finished" {
		t.Errorf("in-flight request got %q, want it finished", r)
	}
	if err := <-done; err != nil {
		t.Errorf("serveAll: %v", err)
	}
	if _, _, err := fasthttp.Get(nil, "http://"+addr+"/"); err == nil {
		t.Error("a new connection was accepted after shutdown")
	}
}

// TestShutdownDelayThenDrainTimeoutExitsCleanly: on SIGTERM /readyz turns
// 503 at once while the listeners keep serving for the delay; then a
// request still running when the drain ends is cut, and the exit is clean.
func TestShutdownDelayThenDrainTimeoutExitsCleanly(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	lc := &lifecycle{}
	started := make(chan struct{})
	var once sync.Once
	s, err := listen("public", "127.0.0.1:0", func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/slow" {
			once.Do(func() { close(started) })
			time.Sleep(3 * time.Second)
		}
		ctx.SetBodyString("hi")
	}, nil, defaultServeConfig(), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := listen("ops", "127.0.0.1:0", opsHandler(lc, prometheus.NewRegistry(), nil, nil, log), nil, defaultServeConfig(), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- serveAll(ctx, lc, []*server{s, ops}, shutdown{delay: 500 * time.Millisecond, drain: 200 * time.Millisecond}, log)
	}()
	addr, opsAddr := "http://"+s.ln.Addr().String(), "http://"+ops.ln.Addr().String()
	if status, _, _ := fasthttp.Get(nil, opsAddr+"/readyz"); status != 200 {
		t.Fatalf("/readyz before the signal: %d", status)
	}
	go fasthttp.Get(nil, addr+"/slow")
	<-started
	cancel()
	// During the delay: not ready, still serving.
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, body, err := fasthttp.Get(nil, opsAddr+"/readyz")
		if err == nil && status == 503 && strings.Contains(string(body), "shutting down") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz during the delay: %d %s %v", status, body, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if status, body, err := fasthttp.Get(nil, addr+"/"); err != nil || status != 200 || string(body) != "hi" {
		t.Errorf("a request during the delay: %d %q %v", status, body, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serveAll after a drain timeout: %v, want nil (exit 0)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serveAll did not return")
	}
	if !strings.Contains(logs.String(), "drain timeout") {
		t.Errorf("the cut requests were not logged:\n%s", logs.String())
	}
}

// TestReadyzHidesCheckDetails: a failing check shows its name and a
// generic reason; the driver's message (user, host, port) goes to the log.
func TestReadyzHidesCheckDetails(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	leak := "failed to connect to `user=oidcgate database=prod`: 10.1.2.3:5432: dial error"
	h := opsHandler(&lifecycle{}, prometheus.NewRegistry(), []readiness{{name: "store", check: func(context.Context) error {
		return errors.New(leak)
	}}}, nil, log)
	s, err := listen("ops", "127.0.0.1:0", h, nil, defaultServeConfig(), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	serving(t, log, s)
	status, body, err := fasthttp.Get(nil, "http://"+s.ln.Addr().String()+"/readyz")
	if err != nil {
		t.Fatal(err)
	}
	if status != 503 || !strings.Contains(string(body), "[-] store: not ready") || strings.Contains(string(body), "10.1.2.3") ||
		strings.Contains(string(body), "user=") {
		t.Errorf("/readyz = %d %q", status, body)
	}
	if !strings.Contains(logs.String(), "10.1.2.3") {
		t.Errorf("the detail is not in the log:\n%s", logs.String())
	}
}

// TestMalformedRequestLogsNoCredentials: a request fasthttp cannot parse
// is logged without its bytes, which hold the Authorization header and
// cookies.
func TestMalformedRequestLogsNoCredentials(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	s, err := listen("public", "127.0.0.1:0", func(ctx *fasthttp.RequestCtx) {}, oauth.RejectMalformed, defaultServeConfig(), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	serving(t, log, s)
	for _, raw := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer SECRET-TOKEN-123\r\nCookie: oidcgate_session=SECRET-COOKIE\r\nbroken header line\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic U0VDUkVULVRPS0VOLTEyMw==\r\nContent-Length: 99999999\r\n\r\nxx",
	} {
		conn, err := net.Dial("tcp", s.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte(raw))
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.ReadAll(conn)
		conn.Close()
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for _, secret := range []string{"SECRET-TOKEN-123", "SECRET-COOKIE", "U0VDUkVULVRPS0VOLTEyMw"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds %s:\n%s", secret, logs.String())
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// serving runs servers until the test ends.
func serving(t *testing.T, log *slog.Logger, servers ...*server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- serveAll(ctx, &lifecycle{}, servers, shutdown{drain: time.Second}, log) }()
	t.Cleanup(func() { cancel(); <-done })
}
