package edge_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestWebSocketThroughTheProxy: a real WebSocket client (coder/websocket)
// reaches a real WebSocket server behind the edge once its handshake
// carries a valid token; the server sees the identity headers, not the
// client's forgeries; a handshake without a token, or with a bad one, is
// refused before anything reaches the upstream.
func TestWebSocketThroughTheProxy(t *testing.T) {
	seen := make(chan http.Header, 4)
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	}))
	t.Cleanup(ws.Close)
	w := newWorld(t, worldOpts{upstream: ws.URL})
	tok := w.token(t, "svc", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(w.edgeURL, "http") + "/socket"

	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{
		"Authorization": {"Bearer " + tok}, "X-Auth-Subject": {"forged"}}})
	if err != nil {
		t.Fatalf("a WebSocket with a token: %v (%v)", err, resp)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	h := <-seen
	if h.Get("X-Auth-Subject") != "svc" || h.Get("X-Auth-Client-Id") != "svc" || h.Get("Authorization") != "" {
		t.Errorf("the upstream's handshake headers: %v", h)
	}
	for _, m := range []string{"one", "two", strings.Repeat("x", 70_000)} {
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || string(got) != "echo: "+m {
			t.Fatalf("echo of a %d-byte message: %v %.40q", len(m), err, got)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")

	for name, hdr := range map[string]http.Header{
		"no token":    {},
		"a bad token": {"Authorization": {"Bearer " + tok[:len(tok)-4] + "AAAA"}},
	} {
		_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: hdr})
		if err == nil || resp == nil || resp.StatusCode != 401 {
			t.Errorf("%s: %v %v", name, err, resp)
		}
	}
	select {
	case h := <-seen:
		t.Errorf("a refused handshake reached the upstream: %v", h)
	default:
	}
	if n := counter(t, w, "oidcgate_edge_upgrades_total", ""); n != 1 {
		t.Errorf("upgrades counted: %v", n)
	}
}
