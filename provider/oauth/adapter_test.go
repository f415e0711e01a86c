package oauth

import (
	"io"
	"log/slog"
	"testing"

	"github.com/valyala/fasthttp"
)

func noop(*fasthttp.RequestCtx) error { return nil }

// adapterRequest is a request as the edge's forward-auth gets one.
func adapterRequest(rc *fasthttp.RequestCtx) {
	rc.Request.Reset()
	rc.Response.Reset()
	rc.Request.SetRequestURI("/_oidcgate/auth")
	rc.Request.Header.Set("Authorization", "Bearer x")
	rc.Request.Header.Set("X-Original-URI", "/api/things")
}

// TestAdapterAllocations: the adapter as the edge runs it (no metrics)
// allocates nothing per request: the edge's cache hit has no allocation to
// spare.
func TestAdapterAllocations(t *testing.T) {
	a := &Adapter{Listener: "edge", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), IDs: NewRequestIDs()}
	h := a.Handle("edge", noop)
	var rc fasthttp.RequestCtx
	for range 10 {
		adapterRequest(&rc)
		h(&rc)
	}
	if n := testing.AllocsPerRun(200, func() { adapterRequest(&rc); h(&rc) }); n != 0 {
		t.Errorf("%.0f allocations per request, want 0", n)
	}
	if id := rc.Response.Header.Peek("X-Request-Id"); len(id) == 0 {
		t.Error("no request ID")
	}
}

// BenchmarkAdapter is what the adapter adds to a request (request ID,
// panic recovery, the Authorization check), beside the bare handler.
func BenchmarkAdapter(b *testing.B) {
	a := &Adapter{Listener: "edge", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), IDs: NewRequestIDs()}
	for _, tc := range []struct {
		name string
		h    fasthttp.RequestHandler
	}{{"bare", func(rc *fasthttp.RequestCtx) { noop(rc) }}, {"adapted", a.Handle("edge", noop)}} {
		b.Run(tc.name, func(b *testing.B) {
			var rc fasthttp.RequestCtx
			b.ReportAllocs()
			for b.Loop() {
				adapterRequest(&rc)
				tc.h(&rc)
			}
		})
	}
}
