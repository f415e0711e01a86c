package provider_test

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"testing"
)

// normalize re-indents JSON and replaces values that change per run
// (issuer port, key material, token strings, times) with placeholders, so
// the golden files pin the wire format: names, types, fixed values.
func normalize(t *testing.T, s *server, body []byte, dynamic ...string) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("not JSON: %s", body)
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if contains(dynamic, k) {
					x[k] = "$" + k
					continue
				}
				x[k] = walk(e)
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		case string:
			return strings.ReplaceAll(x, s.issuer, "ISSUER")
		}
		return v
	}
	out, err := json.MarshalIndent(walk(v), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestGoldenWireFormats(t *testing.T) {
	s := start(t, backends()[0].open(t))

	r := do(t, "GET", s.issuer+"/.well-known/openid-configuration", "", "", "")
	golden(t, "discovery.json", normalize(t, s, r.body))
	r = do(t, "GET", s.issuer+"/.well-known/oauth-authorization-server", "", "", "")
	golden(t, "oauth-authorization-server.json", normalize(t, s, r.body))

	r = do(t, "GET", s.issuer+"/jwks", "", "", "")
	if ct := r.header.Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Errorf("JWKS content type %q", ct)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	json.Unmarshal(r.body, &set)
	sort.Slice(set.Keys, func(i, j int) bool { return set.Keys[i]["alg"].(string) < set.Keys[j]["alg"].(string) })
	shape, _ := json.Marshal(set)
	golden(t, "jwks-shape.json", normalize(t, s, shape, "kid", "x", "y", "n", "e"))

	r = s.post(t, "/token", "grant_type=client_credentials&scope=read", "svc:"+secret)
	golden(t, "token-response.json", normalize(t, s, r.body, "access_token"))

	r = s.post(t, "/introspect", "token="+r.json(t)["access_token"].(string), "svc:"+secret)
	golden(t, "introspection-response.json", normalize(t, s, r.body, "exp", "iat", "jti"))

	r = s.post(t, "/token", "grant_type=client_credentials&scope=admin", "svc:"+secret)
	golden(t, "error-invalid-scope.json", append(bytes.TrimSpace(r.body), '\n'))
}

func TestJWKSConditionalGet(t *testing.T) {
	s := start(t, backends()[0].open(t))
	r := do(t, "GET", s.issuer+"/jwks", "", "", "")
	etag, cc := r.header.Get("ETag"), r.header.Get("Cache-Control")
	if etag == "" || !strings.HasPrefix(cc, "public, max-age=") {
		t.Fatalf("ETag %q, Cache-Control %q", etag, cc)
	}
	resp := doWithHeader(t, s.issuer+"/jwks", "If-None-Match", etag)
	if resp.status != 304 || len(resp.body) != 0 {
		t.Errorf("conditional GET: %d, %d bytes", resp.status, len(resp.body))
	}
}
