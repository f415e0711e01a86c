package connector

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzNextLink: GitHub's Link header (an upstream's answer) never yields a
// next page that the header did not name.
func FuzzNextLink(f *testing.F) {
	for _, s := range []string{
		`<https://api.github.com/user/orgs?page=2>; rel="next", <https://api.github.com/user/orgs?page=5>; rel="last"`,
		`<https://api.github.com/user/orgs?page=1>; rel="prev"`, ``, `<>; rel="next"`, `;;,,<`, `<a>;rel="next"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		next := nextLink(h)
		if next != "" && !strings.Contains(h, next) {
			t.Fatalf("nextLink(%q) = %q, not in the header", h, next)
		}
	})
}

// FuzzClaimMapping: any claims object an upstream sends maps to an
// identity without a panic, and groups only ever hold strings it sent.
func FuzzClaimMapping(f *testing.F) {
	for _, s := range []string{
		`{"email":"a@b","email_verified":true,"groups":["x","y"],"realm_access":{"roles":["r"]}}`,
		`{"email_verified":"true","groups":"one"}`, `{"groups":[1,{"a":2},null,"s"]}`, `{"a.b":{"c":1}}`, `{}`, `null`,
	} {
		f.Add(s, "realm_access.roles")
	}
	f.Fuzz(func(t *testing.T, raw, groupsPath string) {
		var claims map[string]any
		if json.Unmarshal([]byte(raw), &claims) != nil {
			return
		}
		o := &OIDC{cfg: OIDCConfig{Claims: ClaimMapping{Groups: groupsPath}.withDefaults()}}
		id := o.identity("sub", claims)
		for _, g := range id.Groups {
			if !strings.Contains(raw, strings.Trim(mustJSON(g), `"`)) {
				t.Fatalf("group %q not in %s", g, raw)
			}
		}
	})
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
