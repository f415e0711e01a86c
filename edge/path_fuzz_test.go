package edge

import (
	"bytes"
	"testing"
)

// FuzzRoutePath throws arbitrary request paths at the path check: it must
// never panic, and a path it accepts decodes to one with the same segments
// an upstream router sees — absolute, no empty, dot or encoded-slash
// segments, no backslash — and is returned as it came when nothing was
// percent-encoded.
func FuzzRoutePath(f *testing.F) {
	for _, seed := range []string{"/", "/api/x", "/%61dmin/x", "/admin/..%2fpublic/x", "/public/%2e%2e/admin", "//admin",
		"/a/./b", "/a/../b", "/a;b", "/a%252e", "/a\\b", "/a%", "/a%zz", "/a/", "", "a/b", "/%00", "/é/x"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := routePath(raw)
		if err != nil {
			return
		}
		switch {
		case len(out) == 0 || out[0] != '/':
			t.Fatalf("%q → %q: not absolute", raw, out)
		case bytes.IndexByte(raw, '%') < 0 && len(raw) > 0 && !bytes.Equal(out, raw):
			t.Fatalf("%q → %q: changed without percent-encoding", raw, out)
		case bytes.IndexByte(out, '\\') >= 0 || bytes.IndexByte(out, ';') >= 0 || bytes.Contains(out, []byte("//")):
			t.Fatalf("%q → %q: an ambiguous character survived", raw, out)
		}
		for _, seg := range bytes.Split(out[1:], []byte("/")) {
			if string(seg) == "." || string(seg) == ".." {
				t.Fatalf("%q → %q: a dot segment survived", raw, out)
			}
		}
		if len(raw) > 0 && bytes.Count(out, []byte("/")) != bytes.Count(raw, []byte("/")) {
			t.Fatalf("%q → %q: decoding changed the segments", raw, out)
		}
	})
}

// FuzzUnverifiedIat: reading a token's iat before verifying it never
// panics, whatever the token.
func FuzzUnverifiedIat(f *testing.F) {
	for _, seed := range []string{"a.eyJpYXQiOjF9.c", "a.b.c", "...", "a.eyJpYXQiOiJ4In0.c", "a.bnVsbA.c", ""} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, tok []byte) {
		if iat, ok := unverifiedIat(tok); ok && iat == 0 {
			t.Fatalf("%q: ok with no iat", tok)
		}
	})
}
