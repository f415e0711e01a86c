package provider

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"

	"github.com/valyala/fasthttp"
)

//go:embed web/pages.html web/style.css
var webFS embed.FS

var (
	pages    = template.Must(template.ParseFS(webFS, "web/pages.html"))
	styleCSS = template.CSS(must(webFS.ReadFile("web/style.css")))
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// page is what every template gets.
type page struct {
	Brand, Title, Message string
	Logo                  template.URL
	CSS                   template.CSS
	Action                string
	ClientName            string
	Interaction, CSRF     string
	Username, Error       string
	Scopes                []string
	Fields                map[string]string
}

// render writes an HTML page. Pages are never cached and never framed.
func (p *Provider) render(ctx *fasthttp.RequestCtx, status int, name string, data page) error {
	data.Brand, data.CSS, data.Logo = p.cfg.BrandName, styleCSS, template.URL(p.cfg.BrandLogoURL)
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		return err
	}
	h := &ctx.Response.Header
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action *; frame-ancestors 'none'"+
		map[bool]string{true: "; script-src 'unsafe-inline'", false: ""}[name == "form_post"])
	// The provider's own pages may see where a form came from; no other
	// site learns the sign-in URL (its interaction ID).
	h.Set("Referrer-Policy", "same-origin")
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(b.Bytes())
	return nil
}

// errorPage answers an authorization request that cannot be redirected
// (unknown client, unregistered redirect URI): never a redirect.
func (p *Provider) errorPage(ctx *fasthttp.RequestCtx, message string) error {
	return p.render(ctx, http.StatusBadRequest, "message", page{Title: "This request cannot continue", Message: message})
}

// browserPages wraps the endpoints a browser lands on (/authorize, sign-in,
// consent, sign-out): an error the adapter would render as JSON — a store
// outage, an internal error, a malformed form — becomes an HTML page with
// the same status. A 503 carries Retry-After; a 5xx's cause is logged
// under the request ID, which the page shows, and never shown itself.
func (p *Provider) browserPages(h handlerFunc) handlerFunc {
	return func(ctx *fasthttp.RequestCtx) error {
		err := h(ctx)
		if err == nil {
			return nil
		}
		e := asError(err)
		id := string(ctx.Response.Header.Peek("X-Request-Id"))
		msg := e.Description
		switch {
		case e.Status == http.StatusServiceUnavailable:
			ctx.Response.Header.Set("Retry-After", retryAfterOutage)
			msg = "The sign-in service is briefly unavailable. Wait a moment, then try again."
		case e.Status >= 500:
			msg = "Something went wrong on our side. If it happens again, quote this reference: " + id
		}
		if e.Status >= 500 {
			p.log.Error("request failed", "request_id", id, "error", err)
		}
		ctx.Response.ResetBody()
		return p.render(ctx, e.Status, "message", page{Title: "This request cannot continue", Message: msg})
	}
}
