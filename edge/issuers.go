package edge

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/oidcgate/oidcgate/keys"
)

// Several issuers: the edge may trust tokens of more than one provider,
// each with its own validator (its JWKS cache and refetch limits, its
// algorithms, audiences, leeway, typ rule and introspection), and a route
// may name which it accepts (issuers: [...]; default: all). A JWT's iss
// picks the validator before any key is looked up: a token of an issuer
// the route does not accept is refused without a fetch. An opaque token
// goes to the first accepted issuer that introspects.

// resolveIssuers binds each route's issuers to validators.
func (e *Edge) resolveIssuers(routes *Routes) error {
	e.byIss = map[string]*Validator{}
	for _, v := range e.issuers {
		if _, dup := e.byIss[v.cfg.Issuer]; dup {
			return fmt.Errorf("edge: issuer %s is listed twice", v.cfg.Issuer)
		}
		e.byIss[v.cfg.Issuer] = v
	}
	var errs []error
	for i := range routes.Rules {
		r := &routes.Rules[i]
		for _, iss := range r.Issuers {
			v, ok := e.byIss[iss]
			if !ok {
				errs = append(errs, fmt.Errorf("rule %d (%s): issuer %q is not one of the edge's issuers", i+1, r.PathPrefix, iss))
				continue
			}
			r.accept = append(r.accept, v)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("edge: routes: %w", errors.Join(errs...))
	}
	return nil
}

// check picks the validator for the token and the route, and checks.
func (e *Edge) check(ctx context.Context, now time.Time, authorization []byte, r *Route) (*Identity, Decision) {
	if len(e.issuers) == 1 && r.accept == nil {
		return e.issuers[0].Check(ctx, now, authorization, r) // one issuer: no look at iss before the validator's own check
	}
	accept := r.accept
	if accept == nil {
		accept = e.issuers
	}
	tok, ok := bearer(authorization)
	if r.Public || len(authorization) == 0 || !ok {
		return accept[0].Check(ctx, now, authorization, r) // its own answer: public, missing, malformed
	}
	if bytes.Count(tok, []byte(".")) != 2 { // opaque: the first that introspects
		for _, v := range accept {
			if v.introspector != nil {
				return v.Check(ctx, now, authorization, r)
			}
		}
		return accept[0].Check(ctx, now, authorization, r)
	}
	v := e.byIss[unverifiedIss(tok)]
	if v == nil || !acceptsValidator(accept, v) {
		return nil, deny(ReasonWrongIssuer, "the token's issuer is not accepted here")
	}
	return v.Check(ctx, now, authorization, r)
}

func acceptsValidator(list []*Validator, v *Validator) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// unverifiedIss is a JWT's iss, read without verifying it: only to pick
// the validator that then verifies everything.
func unverifiedIss(tok []byte) string {
	parts := bytes.SplitN(tok, []byte("."), 3)
	if len(parts) != 3 || len(parts[1]) > keys.MaxTokenSize {
		return ""
	}
	var buf [2048]byte
	payload := buf[:0]
	if n := base64.RawURLEncoding.DecodedLen(len(parts[1])); n <= len(buf) {
		payload = buf[:n]
	} else {
		payload = make([]byte, n)
	}
	n, err := base64.RawURLEncoding.Decode(payload, parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if gojson.Unmarshal(payload[:n], &c) != nil {
		return ""
	}
	return c.Iss
}

// IssuerConfig is one entry of the edge's issuers: list (the YAML file).
type IssuerConfig struct {
	Issuer                string         `yaml:"issuer"`
	JWKSURI               string         `yaml:"jwks_uri"`               // default: from discovery
	IntrospectionEndpoint string         `yaml:"introspection_endpoint"` // default: from discovery, when a client is set
	ClientID              string         `yaml:"client_id"`              // for introspection
	ClientSecret          string         `yaml:"client_secret"`
	ClientSecretFile      string         `yaml:"client_secret_file"`
	AllowedAlgs           []string       `yaml:"allowed_algs"`      // default: the edge's --allowed-algs
	Audiences             []string       `yaml:"audiences"`         // its tokens must carry one of these
	Leeway                *time.Duration `yaml:"leeway"`            // default: the edge's --leeway
	RequireTyp            *bool          `yaml:"require_typ"`       // default: the edge's --require-typ
	RevocationStream      string         `yaml:"revocation_stream"` // its /revocations, read with client_id (introspect_any)
}

// Validate reports what is wrong with the entry.
func (c IssuerConfig) Validate() error {
	var errs []error
	if u, err := url.Parse(c.Issuer); c.Issuer == "" || err != nil || !u.IsAbs() {
		errs = append(errs, fmt.Errorf("issuer must be an absolute URL, got %q", c.Issuer))
	}
	for name, v := range map[string]string{"jwks_uri": c.JWKSURI, "introspection_endpoint": c.IntrospectionEndpoint} {
		if u, err := url.Parse(v); v != "" && (err != nil || !u.IsAbs()) {
			errs = append(errs, fmt.Errorf("%s is not an absolute URL: %q", name, v))
		}
	}
	if c.ClientSecret != "" && c.ClientSecretFile != "" {
		errs = append(errs, errors.New("set client_secret or client_secret_file, not both"))
	}
	if (c.ClientID == "") != (c.ClientSecret == "" && c.ClientSecretFile == "") {
		errs = append(errs, errors.New("client_id and client_secret go together"))
	}
	if c.RevocationStream != "" && c.ClientID == "" {
		errs = append(errs, errors.New("revocation_stream needs client_id and client_secret (a resource server)"))
	}
	for _, a := range c.AllowedAlgs {
		if !keys.Supported(a) {
			errs = append(errs, fmt.Errorf("allowed_algs: %q is not one of ES256, RS256, PS256, EdDSA", a))
		}
	}
	if c.Leeway != nil && (*c.Leeway < 0 || *c.Leeway > 5*time.Minute) {
		errs = append(errs, fmt.Errorf("leeway must be between 0s and 5m, got %s", *c.Leeway))
	}
	if len(errs) > 0 {
		return fmt.Errorf("issuer %s: %w", c.Issuer, errors.Join(errs...))
	}
	return nil
}

// Apply is base (the edge's token policy) with the entry's own settings.
func (c IssuerConfig) Apply(base ValidatorConfig) ValidatorConfig {
	base.Issuer, base.Audiences = c.Issuer, c.Audiences
	if len(c.AllowedAlgs) > 0 {
		base.Algs = c.AllowedAlgs
	}
	if c.Leeway != nil {
		base.Leeway = *c.Leeway
	}
	if c.RequireTyp != nil {
		base.RequireTyp = *c.RequireTyp
	}
	return base
}
