package provider

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fasthttp/router"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/oidcgate/oidcgate/cache"
	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider/oauth"

	"github.com/oidcgate/oidcgate/provider/storage"
)

// Provider is the OpenID Connect provider.
type Provider struct {
	cfg Config
	// The store, as each part of the provider uses it.
	grantDB  grantStore
	flowDB   flowStore
	tokenDB  tokenStore
	adminDB  adminStore
	clientDB interface {
		GetClient(ctx context.Context, id string) (*storage.Client, error)
	}
	lifeDB interface {
		Ping(ctx context.Context) error
		DeleteExpired(ctx context.Context) (int, error)
	}
	ring *keys.Ring
	log  *slog.Logger
	now  func() time.Time

	jwksCacheControl string
	issuerPath       string // the issuer URL's path: every endpoint's prefix
	verifier         *keys.Verifier
	clients          *cache.Cache[string, cachedClient]
	discovery        []byte // OIDC Discovery document, rendered once
	asMetadata       []byte // RFC 8414 metadata, rendered once
	metrics          *providerMetrics
	grantHandlers    map[string]grantHandler
	revs             *revocations
	staleLogged      atomic.Int64 // Unix nanoseconds of the last stale-client warning
	passwords        *passwords
	limiter          *limiter
	bc               *backchannel
	revDB            revocationStreamStore
	pending          pendingLimit // authorization requests per client IP
	origin           string       // the issuer's scheme://host, for Origin checks
	https            bool         // an https issuer: Secure cookies
	steps            []step       // the sign-in pipeline, in order (flow.go)
	upstreams        []*upstream  // the connectors, in configuration order
	fedDB            fedStore
	mfaDB            factorStore
	accountDB        accountStore
	adminTokens      adminTokenStore
	adminWrites      adminWriteStore
	regDB            registrationStore
	adminTokenWrites storage.AdminTokens
	assertDB         storage.Assertions
	mtlsProxies      []*net.IPNet
	mtlsRoots        *x509.CertPool // --mtls-client-ca
	assertKeys       assertionKeys
	auditDB          interface {
		AppendAuditEvent(ctx context.Context, e *storage.AuditEvent) error
		ListAuditEvents(ctx context.Context, f storage.AuditFilter) ([]*storage.AuditEvent, error)
	}
	auditLog    *slog.Logger       // log=audit
	webauthn    *webauthn.WebAuthn // the relying party of security keys and passkeys
	scopeClaims map[string][]string
	hook        *tokenHook // nil: none configured

	gcRuns    *prometheus.CounterVec
	gcDeleted prometheus.Counter

	public fasthttp.RequestHandler
	admin  fasthttp.RequestHandler
}

// New builds a provider over store, signing with ring.
func New(cfg Config, store storage.Storage, ring *keys.Ring, log *slog.Logger, reg prometheus.Registerer, now func() time.Time) (*Provider, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	m, err := oauth.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	pm, err := newProviderMetrics(reg)
	if err != nil {
		return nil, err
	}
	clients, err := cache.New[string, cachedClient](cache.Config{Name: "clients", MaxItems: 100_000}, reg)
	if err != nil {
		return nil, err
	}
	verifier, err := keys.NewVerifier(ring, ring.Algs())
	if err != nil {
		return nil, err
	}
	iu, _ := url.Parse(cfg.Issuer) // validated
	p := &Provider{
		cfg:     cfg,
		grantDB: store, flowDB: store, mfaDB: store, accountDB: store, adminTokens: store, adminWrites: store, regDB: store, adminTokenWrites: store, assertDB: store, auditDB: store, auditLog: log.With("log", "audit"), tokenDB: store, adminDB: store, clientDB: store, lifeDB: store,
		ring: ring,
		log:  log,
		now:  now,

		jwksCacheControl: fmt.Sprintf("public, max-age=%d", int(ring.JWKSMaxAge().Seconds())),
		issuerPath:       iu.Path,
		verifier:         verifier,
		clients:          clients,
		metrics:          pm,
		gcRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oidcgate_store_gc_runs_total",
			Help: "Runs of the expired-record collector, by outcome.",
		}, []string{"outcome"}),
		gcDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oidcgate_store_gc_deleted_total",
			Help: "Expired records deleted by the collector.",
		}),
	}
	for _, c := range []prometheus.Collector{p.gcRuns, p.gcDeleted} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	if p.bc, err = newBackchannel(store, cfg, reg); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	p.revs = &revocations{store: store, now: now, accessTTL: max(cfg.AccessTokenTTL, 24*time.Hour), ending: p.queueLogouts}
	p.grantHandlers = p.grants()
	p.passwords = newPasswords(store, cfg.Argon2)
	p.limiter = newLimiter(now)
	p.pending = pendingLimit{l: newLimiter(now), rule: limitRule{cfg.MaxPendingPerIP, cfg.InteractionTTL}}
	p.origin, p.https = webOrigin(iu), iu.Scheme == "https"
	p.scopeClaims = mergeScopeClaims(cfg.ScopeClaims)
	if p.mtlsProxies, err = parseProxies(cfg.MTLSTrustedProxies); err != nil {
		return nil, err
	}
	if p.mtlsRoots, err = loadRoots(cfg.MTLSClientCA); err != nil {
		return nil, err
	}
	p.assertKeys = assertionKeys{static: map[string]staticVerifier{}, remote: map[string]*keys.Verifier{}, discovery: map[string]string{}}
	if p.hook, err = newTokenHook(cfg, reg); err != nil {
		return nil, err
	}
	if p.webauthn, err = newWebAuthn(cfg, p.origin); err != nil {
		return nil, fmt.Errorf("provider: webauthn: %w", err)
	}
	p.steps = []step{p.authenticateStep(), p.mfaStep(), p.consentStep()}
	p.fedDB = store
	p.revDB = store
	if p.upstreams, err = newUpstreams(cfg, now); err != nil {
		return nil, err
	}
	if p.discovery, p.asMetadata, err = p.renderDiscovery(); err != nil {
		return nil, err
	}
	ids := oauth.NewRequestIDs()
	pub := &oauth.Adapter{Listener: "public", Log: log, Metrics: m, IDs: ids}
	if iu.Scheme == "https" {
		pub.HSTS = "max-age=31536000" // RFC 6797; sub-domains are the operator's call
	}
	p.public = p.publicRoutes(pub)
	p.admin = p.adminRoutes(&oauth.Adapter{Listener: "admin", Log: log, Metrics: m, IDs: ids, HostAllowed: oauth.AdminHost(cfg.AdminHosts),
		Authorize: p.authenticateAdmin, Problem: true})
	if cfg.AdminInsecure {
		log.Warn("the admin API answers without authentication (--admin-insecure): anyone who reaches the admin listener controls this provider")
	}
	return p, nil
}

// webOrigin is the issuer's origin as a browser writes it in Origin (RFC
// 6454 §6.1): lower-case host, no default port.
func webOrigin(u *url.URL) string {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" && !(u.Scheme == "https" && port == "443") && !(u.Scheme == "http" && port == "80") {
		host += ":" + port
	}
	return u.Scheme + "://" + host
}

func newRouter(a *oauth.Adapter) *router.Router {
	r := router.New()
	r.NotFound = a.Handle("not_found", func(*fasthttp.RequestCtx) error { return oauth.ErrNotFound() })
	r.MethodNotAllowed = a.Handle("method_not_allowed", func(*fasthttp.RequestCtx) error { return oauth.ErrMethodNotAllowed() })
	r.HandleOPTIONS = false
	return r
}

func (p *Provider) publicRoutes(a *oauth.Adapter) fasthttp.RequestHandler {
	r := newRouter(a)
	at := func(path string) string { return p.issuerPath + path }
	r.GET(at("/.well-known/openid-configuration"), a.Handle("discovery", p.serveBytes(p.discovery)))
	// RFC 8414 §3: the well-known segment goes before the issuer's path.
	r.GET("/.well-known/oauth-authorization-server"+p.issuerPath, a.Handle("as_metadata", p.serveBytes(p.asMetadata)))
	r.GET(at("/jwks"), a.Handle("jwks", p.jwks))
	r.POST(at("/token"), a.Handle("token", p.token))
	r.POST(at("/introspect"), a.Handle("introspect", p.introspect))
	r.POST(at("/revoke"), a.Handle("revoke", p.revoke))
	r.POST(at("/par"), a.Handle("par", p.par))
	r.GET(at("/revocations"), a.Handle("revocations", p.revocationStream))
	r.POST(at("/device_authorization"), a.Handle("device_authorization", p.deviceAuthorization))
	r.GET(at("/device"), a.Handle("device", p.deviceHandler))
	r.POST(at("/device"), a.Handle("device", p.deviceHandler))
	r.GET(at("/authorize"), a.Handle("authorize", p.authorizeHandler))
	r.POST(at("/authorize"), a.Handle("authorize", p.authorizeHandler))
	login, consent := p.loginHandler(), p.consentHandler()
	r.GET(at("/login"), a.Handle("login", login))
	r.POST(at("/login"), a.Handle("login", login))
	r.GET(at("/login/{connector}"), a.Handle("login_connector", p.startUpstreamHandler))
	r.GET(at("/connectors/{connector}/callback"), a.Handle("connector_callback", p.callbackHandler))
	mfa := p.mfaHandler()
	r.GET(at("/mfa"), a.Handle("mfa", mfa))
	r.POST(at("/mfa"), a.Handle("mfa", mfa))
	if p.cfg.Registration != registrationOff {
		r.POST(at("/register"), a.Handle("register", p.register))
		r.GET(at("/register/{id}"), a.Handle("registration", p.readRegistration))
		r.PUT(at("/register/{id}"), a.Handle("registration", p.updateRegistration))
		r.DELETE(at("/register/{id}"), a.Handle("registration", p.deleteRegistration))
	}
	r.GET(at("/continue"), a.Handle("continue", p.continueHandler))
	r.POST(at("/webauthn/mfa/begin"), a.Handle("webauthn", p.webauthnHandler(p.mfaWebauthnBegin)))
	r.POST(at("/webauthn/mfa/finish"), a.Handle("webauthn", p.webauthnHandler(p.mfaWebauthnFinish)))
	r.POST(at("/webauthn/passkey/begin"), a.Handle("webauthn", p.webauthnHandler(p.passkeyBegin)))
	r.POST(at("/webauthn/passkey/finish"), a.Handle("webauthn", p.webauthnHandler(p.passkeyFinish)))
	r.POST(at("/webauthn/register/begin"), a.Handle("webauthn", p.webauthnHandler(p.registerBegin)))
	r.POST(at("/webauthn/register/finish"), a.Handle("webauthn", p.webauthnHandler(p.registerFinish)))
	r.GET(at("/static/webauthn.js"), a.Handle("static", p.webauthnScript))
	r.GET(at("/account"), a.Handle("account", p.accountHandler))
	r.POST(at("/account"), a.Handle("account", p.accountHandler))
	r.GET(at("/consent"), a.Handle("consent", consent))
	r.POST(at("/consent"), a.Handle("consent", consent))
	r.GET(at("/userinfo"), a.Handle("userinfo", p.userinfo))
	r.POST(at("/userinfo"), a.Handle("userinfo", p.userinfo))
	r.GET(at("/end_session"), a.Handle("end_session", p.endSessionHandler))
	r.POST(at("/end_session"), a.Handle("end_session", p.endSessionHandler))
	return r.Handler
}

// serveBytes serves a pre-rendered JSON document.
func (p *Provider) serveBytes(body []byte) oauth.HandlerFunc {
	return func(ctx *fasthttp.RequestCtx) error {
		ctx.SetContentType("application/json")
		ctx.Response.Header.Set("Cache-Control", "public, max-age=3600")
		ctx.SetBody(body)
		return nil
	}
}

// jwks serves the key ring's pre-rendered JWK Set (RFC 7517 §5) with an
// ETag, answering a matching If-None-Match with 304.
func (p *Provider) jwks(ctx *fasthttp.RequestCtx) error {
	body, etag := p.ring.JWKS()
	ctx.Response.Header.Set("ETag", etag)
	ctx.Response.Header.Set("Cache-Control", p.jwksCacheControl)
	if string(ctx.Request.Header.Peek("If-None-Match")) == etag {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return nil
	}
	ctx.SetContentType("application/jwk-set+json")
	ctx.SetBody(body)
	return nil
}

// Public serves the protocol endpoints.
func (p *Provider) Public() fasthttp.RequestHandler { return p.public }

// Admin serves the operator API; bind it to loopback or a private network.
func (p *Provider) Admin() fasthttp.RequestHandler { return p.admin }

// Ready reports whether the provider can serve: the store answers and
// every configured algorithm has a signing key.
func (p *Provider) Ready(ctx context.Context) error {
	if err := p.lifeDB.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return p.ring.Ready()
}

// Close releases the provider's caches.
func (p *Provider) Close() { p.clients.Close() }

// Run deletes expired records every GCInterval, and sends back-channel
// logout tokens, until ctx is cancelled.
func (p *Provider) Run(ctx context.Context) {
	go p.deliverLogouts(ctx)
	if w, ok := p.lifeDB.(storage.Watcher); ok {
		go w.Watch(ctx, func(what string) { p.changed(ctx, what) })
	}
	t := time.NewTicker(p.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.collect(ctx)
		}
	}
}

// changed applies another replica's change: a revocation moves the
// revocation count (an in-process edge re-checks its cached tokens), a
// key-ring change reloads the ring.
func (p *Provider) changed(ctx context.Context, what string) {
	if what == storage.ChangedRevocations || what == storage.ChangedAll {
		p.revs.epoch.Add(1)
	}
	if what == storage.ChangedKeys || what == storage.ChangedAll {
		if err := p.ring.Reload(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("reloading the key ring after another replica's change", "error", err)
		}
	}
}

func (p *Provider) collect(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	n, err := p.lifeDB.DeleteExpired(ctx)
	if err != nil {
		p.gcRuns.WithLabelValues("error").Inc()
		p.log.Error("deleting expired records", "error", err)
		return
	}
	p.gcRuns.WithLabelValues("ok").Inc()
	p.gcDeleted.Add(float64(n))
	if n > 0 {
		p.log.Debug("deleted expired records", "count", n)
	}
}
