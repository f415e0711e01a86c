package edge

import (
	"context"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider/oauth"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// Envoy's external authorization over gRPC (envoy.service.auth.v3.
// Authorization/Check), for Contour, Istio and Envoy setups that speak
// only gRPC ext_authz: the same routes, rules, identity and claim headers,
// and denials as the proxy and forward-auth. An allowed check answers
// OkHttpResponse with the identity headers to set (overwriting any the
// client sent) and the identity headers it does not set to remove; a
// denial answers DeniedHttpResponse with the HTTP status, WWW-Authenticate
// and the JSON body the HTTP edge would send.

type extAuthz struct {
	authv3.UnimplementedAuthorizationServer
	e *Edge
}

// RegisterExtAuthz adds the Authorization service to s.
func (e *Edge) RegisterExtAuthz(s *grpc.Server) {
	authv3.RegisterAuthorizationServer(s, &extAuthz{e: e})
}

// headerList collects headers as Envoy header options.
type headerList []*corev3.HeaderValueOption

func (l *headerList) SetCanonical(k, v []byte) {
	*l = append(*l, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: string(k), Value: string(v)},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
}

// Check implements authv3.AuthorizationServer.
func (s *extAuthz) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	e := s.e
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	h := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(h)
	for k, v := range httpReq.GetHeaders() {
		h.Header.Set(k, v)
	}
	for _, hv := range httpReq.GetHeaderMap().GetHeaders() { // encode_raw_headers
		v := hv.GetValue()
		if len(hv.GetRawValue()) > 0 {
			v = string(hv.GetRawValue())
		}
		h.Header.Add(hv.GetKey(), v)
	}
	if len(h.Header.PeekAll("Authorization")) > 1 {
		return e.denied(deny(ReasonBadRequest, "more than one Authorization header")), nil
	}
	now := time.Now()
	if e.cfg.Clock != nil {
		now = e.cfg.Clock()
	}
	path := pathOnly([]byte(httpReq.GetPath()))
	// Envoy passes the downstream client certificate with
	// include_peer_certificate; the gRPC caller is Envoy itself.
	o := &origin{scheme: []byte(httpReq.GetScheme()), host: []byte(httpReq.GetHost()), path: path,
		cert: oauth.ForwardedCert(req.GetAttributes().GetSource().GetCertificate())}
	id, r, d := e.decideAt(now, &h.Header, []byte(httpReq.GetMethod()), path, h.Header.Peek("Authorization"), o)
	if d.Status != 200 {
		return e.denied(d), nil
	}
	var set headerList
	if !r.setMapped(&set, id) {
		e.byReason[ReasonMalformed].Inc()
		return e.denied(unsafeClaim), nil
	}
	e.setIdentity(&set, id)
	ok := &authv3.OkHttpResponse{Headers: set}
	// Identity headers not set here must not reach the upstream as the
	// client sent them.
	for _, name := range e.strip {
		if !setHas(set, name) {
			ok.HeadersToRemove = append(ok.HeadersToRemove, string(name))
		}
	}
	if !e.cfg.PassAuthorization {
		ok.HeadersToRemove = append(ok.HeadersToRemove, "authorization")
	}
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok}}, nil
}

func setHas(l headerList, name []byte) bool {
	for _, o := range l {
		if len(o.Header.Key) == len(name) && fasthttpEqualFold(o.Header.Key, name) {
			return true
		}
	}
	return false
}

func fasthttpEqualFold(a string, b []byte) bool {
	for i := range len(a) {
		if a[i]|0x20 != b[i]|0x20 {
			return false
		}
	}
	return true
}

// denied renders d as the HTTP edge would (one renderer), into Envoy's
// DeniedHttpResponse.
func (e *Edge) denied(d Decision) *authv3.CheckResponse {
	var rc fasthttp.RequestCtx
	e.reject(&rc, d)
	resp := &authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode(rc.Response.StatusCode())},
		Body: string(rc.Response.Body())}
	rc.Response.Header.VisitAll(func(k, v []byte) {
		resp.Headers = append(resp.Headers, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: string(k), Value: string(v)},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
	})
	code := codes.PermissionDenied
	switch d.Status {
	case 401:
		code = codes.Unauthenticated
	case 503:
		code = codes.Unavailable
	case 400:
		code = codes.InvalidArgument
	case 429:
		code = codes.ResourceExhausted
	}
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(code), Message: d.Reason},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: resp}}
}
