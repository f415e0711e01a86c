package provider

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/oauth"
)

// form is the parameters of an application/x-www-form-urlencoded POST.
type form struct{ args *fasthttp.Args }

// readForm checks the content type and that no parameter repeats (RFC
// 6749 §3.2; `resource` may, RFC 8707 §2), then returns the parameters.
func readForm(ctx *fasthttp.RequestCtx) (form, error) {
	ct := ctx.Request.Header.ContentType()
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	if !bytes.EqualFold(bytes.TrimSpace(ct), []byte("application/x-www-form-urlencoded")) {
		return form{}, oauth.ErrInvalidRequest("the body must be application/x-www-form-urlencoded")
	}
	args := ctx.PostArgs()
	if name, ok := repeated(args); ok {
		return form{}, oauth.ErrInvalidRequest("parameter %q appears more than once", name)
	}
	return form{args: args}, nil
}

// repeated finds a parameter given twice. Requests carry a handful of
// parameters, so the quadratic scan is cheaper than a map.
func repeated(args *fasthttp.Args) (name string, found bool) {
	var keys [16][]byte
	n := 0
	args.VisitAll(func(k, _ []byte) {
		if found || string(k) == "resource" {
			return
		}
		for _, seen := range keys[:min(n, len(keys))] {
			if bytes.Equal(seen, k) {
				name, found = string(k), true
				return
			}
		}
		if n < len(keys) {
			keys[n] = k
		}
		n++
	})
	if !found && n > len(keys) {
		// More parameters than any endpoint takes: check the rest slowly.
		seen := map[string]bool{}
		args.VisitAll(func(k, _ []byte) {
			if found || string(k) == "resource" {
				return
			}
			if seen[string(k)] {
				name, found = string(k), true
			}
			seen[string(k)] = true
		})
	}
	return name, found
}

// get returns a parameter; an empty value counts as absent (RFC 6749 §3.1).
func (f form) get(name string) []byte { return f.args.Peek(name) }

// str is get as a string.
func (f form) str(name string) string { return string(f.args.Peek(name)) }

// all returns every value of a repeatable parameter.
func (f form) all(name string) []string {
	var out []string
	for _, v := range f.args.PeekMulti(name) {
		if len(v) > 0 {
			out = append(out, string(v))
		}
	}
	return out
}
