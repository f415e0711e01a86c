package provider

import (
	"strings"

	"github.com/oidcgate/oidcgate/provider/oauth"
)

// parseScope reads a scope parameter (RFC 6749 §3.3): scope-tokens of
// %x21 / %x23-5B / %x5D-7E separated by single spaces. Repeats are
// dropped, order kept. An empty parameter is no scope.
func parseScope(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	for _, tok := range strings.Split(s, " ") {
		if !validScopeToken(tok) {
			return nil, oauth.ErrInvalidScope("the scope parameter must be scope tokens separated by single spaces")
		}
		if !contains(out, tok) {
			out = append(out, tok)
		}
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
