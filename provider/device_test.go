package provider_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/provider"
)

// deviceStart is what a CLI does first (RFC 8628 §3.1): it asks for codes.
func deviceStart(t *testing.T, s *server, form url.Values, auth string) (int, map[string]any) {
	t.Helper()
	r := s.post(t, "/device_authorization", form.Encode(), auth)
	return r.status, r.json(t)
}

// devicePoll is one poll of /token (RFC 8628 §3.4).
func devicePoll(t *testing.T, s *server, clientID, deviceCode string) (int, map[string]any) {
	t.Helper()
	r := s.post(t, "/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {deviceCode}, "client_id": {clientID}}.Encode(), "")
	return r.status, r.json(t)
}

var userCodeShape = regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)

func registerDeviceClient(t *testing.T, s *server) {
	s.register(t, provider.ClientSpec{ID: "cli", Name: "Command Line", Public: true,
		GrantTypes: []string{"urn:ietf:params:oauth:grant-type:device_code", "refresh_token"},
		Scopes:     []string{"openid", "profile", "offline_access"}})
}

// TestDeviceFlow: acceptance 1 — a CLI polls while a cookie-jar browser
// completes the verification page (user code typed in lower case without
// the dash); authorization_pending and slow_down are seen; the tokens come
// once, with an ID token for openid.
func TestDeviceFlow(t *testing.T) {
	everyBackend(t, func(t *testing.T, s *server) {
		registerDeviceClient(t, s)
		if ep := discoveryOf(t, s)["device_authorization_endpoint"]; ep != s.issuer+"/device_authorization" {
			t.Fatalf("discovery: %v", ep)
		}
		status, da := deviceStart(t, s, url.Values{"client_id": {"cli"}, "scope": {"openid profile offline_access"}}, "")
		userCode, _ := da["user_code"].(string)
		deviceCode, _ := da["device_code"].(string)
		if status != 200 || !userCodeShape.MatchString(userCode) || deviceCode == "" || da["verification_uri"] != s.issuer+"/device" ||
			da["verification_uri_complete"] != s.issuer+"/device?user_code="+userCode || da["expires_in"] != float64(600) || da["interval"] != float64(5) {
			t.Fatalf("device authorization: %d %v", status, da)
		}
		// The CLI polls before the user did anything: pending; again at once: slow_down.
		if st, e := devicePoll(t, s, "cli", deviceCode); st != 400 || e["error"] != "authorization_pending" {
			t.Fatalf("first poll: %d %v", st, e)
		}
		if st, e := devicePoll(t, s, "cli", deviceCode); st != 400 || e["error"] != "slow_down" {
			t.Fatalf("a poll too soon: %d %v", st, e)
		}
		// The interval is now 10 s: a poll after 6 s is still too fast.
		s.clock.Advance(6 * time.Second)
		if _, e := devicePoll(t, s, "cli", deviceCode); e["error"] != "slow_down" {
			t.Fatalf("the interval grew by 5 s: %v", e)
		}

		// The user, in a browser: the code as typed by a person.
		b := newBrowser(t)
		p := b.get(s.issuer + "/device")
		if p.status != 200 || !strings.Contains(p.body, `name="user_code"`) {
			t.Fatalf("verification page: %d", p.status)
		}
		typed := strings.ToLower(strings.ReplaceAll(userCode, "-", ""))
		p = b.post(s.issuer+"/device", url.Values{"user_code": {typed}})
		p = b.signIn(s, p, alicePassword)
		if !strings.Contains(p.body, "Command Line") || !strings.Contains(p.body, "device") {
			t.Fatalf("the consent page names the client and the device: %s", p.body)
		}
		p = b.decide(s, p, "allow")
		if p.status != 200 || !strings.Contains(p.body, "Device connected") {
			t.Fatalf("after approval: %d %s", p.status, p.body)
		}

		// The device's next polls, concurrently (after the interval): one wins.
		s.clock.Advance(15 * time.Second)
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, tokens := 0, map[string]any{}
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, body := devicePoll(t, s, "cli", deviceCode)
				mu.Lock()
				defer mu.Unlock()
				if st == 200 {
					wins++
					tokens = body
				}
			}()
		}
		wg.Wait()
		if wins != 1 || tokens["access_token"] == nil || tokens["id_token"] == nil || tokens["refresh_token"] == nil {
			t.Fatalf("concurrent polls: %d won, %v", wins, tokens)
		}
		if c := jwtClaims(t, tokens["id_token"].(string)); c["sub"] != "alice-sub" || c["aud"] != "cli" {
			t.Errorf("ID token: %v", c)
		}
		// The winner's tokens still work: the losing polls revoked nothing.
		if r := send(t, "GET", s.issuer+"/userinfo", "", "", "Bearer "+tokens["access_token"].(string), ""); r.status != 200 {
			t.Errorf("userinfo with the device's token: %d %s", r.status, r.body)
		}
		s.clock.Advance(5 * time.Minute) // past the interval the racing polls grew
		if st, e := devicePoll(t, s, "cli", deviceCode); st != 400 || e["error"] != "invalid_grant" {
			t.Errorf("a poll after the tokens: %d %v", st, e)
		}
		// The refresh token rotates like any other.
		r := s.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tokens["refresh_token"].(string)},
			"client_id": {"cli"}}.Encode(), "")
		if r.status != 200 {
			t.Errorf("refresh: %d %s", r.status, r.body)
		}
	})
}

// TestDeviceFlowRefusals: the negative table.
func TestDeviceFlowRefusals(t *testing.T) {
	s := start(t, backends()[0].open(t))
	registerDeviceClient(t, s)
	start := func() (string, string) {
		_, da := deviceStart(t, s, url.Values{"client_id": {"cli"}, "scope": {"openid"}}, "")
		return da["user_code"].(string), da["device_code"].(string)
	}
	// Device authorization requests refused.
	for name, tc := range map[string]struct {
		form   url.Values
		auth   string
		status int
		error  string
	}{
		"unknown client":         {url.Values{"client_id": {"nobody"}}, "", 401, "invalid_client"},
		"no device grant":        {url.Values{}, "svc:" + secret, 400, "unauthorized_client"},
		"scope not allowed":      {url.Values{"client_id": {"cli"}, "scope": {"admin"}}, "", 400, "invalid_scope"},
		"wrong secret":           {url.Values{}, "svc:" + strings.Repeat("y", 40), 401, "invalid_client"},
		"a public code client":   {url.Values{"client_id": {"spa"}}, "", 400, "unauthorized_client"},
		"malformed scope":        {url.Values{"client_id": {"cli"}, "scope": {"a\x01b"}}, "", 400, "invalid_scope"},
		"a client_id for secret": {url.Values{"client_id": {"svc"}}, "", 401, "invalid_client"},
	} {
		st, e := deviceStart(t, s, tc.form, tc.auth)
		if st != tc.status || e["error"] != tc.error {
			t.Errorf("%s: %d %v", name, st, e)
		}
	}
	// Polls refused.
	_, dc := start()
	for name, tc := range map[string]struct{ client, code, error string }{
		"unknown device code":   {"cli", "BCDFGHJK.nothing", "invalid_grant"},
		"malformed device code": {"cli", "x", "invalid_grant"},
		"a forged secret part":  {"cli", strings.SplitN(dc, ".", 2)[0] + ".forged", "invalid_grant"},
	} {
		if st, e := devicePoll(t, s, tc.client, tc.code); st != 400 || e["error"] != tc.error {
			t.Errorf("%s: %d %v", name, st, e)
		}
	}
	s.register(t, provider.ClientSpec{ID: "cli2", Public: true, GrantTypes: []string{"urn:ietf:params:oauth:grant-type:device_code"}})
	if st, e := devicePoll(t, s, "cli2", dc); st != 400 || e["error"] != "invalid_grant" {
		t.Errorf("another client's device code: %d %v", st, e)
	}
	// Denied: the poll says access_denied.
	uc, dc := start()
	b := newBrowser(t)
	if p := b.get(s.issuer + "/device?user_code=" + url.QueryEscape(uc)); !strings.Contains(p.body, `value="`+uc+`"`) {
		t.Errorf("verification_uri_complete prefills the code: %s", p.body)
	}
	p := b.signIn(s, b.post(s.issuer+"/device", url.Values{"user_code": {uc}}), alicePassword)
	p = b.decide(s, p, "deny")
	if !strings.Contains(p.body, "denied") {
		t.Errorf("after deny: %s", p.body)
	}
	if st, e := devicePoll(t, s, "cli", dc); st != 400 || e["error"] != "access_denied" {
		t.Errorf("a denied device: %d %v", st, e)
	}
	// A denied code cannot be entered again.
	if p := b.post(s.issuer+"/device", url.Values{"user_code": {uc}}); p.status != 400 {
		t.Errorf("a denied user code again: %d", p.status)
	}
	// Expired: expired_token, and the user code no longer works.
	uc, dc = start()
	s.clock.Advance(11 * time.Minute)
	if st, e := devicePoll(t, s, "cli", dc); st != 400 || e["error"] != "expired_token" {
		t.Errorf("an expired device code: %d %v", st, e)
	}
	if p := newBrowser(t).post(s.issuer+"/device", url.Values{"user_code": {uc}}); p.status != 400 || !strings.Contains(p.body, "not valid") {
		t.Errorf("an expired user code: %d", p.status)
	}
	// Approved twice (two browsers with one code): the second is refused.
	uc, _ = start()
	b1, b2 := newBrowser(t), newBrowser(t)
	p1 := b1.signIn(s, b1.post(s.issuer+"/device", url.Values{"user_code": {uc}}), alicePassword)
	p2 := b2.signIn(s, b2.post(s.issuer+"/device", url.Values{"user_code": {uc}}), alicePassword)
	if p := b1.decide(s, p1, "allow"); !strings.Contains(p.body, "Device connected") {
		t.Fatalf("first approval: %s", p.body)
	}
	if p := b2.decide(s, p2, "allow"); p.status != 400 || !strings.Contains(p.body, "already approved") {
		t.Errorf("second approval: %d %s", p.status, p.body)
	}
	// Brute force: after 10 wrong codes from one address, 429 even for a
	// right one — and a right code in between (the guesser's own device
	// authorization) does not clear the count.
	s.clock.Advance(61 * time.Second) // a new window: the wrong codes above are forgotten
	uc, _ = start()
	own, _ := start()
	bf := newBrowser(t)
	for i := range 10 {
		if i == 5 {
			if p := bf.post(s.issuer+"/device", url.Values{"user_code": {own}}); p.status != 200 && p.status != 303 && !strings.Contains(p.body, "password") {
				t.Fatalf("the guesser's own code: %d", p.status)
			}
		}
		if p := bf.post(s.issuer+"/device", url.Values{"user_code": {"BBBB-BBB" + string("BCDFGHJKLM"[i])}}); p.status != 400 {
			t.Fatalf("wrong code %d: %d", i, p.status)
		}
	}
	if p := bf.post(s.issuer+"/device", url.Values{"user_code": {uc}}); p.status != http.StatusTooManyRequests {
		t.Errorf("the 11th code within a minute: %d", p.status)
	}
	// A cross-site form is refused.
	req, _ := http.NewRequest("POST", s.issuer+"/device", strings.NewReader("user_code="+url.QueryEscape(uc)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if p := newBrowser(t).do(req); p.status != 403 {
		t.Errorf("a cross-site code entry: %d", p.status)
	}
}
