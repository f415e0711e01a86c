package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/interpreter"
	"github.com/valyala/fasthttp"
	"gopkg.in/yaml.v3"
)

// Claim rules and claim headers of a route: what a token must say beyond
// audience and scopes, and which of its claims go upstream as headers.
//
//	routes:
//	  - path_prefix: /admin
//	    claims:                       # every claim listed must match
//	      groups: [admin, ops]        # any of these (a list claim: any element)
//	      amr: {all: [pwd, otp]}      # all of these
//	      realm_access.roles: auditor # a dotted path into nested objects
//	    rule: 'claims.tenant == request.headers["x-tenant"] && request.method != "DELETE"'
//	    headers: {X-User-Email: email, X-Groups: groups}
//
// rule is a CEL expression (cel.dev/cel-go) over claims, request.method,
// request.path and request.headers (lower-case names); it must be of type
// bool and is compiled once, at load, with a cost limit. Matchers, and a
// rule that reads only claims, depend on the token alone: they are
// evaluated on every request, a rule's verdict kept with the token's
// identity per route (the first request with a token evaluates it). A rule
// that reads request.* is evaluated on every request. Mapped header names
// are identity headers: stripped from client requests, so a rule cannot
// read them.

// ClaimMatch is one claim's matcher: the claim (or, for a list claim, one
// of its elements) equals any of Any, or the claim holds all of All.
type ClaimMatch struct {
	Any []any
	All []any
}

// UnmarshalYAML reads a scalar (any of one), a list (any of them), or
// {any: [...]} / {all: [...]}.
func (m *ClaimMatch) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return err
		}
		m.Any = []any{v}
	case yaml.SequenceNode:
		if err := n.Decode(&m.Any); err != nil {
			return err
		}
	case yaml.MappingNode:
		var x struct {
			Any []any `yaml:"any"`
			All []any `yaml:"all"`
		}
		if err := n.Decode(&x); err != nil {
			return err
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i].Value; k != "any" && k != "all" {
				return fmt.Errorf("line %d: a claim matcher takes any or all, not %q", n.Line, k)
			}
		}
		m.Any, m.All = x.Any, x.All
	default:
		return fmt.Errorf("line %d: a claim matcher is a value, a list, or {any: [...]} / {all: [...]}", n.Line)
	}
	return nil
}

// matcher is a compiled ClaimMatch.
type matcher struct {
	path     []string
	any, all []any // normalised (numbers as float64, as JSON decodes them)
}

// mappedHeader is one claim → header mapping.
type mappedHeader struct {
	name []byte // canonical
	path []string
	key  string // the path as written: the memo's key
}

// celEnv is the rules' environment.
var celEnv = func() *cel.Env {
	env, err := cel.NewEnv(
		cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("request.method", cel.StringType),
		cel.Variable("request.path", cel.StringType),
		cel.Variable("request.headers", cel.MapType(cel.StringType, cel.StringType)),
	)
	if err != nil {
		panic(err)
	}
	return env
}()

// ruleCostLimit bounds one rule evaluation (CEL's cost units: roughly one
// per operation, more per element of a comprehension).
const ruleCostLimit = 10_000

// compileRules compiles a route's claims, rule and headers.
func compileRules(rule *Route) []error {
	var errs []error
	if rule.Public && (len(rule.Claims) > 0 || rule.Rule != "" || len(rule.Headers) > 0) {
		errs = append(errs, errors.New("a public rule takes no claims, rule or headers"))
	}
	for name, m := range rule.Claims {
		if name == "" || strings.Contains(name, "..") || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") {
			errs = append(errs, fmt.Errorf("claims: %q is not a claim path", name))
			continue
		}
		if len(m.Any) == 0 && len(m.All) == 0 {
			errs = append(errs, fmt.Errorf("claims: %s matches nothing", name))
		}
		mt := matcher{path: strings.Split(name, ".")}
		for _, v := range m.Any {
			mt.any = append(mt.any, normal(v))
		}
		for _, v := range m.All {
			mt.all = append(mt.all, normal(v))
		}
		rule.matchers = append(rule.matchers, mt)
	}
	if rule.Rule != "" {
		ast, iss := celEnv.Compile(rule.Rule)
		switch {
		case iss.Err() != nil:
			errs = append(errs, fmt.Errorf("rule: %v", iss.Err()))
		case ast.OutputType() != cel.BoolType:
			errs = append(errs, fmt.Errorf("rule: must be of type bool, is %s", ast.OutputType()))
		default:
			prg, err := celEnv.Program(ast, cel.CostLimit(ruleCostLimit), cel.EvalOptions(cel.OptOptimize))
			if err != nil {
				errs = append(errs, fmt.Errorf("rule: %v", err))
			}
			rule.program = prg
			// A rule that reads only the claims has one verdict per token:
			// kept with the token's identity. One that reads the request is
			// evaluated on every request.
			rule.perToken = true
			for _, ref := range ast.NativeRep().ReferenceMap() {
				if strings.HasPrefix(ref.Name, "request.") {
					rule.perToken = false
				}
			}
		}
	}
	for name, claim := range rule.Headers {
		if !validHeaderName(name) {
			errs = append(errs, fmt.Errorf("headers: %q is not a header name", name))
			continue
		}
		if claim == "" {
			errs = append(errs, fmt.Errorf("headers: %s names no claim", name))
			continue
		}
		rule.mapped = append(rule.mapped, mappedHeader{name: canonical(name), path: strings.Split(claim, "."), key: claim})
	}
	return errs
}

// normal is v as JSON decoding would have it: numbers as float64.
func normal(v any) any {
	switch n := v.(type) {
	case int:
		return float64(n)
	case int64:
		return float64(n)
	case uint64:
		return float64(n)
	}
	return v
}

// lookup follows a dotted claim path.
func lookup(claims map[string]any, path []string) (any, bool) {
	var cur any = claims
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// matches applies the matcher to claims.
func (m *matcher) matches(claims map[string]any) bool {
	v, ok := lookup(claims, m.path)
	if !ok {
		return false
	}
	has := func(want any) bool {
		if list, ok := v.([]any); ok {
			for _, e := range list {
				if e == want {
					return true
				}
			}
			return false
		}
		return v == want
	}
	for _, w := range m.all {
		if !has(w) {
			return false
		}
	}
	if len(m.any) == 0 {
		return true
	}
	for _, w := range m.any {
		if has(w) {
			return true
		}
	}
	return false
}

// ruleInput is a rule's activation: the claims and the request, its
// headers read only if the rule asks for them.
type ruleInput struct {
	claims       map[string]any
	method, path []byte
	header       *fasthttp.RequestHeader
}

func (in *ruleInput) ResolveName(name string) (any, bool) {
	switch name {
	case "claims":
		return in.claims, true
	case "request.method": // views of the request's bytes: they outlive no evaluation
		return b2s(in.method), true
	case "request.path":
		return b2s(in.path), true
	case "request.headers":
		h := map[string]string{}
		if in.header != nil {
			in.header.VisitAll(func(k, v []byte) { h[strings.ToLower(string(k))] = string(v) })
		}
		return h, true
	}
	return nil, false
}

func (in *ruleInput) Parent() interpreter.Activation { return nil }

// checkClaims applies a route's matchers and rule to an identity and the
// request; a rule that errs (a missing claim, the cost limit) denies.
func (r *Route) checkClaims(id *Identity, method, path []byte, h *fasthttp.RequestHeader) Decision {
	if len(r.matchers) == 0 && r.program == nil {
		return allowed
	}
	claims := id.claimsMap()
	for i := range r.matchers {
		if !r.matchers[i].matches(claims) {
			return denyRule()
		}
	}
	if r.program != nil {
		var ok bool
		if r.perToken {
			ok = id.memo().verdict(r, func() bool { return r.eval(claims, nil, nil, nil) })
		} else {
			ok = r.eval(claims, method, path, h)
		}
		if !ok {
			return denyRule()
		}
	}
	return allowed
}

// eval runs the rule; an error (a missing claim, the cost limit) is false.
func (r *Route) eval(claims map[string]any, method, path []byte, h *fasthttp.RequestHeader) bool {
	in := ruleInputs.Get().(*ruleInput)
	*in = ruleInput{claims: claims, method: method, path: path, header: h}
	out, _, err := r.program.Eval(in)
	*in = ruleInput{}
	ruleInputs.Put(in)
	return err == nil && out.Value() == true
}

var ruleInputs = sync.Pool{New: func() any { return new(ruleInput) }}

// b2s views bytes as a string without copying.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// idMemo is what an identity remembers of the routes that saw it: claim-
// only rule verdicts by route, and rendered claim headers by claim path.
type idMemo struct {
	verdicts sync.Map // *Route → bool
	headers  sync.Map // claim path → renderedClaim
}

type renderedClaim struct {
	value     string
	ok, found bool
}

func (m *idMemo) verdict(r *Route, eval func() bool) bool {
	if v, ok := m.verdicts.Load(r); ok {
		return v.(bool)
	}
	v := eval()
	m.verdicts.Store(r, v)
	return v
}

func denyRule() Decision {
	return Decision{Reason: ReasonClaimRule, Status: 403, Description: "the token's claims do not satisfy this route's rules"}
}

// claimHeader renders a claim as a header value: a string as it is, a list
// comma-joined, anything else as JSON; ok is false when it holds a
// control character (the token is then refused: nothing is forwarded
// that could split or smuggle a header).
func claimHeader(v any) (string, bool) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case []any:
		var b strings.Builder
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			es, ok := claimHeader(e)
			if !ok {
				return "", false
			}
			b.WriteString(es)
		}
		s = b.String()
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		s = strconv.FormatBool(x)
	default:
		raw, _ := json.Marshal(x)
		s = string(raw)
	}
	return s, headerSafe(s)
}

// setMapped writes a route's claim headers (empty for no identity or an
// absent claim), or reports a claim that cannot be forwarded.
func (r *Route) setMapped(h interface{ SetCanonical(k, v []byte) }, id *Identity) bool {
	if len(r.mapped) == 0 {
		return true
	}
	if id == nil {
		for _, m := range r.mapped {
			h.SetCanonical(m.name, nil)
		}
		return true
	}
	memo := id.memo()
	for _, m := range r.mapped {
		var rc renderedClaim
		if v, ok := memo.headers.Load(m.key); ok {
			rc = v.(renderedClaim)
		} else {
			if v, found := lookup(id.claimsMap(), m.path); found {
				rc.value, rc.ok = claimHeader(v)
				rc.found = true
			} else {
				rc.ok = true
			}
			memo.headers.Store(m.key, rc)
		}
		if !rc.ok {
			return false
		}
		h.SetCanonical(m.name, s2b(rc.value))
	}
	return true
}

// mappedNames are every route's claim header names, to strip from clients.
func (r *Routes) mappedNames() [][]byte {
	var out [][]byte
	for _, rule := range append(r.Rules, Route{}) {
		for _, m := range rule.mapped {
			if !containsName(out, m.name) {
				out = append(out, m.name)
			}
		}
	}
	return out
}

func containsName(list [][]byte, n []byte) bool {
	for _, x := range list {
		if bytes.EqualFold(x, n) {
			return true
		}
	}
	return false
}

// NeedsClaims reports whether a rule reads claims beyond the identity
// headers' (the validator must then keep them).
func (r *Routes) NeedsClaims() bool {
	for _, rule := range r.Rules {
		if len(rule.matchers) > 0 || rule.program != nil || len(rule.mapped) > 0 {
			return true
		}
	}
	return false
}
