package provider_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage"
	"github.com/oidcgate/oidcgate/provider/storage/memory"
)

// errOutage is what a store that lost its database answers.
var errOutage = errors.New("connection refused (injected)")

// faultyStore is the memory store with faults injected on demand: a named
// operation fails with errOutage, without doing anything, while it is set.
type faultyStore struct {
	storage.Storage
	mu   sync.Mutex
	down map[string]bool
}

func newFaultyStore() *faultyStore {
	return &faultyStore{Storage: memory.New(time.Now), down: map[string]bool{}}
}

func (f *faultyStore) fail(ops ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, op := range ops {
		f.down[op] = true
	}
}

func (f *faultyStore) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.down)
}

func (f *faultyStore) err(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[op] || f.down["*"] {
		return errOutage
	}
	return nil
}

func (f *faultyStore) GetUser(ctx context.Context, id string) (*storage.User, error) {
	if err := f.err("GetUser"); err != nil {
		return nil, err
	}
	return f.Storage.GetUser(ctx, id)
}

func (f *faultyStore) UseRefreshToken(ctx context.Context, h storage.Hash, out storage.Issued) (*storage.RefreshToken, error) {
	if err := f.err("UseRefreshToken"); err != nil {
		return nil, err
	}
	return f.Storage.UseRefreshToken(ctx, h, out)
}

func (f *faultyStore) ConsumeAuthCode(ctx context.Context, h storage.Hash, out storage.Issued) (*storage.AuthCode, error) {
	if err := f.err("ConsumeAuthCode"); err != nil {
		return nil, err
	}
	return f.Storage.ConsumeAuthCode(ctx, h, out)
}

func (f *faultyStore) GetClient(ctx context.Context, id string) (*storage.Client, error) {
	if err := f.err("GetClient"); err != nil {
		return nil, err
	}
	return f.Storage.GetClient(ctx, id)
}

func (f *faultyStore) GetInteraction(ctx context.Context, id string) (*storage.Interaction, error) {
	if err := f.err("GetInteraction"); err != nil {
		return nil, err
	}
	return f.Storage.GetInteraction(ctx, id)
}

func (f *faultyStore) CreateInteraction(ctx context.Context, i *storage.Interaction) error {
	if err := f.err("CreateInteraction"); err != nil {
		return err
	}
	return f.Storage.CreateInteraction(ctx, i)
}

// wantUnavailable checks RFC 6749's answer to an outage: 503
// temporarily_unavailable, with Retry-After.
func wantUnavailable(t *testing.T, what string, r response) {
	t.Helper()
	if r.status != 503 || r.json(t)["error"] != "temporarily_unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("%s during the outage: %d %v %s, want 503 temporarily_unavailable with Retry-After", what, r.status,
			r.header, r.body)
	}
}

// TestStoreOutageKeepsGrants: a store failure during a code redemption or
// a refresh is 503 temporarily_unavailable — never invalid_grant — and the
// code or refresh token is still good once the store is back.
func TestStoreOutageKeepsGrants(t *testing.T) {
	fs := newFaultyStore()
	s := start(t, fs)
	code := s.codeIn(t, newBrowser(t), "openid offline_access")
	redeem := func() response { return s.redeem(t, code) }
	for _, op := range []string{"GetUser", "ConsumeAuthCode"} {
		fs.fail(op)
		wantUnavailable(t, "code redemption ("+op+" failing)", redeem())
		fs.heal()
	}
	tok := redeem()
	if tok.status != 200 {
		t.Fatalf("the code after the outage: %d %s", tok.status, tok.body)
	}
	rt := tok.json(t)["refresh_token"].(string)
	refresh := func(token string) response {
		return s.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}}.Encode(), "web:"+secret)
	}
	for _, op := range []string{"GetUser", "UseRefreshToken"} {
		fs.fail(op)
		wantUnavailable(t, "refresh ("+op+" failing)", refresh(rt))
		fs.heal()
	}
	next := refresh(rt)
	if next.status != 200 {
		t.Fatalf("the refresh token after the outage: %d %s", next.status, next.body)
	}
	if r := refresh(next.json(t)["refresh_token"].(string)); r.status != 200 {
		t.Fatalf("the family after the outage: %d %s", r.status, r.body)
	}
}

// TestRefreshWiderScopeSpendsNothing: a refresh asking for more than was
// granted is refused before the token is spent.
func TestRefreshWiderScopeSpendsNothing(t *testing.T) {
	s := start(t, backends()[0].open(t))
	rt := s.grant(t, newBrowser(t), "openid offline_access")["refresh_token"].(string)
	wide := s.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"openid email"}}.Encode(), "web:"+secret)
	if wide.status != 400 || wide.json(t)["error"] != "invalid_scope" {
		t.Fatalf("wider scope: %d %s", wide.status, wide.body)
	}
	if r := s.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode(), "web:"+secret); r.status != 200 {
		t.Fatalf("the token after a refused wider scope: %d %s", r.status, r.body)
	}
}

// TestClientCacheServesStaleDuringOutage: past its TTL, a cached client
// keeps issuing tokens while the store fails, for ClientStaleTTL and no
// longer; a client the store says is gone is gone at once.
func TestClientCacheServesStaleDuringOutage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stale time.Duration
		want  int
	}{
		{"within the stale bound", time.Hour, 200},
		{"without stale-if-error", 0, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFaultyStore()
			s := start(t, fs, func(c *provider.Config) { c.ClientCacheTTL, c.ClientStaleTTL = time.Minute, tc.stale })
			s.token(t, "svc", "")            // cached
			s.clock.Advance(2 * time.Minute) // past the TTL
			fs.fail("GetClient")
			r := s.post(t, "/token", "grant_type=client_credentials", "svc:"+secret)
			if r.status != tc.want {
				t.Fatalf("token during the outage, past the TTL: %d %s, want %d", r.status, r.body, tc.want)
			}
			if tc.want == 503 {
				wantUnavailable(t, "token", r)
			}
			fs.heal()
			if err := fs.DeleteClient(context.Background(), "svc"); err != nil {
				t.Fatal(err)
			}
			s.clock.Advance(2 * time.Minute)
			if r := s.post(t, "/token", "grant_type=client_credentials", "svc:"+secret); r.status != 401 {
				t.Errorf("token for a deleted client past the TTL: %d %s", r.status, r.body)
			}
		})
	}
}

// TestOutageAnswersBrowsersInHTML: a browser meeting a store outage gets an
// HTML page (503, Retry-After) — or, once the client and its redirect URI
// are trusted, a redirect with error=temporarily_unavailable — never JSON.
func TestOutageAnswersBrowsersInHTML(t *testing.T) {
	fs := newFaultyStore()
	s := start(t, fs)
	htmlPage := func(what string, resp *http.Response, body string) {
		t.Helper()
		if resp.StatusCode != 503 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			resp.Header.Get("Retry-After") == "" || strings.Contains(body, `"error"`) || !strings.Contains(body, "try again") {
			t.Errorf("%s during the outage: %d %v %s", what, resp.StatusCode, resp.Header, body)
		}
	}
	get := func(u string) (*http.Response, string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	fs.fail("GetClient")
	resp, body := get(authURL(s, nil))
	htmlPage("/authorize, client unknown yet", resp, body)
	fs.heal()

	fs.fail("CreateInteraction")
	b := newBrowser(t)
	errorAt(t, s, b.get(authURL(s, nil)), "st", "temporarily_unavailable")
	fs.heal()

	p := b.get(authURL(s, nil)) // the sign-in page
	fs.fail("GetInteraction")
	resp, body = get(p.url.String())
	htmlPage("the sign-in page", resp, body)
	fs.heal()
}
