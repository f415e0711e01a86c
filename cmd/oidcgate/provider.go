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

	"github.com/oidcgate/oidcgate/edge"
	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/oauth"
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

// providerParts is a constructed provider with what it stands on.
type providerParts struct {
	store    storage.Storage
	ring     *keys.Ring
	p        *provider.Provider
	checks   []readiness
	warnings []string
	certs    *certReloader
	lc       lifecycle
	log      *slog.Logger
}

func (pp *providerParts) close() {
	if pp.p != nil {
		pp.p.Close()
	}
	pp.store.Close()
}

// buildProvider opens the store, loads the key ring, applies the bootstrap
// file and constructs the provider.
func buildProvider(ctx context.Context, cfg *ProviderConfig, log *slog.Logger, reg prometheus.Registerer) (*providerParts, error) {
	store, err := openStore(ctx, cfg.StoreConfig, log)
	if err != nil {
		return nil, err
	}
	pp := &providerParts{store: store, log: log}
	fail := func(err error) (*providerParts, error) {
		pp.close()
		return nil, err
	}
	ringCfg, kekWarning, err := cfg.KeysConfig.ringConfig(cfg.DataDir)
	if err != nil {
		return fail(err)
	}
	if kekWarning != "" {
		log.Warn("!!! " + kekWarning)
		pp.warnings = append(pp.warnings, kekWarning)
	}
	if pp.ring, err = keys.NewRing(ctx, ringCfg, store, log, time.Now); err != nil {
		return fail(err)
	}
	if cfg.Bootstrap != "" {
		b, err := provider.LoadBootstrap(cfg.Bootstrap)
		if err != nil {
			return fail(err)
		}
		if err := provider.ApplyBootstrap(ctx, store, pp.ring, b, cfg.Config.Argon2, time.Now()); err != nil {
			return fail(err)
		}
		log.Info("bootstrap applied", "file", cfg.Bootstrap, "clients", len(b.Clients), "users", len(b.Users))
	}
	if pp.p, err = provider.New(cfg.Config, store, pp.ring, log, reg, time.Now); err != nil {
		return fail(err)
	}
	if cfg.TLSCert != "" {
		if pp.certs, err = newCertReloader(cfg.TLSCert, cfg.TLSKey, log); err != nil {
			return fail(err)
		}
	}
	pp.checks = []readiness{
		{name: "store", check: store.Ping},
		{name: "keys", check: func(context.Context) error { return pp.ring.Ready() }},
	}
	return pp, nil
}

// listener is one address to serve.
type listener struct {
	name, addr  string
	h           fasthttp.RequestHandler
	onMalformed func(*fasthttp.RequestCtx, error)
	cfg         ServeConfig
}

// listenAll binds every listener, or none.
func listenAll(ls []listener, certs *certReloader, log *slog.Logger) ([]*server, error) {
	var servers []*server
	for _, l := range ls {
		s, err := listen(l.name, l.addr, l.h, l.onMalformed, l.cfg, certs, log)
		if err != nil {
			for _, s := range servers {
				s.ln.Close()
			}
			return nil, err
		}
		servers = append(servers, s)
	}
	return servers, nil
}

func runProvider(ctx context.Context, args []string, std stdio) error {
	cfg := defaultProviderConfig()
	if _, err := load("provider", &cfg, args, std.env, std.out); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := newLogger(cfg.ServeConfig, std.err)
	reg := newRegistry()
	pp, err := buildProvider(ctx, &cfg, log, reg)
	if err != nil {
		return err
	}
	defer pp.close()
	return pp.serve(ctx, "provider", &cfg, pp.listeners(&cfg, reg), log)
}

// listeners are the provider's public, admin and ops listeners.
func (pp *providerParts) listeners(cfg *ProviderConfig, gatherer prometheus.Gatherer) []listener {
	return []listener{
		{"public", cfg.PublicAddr, pp.p.Public(), oauth.RejectMalformed, cfg.ServeConfig},
		{"admin", cfg.AdminAddr, pp.p.Admin(), oauth.RejectMalformed, cfg.ServeConfig},
		{"ops", cfg.OpsAddr, opsHandler(&pp.lc, gatherer, pp.checks, pp.warnings, pp.log), nil, cfg.ServeConfig},
	}
}

// serve binds ls, runs the provider's background loops (GC, key ring) and
// serves until ctx ends.
func (pp *providerParts) serve(ctx context.Context, mode string, cfg *ProviderConfig, ls []listener, log *slog.Logger,
	loops ...func(context.Context)) error {
	log.Info("oidcgate "+mode+" starting", "version", version, "store", cfg.kind(), "issuer", cfg.Issuer)
	err := runListeners(ctx, &pp.lc, ls, pp.certs, cfg.ServeConfig, log, append(loops, pp.p.Run, pp.ring.Run)...)
	log.Info("oidcgate " + mode + " stopped")
	return err
}

// AllConfig configures `oidcgate all`: the provider and an edge in one
// process, the edge verifying with the provider's own key ring.
type AllConfig struct {
	ProviderConfig `yaml:",inline"`
	EdgeSettings   `yaml:",inline"`
}

// Validate reports every bad setting at once.
func (c *AllConfig) Validate() error {
	var p problems
	if err := c.ProviderConfig.Validate(); err != nil {
		p = append(p, err.(ConfigError)...)
	}
	c.EdgeSettings.validate(&p)
	return p.err()
}

// inProcess is the provider answering the edge's introspection directly.
type inProcess struct{ p *provider.Provider }

func (i inProcess) Introspect(ctx context.Context, token string) (*edge.Introspection, error) {
	r, err := i.p.Inspect(ctx, token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", edge.ErrUnavailable, err)
	}
	return r, nil
}

func runAll(ctx context.Context, args []string, std stdio) error {
	cfg := AllConfig{ProviderConfig: defaultProviderConfig(), EdgeSettings: defaultEdgeSettings()}
	if _, err := load("all", &cfg, args, std.env, std.out); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := newLogger(cfg.ServeConfig, std.err)
	reg := newRegistry()
	pp, err := buildProvider(ctx, &cfg.ProviderConfig, log, reg)
	if err != nil {
		return err
	}
	defer pp.close()
	vc := cfg.EdgeSettings.ValidatorConfig
	vc.Issuer = cfg.ProviderConfig.Issuer
	e, vs, err := cfg.EdgeSettings.newEdge([]trusted{{cfg: vc, ks: pp.ring, rl: pp.p, in: inProcess{pp.p}, reg: reg}}, log, reg)
	if err != nil {
		return err
	}
	defer vs[0].Close()
	pp.p.OnRevoke(vs[0].Forget)

	edgeServe := cfg.ServeConfig
	edgeServe.MaxRequestBodySize = max(edgeServe.MaxRequestBodySize, edgeMaxBody)
	ls := pp.listeners(&cfg.ProviderConfig, reg)
	ls = append(ls, listener{"edge", cfg.EdgeAddr, e.Handler(), nil, edgeServe})
	extAuthz, err := cfg.EdgeSettings.extAuthz(e, log)
	if err != nil {
		return err
	}
	log.Info("edge in front of the upstream", "upstream", cfg.Upstream)
	return pp.serve(ctx, "all", &cfg.ProviderConfig, ls, log, extAuthz)
}
