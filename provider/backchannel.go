package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oidcgate/oidcgate/provider/storage"
)

// Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a
// session ends — RP-initiated logout, the account page, the admin API, a
// password change ending the other sessions — every client with a
// backchannel_logout_uri that was issued an ID token in it gets a signed
// logout token, POSTed server to server.
//
// The deliveries are queued in the store before the session is deleted,
// so none is lost to a crash; a worker (Run) sends them at once and
// retries failures with doubling delays until --backchannel-logout-attempts
// are spent: at least once, across restarts and replicas (a claim moves a
// delivery's next attempt past the request deadline, so replicas do not
// send it twice meanwhile). The sign-out itself never waits on a client.

const (
	backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"
	logoutTokenTTL   = 2 * time.Minute
	maxLogoutRetry   = 10 * time.Minute
	logoutBatch      = 32
)

// logoutStore is what back-channel logout uses of the store.
type logoutStore interface {
	EnqueueLogouts(ctx context.Context, ds []*storage.LogoutDelivery) error
	ClaimLogouts(ctx context.Context, now, until time.Time, limit int) ([]*storage.LogoutDelivery, error)
	UpdateLogout(ctx context.Context, d *storage.LogoutDelivery) error
	DeleteLogout(ctx context.Context, id string) error
	ListSessions(ctx context.Context, userID string) ([]*storage.Session, error)
	UpdateSession(ctx context.Context, s *storage.Session) error
}

// backchannel sends logout tokens.
type backchannel struct {
	db      logoutStore
	kick    chan struct{}
	client  *http.Client
	outcome *prometheus.CounterVec
}

func newBackchannel(db logoutStore, cfg Config, reg prometheus.Registerer) (*backchannel, error) {
	b := &backchannel{db: db, kick: make(chan struct{}, 1),
		client: &http.Client{Timeout: cfg.BackchannelLogoutTimeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a logout URI that redirects has failed
		}},
		outcome: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oidcgate_backchannel_logout_total",
			Help: "Back-channel logout token deliveries, by outcome: delivered, failed (to be retried), given_up, queue_error.",
		}, []string{"outcome"}),
	}
	return b, reg.Register(b.outcome)
}

// rememberLogoutClient records that c was issued an ID token in the
// session sid of userID, when c wants to hear of its end.
func (p *Provider) rememberLogoutClient(ctx context.Context, clientID, userID, sid string, scopes []string) error {
	if sid == "" || !slices.Contains(scopes, "openid") {
		return nil
	}
	c, err := p.client(ctx, clientID)
	if err != nil || c.BackchannelLogoutURI == "" {
		return err
	}
	list, err := p.bc.db.ListSessions(ctx, userID)
	if err != nil {
		return err
	}
	for _, se := range list {
		if se.ID == sid && !slices.Contains(se.Clients, c.ID) {
			se.Clients = append(se.Clients, c.ID)
			return p.bc.db.UpdateSession(ctx, se)
		}
	}
	return nil
}

// queueLogouts queues the logout tokens owed for se's end; the revocation
// of se calls it first, so a failure here keeps the session.
func (p *Provider) queueLogouts(ctx context.Context, se *storage.Session) error {
	if len(se.Clients) == 0 {
		return nil
	}
	now := p.now()
	ds := make([]*storage.LogoutDelivery, 0, len(se.Clients))
	for _, id := range se.Clients {
		ds = append(ds, &storage.LogoutDelivery{ID: newJTI(), ClientID: id, Subject: se.UserID, SessionID: se.ID, NextAt: now, CreatedAt: now})
	}
	if err := p.bc.db.EnqueueLogouts(ctx, ds); err != nil {
		p.bc.outcome.WithLabelValues("queue_error").Inc()
		return err
	}
	select { // wake the worker; it may be busy, then it finds them next
	case p.bc.kick <- struct{}{}:
	default:
	}
	return nil
}

// deliverLogouts sends due logout tokens until ctx ends: at once when
// woken, and every second for retries and other replicas' work.
func (p *Provider) deliverLogouts(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		p.sendDueLogouts(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.bc.kick:
		}
	}
}

// sendDueLogouts claims and sends what is due, in parallel.
func (p *Provider) sendDueLogouts(ctx context.Context) {
	for ctx.Err() == nil {
		now := p.now()
		// Claimed for twice a delivery's deadline: a crash mid-send lets
		// another worker retry it soon after.
		due, err := p.bc.db.ClaimLogouts(ctx, now, now.Add(2*p.cfg.BackchannelLogoutTimeout+time.Second), logoutBatch)
		if err != nil {
			p.log.Error("back-channel logout queue", "error", err)
			p.bc.outcome.WithLabelValues("queue_error").Inc()
			return
		}
		done := make(chan struct{}, len(due))
		for _, d := range due {
			go func() {
				p.sendLogout(ctx, d)
				done <- struct{}{}
			}()
		}
		for range due {
			<-done
		}
		if len(due) < logoutBatch {
			return
		}
	}
}

// sendLogout makes one attempt at d and records its outcome.
func (p *Provider) sendLogout(ctx context.Context, d *storage.LogoutDelivery) {
	err := p.postLogout(ctx, d)
	if err == nil {
		p.bc.outcome.WithLabelValues("delivered").Inc()
		if derr := p.bc.db.DeleteLogout(ctx, d.ID); derr != nil && !errors.Is(derr, storage.ErrNotFound) {
			p.log.Error("back-channel logout delivered but not dequeued (it will be sent again)", "client_id", d.ClientID, "error", derr)
		}
		return
	}
	d.Attempts++
	if d.Attempts >= p.cfg.BackchannelLogoutAttempts || errors.Is(err, errNoLogoutURI) {
		p.bc.outcome.WithLabelValues("given_up").Inc()
		p.log.Warn("back-channel logout given up", "client_id", d.ClientID, "attempts", d.Attempts, "error", err)
		p.audit("logout.backchannel_given_up", "client_id", d.ClientID, "user_id", d.Subject, "session_id", d.SessionID)
		p.bc.db.DeleteLogout(ctx, d.ID)
		return
	}
	p.bc.outcome.WithLabelValues("failed").Inc()
	delay := min(p.cfg.BackchannelLogoutRetry<<(d.Attempts-1), maxLogoutRetry)
	d.NextAt = p.now().Add(delay)
	p.log.Info("back-channel logout failed; will retry", "client_id", d.ClientID, "attempt", d.Attempts, "retry_in", delay.String(), "error", err)
	if uerr := p.bc.db.UpdateLogout(ctx, d); uerr != nil {
		p.log.Error("back-channel logout retry not recorded", "client_id", d.ClientID, "error", uerr)
	}
}

var errNoLogoutURI = errors.New("the client no longer has a back-channel logout URI")

// postLogout POSTs a fresh logout token for d to its client.
func (p *Provider) postLogout(ctx context.Context, d *storage.LogoutDelivery) error {
	c, err := p.client(ctx, d.ClientID)
	if errors.Is(err, storage.ErrNotFound) || err == nil && c.BackchannelLogoutURI == "" {
		return errNoLogoutURI
	}
	if err != nil {
		return err
	}
	token, err := p.logoutToken(c, d)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.BackchannelLogoutTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BackchannelLogoutURI,
		strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.bc.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 { // 200 per the spec; any 2xx is taken as done
		return fmt.Errorf("the client answered %d", resp.StatusCode)
	}
	return nil
}

// logoutClaims are a logout token's (Back-Channel Logout §2.4): no nonce.
type logoutClaims struct {
	Iss    string                    `json:"iss"`
	Aud    string                    `json:"aud"`
	Iat    int64                     `json:"iat"`
	Exp    int64                     `json:"exp"`
	Jti    string                    `json:"jti"`
	Sub    string                    `json:"sub"`
	Sid    string                    `json:"sid"`
	Events map[string]map[string]any `json:"events"`
}

// logoutToken signs a logout token for d with c's ID token algorithm,
// typ logout+jwt (§2.4); each attempt gets its own jti.
func (p *Provider) logoutToken(c *storage.Client, d *storage.LogoutDelivery) (string, error) {
	now := p.now()
	payload, err := json.Marshal(logoutClaims{Iss: p.cfg.Issuer, Aud: c.ID, Iat: now.Unix(), Exp: now.Add(logoutTokenTTL).Unix(),
		Jti: newJTI(), Sub: d.Subject, Sid: d.SessionID, Events: map[string]map[string]any{backchannelEvent: {}}})
	if err != nil {
		return "", err
	}
	return p.ring.Sign(p.idTokenAlg(c), "logout+jwt", payload)
}
