package oauth

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an OAuth 2.0 / OIDC protocol error (RFC 6749 §4.1.2.1, §5.2).
// Its constructors return fresh values, so callers may wrap a cause.
type Error struct {
	Code        string // the RFC error code, e.g. "invalid_request"
	Description string // error_description: human-readable, never secret
	Status      int    // HTTP status
	// WWWAuthenticate, when set, is sent as the WWW-Authenticate header
	// (RFC 6749 §5.2 for Basic, RFC 6750 §3 for bearer tokens).
	WWWAuthenticate string
	cause           error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Description, e.cause)
	}
	return e.Code + ": " + e.Description
}

// Unwrap returns the cause, which is logged and never shown.
func (e *Error) Unwrap() error { return e.cause }

// WithCause returns a copy of e that carries cause for the log.
func (e *Error) WithCause(cause error) *Error {
	cp := *e
	cp.cause = cause
	return &cp
}

func New(status int, code, format string, args ...any) *Error {
	return &Error{Code: code, Description: fmt.Sprintf(format, args...), Status: status}
}

// ErrInvalidRequest: a missing, repeated or malformed parameter.
func ErrInvalidRequest(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "invalid_request", format, args...)
}

// ErrNotFound is rendered for unknown paths.
func ErrNotFound() *Error {
	return New(http.StatusNotFound, "not_found", "no such endpoint")
}

// ErrMethodNotAllowed is rendered for a known path with the wrong method.
func ErrMethodNotAllowed() *Error {
	return New(http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
}

// ErrServer hides an unexpected failure behind server_error (RFC 6749
// §4.1.2.1); the cause is logged under the request ID.
func ErrServer(cause error) *Error {
	return (&Error{Code: "server_error", Description: "internal error", Status: http.StatusInternalServerError}).WithCause(cause)
}

// ErrUnavailable is rendered when a dependency (the store) is down.
func ErrUnavailable(cause error) *Error {
	return (&Error{Code: "temporarily_unavailable", Description: "try again later", Status: http.StatusServiceUnavailable}).WithCause(cause)
}

// As turns any error into the one rendered: an *Error as it is,
// anything else as server_error.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return ErrServer(err)
}

// ErrInvalidClient: client authentication failed (RFC 6749 §5.2). When the
// client tried the Authorization header, the response carries
// WWW-Authenticate: Basic.
func ErrInvalidClient(basic bool, format string, args ...any) *Error {
	e := New(http.StatusUnauthorized, "invalid_client", format, args...)
	if basic {
		e.WWWAuthenticate = `Basic realm="oidcgate", charset="UTF-8"`
	}
	return e
}

// ErrInvalidGrant: the grant (code, refresh token) is invalid, expired,
// revoked, or was issued to another client.
func ErrInvalidGrant(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "invalid_grant", format, args...)
}

// ErrUnauthorizedClient: the client may not use this grant type.
func ErrUnauthorizedClient(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "unauthorized_client", format, args...)
}

// ErrUnsupportedGrantType: the grant type is not one this server supports.
func ErrUnsupportedGrantType(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "unsupported_grant_type", format, args...)
}

// ErrInvalidScope: a requested scope is unknown or not allowed.
func ErrInvalidScope(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "invalid_scope", format, args...)
}

// ErrInvalidTarget: a requested resource or audience is not allowed
// (RFC 8707 §2).
func ErrInvalidTarget(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "invalid_target", format, args...)
}

// ErrInvalidToken is RFC 6750 §3.1's invalid_token, with its challenge: a
// missing token gets the bare challenge (§3.1: no error code).
func ErrInvalidToken(missing bool, description string) *Error {
	e := New(http.StatusUnauthorized, "invalid_token", "%s", description)
	if missing {
		e.WWWAuthenticate = Challenge("", "", "")
	} else {
		e.WWWAuthenticate = Challenge("invalid_token", description, "")
	}
	return e
}

// ErrInsufficientScope is RFC 6750 §3.1's insufficient_scope for a token
// lacking scope (the scopes needed, space-separated).
func ErrInsufficientScope(description, scope string) *Error {
	e := New(http.StatusForbidden, "insufficient_scope", "%s", description)
	e.WWWAuthenticate = Challenge("insufficient_scope", "", scope)
	return e
}

// Challenge is the one RFC 6750 §3 WWW-Authenticate Bearer challenge:
// code, description and scope are left out when empty. description and
// scope must be plain ASCII without quotes (they are the server's own).
func Challenge(code, description, scope string) string {
	c := `Bearer realm="oidcgate"`
	if code != "" {
		c += `, error="` + code + `"`
	}
	if description != "" {
		c += `, error_description="` + description + `"`
	}
	if scope != "" {
		c += `, scope="` + scope + `"`
	}
	return c
}
