package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage/postgres"
)

// ServeConfig is what every serving mode's listeners share.
type ServeConfig struct {
	// OpsAddr serves /metrics, /healthz and /readyz.
	OpsAddr string `yaml:"ops_addr" help:"address of the ops listener: /metrics, /healthz, /readyz"`
	// TLSCert and TLSKey, when set, serve TLS 1.2+ on every listener; the
	// files are re-read when they change.
	TLSCert string `yaml:"tls_cert" help:"PEM certificate file; with --tls-key serves HTTPS on every listener, reloaded when the files change"`
	TLSKey  string `yaml:"tls_key" help:"PEM private key file for --tls-cert"`
	// TLSClientCerts asks clients for a certificate (RFC 8705 mTLS).
	TLSClientCerts bool `yaml:"tls_client_certs" help:"with --tls-cert: ask TLS clients for a certificate (none is required; the provider checks one per client for tls_client_auth and self_signed_tls_client_auth, and binds tokens to it)"`

	ReadTimeout        time.Duration `yaml:"read_timeout" help:"longest time to read one request, headers and body"`
	WriteTimeout       time.Duration `yaml:"write_timeout" help:"longest time to write one response"`
	IdleTimeout        time.Duration `yaml:"idle_timeout" help:"how long a keep-alive connection may wait for its next request"`
	ShutdownDelay      time.Duration `yaml:"shutdown_delay" help:"on SIGTERM/SIGINT, how long /readyz answers 503 while the listeners keep serving, before they close (Kubernetes: a few seconds, so endpoints stop sending first)"`
	ShutdownTimeout    time.Duration `yaml:"shutdown_timeout" help:"then, how long in-flight requests may drain; requests still running are cut and the exit is still 0"`
	MaxRequestBodySize int           `yaml:"max_request_body_size" help:"largest request body in bytes; larger ones get 413"`
	MaxConcurrency     int           `yaml:"max_concurrency" help:"most connections served at once per listener"`

	LogFormat string `yaml:"log_format" help:"log format: text or json"`
	LogLevel  string `yaml:"log_level" help:"log level: debug, info, warn or error"`

	CPUProfile string `yaml:"cpuprofile" help:"write a CPU profile to this file from start to shutdown (go tool pprof reads it)"`
	// MemoryLimit is the Go runtime's soft memory limit (GOMEMLIMIT).
	MemoryLimit string `yaml:"memory_limit" help:"soft memory limit of the Go runtime: a size like 48MiB, auto (90% of the container's cgroup memory limit, when it has one) or off; GOMEMLIMIT in the environment wins"`
}

func defaultServeConfig() ServeConfig {
	return ServeConfig{
		OpsAddr:            ":9090",
		ReadTimeout:        10 * time.Second,
		WriteTimeout:       10 * time.Second,
		IdleTimeout:        90 * time.Second,
		ShutdownTimeout:    15 * time.Second,
		MaxRequestBodySize: 64 << 10,
		MaxConcurrency:     256 * 1024,
		LogFormat:          "text",
		LogLevel:           "info",
		MemoryLimit:        "auto",
	}
}

// StoreConfig chooses and reaches the store.
type StoreConfig struct {
	Store            string `yaml:"store" help:"store: bolt (embedded file in --data-dir), postgres, or memory (nothing kept); empty picks postgres when --database-url is set, else bolt"`
	DataDir          string `yaml:"data_dir" help:"directory of the embedded store (and of a generated key-encryption key)"`
	DatabaseConfig   `yaml:",inline"`
	DatabaseMaxConns int32 `yaml:"database_max_conns" help:"most PostgreSQL connections in the pool (0: pgx's default)"`
	AutoMigrate      bool  `yaml:"auto_migrate" help:"apply pending PostgreSQL migrations at start instead of refusing to start"`
}

func defaultStoreConfig() StoreConfig {
	return StoreConfig{DataDir: "./data"}
}

// kind resolves the empty store setting.
func (c StoreConfig) kind() string {
	if c.Store != "" {
		return c.Store
	}
	if c.DatabaseURL != "" {
		return "postgres"
	}
	return "bolt"
}

// KeysConfig is the signing-key policy, declared on keys.Config, and the
// key-encryption key it is sealed under.
type KeysConfig struct {
	keys.Config      `yaml:",inline"`
	KeyEncryptionKey string `yaml:"key_encryption_key" secret:"true" help:"base64 32-byte key encrypting signing keys at rest (AES-256-GCM); unset: one is generated in --data-dir, for development only"`
}

func defaultKeysConfig() KeysConfig { return KeysConfig{Config: keys.DefaultConfig()} }

func (c *KeysConfig) validate(p *problems) {
	if c.KeyEncryptionKey != "" {
		if _, err := keys.DecodeKEK(c.KeyEncryptionKey); err != nil {
			p.add("key_encryption_key", "%v", err)
		}
	}
	p.library(c.Config.ValidatePolicy())
}

// ringConfig resolves the key-encryption key (generating one in dataDir
// when none is configured) into the ring's configuration; warning is
// non-empty when the generated key is in use.
func (c KeysConfig) ringConfig(dataDir string) (cfg keys.Config, warning string, err error) {
	var kek []byte
	if c.KeyEncryptionKey != "" {
		kek, _ = keys.DecodeKEK(c.KeyEncryptionKey) // validated
	} else {
		if kek, _, err = keys.LoadOrCreateKEK(dataDir); err != nil {
			return cfg, "", fmt.Errorf("key-encryption key: %w", err)
		}
		warning = "signing keys are encrypted under a key-encryption key kept beside the data in " + dataDir +
			" (development only: set --key-encryption-key from a secret store in production)"
	}
	cfg = c.Config
	if !slices.Contains(cfg.Algs, keys.RS256) {
		cfg.Algs = append(slices.Clone(cfg.Algs), keys.RS256)
	}
	cfg.KEK = kek
	return cfg, warning, nil
}

// ProviderConfig configures `oidcgate provider`: the listeners, the store
// and the key ring, and the provider's own settings, declared once on
// provider.Config.
type ProviderConfig struct {
	ServeConfig     `yaml:",inline"`
	StoreConfig     `yaml:",inline"`
	KeysConfig      `yaml:",inline"`
	provider.Config `yaml:",inline"`

	// PublicAddr serves the protocol endpoints and the login pages.
	PublicAddr string `yaml:"public_addr" help:"address of the public listener (protocol endpoints)"`
	// AdminAddr serves the operator API; keep it off the internet.
	AdminAddr string `yaml:"admin_addr" help:"address of the admin API listener (loopback by default; keep it private)"`
	Bootstrap string `yaml:"bootstrap" help:"YAML file declaring clients and users, applied idempotently at start"`
}

func defaultProviderConfig() ProviderConfig {
	return ProviderConfig{
		ServeConfig: defaultServeConfig(),
		StoreConfig: defaultStoreConfig(),
		KeysConfig:  defaultKeysConfig(),
		Config:      provider.DefaultConfig(),
		PublicAddr:  ":8080",
		AdminAddr:   "127.0.0.1:8081",
	}
}

// KeysCommandConfig configures `oidcgate keys`.
type KeysCommandConfig struct {
	StoreConfig  `yaml:",inline"`
	KeysConfig   `yaml:",inline"`
	Alg          string `yaml:"alg" help:"with rotate: the algorithm whose key to rotate"`
	OutputConfig `yaml:",inline"`
	AdminClient  `yaml:",inline"`
}

// AdminClient reaches a running provider's admin API.
type AdminClient struct {
	AdminURL   string `yaml:"admin_url" help:"a running provider's admin listener, e.g. http://127.0.0.1:8081: the change is made by that process, so a revoked key stops signing there at once (and the embedded store need not be free)"`
	AdminToken string `yaml:"admin_token" secret:"true" help:"with --admin-url: the admin API bearer token (oidcgate admin-tokens create)"`
}

func (c *AdminClient) validate(p *problems) {
	if u, err := url.Parse(c.AdminURL); c.AdminURL != "" && (err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "") {
		p.add("admin_url", "not an http(s) URL: %q", c.AdminURL)
	}
}

// Validate reports every bad setting at once.
func (c *KeysCommandConfig) Validate() error {
	var p problems
	c.StoreConfig.validate(&p)
	c.KeysConfig.validate(&p)
	if c.Alg != "" && !keys.Supported(c.Alg) {
		p.add("alg", "%q is not one of ES256, RS256, PS256, EdDSA", c.Alg)
	}
	c.AdminClient.validate(&p)
	return p.err()
}

// DatabaseConfig reaches PostgreSQL.
type DatabaseConfig struct {
	DatabaseURL string `yaml:"database_url" secret:"true" help:"PostgreSQL URL, e.g. postgres://user:pass@host:5432/db"`
}

// OutputConfig is how the operator commands print.
type OutputConfig struct {
	JSON bool `yaml:"json" help:"print machine-readable JSON"`
}

// MigrateConfig configures `oidcgate migrate`.
type MigrateConfig struct {
	DatabaseConfig `yaml:",inline"`
}

// problems collects validation failures, one per setting.
type problems []string

func (p *problems) add(name, format string, args ...any) {
	*p = append(*p, fmt.Sprintf("--%s: %s", strings.ReplaceAll(name, "_", "-"), fmt.Sprintf(format, args...)))
}

// library adds the problems a library's Validate reported, each naming its
// setting (keys.SettingError), and any other error as it is.
func (p *problems) library(err error) {
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var se *keys.SettingError
		if errors.As(e, &se) {
			p.add(se.Name, "%s", se.Why)
		} else {
			*p = append(*p, e.Error())
		}
	}
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return ConfigError(p)
}

func (p *problems) addr(name, v string) {
	if _, _, err := net.SplitHostPort(v); err != nil {
		p.add(name, "not a host:port address: %q", v)
	}
}

func (p *problems) positive(name string, d time.Duration) {
	if d <= 0 {
		p.add(name, "must be a positive duration, got %s", d)
	}
}

func (p *problems) databaseURL(v string) {
	if v == "" {
		p.add("database_url", "required")
		return
	}
	if _, err := pgxpool.ParseConfig(v); err != nil || !(strings.HasPrefix(v, "postgres://") || strings.HasPrefix(v, "postgresql://")) {
		p.add("database_url", "not a postgres:// URL: %s", postgres.Redact(v))
	}
}

func (c *ServeConfig) validate(p *problems) {
	p.addr("ops_addr", c.OpsAddr)
	if (c.TLSCert == "") != (c.TLSKey == "") {
		p.add("tls_cert", "--tls-cert and --tls-key go together")
	}
	for name, f := range map[string]string{"tls_cert": c.TLSCert, "tls_key": c.TLSKey} {
		if f != "" {
			if _, err := os.Stat(f); err != nil {
				p.add(name, "%v", err)
			}
		}
	}
	p.positive("read_timeout", c.ReadTimeout)
	p.positive("write_timeout", c.WriteTimeout)
	p.positive("idle_timeout", c.IdleTimeout)
	p.positive("shutdown_timeout", c.ShutdownTimeout)
	if c.MaxRequestBodySize <= 0 {
		p.add("max_request_body_size", "must be positive, got %d", c.MaxRequestBodySize)
	}
	if c.MaxConcurrency <= 0 {
		p.add("max_concurrency", "must be positive, got %d", c.MaxConcurrency)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		p.add("log_format", "must be text or json, got %q", c.LogFormat)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		p.add("log_level", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if _, _, err := memoryLimit(c.MemoryLimit, func(string) string { return "" }); err != nil {
		p.add("memory_limit", "%v", err)
	}
}

func (c *StoreConfig) validate(p *problems) {
	switch c.kind() {
	case "bolt":
		if c.DataDir == "" {
			p.add("data_dir", "required for the bolt store")
		}
	case "postgres":
		p.databaseURL(c.DatabaseURL)
	case "memory":
	default:
		p.add("store", "must be bolt, postgres or memory, got %q", c.Store)
	}
	if c.DatabaseMaxConns < 0 {
		p.add("database_max_conns", "must not be negative, got %d", c.DatabaseMaxConns)
	}
}

// Validate reports every bad setting at once.
func (c *ProviderConfig) Validate() error {
	var p problems
	c.ServeConfig.validate(&p)
	c.StoreConfig.validate(&p)
	c.KeysConfig.validate(&p)
	p.library(c.Config.Validate())
	p.addr("public_addr", c.PublicAddr)
	p.addr("admin_addr", c.AdminAddr)
	if !slices.Contains(c.Algs, c.AccessTokenAlg) && c.AccessTokenAlg != keys.RS256 {
		p.add("access_token_alg", "%q is not one of --signing-algs %v", c.AccessTokenAlg, c.Algs)
	}
	if c.RetireGrace < c.AccessTokenTTL {
		p.add("key_retire_grace", "must be at least --access-token-ttl (%s), or tokens outlive their key in the JWKS", c.AccessTokenTTL)
	}
	if c.Bootstrap != "" {
		if _, err := os.Stat(c.Bootstrap); err != nil {
			p.add("bootstrap", "%v", err)
		}
	}
	return p.err()
}

// Validate reports every bad setting at once.
func (c *MigrateConfig) Validate() error {
	var p problems
	p.databaseURL(c.DatabaseURL)
	return p.err()
}

// newLogger builds the process logger from validated settings.
func newLogger(c ServeConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
