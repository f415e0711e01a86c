package provider_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/valyala/fasthttp"
)

// chromium starts headless Chromium for t, or skips — loudly, and not under
// CI, where .ci/run installs it.
func chromium(t *testing.T) (context.Context, *rpRequests) {
	t.Helper()
	path := os.Getenv("OIDCGATE_TEST_CHROMIUM")
	if path == "" {
		path, _ = exec.LookPath("chromium")
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("Chromium is not installed: .ci/run installs it (apt-get install chromium)")
		}
		t.Skip("!!! SKIPPED: no chromium on PATH (apt-get install chromium, or set OIDCGATE_TEST_CHROMIUM)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	rp := &rpRequests{}
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && strings.HasPrefix(e.Request.URL, rpRedirect) {
			rp.mu.Lock()
			rp.urls = append(rp.urls, e.Request.URL)
			rp.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, rp
}

// rpRequests are the requests the browser made to the relying party.
type rpRequests struct {
	mu   sync.Mutex
	urls []string
	used map[string]bool // codes code returned already
}

// code is the first code the browser carried to the relying party that
// code has not returned before (the browser may request one URL twice).
func (r *rpRequests) code(t *testing.T) string {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, u := range r.urls {
			if i := strings.Index(u, "code="); i >= 0 {
				code := strings.SplitN(u[i+len("code="):], "&", 2)[0]
				if r.used[code] {
					continue
				}
				if r.used == nil {
					r.used = map[string]bool{}
				}
				r.used[code] = true
				r.mu.Unlock()
				return code
			}
		}
		r.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the browser never reached the relying party with a code: %v", r.urls)
	return ""
}

// TestSignInInChromium: a real browser signs in and consents (its
// Origin and Sec-Fetch-Site as browsers send them pass the cross-site
// check), and the code it carries to the relying party redeems.
func TestSignInInChromium(t *testing.T) {
	ctx, rp := chromium(t)
	s := start(t, backends()[0].open(t))
	err := chromedp.Do(ctx,
		chromedp.Navigate(authURL(s, nil)),
		chromedp.WaitVisible(`input[name=password]`),
		chromedp.SendKeys(`input[name=username]`, "alice"),
		chromedp.SendKeys(`input[name=password]`, alicePassword),
		chromedp.Submit(`input[name=password]`),
		chromedp.WaitVisible(`button[value=allow]`),
		chromedp.Click(`button[value=allow]`),
	)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.redeem(t, rp.code(t)); r.status != 200 {
		t.Fatalf("the browser's code: %d %s", r.status, r.body)
	}
}

// TestLoginCSRFInChromium: a page on another origin submits the
// attacker's sign-in form into the provider: the browser says cross-site
// (Sec-Fetch-Site), and the form is refused.
func TestLoginCSRFInChromium(t *testing.T) {
	ctx, _ := chromium(t)
	s := start(t, backends()[0].open(t))
	attacker := newBrowser(t)
	f := fields(attacker.get(authURL(s, nil)).body)
	page := `<html><body><form id=f method=post action="` + s.issuer + `/login">` +
		`<input name=interaction value="` + f.Get("interaction") + `"><input name=csrf value="` + f.Get("csrf") + `">` +
		`<input name=username value=alice><input name=password value="` + alicePassword + `"></form></body></html>`
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(rc *fasthttp.RequestCtx) { rc.SetContentType("text/html"); rc.SetBodyString(page) }}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+ln.Addr().String()+"/"), chromedp.Submit(`#f`)); err != nil {
		t.Fatal(err)
	}
	// The answer is a new document: wait for the provider's page itself.
	body := ""
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		title, err := chromedp.Run(c, chromedp.Title())
		if err == nil && strings.Contains(title, "oidcgate") {
			body, err = chromedp.Run(c, chromedp.Evaluate[string]("document.body.innerText"))
		}
		cancel()
		if err == nil && body != "" {
			break
		}
	}
	if !strings.Contains(body, "sent from another site") {
		t.Errorf("the cross-site sign-in was not refused: %q", body)
	}
}
