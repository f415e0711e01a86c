package edge_test

import (
	"context"
	"net"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/oidcgate/oidcgate/keys"
)

// extAuthzClient serves w's edge over gRPC ext_authz on loopback and
// returns a grpc-go client of it.
func extAuthzClient(t *testing.T, w *world) authv3.AuthorizationClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	w.edge.RegisterExtAuthz(s)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

func checkRequest(method, path string, headers map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: method, Path: path, Headers: headers}}}}
}

func okHeaders(r *authv3.CheckResponse) map[string]string {
	out := map[string]string{}
	for _, h := range r.GetOkResponse().GetHeaders() {
		out[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return out
}

// TestExtAuthzGRPC: acceptance 1 for gRPC ext_authz — a grpc-go client's
// Check gets the same decisions as the HTTP edge: OK with the identity and
// claim headers to set and the others to remove; denials with the HTTP
// status, WWW-Authenticate and JSON body; raw header maps too.
func TestExtAuthzGRPC(t *testing.T) {
	w := newWorld(t, worldOpts{routes: ruleRoutes})
	c := extAuthzClient(t, w)
	ctx := context.Background()
	admin := w.sign(t, keys.ES256, map[string]any{"groups": []string{"admin"}, "email_verified": true, "email": "ann@example.com", "jti": "g1"})

	r, err := c.Check(ctx, checkRequest("GET", "/admin/x?y=1", map[string]string{"authorization": "Bearer " + admin, "x-groups": "forged"}))
	if err != nil || r.GetStatus().GetCode() != int32(codes.OK) {
		t.Fatalf("allowed: %v %v", r, err)
	}
	h := okHeaders(r)
	if h["X-Auth-Subject"] != "user-1" || h["X-User-Email"] != "ann@example.com" || h["X-Groups"] != "admin" {
		t.Errorf("headers to set: %v", h)
	}
	if rm := strings.Join(r.GetOkResponse().GetHeadersToRemove(), ","); !strings.Contains(rm, "authorization") {
		t.Errorf("headers to remove: %s", rm)
	}

	for name, tc := range map[string]struct {
		req    *authv3.CheckRequest
		code   codes.Code
		status int32
		body   string
	}{
		"no token":      {checkRequest("GET", "/admin/x", nil), codes.Unauthenticated, 401, ""},
		"a forged sig":  {checkRequest("GET", "/admin/x", map[string]string{"authorization": "Bearer " + admin[:len(admin)-4] + "AAAA"}), codes.Unauthenticated, 401, "invalid_token"},
		"a claim rule":  {checkRequest("GET", "/admin/x", map[string]string{"authorization": "Bearer " + w.sign(t, keys.ES256, map[string]any{"groups": []string{"dev"}, "email_verified": true, "jti": "g2"})}), codes.PermissionDenied, 403, "access_denied"},
		"unknown iss":   {checkRequest("GET", "/other", map[string]string{"authorization": "Bearer " + w.sign(t, keys.ES256, map[string]any{"iss": "https://evil.example", "jti": "g3"})}), codes.Unauthenticated, 401, "invalid_token"},
		"a dotted path": {checkRequest("GET", "/admin/../secret", map[string]string{"authorization": "Bearer " + admin}), codes.InvalidArgument, 400, "invalid_request"},
	} {
		r, err := c.Check(ctx, tc.req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		den := r.GetDeniedResponse()
		var challenge string
		for _, hv := range den.GetHeaders() {
			if strings.EqualFold(hv.GetHeader().GetKey(), "WWW-Authenticate") {
				challenge = hv.GetHeader().GetValue()
			}
		}
		if r.GetStatus().GetCode() != int32(tc.code) || int32(den.GetStatus().GetCode()) != tc.status || !strings.Contains(den.GetBody(), tc.body) ||
			(tc.status == 401 && !strings.HasPrefix(challenge, "Bearer")) {
			t.Errorf("%s: %v %d %q %q", name, codes.Code(r.GetStatus().GetCode()), den.GetStatus().GetCode(), den.GetBody(), challenge)
		}
	}
	// Envoy's encode_raw_headers form.
	raw := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/admin/x",
			HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "authorization", RawValue: []byte("Bearer " + admin)}}}}}}}
	if r, err := c.Check(ctx, raw); err != nil || r.GetStatus().GetCode() != int32(codes.OK) {
		t.Errorf("raw headers: %v %v", r, err)
	}
	// Two Authorization headers are refused, as by the HTTP edge.
	two := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/admin/x",
			HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "authorization", Value: "Bearer " + admin}, {Key: "authorization", Value: "Bearer x"}}}}}}}
	if r, _ := c.Check(ctx, two); r.GetStatus().GetCode() != int32(codes.InvalidArgument) {
		t.Errorf("two Authorization headers: %v", r)
	}
}
