package edge_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oidcgate/oidcgate/edge"
)

// thirdParty answers introspection as another provider would: the token is
// active, and it is a refresh token (Hydra's token_use, Keycloak-style
// token_type).
type thirdParty struct{ res edge.Introspection }

func (p thirdParty) Introspect(context.Context, string) (*edge.Introspection, error) {
	r := p.res
	return &r, nil
}

// TestRefreshTokenIsNoAccessToken: a refresh token presented at the edge is
// refused even when introspection calls it active.
func TestRefreshTokenIsNoAccessToken(t *testing.T) {
	route := &edge.Route{PathPrefix: "/", Token: edge.TokenEither}
	for _, tc := range []struct {
		name string
		res  edge.Introspection
		want int
	}{
		{"token_use refresh_token", edge.Introspection{Active: true, Sub: "u", Exp: time.Now().Add(time.Hour).Unix(), TokenUse: "refresh_token"}, 401},
		{"token_type refresh_token", edge.Introspection{Active: true, Sub: "u", Exp: time.Now().Add(time.Hour).Unix(), TokenType: "refresh_token"}, 401},
		{"an access token", edge.Introspection{Active: true, Sub: "u", Exp: time.Now().Add(time.Hour).Unix(), TokenType: "Bearer", TokenUse: "access_token"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := edge.NewValidator(edge.ValidatorConfig{Issuer: benchIssuer, Algs: benchAlgs, Leeway: 30 * time.Second,
				CacheTTL: time.Minute, CacheSize: 1000, IntrospectionTTL: time.Minute, NegativeTTL: time.Second},
				benchRing(t), nil, thirdParty{tc.res}, prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			if _, d := v.Check(context.Background(), time.Now(), []byte("Bearer an-opaque-token"), route); d.Status != tc.want {
				t.Errorf("%+v, want %d", d, tc.want)
			}
		})
	}
}
