package edge

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider/oauth"
)

// Headers names the identity headers sent upstream (proxy) or returned
// (forward-auth). Any header of these names a client sends is removed.
type Headers struct {
	Subject  string `yaml:"header_subject" help:"upstream header carrying the token's sub"`
	ClientID string `yaml:"header_client_id" help:"upstream header carrying the token's client_id"`
	Scopes   string `yaml:"header_scopes" help:"upstream header carrying the token's scopes"`
	Audience string `yaml:"header_audience" help:"upstream header carrying the token's audiences"`
	// Claims, when set, carries the token's claims as base64url JSON.
	Claims string `yaml:"header_claims" help:"upstream header carrying all claims as base64url JSON, with --send-claims"`
}

// DefaultHeaders are the X-Auth-* names.
func DefaultHeaders() Headers {
	return Headers{Subject: "X-Auth-Subject", ClientID: "X-Auth-Client-Id", Scopes: "X-Auth-Scopes",
		Audience: "X-Auth-Audience", Claims: "X-Auth-Claims"}
}

// Config is the edge's HTTP behaviour. Each field but Clock is a setting,
// declared here once: its yaml tag is its name (the binary derives --flag
// and OIDCGATE_ENV from it), its help tag what it means, DefaultConfig its
// default and Validate its bounds.
type Config struct {
	// Upstream is the proxied app; empty: the edge serves forward-auth only.
	Upstream        string        `yaml:"upstream" help:"URL of the app to proxy to, e.g. http://127.0.0.1:3000; empty: forward-auth only"`
	UpstreamTimeout time.Duration `yaml:"upstream_timeout" help:"longest wait for the upstream (then 504)"`
	// ForwardAuthPath is the forward-auth endpoint; requests below it
	// (Envoy ext_authz's path_prefix) are checked for the rest of the path.
	ForwardAuthPath string `yaml:"forward_auth_path" help:"path of the forward-auth endpoint (nginx auth_request, Traefik forwardAuth, Envoy ext_authz path_prefix)"`
	// ForwardAuthProxy is the proxy in front of forward-auth, whose headers
	// alone say what the original request was: nginx (X-Original-URI and
	// -Method), traefik or caddy (X-Forwarded-Uri and -Method), envoy (the
	// path after ForwardAuthPath). Empty: whichever is present, refusing a
	// request that carries both URI headers with different values — a
	// client's own header copied along by the proxy.
	ForwardAuthProxy string  `yaml:"forward_auth_proxy" help:"the proxy in front of forward-auth, whose headers alone are read: nginx (X-Original-URI), traefik or caddy (X-Forwarded-Uri), envoy (the path after --forward-auth-path); empty: either header, refusing a request whose two disagree"`
	Headers          Headers `yaml:",inline"`
	// SendClaims adds the Claims header.
	SendClaims bool `yaml:"send_claims" help:"send the claims header upstream"`
	// PassAuthorization forwards the Authorization header upstream.
	PassAuthorization bool `yaml:"pass_authorization" help:"pass the Authorization header on to the upstream"`
	// Sender-constrained tokens (binding.go).
	PublicURL         string   `yaml:"public_url" help:"the scheme and host clients call the protected app at (e.g. https://api.example.com), for DPoP proofs' htu; empty: from the request (its Host, or X-Forwarded-Proto/-Host in forward-auth)"`
	ClientCertHeader  string   `yaml:"client_cert_header" help:"the header a TLS-terminating proxy puts the client certificate in (Envoy X-Forwarded-Client-Cert, or one set to nginx $ssl_client_escaped_cert), for certificate-bound tokens; read only from --client-cert-proxies"`
	ClientCertProxies []string `yaml:"client_cert_proxies" help:"addresses (IPs or CIDR blocks) of the proxies whose --client-cert-header is believed"`
	// Clock, when set, is the time decisions are made at (tests); nil: the
	// time the request arrived, which fasthttp has read already.
	Clock func() time.Time `yaml:"-"`
}

// DefaultConfig is every edge setting's default.
func DefaultConfig() Config {
	return Config{UpstreamTimeout: 30 * time.Second, ForwardAuthPath: "/_oidcgate/auth", Headers: DefaultHeaders(),
		PassAuthorization: true}
}

// bad is a keys.SettingError: the binary names the setting.
func bad(setting, format string, args ...any) error { return keys.BadSetting(setting, format, args...) }

// Validate reports every bad setting, each a *SettingError.
func (c Config) Validate() error {
	var errs []error
	if c.Upstream != "" {
		if u, err := url.Parse(c.Upstream); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, bad("upstream", "not an http(s) URL: %q", c.Upstream))
		}
	}
	if c.Upstream != "" && c.UpstreamTimeout <= 0 {
		errs = append(errs, bad("upstream_timeout", "must be a positive duration, got %s", c.UpstreamTimeout))
	}
	if !strings.HasPrefix(c.ForwardAuthPath, "/") || len(c.ForwardAuthPath) < 2 {
		errs = append(errs, bad("forward_auth_path", "must be a path like /_oidcgate/auth, got %q", c.ForwardAuthPath))
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			errs = append(errs, bad("public_url", "must be a scheme and host like https://api.example.com, got %q", c.PublicURL))
		}
	}
	if _, err := oauth.ParseProxies(c.ClientCertProxies); err != nil {
		errs = append(errs, bad("client_cert_proxies", "%v", err))
	}
	if c.ClientCertHeader != "" && !validHeaderName(c.ClientCertHeader) {
		errs = append(errs, bad("client_cert_header", "not a header name: %q", c.ClientCertHeader))
	}
	switch c.ForwardAuthProxy {
	case "", ProxyNginx, ProxyTraefik, ProxyCaddy, ProxyEnvoy:
	default:
		errs = append(errs, bad("forward_auth_proxy", "must be nginx, traefik, caddy or envoy, got %q", c.ForwardAuthProxy))
	}
	for name, h := range map[string]string{"header_subject": c.Headers.Subject, "header_client_id": c.Headers.ClientID,
		"header_scopes": c.Headers.Scopes, "header_audience": c.Headers.Audience, "header_claims": c.Headers.Claims} {
		if !validHeaderName(h) {
			errs = append(errs, bad(name, "not a header name: %q", h))
		}
	}
	return errors.Join(errs...)
}

// validHeaderName: a token of letters, digits and dashes.
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

// Edge serves the proxy and the forward-auth endpoint.
type Edge struct {
	cfg         Config
	issuers     []*Validator          // one per trusted issuer (issuers.go)
	replays     replays               // DPoP proofs seen (binding.go)
	certProxies []*net.IPNet          // whose ClientCertHeader is believed
	byIss       map[string]*Validator // by iss
	routes      *Routes
	upstream    *fasthttp.HostClient
	upHost      string
	log         *slog.Logger

	decisions   *prometheus.CounterVec
	byReason    map[string]prometheus.Counter // resolved once: no label hashing per request
	okDecisions prometheus.Counter
	upLatency   prometheus.Histogram
	upgrades    prometheus.Counter
	strip       [][]byte  // identity header names, removed from client requests
	names       [5][]byte // identity header names, canonical: subject, client, scopes, audience, claims
}

// New builds the edge over one issuer's validator.
func New(cfg Config, v *Validator, routes *Routes, log *slog.Logger, reg prometheus.Registerer) (*Edge, error) {
	return NewWithIssuers(cfg, []*Validator{v}, routes, log, reg)
}

// NewWithIssuers builds the edge over several issuers' validators (one per
// issuer; routes may name which they accept).
func NewWithIssuers(cfg Config, issuers []*Validator, routes *Routes, log *slog.Logger, reg prometheus.Registerer) (*Edge, error) {
	if len(issuers) == 0 {
		return nil, errors.New("edge: no issuer")
	}
	e := &Edge{cfg: cfg, issuers: issuers, routes: routes, log: log,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oidcgate_edge_decisions_total",
			Help: "Edge decisions, by reason (ok, public, missing, malformed, expired, bad_signature, unknown_kid, wrong_issuer, wrong_audience, insufficient_scope, inactive, unavailable, no_route, bad_request, claim_rule, rate_limited, sender_constrained).",
		}, []string{"reason"}),
		upLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "oidcgate_edge_upstream_duration_seconds",
			Help:    "Time the upstream took to answer proxied requests.",
			Buckets: prometheus.DefBuckets,
		}),
	}
	for i, h := range []string{cfg.Headers.Subject, cfg.Headers.ClientID, cfg.Headers.Scopes, cfg.Headers.Audience, cfg.Headers.Claims} {
		if h != "" {
			e.strip = append(e.strip, []byte(h))
			e.names[i] = canonical(h)
		}
	}
	// Claim headers are identity headers too: a client cannot send them.
	for _, name := range routes.mappedNames() {
		if !containsName(e.strip, name) {
			e.strip = append(e.strip, name)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	if err := e.resolveIssuers(routes); err != nil {
		return nil, err
	}
	for _, v := range issuers {
		if routes.NeedsClaims() && !v.cfg.KeepClaims {
			return nil, fmt.Errorf("edge: the routes read claims (claims, rule, headers): issuer %s's validator must keep them (KeepClaims)", v.cfg.Issuer)
		}
	}
	e.cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	e.certProxies, _ = oauth.ParseProxies(cfg.ClientCertProxies) // validated
	if cfg.Upstream != "" {
		u, err := url.Parse(cfg.Upstream)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("edge: upstream %q must be an http(s) URL", cfg.Upstream)
		}
		addr := u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
		}
		e.upHost = u.Host
		e.upstream = &fasthttp.HostClient{Addr: addr, IsTLS: u.Scheme == "https", Name: "oidcgate-edge",
			ReadTimeout: cfg.UpstreamTimeout, WriteTimeout: cfg.UpstreamTimeout, MaxConns: 4096,
			DisableHeaderNamesNormalizing: true, DisablePathNormalizing: true}
	}
	e.upgrades = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "oidcgate_edge_upgrades_total",
		Help: "Upgrade requests (WebSockets) authenticated and joined to the upstream.",
	})
	for _, c := range []prometheus.Collector{e.decisions, e.upLatency, e.upgrades} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("edge: register metrics: %w", err)
		}
	}
	e.byReason = map[string]prometheus.Counter{}
	for _, r := range []string{ReasonOK, ReasonPublic, ReasonMissing, ReasonMalformed, ReasonExpired, ReasonBadSignature,
		ReasonUnknownKID, ReasonWrongIssuer, ReasonWrongAudience, ReasonInsufficientScope, ReasonInactive, ReasonUnavailable, ReasonNoRoute,
		ReasonBadRequest, ReasonClaimRule, ReasonRateLimited, ReasonSenderConstrained} {
		e.byReason[r] = e.decisions.WithLabelValues(r)
	}
	e.okDecisions = e.byReason[ReasonOK]
	return e, nil
}

// The proxies forward-auth knows (Config.ForwardAuthProxy).
const (
	ProxyNginx   = "nginx"
	ProxyTraefik = "traefik"
	ProxyCaddy   = "caddy"
	ProxyEnvoy   = "envoy"
)

// Handler serves forward-auth at ForwardAuthPath and proxies the rest,
// behind the adapter the provider's handlers run behind too (request IDs,
// panic recovery: a panic is a 500, not the end of the sidecar; two
// Authorization headers are a 400). It works on the raw request path: the
// one the upstream will get.
func (e *Edge) Handler() fasthttp.RequestHandler {
	prefix := []byte(e.cfg.ForwardAuthPath)
	a := &oauth.Adapter{Listener: "edge", Log: e.log, IDs: oauth.NewRequestIDs()}
	return a.Handle("edge", func(ctx *fasthttp.RequestCtx) error {
		path := ctx.Request.URI().PathOriginal()
		if bytes.HasPrefix(path, prefix) && (len(path) == len(prefix) || path[len(prefix)] == '/') {
			e.forwardAuth(ctx, path[len(prefix):])
			return nil
		}
		if e.upstream == nil {
			return oauth.ErrNotFound()
		}
		e.proxy(ctx, path)
		return nil
	})
}

// decide checks the raw path, matches the route, checks the token and
// applies the route's claim rules.
func (e *Edge) decide(ctx *fasthttp.RequestCtx, method, rawPath, authorization []byte, o *origin) (*Identity, *Route, Decision) {
	now := ctx.Time()
	if e.cfg.Clock != nil {
		now = e.cfg.Clock()
	}
	return e.decideAt(now, &ctx.Request.Header, method, rawPath, authorization, o)
}

// decideAt is decide for a request known by its parts (the proxy's and
// forward-auth's fasthttp request, or an ext_authz CheckRequest): h is
// what a route's rule sees as request.headers.
func (e *Edge) decideAt(now time.Time, h *fasthttp.RequestHeader, method, rawPath, authorization []byte, o *origin) (*Identity, *Route, Decision) {
	path, err := routePath(rawPath)
	if err != nil {
		e.byReason[ReasonBadRequest].Inc()
		return nil, nil, deny(ReasonBadRequest, err.Error())
	}
	r := e.routes.Match(method, path)
	if r == nil {
		e.byReason[ReasonNoRoute].Inc()
		return nil, nil, deny(ReasonNoRoute, "no route allows this request")
	}
	// The validator bounds its own calls out (introspection, revocation
	// list); a cache hit makes none, so no deadline is made here.
	id, d := e.check(context.Background(), now, authorization, r)
	if d.Reason == ReasonOK && id != nil {
		d = e.checkBinding(id, authorization, method, h, o, now)
	}
	if d.Reason == ReasonOK && id != nil {
		d = r.checkClaims(id, method, path, h)
	}
	if d.Reason == ReasonOK && r.limiter != nil {
		d = r.allow(id, now)
	}
	if d.Reason == ReasonOK {
		e.okDecisions.Inc() // the common case, without a map look-up
	} else {
		e.byReason[d.Reason].Inc()
	}
	return id, r, d
}

// unsafeClaim refuses a token whose mapped claim cannot go in a header.
var unsafeClaim = deny(ReasonMalformed, "a claim this route forwards holds control characters")

// forwardAuth answers nginx auth_request (X-Original-URI/-Method), Traefik
// forwardAuth (X-Forwarded-Uri/-Method) and Envoy ext_authz HTTP (the
// original path after the endpoint's path, the original method).
func (e *Edge) forwardAuth(ctx *fasthttp.RequestCtx, rest []byte) {
	method, uri := ctx.Method(), rest
	// One pass over the headers instead of a look-up per name.
	var origURI, origMethod, fwdURI, fwdMethod, authorization []byte
	ctx.Request.Header.VisitAll(func(k, v []byte) {
		switch len(k) {
		case len("Authorization"):
			if bytes.EqualFold(k, []byte("Authorization")) {
				authorization = v
			}
		case len("X-Original-URI"):
			if bytes.EqualFold(k, []byte("X-Original-URI")) {
				origURI = v
			}
		case len("X-Forwarded-Uri"):
			if bytes.EqualFold(k, []byte("X-Forwarded-Uri")) {
				fwdURI = v
			}
		case len("X-Original-Method"):
			if bytes.EqualFold(k, []byte("X-Original-Method")) {
				origMethod = v
			}
		case len("X-Forwarded-Method"):
			if bytes.EqualFold(k, []byte("X-Forwarded-Method")) {
				fwdMethod = v
			}
		}
	})
	switch proxy := e.cfg.ForwardAuthProxy; {
	case proxy == ProxyNginx:
		uri, method = origURI, orDefault(origMethod, method)
	case proxy == ProxyTraefik || proxy == ProxyCaddy:
		uri, method = fwdURI, orDefault(fwdMethod, method)
	case proxy == ProxyEnvoy:
	case len(origURI) > 0 && len(fwdURI) > 0 && !bytes.Equal(origURI, fwdURI):
		e.reject(ctx, deny(ReasonBadRequest, "X-Original-URI and X-Forwarded-Uri disagree"))
		return
	case len(origURI) > 0:
		uri, method = origURI, orDefault(origMethod, method)
	case len(fwdURI) > 0:
		uri, method = fwdURI, orDefault(fwdMethod, method)
	}
	if len(uri) == 0 && e.cfg.ForwardAuthProxy != ProxyEnvoy && e.cfg.ForwardAuthProxy != "" {
		e.reject(ctx, deny(ReasonBadRequest, "the proxy did not say which URI it checks"))
		return
	}
	// Routes are matched on the path the upstream will route, checked by
	// decide: an ambiguous one is refused, not normalised.
	path := pathOnly(uri)
	o := &origin{scheme: ctx.Request.Header.Peek("X-Forwarded-Proto"), host: orDefault(ctx.Request.Header.Peek("X-Forwarded-Host"), ctx.Request.Header.Host()),
		path: path, cert: e.proxyCert(ctx)}
	id, r, d := e.decide(ctx, method, path, authorization, o)
	if d.Status != 200 {
		e.reject(ctx, d)
		return
	}
	// Set the identity headers even when empty (a public route): a proxy
	// that copies them onto the upstream request then overwrites any the
	// client sent.
	if !r.setMapped(&ctx.Response.Header, id) {
		e.byReason[ReasonMalformed].Inc()
		ctx.Response.Header.Reset()
		e.reject(ctx, unsafeClaim)
		return
	}
	e.setIdentity(&ctx.Response.Header, id)
	ctx.SetStatusCode(fasthttp.StatusOK)
	// The answer is its status and headers; an empty body has no type.
	ctx.Response.Header.SetNoDefaultContentType(true)
}

func orDefault(v, def []byte) []byte {
	if len(v) > 0 {
		return v
	}
	return def
}

// pathOnly is a request target without its query.
func pathOnly(uri []byte) []byte {
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	if len(uri) == 0 {
		return []byte("/")
	}
	return uri
}

// hopByHop are the RFC 9110 §7.6.1 connection-specific headers.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
	"TE", "Trailer", "Transfer-Encoding", "Upgrade"}

func stripHopByHop(h interface {
	Peek(string) []byte
	Del(string)
}) {
	if c := h.Peek("Connection"); len(c) > 0 {
		for _, name := range strings.Split(string(c), ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

// proxy forwards an allowed request upstream with the verified identity.
func (e *Edge) proxy(ctx *fasthttp.RequestCtx, rawPath []byte) {
	req := &ctx.Request
	protocol := upgradeOf(&req.Header)
	// Hop-by-hop headers first, so a client's Connection cannot name an
	// identity header set below; then spoofed identity headers, in every
	// spelling a CGI-style upstream folds into the same variable.
	stripHopByHop(&req.Header)
	e.stripIdentity(&req.Header)
	o := &origin{scheme: []byte("http"), host: req.Header.Host(), path: rawPath, cert: e.proxyCert(ctx)}
	if ctx.IsTLS() {
		o.scheme = []byte("https")
	}
	id, r, d := e.decide(ctx, ctx.Method(), rawPath, req.Header.Peek("Authorization"), o)
	if d.Status != 200 {
		e.reject(ctx, d)
		return
	}
	if id != nil {
		if !r.setMapped(&req.Header, id) {
			e.byReason[ReasonMalformed].Inc()
			e.reject(ctx, unsafeClaim)
			return
		}
		e.setIdentity(&req.Header, id)
	}
	if !e.cfg.PassAuthorization {
		req.Header.Del("Authorization")
	}
	clientIP := ctx.RemoteIP().String()
	if prior := req.Header.Peek("X-Forwarded-For"); len(prior) > 0 {
		clientIP = string(prior) + ", " + clientIP
	}
	req.Header.Set("X-Forwarded-For", clientIP)
	proto := "http"
	if ctx.IsTLS() {
		proto = "https"
	}
	req.Header.Set("X-Forwarded-Proto", proto)
	req.Header.SetBytesV("X-Forwarded-Host", req.Header.Host())
	// The upstream's own host, in the header and in the URI fasthttp writes
	// the Host from: never the client's.
	req.URI().SetHost(e.upHost)
	req.Header.SetHost(e.upHost)
	if protocol != nil {
		e.tunnel(ctx, protocol)
		return
	}

	start := time.Now()
	err := e.upstream.DoTimeout(req, &ctx.Response, e.cfg.UpstreamTimeout)
	e.upLatency.Observe(time.Since(start).Seconds())
	if err != nil {
		status := fasthttp.StatusBadGateway
		if errors.Is(err, fasthttp.ErrTimeout) {
			status = fasthttp.StatusGatewayTimeout
		}
		e.log.Warn("upstream request failed", "request_id", oauth.RequestID(ctx), "error", err, "status", status)
		ctx.Response.Reset()
		ctx.Error(fasthttp.StatusMessage(status)+"\n", status)
		return
	}
	stripHopByHop(&ctx.Response.Header)
}

// stripIdentity removes every identity header a client sent, including
// spellings with underscores for dashes (X_Auth_Subject), which CGI, PHP
// and WSGI stacks read as the same HTTP_X_AUTH_SUBJECT.
func (e *Edge) stripIdentity(h *fasthttp.RequestHeader) {
	for _, name := range e.strip {
		h.DelBytes(name)
	}
	var folded [8][]byte
	n := 0
	h.VisitAll(func(k, _ []byte) {
		if n < len(folded) && bytes.IndexByte(k, '_') >= 0 && e.isIdentity(k) {
			folded[n] = append([]byte(nil), k...)
			n++
		}
	})
	for _, k := range folded[:n] {
		h.DelBytes(k)
	}
	if n == len(folded) { // more than fit: go again
		e.stripIdentity(h)
	}
}

// isIdentity: k names an identity header once underscores read as dashes.
func (e *Edge) isIdentity(k []byte) bool {
	for _, name := range e.strip {
		if len(k) != len(name) {
			continue
		}
		same := true
		for i := range k {
			a, b := k[i], name[i]
			if a == '_' {
				a = '-'
			}
			if a|0x20 != b|0x20 {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

// canonical is a header name as fasthttp stores it (Content-Type style).
func canonical(name string) []byte {
	var h fasthttp.ResponseHeader
	h.Set(name, "x")
	var out []byte
	h.VisitAll(func(k, _ []byte) {
		if bytes.EqualFold(k, []byte(name)) {
			out = append([]byte(nil), k...)
		}
	})
	return out
}

// setIdentity writes the identity headers (empty values for no identity).
func (e *Edge) setIdentity(h interface{ SetCanonical(k, v []byte) }, id *Identity) {
	if id == nil {
		id = &noIdentity
	}
	h.SetCanonical(e.names[0], s2b(id.Subject))
	h.SetCanonical(e.names[1], s2b(id.ClientID))
	h.SetCanonical(e.names[2], s2b(id.Scope))
	h.SetCanonical(e.names[3], s2b(id.audience()))
	if e.cfg.SendClaims && e.names[4] != nil {
		h.SetCanonical(e.names[4], []byte(base64.RawURLEncoding.EncodeToString(id.Claims)))
	}
}

var noIdentity Identity

// s2b views a string as bytes without copying; the header copies it.
func s2b(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// reject renders a denial: RFC 6750 §3 WWW-Authenticate and an RFC 6749
// JSON body, through the one renderer the provider uses too. A missing
// token gets the bare challenge and no body (RFC 6750 §3.1: no error code).
func (e *Edge) reject(ctx *fasthttp.RequestCtx, d Decision) {
	if d.Reason == ReasonMissing {
		ctx.Response.ResetBody()
		ctx.SetStatusCode(fasthttp.StatusUnauthorized)
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.Response.Header.Set("WWW-Authenticate", oauth.Challenge("", "", ""))
		return
	}
	if d.RetryAfter > 0 {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(d.RetryAfter))
	}
	oauth.WriteError(ctx, d.err())
}

// err is the decision as the OAuth error it is answered with.
func (d Decision) err() *oauth.Error {
	switch d.Status {
	case fasthttp.StatusBadRequest:
		return oauth.ErrInvalidRequest("%s", d.Description)
	case fasthttp.StatusUnauthorized:
		if d.DPoP { // RFC 9449 §7.1: the DPoP challenge
			err := oauth.New(fasthttp.StatusUnauthorized, "invalid_dpop_proof", "%s", d.Description)
			err.WWWAuthenticate = `DPoP error="invalid_dpop_proof", algs="` + strings.Join(oauth.DPoPAlgs, " ") + `"`
			return err
		}
	case fasthttp.StatusForbidden:
		if d.Reason == ReasonNoRoute || d.Reason == ReasonClaimRule {
			return oauth.New(fasthttp.StatusForbidden, "access_denied", "%s", d.Description)
		}
		return oauth.ErrInsufficientScope(d.Description, d.Scope)
	case fasthttp.StatusTooManyRequests:
		return oauth.New(fasthttp.StatusTooManyRequests, "rate_limited", "%s", d.Description)
	case fasthttp.StatusServiceUnavailable:
		return oauth.New(fasthttp.StatusServiceUnavailable, "temporarily_unavailable", "%s", d.Description)
	}
	return oauth.ErrInvalidToken(false, d.Description)
}
