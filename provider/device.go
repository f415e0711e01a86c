package provider

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// The device authorization grant (RFC 8628): a device without a browser
// asks /device_authorization for a device code and a short user code; the
// user enters the user code on the verification page (/device) in any
// browser, signs in (the same flow as /authorize: any connector, a second
// factor when asked), sees which client asks for what, and approves or
// denies; meanwhile the device polls /token with the device code.
//
// A device authorization is an interaction record keyed by its user
// code's hash, holding the device code's hash (the device code starts with
// the user code, so a poll finds the record; its hash, compared in constant
// time, proves the rest). Approval is an authorization code stored under
// the device code's hash: the poll that redeems it — once, in the store
// transaction that writes its tokens — wins, as with any code.

const (
	grantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

	// userCodeAlphabet is RFC 8628 §6.1's: no vowels (no words), no
	// look-alike digits. 8 of them: 20^8 ≈ 2^34.6 codes.
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	userCodeLen      = 8
	// deviceRecordLinger keeps an ended device authorization long enough
	// to answer expired_token rather than invalid_grant.
	deviceRecordLinger = time.Hour
)

// userCodeRule bounds wrong user codes per client IP.
var userCodeRule = limitRule{limit: 10, window: time.Minute}

// newUserCode is 8 letters of the alphabet, uniformly (rejection sampling).
func newUserCode() string {
	out := make([]byte, 0, userCodeLen)
	var b [16]byte
	for len(out) < userCodeLen {
		rand.Read(b[:])
		for _, c := range b {
			if int(c) < 256-256%len(userCodeAlphabet) && len(out) < userCodeLen {
				out = append(out, userCodeAlphabet[int(c)%len(userCodeAlphabet)])
			}
		}
	}
	return string(out)
}

// normalUserCode reads what a user typed: case-insensitive, dashes and
// spaces ignored; "" when it cannot be a user code.
func normalUserCode(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || r == ' ':
		case strings.ContainsRune(userCodeAlphabet, r):
			b.WriteRune(r)
		default:
			return ""
		}
	}
	if b.Len() != userCodeLen {
		return ""
	}
	return b.String()
}

// displayUserCode is XXXX-XXXX.
func displayUserCode(c string) string { return c[:4] + "-" + c[4:] }

// deviceRecordID is the interaction ID of the device authorization of a
// (normal) user code.
func deviceRecordID(userCode string) string {
	h := storage.HashOf(userCode)
	return "device:" + hex.EncodeToString(h[:])
}

// deviceAuthorization is POST /device_authorization (RFC 8628 §3.1-3.2).
func (p *Provider) deviceAuthorization(rc *fasthttp.RequestCtx) error {
	f, err := readForm(rc)
	if err != nil {
		return err
	}
	creds, err := clientCredentials(rc.Request.Header.Peek("Authorization"), f)
	if err != nil {
		return err
	}
	creds.cert, creds.chained = p.clientCertificate(rc)
	ctx, cancel := requestCtx()
	defer cancel()
	client, err := p.authenticate(ctx, creds)
	if err != nil {
		return err
	}
	if !slices.Contains(client.GrantTypes, grantDeviceCode) {
		return oauth.ErrUnauthorizedClient("this client may not use the device authorization grant")
	}
	scopes, err := parseScope(f.str("scope"))
	if err != nil {
		return err
	}
	for _, s := range scopes {
		if !slices.Contains(client.Scopes, s) {
			return oauth.ErrInvalidScope("scope %q is not allowed for this client", s)
		}
	}
	now := p.now()
	exp := now.Add(p.cfg.DeviceCodeTTL)
	for range 5 { // a user code already pending: draw another
		userCode := newUserCode()
		deviceCode := userCode + "." + randomToken()
		rec := &storage.Interaction{ID: deviceRecordID(userCode), ClientID: client.ID, Scopes: scopes, MaxAge: -1,
			Device:    &storage.DeviceGrant{DeviceHash: storage.HashOf(deviceCode), Interval: p.cfg.DevicePollInterval, ExpiresAt: exp},
			CreatedAt: now, ExpiresAt: exp.Add(deviceRecordLinger)}
		err := p.flowDB.CreateInteraction(ctx, rec)
		if errors.Is(err, storage.ErrAlreadyExists) {
			continue
		}
		if err != nil {
			return oauth.ErrUnavailable(err)
		}
		verify := p.cfg.Issuer + "/device"
		rc.Response.Header.Set("Cache-Control", "no-store")
		return oauth.WriteJSON(rc, http.StatusOK, map[string]any{
			"device_code": deviceCode, "user_code": displayUserCode(userCode),
			"verification_uri": verify, "verification_uri_complete": verify + "?user_code=" + displayUserCode(userCode),
			"expires_in": int(p.cfg.DeviceCodeTTL.Seconds()), "interval": int(p.cfg.DevicePollInterval.Seconds()),
		})
	}
	return oauth.ErrUnavailable(errors.New("no free user code"))
}

// Polling errors (RFC 8628 §3.5).
func errDevice(code, description string) error {
	return oauth.New(http.StatusBadRequest, code, "%s", description)
}

// deviceCode is the token endpoint's device_code grant (RFC 8628 §3.4).
func (p *Provider) deviceCode(ctx context.Context, c *storage.Client, req tokenRequest) (*tokenResponse, error) {
	if !slices.Contains(c.GrantTypes, grantDeviceCode) {
		return nil, oauth.ErrUnauthorizedClient("this client may not use the device authorization grant")
	}
	userCode, _, ok := strings.Cut(req.deviceCode, ".")
	if req.deviceCode == "" {
		return nil, oauth.ErrInvalidRequest("device_code is required")
	}
	h := storage.HashOf(req.deviceCode)
	var rec *storage.Interaction
	var err error
	if ok && normalUserCode(userCode) == userCode {
		rec, err = p.flowDB.GetInteraction(ctx, deviceRecordID(userCode))
	}
	switch {
	case rec == nil && (err == nil || errors.Is(err, storage.ErrNotFound)),
		err == nil && (rec.Device == nil || subtle.ConstantTimeCompare(h[:], rec.Device.DeviceHash[:]) != 1 || rec.ClientID != c.ID):
		return nil, oauth.ErrInvalidGrant("the device_code is unknown")
	case err != nil:
		return nil, oauth.ErrUnavailable(err)
	}
	now, d := p.now(), rec.Device
	if !now.Before(d.ExpiresAt) {
		return nil, errDevice("expired_token", "the device_code expired; start again")
	}
	// Polled faster than the interval: slow_down, and 5 s more from now on.
	slow := !d.LastPollAt.IsZero() && now.Sub(d.LastPollAt) < d.Interval
	if slow {
		d.Interval += 5 * time.Second
	}
	d.LastPollAt = now
	if err := p.flowDB.UpdateInteraction(ctx, rec); err != nil {
		return nil, oauth.ErrUnavailable(err)
	}
	switch {
	case slow:
		return nil, errDevice("slow_down", "polling too fast: wait "+d.Interval.String()+" between requests")
	case d.Denied:
		return nil, errDevice("access_denied", "the user denied the request")
	}
	code, err := p.grantDB.GetAuthCode(ctx, d.DeviceHash)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, errDevice("authorization_pending", "the user has not approved the request yet")
	case err != nil:
		return nil, oauth.ErrUnavailable(err)
	case !code.UsedAt.IsZero():
		return nil, oauth.ErrInvalidGrant("the device_code was already used")
	}
	u, err := p.grantUser(ctx, code.UserID)
	if err != nil {
		return nil, err
	}
	g := userGrant{client: c, user: u, jkt: req.jkt, x5t: req.x5t, scopes: code.Scopes, granted: code.Scopes, familyID: code.FamilyID,
		sessionID: code.SessionID, authTime: code.AuthTime, amr: code.AMR}
	var refreshExp time.Time
	if slices.Contains(code.Scopes, "offline_access") && slices.Contains(c.GrantTypes, grantRefreshToken) {
		refreshExp = now.Add(cmpOrDuration(c.RefreshTokenTTL, p.cfg.RefreshTokenTTL))
	}
	resp, out, err := p.mintUserTokens(ctx, g, grantDeviceCode, refreshExp, now)
	if err != nil {
		return nil, err
	}
	// Of concurrent polls, the one whose redemption commits wins; the
	// others are told the code is spent (and nothing is revoked: they are
	// the same device, racing itself).
	switch _, err := p.grantDB.ConsumeAuthCode(ctx, d.DeviceHash, out); {
	case errors.Is(err, storage.ErrAlreadyUsed), errors.Is(err, storage.ErrNotFound):
		return nil, oauth.ErrInvalidGrant("the device_code was already used")
	case err != nil:
		return nil, oauth.ErrUnavailable(err)
	}
	p.metrics.issued.WithLabelValues("device_code", cmpOr(c.AccessTokenFormat, formatJWT)).Inc()
	return resp, nil
}

func cmpOrDuration(a, b time.Duration) time.Duration {
	if a != 0 {
		return a
	}
	return b
}

// deviceRequest is the verification page's request.
type deviceRequest struct {
	userCode string
	post     bool
	visit    visit
}

// devicePage asks for the user code (prefilled from
// verification_uri_complete); a posted code starts the sign-in that
// approves it.
func (p *Provider) devicePage(ctx context.Context, r deviceRequest) (outcome, error) {
	form := func(status int, code, msg string) outcome {
		return pageOutcome(status, "device", page{Title: "Connect a device", Action: p.issuerPath + "/device", Username: code, Error: msg})
	}
	if !r.post {
		return form(http.StatusOK, r.userCode, ""), nil
	}
	if r.visit.crossSite {
		p.log.Warn("cross-site form refused", "ip", r.visit.ip)
		return refused("This form was sent from another site."), nil
	}
	keys := []limitKey{{key: "user_code@" + r.visit.ip, rule: userCodeRule}}
	wait, ok := p.limiter.reserve(keys...)
	if !ok {
		p.log.Warn("user code refused: too many attempts", "ip", r.visit.ip)
		out := form(http.StatusTooManyRequests, r.userCode, "Too many wrong codes. Wait a minute and try again.")
		out.retryAfter = int(wait.Seconds() + 1)
		return out, nil
	}
	code := normalUserCode(r.userCode)
	var rec *storage.Interaction
	var err error
	if code != "" {
		rec, err = p.flowDB.GetInteraction(ctx, deviceRecordID(code))
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		p.limiter.settle(keys, false, false)
		return outcome{}, oauth.ErrUnavailable(err)
	}
	now := p.now()
	found := rec != nil && rec.Device != nil && now.Before(rec.Device.ExpiresAt) && !rec.Device.Denied
	// A right code never clears the address's wrong ones: whoever can start
	// device authorizations (a public client) could otherwise mix their own
	// codes into a guessing run.
	p.limiter.done(!found, keys)
	if !found {
		p.log.Info("wrong or expired user code", "ip", r.visit.ip)
		return form(http.StatusBadRequest, r.userCode, "That code is not valid. Check the code your device shows and try again."), nil
	}
	client, err := p.client(ctx, rec.ClientID)
	if err != nil {
		return outcome{}, unavailable(err)
	}
	// A sign-in like /authorize's, that ends in the approval instead of a
	// code; consent is always asked, so the user sees what the device gets.
	ia := &storage.Interaction{ID: randomToken(), CSRF: randomToken(), ClientID: client.ID, Scopes: rec.Scopes, MaxAge: -1,
		Prompt: []string{"consent"}, DeviceID: rec.ID, CreatedAt: now, ExpiresAt: minTime(now.Add(p.cfg.InteractionTTL), rec.Device.ExpiresAt)}
	binding, bindCookie := p.bindBrowser(r.visit)
	ia.BrowserHash = storage.HashOf(binding)
	if se := p.liveSession(ctx, r.visit, now); se != nil {
		ia.UserID, ia.SessionID, ia.AuthTime, ia.AMR = se.UserID, se.ID, se.AuthTime, se.AMR
	}
	var out outcome
	if err = p.flowDB.CreateInteraction(ctx, ia); err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	out, err = p.next(ctx, ia, client)
	if bindCookie != nil {
		out.cookies = append(out.cookies, *bindCookie)
	}
	return out, err
}

// approveDevice ends a verification-page sign-in: the approval is an
// authorization code under the device code's hash, which the device's
// next poll redeems.
func (p *Provider) approveDevice(ctx context.Context, ia *storage.Interaction) (outcome, error) {
	rec, err := p.flowDB.GetInteraction(ctx, ia.DeviceID)
	if errors.Is(err, storage.ErrNotFound) || err == nil && (rec.Device == nil || !p.now().Before(rec.Device.ExpiresAt)) {
		return errorPage("The device's request has expired. Start again on the device."), nil
	}
	if err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	if rec.Device.Denied {
		return errorPage("This device's request was denied."), nil
	}
	err = p.flowDB.CreateAuthCode(ctx, &storage.AuthCode{
		Hash: rec.Device.DeviceHash, ClientID: rec.ClientID, UserID: ia.UserID, SessionID: ia.SessionID, Scopes: ia.Scopes,
		AuthTime: ia.AuthTime, AMR: ia.AMR, FamilyID: newJTI(), CreatedAt: p.now(), ExpiresAt: rec.Device.ExpiresAt,
	})
	if errors.Is(err, storage.ErrAlreadyExists) {
		return errorPage("This device was already approved."), nil
	}
	if err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	if err := p.rememberLogoutClient(ctx, rec.ClientID, ia.UserID, ia.SessionID, ia.Scopes); err != nil {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	p.flowDB.DeleteInteraction(ctx, ia.ID)
	p.audit("device.approved", "client_id", rec.ClientID, "user_id", ia.UserID)
	return pageOutcome(http.StatusOK, "message", page{Title: "Device connected",
		Message: "You can go back to your device now: it will finish signing in by itself."}), nil
}

// denyDevice records the user's refusal: the device's next poll gets
// access_denied.
func (p *Provider) denyDevice(ctx context.Context, ia *storage.Interaction) (outcome, error) {
	p.flowDB.DeleteInteraction(ctx, ia.ID)
	rec, err := p.flowDB.GetInteraction(ctx, ia.DeviceID)
	if err == nil && rec.Device != nil {
		rec.Device.Denied = true
		err = p.flowDB.UpdateInteraction(ctx, rec)
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return outcome{}, oauth.ErrUnavailable(err)
	}
	p.audit("device.denied", "client_id", ia.ClientID, "user_id", ia.UserID)
	return pageOutcome(http.StatusOK, "message", page{Title: "Request denied", Message: "The device was not given access."}), nil
}

// deviceHandler is GET/POST /device.
func (p *Provider) deviceHandler(rc *fasthttp.RequestCtx) error {
	r := deviceRequest{userCode: string(rc.QueryArgs().Peek("user_code")), visit: p.visitOf(rc)}
	if rc.IsPost() {
		f, err := readForm(rc)
		if err != nil {
			return p.render(rc, outcome{}, err)
		}
		r.userCode, r.post = f.str("user_code"), true
	}
	ctx, cancel := requestCtx()
	defer cancel()
	out, err := p.devicePage(ctx, r)
	return p.render(rc, out, err)
}
