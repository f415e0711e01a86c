package edge

import (
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/keys"
)

// FuzzParseJWKS: the JWKS comes over the network; whatever it holds, the
// parser returns supported keys with their kid and alg, or an error.
func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"a","alg":"ES256","use":"sig"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"e"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h","alg":"HS256"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","kid":"x","alg":"ES256"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		set, err := ParseJWKS(body)
		if err != nil {
			return
		}
		for kid, k := range set {
			if kid == "" || k.ID != kid || !keys.Supported(k.Alg) || !fits(k.Alg, k.Key) {
				t.Fatalf("bad key %q: %+v", kid, k)
			}
		}
	})
}

func FuzzMaxAge(f *testing.F) {
	for _, s := range []string{"public, max-age=300", "max-age=\"60\"", "no-store", "max-age=-1", "MAX-AGE=5, private", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cc string) {
		if d := maxAge([]byte(cc)); d < 0 || d > 24*time.Hour {
			t.Fatalf("maxAge(%q) = %v", cc, d)
		}
	})
}
