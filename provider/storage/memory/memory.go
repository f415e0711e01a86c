// Package memory is the in-process storage backend: the fake for tests and
// a store for throw-away runs. Nothing survives the process.
package memory

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/oidcgate/oidcgate/provider/storage"
)

var _ storage.Storage = (*Store)(nil)

// Store keeps records in maps behind one mutex. Records are copied in and
// out (by JSON round trip, as the bolt backend stores them), so callers never
// share memory with the store.
type Store struct {
	now     func() time.Time
	keyLock sync.Mutex // the ring lock; separate from mu, which fn's calls take

	mu          sync.Mutex
	clients     map[string]*storage.Client
	users       map[string]*storage.User
	usernames   map[string]string // username → user ID
	identities  map[[2]string]*storage.Identity
	factors     map[[2]string]*storage.Factor // (user ID, factor ID)
	adminTokens map[string]*storage.AdminToken
	audit       []*storage.AuditEvent // in ID (time) order
	assertions  map[string]time.Time
	logouts     map[string]*storage.LogoutDelivery
	codes       map[storage.Hash]*storage.AuthCode
	refresh     map[storage.Hash]*storage.RefreshToken
	access      map[storage.Hash]*storage.AccessToken
	interact    map[string]*storage.Interaction
	sessions    map[string]*storage.Session
	sessionIDs  map[storage.Hash]string
	consents    map[[2]string]*storage.Consent
	keys        map[string]*storage.SigningKey
	revocations map[string]time.Time
	revSeq      map[string]uint64
	seq         uint64
}

// New returns an empty store that reads time from now.
func New(now func() time.Time) *Store {
	return &Store{
		now:         now,
		clients:     map[string]*storage.Client{},
		users:       map[string]*storage.User{},
		usernames:   map[string]string{},
		identities:  map[[2]string]*storage.Identity{},
		factors:     map[[2]string]*storage.Factor{},
		adminTokens: map[string]*storage.AdminToken{},
		assertions:  map[string]time.Time{},
		logouts:     map[string]*storage.LogoutDelivery{},
		codes:       map[storage.Hash]*storage.AuthCode{},
		refresh:     map[storage.Hash]*storage.RefreshToken{},
		access:      map[storage.Hash]*storage.AccessToken{},
		interact:    map[string]*storage.Interaction{},
		sessions:    map[string]*storage.Session{},
		sessionIDs:  map[storage.Hash]string{},
		consents:    map[[2]string]*storage.Consent{},
		keys:        map[string]*storage.SigningKey{},
		revocations: map[string]time.Time{},
		revSeq:      map[string]uint64{},
	}
}

// clone copies a record through JSON, normalising its timestamps.
func clone[T any](v *T) *T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // records are plain data; this cannot fail
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		panic(err)
	}
	storage.Normalize(out)
	return out
}

// CreateClient implements storage.Clients.
func (s *Store) CreateClient(_ context.Context, c *storage.Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[c.ID]; ok {
		return storage.ErrAlreadyExists
	}
	s.clients[c.ID] = clone(c)
	return nil
}

// GetClient implements storage.Clients.
func (s *Store) GetClient(_ context.Context, id string) (*storage.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return clone(c), nil
}

// UpdateClient implements storage.Clients.
func (s *Store) UpdateClient(_ context.Context, c *storage.Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[c.ID]; !ok {
		return storage.ErrNotFound
	}
	s.clients[c.ID] = clone(c)
	return nil
}

// DeleteClient implements storage.Clients.
func (s *Store) DeleteClient(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[id]; !ok {
		return storage.ErrNotFound
	}
	delete(s.clients, id)
	return nil
}

// ListClients implements storage.Clients.
func (s *Store) ListClients(_ context.Context) ([]*storage.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*storage.Client, 0, len(s.clients))
	for _, c := range s.clients {
		out = append(out, clone(c))
	}
	return out, nil
}

// CreateUser implements storage.Users.
func (s *Store) CreateUser(_ context.Context, u *storage.User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[u.ID]; ok {
		return storage.ErrAlreadyExists
	}
	if _, ok := s.usernames[u.Username]; ok {
		return storage.ErrAlreadyExists
	}
	s.users[u.ID] = clone(u)
	s.usernames[u.Username] = u.ID
	return nil
}

// GetUser implements storage.Users.
func (s *Store) GetUser(_ context.Context, id string) (*storage.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.users[id]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return clone(c), nil
}

// GetUserByUsername implements storage.Users.
func (s *Store) GetUserByUsername(ctx context.Context, username string) (*storage.User, error) {
	s.mu.Lock()
	id, ok := s.usernames[username]
	s.mu.Unlock()
	if !ok {
		return nil, storage.ErrNotFound
	}
	return s.GetUser(ctx, id)
}

// UpdateUser implements storage.Users.
func (s *Store) UpdateUser(_ context.Context, u *storage.User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.users[u.ID]
	if !ok {
		return storage.ErrNotFound
	}
	old := c
	if old.Username != u.Username {
		if _, taken := s.usernames[u.Username]; taken {
			return storage.ErrAlreadyExists
		}
		delete(s.usernames, old.Username)
		s.usernames[u.Username] = u.ID
	}
	s.users[u.ID] = clone(u)
	return nil
}

// DeleteUser implements storage.Users.
func (s *Store) DeleteUser(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.users[id]
	if !ok {
		return storage.ErrNotFound
	}
	delete(s.usernames, c.Username)
	delete(s.users, id)
	for k, i := range s.identities {
		if i.UserID == id {
			delete(s.identities, k)
		}
	}
	for k := range s.factors {
		if k[0] == id {
			delete(s.factors, k)
		}
	}
	return nil
}

// CreateFactor implements storage.Factors.
func (s *Store) CreateFactor(_ context.Context, f *storage.Factor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{f.UserID, f.ID}
	if _, ok := s.factors[k]; ok {
		return storage.ErrAlreadyExists
	}
	if _, ok := s.users[f.UserID]; !ok {
		return storage.ErrNotFound
	}
	s.factors[k] = clone(f)
	return nil
}

// ListFactors implements storage.Factors.
func (s *Store) ListFactors(_ context.Context, userID string) ([]*storage.Factor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*storage.Factor{}
	for k, f := range s.factors {
		if k[0] == userID {
			out = append(out, clone(f))
		}
	}
	storage.SortFactors(out)
	return out, nil
}

// UseFactor implements storage.Factors.
func (s *Store) UseFactor(_ context.Context, userID, id string, counter uint64, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.factors[[2]string{userID, id}]
	if !ok {
		return storage.ErrNotFound
	}
	if !storage.Advances(f.Counter, counter) {
		return storage.ErrAlreadyUsed
	}
	f.Counter, f.LastUsedAt = counter, storage.Timestamp(at)
	return nil
}

// DeleteFactor implements storage.Factors.
func (s *Store) DeleteFactor(_ context.Context, userID, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{userID, id}
	if _, ok := s.factors[k]; !ok {
		return storage.ErrNotFound
	}
	delete(s.factors, k)
	return nil
}

// DeleteFactors implements storage.Factors.
func (s *Store) DeleteFactors(_ context.Context, userID, kind string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, f := range s.factors {
		if k[0] == userID && (kind == "" || f.Kind == kind) {
			delete(s.factors, k)
			n++
		}
	}
	return n, nil
}

// CreateIdentity implements storage.Identities.
func (s *Store) CreateIdentity(_ context.Context, i *storage.Identity) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{i.ConnectorID, i.Subject}
	if _, ok := s.identities[k]; ok {
		return storage.ErrAlreadyExists
	}
	if _, ok := s.users[i.UserID]; !ok {
		return storage.ErrNotFound
	}
	s.identities[k] = clone(i)
	return nil
}

// GetIdentity implements storage.Identities.
func (s *Store) GetIdentity(_ context.Context, connectorID, subject string) (*storage.Identity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.identities[[2]string{connectorID, subject}]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return clone(i), nil
}

// UpdateIdentity implements storage.Identities.
func (s *Store) UpdateIdentity(_ context.Context, i *storage.Identity) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{i.ConnectorID, i.Subject}
	if _, ok := s.identities[k]; !ok {
		return storage.ErrNotFound
	}
	if _, ok := s.users[i.UserID]; !ok {
		return storage.ErrNotFound
	}
	s.identities[k] = clone(i)
	return nil
}

// ListIdentities implements storage.Identities.
func (s *Store) ListIdentities(_ context.Context, userID string) ([]*storage.Identity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*storage.Identity{}
	for _, i := range s.identities {
		if i.UserID == userID {
			out = append(out, clone(i))
		}
	}
	slices.SortFunc(out, func(a, b *storage.Identity) int {
		return cmp.Or(cmp.Compare(a.ConnectorID, b.ConnectorID), cmp.Compare(a.Subject, b.Subject))
	})
	return out, nil
}

// DeleteIdentity implements storage.Identities.
func (s *Store) DeleteIdentity(_ context.Context, connectorID, subject string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{connectorID, subject}
	if _, ok := s.identities[k]; !ok {
		return storage.ErrNotFound
	}
	delete(s.identities, k)
	return nil
}

// ListUsers implements storage.Users.
func (s *Store) ListUsers(_ context.Context) ([]*storage.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*storage.User, 0, len(s.users))
	for _, c := range s.users {
		out = append(out, clone(c))
	}
	return out, nil
}

// CreateAuthCode implements storage.AuthCodes.
func (s *Store) CreateAuthCode(_ context.Context, c *storage.AuthCode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.codes[c.Hash]; ok {
		return storage.ErrAlreadyExists
	}
	s.codes[c.Hash] = clone(c)
	return nil
}

// GetAuthCode implements storage.AuthCodes.
func (s *Store) GetAuthCode(_ context.Context, h storage.Hash) (*storage.AuthCode, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[h]
	if !ok || storage.Expired(c.ExpiresAt, s.now()) {
		return nil, storage.ErrNotFound
	}
	return clone(c), nil
}

// ConsumeAuthCode implements storage.AuthCodes.
func (s *Store) ConsumeAuthCode(_ context.Context, h storage.Hash, out storage.Issued) (*storage.AuthCode, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[h]
	now := s.now()
	if !ok || storage.Expired(c.ExpiresAt, now) {
		return nil, storage.ErrNotFound
	}
	if !c.UsedAt.IsZero() {
		return clone(c), storage.ErrAlreadyUsed
	}
	if err := s.writeIssued(out); err != nil {
		return nil, err
	}
	c.UsedAt = storage.Timestamp(now)
	return clone(c), nil
}

// writeIssued writes a grant's new tokens, or nothing when one exists
// already. The caller holds mu.
func (s *Store) writeIssued(out storage.Issued) error {
	if out.Refresh != nil {
		if _, ok := s.refresh[out.Refresh.Hash]; ok {
			return storage.ErrAlreadyExists
		}
	}
	if out.Access != nil {
		if _, ok := s.access[out.Access.Hash]; ok {
			return storage.ErrAlreadyExists
		}
		s.access[out.Access.Hash] = clone(out.Access)
	}
	if out.Refresh != nil {
		s.refresh[out.Refresh.Hash] = clone(out.Refresh)
	}
	return nil
}

// DeleteAuthCode implements storage.AuthCodes.
func (s *Store) DeleteAuthCode(_ context.Context, h storage.Hash) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.codes[h]; !ok {
		return storage.ErrNotFound
	}
	delete(s.codes, h)
	return nil
}

// CreateRefreshToken implements storage.RefreshTokens.
func (s *Store) CreateRefreshToken(_ context.Context, t *storage.RefreshToken) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.refresh[t.Hash]; ok {
		return storage.ErrAlreadyExists
	}
	s.refresh[t.Hash] = clone(t)
	return nil
}

// GetRefreshToken implements storage.RefreshTokens.
func (s *Store) GetRefreshToken(_ context.Context, h storage.Hash) (*storage.RefreshToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.refresh[h]
	if !ok || storage.Expired(t.ExpiresAt, s.now()) {
		return nil, storage.ErrNotFound
	}
	return clone(t), nil
}

// UseRefreshToken implements storage.RefreshTokens.
func (s *Store) UseRefreshToken(_ context.Context, h storage.Hash, out storage.Issued) (*storage.RefreshToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.refresh[h]
	now := s.now()
	if !ok || storage.Expired(t.ExpiresAt, now) {
		return nil, storage.ErrNotFound
	}
	if !t.UsedAt.IsZero() || !t.RevokedAt.IsZero() {
		return clone(t), storage.ErrAlreadyUsed
	}
	if err := s.writeIssued(out); err != nil {
		return nil, err
	}
	t.UsedAt = storage.Timestamp(now)
	return clone(t), nil
}

// RevokeRefreshFamily implements storage.RefreshTokens.
func (s *Store) RevokeRefreshFamily(_ context.Context, familyID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := storage.Timestamp(s.now())
	for _, t := range s.refresh {
		if t.FamilyID == familyID && t.RevokedAt.IsZero() {
			t.RevokedAt = now
		}
	}
	return nil
}

// CreateAccessToken implements storage.AccessTokens.
func (s *Store) CreateAccessToken(_ context.Context, t *storage.AccessToken) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.access[t.Hash]; ok {
		return storage.ErrAlreadyExists
	}
	s.access[t.Hash] = clone(t)
	return nil
}

// GetAccessToken implements storage.AccessTokens.
func (s *Store) GetAccessToken(_ context.Context, h storage.Hash) (*storage.AccessToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.access[h]
	if !ok || storage.Expired(t.ExpiresAt, s.now()) {
		return nil, storage.ErrNotFound
	}
	return clone(t), nil
}

// DeleteAccessToken implements storage.AccessTokens.
func (s *Store) DeleteAccessToken(_ context.Context, h storage.Hash) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.access[h]; !ok {
		return storage.ErrNotFound
	}
	delete(s.access, h)
	return nil
}

// CreateInteraction implements storage.Interactions.
func (s *Store) CreateInteraction(_ context.Context, i *storage.Interaction) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.interact[i.ID]; ok {
		return storage.ErrAlreadyExists
	}
	s.interact[i.ID] = clone(i)
	return nil
}

// GetInteraction implements storage.Interactions.
func (s *Store) GetInteraction(_ context.Context, id string) (*storage.Interaction, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.interact[id]
	if !ok || storage.Expired(i.ExpiresAt, s.now()) {
		return nil, storage.ErrNotFound
	}
	return clone(i), nil
}

// UpdateInteraction implements storage.Interactions.
func (s *Store) UpdateInteraction(_ context.Context, i *storage.Interaction) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.interact[i.ID]; !ok {
		return storage.ErrNotFound
	}
	s.interact[i.ID] = clone(i)
	return nil
}

// DeleteInteraction implements storage.Interactions.
func (s *Store) DeleteInteraction(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.interact[id]; !ok {
		return storage.ErrNotFound
	}
	delete(s.interact, id)
	return nil
}

// CreateSession implements storage.Sessions.
func (s *Store) CreateSession(_ context.Context, se *storage.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[se.ID]; ok {
		return storage.ErrAlreadyExists
	}
	if _, ok := s.sessionIDs[se.Hash]; ok {
		return storage.ErrAlreadyExists
	}
	s.sessions[se.ID] = clone(se)
	s.sessionIDs[se.Hash] = se.ID
	return nil
}

// GetSession implements storage.Sessions.
func (s *Store) GetSession(_ context.Context, h storage.Hash) (*storage.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.sessionIDs[h]
	if !ok {
		return nil, storage.ErrNotFound
	}
	se := s.sessions[id]
	if storage.Expired(se.Deadline(), s.now()) {
		return nil, storage.ErrNotFound
	}
	return clone(se), nil
}

// UpdateSession implements storage.Sessions.
func (s *Store) UpdateSession(_ context.Context, se *storage.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.sessions[se.ID]
	if !ok {
		return storage.ErrNotFound
	}
	if old.Hash != se.Hash {
		if _, taken := s.sessionIDs[se.Hash]; taken {
			return storage.ErrAlreadyExists
		}
		delete(s.sessionIDs, old.Hash)
		s.sessionIDs[se.Hash] = se.ID
	}
	s.sessions[se.ID] = clone(se)
	return nil
}

// DeleteSession implements storage.Sessions.
func (s *Store) DeleteSession(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.sessions[id]
	if !ok {
		return storage.ErrNotFound
	}
	delete(s.sessionIDs, se.Hash)
	delete(s.sessions, id)
	return nil
}

// CreateAdminToken implements storage.AdminTokens.
func (s *Store) CreateAdminToken(_ context.Context, t *storage.AdminToken) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.adminTokens {
		if o.ID == t.ID || o.Name == t.Name || o.Hash == t.Hash {
			return storage.ErrAlreadyExists
		}
	}
	s.adminTokens[t.ID] = clone(t)
	return nil
}

// GetAdminToken implements storage.AdminTokens.
func (s *Store) GetAdminToken(_ context.Context, h storage.Hash) (*storage.AdminToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.adminTokens {
		if t.Hash == h && !storage.Expired(t.ExpiresAt, s.now()) {
			return clone(t), nil
		}
	}
	return nil, storage.ErrNotFound
}

// ListAdminTokens implements storage.AdminTokens.
func (s *Store) ListAdminTokens(_ context.Context) ([]*storage.AdminToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*storage.AdminToken{}
	for _, t := range s.adminTokens {
		out = append(out, clone(t))
	}
	storage.SortAdminTokens(out)
	return out, nil
}

// DeleteAdminToken implements storage.AdminTokens.
func (s *Store) DeleteAdminToken(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.adminTokens[id]; !ok {
		return storage.ErrNotFound
	}
	delete(s.adminTokens, id)
	return nil
}

// UseAssertion implements storage.Assertions.
func (s *Store) UseAssertion(_ context.Context, key string, exp time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.assertions[key]; ok && !storage.Expired(old, s.now()) {
		return storage.ErrAlreadyUsed
	}
	s.assertions[key] = storage.Timestamp(exp)
	return nil
}

// EnqueueLogouts implements storage.LogoutQueue.
func (s *Store) EnqueueLogouts(_ context.Context, ds []*storage.LogoutDelivery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ds {
		if _, ok := s.logouts[d.ID]; ok {
			return storage.ErrAlreadyExists
		}
	}
	for _, d := range ds {
		s.logouts[d.ID] = clone(d)
	}
	return nil
}

// ClaimLogouts implements storage.LogoutQueue.
func (s *Store) ClaimLogouts(_ context.Context, now, until time.Time, limit int) ([]*storage.LogoutDelivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []*storage.LogoutDelivery
	for _, d := range s.logouts {
		if !d.NextAt.After(now) {
			due = append(due, d)
		}
	}
	slices.SortFunc(due, func(a, b *storage.LogoutDelivery) int {
		return cmp.Or(a.NextAt.Compare(b.NextAt), cmp.Compare(a.ID, b.ID))
	})
	due = due[:min(len(due), limit)]
	out := make([]*storage.LogoutDelivery, len(due))
	for i, d := range due {
		d.NextAt = storage.Timestamp(until)
		out[i] = clone(d)
	}
	return out, nil
}

// UpdateLogout implements storage.LogoutQueue.
func (s *Store) UpdateLogout(_ context.Context, d *storage.LogoutDelivery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.logouts[d.ID]; !ok {
		return storage.ErrNotFound
	}
	s.logouts[d.ID] = clone(d)
	return nil
}

// DeleteLogout implements storage.LogoutQueue.
func (s *Store) DeleteLogout(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.logouts[id]; !ok {
		return storage.ErrNotFound
	}
	delete(s.logouts, id)
	return nil
}

// AppendAuditEvent implements storage.AuditEvents.
func (s *Store) AppendAuditEvent(_ context.Context, e *storage.AuditEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearchFunc(s.audit, e.ID, func(x *storage.AuditEvent, id string) int { return cmp.Compare(x.ID, id) })
	s.audit = slices.Insert(s.audit, i, clone(e))
	return nil
}

// ListAuditEvents implements storage.AuditEvents.
func (s *Store) ListAuditEvents(_ context.Context, f storage.AuditFilter) ([]*storage.AuditEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := cmp.Or(f.Limit, 100)
	out := []*storage.AuditEvent{}
	for i := len(s.audit) - 1; i >= 0 && len(out) < limit; i-- {
		if e := s.audit[i]; f.Match(e) && !storage.Expired(e.ExpiresAt, s.now()) {
			out = append(out, clone(e))
		}
	}
	return out, nil
}

// ListSessions implements storage.Sessions.
func (s *Store) ListSessions(_ context.Context, userID string) ([]*storage.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*storage.Session{}
	for _, se := range s.sessions {
		if se.UserID == userID && !storage.Expired(se.Deadline(), s.now()) {
			out = append(out, clone(se))
		}
	}
	storage.SortSessions(out)
	return out, nil
}

// PutConsent implements storage.Consents.
func (s *Store) PutConsent(_ context.Context, c *storage.Consent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.consents[[2]string{c.UserID, c.ClientID}] = clone(c)
	return nil
}

// GetConsent implements storage.Consents.
func (s *Store) GetConsent(_ context.Context, userID, clientID string) (*storage.Consent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.consents[[2]string{userID, clientID}]
	if !ok || storage.Expired(c.ExpiresAt, s.now()) {
		return nil, storage.ErrNotFound
	}
	return clone(c), nil
}

// ListConsents implements storage.Consents.
func (s *Store) ListConsents(_ context.Context, userID string) ([]*storage.Consent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*storage.Consent{}
	for k, c := range s.consents {
		if k[0] == userID && !storage.Expired(c.ExpiresAt, s.now()) {
			out = append(out, clone(c))
		}
	}
	slices.SortFunc(out, func(a, b *storage.Consent) int { return cmp.Compare(a.ClientID, b.ClientID) })
	return out, nil
}

// DeleteConsent implements storage.Consents.
func (s *Store) DeleteConsent(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{userID, clientID}
	if _, ok := s.consents[k]; !ok {
		return storage.ErrNotFound
	}
	delete(s.consents, k)
	return nil
}

// CreateSigningKey implements storage.SigningKeys.
func (s *Store) CreateSigningKey(_ context.Context, k *storage.SigningKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[k.ID]; ok {
		return storage.ErrAlreadyExists
	}
	s.keys[k.ID] = clone(k)
	return nil
}

// ListSigningKeys implements storage.SigningKeys.
func (s *Store) ListSigningKeys(_ context.Context) ([]*storage.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*storage.SigningKey, 0, len(s.keys))
	for _, c := range s.keys {
		out = append(out, clone(c))
	}
	return out, nil
}

// UpdateSigningKey implements storage.SigningKeys.
func (s *Store) UpdateSigningKey(_ context.Context, k *storage.SigningKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[k.ID]; !ok {
		return storage.ErrNotFound
	}
	s.keys[k.ID] = clone(k)
	return nil
}

// DeleteSigningKey implements storage.SigningKeys.
func (s *Store) DeleteSigningKey(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[id]; !ok {
		return storage.ErrNotFound
	}
	delete(s.keys, id)
	return nil
}

// WithSigningKeyLock implements keys.KeyStore.
func (s *Store) WithSigningKeyLock(ctx context.Context, fn func(context.Context) error) error {
	s.keyLock.Lock()
	defer s.keyLock.Unlock()
	return fn(ctx)
}

// RevokeJTI implements storage.Revocations.
func (s *Store) RevokeJTI(_ context.Context, r *storage.Revocation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revocations[r.JTI] = storage.Timestamp(r.ExpiresAt)
	s.seq++
	s.revSeq[r.JTI] = s.seq
	return nil
}

// RevocationsSince implements storage.Revocations.
func (s *Store) RevocationsSince(_ context.Context, after uint64, limit int) ([]*storage.Revocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*storage.Revocation
	for jti, exp := range s.revocations {
		if seq := s.revSeq[jti]; seq > after && !storage.Expired(exp, s.now()) {
			out = append(out, &storage.Revocation{JTI: jti, ExpiresAt: exp, Seq: seq})
		}
	}
	slices.SortFunc(out, func(a, b *storage.Revocation) int { return cmp.Compare(a.Seq, b.Seq) })
	return out[:min(len(out), limit)], nil
}

// IsRevoked implements storage.Revocations.
func (s *Store) IsRevoked(_ context.Context, jti string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.revocations[jti]
	return ok && !storage.Expired(exp, s.now()), nil
}

// DeleteExpired implements storage.Storage.
func (s *Store) DeleteExpired(_ context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	for h, c := range s.codes {
		if storage.Expired(c.ExpiresAt, now) {
			delete(s.codes, h)
			n++
		}
	}
	for h, t := range s.refresh {
		if storage.Expired(t.ExpiresAt, now) {
			delete(s.refresh, h)
			n++
		}
	}
	for h, t := range s.access {
		if storage.Expired(t.ExpiresAt, now) {
			delete(s.access, h)
			n++
		}
	}
	for id, i := range s.interact {
		if storage.Expired(i.ExpiresAt, now) {
			delete(s.interact, id)
			n++
		}
	}
	for id, se := range s.sessions {
		if storage.Expired(se.Deadline(), now) {
			delete(s.sessionIDs, se.Hash)
			delete(s.sessions, id)
			n++
		}
	}
	for k, exp := range s.assertions {
		if storage.Expired(exp, now) {
			delete(s.assertions, k)
			n++
		}
	}
	kept := s.audit[:0]
	for _, e := range s.audit {
		if storage.Expired(e.ExpiresAt, now) {
			n++
		} else {
			kept = append(kept, e)
		}
	}
	s.audit = kept
	for k, c := range s.consents {
		if storage.Expired(c.ExpiresAt, now) {
			delete(s.consents, k)
			n++
		}
	}
	for jti, exp := range s.revocations {
		if storage.Expired(exp, now) {
			delete(s.revocations, jti)
			delete(s.revSeq, jti)
			n++
		}
	}
	return n, nil
}

// Ping implements storage.Storage.
func (s *Store) Ping(context.Context) error { return nil }

// Close implements storage.Storage.
func (s *Store) Close() error { return nil }
