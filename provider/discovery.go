package provider

import (
	"encoding/json"
	"maps"
	"slices"
)

// metadata is the provider's discovery document: OIDC Discovery 1.0 §3 and
// RFC 8414 §2. It advertises exactly what is implemented.
type metadata struct {
	Issuer                                             string            `json:"issuer"`
	AuthorizationEndpoint                              string            `json:"authorization_endpoint"`
	TokenEndpoint                                      string            `json:"token_endpoint"`
	UserinfoEndpoint                                   string            `json:"userinfo_endpoint,omitempty"`
	JWKSURI                                            string            `json:"jwks_uri"`
	IntrospectionEndpoint                              string            `json:"introspection_endpoint"`
	RevocationEndpoint                                 string            `json:"revocation_endpoint"`
	EndSessionEndpoint                                 string            `json:"end_session_endpoint,omitempty"`
	RegistrationEndpoint                               string            `json:"registration_endpoint,omitempty"`
	PushedAuthorizationRequestEndpoint                 string            `json:"pushed_authorization_request_endpoint"`
	DeviceAuthorizationEndpoint                        string            `json:"device_authorization_endpoint"`
	RequirePushedAuthorizationRequests                 bool              `json:"require_pushed_authorization_requests"`
	GrantTypesSupported                                []string          `json:"grant_types_supported"`
	ResponseTypesSupported                             []string          `json:"response_types_supported"`
	ResponseModesSupported                             []string          `json:"response_modes_supported"`
	CodeChallengeMethodsSupported                      []string          `json:"code_challenge_methods_supported"`
	AuthorizationResponseIssParameterSupported         bool              `json:"authorization_response_iss_parameter_supported"`
	TokenEndpointAuthMethodsSupported                  []string          `json:"token_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethodsSupported          []string          `json:"introspection_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethodsSupported             []string          `json:"revocation_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgValuesSupported         []string          `json:"token_endpoint_auth_signing_alg_values_supported"`
	IntrospectionEndpointAuthSigningAlgValuesSupported []string          `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	RevocationEndpointAuthSigningAlgValuesSupported    []string          `json:"revocation_endpoint_auth_signing_alg_values_supported"`
	DPoPSigningAlgValuesSupported                      []string          `json:"dpop_signing_alg_values_supported"`
	TLSClientCertificateBoundAccessTokens              bool              `json:"tls_client_certificate_bound_access_tokens"`
	MTLSEndpointAliases                                map[string]string `json:"mtls_endpoint_aliases,omitempty"`
	AccessTokenSigningAlgValuesSupported               []string          `json:"access_token_signing_alg_values_supported,omitempty"`
	ScopesSupported                                    []string          `json:"scopes_supported"`
	SubjectTypesSupported                              []string          `json:"subject_types_supported,omitempty"`
	IDTokenSigningAlgValuesSupported                   []string          `json:"id_token_signing_alg_values_supported,omitempty"`
	ClaimsSupported                                    []string          `json:"claims_supported,omitempty"`
	PromptValuesSupported                              []string          `json:"prompt_values_supported,omitempty"`
	ACRValuesSupported                                 []string          `json:"acr_values_supported,omitempty"`
	BackchannelLogoutSupported                         bool              `json:"backchannel_logout_supported,omitempty"`
	BackchannelLogoutSessionSupported                  bool              `json:"backchannel_logout_session_supported,omitempty"`
	RequestParameterSupported                          bool              `json:"request_parameter_supported"`
	RequestURIParameterSupported                       bool              `json:"request_uri_parameter_supported"`
}

// renderDiscovery builds both documents once.
func (p *Provider) renderDiscovery() (oidc, oauth []byte, err error) {
	iss := p.cfg.Issuer
	// Every method works at every endpoint; none (public clients) only at
	// the token endpoint. federated_jwt is oidcgate's own (a client_assertion).
	authMethods := []string{authSecretBasic, authSecretPost, authSecretJWT, authPrivateKeyJWT, authTLSClient, authSelfSignedTLSClient}
	authAlgs := slices.Clone(assertionAlgs)
	for _, a := range secretAssertionAlgs {
		authAlgs = append(authAlgs, a.String())
	}
	m := metadata{
		Issuer:                             iss,
		AuthorizationEndpoint:              iss + "/authorize",
		TokenEndpoint:                      iss + "/token",
		JWKSURI:                            iss + "/jwks",
		IntrospectionEndpoint:              iss + "/introspect",
		RevocationEndpoint:                 iss + "/revoke",
		PushedAuthorizationRequestEndpoint: iss + "/par",
		DeviceAuthorizationEndpoint:        iss + "/device_authorization",
		RequirePushedAuthorizationRequests: p.cfg.RequirePAR,
		// RFC 8705 §5: one listener serves mTLS and the rest, so the
		// aliases are the endpoints themselves.
		TLSClientCertificateBoundAccessTokens: true,
		MTLSEndpointAliases: map[string]string{"token_endpoint": iss + "/token", "introspection_endpoint": iss + "/introspect",
			"revocation_endpoint": iss + "/revoke", "pushed_authorization_request_endpoint": iss + "/par", "userinfo_endpoint": iss + "/userinfo",
			"device_authorization_endpoint": iss + "/device_authorization"},
		GrantTypesSupported:                                []string{grantAuthorizationCode, grantRefreshToken, grantClientCredentials, grantTokenExchange, grantDeviceCode},
		ResponseTypesSupported:                             []string{"code"},
		ResponseModesSupported:                             []string{"query", "form_post"},
		CodeChallengeMethodsSupported:                      []string{"S256"},
		AuthorizationResponseIssParameterSupported:         true,
		TokenEndpointAuthMethodsSupported:                  append(slices.Clone(authMethods), authNone),
		TokenEndpointAuthSigningAlgValuesSupported:         authAlgs,
		IntrospectionEndpointAuthSigningAlgValuesSupported: authAlgs,
		RevocationEndpointAuthSigningAlgValuesSupported:    authAlgs,
		DPoPSigningAlgValuesSupported:                      assertionAlgs,
		IntrospectionEndpointAuthMethodsSupported:          authMethods,
		RevocationEndpointAuthMethodsSupported:             authMethods,
		AccessTokenSigningAlgValuesSupported:               []string{p.cfg.AccessTokenAlg},
		ScopesSupported:                                    []string{"openid", "profile", "email", "groups", "offline_access"},
	}
	if p.cfg.Registration != registrationOff {
		m.RegistrationEndpoint = iss + "/register"
	}
	if oauth, err = json.Marshal(m); err != nil {
		return nil, nil, err
	}
	m.UserinfoEndpoint, m.EndSessionEndpoint = iss+"/userinfo", iss+"/end_session"
	m.SubjectTypesSupported = []string{"public"}
	m.IDTokenSigningAlgValuesSupported = p.ring.Algs()
	m.PromptValuesSupported = []string{"none", "login", "consent"}
	m.BackchannelLogoutSupported, m.BackchannelLogoutSessionSupported = true, true
	m.ACRValuesSupported = acrValues
	m.ClaimsSupported = []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "amr", "acr", "azp"}
	for _, scope := range slices.Sorted(maps.Keys(p.scopeClaims)) {
		for _, c := range p.scopeClaims[scope] {
			if !slices.Contains(m.ClaimsSupported, c) {
				m.ClaimsSupported = append(m.ClaimsSupported, c)
			}
		}
	}
	oidc, err = json.Marshal(m)
	return oidc, oauth, err
}
