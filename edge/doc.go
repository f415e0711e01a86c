// Package edge is the gateway that runs beside every upstream: it validates
// bearer tokens — JWTs locally against a cached JWKS, opaque tokens by
// cached RFC 7662 introspection — applies per-route rules, and either
// proxies the request upstream with the verified identity in headers, or
// answers a forward-auth check for nginx, Traefik or Envoy.
//
// It never fails open: no decision possible means 503, never 200.
package edge
