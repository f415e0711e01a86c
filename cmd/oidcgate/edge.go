package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"google.golang.org/grpc"

	"github.com/oidcgate/oidcgate/edge"
	"github.com/oidcgate/oidcgate/keys"
)

// edgeMaxBody is the least request body the edge proxies: uploads to the
// upstream are not the provider's small protocol forms.
const edgeMaxBody = 32 << 20

// EdgeSettings are the edge's settings, shared by `edge` and `all`: its
// listener and routes here, its HTTP behaviour and token policy declared
// once on edge.Config and edge.ValidatorConfig.
type EdgeSettings struct {
	EdgeAddr             string `yaml:"edge_addr" help:"address of the edge listener (proxy and forward-auth)"`
	ExtAuthzAddr         string `yaml:"ext_authz_addr" help:"address of a gRPC listener serving Envoy's ext_authz (envoy.service.auth.v3.Authorization, plaintext: keep it on loopback or a pod network); empty: none"`
	Routes               string `yaml:"routes" help:"YAML routes file (ordered rules: path_prefix, methods, public, audience, scopes, token, claims, rule, headers; docs/forward-auth.md); none: every request needs a valid token for --audience"`
	Audience             string `yaml:"audience" help:"without a routes file: the audience every token must carry; required then (any: accept every audience, said on purpose)"`
	edge.Config          `yaml:",inline"`
	edge.ValidatorConfig `yaml:",inline"`
}

func defaultEdgeSettings() EdgeSettings {
	return EdgeSettings{EdgeAddr: ":8000", Config: edge.DefaultConfig(), ValidatorConfig: edge.DefaultValidatorConfig()}
}

func (c *EdgeSettings) validate(p *problems) {
	p.addr("edge_addr", c.EdgeAddr)
	if c.ExtAuthzAddr != "" {
		p.addr("ext_authz_addr", c.ExtAuthzAddr)
	}
	p.library(c.Config.Validate())
	p.library(c.ValidatorConfig.Validate())
	if c.Routes != "" {
		if _, err := edge.LoadRoutes(c.Routes); err != nil {
			p.add("routes", "%v", err)
		}
	} else if c.Audience == "" {
		p.add("audience", "required without --routes: the audience every token must carry (or any, to accept tokens for any audience)")
	}
}

// EdgeConfig configures `oidcgate edge`.
type EdgeConfig struct {
	ServeConfig  `yaml:",inline"`
	EdgeSettings `yaml:",inline"`

	Issuer                string `yaml:"issuer" help:"the provider's issuer URL (tokens' iss must equal it; its discovery document names the JWKS and introspection endpoints)"`
	JWKSURI               string `yaml:"jwks_uri" help:"JWKS URL, instead of discovery"`
	IntrospectionEndpoint string `yaml:"introspection_endpoint" help:"RFC 7662 endpoint for opaque tokens, instead of discovery"`
	// Issuers, in the file only, replaces --issuer (and its jwks_uri,
	// introspection and client) with several.
	Issuers                     []edge.IssuerConfig `yaml:"issuers" file:"only" help:"several issuers to trust, each {issuer, jwks_uri, introspection_endpoint, client_id, client_secret(_file), allowed_algs, audiences, leeway, require_typ}; routes name theirs with issuers: [...] (docs/forward-auth.md); replaces --issuer"`
	ClientID                    string              `yaml:"client_id" help:"the edge's client ID for introspection (empty: opaque tokens are refused)"`
	ClientSecret                string              `yaml:"client_secret" secret:"true" help:"the edge's client secret for introspection"`
	edge.RemoteKeysConfig       `yaml:",inline"`
	edge.RevocationStreamConfig `yaml:",inline"`
}

func defaultEdgeConfig() EdgeConfig {
	sc := defaultServeConfig()
	return EdgeConfig{ServeConfig: sc, EdgeSettings: defaultEdgeSettings(), RemoteKeysConfig: edge.DefaultRemoteKeysConfig(),
		RevocationStreamConfig: edge.DefaultRevocationStreamConfig()}
}

// Validate reports every bad setting at once.
func (c *EdgeConfig) Validate() error {
	var p problems
	c.ServeConfig.validate(&p)
	c.EdgeSettings.validate(&p)
	switch u, err := url.Parse(c.Issuer); {
	case len(c.Issuers) > 0 && c.Issuer != "":
		p.add("issuers", "give --issuer or an issuers: list, not both")
	case len(c.Issuers) > 0:
		for _, ic := range c.Issuers {
			if err := ic.Validate(); err != nil {
				p.add("issuers", "%v", err)
			}
		}
	case c.Issuer == "" || err != nil || !u.IsAbs():
		p.add("issuer", "required: the provider's issuer URL (or an issuers: list in the file)")
	}
	for name, v := range map[string]string{"jwks_uri": c.JWKSURI, "introspection_endpoint": c.IntrospectionEndpoint} {
		if u, err := url.Parse(v); v != "" && (err != nil || !u.IsAbs()) {
			p.add(name, "not an absolute URL: %q", v)
		}
	}
	if (c.ClientID == "") != (c.ClientSecret == "") {
		p.add("client_id", "--client-id and --client-secret go together")
	}
	p.library(c.RemoteKeysConfig.Validate())
	p.library(c.RevocationStreamConfig.Validate())
	if c.RevocationStreamConfig.URL != "" && (c.ClientID == "" || len(c.Issuers) > 0) {
		p.add("revocation_stream", "needs --client-id and --client-secret (a resource server, introspect_any); with an issuers: list, set revocation_stream per issuer")
	}
	return p.err()
}

// discover reads the issuer's discovery document, retrying for up to
// a minute so an edge may start before its provider.
func discover(ctx context.Context, issuer string, log *slog.Logger) (jwksURI, introspection string, err error) {
	client := &fasthttp.Client{Name: "oidcgate-edge", MaxResponseBodySize: 1 << 20}
	deadline := time.Now().Add(time.Minute)
	for wait := time.Second; ; wait = min(2*wait, 10*time.Second) {
		var doc struct {
			Issuer                string `json:"issuer"`
			JWKSURI               string `json:"jwks_uri"`
			IntrospectionEndpoint string `json:"introspection_endpoint"`
		}
		status, body, ferr := client.GetTimeout(nil, issuer+"/.well-known/openid-configuration", 5*time.Second)
		switch {
		case ferr != nil:
			err = ferr
		case status != 200:
			err = fmt.Errorf("status %d", status)
		case json.Unmarshal(body, &doc) != nil:
			err = errors.New("not a JSON discovery document")
		case doc.Issuer != issuer:
			// OIDC Discovery §4.3: the document must name the issuer asked for.
			return "", "", fmt.Errorf("discovery at %s names issuer %q", issuer, doc.Issuer)
		case doc.JWKSURI == "":
			return "", "", fmt.Errorf("discovery at %s has no jwks_uri", issuer)
		default:
			return doc.JWKSURI, doc.IntrospectionEndpoint, nil
		}
		if time.Now().After(deadline) {
			return "", "", fmt.Errorf("discovery at %s: %w (set --jwks-uri to start without it)", issuer, err)
		}
		log.Warn("discovery failed; retrying", "issuer", issuer, "error", err, "in", wait)
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (c *EdgeSettings) routes() (*edge.Routes, error) {
	if c.Routes != "" {
		return edge.LoadRoutes(c.Routes)
	}
	if c.Audience == "any" {
		return edge.DefaultRoutes("")
	}
	return edge.DefaultRoutes(c.Audience)
}

// trusted is one issuer the edge trusts: its token policy, keys,
// revocation list (in-process only), introspector and metrics registerer.
type trusted struct {
	cfg edge.ValidatorConfig
	ks  keys.KeySet
	rl  edge.RevocationList
	in  edge.Introspector
	reg prometheus.Registerer
}

// newEdge builds a validator per trusted issuer and the edge over them.
func (c *EdgeSettings) newEdge(ts []trusted, log *slog.Logger, reg prometheus.Registerer) (*edge.Edge, []*edge.Validator, error) {
	routes, err := c.routes()
	if err != nil {
		return nil, nil, err
	}
	var vs []*edge.Validator
	closeAll := func() {
		for _, v := range vs {
			v.Close()
		}
	}
	for _, t := range ts {
		t.cfg.KeepClaims = c.SendClaims || routes.NeedsClaims()
		v, err := edge.NewValidator(t.cfg, t.ks, t.rl, t.in, t.reg)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		vs = append(vs, v)
	}
	e, err := edge.NewWithIssuers(c.Config, vs, routes, log, reg)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return e, vs, nil
}

// issuerEntries are the issuers `edge` trusts: the issuers: list of its
// file, or the one --issuer names.
func (c *EdgeConfig) issuerEntries() []edge.IssuerConfig {
	if len(c.Issuers) > 0 {
		return c.Issuers
	}
	return []edge.IssuerConfig{{Issuer: c.Issuer, JWKSURI: c.JWKSURI, IntrospectionEndpoint: c.IntrospectionEndpoint,
		ClientID: c.ClientID, ClientSecret: c.ClientSecret, RevocationStream: c.RevocationStreamConfig.URL}}
}

func runEdge(ctx context.Context, args []string, std stdio) error {
	cfg := defaultEdgeConfig()
	if _, err := load("edge", &cfg, args, std.env, std.out); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := newLogger(cfg.ServeConfig, std.err)
	reg := newRegistry()
	entries := cfg.issuerEntries()
	var ts []trusted
	var loops []func(context.Context)
	var checks []readiness
	for _, ic := range entries {
		jwksURI, introURL := ic.JWKSURI, ic.IntrospectionEndpoint
		if jwksURI == "" || (introURL == "" && ic.ClientID != "") {
			dj, di, err := discover(ctx, ic.Issuer, log)
			if err != nil {
				return err
			}
			jwksURI, introURL = cmp.Or(jwksURI, dj), cmp.Or(introURL, di)
		}
		// With several issuers, each one's metrics carry its name.
		ireg := prometheus.Registerer(reg)
		if len(entries) > 1 {
			ireg = prometheus.WrapRegistererWith(prometheus.Labels{"issuer": ic.Issuer}, reg)
		}
		rk := cfg.RemoteKeysConfig
		rk.URL = jwksURI
		remote, err := edge.NewRemoteKeys(rk, log.With("issuer", ic.Issuer), ireg, time.Now)
		if err != nil {
			return err
		}
		secret := ic.ClientSecret
		if ic.ClientSecretFile != "" {
			raw, err := os.ReadFile(ic.ClientSecretFile)
			if err != nil {
				return fmt.Errorf("issuer %s: client_secret_file: %w", ic.Issuer, err)
			}
			secret = strings.TrimSpace(string(raw))
		}
		var in edge.Introspector
		if ic.ClientID != "" && introURL != "" {
			in = edge.NewHTTPIntrospector(introURL, ic.ClientID, secret, 5*time.Second)
		}
		t := trusted{cfg: ic.Apply(cfg.ValidatorConfig), ks: remote, in: in, reg: ireg}
		if ic.RevocationStream != "" {
			rs := cfg.RevocationStreamConfig
			rs.URL, rs.ClientID, rs.ClientSecret = ic.RevocationStream, ic.ClientID, secret
			pushed, err := edge.NewPushedRevocations(rs, log.With("issuer", ic.Issuer), ireg, time.Now)
			if err != nil {
				return err
			}
			t.rl = pushed
			loops = append(loops, pushed.Run)
			checks = append(checks, readiness{name: "revocations " + ic.Issuer, check: func(context.Context) error { return pushed.Ready() }})
		}
		ts = append(ts, t)
		loops = append(loops, remote.Run)
		name := "jwks"
		if len(entries) > 1 {
			name = "jwks " + ic.Issuer
		}
		checks = append(checks, readiness{name: name, check: func(context.Context) error { return remote.Ready() }})
		log.Info("trusting issuer", "issuer", ic.Issuer, "jwks_uri", jwksURI, "introspection", in != nil)
	}
	e, vs, err := cfg.EdgeSettings.newEdge(ts, log, reg)
	if err != nil {
		return err
	}
	defer func() {
		for _, v := range vs {
			v.Close()
		}
	}()

	var certs *certReloader
	if cfg.TLSCert != "" {
		if certs, err = newCertReloader(cfg.TLSCert, cfg.TLSKey, log); err != nil {
			return err
		}
	}
	edgeServe := cfg.ServeConfig
	edgeServe.MaxRequestBodySize = max(edgeServe.MaxRequestBodySize, edgeMaxBody)
	log.Info("oidcgate edge starting", "version", version, "issuers", len(entries), "upstream", cfg.Upstream)
	extAuthz, err := cfg.EdgeSettings.extAuthz(e, log)
	if err != nil {
		return err
	}
	lc := &lifecycle{}
	return runListeners(ctx, lc, []listener{
		{"edge", cfg.EdgeAddr, e.Handler(), nil, edgeServe},
		{"ops", cfg.OpsAddr, opsHandler(lc, reg, checks, nil, log), nil, cfg.ServeConfig},
	}, certs, cfg.ServeConfig, log, append(loops, extAuthz)...)
}

// extAuthz binds the gRPC ext_authz listener, if one is asked for, and
// returns the loop that serves it until the process stops (then in-flight
// checks get 5 s to finish); without one, a loop that does nothing.
func (c *EdgeSettings) extAuthz(e *edge.Edge, log *slog.Logger) (func(context.Context), error) {
	if c.ExtAuthzAddr == "" {
		return func(context.Context) {}, nil
	}
	ln, err := net.Listen("tcp", c.ExtAuthzAddr)
	if err != nil {
		return nil, fmt.Errorf("ext_authz listener: %w", err)
	}
	s := grpc.NewServer(grpc.MaxRecvMsgSize(1<<20), grpc.MaxConcurrentStreams(1024))
	e.RegisterExtAuthz(s)
	return func(ctx context.Context) {
		log.Info("listening", "listener", "ext_authz", "addr", ln.Addr().String())
		go func() {
			if err := s.Serve(ln); err != nil {
				log.Error("ext_authz listener", "error", err)
			}
		}()
		<-ctx.Done()
		done := make(chan struct{})
		go func() { s.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			s.Stop()
		}
	}, nil
}
