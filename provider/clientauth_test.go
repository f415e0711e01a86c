package provider

import (
	"encoding/base64"
	"errors"
	"net/url"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/oauth"
)

func basic(id, secret string) []byte {
	return []byte("Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret))))
}

func TestParseCredentials(t *testing.T) {
	tests := []struct {
		name             string
		auth, id, secret string
		want             credentials
		code             string
	}{
		{name: "basic", auth: string(basic("svc", "pw")), want: credentials{id: "svc", secret: "pw", method: authSecretBasic}},
		{name: "basic form-encoded (RFC 6749 §2.3.1)", auth: string(basic("a:b c", "p+w%/")), want: credentials{id: "a:b c", secret: "p+w%/", method: authSecretBasic}},
		{name: "basic lowercase scheme", auth: "basic " + base64.StdEncoding.EncodeToString([]byte("svc:pw")), want: credentials{id: "svc", secret: "pw", method: authSecretBasic}},
		{name: "basic and the same client_id", auth: string(basic("svc", "pw")), id: "svc", want: credentials{id: "svc", secret: "pw", method: authSecretBasic}},
		{name: "post", id: "svc", secret: "pw", want: credentials{id: "svc", secret: "pw", method: authSecretPost}},
		{name: "none", id: "spa", want: credentials{id: "spa", secret: "", method: authNone}},
		{name: "nothing", code: "invalid_client"},
		{name: "secret without id", secret: "pw", code: "invalid_client"},
		{name: "both mechanisms", auth: string(basic("svc", "pw")), secret: "pw", code: "invalid_request"},
		{name: "different client_id", auth: string(basic("svc", "pw")), id: "other", code: "invalid_request"},
		{name: "not base64", auth: "Basic %%%", code: "invalid_client"},
		{name: "no colon", auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("svc")), code: "invalid_client"},
		{name: "empty id", auth: "Basic " + base64.StdEncoding.EncodeToString([]byte(":pw")), code: "invalid_client"},
		{name: "bad percent-encoding", auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:%zz")), code: "invalid_client"},
		{name: "bearer", auth: "Bearer abc", code: "invalid_client"},
		{name: "scheme only", auth: "Basic", code: "invalid_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCredentials([]byte(tc.auth), []byte(tc.id), []byte(tc.secret))
			if tc.code != "" {
				var e *oauth.Error
				if !errors.As(err, &e) || e.Code != tc.code {
					t.Fatalf("err = %v, want %s", err, tc.code)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func FuzzClientAuthentication(f *testing.F) {
	f.Add(basic("svc", "pw"), []byte(""), []byte(""), []byte("grant_type=client_credentials"))
	f.Add([]byte(""), []byte("svc"), []byte("pw"), []byte("client_id=svc&client_secret=pw&scope=a+b"))
	f.Add([]byte("Basic Og=="), []byte(""), []byte(""), []byte("a=1&a=2"))
	f.Add([]byte("Basic %%%"), []byte("x"), []byte(""), []byte("resource=https://a&resource=https://b"))
	f.Add([]byte("basic "+base64.StdEncoding.EncodeToString([]byte("%41:%zz"))), []byte("A"), []byte(""), []byte("%zz=%"))
	f.Fuzz(func(t *testing.T, auth, id, secret, body []byte) {
		c, err := parseCredentials(auth, id, secret)
		if err != nil {
			var e *oauth.Error
			if !errors.As(err, &e) || (e.Code != "invalid_client" && e.Code != "invalid_request") {
				t.Fatalf("untyped or unexpected error %v", err)
			}
			return
		}
		switch {
		case c.id == "":
			t.Fatal("accepted credentials without a client id")
		case len(auth) > 0 && c.method != authSecretBasic:
			t.Fatalf("Authorization header given, method %s", c.method)
		case len(auth) == 0 && len(secret) > 0 && c.method != authSecretPost:
			t.Fatalf("form secret given, method %s", c.method)
		case c.method == authNone && c.secret != "":
			t.Fatal("method none with a secret")
		case c.method == authSecretBasic && len(secret) > 0:
			t.Fatal("secret in header and body accepted")
		}

		// The form side: parse a body as the token endpoint does, and check
		// the repeated-parameter rule against a slow count.
		var args fasthttp.Args
		args.ParseBytes(body)
		name, dup := repeated(&args)
		seen := map[string]int{}
		args.VisitAll(func(k, _ []byte) {
			if string(k) != "resource" {
				seen[string(k)]++
			}
		})
		slow := false
		for _, n := range seen {
			slow = slow || n > 1
		}
		if dup != slow || (dup && seen[name] < 2) {
			t.Fatalf("repeated(%q) = %q, %v; counts %v", body, name, dup, seen)
		}
	})
}
