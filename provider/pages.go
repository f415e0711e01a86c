package provider

import (
	"bytes"
	"embed"
	"html/template"

	"github.com/valyala/fasthttp"
)

//go:embed web/pages.html web/style.css web/webauthn.js
var webFS embed.FS

var (
	pages      = template.Must(template.ParseFS(webFS, "web/pages.html"))
	styleCSS   = template.CSS(must(webFS.ReadFile("web/style.css")))
	webauthnJS = must(webFS.ReadFile("web/webauthn.js"))
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
	PasswordForm          bool            // the sign-in page shows the username and password form
	Connectors            []pageConnector // and these buttons
	// The second-factor pages.
	HasTOTP, HasWebAuthn, HasRecovery bool
	TOTP                              *totpSetup // an authenticator app being set up
	Codes                             []string   // recovery codes, shown once
	Next                              string     // where the page's Continue goes
	Account                           *accountView
	// The WebAuthn buttons: their endpoints' prefix, the script that
	// drives them (set on pages that have some), and the passkey button.
	WebAuthnBase, Script string
	Passkeys             bool
	// Device: the consent is a device's (RFC 8628), approved from here.
	Device bool
}

// pageConnector is a sign-in page's button for an upstream connector.
type pageConnector struct{ Name, URL string }

// renderPage writes an HTML page. Pages are never cached and never framed.
func (p *Provider) renderPage(ctx *fasthttp.RequestCtx, status int, name string, data page) error {
	data.Brand, data.CSS, data.Logo = p.cfg.BrandName, styleCSS, template.URL(p.cfg.BrandLogoURL)
	data.WebAuthnBase = p.issuerPath + "/webauthn"
	if name == "login" && data.Passkeys || name == "mfa" && data.HasWebAuthn || name == "account" {
		data.Script = p.issuerPath + "/static/webauthn.js"
	}
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		return err
	}
	h := &ctx.Response.Header
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Frame-Options", "DENY")
	// The one script is webauthn.js, from this origin; only the form_post
	// page runs an inline one (its auto-submit).
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action *; frame-ancestors 'none'"+
		map[bool]string{true: "; script-src 'unsafe-inline'", false: "; script-src 'self'; connect-src 'self'"}[name == "form_post"])
	// The provider's own pages may see where a form came from; no other
	// site learns the sign-in URL (its interaction ID).
	h.Set("Referrer-Policy", "same-origin")
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(b.Bytes())
	return nil
}
