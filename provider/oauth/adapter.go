// Package oauth owns how oidcgate's endpoints answer, provider and edge
// alike: the one typed OAuth error (RFC 6749 §5.2, RFC 6750 §3) with its
// constructors, the one place it is rendered, and the adapter every
// handler runs behind — request IDs in responses and logs, panic recovery,
// request metrics.
package oauth

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// HandlerFunc is what every endpoint is: it writes a response or returns
// an error, which the adapter renders.
type HandlerFunc func(ctx *fasthttp.RequestCtx) error

// Metrics counts requests by listener, route (a bounded set of names)
// and status.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the request metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oidcgate_http_requests_total",
			Help: "HTTP requests handled, by listener, route and status code.",
		}, []string{"listener", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "oidcgate_http_request_duration_seconds",
			Help:    "HTTP request latency, by listener and route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"listener", "route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// RequestIDs hands out IDs that are unique per process and cheap: a random
// per-process prefix and a counter.
type RequestIDs struct {
	prefix string
	n      atomic.Uint64
}

// NewRequestIDs starts a process's request IDs.
func NewRequestIDs() *RequestIDs {
	var b [6]byte
	rand.Read(b[:])
	return &RequestIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

// append appends the next ID to dst.
func (r *RequestIDs) append(dst []byte) []byte {
	return strconv.AppendUint(append(dst, r.prefix...), r.n.Add(1), 36)
}

// validRequestID accepts a caller's X-Request-Id only when it is short and
// plain, so it cannot inject anything into headers or logs.
func validRequestID(b []byte) bool {
	if len(b) == 0 || len(b) > 64 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Adapter turns HandlerFuncs into fasthttp handlers: it assigns a request
// ID, recovers panics, renders errors and records metrics.
type Adapter struct {
	Listener string
	Log      *slog.Logger
	Metrics  *Metrics // optional: the edge counts its own decisions
	IDs      *RequestIDs
	// HSTS, when set, is sent as Strict-Transport-Security (an https issuer).
	HSTS string
	// HostAllowed, when set, refuses requests for any other Host: the
	// admin API is not to be reached through a DNS name an attacker's page
	// rebinds to loopback.
	HostAllowed func(host []byte) bool
	// Authorize, when set, admits a request before its handler runs (the
	// admin API's bearer tokens); its error is the answer.
	Authorize func(ctx *fasthttp.RequestCtx) error
	// Problem renders errors as RFC 9457 (7807) problem details instead of
	// RFC 6749 §5.2 errors (the admin API).
	Problem bool
}

// Handle adapts h, serving the named route (a bounded set of names: a
// metrics label). A request costs no allocation here: the edge's cache hit
// has none to spare.
func (a *Adapter) Handle(route string, h HandlerFunc) fasthttp.RequestHandler {
	var ok prometheus.Counter
	var duration prometheus.Observer
	requests := func(code int) prometheus.Counter {
		return a.Metrics.requests.WithLabelValues(a.Listener, route, strconv.Itoa(code))
	}
	if a.Metrics != nil {
		ok = requests(200) // resolved once: most answers are 200
		duration = a.Metrics.duration.WithLabelValues(a.Listener, route)
	}
	return func(ctx *fasthttp.RequestCtx) {
		var start time.Time
		if a.Metrics != nil {
			start = time.Now()
		}
		var buf [64]byte
		id := ctx.Request.Header.Peek("X-Request-Id")
		if !validRequestID(id) {
			id = a.IDs.append(buf[:0])
		}
		ctx.Response.Header.SetCanonical([]byte("X-Request-Id"), id)
		if a.HSTS != "" {
			ctx.Response.Header.Set("Strict-Transport-Security", a.HSTS)
		}
		defer func() {
			if r := recover(); r != nil {
				a.render(ctx, string(id), route, ErrServer(fmt.Errorf("panic: %v\n%s", r, debug.Stack())))
			}
			if a.Metrics == nil {
				return
			}
			if code := ctx.Response.StatusCode(); code == 200 {
				ok.Inc()
			} else {
				requests(code).Inc()
			}
			duration.Observe(time.Since(start).Seconds())
		}()
		switch {
		case a.HostAllowed != nil && !a.HostAllowed(ctx.Request.Header.Host()):
			a.render(ctx, string(id), route, New(http.StatusMisdirectedRequest, "invalid_request", "this listener does not answer to that Host"))
		case len(ctx.Request.Header.PeekAll("Authorization")) > 1:
			// Which one counts would be up to each hop: refuse (RFC 9110 §5.3).
			a.render(ctx, string(id), route, ErrInvalidRequest("more than one Authorization header"))
		default:
			if a.Authorize != nil {
				if err := a.Authorize(ctx); err != nil {
					a.render(ctx, string(id), route, err)
					return
				}
			}
			if err := h(ctx); err != nil {
				a.render(ctx, string(id), route, err)
			}
		}
	}
}

// RequestID is the ID the adapter gave the request being served.
func RequestID(ctx *fasthttp.RequestCtx) string {
	return string(ctx.Response.Header.Peek("X-Request-Id"))
}

// RetryAfterOutage is the Retry-After (seconds, RFC 9110 §10.2.3) of a 503:
// a store outage is usually a fail-over or a restart.
const RetryAfterOutage = "2"

// AdminHost accepts the Hosts an operator reaches the admin API by: an IP
// literal, localhost, or one of extra — never an arbitrary DNS name.
func AdminHost(extra []string) func([]byte) bool {
	return func(hostport []byte) bool {
		host, _, err := net.SplitHostPort(string(hostport))
		if err != nil {
			host = string(hostport)
		}
		host = strings.Trim(host, "[]")
		return net.ParseIP(host) != nil || strings.EqualFold(host, "localhost") || slices.ContainsFunc(extra, func(h string) bool {
			return strings.EqualFold(h, host)
		})
	}
}

// errorBody is the RFC 6749 §5.2 error response.
type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// render is the one place an error becomes a response.
func (a *Adapter) render(ctx *fasthttp.RequestCtx, id, route string, err error) {
	e := As(err)
	if e.Status >= 500 {
		a.Log.Error("request failed", "request_id", id, "route", route, "error", err)
	} else {
		a.Log.Debug("request rejected", "request_id", id, "route", route, "error", e.Code, "description", e.Description)
	}
	if a.Problem {
		WriteProblem(ctx, e)
		return
	}
	WriteError(ctx, e)
}

// problem is an RFC 9457 problem details body; error carries the OAuth-style
// code for scripts that switch on it.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error"`
}

// WriteProblem writes e as application/problem+json.
func WriteProblem(ctx *fasthttp.RequestCtx, e *Error) {
	ctx.Response.ResetBody()
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("application/problem+json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if e.WWWAuthenticate != "" {
		ctx.Response.Header.Set("WWW-Authenticate", e.WWWAuthenticate)
	}
	if e.Status == http.StatusServiceUnavailable && len(ctx.Response.Header.Peek("Retry-After")) == 0 {
		ctx.Response.Header.Set("Retry-After", RetryAfterOutage)
	}
	b, _ := json.Marshal(problem{Type: "about:blank", Title: http.StatusText(e.Status), Status: e.Status, Detail: e.Description, Error: e.Code})
	ctx.SetBody(b)
}

// WriteError writes e as the RFC 6749 §5.2 JSON body.
func WriteError(ctx *fasthttp.RequestCtx, e *Error) {
	ctx.Response.ResetBody()
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("Pragma", "no-cache")
	if e.WWWAuthenticate != "" {
		ctx.Response.Header.Set("WWW-Authenticate", e.WWWAuthenticate)
	}
	if e.Status == http.StatusServiceUnavailable && len(ctx.Response.Header.Peek("Retry-After")) == 0 {
		ctx.Response.Header.Set("Retry-After", RetryAfterOutage)
	}
	b, _ := json.Marshal(errorBody{Error: e.Code, Description: e.Description})
	ctx.SetBody(b)
}

// WriteJSON renders v with the given status.
func WriteJSON(ctx *fasthttp.RequestCtx, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
	return nil
}

// RejectMalformed renders the requests fasthttp itself refuses to parse
// (a body over the limit, broken framing, a read timeout) as RFC 6749
// errors. Install it as the public fasthttp.Server's ErrorHandler.
func RejectMalformed(ctx *fasthttp.RequestCtx, err error) {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		WriteError(ctx, ErrInvalidRequest("request body too large"))
	case errors.As(err, &ne) && ne.Timeout():
		WriteError(ctx, New(http.StatusRequestTimeout, "invalid_request", "request not received in time"))
	default:
		WriteError(ctx, ErrInvalidRequest("malformed HTTP request"))
	}
}
