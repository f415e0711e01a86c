// Package provider is the OpenID Connect provider. Its handlers are thin:
// they copy what they need out of the request into plain values, call a
// method that knows nothing of HTTP, and render the result — every
// protocol error through one typed OAuth error rendered in one place (RFC
// 6749 §5.2, RFC 6750 §3; http.go).
//
// Where things are:
//   - grants.go, grants_user.go: the token endpoint and its grants
//     (client_credentials; authorization_code and refresh_token with ID
//     tokens), clientauth.go: client authentication;
//   - flow*.go, sessions.go: the sign-in flow — /authorize, sign-in,
//     consent, logout — as typed requests and outcomes passing a pipeline of
//     steps (flow.go says how); browser.go: its handlers;
//   - introspect.go: introspection and revocation (RFC 7662, RFC 7009);
//     userinfo.go; discovery.go; admin.go: the admin API;
//   - registry.go, bootstrap.go, password.go: clients, users and passwords;
//   - storage/: one Storage interface, its backends and conformance suite.
package provider
