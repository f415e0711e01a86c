package provider_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v2/jws"
	"golang.org/x/oauth2"

	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// logoutReceiver is a relying party's backchannel_logout_uri: it records
// every logout token POSTed to it, or, while down, drops the connection.
type logoutReceiver struct {
	srv    *httptest.Server
	down   atomic.Bool
	tokens chan string
}

func newLogoutReceiver(t *testing.T) *logoutReceiver {
	r := &logoutReceiver{tokens: make(chan string, 16)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close() // as a crashed server: no answer at all
					return
				}
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		req.ParseForm()
		r.tokens <- req.PostForm.Get("logout_token")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// await returns the next logout token, or fails after within.
func (r *logoutReceiver) await(t *testing.T, within time.Duration, what string) string {
	t.Helper()
	select {
	case tok := <-r.tokens:
		return tok
	case <-time.After(within):
		t.Fatalf("%s: no logout token within %s", what, within)
		return ""
	}
}

func (r *logoutReceiver) none(t *testing.T, what string) {
	t.Helper()
	select {
	case <-r.tokens:
		t.Errorf("%s: a logout token arrived", what)
	case <-time.After(300 * time.Millisecond):
	}
}

// checkLogoutToken verifies a logout token as Back-Channel Logout §2.6
// asks a relying party to: the signature under the provider's /jwks
// (go-oidc's remote key set), typ, iss, aud, iat/exp, jti, the event, sub
// and sid, and no nonce.
func checkLogoutToken(t *testing.T, s *server, tok, clientID, sub, sid string) {
	t.Helper()
	payload, err := oidc.NewRemoteKeySet(context.Background(), s.issuer+"/jwks").VerifySignature(context.Background(), tok)
	if err != nil {
		t.Fatalf("the logout token does not verify against /jwks: %v", err)
	}
	msg, _ := jws.Parse([]byte(tok))
	if typ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != "logout+jwt" {
		t.Errorf("typ %q", typ)
	}
	var c map[string]any
	json.Unmarshal(payload, &c)
	events, _ := c["events"].(map[string]any)
	_, hasEvent := events["http://schemas.openid.net/event/backchannel-logout"]
	now := float64(time.Now().Unix())
	if c["iss"] != s.issuer || c["aud"] != clientID || c["sub"] != sub || c["sid"] != sid || !hasEvent || c["jti"] == nil ||
		c["nonce"] != nil || c["iat"].(float64) > now+5 || c["exp"].(float64) < now {
		t.Errorf("logout token claims: %v", c)
	}
}

// signInTo runs a code flow for clientID in b and returns the ID token's sid and raw form.
func signInTo(t *testing.T, s *server, b *browser, clientID string, first bool) (sid, raw string) {
	t.Helper()
	r := newRP(t, s, clientID, secret, rpRedirect)
	r.cfg.Scopes = []string{"openid", "profile"}
	state, verifier := random(), oauth2.GenerateVerifier()
	p := b.get(r.cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	if first {
		p = b.signIn(s, p, alicePassword)
	}
	if strings.Contains(p.body, `value="allow"`) {
		p = b.decide(s, p, "allow")
	}
	tok, idt := r.redeem(t, s, p, state, verifier)
	var claims struct {
		Sid string `json:"sid"`
	}
	idt.Claims(&claims)
	raw, _ = tok.Extra("id_token").(string)
	return claims.Sid, raw
}

func withBackchannel(attempts int) option {
	return func(c *provider.Config) {
		c.BackchannelLogoutRetry, c.BackchannelLogoutAttempts = 200*time.Millisecond, attempts
	}
}

func registerLogoutClients(t *testing.T, s *server, r1, r2 *logoutReceiver) {
	for id, rcv := range map[string]*logoutReceiver{"rp1": r1, "rp2": r2} {
		s.register(t, provider.ClientSpec{ID: id, Name: id, Secret: secret, RedirectURIs: []string{rpRedirect},
			GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid", "profile"},
			BackchannelLogoutURI: rcv.srv.URL + "/logout", BackchannelLogoutSessionRequired: true})
	}
}

// TestBackchannelLogout: acceptance 3 — two clients signed into one
// session both get a valid logout token within 2 s of the sign-out; with
// one receiver down, the other still gets it at once and the down one
// after it comes back.
func TestBackchannelLogout(t *testing.T) {
	everyBackend(t, func(t *testing.T, s *server) {
		s.run()
		if d := discoveryOf(t, s); d["backchannel_logout_supported"] != true || d["backchannel_logout_session_supported"] != true {
			t.Errorf("discovery: %v %v", d["backchannel_logout_supported"], d["backchannel_logout_session_supported"])
		}
		r1, r2 := newLogoutReceiver(t), newLogoutReceiver(t)
		registerLogoutClients(t, s, r1, r2)

		// Both up: both told, within 2 s.
		b := newBrowser(t)
		sid, hint := signInTo(t, s, b, "rp1", true)
		if sid2, _ := signInTo(t, s, b, "rp2", false); sid2 != sid {
			t.Fatalf("two sessions: %q %q", sid, sid2)
		}
		start := time.Now()
		if p := b.get(s.issuer + "/end_session?id_token_hint=" + url.QueryEscape(hint)); p.status != 200 || !strings.Contains(p.body, "signed out") {
			t.Fatalf("sign-out: %d %s", p.status, p.body)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("the sign-out waited %s", d)
		}
		checkLogoutToken(t, s, r1.await(t, 2*time.Second, "rp1"), "rp1", "alice-sub", sid)
		checkLogoutToken(t, s, r2.await(t, 2*time.Second, "rp2"), "rp2", "alice-sub", sid)
		r1.none(t, "rp1 once")

		// rp2 down: rp1 told at once, rp2 after it is back.
		r2.down.Store(true)
		b = newBrowser(t)
		sid, hint = signInTo(t, s, b, "rp1", true)
		signInTo(t, s, b, "rp2", false)
		b.get(s.issuer + "/end_session?id_token_hint=" + url.QueryEscape(hint))
		checkLogoutToken(t, s, r1.await(t, 2*time.Second, "rp1 beside a receiver that is down"), "rp1", "alice-sub", sid)
		waitFor(t, 3*time.Second, "a failed delivery counted", func() bool {
			return logoutCount(t, s, "failed") >= 1
		})
		r2.none(t, "rp2 while down")
		r2.down.Store(false)
		checkLogoutToken(t, s, r2.await(t, 3*time.Second, "rp2 back up"), "rp2", "alice-sub", sid)
	}, withBackchannel(10))
}

// TestBackchannelLogoutAcrossRestart: a delivery queued while its
// receiver is down survives the provider's restart and arrives from the
// next one.
func TestBackchannelLogoutAcrossRestart(t *testing.T) {
	for name, open := range map[string]func(t testing.TB) storage.Storage{
		"bolt":     func(t testing.TB) storage.Storage { return boltBackend(t) },
		"postgres": backends()[1].open,
	} {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			s := start(t, store, withBackchannel(20))
			s.run()
			r1, r2 := newLogoutReceiver(t), newLogoutReceiver(t)
			registerLogoutClients(t, s, r1, r2)
			r2.down.Store(true)
			b := newBrowser(t)
			sid, hint := signInTo(t, s, b, "rp1", true)
			signInTo(t, s, b, "rp2", false)
			b.get(s.issuer + "/end_session?id_token_hint=" + url.QueryEscape(hint))
			r1.await(t, 2*time.Second, "rp1")
			waitFor(t, 3*time.Second, "a failed delivery to rp2", func() bool {
				return logoutCount(t, s, "failed") >= 1
			})
			s.stop()
			r2.down.Store(false)
			r2.none(t, "rp2 with no provider running")
			next := start(t, store, withBackchannel(20))
			next.run()
			checkLogoutToken(t, next, r2.await(t, 5*time.Second, "rp2 from the restarted provider"), "rp2", "alice-sub", sid)
		})
	}
}

// TestBackchannelLogoutGivesUp: a receiver that never answers is given up
// after its attempts, counted, and nothing else is affected.
func TestBackchannelLogoutGivesUp(t *testing.T) {
	s := start(t, backends()[0].open(t), withBackchannel(2))
	s.run()
	r1, r2 := newLogoutReceiver(t), newLogoutReceiver(t)
	registerLogoutClients(t, s, r1, r2)
	r2.down.Store(true)
	b := newBrowser(t)
	_, hint := signInTo(t, s, b, "rp1", true)
	signInTo(t, s, b, "rp2", false)
	b.get(s.issuer + "/end_session?id_token_hint=" + url.QueryEscape(hint))
	r1.await(t, 2*time.Second, "rp1")
	waitFor(t, 5*time.Second, "rp2 given up", func() bool {
		return logoutCount(t, s, "given_up") == 1
	})
	r2.down.Store(false)
	r2.none(t, "rp2 after it was given up")
	// Sign-ins and sign-outs go on as before.
	b = newBrowser(t)
	_, hint = signInTo(t, s, b, "rp1", true)
	b.get(s.issuer + "/end_session?id_token_hint=" + url.QueryEscape(hint))
	r1.await(t, 2*time.Second, "rp1 again")
}

// TestBackchannelLogoutOnSessionEnds: the account page's and the admin
// API's session ends tell the clients too.
func TestBackchannelLogoutOnSessionEnds(t *testing.T) {
	s := start(t, backends()[0].open(t), withBackchannel(3))
	s.run()
	r1, r2 := newLogoutReceiver(t), newLogoutReceiver(t)
	registerLogoutClients(t, s, r1, r2)
	b := newBrowser(t)
	sid, _ := signInTo(t, s, b, "rp1", true)
	if r := s.adminDo(t, "DELETE", "/admin/v1/users/alice-sub/sessions"); r.status != 200 {
		t.Fatalf("admin: end the sessions: %d %s", r.status, r.body)
	}
	checkLogoutToken(t, s, r1.await(t, 2*time.Second, "rp1 after the admin API ended the session"), "rp1", "alice-sub", sid)
	r2.none(t, "rp2 (no ID token in that session)")
}

// logoutCount is oidcgate_backchannel_logout_total{outcome}.
func logoutCount(t *testing.T, s *server, outcome string) float64 {
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "oidcgate_backchannel_logout_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// waitFor polls cond until it holds, or fails after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(within); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s", what, within)
		}
	}
}
