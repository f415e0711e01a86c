// Package storagetest is the conformance suite every storage backend runs:
// one definition of what the storage.Storage contract means.
package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/provider/storage"
)

// Opener opens a fresh, empty store that reads time from now. It registers
// the store's cleanup with t. reopen closes the store and opens the same
// data again through a new handle (a new file handle, a new pool).
type Opener func(t *testing.T, now func() time.Time) (s storage.Storage, reopen func() storage.Storage)

// Clock is a settable clock for the suite.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock set to t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// WallClock is the wall clock moved on by Advance: for tests whose peers
// (an OAuth client library, a cache's own timers) read the real time, so
// the injected one must stay near it.
type WallClock struct {
	mu  sync.Mutex
	off time.Duration
}

// Now returns the wall clock plus what Advance added.
func (c *WallClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

// Advance moves the clock forward by d.
func (c *WallClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// start is deliberately in a non-UTC zone with sub-microsecond digits, so
// every test also checks that timestamps round-trip as storage.Timestamp says.
var start = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.FixedZone("UTC+5:45", 5*3600+45*60))

// Run runs the whole suite against open.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Storage, clk *Clock)
	}{
		{"Clients", testClients},
		{"Users", testUsers},
		{"Identities", testIdentities},
		{"IdentityConcurrentLink", testIdentityConcurrent},
		{"Factors", testFactors},
		{"FactorConcurrentUse", testFactorConcurrent},
		{"SessionAndConsentListings", testListings},
		{"AdminTokens", testAdminTokens},
		{"AuditEvents", testAuditEvents},
		{"AssertionsSingleUse", testAssertions},
		{"AssertionConcurrentUse", testAssertionConcurrent},
		{"LogoutQueue", testLogoutQueue},
		{"LogoutQueueConcurrentClaims", testLogoutClaimsConcurrent},
		{"AuthCodes", testAuthCodes},
		{"AuthCodeConcurrentConsume", testAuthCodeConcurrent},
		{"RefreshTokens", testRefreshTokens},
		{"RefreshConcurrentUse", testRefreshConcurrent},
		{"RefreshFamilyRevocation", testRefreshFamily},
		{"RotationIsOneTransaction", testRotationAtomic},
		{"RedemptionIsOneTransaction", testRedemptionAtomic},
		{"RotationConcurrentSuccessors", testRotationConcurrent},
		{"AccessTokens", testAccessTokens},
		{"Interactions", testInteractions},
		{"Sessions", testSessions},
		{"Consents", testConsents},
		{"SigningKeys", testSigningKeys},
		{"SigningKeyLock", testSigningKeyLock},
		{"Revocations", testRevocations},
		{"RevocationsInOrder", testRevocationsSince},
		{"DeleteExpired", testDeleteExpired},
		{"TimeZoneRoundTrip", testTimeZones},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := NewClock(start)
			s, _ := open(t, clk.Now)
			tc.fn(t, s, clk)
		})
	}
	t.Run("PersistenceAcrossReopen", func(t *testing.T) {
		clk := NewClock(start)
		s, reopen := open(t, clk.Now)
		if reopen == nil {
			t.Skip("backend keeps nothing across a reopen")
		}
		testPersistence(t, s, clk, reopen)
	})
}

var ctx = context.Background()

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

func equalTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(storage.Timestamp(want)) {
		t.Errorf("%s = %v, want %v", what, got, storage.Timestamp(want))
	}
}

func newClient(id string) *storage.Client {
	return &storage.Client{
		ID:                      id,
		Name:                    "Client " + id,
		SecretHash:              []byte{1, 2, 3},
		RedirectURIs:            []string{"https://app.example/cb"},
		GrantTypes:              []string{"client_credentials"},
		TokenEndpointAuthMethod: "client_secret_basic",
		Scopes:                  []string{"read", "write"},
		Audiences:               []string{"https://api.example"},
		AccessTokenTTL:          5 * time.Minute,
		CreatedAt:               start,
		UpdatedAt:               start,
	}
}

func testClients(t *testing.T, s storage.Storage, _ *Clock) {
	c := newClient("c1")
	must(t, s.CreateClient(ctx, c))
	wantErr(t, s.CreateClient(ctx, newClient("c1")), storage.ErrAlreadyExists)

	got, err := s.GetClient(ctx, "c1")
	must(t, err)
	if got.Name != c.Name || !slices.Equal(got.Scopes, c.Scopes) || string(got.SecretHash) != string(c.SecretHash) ||
		got.AccessTokenTTL != c.AccessTokenTTL || got.TokenEndpointAuthMethod != c.TokenEndpointAuthMethod {
		t.Errorf("GetClient = %+v, want %+v", got, c)
	}
	equalTime(t, "CreatedAt", got.CreatedAt, start)
	// The store holds its own copy.
	got.Scopes[0] = "mutated"
	again, _ := s.GetClient(ctx, "c1")
	if again.Scopes[0] != "read" {
		t.Error("store shares memory with a returned record")
	}

	_, err = s.GetClient(ctx, "nope")
	wantErr(t, err, storage.ErrNotFound)

	got.Scopes = []string{"read"}
	got.Name = "Renamed"
	must(t, s.UpdateClient(ctx, got))
	got, err = s.GetClient(ctx, "c1")
	must(t, err)
	if got.Name != "Renamed" || !slices.Equal(got.Scopes, []string{"read"}) {
		t.Errorf("after update: %+v", got)
	}
	wantErr(t, s.UpdateClient(ctx, newClient("nope")), storage.ErrNotFound)

	must(t, s.CreateClient(ctx, newClient("c2")))
	list, err := s.ListClients(ctx)
	must(t, err)
	ids := []string{}
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	sort.Strings(ids)
	if !slices.Equal(ids, []string{"c1", "c2"}) {
		t.Errorf("ListClients ids = %v", ids)
	}

	must(t, s.DeleteClient(ctx, "c1"))
	_, err = s.GetClient(ctx, "c1")
	wantErr(t, err, storage.ErrNotFound)
	wantErr(t, s.DeleteClient(ctx, "c1"), storage.ErrNotFound)
}

func newUser(id, username string) *storage.User {
	return &storage.User{
		ID:           id,
		Username:     username,
		PasswordHash: "$argon2id$v=19$m=65536,t=1,p=2$c2FsdA$aGFzaA",
		Claims:       map[string]any{"email": username + "@example.com", "email_verified": true},
		CreatedAt:    start,
		UpdatedAt:    start,
	}
}

func testUsers(t *testing.T, s storage.Storage, _ *Clock) {
	must(t, s.CreateUser(ctx, newUser("u1", "alice")))
	wantErr(t, s.CreateUser(ctx, newUser("u1", "other")), storage.ErrAlreadyExists)
	wantErr(t, s.CreateUser(ctx, newUser("u2", "alice")), storage.ErrAlreadyExists)

	got, err := s.GetUser(ctx, "u1")
	must(t, err)
	if got.Username != "alice" || got.Claims["email"] != "alice@example.com" || got.Claims["email_verified"] != true {
		t.Errorf("GetUser = %+v", got)
	}
	byName, err := s.GetUserByUsername(ctx, "alice")
	must(t, err)
	if byName.ID != "u1" {
		t.Errorf("GetUserByUsername id = %q", byName.ID)
	}
	_, err = s.GetUser(ctx, "nope")
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.GetUserByUsername(ctx, "nobody")
	wantErr(t, err, storage.ErrNotFound)

	must(t, s.CreateUser(ctx, newUser("u2", "bob")))
	// Renaming onto a taken username fails and changes nothing.
	got.Username = "bob"
	wantErr(t, s.UpdateUser(ctx, got), storage.ErrAlreadyExists)
	if u, err := s.GetUserByUsername(ctx, "alice"); err != nil || u.ID != "u1" {
		t.Errorf("after failed rename: %v %v", u, err)
	}
	got.Username = "alice2"
	got.Disabled = true
	must(t, s.UpdateUser(ctx, got))
	_, err = s.GetUserByUsername(ctx, "alice")
	wantErr(t, err, storage.ErrNotFound)
	renamed, err := s.GetUserByUsername(ctx, "alice2")
	must(t, err)
	if !renamed.Disabled {
		t.Error("Disabled not kept")
	}
	wantErr(t, s.UpdateUser(ctx, newUser("nope", "nope")), storage.ErrNotFound)

	list, err := s.ListUsers(ctx)
	must(t, err)
	if len(list) != 2 {
		t.Errorf("ListUsers = %d users, want 2", len(list))
	}
	must(t, s.DeleteUser(ctx, "u1"))
	wantErr(t, s.DeleteUser(ctx, "u1"), storage.ErrNotFound)
	_, err = s.GetUserByUsername(ctx, "alice2")
	wantErr(t, err, storage.ErrNotFound)
	// The username is free again.
	must(t, s.CreateUser(ctx, newUser("u3", "alice2")))
}

func newCode(secret string, clk *Clock) *storage.AuthCode {
	return &storage.AuthCode{
		Hash:          storage.HashOf(secret),
		ClientID:      "c1",
		UserID:        "u1",
		SessionID:     "s1",
		RedirectURI:   "https://app.example/cb",
		Scopes:        []string{"openid", "profile"},
		Nonce:         "n-0S6_WzA2Mj",
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		AuthTime:      clk.Now(),
		AMR:           []string{"pwd"},
		FamilyID:      "fam-" + secret,
		CreatedAt:     clk.Now(),
		ExpiresAt:     clk.Now().Add(time.Minute),
	}
}

func testIdentities(t *testing.T, s storage.Storage, clk *Clock) {
	must(t, s.CreateUser(ctx, newUser("u1", "alice")))
	must(t, s.CreateUser(ctx, newUser("u2", "bob")))
	now := clk.Now()
	link := func(conn, sub, user string) *storage.Identity {
		return &storage.Identity{ConnectorID: conn, Subject: sub, UserID: user,
			Claims: map[string]any{"email": sub + "@example.com", "groups": []any{"a", "b"}}, CreatedAt: now, LastLoginAt: now}
	}
	must(t, s.CreateIdentity(ctx, link("corp", "s1", "u1")))
	must(t, s.CreateIdentity(ctx, link("github", "42", "u1")))
	must(t, s.CreateIdentity(ctx, link("corp", "s2", "u2")))
	wantErr(t, s.CreateIdentity(ctx, link("corp", "s1", "u2")), storage.ErrAlreadyExists)
	wantErr(t, s.CreateIdentity(ctx, link("corp", "s9", "nobody")), storage.ErrNotFound)
	// The same subject at another connector is another identity.
	must(t, s.CreateIdentity(ctx, link("other", "s1", "u2")))

	got, err := s.GetIdentity(ctx, "corp", "s1")
	must(t, err)
	if got.UserID != "u1" || got.Claims["email"] != "s1@example.com" {
		t.Errorf("identity = %+v", got)
	}
	equalTime(t, "created_at", got.CreatedAt, now)
	if _, err := s.GetIdentity(ctx, "corp", "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("missing identity: %v", err)
	}

	list, err := s.ListIdentities(ctx, "u1")
	must(t, err)
	if len(list) != 2 || list[0].ConnectorID != "corp" || list[1].ConnectorID != "github" {
		t.Errorf("u1's identities = %+v", list)
	}
	if list, _ := s.ListIdentities(ctx, "nobody"); len(list) != 0 {
		t.Errorf("a user without links lists %+v", list)
	}

	// Moving a link to another user moves it in the per-user listing.
	got.UserID, got.LastLoginAt = "u2", now.Add(time.Hour)
	must(t, s.UpdateIdentity(ctx, got))
	if list, _ := s.ListIdentities(ctx, "u1"); len(list) != 1 || list[0].ConnectorID != "github" {
		t.Errorf("after the move u1 lists %+v", list)
	}
	if list, _ := s.ListIdentities(ctx, "u2"); len(list) != 3 {
		t.Errorf("after the move u2 lists %+v", list)
	}
	wantErr(t, s.UpdateIdentity(ctx, link("corp", "nope", "u1")), storage.ErrNotFound)
	wantErr(t, s.UpdateIdentity(ctx, link("corp", "s1", "nobody")), storage.ErrNotFound)

	must(t, s.DeleteIdentity(ctx, "github", "42"))
	wantErr(t, s.DeleteIdentity(ctx, "github", "42"), storage.ErrNotFound)
	if list, _ := s.ListIdentities(ctx, "u1"); len(list) != 0 {
		t.Errorf("after the unlink u1 lists %+v", list)
	}

	// Deleting a user deletes its links, and only its.
	must(t, s.DeleteUser(ctx, "u2"))
	for _, k := range [][2]string{{"corp", "s1"}, {"corp", "s2"}, {"other", "s1"}} {
		if _, err := s.GetIdentity(ctx, k[0], k[1]); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%v outlived its user: %v", k, err)
		}
	}
	must(t, s.CreateIdentity(ctx, link("corp", "s1", "u1")))
}

// testIdentityConcurrent: of concurrent first links of one identity,
// exactly one is written.
func testIdentityConcurrent(t *testing.T, s storage.Storage, clk *Clock) {
	const n = 20
	for i := range n {
		must(t, s.CreateUser(ctx, newUser(fmt.Sprintf("u%d", i), fmt.Sprintf("user%d", i))))
	}
	onlyOneWins(t, n, "link", storage.ErrAlreadyExists, func(i int) error {
		return s.CreateIdentity(ctx, &storage.Identity{ConnectorID: "corp", Subject: "same", UserID: fmt.Sprintf("u%d", i), CreatedAt: clk.Now()})
	})
}

// onlyOneWins runs op n times at once: exactly one must succeed, and every
// other fail with lost.
func onlyOneWins(t *testing.T, n int, what string, lost error, op func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	var won atomic.Int32
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := op(i); {
			case err == nil:
				won.Add(1)
			case !errors.Is(err, lost):
				t.Errorf("%s %d: %v", what, i, err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d of %d concurrent attempts to %s succeeded, want 1", won.Load(), n, what)
	}
}

func testFactors(t *testing.T, s storage.Storage, clk *Clock) {
	must(t, s.CreateUser(ctx, newUser("u1", "alice")))
	must(t, s.CreateUser(ctx, newUser("u2", "bob")))
	now := clk.Now()
	totp := &storage.Factor{ID: "f1", UserID: "u1", Kind: storage.FactorTOTP, Name: "phone", Secret: []byte{1, 2, 3}, CreatedAt: now}
	must(t, s.CreateFactor(ctx, totp))
	wantErr(t, s.CreateFactor(ctx, totp), storage.ErrAlreadyExists)
	wantErr(t, s.CreateFactor(ctx, &storage.Factor{ID: "f9", UserID: "nobody", Kind: storage.FactorTOTP, CreatedAt: now}), storage.ErrNotFound)
	must(t, s.CreateFactor(ctx, &storage.Factor{ID: "f2", UserID: "u1", Kind: storage.FactorWebAuthn, Name: "key",
		Credential: []byte(`{"id":"x"}`), CredentialID: []byte("cred"), CreatedAt: now.Add(time.Second)}))
	for i := range 3 {
		must(t, s.CreateFactor(ctx, &storage.Factor{ID: fmt.Sprintf("r%d", i), UserID: "u1", Kind: storage.FactorRecovery,
			Hash: storage.HashOf(fmt.Sprint("code", i)), CreatedAt: now.Add(2 * time.Second)}))
	}
	// The same factor ID under another user is another factor.
	must(t, s.CreateFactor(ctx, &storage.Factor{ID: "f1", UserID: "u2", Kind: storage.FactorTOTP, CreatedAt: now}))

	list, err := s.ListFactors(ctx, "u1")
	must(t, err)
	if len(list) != 5 || list[0].ID != "f1" || list[1].ID != "f2" || string(list[0].Secret) != "\x01\x02\x03" ||
		string(list[1].CredentialID) != "cred" || list[2].Hash != storage.HashOf("code0") {
		t.Fatalf("u1's factors = %+v", list)
	}
	equalTime(t, "created_at", list[0].CreatedAt, now)

	// Counters only go up; the last use is recorded with them.
	must(t, s.UseFactor(ctx, "u1", "f1", 100, now.Add(time.Minute)))
	wantErr(t, s.UseFactor(ctx, "u1", "f1", 100, now), storage.ErrAlreadyUsed)
	wantErr(t, s.UseFactor(ctx, "u1", "f1", 99, now), storage.ErrAlreadyUsed)
	must(t, s.UseFactor(ctx, "u1", "f1", 101, now.Add(2*time.Minute)))
	// A counterless authenticator (0 and 0) may be used again.
	must(t, s.UseFactor(ctx, "u1", "f2", 0, now))
	must(t, s.UseFactor(ctx, "u1", "f2", 0, now))
	must(t, s.UseFactor(ctx, "u1", "r0", 1, now))
	wantErr(t, s.UseFactor(ctx, "u1", "r0", 1, now), storage.ErrAlreadyUsed)
	wantErr(t, s.UseFactor(ctx, "u1", "nope", 1, now), storage.ErrNotFound)
	wantErr(t, s.UseFactor(ctx, "u2", "f2", 1, now), storage.ErrNotFound)
	list, _ = s.ListFactors(ctx, "u1")
	if list[0].Counter != 101 || list[4-2].Counter != 1 {
		t.Errorf("counters after use = %d, %d", list[0].Counter, list[2].Counter)
	}
	equalTime(t, "last_used_at", list[0].LastUsedAt, now.Add(2*time.Minute))
	if other, _ := s.ListFactors(ctx, "u2"); len(other) != 1 || other[0].Counter != 0 {
		t.Errorf("u2's factor changed with u1's: %+v", other)
	}

	must(t, s.DeleteFactor(ctx, "u1", "f2"))
	wantErr(t, s.DeleteFactor(ctx, "u1", "f2"), storage.ErrNotFound)
	n, err := s.DeleteFactors(ctx, "u1", storage.FactorRecovery)
	must(t, err)
	if list, _ := s.ListFactors(ctx, "u1"); n != 3 || len(list) != 1 || list[0].ID != "f1" {
		t.Errorf("after removing recovery codes (%d): %+v", n, list)
	}
	// Deleting a user deletes its factors.
	must(t, s.DeleteUser(ctx, "u2"))
	must(t, s.CreateUser(ctx, newUser("u2", "bob")))
	if list, _ := s.ListFactors(ctx, "u2"); len(list) != 0 {
		t.Errorf("a deleted user's factors survived: %+v", list)
	}
	n, err = s.DeleteFactors(ctx, "u1", "")
	must(t, err)
	if list, _ := s.ListFactors(ctx, "u1"); n != 1 || len(list) != 0 {
		t.Errorf("after a reset (%d): %+v", n, list)
	}
}

// testFactorConcurrent: one TOTP step (or recovery code) used by N
// requests at once is accepted exactly once.
func testFactorConcurrent(t *testing.T, s storage.Storage, clk *Clock) {
	must(t, s.CreateUser(ctx, newUser("u1", "alice")))
	must(t, s.CreateFactor(ctx, &storage.Factor{ID: "f1", UserID: "u1", Kind: storage.FactorTOTP, Counter: 7, CreatedAt: clk.Now()}))
	onlyOneWins(t, 20, "use one code", storage.ErrAlreadyUsed, func(int) error { return s.UseFactor(ctx, "u1", "f1", 8, clk.Now()) })
}

func testAdminTokens(t *testing.T, s storage.Storage, clk *Clock) {
	now := clk.Now()
	tok := func(id, name, secret string, exp time.Time) *storage.AdminToken {
		return &storage.AdminToken{ID: id, Name: name, Hash: storage.HashOf(secret), CreatedAt: now, ExpiresAt: exp}
	}
	must(t, s.CreateAdminToken(ctx, tok("t1", "deploy", "s1", time.Time{})))
	must(t, s.CreateAdminToken(ctx, tok("t2", "ci", "s2", now.Add(time.Hour))))
	wantErr(t, s.CreateAdminToken(ctx, tok("t3", "deploy", "s3", time.Time{})), storage.ErrAlreadyExists)
	wantErr(t, s.CreateAdminToken(ctx, tok("t1", "other", "s4", time.Time{})), storage.ErrAlreadyExists)
	wantErr(t, s.CreateAdminToken(ctx, tok("t5", "other", "s1", time.Time{})), storage.ErrAlreadyExists)
	got, err := s.GetAdminToken(ctx, storage.HashOf("s2"))
	must(t, err)
	if got.ID != "t2" || got.Name != "ci" {
		t.Errorf("token = %+v", got)
	}
	equalTime(t, "expires_at", got.ExpiresAt, now.Add(time.Hour))
	_, err = s.GetAdminToken(ctx, storage.HashOf("nope"))
	wantErr(t, err, storage.ErrNotFound)
	clk.Advance(2 * time.Hour)
	_, err = s.GetAdminToken(ctx, storage.HashOf("s2"))
	wantErr(t, err, storage.ErrNotFound) // expired
	list, err := s.ListAdminTokens(ctx)
	must(t, err)
	if len(list) != 2 || list[0].Name != "ci" || list[1].Name != "deploy" {
		t.Errorf("tokens = %+v", list)
	}
	must(t, s.DeleteAdminToken(ctx, "t1"))
	wantErr(t, s.DeleteAdminToken(ctx, "t1"), storage.ErrNotFound)
	_, err = s.GetAdminToken(ctx, storage.HashOf("s1"))
	wantErr(t, err, storage.ErrNotFound)
}

func testAuditEvents(t *testing.T, s storage.Storage, clk *Clock) {
	base := clk.Now()
	add := func(i int, event, user, client, actor string, keep time.Duration) {
		at := base.Add(time.Duration(i) * time.Second)
		must(t, s.AppendAuditEvent(ctx, &storage.AuditEvent{ID: storage.AuditID(at, fmt.Sprint(i)), Time: at, Event: event, Actor: actor,
			UserID: user, ClientID: client, IP: "192.0.2.1", Details: map[string]any{"n": i}, ExpiresAt: at.Add(keep)}))
	}
	add(1, "signin.succeeded", "u1", "", "", time.Hour)
	add(3, "mfa.enrolled", "u1", "", "user", time.Hour)
	add(2, "client.created", "", "c1", "deploy", time.Hour) // appended out of order
	add(4, "mfa.reset", "u2", "", "deploy", time.Hour)
	add(5, "signin.failed", "", "", "", time.Minute)
	ids := func(f storage.AuditFilter) []string {
		t.Helper()
		list, err := s.ListAuditEvents(ctx, f)
		must(t, err)
		var out []string
		for _, e := range list {
			out = append(out, e.Event)
		}
		return out
	}
	if got := ids(storage.AuditFilter{}); !slices.Equal(got, []string{"signin.failed", "mfa.reset", "mfa.enrolled", "client.created", "signin.succeeded"}) {
		t.Errorf("all, newest first: %v", got)
	}
	for name, tc := range map[string]struct {
		f    storage.AuditFilter
		want []string
	}{
		"event":  {storage.AuditFilter{Event: "mfa.reset"}, []string{"mfa.reset"}},
		"prefix": {storage.AuditFilter{Event: "mfa."}, []string{"mfa.reset", "mfa.enrolled"}},
		"user":   {storage.AuditFilter{UserID: "u1"}, []string{"mfa.enrolled", "signin.succeeded"}},
		"client": {storage.AuditFilter{ClientID: "c1"}, []string{"client.created"}},
		"actor":  {storage.AuditFilter{Actor: "deploy"}, []string{"mfa.reset", "client.created"}},
		"window": {storage.AuditFilter{Since: base.Add(2 * time.Second), Until: base.Add(4 * time.Second)}, []string{"mfa.enrolled", "client.created"}},
		"limit":  {storage.AuditFilter{Limit: 2}, []string{"signin.failed", "mfa.reset"}},
	} {
		if got := ids(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
	list, _ := s.ListAuditEvents(ctx, storage.AuditFilter{Event: "mfa.enrolled"})
	if len(list) != 1 || list[0].Actor != "user" || list[0].IP != "192.0.2.1" || list[0].Details["n"] != 3.0 {
		t.Errorf("an event's fields: %+v", list)
	}
	// Retention: an expired event is neither listed nor kept.
	clk.Advance(10 * time.Minute)
	if got := ids(storage.AuditFilter{Event: "signin.failed"}); len(got) != 0 {
		t.Errorf("an expired event listed: %v", got)
	}
	n, err := s.DeleteExpired(ctx)
	must(t, err)
	if n != 1 {
		t.Errorf("DeleteExpired removed %d, want the 1 expired event", n)
	}
	if got := ids(storage.AuditFilter{}); len(got) != 4 {
		t.Errorf("after the clean-up: %v", got)
	}
}

func testAssertions(t *testing.T, s storage.Storage, clk *Clock) {
	exp := clk.Now().Add(time.Minute)
	must(t, s.UseAssertion(ctx, "c1\x00jti-1", exp))
	wantErr(t, s.UseAssertion(ctx, "c1\x00jti-1", exp), storage.ErrAlreadyUsed)
	must(t, s.UseAssertion(ctx, "c2\x00jti-1", exp)) // another client's jti
	clk.Advance(2 * time.Minute)
	// Expired, it may be used again (its exp has passed, so a verifier refuses it anyway).
	n, err := s.DeleteExpired(ctx)
	must(t, err)
	if n != 2 {
		t.Errorf("DeleteExpired removed %d, want 2", n)
	}
	must(t, s.UseAssertion(ctx, "c1\x00jti-1", clk.Now().Add(time.Minute)))
}

// testAssertionConcurrent: N uses of one jti at once, exactly one wins.
func testAssertionConcurrent(t *testing.T, s storage.Storage, clk *Clock) {
	onlyOneWins(t, 20, "use one assertion", storage.ErrAlreadyUsed, func(int) error {
		return s.UseAssertion(ctx, "c1\x00same", clk.Now().Add(time.Minute))
	})
}

func newLogout(id string, next time.Time) *storage.LogoutDelivery {
	return &storage.LogoutDelivery{ID: id, ClientID: "c-" + id, Subject: "sub-1", SessionID: "sid-1", NextAt: next, CreatedAt: next}
}

// testLogoutQueue: deliveries come out when due, once per claim window,
// with their updates; a delete removes them.
func testLogoutQueue(t *testing.T, s storage.Storage, clk *Clock) {
	now := clk.Now()
	must(t, s.EnqueueLogouts(ctx, []*storage.LogoutDelivery{newLogout("a", now), newLogout("b", now.Add(-time.Second)), newLogout("later", now.Add(time.Hour))}))
	wantErr(t, s.EnqueueLogouts(ctx, []*storage.LogoutDelivery{newLogout("c", now), newLogout("a", now)}), storage.ErrAlreadyExists)
	got, err := s.ClaimLogouts(ctx, now, now.Add(time.Minute), 1)
	must(t, err)
	if len(got) != 1 || got[0].ID != "b" || got[0].ClientID != "c-b" || got[0].SessionID != "sid-1" {
		t.Fatalf("first claim (limit 1): %+v", got)
	}
	equalTime(t, "claimed next_at", got[0].NextAt, now.Add(time.Minute))
	got, err = s.ClaimLogouts(ctx, now, now.Add(time.Minute), 10)
	must(t, err)
	if len(got) != 1 || got[0].ID != "a" {
		t.Fatalf("second claim: %+v (c must not have been enqueued, b is claimed)", got)
	}
	got[0].Attempts, got[0].NextAt = 3, now.Add(10*time.Second)
	must(t, s.UpdateLogout(ctx, got[0]))
	clk.Advance(30 * time.Second)
	got, err = s.ClaimLogouts(ctx, clk.Now(), clk.Now().Add(time.Minute), 10)
	must(t, err)
	if len(got) != 1 || got[0].ID != "a" || got[0].Attempts != 3 {
		t.Fatalf("after the update: %+v", got)
	}
	must(t, s.DeleteLogout(ctx, "a"))
	wantErr(t, s.DeleteLogout(ctx, "a"), storage.ErrNotFound)
	wantErr(t, s.UpdateLogout(ctx, newLogout("a", now)), storage.ErrNotFound)
	clk.Advance(2 * time.Hour)
	got, err = s.ClaimLogouts(ctx, clk.Now(), clk.Now().Add(time.Minute), 10)
	must(t, err)
	if len(got) != 2 {
		t.Errorf("b (its claim lapsed) and later: %+v", got)
	}
}

// testLogoutClaimsConcurrent: claimants at once get each delivery once.
func testLogoutClaimsConcurrent(t *testing.T, s storage.Storage, clk *Clock) {
	now := clk.Now()
	var ds []*storage.LogoutDelivery
	for i := range 20 {
		ds = append(ds, newLogout(fmt.Sprintf("d%02d", i), now))
	}
	must(t, s.EnqueueLogouts(ctx, ds))
	var mu sync.Mutex
	var wg sync.WaitGroup
	seen := map[string]int{}
	gate := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			got, err := s.ClaimLogouts(ctx, now, now.Add(time.Minute), 5)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("claim: %v", err)
			}
			for _, d := range got {
				seen[d.ID]++
			}
		}()
	}
	close(gate)
	wg.Wait()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s claimed %d times", id, n)
		}
	}
	if len(seen) != 20 {
		t.Errorf("%d of 20 claimed by 8 claimants of 5", len(seen))
	}
}

// testRevocationsSince: revocations come back in the order they were
// recorded, from any point; a repeated one moves to the end; expired ones
// are gone; concurrent ones each get their own place.
func testRevocationsSince(t *testing.T, s storage.Storage, clk *Clock) {
	exp := clk.Now().Add(time.Hour)
	for _, jti := range []string{"a", "b", "c", "a"} {
		must(t, s.RevokeJTI(ctx, &storage.Revocation{JTI: jti, ExpiresAt: exp}))
	}
	must(t, s.RevokeJTI(ctx, &storage.Revocation{JTI: "short", ExpiresAt: clk.Now().Add(time.Second)}))
	all, err := s.RevocationsSince(ctx, 0, 100)
	must(t, err)
	var order []string
	for _, r := range all {
		order = append(order, r.JTI)
	}
	if strings.Join(order, ",") != "b,c,a,short" {
		t.Fatalf("order %v", order)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Fatalf("seqs not increasing: %+v", all)
		}
	}
	rest, err := s.RevocationsSince(ctx, all[1].Seq, 1)
	must(t, err)
	if len(rest) != 1 || rest[0].JTI != "a" {
		t.Errorf("after c, limit 1: %+v", rest)
	}
	clk.Advance(2 * time.Second)
	if got, _ := s.RevocationsSince(ctx, all[2].Seq, 100); len(got) != 0 {
		t.Errorf("an expired revocation: %+v", got)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.RevokeJTI(ctx, &storage.Revocation{JTI: fmt.Sprintf("c%02d", i), ExpiresAt: exp}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := s.RevocationsSince(ctx, all[len(all)-1].Seq, 100)
	must(t, err)
	seen := map[uint64]bool{}
	for _, r := range got {
		seen[r.Seq] = true
	}
	if len(got) != 20 || len(seen) != 20 {
		t.Errorf("20 concurrent revocations: %d, %d distinct seqs", len(got), len(seen))
	}
}

// testListings: a user's sessions and consents, live ones only.
func testListings(t *testing.T, s storage.Storage, clk *Clock) {
	a, b := newSession("sid-a", "cookie-a", clk), newSession("sid-b", "cookie-b", clk)
	b.CreatedAt = a.CreatedAt.Add(time.Second)
	other := newSession("sid-c", "cookie-c", clk)
	other.UserID = "someone-else"
	short := newSession("sid-d", "cookie-d", clk)
	short.IdleExpiresAt = clk.Now().Add(time.Minute)
	for _, se := range []*storage.Session{b, a, other, short} {
		must(t, s.CreateSession(ctx, se))
	}
	clk.Advance(2 * time.Minute)
	list, err := s.ListSessions(ctx, a.UserID)
	must(t, err)
	if len(list) != 2 || list[0].ID != "sid-a" || list[1].ID != "sid-b" {
		t.Errorf("sessions = %+v", list)
	}
	if list, _ := s.ListSessions(ctx, "nobody"); len(list) != 0 {
		t.Errorf("nobody's sessions = %+v", list)
	}
	now := clk.Now()
	must(t, s.PutConsent(ctx, &storage.Consent{UserID: "u1", ClientID: "c2", Scopes: []string{"openid"}, CreatedAt: now}))
	must(t, s.PutConsent(ctx, &storage.Consent{UserID: "u1", ClientID: "c1", Scopes: []string{"email"}, CreatedAt: now}))
	must(t, s.PutConsent(ctx, &storage.Consent{UserID: "u1", ClientID: "c3", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}))
	must(t, s.PutConsent(ctx, &storage.Consent{UserID: "u10", ClientID: "c1", CreatedAt: now}))
	clk.Advance(2 * time.Minute)
	consents, err := s.ListConsents(ctx, "u1")
	must(t, err)
	if len(consents) != 2 || consents[0].ClientID != "c1" || consents[1].ClientID != "c2" || consents[0].Scopes[0] != "email" {
		t.Errorf("consents = %+v", consents)
	}
}

func testAuthCodes(t *testing.T, s storage.Storage, clk *Clock) {
	c := newCode("code-1", clk)
	must(t, s.CreateAuthCode(ctx, c))
	wantErr(t, s.CreateAuthCode(ctx, newCode("code-1", clk)), storage.ErrAlreadyExists)

	got, err := s.ConsumeAuthCode(ctx, storage.HashOf("code-1"), storage.Issued{})
	must(t, err)
	if got.ClientID != "c1" || got.Nonce != c.Nonce || got.CodeChallenge != c.CodeChallenge || got.FamilyID != c.FamilyID ||
		got.Hash != c.Hash || !slices.Equal(got.Scopes, c.Scopes) {
		t.Errorf("ConsumeAuthCode = %+v", got)
	}
	equalTime(t, "UsedAt", got.UsedAt, clk.Now())
	again, err := s.ConsumeAuthCode(ctx, storage.HashOf("code-1"), storage.Issued{})
	wantErr(t, err, storage.ErrAlreadyUsed)
	if again == nil || again.FamilyID != c.FamilyID {
		t.Errorf("a replay must return the record for family revocation, got %+v", again)
	}

	_, err = s.ConsumeAuthCode(ctx, storage.HashOf("unknown"), storage.Issued{})
	wantErr(t, err, storage.ErrNotFound)

	must(t, s.CreateAuthCode(ctx, newCode("code-2", clk)))
	clk.Advance(time.Minute)
	_, err = s.ConsumeAuthCode(ctx, storage.HashOf("code-2"), storage.Issued{})
	wantErr(t, err, storage.ErrNotFound)

	must(t, s.CreateAuthCode(ctx, newCode("code-3", clk)))
	must(t, s.DeleteAuthCode(ctx, storage.HashOf("code-3")))
	_, err = s.ConsumeAuthCode(ctx, storage.HashOf("code-3"), storage.Issued{})
	wantErr(t, err, storage.ErrNotFound)
	wantErr(t, s.DeleteAuthCode(ctx, storage.HashOf("code-3")), storage.ErrNotFound)
}

// testRotationAtomic: rotating a refresh token writes its successor (and an
// opaque access token) in the same transaction; a write that fails between
// the steps — here the successor's or the access token's key exists already,
// as a crash or a lost connection would fail it — leaves the old token
// unused, so the client's retry still works.
func testRotationAtomic(t *testing.T, s storage.Storage, clk *Clock) {
	must(t, s.CreateRefreshToken(ctx, newRefresh("old", "fam", clk)))
	must(t, s.CreateRefreshToken(ctx, newRefresh("taken", "other", clk)))
	must(t, s.CreateAccessToken(ctx, newAccess("taken-at", clk)))
	for _, tc := range []struct {
		name string
		out  storage.Issued
	}{
		{"successor exists", storage.Issued{Refresh: newRefresh("taken", "fam", clk)}},
		{"access token exists", storage.Issued{Refresh: newRefresh("next-1", "fam", clk), Access: newAccess("taken-at", clk)}},
	} {
		_, err := s.UseRefreshToken(ctx, storage.HashOf("old"), tc.out)
		wantErr(t, err, storage.ErrAlreadyExists)
		got, err := s.GetRefreshToken(ctx, storage.HashOf("old"))
		must(t, err)
		if !got.UsedAt.IsZero() {
			t.Fatalf("%s: the failed rotation used the old token", tc.name)
		}
		if _, err := s.GetRefreshToken(ctx, storage.HashOf("next-1")); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s: the failed rotation wrote part of its successors: %v", tc.name, err)
		}
	}
	used, err := s.UseRefreshToken(ctx, storage.HashOf("old"), storage.Issued{Refresh: newRefresh("next", "fam", clk),
		Access: newAccess("next-at", clk)})
	must(t, err)
	if used.FamilyID != "fam" || used.UsedAt.IsZero() {
		t.Errorf("UseRefreshToken = %+v", used)
	}
	next, err := s.GetRefreshToken(ctx, storage.HashOf("next"))
	must(t, err)
	if next.FamilyID != "fam" || !next.UsedAt.IsZero() {
		t.Errorf("successor = %+v", next)
	}
	_, err = s.GetAccessToken(ctx, storage.HashOf("next-at"))
	must(t, err)
	// A used token writes nothing more.
	_, err = s.UseRefreshToken(ctx, storage.HashOf("old"), storage.Issued{Refresh: newRefresh("next-2", "fam", clk)})
	wantErr(t, err, storage.ErrAlreadyUsed)
	_, err = s.GetRefreshToken(ctx, storage.HashOf("next-2"))
	wantErr(t, err, storage.ErrNotFound)
	// The successor is one of the family: revoking the family reaches it.
	must(t, s.RevokeRefreshFamily(ctx, "fam"))
	_, err = s.UseRefreshToken(ctx, storage.HashOf("next"), storage.Issued{})
	wantErr(t, err, storage.ErrAlreadyUsed)
}

// testRedemptionAtomic: the same for a code and its first tokens.
func testRedemptionAtomic(t *testing.T, s storage.Storage, clk *Clock) {
	must(t, s.CreateAuthCode(ctx, newCode("code", clk)))
	must(t, s.CreateRefreshToken(ctx, newRefresh("taken", "other", clk)))
	got, err := s.GetAuthCode(ctx, storage.HashOf("code"))
	must(t, err)
	if got.FamilyID != "fam-code" || !got.UsedAt.IsZero() {
		t.Errorf("GetAuthCode = %+v", got)
	}
	_, err = s.GetAuthCode(ctx, storage.HashOf("unknown"))
	wantErr(t, err, storage.ErrNotFound)

	_, err = s.ConsumeAuthCode(ctx, storage.HashOf("code"), storage.Issued{Refresh: newRefresh("taken", "fam-code", clk),
		Access: newAccess("at", clk)})
	wantErr(t, err, storage.ErrAlreadyExists)
	if got, err := s.GetAuthCode(ctx, storage.HashOf("code")); err != nil || !got.UsedAt.IsZero() {
		t.Fatalf("the failed redemption used the code: %+v, %v", got, err)
	}
	if _, err := s.GetAccessToken(ctx, storage.HashOf("at")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the failed redemption wrote its access token: %v", err)
	}
	_, err = s.ConsumeAuthCode(ctx, storage.HashOf("code"), storage.Issued{Refresh: newRefresh("first", "fam-code", clk),
		Access: newAccess("at", clk)})
	must(t, err)
	_, err = s.GetRefreshToken(ctx, storage.HashOf("first"))
	must(t, err)
	_, err = s.GetAccessToken(ctx, storage.HashOf("at"))
	must(t, err)
	used, err := s.GetAuthCode(ctx, storage.HashOf("code"))
	must(t, err)
	equalTime(t, "UsedAt", used.UsedAt, clk.Now())
}

// testRotationConcurrent: of 50 concurrent rotations, each with its own
// successor, one wins and only its successor is written.
func testRotationConcurrent(t *testing.T, s storage.Storage, clk *Clock) {
	must(t, s.CreateRefreshToken(ctx, newRefresh("contended", "fam", clk)))
	var n atomic.Int32
	race(t, 50, func() error {
		_, err := s.UseRefreshToken(ctx, storage.HashOf("contended"),
			storage.Issued{Refresh: newRefresh(fmt.Sprint("succ-", n.Add(1)), "fam", clk)})
		return err
	})
	written := 0
	for i := 1; i <= 50; i++ {
		if _, err := s.GetRefreshToken(ctx, storage.HashOf(fmt.Sprint("succ-", i))); err == nil {
			written++
		}
	}
	if written != 1 {
		t.Errorf("%d successors written, want 1", written)
	}
}

func newAccess(secret string, clk *Clock) *storage.AccessToken {
	return &storage.AccessToken{Hash: storage.HashOf(secret), ClientID: "c1", Subject: "u1", FamilyID: "fam",
		CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}
}

// race runs fn from n goroutines released together and counts the
// outcomes: nil, ErrAlreadyUsed, anything else.
func race(t *testing.T, n int, fn func() error) {
	t.Helper()
	var wins, used, other atomic.Int32
	var ready, done sync.WaitGroup
	gate := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	errs := make(chan error, n)
	for range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-gate
			switch err := fn(); {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, storage.ErrAlreadyUsed):
				used.Add(1)
			default:
				other.Add(1)
				errs <- err
			}
		}()
	}
	ready.Wait()
	close(gate)
	done.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	if wins.Load() != 1 || used.Load() != int32(n-1) {
		t.Fatalf("%d concurrent callers: %d won, %d got ErrAlreadyUsed, %d other; want exactly 1 and %d",
			n, wins.Load(), used.Load(), other.Load(), n-1)
	}
}

func testAuthCodeConcurrent(t *testing.T, s storage.Storage, clk *Clock) {
	must(t, s.CreateAuthCode(ctx, newCode("contended", clk)))
	race(t, 50, func() error {
		_, err := s.ConsumeAuthCode(ctx, storage.HashOf("contended"), storage.Issued{})
		return err
	})
}

func newRefresh(secret, family string, clk *Clock) *storage.RefreshToken {
	return &storage.RefreshToken{
		Hash:      storage.HashOf(secret),
		FamilyID:  family,
		ClientID:  "c1",
		UserID:    "u1",
		SessionID: "s1",
		Scopes:    []string{"openid", "offline_access"},
		Audience:  []string{"https://api.example"},
		AuthTime:  clk.Now(),
		AMR:       []string{"pwd"},
		CreatedAt: clk.Now(),
		ExpiresAt: clk.Now().Add(time.Hour),
	}
}

func testRefreshTokens(t *testing.T, s storage.Storage, clk *Clock) {
	rt := newRefresh("rt-1", "fam-1", clk)
	must(t, s.CreateRefreshToken(ctx, rt))
	wantErr(t, s.CreateRefreshToken(ctx, newRefresh("rt-1", "fam-1", clk)), storage.ErrAlreadyExists)

	got, err := s.GetRefreshToken(ctx, rt.Hash)
	must(t, err)
	if got.FamilyID != "fam-1" || got.UserID != "u1" || !got.UsedAt.IsZero() || !slices.Equal(got.Audience, rt.Audience) {
		t.Errorf("GetRefreshToken = %+v", got)
	}
	_, err = s.GetRefreshToken(ctx, storage.HashOf("unknown"))
	wantErr(t, err, storage.ErrNotFound)

	used, err := s.UseRefreshToken(ctx, rt.Hash, storage.Issued{})
	must(t, err)
	equalTime(t, "UsedAt", used.UsedAt, clk.Now())
	again, err := s.UseRefreshToken(ctx, rt.Hash, storage.Issued{})
	wantErr(t, err, storage.ErrAlreadyUsed)
	if again == nil || again.FamilyID != "fam-1" {
		t.Errorf("reuse must return the record, got %+v", again)
	}
	_, err = s.UseRefreshToken(ctx, storage.HashOf("unknown"), storage.Issued{})
	wantErr(t, err, storage.ErrNotFound)

	must(t, s.CreateRefreshToken(ctx, newRefresh("rt-2", "fam-2", clk)))
	clk.Advance(time.Hour)
	_, err = s.GetRefreshToken(ctx, storage.HashOf("rt-2"))
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.UseRefreshToken(ctx, storage.HashOf("rt-2"), storage.Issued{})
	wantErr(t, err, storage.ErrNotFound)
}

func testRefreshConcurrent(t *testing.T, s storage.Storage, clk *Clock) {
	must(t, s.CreateRefreshToken(ctx, newRefresh("contended", "fam", clk)))
	race(t, 50, func() error {
		_, err := s.UseRefreshToken(ctx, storage.HashOf("contended"), storage.Issued{})
		return err
	})
}

func testRefreshFamily(t *testing.T, s storage.Storage, clk *Clock) {
	for i := range 3 {
		must(t, s.CreateRefreshToken(ctx, newRefresh(fmt.Sprint("a", i), "fam-a", clk)))
	}
	must(t, s.CreateRefreshToken(ctx, newRefresh("b0", "fam-b", clk)))
	clk.Advance(time.Second)
	must(t, s.RevokeRefreshFamily(ctx, "fam-a"))
	for i := range 3 {
		h := storage.HashOf(fmt.Sprint("a", i))
		got, err := s.GetRefreshToken(ctx, h)
		must(t, err)
		equalTime(t, "RevokedAt", got.RevokedAt, clk.Now())
		_, err = s.UseRefreshToken(ctx, h, storage.Issued{})
		wantErr(t, err, storage.ErrAlreadyUsed)
	}
	// Another family is untouched.
	if _, err := s.UseRefreshToken(ctx, storage.HashOf("b0"), storage.Issued{}); err != nil {
		t.Errorf("other family affected: %v", err)
	}
	// Revoking again, or an unknown family, is not an error.
	must(t, s.RevokeRefreshFamily(ctx, "fam-a"))
	must(t, s.RevokeRefreshFamily(ctx, "fam-none"))
}

func testAccessTokens(t *testing.T, s storage.Storage, clk *Clock) {
	at := &storage.AccessToken{Hash: storage.HashOf("at-1"), ClientID: "c1", Subject: "c1", Scopes: []string{"read"},
		Audience: []string{"https://api.example"}, CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}
	must(t, s.CreateAccessToken(ctx, at))
	wantErr(t, s.CreateAccessToken(ctx, at), storage.ErrAlreadyExists)
	got, err := s.GetAccessToken(ctx, at.Hash)
	must(t, err)
	if got.ClientID != "c1" || got.Subject != "c1" || !slices.Equal(got.Scopes, at.Scopes) || !slices.Equal(got.Audience, at.Audience) {
		t.Errorf("GetAccessToken = %+v", got)
	}
	equalTime(t, "ExpiresAt", got.ExpiresAt, at.ExpiresAt)
	_, err = s.GetAccessToken(ctx, storage.HashOf("unknown"))
	wantErr(t, err, storage.ErrNotFound)
	must(t, s.DeleteAccessToken(ctx, at.Hash))
	_, err = s.GetAccessToken(ctx, at.Hash)
	wantErr(t, err, storage.ErrNotFound)
	wantErr(t, s.DeleteAccessToken(ctx, at.Hash), storage.ErrNotFound)

	must(t, s.CreateAccessToken(ctx, &storage.AccessToken{Hash: storage.HashOf("at-2"), ClientID: "c1",
		CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Minute)}))
	clk.Advance(time.Minute)
	_, err = s.GetAccessToken(ctx, storage.HashOf("at-2"))
	wantErr(t, err, storage.ErrNotFound)
}

func testInteractions(t *testing.T, s storage.Storage, clk *Clock) {
	i := &storage.Interaction{ID: "ia-1", CSRF: "csrf", ClientID: "c1", RedirectURI: "https://app.example/cb",
		ResponseMode: "query", State: "st", Nonce: "n", Scopes: []string{"openid"}, CodeChallenge: "ch", Prompt: []string{"login"},
		MaxAge: -1, CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(10 * time.Minute)}
	must(t, s.CreateInteraction(ctx, i))
	wantErr(t, s.CreateInteraction(ctx, i), storage.ErrAlreadyExists)
	got, err := s.GetInteraction(ctx, "ia-1")
	must(t, err)
	if got.CSRF != "csrf" || got.MaxAge != -1 || !slices.Equal(got.Prompt, []string{"login"}) || got.UserID != "" {
		t.Errorf("GetInteraction = %+v", got)
	}
	got.UserID, got.AuthTime, got.AMR = "u1", clk.Now(), []string{"pwd"}
	must(t, s.UpdateInteraction(ctx, got))
	got, err = s.GetInteraction(ctx, "ia-1")
	must(t, err)
	if got.UserID != "u1" || !slices.Equal(got.AMR, []string{"pwd"}) {
		t.Errorf("after update: %+v", got)
	}
	wantErr(t, s.UpdateInteraction(ctx, &storage.Interaction{ID: "nope"}), storage.ErrNotFound)
	_, err = s.GetInteraction(ctx, "nope")
	wantErr(t, err, storage.ErrNotFound)
	clk.Advance(10 * time.Minute)
	_, err = s.GetInteraction(ctx, "ia-1")
	wantErr(t, err, storage.ErrNotFound)
	must(t, s.CreateInteraction(ctx, &storage.Interaction{ID: "ia-2", CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Minute)}))
	must(t, s.DeleteInteraction(ctx, "ia-2"))
	wantErr(t, s.DeleteInteraction(ctx, "ia-2"), storage.ErrNotFound)
}

func newSession(id, secret string, clk *Clock) *storage.Session {
	return &storage.Session{
		ID:            id,
		Hash:          storage.HashOf(secret),
		UserID:        "u1",
		AuthTime:      clk.Now(),
		AMR:           []string{"pwd"},
		CreatedAt:     clk.Now(),
		IdleExpiresAt: clk.Now().Add(30 * time.Minute),
		ExpiresAt:     clk.Now().Add(8 * time.Hour),
	}
}

func testSessions(t *testing.T, s storage.Storage, clk *Clock) {
	se := newSession("sid-1", "cookie-1", clk)
	must(t, s.CreateSession(ctx, se))
	wantErr(t, s.CreateSession(ctx, newSession("sid-1", "cookie-x", clk)), storage.ErrAlreadyExists)
	wantErr(t, s.CreateSession(ctx, newSession("sid-x", "cookie-1", clk)), storage.ErrAlreadyExists)

	got, err := s.GetSession(ctx, storage.HashOf("cookie-1"))
	must(t, err)
	if got.ID != "sid-1" || got.UserID != "u1" || !slices.Equal(got.AMR, []string{"pwd"}) {
		t.Errorf("GetSession = %+v", got)
	}
	_, err = s.GetSession(ctx, storage.HashOf("cookie-unknown"))
	wantErr(t, err, storage.ErrNotFound)

	// Sliding idle expiry: touching moves it forward.
	clk.Advance(20 * time.Minute)
	got.IdleExpiresAt = clk.Now().Add(30 * time.Minute)
	must(t, s.UpdateSession(ctx, got))
	clk.Advance(20 * time.Minute) // past the first idle expiry, within the second
	got, err = s.GetSession(ctx, storage.HashOf("cookie-1"))
	must(t, err)
	clk.Advance(11 * time.Minute) // idle expiry passed
	_, err = s.GetSession(ctx, storage.HashOf("cookie-1"))
	wantErr(t, err, storage.ErrNotFound)
	wantErr(t, s.UpdateSession(ctx, newSession("sid-unknown", "c", clk)), storage.ErrNotFound)

	// Absolute expiry wins over a fresh idle expiry.
	se2 := newSession("sid-2", "cookie-2", clk)
	se2.ExpiresAt = clk.Now().Add(10 * time.Minute)
	must(t, s.CreateSession(ctx, se2))
	clk.Advance(10 * time.Minute)
	_, err = s.GetSession(ctx, storage.HashOf("cookie-2"))
	wantErr(t, err, storage.ErrNotFound)

	se3 := newSession("sid-3", "cookie-3", clk)
	must(t, s.CreateSession(ctx, se3))
	must(t, s.DeleteSession(ctx, "sid-3"))
	_, err = s.GetSession(ctx, storage.HashOf("cookie-3"))
	wantErr(t, err, storage.ErrNotFound)
	wantErr(t, s.DeleteSession(ctx, "sid-3"), storage.ErrNotFound)
}

func testConsents(t *testing.T, s storage.Storage, clk *Clock) {
	_, err := s.GetConsent(ctx, "u1", "c1")
	wantErr(t, err, storage.ErrNotFound)
	must(t, s.PutConsent(ctx, &storage.Consent{UserID: "u1", ClientID: "c1", Scopes: []string{"openid"}, CreatedAt: clk.Now()}))
	must(t, s.PutConsent(ctx, &storage.Consent{UserID: "u1", ClientID: "c1", Scopes: []string{"openid", "email"}, CreatedAt: clk.Now()}))
	must(t, s.PutConsent(ctx, &storage.Consent{UserID: "u1", ClientID: "c2", Scopes: []string{"profile"}, CreatedAt: clk.Now(),
		ExpiresAt: clk.Now().Add(time.Hour)}))
	got, err := s.GetConsent(ctx, "u1", "c1")
	must(t, err)
	if !slices.Equal(got.Scopes, []string{"openid", "email"}) {
		t.Errorf("consent scopes = %v, want the replacement", got.Scopes)
	}
	if !got.ExpiresAt.IsZero() {
		t.Errorf("ExpiresAt = %v, want zero (never)", got.ExpiresAt)
	}
	clk.Advance(time.Hour)
	_, err = s.GetConsent(ctx, "u1", "c2")
	wantErr(t, err, storage.ErrNotFound)
	if _, err := s.GetConsent(ctx, "u1", "c1"); err != nil {
		t.Errorf("a consent without expiry expired: %v", err)
	}
	must(t, s.DeleteConsent(ctx, "u1", "c1"))
	_, err = s.GetConsent(ctx, "u1", "c1")
	wantErr(t, err, storage.ErrNotFound)
	wantErr(t, s.DeleteConsent(ctx, "u1", "c1"), storage.ErrNotFound)
}

func testSigningKeys(t *testing.T, s storage.Storage, clk *Clock) {
	k := &storage.SigningKey{ID: "kid-1", Alg: "ES256", State: storage.KeyNext, Encrypted: []byte("sealed"),
		CreatedAt: clk.Now(), ActivatesAt: clk.Now().Add(time.Hour)}
	must(t, s.CreateSigningKey(ctx, k))
	wantErr(t, s.CreateSigningKey(ctx, k), storage.ErrAlreadyExists)
	must(t, s.CreateSigningKey(ctx, &storage.SigningKey{ID: "kid-2", Alg: "RS256", State: storage.KeyActive,
		Encrypted: []byte("sealed-2"), CreatedAt: clk.Now(), ActivatesAt: clk.Now()}))

	list, err := s.ListSigningKeys(ctx)
	must(t, err)
	if len(list) != 2 {
		t.Fatalf("ListSigningKeys = %d keys, want 2", len(list))
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	if list[0].Alg != "ES256" || list[0].State != storage.KeyNext || string(list[0].Encrypted) != "sealed" {
		t.Errorf("key = %+v", list[0])
	}
	equalTime(t, "ActivatesAt", list[0].ActivatesAt, clk.Now().Add(time.Hour))

	k.State = storage.KeyRetired
	k.RetiresAt = clk.Now().Add(2 * time.Hour)
	k.RemoveAt = clk.Now().Add(3 * time.Hour)
	must(t, s.UpdateSigningKey(ctx, k))
	list, _ = s.ListSigningKeys(ctx)
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	if list[0].State != storage.KeyRetired {
		t.Errorf("state after update = %q", list[0].State)
	}
	equalTime(t, "RemoveAt", list[0].RemoveAt, k.RemoveAt)
	wantErr(t, s.UpdateSigningKey(ctx, &storage.SigningKey{ID: "nope"}), storage.ErrNotFound)

	must(t, s.DeleteSigningKey(ctx, "kid-1"))
	wantErr(t, s.DeleteSigningKey(ctx, "kid-1"), storage.ErrNotFound)
	list, _ = s.ListSigningKeys(ctx)
	if len(list) != 1 || list[0].ID != "kid-2" {
		t.Errorf("after delete: %v", list)
	}
}

func testSigningKeyLock(t *testing.T, s storage.Storage, _ *Clock) {
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.WithSigningKeyLock(ctx, func(ctx context.Context) error {
				n := inside.Add(1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				_, err := s.ListSigningKeys(ctx) // the store stays usable under the lock
				time.Sleep(time.Millisecond)
				inside.Add(-1)
				return err
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Errorf("%d holders of the signing-key lock at once, want 1", most.Load())
	}
	want := errors.New("from fn")
	if err := s.WithSigningKeyLock(ctx, func(context.Context) error { return want }); !errors.Is(err, want) {
		t.Errorf("fn's error not returned: %v", err)
	}
}

func testRevocations(t *testing.T, s storage.Storage, clk *Clock) {
	revoked, err := s.IsRevoked(ctx, "jti-1")
	must(t, err)
	if revoked {
		t.Error("unknown jti reported revoked")
	}
	r := &storage.Revocation{JTI: "jti-1", ExpiresAt: clk.Now().Add(time.Minute)}
	must(t, s.RevokeJTI(ctx, r))
	must(t, s.RevokeJTI(ctx, r)) // idempotent
	if revoked, err = s.IsRevoked(ctx, "jti-1"); err != nil || !revoked {
		t.Errorf("IsRevoked = %v, %v; want true", revoked, err)
	}
	clk.Advance(time.Minute)
	if revoked, err = s.IsRevoked(ctx, "jti-1"); err != nil || revoked {
		t.Errorf("IsRevoked after the token's expiry = %v, %v; want false", revoked, err)
	}
}

func testDeleteExpired(t *testing.T, s storage.Storage, clk *Clock) {
	// One short-lived and one long-lived record of every expiring role.
	for _, life := range []time.Duration{time.Minute, 24 * time.Hour} {
		tag := life.String()
		c := newCode("code-"+tag, clk)
		c.ExpiresAt = clk.Now().Add(life)
		must(t, s.CreateAuthCode(ctx, c))
		rt := newRefresh("rt-"+tag, "fam-"+tag, clk)
		rt.ExpiresAt = clk.Now().Add(life)
		must(t, s.CreateRefreshToken(ctx, rt))
		must(t, s.CreateAccessToken(ctx, &storage.AccessToken{Hash: storage.HashOf("at-" + tag), ClientID: "c1",
			CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(life)}))
		must(t, s.CreateInteraction(ctx, &storage.Interaction{ID: "ia-" + tag, CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(life)}))
		se := newSession("sid-"+tag, "cookie-"+tag, clk)
		se.IdleExpiresAt, se.ExpiresAt = clk.Now().Add(life), clk.Now().Add(life)
		must(t, s.CreateSession(ctx, se))
		must(t, s.PutConsent(ctx, &storage.Consent{UserID: "u-" + tag, ClientID: "c1", Scopes: []string{"openid"},
			CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(life)}))
		must(t, s.RevokeJTI(ctx, &storage.Revocation{JTI: "jti-" + tag, ExpiresAt: clk.Now().Add(life)}))
	}
	must(t, s.PutConsent(ctx, &storage.Consent{UserID: "u-forever", ClientID: "c1", Scopes: []string{"openid"}, CreatedAt: clk.Now()}))

	n, err := s.DeleteExpired(ctx)
	must(t, err)
	if n != 0 {
		t.Errorf("DeleteExpired before anything expired = %d, want 0", n)
	}
	clk.Advance(time.Hour)
	n, err = s.DeleteExpired(ctx)
	must(t, err)
	if n != 7 {
		t.Errorf("DeleteExpired = %d, want 7 (one of each role)", n)
	}
	n, err = s.DeleteExpired(ctx)
	must(t, err)
	if n != 0 {
		t.Errorf("second DeleteExpired = %d, want 0", n)
	}
	// The long-lived ones are all still there.
	long := (24 * time.Hour).String()
	_, err = s.GetRefreshToken(ctx, storage.HashOf("rt-"+long))
	must(t, err)
	_, err = s.GetAccessToken(ctx, storage.HashOf("at-"+long))
	must(t, err)
	_, err = s.GetInteraction(ctx, "ia-"+long)
	must(t, err)
	_, err = s.GetSession(ctx, storage.HashOf("cookie-"+long))
	must(t, err)
	_, err = s.ConsumeAuthCode(ctx, storage.HashOf("code-"+long), storage.Issued{})
	must(t, err)
	_, err = s.GetConsent(ctx, "u-"+long, "c1")
	must(t, err)
	_, err = s.GetConsent(ctx, "u-forever", "c1")
	must(t, err)
	if revoked, _ := s.IsRevoked(ctx, "jti-"+long); !revoked {
		t.Error("long-lived revocation was removed")
	}
	// The expired ones are gone, not merely hidden: creating them again works.
	short := time.Minute.String()
	must(t, s.CreateAuthCode(ctx, newCode("code-"+short, clk)))
	must(t, s.CreateRefreshToken(ctx, newRefresh("rt-"+short, "fam", clk)))
	must(t, s.CreateAccessToken(ctx, &storage.AccessToken{Hash: storage.HashOf("at-" + short), ClientID: "c1",
		CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}))
	must(t, s.CreateSession(ctx, newSession("sid-"+short, "cookie-"+short, clk)))

	// A session kept alive past its first idle deadline is not collected at it.
	se := newSession("sid-sliding", "cookie-sliding", clk)
	se.IdleExpiresAt, se.ExpiresAt = clk.Now().Add(time.Minute), clk.Now().Add(time.Hour)
	must(t, s.CreateSession(ctx, se))
	clk.Advance(30 * time.Second)
	se.IdleExpiresAt = clk.Now().Add(time.Minute)
	must(t, s.UpdateSession(ctx, se))
	clk.Advance(45 * time.Second)
	_, err = s.DeleteExpired(ctx)
	must(t, err)
	_, err = s.GetSession(ctx, storage.HashOf("cookie-sliding"))
	must(t, err)
	clk.Advance(time.Minute)
	_, err = s.DeleteExpired(ctx)
	must(t, err)
	_, err = s.GetSession(ctx, storage.HashOf("cookie-sliding"))
	wantErr(t, err, storage.ErrNotFound)
}

func testTimeZones(t *testing.T, s storage.Storage, clk *Clock) {
	zones := []*time.Location{time.FixedZone("UTC-9:30", -(9*3600 + 30*60)), time.FixedZone("UTC+14", 14*3600)}
	if ny, err := time.LoadLocation("America/New_York"); err == nil {
		zones = append(zones, ny)
	}
	for i, loc := range zones {
		when := time.Date(2026, 7, 4, 23, 59, 59, 999999999, loc)
		u := newUser(fmt.Sprint("tz-", i), fmt.Sprint("tz-", i))
		u.CreatedAt, u.UpdatedAt = when, when.Add(time.Nanosecond*1500)
		must(t, s.CreateUser(ctx, u))
		got, err := s.GetUser(ctx, u.ID)
		must(t, err)
		equalTime(t, loc.String()+" CreatedAt", got.CreatedAt, when)
		equalTime(t, loc.String()+" UpdatedAt", got.UpdatedAt, u.UpdatedAt)
		if got.CreatedAt.Location() != time.UTC {
			t.Errorf("%s: returned in %v, want UTC", loc, got.CreatedAt.Location())
		}

		se := newSession(fmt.Sprint("tz-", i), fmt.Sprint("tz-cookie-", i), clk)
		se.AuthTime = when
		se.IdleExpiresAt, se.ExpiresAt = clk.Now().In(loc).Add(time.Hour), clk.Now().In(loc).Add(2*time.Hour)
		must(t, s.CreateSession(ctx, se))
		gs, err := s.GetSession(ctx, se.Hash)
		must(t, err)
		equalTime(t, loc.String()+" AuthTime", gs.AuthTime, when)
		equalTime(t, loc.String()+" ExpiresAt", gs.ExpiresAt, se.ExpiresAt)
	}
	// An expiry given in a zone far from UTC is compared as an instant.
	far := time.FixedZone("UTC-12", -12*3600)
	rt := newRefresh("tz-rt", "tz-fam", clk)
	rt.ExpiresAt = clk.Now().In(far).Add(time.Minute)
	must(t, s.CreateRefreshToken(ctx, rt))
	clk.Advance(59 * time.Second)
	_, err := s.GetRefreshToken(ctx, rt.Hash)
	must(t, err)
	clk.Advance(time.Second)
	_, err = s.GetRefreshToken(ctx, rt.Hash)
	wantErr(t, err, storage.ErrNotFound)
}

func testPersistence(t *testing.T, s storage.Storage, clk *Clock, reopen func() storage.Storage) {
	must(t, s.CreateClient(ctx, newClient("c1")))
	must(t, s.CreateUser(ctx, newUser("u1", "alice")))
	must(t, s.CreateIdentity(ctx, &storage.Identity{ConnectorID: "corp", Subject: "up-1", UserID: "u1", CreatedAt: clk.Now()}))
	must(t, s.CreateFactor(ctx, &storage.Factor{ID: "f1", UserID: "u1", Kind: storage.FactorTOTP, Secret: []byte("sealed"), CreatedAt: clk.Now()}))
	must(t, s.UseFactor(ctx, "u1", "f1", 42, clk.Now()))
	must(t, s.CreateAdminToken(ctx, &storage.AdminToken{ID: "a1", Name: "ops", Hash: storage.HashOf("admin"), CreatedAt: clk.Now()}))
	must(t, s.CreateAuthCode(ctx, newCode("code", clk)))
	must(t, s.CreateRefreshToken(ctx, newRefresh("rt", "fam", clk)))
	must(t, s.CreateSession(ctx, newSession("sid", "cookie", clk)))
	must(t, s.PutConsent(ctx, &storage.Consent{UserID: "u1", ClientID: "c1", Scopes: []string{"openid"}, CreatedAt: clk.Now()}))
	must(t, s.CreateSigningKey(ctx, &storage.SigningKey{ID: "kid", Alg: "ES256", State: storage.KeyActive,
		Encrypted: []byte("sealed"), CreatedAt: clk.Now(), ActivatesAt: clk.Now()}))
	must(t, s.RevokeJTI(ctx, &storage.Revocation{JTI: "jti", ExpiresAt: clk.Now().Add(time.Hour)}))
	must(t, s.CreateAccessToken(ctx, &storage.AccessToken{Hash: storage.HashOf("at"), ClientID: "c1",
		CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}))
	// A used refresh token stays used.
	_, err := s.UseRefreshToken(ctx, storage.HashOf("rt"), storage.Issued{})
	must(t, err)

	s = reopen()
	if _, err := s.GetClient(ctx, "c1"); err != nil {
		t.Errorf("client: %v", err)
	}
	if _, err := s.GetUserByUsername(ctx, "alice"); err != nil {
		t.Errorf("user: %v", err)
	}
	if i, err := s.GetIdentity(ctx, "corp", "up-1"); err != nil || i.UserID != "u1" {
		t.Errorf("identity: %+v %v", i, err)
	}
	if a, err := s.GetAdminToken(ctx, storage.HashOf("admin")); err != nil || a.Name != "ops" {
		t.Errorf("admin token: %+v %v", a, err)
	}
	if f, err := s.ListFactors(ctx, "u1"); err != nil || len(f) != 1 || f[0].Counter != 42 || string(f[0].Secret) != "sealed" {
		t.Errorf("factors: %+v %v", f, err)
	}
	if _, err := s.ConsumeAuthCode(ctx, storage.HashOf("code"), storage.Issued{}); err != nil {
		t.Errorf("code: %v", err)
	}
	if _, err := s.UseRefreshToken(ctx, storage.HashOf("rt"), storage.Issued{}); !errors.Is(err, storage.ErrAlreadyUsed) {
		t.Errorf("used refresh token after reopen: %v, want ErrAlreadyUsed", err)
	}
	if _, err := s.GetAccessToken(ctx, storage.HashOf("at")); err != nil {
		t.Errorf("access token: %v", err)
	}
	if _, err := s.GetSession(ctx, storage.HashOf("cookie")); err != nil {
		t.Errorf("session: %v", err)
	}
	if _, err := s.GetConsent(ctx, "u1", "c1"); err != nil {
		t.Errorf("consent: %v", err)
	}
	if keys, err := s.ListSigningKeys(ctx); err != nil || len(keys) != 1 || string(keys[0].Encrypted) != "sealed" {
		t.Errorf("keys: %v %v", keys, err)
	}
	if revoked, err := s.IsRevoked(ctx, "jti"); err != nil || !revoked {
		t.Errorf("revocation: %v %v", revoked, err)
	}
}
