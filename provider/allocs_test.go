//go:build !race

package provider_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage/memory"
)

// clientCredentialsAllocs is the budget of a client_credentials token
// request in the provider's handler beyond what crypto/ecdsa's own ES256
// signature allocates (59 in go1.26, measured beside it): form parsing,
// client authentication from the cache, claims, the JWS, the JSON answer,
// the request ID and deadline. Measured: 32. A change that adds
// allocations to the hot path fails here before it shows in a benchmark.
const clientCredentialsAllocs = 36

func TestClientCredentialsAllocations(t *testing.T) {
	store := memory.New(time.Now)
	p := bareProvider(t, "http://127.0.0.1:8080", store)
	c, _, err := provider.ClientSpec{ID: "svc", Secret: secret, Scopes: []string{"read"}, Audiences: []string{api}}.Build(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	store.CreateClient(context.Background(), c)
	h := p.Public()
	var rc fasthttp.RequestCtx
	serve := func() {
		rc.Request.Reset()
		rc.Response.Reset()
		rc.Request.SetRequestURI("/token")
		rc.Request.Header.SetMethod("POST")
		rc.Request.Header.SetContentType("application/x-www-form-urlencoded")
		rc.Request.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("svc:"+secret)))
		rc.Request.SetBodyString("grant_type=client_credentials")
		h(&rc)
		if rc.Response.StatusCode() != 200 {
			t.Fatalf("%d %s", rc.Response.StatusCode(), rc.Response.Body())
		}
	}
	for range 10 { // the client cached, the pools warm
		serve()
	}
	time.Sleep(50 * time.Millisecond) // ristretto admits the client asynchronously
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	digest := sha256.Sum256([]byte("header.payload"))
	raw := testing.AllocsPerRun(200, func() { ecdsa.SignASN1(rand.Reader, key, digest[:]) })
	n := testing.AllocsPerRun(200, serve)
	t.Logf("%.0f allocations per client_credentials request, %.0f of them the raw ES256 signature", n, raw)
	if n-raw > clientCredentialsAllocs {
		t.Errorf("%.0f allocations per client_credentials request beyond the signature's %.0f, budget %d", n-raw, raw, clientCredentialsAllocs)
	}
}
