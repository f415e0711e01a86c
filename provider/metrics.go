package provider

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oidcgate/oidcgate/provider/oauth"
)

// providerMetrics are the protocol counters. Label values come from bounded
// sets (grant types, formats, RFC error codes), never from client IDs or
// tokens.
type providerMetrics struct {
	issued        *prometheus.CounterVec   // grant, format
	tokenDuration *prometheus.HistogramVec // grant, outcome
	introspection *prometheus.CounterVec   // outcome
	revocation    *prometheus.CounterVec   // outcome
	// signins, upstreamLatency: by connector id (from the configuration,
	// a bounded set; "local" for the local users).
	signins         *prometheus.CounterVec   // connector, outcome
	upstreamLatency *prometheus.HistogramVec // connector, operation
	mfa             *prometheus.CounterVec   // method, outcome
}

func newProviderMetrics(reg prometheus.Registerer) (*providerMetrics, error) {
	m := &providerMetrics{
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oidcgate_tokens_issued_total",
			Help: "Access tokens issued, by grant type and format (jwt, opaque).",
		}, []string{"grant", "format"}),
		tokenDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "oidcgate_token_request_duration_seconds",
			Help:    "Token endpoint latency, by grant type and outcome (ok or the OAuth error code).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"grant", "outcome"}),
		introspection: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oidcgate_introspections_total",
			Help: "Introspection requests, by outcome (active, inactive, or the OAuth error code).",
		}, []string{"outcome"}),
		revocation: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oidcgate_revocations_total",
			Help: "Revocation requests, by outcome (what was revoked, unknown, or the OAuth error code).",
		}, []string{"outcome"}),
		signins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oidcgate_signins_total",
			Help: "Sign-ins by connector (local: the local users) and outcome: ok, bad_credentials, refused (by policy or a disabled user), upstream_error, unavailable, invalid (a forged, replayed or unverifiable answer).",
		}, []string{"connector", "outcome"}),
		upstreamLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "oidcgate_upstream_request_duration_seconds",
			Help:    "Time spent at an upstream connector, by connector and operation: discovery, exchange (code redemption, ID token and userinfo or API calls), login (LDAP).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"connector", "operation"}),
		mfa: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oidcgate_mfa_total",
			Help: "Second-factor attempts, by method (totp, recovery, enroll, webauthn, passkey) and outcome: ok, bad_code, replayed, limited, refused (a WebAuthn assertion that did not verify).",
		}, []string{"method", "outcome"}),
	}
	for _, c := range []prometheus.Collector{m.issued, m.tokenDuration, m.introspection, m.revocation, m.signins, m.upstreamLatency, m.mfa} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// grantLabel keeps the grant label bounded: anything unknown is "other".
func grantLabel(g string) string {
	switch g {
	case grantClientCredentials, grantAuthorizationCode, grantRefreshToken:
		return g
	case grantTokenExchange:
		return "token_exchange"
	case grantDeviceCode:
		return "device_code"
	}
	return "other"
}

// errorLabel is "ok" or the error's OAuth code (a bounded set).
func errorLabel(err error) string {
	if err == nil {
		return "ok"
	}
	return oauth.As(err).Code
}
