package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oidcgate/oidcgate/provider/connector"
	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// The authenticate step's page: sign-in with a password, the argon2id
// checker behind it and the limiter in front of it.

// loginRequest is a sign-in form (or, without post, the page's request).
type loginRequest struct {
	interactionRequest
	username, password string
}

func (p *Provider) loginForm(ia *storage.Interaction, c *storage.Client, username, msg string) page {
	return page{Title: "Sign in", Action: p.issuerPath + "/login", ClientName: c.Name, Interaction: ia.ID, CSRF: ia.CSRF,
		Username: username, Error: msg, PasswordForm: !p.cfg.HidePasswordForm, Connectors: p.connectorButtons(ia),
		Passkeys: p.cfg.Passkeys}
}

// loginPage shows the sign-in form of an interaction.
func (p *Provider) loginPage(ctx context.Context, r interactionRequest) (outcome, error) {
	ia, c, stop, err := p.resume(ctx, r)
	if stop != nil || err != nil {
		return deref(stop), err
	}
	return pageOutcome(http.StatusOK, "login", p.loginForm(ia, c, ia.LoginHint, "")), nil
}

// login checks a sign-in and, on success, starts a session and moves the
// interaction on.
func (p *Provider) login(ctx context.Context, r loginRequest) (outcome, error) {
	ia, c, stop, err := p.resume(ctx, r.interactionRequest)
	if stop != nil || err != nil {
		return deref(stop), err
	}
	if p.cfg.HidePasswordForm {
		return refused("Signing in with a username and password is turned off here."), nil
	}
	up, name := p.formConnector(r.username)
	label := "local"
	if up != nil {
		label = up.cfg.ID
	}
	keys := p.signInKeys(r.username, r.visit.ip)
	wait, ok := p.limiter.reserve(keys...)
	if !ok {
		p.log.Warn("sign-in refused: too many attempts", "username", fmt.Sprintf("%q", r.username), "ip", r.visit.ip)
		out := pageOutcome(http.StatusTooManyRequests, "login", p.loginForm(ia, c, r.username,
			"Too many failed attempts. Wait a minute and try again."))
		out.retryAfter = int(wait.Seconds() + 1)
		return out, nil
	}
	var u *storage.User
	var id connector.Identity
	if up == nil {
		u, err = p.passwords.check(ctx, r.username, r.password)
	} else {
		id, err = p.checkAtDirectory(ctx, up, name, r.password)
	}
	p.limiter.settle(keys, err == nil, errors.Is(err, errBadCredentials)) // an outage is no guess
	if errors.Is(err, errBadCredentials) {
		p.log.Info("sign-in failed", "connector", label, "username", fmt.Sprintf("%q", r.username), "ip", r.visit.ip)
		p.signIn(label, "bad_credentials", "username", fmt.Sprintf("%q", r.username), "ip", r.visit.ip)
		return pageOutcome(http.StatusUnauthorized, "login", p.loginForm(ia, c, r.username, "Invalid username or password.")), nil
	}
	if up != nil && err != nil {
		return p.upstreamFailed(up, err), nil
	}
	if err != nil {
		return outcome{}, err
	}
	if up != nil {
		sctx, scancel := requestCtx() // the store's own time, after the directory's
		defer scancel()
		return p.signInAs(sctx, ia, c, up, id, []string{"pwd"}, r.visit.ip)
	}
	p.signIn(label, "ok", "user_id", u.ID, "client_id", ia.ClientID, "ip", r.visit.ip, "amr", []string{"pwd"})
	return p.signedIn(ctx, ia, c, u, []string{"pwd"})
}

// signedIn starts u's session, authenticated by amr (RFC 8176), and moves
// the interaction on.
func (p *Provider) signedIn(ctx context.Context, ia *storage.Interaction, c *storage.Client, u *storage.User, amr []string) (outcome, error) {
	sessionCookie, err := p.startSignedIn(ctx, ia, u, amr)
	if err != nil {
		return outcome{}, err
	}
	out, err := p.next(ctx, ia, c)
	out.cookies = append(out.cookies, sessionCookie)
	return out, err
}

// startSignedIn starts u's session and records it in the interaction.
func (p *Provider) startSignedIn(ctx context.Context, ia *storage.Interaction, u *storage.User, amr []string) (cookie, error) {
	se, sessionCookie, err := p.startSession(ctx, u, amr)
	if err != nil {
		return cookie{}, err
	}
	ia.UserID, ia.SessionID, ia.AuthTime, ia.AMR = u.ID, se.ID, se.AuthTime, se.AMR
	if err := p.flowDB.UpdateInteraction(ctx, ia); err != nil {
		return cookie{}, oauth.ErrUnavailable(err)
	}
	return sessionCookie, nil
}

// checkAtDirectory checks the form's credentials at an ldap connector. A
// refused one costs what a refused local one does (the argon2 decoy), so
// the time a failure takes tells nothing of where the username lives.
func (p *Provider) checkAtDirectory(ctx context.Context, up *upstream, username, password string) (connector.Identity, error) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), upstreamTimeout)
	defer cancel()
	start := time.Now()
	id, err := up.password.Login(uctx, username, password)
	p.metrics.upstreamLatency.WithLabelValues(up.cfg.ID, "login").Observe(time.Since(start).Seconds())
	if errors.Is(err, connector.ErrBadCredentials) {
		if derr := p.passwords.decoyCheck(ctx, password); derr != nil {
			return id, derr
		}
		return id, errBadCredentials
	}
	return id, err
}

// deref is the outcome a resume stopped with (none when it failed).
func deref(o *outcome) outcome {
	if o == nil {
		return outcome{}
	}
	return *o
}

// signInKeys are what one sign-in attempt counts against, as OWASP's
// authentication cheat sheet advises: the username at this IP (the tight
// limit, cleared by a success), the IP across usernames (spraying), and the
// username across IPs — a slower limit, so strangers cannot lock a user out
// for long.
func (p *Provider) signInKeys(username, ip string) []limitKey {
	n, w := p.cfg.LoginLimit, p.cfg.LoginWindow
	return []limitKey{
		{"user@ip:" + username + "\x00" + ip, limitRule{n, w}},
		{"ip:" + ip, limitRule{4 * n, w}},
		{"user:" + username, limitRule{4 * n, 15 * w}},
	}
}

// errBadCredentials is the one answer to a failed login, whatever failed:
// an unknown user, a wrong password or a disabled account.
var errBadCredentials = errors.New("invalid username or password")

// passwords checks sign-ins with argon2id.
type passwords struct {
	users storage.Users
	// decoy is what an unknown user's attempt is checked against, so it
	// costs what a wrong password costs. It is not made by hashing: that
	// would hold the argon2 memory (64 MiB by default) from the start.
	decoy string
	// slots bounds the hashes computed at once to the cores that compute
	// them: each takes the argon2 memory, so a flood of sign-ins queues
	// here instead of growing the heap by 64 MiB per request.
	slots chan struct{}
	// decoys counts decoy checks made for refused directory sign-ins.
	decoys atomic.Int64
	cost   Argon2Params // of new hashes
}

func newPasswords(users storage.Users, cost Argon2Params) *passwords {
	return &passwords{users: users, decoy: decoyHash(cost), slots: make(chan struct{}, runtime.GOMAXPROCS(0)), cost: cost}
}

// check returns the user whose password this is, or errBadCredentials.
func (p *passwords) check(ctx context.Context, username, password string) (*storage.User, error) {
	u, err := p.users.GetUserByUsername(ctx, username)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, oauth.ErrUnavailable(err)
	}
	hash := p.decoy
	if u != nil && u.PasswordHash != "" { // a user from a connector has none
		hash = u.PasswordHash
	}
	ok, err := p.verify(ctx, hash, password)
	if err != nil {
		return nil, err
	}
	if u == nil || !ok || u.PasswordHash == "" || u.Disabled {
		return nil, errBadCredentials
	}
	return u, nil
}

// verify checks password against hash in one of the slots; a malformed
// hash does not match.
func (p *passwords) verify(ctx context.Context, hash, password string) (bool, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return false, oauth.ErrUnavailable(ctx.Err())
	}
	ok, err := VerifyPassword(hash, password)
	<-p.slots
	return ok && err == nil, nil
}

// hash hashes a new password in one of the slots.
func (p *passwords) hash(ctx context.Context, password string) (string, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return "", oauth.ErrUnavailable(ctx.Err())
	}
	defer func() { <-p.slots }()
	return HashPassword(password, p.cost)
}

// decoyCheck costs what checking a wrong password does.
func (p *passwords) decoyCheck(ctx context.Context, password string) error {
	p.decoys.Add(1)
	_, err := p.verify(ctx, p.decoy, password)
	return err
}

// limiter counts sign-in attempts per key (a client IP, a username at an
// IP, a username) in fixed windows. An attempt is reserved before the
// password is checked and counts against every key until it is known to
// have succeeded, so N concurrent guesses cannot all run: at most limit
// checks per key per window, whatever the concurrency. Each key has its own
// rule (limit and window).
type limiter struct {
	now func() time.Time

	mu   sync.Mutex
	keys map[string]*attempts
}

// limitRule is a key's budget: limit attempts (failed, or under way) per window.
type limitRule struct {
	limit  int
	window time.Duration
}

// limitKey is one key an attempt counts against, and its rule.
type limitKey struct {
	key  string
	rule limitRule
}

type attempts struct {
	failed, inFlight int
	until            time.Time // the window's end
}

// maxTracked bounds the keys kept; past it, idle ended windows are swept.
const maxTracked = 100_000

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, keys: map[string]*attempts{}}
}

// reserve takes one attempt against every key, or none when any is at its
// limit — then it reports how long until the latest of those windows ends
// (for Retry-After). A reservation must be ended with done.
func (l *limiter) reserve(keys ...limitKey) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.keys) >= maxTracked {
		for k, a := range l.keys {
			if a.inFlight == 0 && !now.Before(a.until) {
				delete(l.keys, k)
			}
		}
	}
	for _, k := range keys {
		if a := l.window(k, now); a.failed+a.inFlight >= k.rule.limit {
			wait = max(wait, a.until.Sub(now))
		}
	}
	if wait > 0 {
		return wait, false
	}
	for _, k := range keys {
		l.keys[k.key].inFlight++
	}
	return 0, true
}

// window returns k's current window, starting a new one when the last ended.
func (l *limiter) window(k limitKey, now time.Time) *attempts {
	a, ok := l.keys[k.key]
	if !ok {
		a = &attempts{until: now.Add(k.rule.window)}
		l.keys[k.key] = a
	} else if !now.Before(a.until) {
		a.failed, a.until = 0, now.Add(k.rule.window)
	}
	return a
}

// done ends a reservation: a failure counts against every key; a success
// counts against none and clears the keys in forget (the user at this IP).
func (l *limiter) done(failed bool, keys []limitKey, forget ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if a, ok := l.keys[k.key]; ok {
			a.inFlight = max(0, a.inFlight-1)
			if failed {
				a.failed++
			}
		}
	}
	for _, k := range forget {
		if a, ok := l.keys[k]; ok && a.inFlight == 0 {
			delete(l.keys, k)
		} else if ok {
			a.failed = 0
		}
	}
}

// settle ends a reservation of keys by its result: a success clears the
// first key (the user's own failures); a wrong guess counts against every
// key; anything else (an outage) neither.
func (l *limiter) settle(keys []limitKey, ok, wrongGuess bool) {
	if ok {
		l.done(false, keys, keys[0].key)
		return
	}
	l.done(wrongGuess, keys)
}

// count records one event against k and reports whether it is within k's
// rule (a plain counter, for pending authorization requests per IP).
func (l *limiter) count(k limitKey) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.window(k, l.now())
	if a.failed >= k.rule.limit {
		return false
	}
	a.failed++
	return true
}

// pendingLimit bounds the authorization requests one client IP may leave
// pending: each stores an interaction, and /authorize needs no credentials.
type pendingLimit struct {
	l    *limiter
	rule limitRule
}

func (p pendingLimit) allow(ip string) bool { return p.l.count(limitKey{"pending:" + ip, p.rule}) }
