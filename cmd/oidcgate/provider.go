package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage"
	"github.com/oidcgate/oidcgate/provider/storage/bolt"
	"github.com/oidcgate/oidcgate/provider/storage/memory"
	"github.com/oidcgate/oidcgate/provider/storage/postgres"
)

// openStore opens the configured store.
func openStore(ctx context.Context, c StoreConfig, log *slog.Logger) (storage.Storage, error) {
	switch c.kind() {
	case "memory":
		log.Warn("memory store: nothing survives a restart")
		return memory.New(time.Now), nil
	case "postgres":
		return postgres.Open(ctx, postgres.Config{URL: c.DatabaseURL, AutoMigrate: c.AutoMigrate, MaxConns: c.DatabaseMaxConns}, time.Now)
	default:
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
		return bolt.Open(filepath.Join(c.DataDir, "oidcgate.db"), time.Now)
	}
}

// newRegistry is a Prometheus registry with the Go runtime and process
// collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func runProvider(ctx context.Context, args []string, io stdio) error {
	cfg := defaultProviderConfig()
	if _, err := load("provider", &cfg, args, io.env, io.out); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := newLogger(cfg.ServeConfig, io.err)

	store, err := openStore(ctx, cfg.StoreConfig, log)
	if err != nil {
		return err
	}
	defer store.Close()

	ringCfg, kekWarning, err := cfg.KeysConfig.ringConfig(cfg.DataDir)
	if err != nil {
		return err
	}
	if kekWarning != "" {
		log.Warn("!!! " + kekWarning)
	}
	ring, err := keys.NewRing(ctx, ringCfg, store, log, time.Now)
	if err != nil {
		return err
	}

	if cfg.Bootstrap != "" {
		b, err := provider.LoadBootstrap(cfg.Bootstrap)
		if err != nil {
			return err
		}
		pc := cfg.providerConfig()
		if err := provider.ApplyBootstrap(ctx, store, b, pc.Argon2, time.Now()); err != nil {
			return err
		}
		log.Info("bootstrap applied", "file", cfg.Bootstrap, "clients", len(b.Clients), "users", len(b.Users))
	}

	reg := newRegistry()
	p, err := provider.New(cfg.providerConfig(), store, ring, log, reg, time.Now)
	if err != nil {
		return err
	}
	defer p.Close()

	var certs *certReloader
	if cfg.TLSCert != "" {
		if certs, err = newCertReloader(cfg.TLSCert, cfg.TLSKey, log); err != nil {
			return err
		}
	}
	checks := []readiness{
		{name: "store", check: store.Ping},
		{name: "keys", check: func(context.Context) error { return ring.Ready() }},
	}
	var warnings []string
	if kekWarning != "" {
		warnings = append(warnings, kekWarning)
	}
	var servers []*server
	for _, l := range []struct {
		name, addr string
		h          func() fasthttp.RequestHandler
	}{
		{"public", cfg.PublicAddr, p.Public},
		{"admin", cfg.AdminAddr, p.Admin},
		{"ops", cfg.OpsAddr, func() fasthttp.RequestHandler { return opsHandler(reg, checks, warnings) }},
	} {
		s, err := listen(l.name, l.addr, l.h(), provider.RejectMalformed, cfg.ServeConfig, certs, log)
		if err != nil {
			for _, s := range servers {
				s.ln.Close()
			}
			return err
		}
		servers = append(servers, s)
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go p.Run(runCtx)
	go ring.Run(runCtx)
	log.Info("oidcgate provider started", "version", version, "store", cfg.kind(), "issuer", cfg.Issuer)
	err = serveAll(ctx, servers, cfg.ShutdownTimeout, log)
	log.Info("oidcgate provider stopped")
	return err
}
