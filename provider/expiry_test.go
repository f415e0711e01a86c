package provider_test

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// Expiries at the protocol level, on the injected clock: nothing waits.

func TestCodeExpires(t *testing.T) {
	s := start(t, backends()[0].open(t))
	code := s.codeIn(t, newBrowser(t), "openid")
	s.clock.Advance(61 * time.Second) // the code lives 60 s
	if r := s.redeem(t, code); r.status != 400 || r.json(t)["error"] != "invalid_grant" {
		t.Errorf("an expired code: %d %s", r.status, r.body)
	}
}

func TestInteractionExpires(t *testing.T) {
	s := start(t, backends()[0].open(t))
	b := newBrowser(t)
	login := b.get(authURL(s, nil))
	if !strings.Contains(login.body, `name="password"`) {
		t.Fatalf("no sign-in page: %d", login.status)
	}
	s.clock.Advance(10*time.Minute + time.Second) // an interaction waits 10 min
	if p := b.signIn(s, login, alicePassword); p.status != 400 || !strings.Contains(p.body, "expired") {
		t.Errorf("signing in on an expired interaction: %d %s", p.status, p.body)
	}
}

func TestSessionIdleAndAbsoluteExpiry(t *testing.T) {
	s := start(t, backends()[0].open(t))
	b := newBrowser(t)
	s.codeIn(t, b, "openid") // signed in
	silent := func() (code, errCode string) {
		p := b.get(authURL(s, map[string]string{"prompt": "none"}))
		if p.loc == nil {
			t.Fatalf("no redirect: %d", p.status)
		}
		return p.loc.Query().Get("code"), p.loc.Query().Get("error")
	}
	// Used every 20 minutes, the session lives on past its 30-minute idle limit…
	for range 3 {
		s.clock.Advance(20 * time.Minute)
		if code, e := silent(); code == "" {
			t.Fatalf("a session used within its idle limit ended: %s", e)
		}
	}
	// …unused for longer, it ends.
	s.clock.Advance(31 * time.Minute)
	if _, e := silent(); e != "login_required" {
		t.Errorf("past the idle limit: %q, want login_required", e)
	}
	// The absolute limit (12 h) ends it however busy it is.
	s.codeIn(t, b, "openid")
	for range 25 {
		s.clock.Advance(29 * time.Minute)
		if code, _ := silent(); code == "" {
			return // ended at the absolute limit
		}
	}
	t.Error("a busy session outlived its 12-hour absolute limit")
}

func TestRefreshGraceExpires(t *testing.T) {
	s := start(t, backends()[0].open(t), withRefresh(time.Hour, 30*time.Second))
	rt := s.grant(t, newBrowser(t), "openid offline_access")["refresh_token"].(string)
	refresh := func(token string) response {
		return s.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}}.Encode(), "web:"+secret)
	}
	next := refresh(rt)
	if next.status != 200 {
		t.Fatalf("refresh: %d %s", next.status, next.body)
	}
	s.clock.Advance(20 * time.Second)
	if r := refresh(rt); r.status != 200 {
		t.Fatalf("a retry 20 s after the rotation, within the 30 s grace: %d %s", r.status, r.body)
	}
	s.clock.Advance(11 * time.Second)
	if r := refresh(rt); r.status != 400 {
		t.Fatalf("a reuse 31 s after the rotation: %d, want 400", r.status)
	}
	// That reuse revoked the family: the successor is gone too.
	if r := refresh(next.json(t)["refresh_token"].(string)); r.status != 400 {
		t.Errorf("the successor after a reuse past the grace: %d, want 400", r.status)
	}
}
