package provider_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

type revPage struct {
	Revocations []struct {
		Seq uint64 `json:"seq"`
		JTI string `json:"jti"`
		Exp int64  `json:"exp"`
	} `json:"revocations"`
	Next string `json:"next"`
}

func getRevocations(t *testing.T, s *server, query, auth string) (int, revPage) {
	t.Helper()
	r := do(t, "GET", s.issuer+"/revocations?"+query, "", "", auth)
	var p revPage
	json.Unmarshal(r.body, &p)
	return r.status, p
}

// TestRevocationStream: resource servers read revocations in order from
// any point; a waiting read returns as soon as one is made; others may
// not read it.
func TestRevocationStream(t *testing.T) {
	everyBackend(t, func(t *testing.T, s *server) {
		if st, _ := getRevocations(t, s, "after=0", ""); st != 401 {
			t.Errorf("unauthenticated: %d", st)
		}
		if st, _ := getRevocations(t, s, "after=0", "svc:"+secret); st != 403 {
			t.Errorf("a client that is not a resource server: %d", st)
		}
		if st, _ := getRevocations(t, s, "after=x", "resource-server:"+secret); st != 400 {
			t.Errorf("a malformed after: %d", st)
		}
		st, first := getRevocations(t, s, "after=0", "resource-server:"+secret)
		if st != 200 || len(first.Revocations) != 0 || first.Next != "0" {
			t.Fatalf("an empty stream: %d %+v", st, first)
		}
		tok := s.post(t, "/token", "grant_type=client_credentials", "svc:"+secret).json(t)["access_token"].(string)
		jti := jwtClaims(t, tok)["jti"].(string)
		s.post(t, "/revoke", "token="+tok, "svc:"+secret)
		_, p := getRevocations(t, s, "after=0", "resource-server:"+secret)
		if len(p.Revocations) != 1 || p.Revocations[0].JTI != jti || p.Next != strconv.FormatUint(p.Revocations[0].Seq, 10) {
			t.Fatalf("after a revocation: %+v", p)
		}
		// A waiting read returns when the next revocation is made.
		tok2 := s.post(t, "/token", "grant_type=client_credentials", "svc:"+secret).json(t)["access_token"].(string)
		done := make(chan revPage, 1)
		start := time.Now()
		go func() {
			_, p2 := getRevocations(t, s, "after="+p.Next+"&wait=10s", "resource-server:"+secret)
			done <- p2
		}()
		time.Sleep(300 * time.Millisecond)
		s.post(t, "/revoke", "token="+tok2, "svc:"+secret)
		select {
		case p2 := <-done:
			if len(p2.Revocations) != 1 || p2.Revocations[0].JTI != jwtClaims(t, tok2)["jti"] || time.Since(start) > 3*time.Second {
				t.Errorf("the waiting read: %+v after %s", p2, time.Since(start))
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the waiting read did not return")
		}
		// Nothing new: a wait ends empty at its deadline, next unchanged.
		t0 := time.Now()
		if _, p3 := getRevocations(t, s, "after=999999&wait=500ms", "resource-server:"+secret); len(p3.Revocations) != 0 || p3.Next != "999999" ||
			time.Since(t0) < 400*time.Millisecond {
			t.Errorf("an empty wait: %+v in %s", p3, time.Since(t0))
		}
	})
}
