package provider

import (
	"encoding/json"
)

// metadata is the provider's discovery document: OIDC Discovery 1.0 §3 and
// RFC 8414 §2. It advertises exactly what is implemented.
type metadata struct {
	Issuer                                    string   `json:"issuer"`
	TokenEndpoint                             string   `json:"token_endpoint"`
	JWKSURI                                   string   `json:"jwks_uri"`
	IntrospectionEndpoint                     string   `json:"introspection_endpoint"`
	RevocationEndpoint                        string   `json:"revocation_endpoint"`
	GrantTypesSupported                       []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported         []string `json:"token_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
	AccessTokenSigningAlgValuesSupported      []string `json:"access_token_signing_alg_values_supported,omitempty"`
	IntrospectionSigningAlgValuesSupported    []string `json:"-"`
	ResponseTypesSupported                    []string `json:"response_types_supported"`
	SubjectTypesSupported                     []string `json:"subject_types_supported,omitempty"`
	IDTokenSigningAlgValuesSupported          []string `json:"id_token_signing_alg_values_supported,omitempty"`
	ScopesSupported                           []string `json:"scopes_supported,omitempty"`
	ClaimsSupported                           []string `json:"claims_supported,omitempty"`
}

// renderDiscovery builds both documents once.
func (p *Provider) renderDiscovery() (oidc, oauth []byte, err error) {
	iss := p.cfg.Issuer
	secretMethods := []string{authSecretBasic, authSecretPost}
	m := metadata{
		Issuer:                            iss,
		TokenEndpoint:                     iss + "/token",
		JWKSURI:                           iss + "/jwks",
		IntrospectionEndpoint:             iss + "/introspect",
		RevocationEndpoint:                iss + "/revoke",
		GrantTypesSupported:               []string{grantClientCredentials},
		TokenEndpointAuthMethodsSupported: secretMethods,
		IntrospectionEndpointAuthMethodsSupported: secretMethods,
		RevocationEndpointAuthMethodsSupported:    secretMethods,
		AccessTokenSigningAlgValuesSupported:      []string{p.cfg.AccessTokenAlg},
		// No authorization endpoint is served yet, so no response type is.
		ResponseTypesSupported: []string{},
	}
	if oauth, err = json.Marshal(m); err != nil {
		return nil, nil, err
	}
	m.SubjectTypesSupported = []string{"public"}
	m.IDTokenSigningAlgValuesSupported = p.ring.Algs()
	oidc, err = json.Marshal(m)
	return oidc, oauth, err
}
