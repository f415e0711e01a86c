package edge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"cel.dev/cel-go/cel"
	"gopkg.in/yaml.v3"
)

// Token kinds a route accepts.
const (
	TokenJWT    = "jwt"
	TokenOpaque = "opaque"
	TokenEither = "either"
)

// Route is one rule: requests whose path is PathPrefix or below it, segment
// by segment (/public matches /public and /public/x, not /publicadmin; a
// prefix ending in / matches everything under it), and whose method is in
// Methods, if given, are public, or need a token of Token kind carrying
// Audience and every one of Scopes. Paths compare case-sensitively, as
// most upstream routers do.
type Route struct {
	PathPrefix string   `yaml:"path_prefix"`
	Methods    []string `yaml:"methods"`
	Public     bool     `yaml:"public"`
	Audience   string   `yaml:"audience"`
	Scopes     []string `yaml:"scopes"`
	Token      string   `yaml:"token"`
	// Claims, Rule and Headers: claim matchers, a CEL rule, and claim →
	// header mappings (rules.go).
	Claims  map[string]ClaimMatch `yaml:"claims"`
	Rule    string                `yaml:"rule"`
	Headers map[string]string     `yaml:"headers"`
	// Issuers are the issuers whose tokens the route accepts (their iss
	// URLs; empty: every issuer of the edge; issuers.go).
	Issuers []string `yaml:"issuers"`
	// RateLimit limits requests per token subject or client (ratelimit.go).
	RateLimit *RateLimit `yaml:"rate_limit"`

	scope    string // Scopes joined, for the WWW-Authenticate scope attribute
	prefix   []byte
	matchers []matcher
	program  cel.Program
	perToken bool // the rule reads only claims: its verdict is kept per token
	limiter  *limiter
	accept   []*Validator // Issuers resolved by the edge; nil: all
	mapped   []mappedHeader
}

// Routes is an ordered rule list: the first match wins.
type Routes struct {
	Rules []Route `yaml:"routes"`
	// Unmatched is "deny" (the default) or "authenticate": what a request
	// no rule matches gets.
	Unmatched string `yaml:"unmatched"`

	fallback *Route // the rule for unmatched requests, nil: deny
}

// DefaultRoutes is the rule set without a routes file: every request needs
// a valid token for audience (any audience when empty).
func DefaultRoutes(audience string) (*Routes, error) {
	return compile(&Routes{Rules: []Route{{PathPrefix: "/", Audience: audience}}})
}

// LoadRoutes reads a routes file strictly.
func LoadRoutes(path string) (*Routes, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	var r Routes
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("routes %s: %w", path, err)
	}
	out, err := compile(&r)
	if err != nil {
		return nil, fmt.Errorf("routes %s: %w", path, err)
	}
	return out, nil
}

func compile(r *Routes) (*Routes, error) {
	var errs []error
	for i := range r.Rules {
		rule := &r.Rules[i]
		if !strings.HasPrefix(rule.PathPrefix, "/") {
			errs = append(errs, fmt.Errorf("rule %d: path_prefix must start with /", i+1))
		}
		for j, m := range rule.Methods {
			rule.Methods[j] = strings.ToUpper(m)
		}
		switch rule.Token {
		case "":
			rule.Token = TokenEither
		case TokenJWT, TokenOpaque, TokenEither:
		default:
			errs = append(errs, fmt.Errorf("rule %d: token must be jwt, opaque or either, got %q", i+1, rule.Token))
		}
		if rule.Public && (rule.Audience != "" || len(rule.Scopes) > 0) {
			errs = append(errs, fmt.Errorf("rule %d: a public rule takes no audience or scopes", i+1))
		}
		for _, s := range rule.Scopes {
			if s == "" || strings.ContainsAny(s, " \"\\") {
				errs = append(errs, fmt.Errorf("rule %d: scope %q is not a scope token", i+1, s))
			}
		}
		for _, err := range compileRules(rule) {
			errs = append(errs, fmt.Errorf("rule %d (%s): %w", i+1, rule.PathPrefix, err))
		}
		if rl := rule.RateLimit; rl != nil {
			if err := rl.check(); err != nil {
				errs = append(errs, fmt.Errorf("rule %d (%s): %w", i+1, rule.PathPrefix, err))
			} else if rule.Public {
				errs = append(errs, fmt.Errorf("rule %d (%s): a public rule has no subject to rate-limit", i+1, rule.PathPrefix))
			} else {
				rule.limiter = newLimiter(*rl)
			}
		}
		rule.scope = strings.Join(rule.Scopes, " ")
		rule.prefix = []byte(rule.PathPrefix)
	}
	switch r.Unmatched {
	case "", "deny":
		r.Unmatched = "deny"
	case "authenticate":
		r.fallback = &Route{PathPrefix: "/", Token: TokenEither}
	default:
		errs = append(errs, fmt.Errorf("unmatched must be deny or authenticate, got %q", r.Unmatched))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// underPrefix: path is prefix, or below it at a segment boundary.
func underPrefix(path, prefix []byte) bool {
	return bytes.HasPrefix(path, prefix) &&
		(len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/')
}

func (r *Route) allows(method []byte) bool {
	if len(r.Methods) == 0 {
		return true
	}
	for _, m := range r.Methods {
		if string(method) == m {
			return true
		}
	}
	return false
}

// Match returns the first rule for method and path, the fallback, or nil
// (deny).
func (r *Routes) Match(method, path []byte) *Route {
	for i := range r.Rules {
		rule := &r.Rules[i]
		if underPrefix(path, rule.prefix) && rule.allows(method) {
			return rule
		}
	}
	return r.fallback
}
