package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/edge"
	"github.com/oidcgate/oidcgate/keys"
)

// edgeMaxBody is the least request body the edge proxies: uploads to the
// upstream are not the provider's small protocol forms.
const edgeMaxBody = 32 << 20

// EdgeSettings are the edge's own settings, shared by `edge` and `all`.
type EdgeSettings struct {
	EdgeAddr          string        `yaml:"edge_addr" help:"address of the edge listener (proxy and forward-auth)"`
	Upstream          string        `yaml:"upstream" help:"URL of the app to proxy to, e.g. http://127.0.0.1:3000; empty: forward-auth only"`
	UpstreamTimeout   time.Duration `yaml:"upstream_timeout" help:"longest wait for the upstream (then 504)"`
	Routes            string        `yaml:"routes" help:"YAML routes file (ordered rules: path_prefix, methods, public, audience, scopes, token); none: every request needs a valid token for --audience"`
	Audience          string        `yaml:"audience" help:"without a routes file: the audience every token must carry; required then (any: accept every audience, said on purpose)"`
	ForwardAuthPath   string        `yaml:"forward_auth_path" help:"path of the forward-auth endpoint (nginx auth_request, Traefik forwardAuth, Envoy ext_authz path_prefix)"`
	ForwardAuthProxy  string        `yaml:"forward_auth_proxy" help:"the proxy in front of forward-auth, whose headers alone are read: nginx (X-Original-URI), traefik or caddy (X-Forwarded-Uri), envoy (the path after --forward-auth-path); empty: either header, refusing a request whose two disagree"`
	AllowedAlgs       []string      `yaml:"allowed_algs" help:"JWT algorithms accepted (never taken from the token)"`
	Leeway            time.Duration `yaml:"leeway" help:"clock skew tolerated on exp, nbf and iat"`
	RequireTyp        bool          `yaml:"require_typ" help:"require typ at+jwt on JWT access tokens (RFC 9068); turn off for issuers that do not set it"`
	TokenCacheTTL     time.Duration `yaml:"token_cache_ttl" help:"longest time a verified token skips signature verification (its exp is checked on every request)"`
	TokenCacheSize    int64         `yaml:"token_cache_size" help:"most tokens kept in the verified-token and introspection caches"`
	IntrospectionTTL  time.Duration `yaml:"introspection_ttl" help:"longest time an active introspection result is cached (inactive ones: 5s)"`
	HeaderSubject     string        `yaml:"header_subject" help:"upstream header carrying the token's sub"`
	HeaderClientID    string        `yaml:"header_client_id" help:"upstream header carrying the token's client_id"`
	HeaderScopes      string        `yaml:"header_scopes" help:"upstream header carrying the token's scopes"`
	HeaderAudience    string        `yaml:"header_audience" help:"upstream header carrying the token's audiences"`
	HeaderClaims      string        `yaml:"header_claims" help:"upstream header carrying all claims as base64url JSON, with --send-claims"`
	SendClaims        bool          `yaml:"send_claims" help:"send the claims header upstream"`
	PassAuthorization bool          `yaml:"pass_authorization" help:"pass the Authorization header on to the upstream"`
}

func defaultEdgeSettings() EdgeSettings {
	return EdgeSettings{
		EdgeAddr: ":8000", UpstreamTimeout: 30 * time.Second, ForwardAuthPath: "/_oidcgate/auth",
		AllowedAlgs: []string{keys.ES256, keys.RS256, keys.PS256, keys.EdDSA}, Leeway: 30 * time.Second, RequireTyp: true,
		TokenCacheTTL: 5 * time.Minute, TokenCacheSize: 200_000, IntrospectionTTL: time.Minute,
		HeaderSubject: edge.DefaultHeaders.Subject, HeaderClientID: edge.DefaultHeaders.ClientID,
		HeaderScopes: edge.DefaultHeaders.Scopes, HeaderAudience: edge.DefaultHeaders.Audience,
		HeaderClaims: edge.DefaultHeaders.Claims, PassAuthorization: true,
	}
}

func (c *EdgeSettings) validate(p *problems) {
	p.addr("edge_addr", c.EdgeAddr)
	if c.Upstream != "" {
		if u, err := url.Parse(c.Upstream); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add("upstream", "not an http(s) URL: %q", c.Upstream)
		}
	}
	p.positive("upstream_timeout", c.UpstreamTimeout)
	p.positive("token_cache_ttl", c.TokenCacheTTL)
	p.positive("introspection_ttl", c.IntrospectionTTL)
	if c.Leeway < 0 || c.Leeway > 5*time.Minute {
		p.add("leeway", "must be between 0s and 5m, got %s", c.Leeway)
	}
	if c.TokenCacheSize <= 0 {
		p.add("token_cache_size", "must be positive, got %d", c.TokenCacheSize)
	}
	if !strings.HasPrefix(c.ForwardAuthPath, "/") || len(c.ForwardAuthPath) < 2 {
		p.add("forward_auth_path", "must be a path like /_oidcgate/auth, got %q", c.ForwardAuthPath)
	}
	if len(c.AllowedAlgs) == 0 {
		p.add("allowed_algs", "at least one algorithm is needed")
	}
	for _, a := range c.AllowedAlgs {
		if !keys.Supported(a) {
			p.add("allowed_algs", "%q is not one of ES256, RS256, PS256, EdDSA", a)
		}
	}
	for name, h := range map[string]string{"header_subject": c.HeaderSubject, "header_client_id": c.HeaderClientID,
		"header_scopes": c.HeaderScopes, "header_audience": c.HeaderAudience, "header_claims": c.HeaderClaims} {
		if !validHeaderName(h) {
			p.add(name, "not a header name: %q", h)
		}
	}
	if c.Routes != "" {
		if _, err := edge.LoadRoutes(c.Routes); err != nil {
			p.add("routes", "%v", err)
		}
	} else if c.Audience == "" {
		p.add("audience", "required without --routes: the audience every token must carry (or any, to accept tokens for any audience)")
	}
	switch c.ForwardAuthProxy {
	case "", edge.ProxyNginx, edge.ProxyTraefik, edge.ProxyCaddy, edge.ProxyEnvoy:
	default:
		p.add("forward_auth_proxy", "must be nginx, traefik, caddy or envoy, got %q", c.ForwardAuthProxy)
	}
}

func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// EdgeConfig configures `oidcgate edge`.
type EdgeConfig struct {
	ServeConfig  `yaml:",inline"`
	EdgeSettings `yaml:",inline"`

	Issuer                string        `yaml:"issuer" help:"the provider's issuer URL (tokens' iss must equal it; its discovery document names the JWKS and introspection endpoints)"`
	JWKSURI               string        `yaml:"jwks_uri" help:"JWKS URL, instead of discovery"`
	IntrospectionEndpoint string        `yaml:"introspection_endpoint" help:"RFC 7662 endpoint for opaque tokens, instead of discovery"`
	ClientID              string        `yaml:"client_id" help:"the edge's client ID for introspection (empty: opaque tokens are refused)"`
	ClientSecret          string        `yaml:"client_secret" secret:"true" help:"the edge's client secret for introspection"`
	JWKSMinRefresh        time.Duration `yaml:"jwks_min_refresh" help:"least time between JWKS fetches caused by unknown kids"`
	JWKSMaxStale          time.Duration `yaml:"jwks_max_stale" help:"how long cached keys are used while the provider is unreachable, before answering 503"`
	JWKSRefresh           time.Duration `yaml:"jwks_refresh" help:"JWKS refresh period when the response has no Cache-Control max-age"`
	JWKSMaxRefresh        time.Duration `yaml:"jwks_max_refresh" help:"longest time between two JWKS refreshes whatever the max-age says: a revoked key is trusted at most this long (conditional requests: an unchanged set costs a 304)"`
}

func defaultEdgeConfig() EdgeConfig {
	sc := defaultServeConfig()
	return EdgeConfig{ServeConfig: sc, EdgeSettings: defaultEdgeSettings(),
		JWKSMinRefresh: 30 * time.Second, JWKSMaxStale: 24 * time.Hour, JWKSRefresh: 5 * time.Minute,
		JWKSMaxRefresh: time.Minute}
}

// Validate reports every bad setting at once.
func (c *EdgeConfig) Validate() error {
	var p problems
	c.ServeConfig.validate(&p)
	c.EdgeSettings.validate(&p)
	if u, err := url.Parse(c.Issuer); c.Issuer == "" || err != nil || !u.IsAbs() {
		p.add("issuer", "required: the provider's issuer URL")
	}
	for name, v := range map[string]string{"jwks_uri": c.JWKSURI, "introspection_endpoint": c.IntrospectionEndpoint} {
		if u, err := url.Parse(v); v != "" && (err != nil || !u.IsAbs()) {
			p.add(name, "not an absolute URL: %q", v)
		}
	}
	if (c.ClientID == "") != (c.ClientSecret == "") {
		p.add("client_id", "--client-id and --client-secret go together")
	}
	p.positive("jwks_min_refresh", c.JWKSMinRefresh)
	p.positive("jwks_max_stale", c.JWKSMaxStale)
	p.positive("jwks_refresh", c.JWKSRefresh)
	p.positive("jwks_max_refresh", c.JWKSMaxRefresh)
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

func (c *EdgeSettings) edgeConfig() edge.Config {
	return edge.Config{Upstream: c.Upstream, UpstreamTimeout: c.UpstreamTimeout, ForwardAuthPath: c.ForwardAuthPath, ForwardAuthProxy: c.ForwardAuthProxy,
		Headers: edge.Headers{Subject: c.HeaderSubject, ClientID: c.HeaderClientID, Scopes: c.HeaderScopes,
			Audience: c.HeaderAudience, Claims: c.HeaderClaims},
		SendClaims: c.SendClaims, PassAuthorization: c.PassAuthorization}
}

func (c *EdgeSettings) validatorConfig(issuer string) edge.ValidatorConfig {
	return edge.ValidatorConfig{Issuer: issuer, Algs: c.AllowedAlgs, Leeway: c.Leeway, RequireTyp: c.RequireTyp,
		CacheTTL: c.TokenCacheTTL, CacheSize: c.TokenCacheSize, IntrospectionTTL: c.IntrospectionTTL,
		NegativeTTL: 5 * time.Second, KeepClaims: c.SendClaims}
}

// newEdge builds the validator and the edge over a key set.
func (c *EdgeSettings) newEdge(issuer string, ks keys.KeySet, rl edge.RevocationList, in edge.Introspector,
	log *slog.Logger, reg prometheus.Registerer) (*edge.Edge, *edge.Validator, error) {
	routes, err := c.routes()
	if err != nil {
		return nil, nil, err
	}
	v, err := edge.NewValidator(c.validatorConfig(issuer), ks, rl, in, reg)
	if err != nil {
		return nil, nil, err
	}
	e, err := edge.New(c.edgeConfig(), v, routes, log, reg)
	if err != nil {
		v.Close()
		return nil, nil, err
	}
	return e, v, nil
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
	jwksURI, introURL := cfg.JWKSURI, cfg.IntrospectionEndpoint
	if jwksURI == "" || (introURL == "" && cfg.ClientID != "") {
		dj, di, err := discover(ctx, cfg.Issuer, log)
		if err != nil {
			return err
		}
		if jwksURI == "" {
			jwksURI = dj
		}
		if introURL == "" {
			introURL = di
		}
	}
	reg := newRegistry()
	remote, err := edge.NewRemoteKeys(edge.RemoteKeysConfig{URL: jwksURI, MinRefresh: cfg.JWKSMinRefresh, MaxStale: cfg.JWKSMaxStale,
		DefaultRefresh: cfg.JWKSRefresh, MaxRefresh: cfg.JWKSMaxRefresh, FetchTimeout: 5 * time.Second}, log, reg, time.Now)
	if err != nil {
		return err
	}
	var in edge.Introspector
	if cfg.ClientID != "" && introURL != "" {
		in = edge.NewHTTPIntrospector(introURL, cfg.ClientID, cfg.ClientSecret, 5*time.Second)
	}
	e, v, err := cfg.EdgeSettings.newEdge(cfg.Issuer, remote, nil, in, log, reg)
	if err != nil {
		return err
	}
	defer v.Close()

	var certs *certReloader
	if cfg.TLSCert != "" {
		if certs, err = newCertReloader(cfg.TLSCert, cfg.TLSKey, log); err != nil {
			return err
		}
	}
	checks := []readiness{{name: "jwks", check: func(context.Context) error { return remote.Ready() }}}
	edgeServe := cfg.ServeConfig
	edgeServe.MaxRequestBodySize = max(edgeServe.MaxRequestBodySize, edgeMaxBody)
	log.Info("oidcgate edge starting", "version", version, "issuer", cfg.Issuer, "jwks_uri", jwksURI, "upstream", cfg.Upstream)
	lc := &lifecycle{}
	return runListeners(ctx, lc, []listener{
		{"edge", cfg.EdgeAddr, e.Handler(), nil, edgeServe},
		{"ops", cfg.OpsAddr, opsHandler(lc, reg, checks, nil, log), nil, cfg.ServeConfig},
	}, certs, cfg.ServeConfig, log, remote.Run)
}
