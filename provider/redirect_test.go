package provider

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/oidcgate/oidcgate/provider/oauth"
)

func TestRedirectAllowed(t *testing.T) {
	reg := []string{"https://app.example.com/cb", "http://127.0.0.1/native", "http://[::1]:8080/v6", "com.example.app:/oauth"}
	tests := []struct {
		uri    string
		public bool
		ok     bool
	}{
		{"https://app.example.com/cb", false, true},
		{"https://app.example.com/cb/", false, false},     // suffix
		{"https://app.example.com/c", false, false},       // prefix
		{"https://app.example.com/cb?x=1", false, false},  // added query
		{"https://app.example.com/cb#frag", false, false}, // fragment
		{"https://APP.example.com/cb", false, false},      // case
		{"https://app.example.com/CB", false, false},      // case
		{"https://app.example.com:443/cb", false, false},  // explicit port
		{"https://app.example.com:8443/cb", false, false}, // port
		{"https://evil@app.example.com/cb", false, false}, // userinfo
		{"https://app.example.com.evil.com/cb", false, false},
		{"http://app.example.com/cb", false, false}, // scheme
		{"http://127.0.0.1/native", false, true},
		{"http://127.0.0.1:51234/native", true, true}, // RFC 8252 §7.3: any port
		{"http://127.0.0.1:51234/native", false, false},
		{"http://127.0.0.1:51234/other", true, false},
		{"http://127.0.0.1:51234/native?x=1", true, false},
		{"http://127.0.0.1:51234/native#f", true, false},
		{"http://localhost:51234/native", true, false}, // a name, not the loopback IP
		{"http://127.0.0.2:51234/native", true, false}, // another loopback address than registered
		{"http://[::1]:9/v6", true, true},
		{"http://u@127.0.0.1:1/native", true, false},
		{"https://127.0.0.1:51234/native", true, false},
		{"com.example.app:/oauth", true, true},
		{"com.example.app:/oauth2", true, false},
		{"", true, false},
	}
	for _, tc := range tests {
		if got := redirectAllowed(reg, tc.uri, tc.public); got != tc.ok {
			t.Errorf("redirectAllowed(%q, public=%v) = %v, want %v", tc.uri, tc.public, got, tc.ok)
		}
	}
}

func FuzzRedirectAllowed(f *testing.F) {
	reg := []string{"https://app.example.com/cb", "http://127.0.0.1/native"}
	for _, s := range []string{"https://app.example.com/cb", "http://127.0.0.1:5/native", "http://127.0.0.1:5/native/../native",
		"http://127.0.0.1%2f@evil/native", "https://app.example.com/cb%2f..", "http://[::ffff:127.0.0.1]:5/native", ""} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, got string, public bool) {
		if !redirectAllowed(reg, got, public) {
			return
		}
		if slices.Contains(reg, got) {
			return
		}
		// Anything else allowed must be the loopback rule: a public client,
		// http on the registered loopback IP, the registered path, any port.
		u, err := url.Parse(got)
		if !public || err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" || u.EscapedPath() != "/native" ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.ContainsAny(u.Host, "@/") {
			t.Fatalf("allowed %q (public=%v)", got, public)
		}
	})
}

func TestParseScope(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{"", nil, true},
		{"openid", []string{"openid"}, true},
		{"openid profile email", []string{"openid", "profile", "email"}, true},
		{"openid openid profile", []string{"openid", "profile"}, true},
		{"urn:x:read api/write", []string{"urn:x:read", "api/write"}, true},
		{"openid  profile", nil, false}, // two spaces
		{" openid", nil, false},
		{"openid ", nil, false},
		{"open\"id", nil, false},
		{"open\\id", nil, false},
		{"openid\tprofile", nil, false},
		{"é", nil, false},
	}
	for _, tc := range tests {
		got, err := parseScope(tc.in)
		if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("parseScope(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		var e *oauth.Error
		if err != nil && (!errors.As(err, &e) || e.Code != "invalid_scope") {
			t.Errorf("parseScope(%q): error %v is not invalid_scope", tc.in, err)
		}
	}
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"openid profile", "a  b", " ", "\x00", "read:all write", "a a a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseScope(s)
		if err != nil {
			return
		}
		if s == "" {
			if got != nil {
				t.Fatal("empty scope parsed to tokens")
			}
			return
		}
		seen := map[string]bool{}
		for _, tok := range got {
			if !validScopeToken(tok) || seen[tok] || !strings.Contains(" "+s+" ", " "+tok+" ") {
				t.Fatalf("parseScope(%q) = %q", s, got)
			}
			seen[tok] = true
		}
		if strings.Join(got, " ") != s && len(strings.Fields(s)) == len(got) {
			t.Fatalf("parseScope(%q) = %q lost or reordered tokens", s, got)
		}
	})
}
