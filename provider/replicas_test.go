package provider_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/provider/storage/postgres"
	"github.com/oidcgate/oidcgate/provider/storage/postgres/pgtest"
	"github.com/oidcgate/oidcgate/provider/storage/storagetest"
)

// TestReplicasHearEachOther: two providers on one PostgreSQL database
// hear each other's revocations and key-ring changes at once (LISTEN/
// NOTIFY), not at the next reload: B's revocation count moves when A
// revokes a token, and B stops publishing a key A revoked.
func TestReplicasHearEachOther(t *testing.T) {
	url := pgtest.SchemaURL(t)
	open := func() *postgres.Store {
		s, err := postgres.Open(context.Background(), postgres.Config{URL: url, AutoMigrate: true}, (&storagetest.WallClock{}).Now)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a := start(t, open())
	b := start(t, open())
	a.run()
	b.run()
	time.Sleep(200 * time.Millisecond) // both LISTENing

	tok := a.post(t, "/token", "grant_type=client_credentials", "svc:"+secret).json(t)["access_token"].(string)
	before := b.p.RevocationEpoch()
	if r := a.post(t, "/revoke", "token="+tok, "svc:"+secret); r.status != 200 {
		t.Fatalf("revoke at A: %d %s", r.status, r.body)
	}
	waitFor(t, 2*time.Second, "B hears of A's revocation", func() bool { return b.p.RevocationEpoch() > before })

	// A key revoked at A leaves B's JWKS within a second (B reloads every 10 s otherwise).
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	json.Unmarshal(do(t, "GET", b.issuer+"/jwks", "", "", "").body, &set)
	kid := ""
	for _, k := range set.Keys {
		if k.Alg == "RS256" {
			kid = k.Kid
		}
	}
	if kid == "" {
		t.Fatalf("no RS256 key at B: %+v", set)
	}
	if r := a.adminSend(t, a.adminToken, "POST", "/admin/v1/keys/"+kid+"/revoke", "", ""); r.status/100 != 2 {
		t.Fatalf("revoke key at A: %d %s", r.status, r.body)
	}
	waitFor(t, 2*time.Second, "B drops the key A revoked", func() bool {
		return !strings.Contains(string(do(t, "GET", b.issuer+"/jwks", "", "", "").body), kid)
	})
}
