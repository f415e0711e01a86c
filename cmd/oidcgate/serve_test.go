package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider"
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
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- serveAll(ctx, []*server{s}, time.Second, log) }()
	defer func() { cancel(); <-done }()
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
	s, err := listen("public", "127.0.0.1:0", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("hi") }, provider.RejectMalformed, cfg, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- serveAll(ctx, []*server{s}, time.Second, log) }()
	defer func() { cancel(); <-done }()

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
	go func() { done <- serveAll(ctx, []*server{s}, 5*time.Second, log) }()
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
