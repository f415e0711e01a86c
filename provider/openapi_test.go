package provider_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/oidcgate/oidcgate/provider"
)

// The admin API's OpenAPI document, loaded and validated once
// (github.com/getkin/kin-openapi), and a router over it.
var adminSpec = sync.OnceValues(func() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("admin_openapi.yaml")
	if err != nil {
		return nil, err
	}
	return doc, doc.Validate(context.Background())
})

var adminRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := adminSpec()
	if err != nil {
		return nil, err
	}
	return gorillamux.NewRouter(doc)
})

// checkAdminAnswer fails t unless the request is an operation of the
// document and the answer is what the document says it answers.
func checkAdminAnswer(t testing.TB, method, path, body, contentType string, resp *http.Response, b []byte) {
	t.Helper()
	router, err := adminRouter()
	if err != nil {
		t.Fatalf("the admin OpenAPI document: %v", err)
	}
	u, _ := url.Parse("http://localhost" + path)
	req, _ := http.NewRequest(method, u.String(), strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s is not an operation of the admin OpenAPI document: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(b)),
		Options: in.Options})
	if err != nil {
		t.Errorf("%s %s answered %d, not as the OpenAPI document says: %v\n%s", method, path, resp.StatusCode, err, b)
	}
}

// TestAdminOpenAPIServed: the document served is the one checked in, and
// it is a valid OpenAPI 3.1 document.
func TestAdminOpenAPIServed(t *testing.T) {
	if _, err := adminSpec(); err != nil {
		t.Fatal(err)
	}
	s := start(t, backends()[0].open(t))
	r := s.adminDo(t, "GET", "/admin/v1/openapi.json")
	served, err := openapi3.NewLoader().LoadFromData(r.body)
	if err != nil || r.status != 200 || served.OpenAPI != "3.1.0" {
		t.Fatalf("served document: %d %v", r.status, err)
	}
	want, _ := adminSpec()
	if len(served.Paths.Map()) != len(want.Paths.Map()) {
		t.Errorf("served %d paths, the file has %d", len(served.Paths.Map()), len(want.Paths.Map()))
	}
}

// TestEveryAdminOperationNeedsAToken: acceptance 3 — walking the OpenAPI
// document, every operation refuses a request without a token and one
// with a wrong token (401, as documented).
func TestEveryAdminOperationNeedsAToken(t *testing.T) {
	doc, err := adminSpec()
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, backends()[0].open(t))
	var ops []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	sort.Strings(ops)
	if len(ops) < 25 {
		t.Fatalf("only %d operations in the document", len(ops))
	}
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		concrete := strings.NewReplacer("{id}", "alice-sub", "{kid}", "k", "{sid}", "s", "{client}", "web").Replace(path)
		for name, token := range map[string]string{"no token": "", "a wrong token": "oidcgate_admin_wrong"} {
			resp := s.adminSend(t, token, method, concrete, "application/json", "{}")
			if resp.status != 401 || !strings.HasPrefix(resp.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s with %s: %d %s", op, name, resp.status, resp.body)
			}
		}
		// The limiter is per address: start afresh for the next operations.
		provider.ResetLimits(s.p)
	}
	t.Logf("%d operations refuse requests without a valid token", len(ops))
}
