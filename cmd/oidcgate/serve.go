package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// certReloader serves the certificate in certFile/keyFile and reloads it
// when either file changes, checking at most once a second, so a rotated
// certificate is picked up by the next handshake without a restart. A
// broken pair on disk keeps the last good certificate in service.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string // what the files looked like when cert was loaded
	checkedAt time.Time
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	stamp, err := r.fileStamp()
	if err != nil {
		return nil, err
	}
	if err := r.load(stamp); err != nil {
		return nil, err
	}
	return r, nil
}

// fileStamp identifies the current contents of both files cheaply.
func (r *certReloader) fileStamp() (string, error) {
	var b bytes.Buffer
	for _, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("tls: %w", err)
		}
		fmt.Fprintf(&b, "%s:%d:%d;", f, st.Size(), st.ModTime().UnixNano())
	}
	return b.String(), nil
}

func (r *certReloader) load(stamp string) error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: load %s and %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

// GetCertificate is the tls.Config hook.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checkedAt) >= time.Second {
		r.checkedAt = now
		if stamp, err := r.fileStamp(); err != nil {
			r.log.Warn("TLS certificate files unreadable; keeping the loaded certificate", "error", err)
		} else if stamp != r.stamp {
			if err := r.load(stamp); err != nil {
				r.log.Warn("TLS certificate change not loaded; keeping the previous one", "error", err)
			} else {
				r.log.Info("TLS certificate reloaded", "cert", r.certFile)
			}
		}
	}
	return r.cert, nil
}

func (r *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}

// server is one listener with its fasthttp server.
type server struct {
	name string
	ln   net.Listener
	srv  *fasthttp.Server
}

// listen binds addr (with TLS when certs is not nil) and builds the server;
// onMalformed, when set, answers requests fasthttp cannot parse.
func listen(name, addr string, h fasthttp.RequestHandler, onMalformed func(*fasthttp.RequestCtx, error),
	cfg ServeConfig, certs *certReloader, log *slog.Logger) (*server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", name, err)
	}
	if certs != nil {
		tc := certs.tlsConfig()
		if cfg.TLSClientCerts {
			tc.ClientAuth = tls.RequestClientCert // verified per client, not against a CA (RFC 8705 §2.2 allows self-signed)
		}
		ln = tls.NewListener(ln, tc)
	}
	srv := &fasthttp.Server{
		Handler:               h,
		Name:                  "oidcgate",
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		MaxRequestBodySize:    cfg.MaxRequestBodySize,
		Concurrency:           cfg.MaxConcurrency,
		NoDefaultServerHeader: true,
		// A malformed request is logged without its bytes: they may hold an
		// Authorization header or a session cookie.
		SecureErrorLogMessage: true,
		Logger:                slogPrinter{log.With("listener", name)},
		ErrorHandler:          onMalformed,
	}
	return &server{name: name, ln: ln, srv: srv}, nil
}

// slogPrinter lets fasthttp's own messages reach the structured log.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) { p.log.Warn(fmt.Sprintf(format, args...)) }

// startProfile starts the CPU profile asked for, returning its stop.
func startProfile(path string, log *slog.Logger) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	log.Info("writing a CPU profile", "file", path)
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// lifecycle is what a serving process's listeners share about its state:
// once it is draining, /readyz answers 503 so load balancers stop sending.
type lifecycle struct{ draining atomic.Bool }

// runListeners binds ls, starts the CPU profile if one is asked for and the
// background loops, and serves until ctx ends: every serving mode's tail.
func runListeners(ctx context.Context, lc *lifecycle, ls []listener, certs *certReloader, cfg ServeConfig, log *slog.Logger,
	loops ...func(context.Context)) error {
	servers, err := listenAll(ls, certs, log)
	if err != nil {
		return err
	}
	applyMemoryLimit(cfg.MemoryLimit, log)
	stopProfile, err := startProfile(cfg.CPUProfile, log)
	if err != nil {
		return err
	}
	defer stopProfile()
	loopCtx, stop := context.WithCancel(ctx)
	defer stop()
	for _, loop := range loops {
		go loop(loopCtx)
	}
	return serveAll(ctx, lc, servers, shutdown{delay: cfg.ShutdownDelay, drain: cfg.ShutdownTimeout}, log)
}

// shutdown is how a process stops on SIGTERM: /readyz turns 503 for delay
// while every listener keeps serving (so load balancers and Kubernetes
// endpoints stop sending), then the listeners close and in-flight requests
// get up to drain to finish.
type shutdown struct{ delay, drain time.Duration }

// serveAll runs every server until ctx is cancelled or one of them fails,
// then shuts all down as sd says. Requests still running when the drain
// ends are cut, which is logged: the exit is still clean, as asked for.
func serveAll(ctx context.Context, lc *lifecycle, servers []*server, sd shutdown, log *slog.Logger) error {
	errc := make(chan error, len(servers))
	for _, s := range servers {
		log.Info("listening", "listener", s.name, "addr", s.ln.Addr().String())
		go func() {
			if err := s.srv.Serve(s.ln); err != nil {
				errc <- fmt.Errorf("%s listener: %w", s.name, err)
				return
			}
			errc <- nil
		}()
	}
	var failed error
	select {
	case <-ctx.Done():
		lc.draining.Store(true)
		log.Info("shutting down", "readiness_delay", sd.delay.String(), "drain_timeout", sd.drain.String())
		if sd.delay > 0 {
			select { // a listener failing now ends the delay
			case <-time.After(sd.delay):
			case failed = <-errc:
			}
		}
	case failed = <-errc:
		lc.draining.Store(true)
		log.Error("listener failed; shutting down", "error", failed)
	}
	dctx, cancel := context.WithTimeout(context.Background(), sd.drain)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.srv.ShutdownWithContext(dctx); errors.Is(err, context.DeadlineExceeded) {
				log.Warn("drain timeout: requests still running were cut", "listener", s.name, "open_connections",
					s.srv.GetOpenConnectionsCount())
			} else if err != nil {
				log.Warn("listener shutdown", "listener", s.name, "error", err)
			}
		}()
	}
	wg.Wait()
	return failed
}

// readiness is one named check behind /readyz.
type readiness struct {
	name  string
	check func(ctx context.Context) error
}

// opsHandler serves /metrics, /healthz (the process answers) and /readyz
// (not draining, and every check passes; failures are listed by name with
// a generic reason — the ops listener may be reachable from anywhere, so
// the detail, which can name the database's user, host and port, is logged
// instead).
func opsHandler(lc *lifecycle, gatherer prometheus.Gatherer, checks []readiness, warnings []string, log *slog.Logger) fasthttp.RequestHandler {
	metrics := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/metrics":
			metrics(ctx)
		case "/healthz":
			ctx.SetContentType("text/plain; charset=utf-8")
			ctx.SetBodyString("ok\n")
		case "/readyz":
			cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			ctx.SetContentType("text/plain; charset=utf-8")
			ready := !lc.draining.Load()
			if !ready {
				fmt.Fprintf(ctx, "[-] shutting down\n")
			}
			for _, c := range checks {
				if err := c.check(cctx); err != nil {
					ready = false
					log.Warn("readiness check failed", "check", c.name, "error", err)
					fmt.Fprintf(ctx, "[-] %s: not ready (see the log)\n", c.name)
				} else {
					fmt.Fprintf(ctx, "[+] %s ok\n", c.name)
				}
			}
			for _, w := range warnings {
				fmt.Fprintf(ctx, "[!] warning: %s\n", w)
			}
			if !ready {
				ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			}
		default:
			ctx.Error("not found\n", fasthttp.StatusNotFound)
		}
	}
}
