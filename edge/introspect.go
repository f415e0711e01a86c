package edge

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/oauth"
)

// Introspection is an RFC 7662 §2.2 response, as the provider writes it.
type Introspection = oauth.Introspection

// Introspector asks the provider about an opaque token.
type Introspector interface {
	Introspect(ctx context.Context, token string) (*Introspection, error)
}

// HTTPIntrospector calls an RFC 7662 endpoint with the edge's own client
// credentials (client_secret_basic).
type HTTPIntrospector struct {
	endpoint      string
	authorization string
	client        *fasthttp.Client
}

// NewHTTPIntrospector builds an introspection client.
func NewHTTPIntrospector(endpoint, clientID, clientSecret string, timeout time.Duration) *HTTPIntrospector {
	// RFC 6749 §2.3.1: form-encode the id and secret, then Basic-encode.
	creds := url.QueryEscape(clientID) + ":" + url.QueryEscape(clientSecret)
	return &HTTPIntrospector{
		endpoint:      endpoint,
		authorization: "Basic " + base64.StdEncoding.EncodeToString([]byte(creds)),
		client: &fasthttp.Client{Name: "oidcgate-edge", ReadTimeout: timeout, WriteTimeout: timeout,
			MaxResponseBodySize: 64 << 10},
	}
}

// Introspect implements Introspector.
func (h *HTTPIntrospector) Introspect(ctx context.Context, token string) (*Introspection, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(h.endpoint)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/x-www-form-urlencoded")
	req.Header.Set("Authorization", h.authorization)
	req.Header.Set("Accept", "application/json")
	args := fasthttp.AcquireArgs()
	defer fasthttp.ReleaseArgs(args)
	args.Set("token", token)
	args.Set("token_type_hint", "access_token")
	req.SetBody(args.QueryString())
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	if err := h.client.DoDeadline(req, resp, deadline); err != nil {
		return nil, fmt.Errorf("%w: introspection: %v", ErrUnavailable, err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return nil, fmt.Errorf("%w: introspection answered %d", ErrUnavailable, resp.StatusCode())
	}
	var res Introspection
	if err := json.Unmarshal(resp.Body(), &res); err != nil {
		return nil, fmt.Errorf("%w: introspection response: %v", ErrUnavailable, err)
	}
	return &res, nil
}
