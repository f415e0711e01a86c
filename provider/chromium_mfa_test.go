package provider_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/oidcgate/oidcgate/provider"
)

// virtualAuthenticator gives the browser a platform authenticator with
// resident keys and user verification (Chrome's DevTools WebAuthn domain).
func virtualAuthenticator(t *testing.T, ctx context.Context, at string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(at)); err != nil { // a target to attach to
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdpwebauthn.Enable, cdpwebauthn.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{
		Options: &cdpwebauthn.VirtualAuthenticatorOptions{Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Ctap2version: cdpwebauthn.Ctap2versionCtap21,
			Transport: cdpwebauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true, IsUserVerified: true,
			AutomaticPresenceSimulation: true}}); err != nil {
		t.Fatal(err)
	}
}

// press clicks a key button from the page's own script: the ceremony it
// starts ends in a navigation that can outrun a DevTools click's last
// steps (and invalidate the node it holds).
func press(selector string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[any]("document.querySelector('"+selector+"').click()")(ctx, tg)
		return chromedp.Void{}, err
	}
}

// idClaims are the claims of the ID token in a token response.
func idClaimsOf(t *testing.T, r response) map[string]any {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("redeem: %d %s", r.status, r.body)
	}
	raw, _ := r.json(t)["id_token"].(string)
	return jwtClaims(t, raw)
}

func amrIs(c map[string]any, want ...string) bool {
	got, _ := c["amr"].([]any)
	return fmt.Sprint(got) == fmt.Sprint(want)
}

// TestPasskeysInChromium: acceptance 2 — in a real browser, with Chrome's
// virtual authenticator and the provider's script: register a passkey on
// the account page, sign out, sign in with it and complete a code flow;
// then use it as the second factor after a password.
func TestPasskeysInChromium(t *testing.T) {
	ctx, rp := chromium(t)
	s := start(t, backends()[0].open(t), atLocalhost, withPasskeys)
	virtualAuthenticator(t, ctx, s.issuer+"/account")
	err := chromedp.Do(ctx,
		chromedp.WaitVisible(`input[name=password]`),
		chromedp.SendKeys(`input[name=username]`, "alice"),
		chromedp.SendKeys(`input[name=password]`, alicePassword),
		chromedp.Submit(`input[name=password]`),
		chromedp.WaitVisible(`button[data-webauthn=create]`),
		chromedp.SetValue(`#key-name`, "Laptop passkey"),
		press(`button[data-webauthn=create]`),
		chromedp.WaitReady(`input[name=factor]`),
	)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body.innerText"))
	if !strings.Contains(body, "Laptop passkey") {
		t.Fatalf("the account page after registering: %s", body)
	}
	// Sign out (this browser's session), then in again with the passkey alone.
	if err := chromedp.Do(ctx, chromedp.Click(`form:has(input[value=end-session]) button`), chromedp.WaitVisible(`//h1[text()="Signed out"]`)); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(authURL(s, nil)),
		chromedp.WaitVisible(`button[data-begin$="/passkey/begin"]`),
		press(`button[data-begin$="/passkey/begin"]`),
		chromedp.WaitVisible(`button[value=allow]`),
		chromedp.Click(`button[value=allow]`),
	)
	if err != nil {
		t.Fatal(err)
	}
	c := idClaimsOf(t, s.redeem(t, rp.code(t)))
	if c["acr"] != provider.ACRMFA || !amrIs(c, "hwk", "mfa") || c["sub"] != "alice-sub" {
		t.Fatalf("passkey sign-in in Chromium: %v", c)
	}

	// The same key as a second factor after the password.
	err = chromedp.Do(ctx,
		chromedp.Navigate(s.issuer+"/account"),
		chromedp.WaitVisible(`form:has(input[value=end-session]) button`),
		chromedp.Click(`form:has(input[value=end-session]) button`),
		chromedp.WaitVisible(`//h1[text()="Signed out"]`),
		chromedp.Navigate(authURL(s, map[string]string{"acr_values": provider.ACRMFA})),
		chromedp.WaitVisible(`input[name=password]`),
		chromedp.SendKeys(`input[name=username]`, "alice"),
		chromedp.SendKeys(`input[name=password]`, alicePassword),
		chromedp.Submit(`input[name=password]`),
		chromedp.WaitVisible(`button[data-begin$="/mfa/begin"]`), // the second-factor page's, not the sign-in page's passkey button
		press(`button[data-begin$="/mfa/begin"]`),
	)
	if err != nil {
		t.Fatal(err)
	}
	c = idClaimsOf(t, s.redeem(t, rp.code(t)))
	if c["acr"] != provider.ACRMFA || !amrIs(c, "pwd", "hwk", "mfa") {
		t.Fatalf("password then passkey in Chromium: %v", c)
	}
}

// TestPagesAtPhoneWidth: acceptance 4 — the sign-in, second-factor and
// account pages fit a phone's width (nothing wider than the viewport), and
// work without JavaScript but for the key buttons. With
// OIDCGATE_SCREENSHOTS=dir it writes their screenshots there (make
// screenshots: docs/screenshots).
func TestPagesAtPhoneWidth(t *testing.T) {
	ctx, _ := chromium(t)
	s := start(t, backends()[0].open(t), atLocalhost)
	dir := os.Getenv("OIDCGATE_SCREENSHOTS")
	// An authenticator app and recovery codes, set up in a plain browser.
	b := newBrowser(t)
	totpSecret, _ := enrollTOTP(t, s, b, newRP(t, s, "web", secret, rpRedirect))
	s.clock.Advance(30 * time.Second)

	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	check := func(name string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("document.documentElement.scrollWidth > window.innerWidth"))
		if err != nil || overflow {
			t.Errorf("the %s page is wider than a phone (390 px): %v", name, err)
		}
		if dir == "" {
			return
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check("sign-in", chromedp.Navigate(authURL(s, map[string]string{"acr_values": provider.ACRMFA})), chromedp.WaitVisible(`input[name=password]`))
	check("totp", chromedp.SendKeys(`input[name=username]`, "alice"), chromedp.SendKeys(`input[name=password]`, alicePassword),
		chromedp.Submit(`input[name=password]`), chromedp.WaitVisible(`input[name=code]`))
	check("account", chromedp.SendKeys(`input[name=code]`, totpNow(t, s, totpSecret)), chromedp.Submit(`input[name=code]`),
		chromedp.WaitNotPresent(`input[name=code]`), // on to the relying party (consented before)
		chromedp.Navigate(s.issuer+"/account"), chromedp.WaitVisible(`input[name=current]`))
	check("totp-setup", chromedp.Click(`form:has(input[value=remove-factor]) button`),
		chromedp.WaitVisible(`form:has(input[value=totp-start]) button`), chromedp.Click(`form:has(input[value=totp-start]) button`),
		chromedp.WaitVisible(`img[alt^="QR code"]`))
}
