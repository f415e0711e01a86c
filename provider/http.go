package provider

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

// handlerFunc is what every endpoint is: it writes a response or returns
// an error, which the adapter renders.
type handlerFunc func(ctx *fasthttp.RequestCtx) error

// httpMetrics counts requests by listener, route (a bounded set of names)
// and status.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
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

// requestIDs hands out IDs that are unique per process and cheap: a random
// per-process prefix and a counter.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var b [6]byte
	rand.Read(b[:])
	return &requestIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (r *requestIDs) next() string {
	return r.prefix + strconv.FormatUint(r.n.Add(1), 36)
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

// adapter turns handlerFuncs into fasthttp handlers: it assigns a request
// ID, recovers panics, renders errors and records metrics.
type adapter struct {
	listener string
	log      *slog.Logger
	metrics  *httpMetrics
	ids      *requestIDs
	// hsts, when set, is sent as Strict-Transport-Security (an https issuer).
	hsts string
	// hostAllowed, when set, refuses requests for any other Host: the
	// admin API is not to be reached through a DNS name an attacker's page
	// rebinds to loopback.
	hostAllowed func(host []byte) bool
}

func (a *adapter) handle(route string, h handlerFunc) fasthttp.RequestHandler {
	requests := func(code int) prometheus.Counter {
		return a.metrics.requests.WithLabelValues(a.listener, route, strconv.Itoa(code))
	}
	ok := requests(200) // resolved once: most answers are 200
	duration := a.metrics.duration.WithLabelValues(a.listener, route)
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		var id string
		if in := ctx.Request.Header.Peek("X-Request-Id"); validRequestID(in) {
			id = string(in)
		} else {
			id = a.ids.next()
		}
		ctx.Response.Header.Set("X-Request-Id", id)
		if a.hsts != "" {
			ctx.Response.Header.Set("Strict-Transport-Security", a.hsts)
		}
		if a.hostAllowed != nil && !a.hostAllowed(ctx.Request.Header.Host()) {
			a.render(ctx, id, route, newError(http.StatusMisdirectedRequest, "invalid_request", "this listener does not answer to that Host"))
			return
		}
		defer func() {
			if r := recover(); r != nil {
				a.render(ctx, id, route, ErrServer(fmt.Errorf("panic: %v\n%s", r, debug.Stack())))
			}
			if code := ctx.Response.StatusCode(); code == 200 {
				ok.Inc()
			} else {
				requests(code).Inc()
			}
			duration.Observe(time.Since(start).Seconds())
		}()
		if len(ctx.Request.Header.PeekAll("Authorization")) > 1 {
			// Which one counts would be up to each hop: refuse (RFC 9110 §5.3).
			a.render(ctx, id, route, ErrInvalidRequest("more than one Authorization header"))
			return
		}
		if err := h(ctx); err != nil {
			a.render(ctx, id, route, err)
		}
	}
}

// retryAfterOutage is the Retry-After (seconds, RFC 9110 §10.2.3) of a 503:
// a store outage is usually a fail-over or a restart.
const retryAfterOutage = "2"

// adminHost accepts the Hosts an operator reaches the admin API by: an IP
// literal, localhost, or one of extra — never an arbitrary DNS name.
func adminHost(extra []string) func([]byte) bool {
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
func (a *adapter) render(ctx *fasthttp.RequestCtx, id, route string, err error) {
	e := asError(err)
	if e.Status >= 500 {
		a.log.Error("request failed", "request_id", id, "route", route, "error", err)
	} else {
		a.log.Debug("request rejected", "request_id", id, "route", route, "error", e.Code, "description", e.Description)
	}
	writeError(ctx, e)
}

// writeError writes e as the RFC 6749 §5.2 JSON body.
func writeError(ctx *fasthttp.RequestCtx, e *Error) {
	ctx.Response.ResetBody()
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("Pragma", "no-cache")
	if e.WWWAuthenticate != "" {
		ctx.Response.Header.Set("WWW-Authenticate", e.WWWAuthenticate)
	}
	if e.Status == http.StatusServiceUnavailable && len(ctx.Response.Header.Peek("Retry-After")) == 0 {
		ctx.Response.Header.Set("Retry-After", retryAfterOutage)
	}
	b, _ := json.Marshal(errorBody{Error: e.Code, Description: e.Description})
	ctx.SetBody(b)
}

// writeJSON renders v with the given status.
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) error {
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
		writeError(ctx, ErrInvalidRequest("request body too large"))
	case errors.As(err, &ne) && ne.Timeout():
		writeError(ctx, newError(http.StatusRequestTimeout, "invalid_request", "request not received in time"))
	default:
		writeError(ctx, ErrInvalidRequest("malformed HTTP request"))
	}
}
