package provider_test

import (
	"testing"

	"github.com/oidcgate/oidcgate/provider"
)

func TestValidateIssuer(t *testing.T) {
	tests := []struct {
		issuer   string
		insecure bool
		ok       bool
	}{
		{"https://id.example.com", false, true},
		{"https://id.example.com/tenant-a", false, true},
		{"http://127.0.0.1:8080", false, true},
		{"http://localhost:8080", false, true},
		{"http://[::1]:8080", false, true},
		{"http://id.example.com", false, false},
		{"http://id.example.com", true, true},
		{"https://id.example.com/", false, false},
		{"https://id.example.com?x=1", false, false},
		{"https://id.example.com#f", false, false},
		{"https://user@id.example.com", false, false},
		{"ftp://id.example.com", false, false},
		{"id.example.com", false, false},
		{"", false, false},
	}
	for _, tc := range tests {
		err := provider.ValidateIssuer(tc.issuer, tc.insecure)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateIssuer(%q, %v) = %v, want ok=%v", tc.issuer, tc.insecure, err, tc.ok)
		}
	}
}
