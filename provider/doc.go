// Package provider is the OpenID Connect provider: thin fasthttp handlers
// that copy what they need out of the request, call a service method that
// knows nothing of HTTP, and render the result — every error through one
// typed OAuth error rendered in one place (RFC 6749 §5.2, RFC 6750 §3).
package provider
