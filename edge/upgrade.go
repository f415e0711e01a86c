package edge

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/oauth"
)

// Upgrade requests (WebSockets, RFC 6455; any RFC 9110 §7.8 Upgrade): the
// handshake is authenticated like any request — the token is checked once,
// at the handshake — then the client's connection and a new one to the
// upstream are joined byte for byte until either side closes. fasthttp's
// client cannot carry an upgraded connection, so the handshake is written
// to the upstream directly.

// upgradeOf returns the protocol a request asks to upgrade to, or nil:
// Upgrade present and Connection naming it (RFC 9110 §7.6.1, §7.8).
func upgradeOf(h *fasthttp.RequestHeader) []byte {
	up := h.Peek("Upgrade")
	if len(up) == 0 {
		return nil
	}
	for _, tok := range bytes.Split(h.Peek("Connection"), []byte(",")) {
		if bytes.EqualFold(bytes.TrimSpace(tok), []byte("upgrade")) {
			return append([]byte(nil), up...)
		}
	}
	return nil
}

// tunnel sends an authenticated upgrade handshake upstream and, once the
// handler returns, joins the two connections.
func (e *Edge) tunnel(ctx *fasthttp.RequestCtx, protocol []byte) {
	req := &ctx.Request
	// Hop-by-hop headers were stripped; an upgrade needs these two back.
	req.Header.Set("Connection", "Upgrade")
	req.Header.SetBytesV("Upgrade", protocol)
	req.URI().DisablePathNormalizing = true // the path decided on is the path sent
	up, err := e.dialUpstream()
	if err == nil {
		up.SetDeadline(time.Now().Add(e.cfg.UpstreamTimeout))
		w := bufio.NewWriter(up)
		if err = req.Write(w); err == nil {
			err = w.Flush()
		}
		up.SetDeadline(time.Time{})
	}
	if err != nil {
		if up != nil {
			up.Close()
		}
		e.log.Warn("upstream upgrade failed", "request_id", oauth.RequestID(ctx), "error", err)
		ctx.Error(fasthttp.StatusMessage(fasthttp.StatusBadGateway)+"\n", fasthttp.StatusBadGateway)
		return
	}
	e.upgrades.Inc()
	ctx.HijackSetNoResponse(true) // the upstream's answer (101, or a refusal) goes to the client as it is
	ctx.Hijack(func(c net.Conn) {
		c.SetDeadline(time.Time{}) // an upgraded connection lives as long as its peers want
		join(c, up)
	})
}

// dialUpstream opens a connection to the upstream, TLS when it is https.
func (e *Edge) dialUpstream() (net.Conn, error) {
	d := &net.Dialer{Timeout: e.cfg.UpstreamTimeout}
	if e.upstream.IsTLS {
		host, _, _ := net.SplitHostPort(e.upstream.Addr)
		return tls.DialWithDialer(d, "tcp", e.upstream.Addr, &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12})
	}
	return d.Dial("tcp", e.upstream.Addr)
}

// join copies both ways until either side ends, then closes both.
func join(a, b net.Conn) {
	var once sync.Once
	closeBoth := func() { a.Close(); b.Close() }
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(a, b); once.Do(closeBoth) }()
	go func() { defer wg.Done(); io.Copy(b, a); once.Do(closeBoth) }()
	wg.Wait()
}
