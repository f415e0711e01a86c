package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/oidcgate/oidcgate/bench"
)

// BenchConfig configures `oidcgate bench`.
type BenchConfig struct {
	Scenario     string        `yaml:"scenario" help:"token, introspect, jwks, discovery, edge, or refresh-chains (a fault run: --chains users' refresh tokens rotated by retrying clients; dead chains are users logged out)"`
	Target       string        `yaml:"target" help:"base URL under load: the issuer, or the edge for the edge scenario"`
	Issuer       string        `yaml:"bench_issuer" help:"where the edge and introspect scenarios get their tokens (default: --target)"`
	ClientID     string        `yaml:"client_id" help:"client for token requests (and introspection)"`
	ClientSecret string        `yaml:"client_secret" secret:"true" help:"its secret"`
	Scope        string        `yaml:"scope" help:"scope to request (default: the client's)"`
	Path         string        `yaml:"path" help:"edge: the path to request"`
	ForwardAuth  string        `yaml:"forward_auth" help:"edge: send --path as X-Original-URI to this forward-auth path instead of requesting it"`
	UniqueTokens int           `yaml:"unique_tokens" help:"edge: how many different tokens to cycle through (sets the verified-token cache hit rate)"`
	Connections  int           `yaml:"connections" help:"concurrent connections, each a closed loop"`
	Duration     time.Duration `yaml:"duration" help:"how long to measure"`
	Warmup       time.Duration `yaml:"warmup" help:"how long to send before measuring"`
	JSON         bool          `yaml:"json" help:"print the result as JSON"`
	ServerPID    int           `yaml:"server_pid" help:"PID of the server under load, on this machine: its CPU time per request is reported (Linux)"`
	Chains       int           `yaml:"chains" help:"refresh-chains: how many refresh-token families to rotate"`
	RedirectURI  string        `yaml:"redirect_uri" help:"refresh-chains: a redirect URI registered for --client-id"`
	Username     string        `yaml:"username" help:"refresh-chains: the user who signs in"`
	Password     string        `yaml:"password" secret:"true" help:"refresh-chains: that user's password"`
}

func runBench(ctx context.Context, args []string, std stdio) error {
	cfg := BenchConfig{Scenario: bench.Token, Target: "http://127.0.0.1:8080", Path: "/", UniqueTokens: 100,
		Connections: 16, Duration: 10 * time.Second, Warmup: 2 * time.Second}
	if _, err := load("bench", &cfg, args, std.env, std.out); err != nil {
		return err
	}
	if cfg.Scenario == bench.RefreshChains {
		return runChains(ctx, cfg, std)
	}
	bc := bench.Config{Scenario: cfg.Scenario, Target: cfg.Target, Issuer: cfg.Issuer, ClientID: cfg.ClientID,
		ClientSecret: cfg.ClientSecret, Scope: cfg.Scope, Path: cfg.Path, ForwardAuth: cfg.ForwardAuth,
		UniqueTokens: cfg.UniqueTokens, Connections: cfg.Connections, Duration: cfg.Duration, Warmup: cfg.Warmup,
		ServerPID: cfg.ServerPID, Progress: std.err}
	if err := bc.Validate(); err != nil {
		return ConfigError(strings.Split(err.Error(), "\n"))
	}
	res, err := bench.Run(ctx, bc)
	if err != nil {
		return err
	}
	if cfg.JSON {
		if err := printJSON(std.out, res); err != nil {
			return err
		}
	} else {
		bench.Print(std.out, res)
	}
	if !res.OK() {
		return fmt.Errorf("%d unexpected answers and %d errors out of %d requests", res.Unexpected, res.Errors, res.Requests)
	}
	return nil
}

// runChains is the refresh-chains fault run; it fails when a chain died.
func runChains(ctx context.Context, cfg BenchConfig, std stdio) error {
	chains := cfg.Chains
	if chains == 0 {
		chains = 64
	}
	res, err := bench.RunChains(ctx, bench.ChainsConfig{Issuer: cfg.Target, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		RedirectURI: cfg.RedirectURI, Username: cfg.Username, Password: cfg.Password, Chains: chains, Duration: cfg.Duration,
		Progress: std.err})
	if err != nil {
		return err
	}
	if err := printJSON(std.out, res); err != nil {
		return err
	}
	if res.Dead > 0 || res.Stuck > 0 {
		return fmt.Errorf("%d of %d refresh chains died and %d never recovered (first: %s)", res.Dead, res.Chains, res.Stuck, res.FirstDead)
	}
	return nil
}
