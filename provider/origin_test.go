package provider

import (
	"net/url"
	"testing"
)

func TestWebOrigin(t *testing.T) {
	for _, tc := range []struct{ issuer, want string }{
		{"https://ID.Example.com:443/realm", "https://id.example.com"},
		{"https://id.example.com:8443", "https://id.example.com:8443"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"http://localhost:80", "http://localhost"},
		{"http://[::1]:8080", "http://[::1]:8080"},
	} {
		u, _ := url.Parse(tc.issuer)
		if got := webOrigin(u); got != tc.want {
			t.Errorf("webOrigin(%s) = %s, want %s", tc.issuer, got, tc.want)
		}
	}
}
