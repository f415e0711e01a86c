package edge

import (
	"bytes"
	"errors"
)

// errAmbiguousPath: a request path the edge and the upstream could read
// differently. The edge decides on the decoded path and forwards the raw
// one, so it refuses every form whose decoding would change the path's
// segments: an encoded slash or backslash, a backslash, dot segments (raw
// or encoded), empty segments, path parameters (;), an encoded percent
// (double encoding) and control characters. What is left decodes to the
// same segments the upstream's router will see.
var errAmbiguousPath = errors.New("the request path is ambiguous (encoded slashes, dot segments, ';', double encoding)")

// routePath checks a raw request path (no query) and returns the path to
// match routes on: raw itself, or its percent-decoding.
func routePath(raw []byte) ([]byte, error) {
	if len(raw) == 0 {
		return []byte("/"), nil
	}
	if raw[0] != '/' {
		return nil, errAmbiguousPath
	}
	escaped := false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c < 0x21 || c == 0x7f || c == '\\' || c == ';':
			return nil, errAmbiguousPath
		case c == '%':
			if i+2 >= len(raw) || unhex(raw[i+1]) < 0 || unhex(raw[i+2]) < 0 {
				return nil, errAmbiguousPath
			}
			switch d := byte(unhex(raw[i+1])<<4 | unhex(raw[i+2])); {
			case d == '/' || d == '\\' || d == '%' || d == ';' || d < 0x21 || d == 0x7f:
				return nil, errAmbiguousPath
			}
			escaped = true
		}
	}
	out := raw
	if escaped {
		out = make([]byte, 0, len(raw))
		for i := 0; i < len(raw); i++ {
			if raw[i] == '%' {
				out = append(out, byte(unhex(raw[i+1])<<4|unhex(raw[i+2])))
				i += 2
			} else {
				out = append(out, raw[i])
			}
		}
	}
	// Segments of the decoded path: no empty ones (but a trailing slash),
	// no dot segments.
	for rest := out[1:]; ; {
		seg, after, more := bytes.Cut(rest, []byte("/"))
		if len(seg) == 0 && more || string(seg) == "." || string(seg) == ".." {
			return nil, errAmbiguousPath
		}
		if !more {
			return out, nil
		}
		rest = after
	}
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
