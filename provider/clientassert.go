package provider

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/oidcgate/oidcgate/edge"
	"github.com/oidcgate/oidcgate/keys"
	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// Client authentication by JWT assertion (RFC 7523 §2.2, OIDC Core §9):
// private_key_jwt — the client signs with a key of its registered JWKS
// (by value or jwks_uri) — and federated_jwt, workload identity: the
// client presents a token another issuer minted for it (a Kubernetes
// projected service-account token, a SPIFFE JWT-SVID), matched by issuer
// and subject and verified against that issuer's keys. Neither needs a
// shared secret. Remote key sets are cached with the edge's JWKS rules:
// fetches are rate-limited, de-duplicated, and stale keys serve while the
// issuer cannot be reached.

const (
	authPrivateKeyJWT = "private_key_jwt"
	authFederatedJWT  = "federated_jwt"
	authSecretJWT     = "client_secret_jwt"
	// authAssertion is how a request authenticated (before the client's
	// method is known): a client_assertion.
	authAssertion = "client_assertion"

	jwtBearerAssertion = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// assertionAlgs are the algorithms a client assertion may be signed with:
// asymmetric only, never none or an HMAC.
var assertionAlgs = []string{keys.ES256, keys.RS256, keys.PS256, keys.EdDSA}

// secretAssertionAlgs are a client_secret_jwt assertion's: HMACs keyed
// with the client's secret, only for a client registered for them.
var secretAssertionAlgs = []jwa.SignatureAlgorithm{jwa.HS256, jwa.HS384, jwa.HS512}

// Sealer encrypts under the key-encryption key (a *keys.Ring).
type Sealer interface {
	Seal(purpose string, plain []byte) ([]byte, error)
}

func secretPurpose(clientID string) string { return "client-secret:" + clientID }

// SealClientSecret keeps a client_secret_jwt client's secret recoverable,
// encrypted under the key-encryption key: its assertions are HMACs keyed
// with the secret itself (RFC 7523 §2.2, OIDC Core §9), so a hash cannot
// check them. Other clients' secrets are only ever hashed.
func SealClientSecret(s Sealer, c *storage.Client, secret string) error {
	if c.TokenEndpointAuthMethod != authSecretJWT {
		c.SealedSecret, c.PreviousSealedSecret = nil, nil
		return nil
	}
	if s == nil {
		return errors.New("a client_secret_jwt client's secret is sealed under the key-encryption key: create it through a running provider (--admin-url) or its config file")
	}
	sealed, err := s.Seal(secretPurpose(c.ID), []byte(secret))
	if err != nil {
		return err
	}
	c.SealedSecret = sealed
	return nil
}

// clientCredentials reads how a request authenticates its client: a
// client_assertion (RFC 7523 §2.2), or the secret and Basic forms.
func clientCredentials(authorization []byte, f form) (credentials, error) {
	typ, assertion := f.get("client_assertion_type"), f.get("client_assertion")
	if len(typ) == 0 && len(assertion) == 0 {
		return parseCredentials(authorization, f.get("client_id"), f.get("client_secret"))
	}
	switch {
	case string(typ) != jwtBearerAssertion:
		return credentials{}, oauth.ErrInvalidClient(false, "client_assertion_type must be %s", jwtBearerAssertion)
	case len(assertion) == 0:
		return credentials{}, oauth.ErrInvalidClient(false, "client_assertion is empty")
	case len(authorization) > 0 || len(f.get("client_secret")) > 0:
		return credentials{}, oauth.ErrInvalidRequest("a request authenticates its client one way only")
	}
	id := string(f.get("client_id"))
	if id == "" { // RFC 7523 §3: the sub of a private_key_jwt assertion is the client
		id = unverifiedSubject(assertion)
	}
	if id == "" {
		return credentials{}, oauth.ErrInvalidClient(false, "client_id is required")
	}
	return credentials{id: id, secret: string(assertion), method: authAssertion}, nil
}

// unverifiedSubject is a JWT's sub, read without verifying it: only to
// find the client whose keys then verify it.
func unverifiedSubject(token []byte) string {
	parts := bytes.Split(token, []byte("."))
	if len(parts) != 3 || len(token) > keys.MaxTokenSize {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(string(parts[1]))
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	json.Unmarshal(raw, &c)
	return c.Sub
}

// assertionClaims are what a client assertion is checked on.
type assertionClaims struct {
	Iss string        `json:"iss"`
	Sub string        `json:"sub"`
	Aud keys.Audience `json:"aud"`
	Exp int64         `json:"exp"`
	Nbf int64         `json:"nbf"`
	Iat int64         `json:"iat"`
	Jti string        `json:"jti"`
}

// assertionLeeway is the clock skew allowed between client and server.
const assertionLeeway = 30 * time.Second

// checkAssertion verifies a client assertion for c; a failure is
// invalid_client, its reason logged (never the assertion).
func (p *Provider) checkAssertion(ctx context.Context, c *storage.Client, assertion string) error {
	fail := func(reason string) error {
		p.log.Info("client assertion refused", "client_id", c.ID, "method", c.TokenEndpointAuthMethod, "reason", reason)
		return oauth.ErrInvalidClient(false, "client authentication failed: %s", reason)
	}
	var payload []byte
	if c.TokenEndpointAuthMethod == authSecretJWT {
		var reason string
		if payload, reason = p.verifySecretAssertion(c, []byte(assertion)); reason != "" {
			return fail(reason)
		}
	} else {
		v, err := p.assertionVerifier(c)
		if err != nil {
			return fail(err.Error())
		}
		payload, _, err = v.Verify([]byte(assertion))
		if errors.Is(err, edge.ErrUnavailable) {
			return oauth.ErrUnavailable(err)
		}
		if err != nil {
			return fail("the signature does not verify under the client's keys: " + err.Error())
		}
	}
	var cl assertionClaims
	if err := json.Unmarshal(payload, &cl); err != nil {
		return fail("the claims are malformed")
	}
	now := p.now()
	switch {
	case cl.Exp == 0:
		return fail("exp is required")
	case now.After(time.Unix(cl.Exp, 0).Add(assertionLeeway)):
		return fail("the assertion expired")
	case cl.Nbf != 0 && now.Add(assertionLeeway).Before(time.Unix(cl.Nbf, 0)):
		return fail("the assertion is not valid yet (nbf)")
	case cl.Iat != 0 && now.Add(assertionLeeway).Before(time.Unix(cl.Iat, 0)):
		return fail("the assertion was issued in the future (iat)")
	}
	if c.TokenEndpointAuthMethod == authFederatedJWT {
		aud := cmpOr(c.FederatedAudience, p.cfg.Issuer)
		switch {
		case cl.Iss != c.FederatedIssuer || cl.Sub != c.FederatedSubject:
			return fail("the token's issuer and subject are not the ones this client trusts")
		case !slices.Contains(cl.Aud, aud):
			return fail("the token's aud is not " + aud)
		}
		return nil
	}
	ep := p.cfg.Issuer
	switch {
	case cl.Iss != c.ID || cl.Sub != c.ID:
		return fail("iss and sub must be the client_id")
	case !slices.ContainsFunc(cl.Aud, func(a string) bool {
		return a == ep || a == ep+"/token" || a == ep+"/introspect" || a == ep+"/revoke" || a == ep+"/par" || a == ep+"/device_authorization"
	}):
		return fail("aud must be the issuer or the endpoint")
	case time.Unix(cl.Exp, 0).Sub(now) > p.cfg.ClientAssertionMaxLifetime+assertionLeeway:
		return fail(fmt.Sprintf("exp is more than %s ahead", p.cfg.ClientAssertionMaxLifetime))
	case cl.Jti == "" || len(cl.Jti) > 256:
		return fail("jti is required (at most 256 characters)")
	}
	// Single use, in the store: every replica refuses a replay.
	err := p.assertDB.UseAssertion(ctx, c.ID+"\x00"+cl.Jti, time.Unix(cl.Exp, 0).Add(assertionLeeway))
	if errors.Is(err, storage.ErrAlreadyUsed) {
		return fail("the assertion was used before (jti)")
	}
	if err != nil {
		return oauth.ErrUnavailable(err)
	}
	return nil
}

// verifySecretAssertion checks a client_secret_jwt assertion's HMAC under
// the client's secret (or, in a rotation's overlap window, the previous
// one), and returns its payload or why it was refused.
func (p *Provider) verifySecretAssertion(c *storage.Client, assertion []byte) ([]byte, string) {
	if len(assertion) > keys.MaxTokenSize || bytes.Count(assertion, []byte(".")) != 2 {
		return nil, "the assertion is not a compact JWS"
	}
	msg, err := jws.Parse(assertion)
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, "the assertion is not a compact JWS"
	}
	alg := msg.Signatures()[0].ProtectedHeaders().Algorithm()
	if !slices.Contains(secretAssertionAlgs, alg) {
		return nil, fmt.Sprintf("alg %q is not HS256, HS384 or HS512", alg)
	}
	sealed := [][]byte{c.SealedSecret}
	if len(c.PreviousSealedSecret) > 0 && p.now().Before(c.PreviousSecretExpiresAt) {
		sealed = append(sealed, c.PreviousSealedSecret)
	}
	for _, blob := range sealed {
		secret, err := p.ring.Open(secretPurpose(c.ID), blob)
		if err != nil {
			p.log.Warn("a client_secret_jwt client's secret cannot be unsealed (another key-encryption key?): rotate its secret", "client_id", c.ID)
			continue
		}
		// RFC 7518 §3.2: a key at least as long as the hash.
		if len(secret)*8 < hmacBits(alg) {
			return nil, fmt.Sprintf("the client's secret is too short for %s", alg)
		}
		if payload, err := jws.Verify(assertion, jws.WithKey(alg, secret)); err == nil {
			return payload, ""
		}
	}
	return nil, "the signature does not verify under the client's secret"
}

func hmacBits(alg jwa.SignatureAlgorithm) int {
	switch alg {
	case jwa.HS384:
		return 384
	case jwa.HS512:
		return 512
	}
	return 256
}

// assertionKeys caches the verifiers of clients' keys: by value per client
// record, by URL for jwks_uri and federated issuers (one JWKS cache each).
type assertionKeys struct {
	mu        sync.Mutex
	static    map[string]staticVerifier // client ID → its JWKS's verifier
	remote    map[string]*keys.Verifier // JWKS URL → verifier over its cache
	discovery map[string]string         // federated issuer → its jwks_uri
}

type staticVerifier struct {
	updated time.Time
	v       *keys.Verifier
}

// staticKeys is a JWKS given by value.
type staticKeys map[string]*keys.PublicKey

func (s staticKeys) PublicKey(kid string) (*keys.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: %q", keys.ErrUnknownKey, kid)
}

// assertionVerifier is the verifier of c's assertions.
func (p *Provider) assertionVerifier(c *storage.Client) (*keys.Verifier, error) {
	ak := &p.assertKeys
	ak.mu.Lock()
	defer ak.mu.Unlock()
	if len(c.JWKS) > 0 {
		if sv, ok := ak.static[c.ID]; ok && sv.updated.Equal(c.UpdatedAt) {
			return sv.v, nil
		}
		set, err := edge.ParseJWKS(c.JWKS)
		if err != nil {
			return nil, err
		}
		v, err := keys.NewVerifier(staticKeys(set), assertionAlgs)
		if err != nil {
			return nil, err
		}
		ak.static[c.ID] = staticVerifier{updated: c.UpdatedAt, v: v}
		return v, nil
	}
	ak.mu.Unlock()
	uri := c.JWKSURI
	if c.TokenEndpointAuthMethod == authFederatedJWT {
		uri = c.FederatedJWKSURI
		if uri == "" {
			var err error
			if uri, err = p.discoverJWKS(ak, c.FederatedIssuer); err != nil {
				ak.mu.Lock()
				return nil, err
			}
		}
	}
	ak.mu.Lock()
	if uri == "" {
		return nil, errors.New("the client has no keys")
	}
	if v, ok := ak.remote[uri]; ok {
		return v, nil
	}
	cfg := edge.DefaultRemoteKeysConfig()
	cfg.URL = uri
	rk, err := edge.NewRemoteKeys(cfg, p.log, prometheus.NewRegistry(), p.now)
	if err != nil {
		return nil, err
	}
	v, err := keys.NewVerifier(rk, assertionAlgs)
	if err != nil {
		return nil, err
	}
	ak.remote[uri] = v
	return v, nil
}

// discoverJWKS finds a federated issuer's jwks_uri in its OpenID
// Connect discovery document (a Kubernetes API server serves one), once.
// It is called without ak.mu held: the request takes up to 5 s.
func (p *Provider) discoverJWKS(ak *assertionKeys, issuer string) (string, error) {
	ak.mu.Lock()
	uri, ok := ak.discovery[issuer]
	ak.mu.Unlock()
	if ok {
		return uri, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, issuer+"/.well-known/openid-configuration", nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: the issuer's discovery: %v", edge.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil || resp.StatusCode != 200 || doc.JWKSURI == "" {
		return "", fmt.Errorf("%w: the issuer's discovery document has no jwks_uri", edge.ErrUnavailable)
	}
	if doc.Issuer != issuer {
		return "", fmt.Errorf("the discovery document names another issuer: %q", doc.Issuer)
	}
	if u, err := url.Parse(doc.JWKSURI); err != nil || !(u.Scheme == "https" || u.Scheme == "http" && loopbackHost(u.Hostname())) {
		return "", fmt.Errorf("the issuer's jwks_uri %q is not https", doc.JWKSURI)
	}
	ak.mu.Lock()
	ak.discovery[issuer] = doc.JWKSURI
	ak.mu.Unlock()
	return doc.JWKSURI, nil
}
