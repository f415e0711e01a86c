package provider

import (
	"net"
	"net/url"
	"slices"
)

// redirectAllowed reports whether got may receive an authorization
// response for a client registered with registered: an exact string match
// (OIDC Core §3.1.2.1, RFC 6749 §3.1.2.3) — no prefix, case, fragment or
// normalisation leeway — or, for a native public client, RFC 8252 §7.3: a
// registered http redirect on a loopback IP literal matches at any port.
func redirectAllowed(registered []string, got string, public bool) bool {
	if slices.Contains(registered, got) {
		return true
	}
	if !public {
		return false
	}
	g, err := url.Parse(got)
	if err != nil || g.Scheme != "http" || g.User != nil || g.Fragment != "" || g.RawFragment != "" || !loopbackIP(g.Hostname()) {
		return false
	}
	for _, r := range registered {
		u, err := url.Parse(r)
		if err != nil || u.Scheme != "http" || !loopbackIP(u.Hostname()) {
			continue
		}
		if u.Hostname() == g.Hostname() && u.EscapedPath() == g.EscapedPath() && u.RawQuery == g.RawQuery {
			return true
		}
	}
	return false
}

// loopbackIP: an IP literal in 127.0.0.0/8 or ::1. RFC 8252 §8.3: not the
// name localhost, which a resolver or firewall could point elsewhere.
func loopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
