package provider

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/url"

	"github.com/oidcgate/oidcgate/provider/oauth"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// Client authentication methods (RFC 7591 §2, OIDC Core §9).
const (
	authSecretBasic = "client_secret_basic"
	authSecretPost  = "client_secret_post"
	authNone        = "none"
)

// credentials is what a request presented to authenticate its client.
type credentials struct {
	id, secret string
	method     string
	cert       *x509.Certificate // the TLS client certificate, if any (RFC 8705)
	chained    bool              // its chain is verified (mtls.go)
}

// parseCredentials reads client credentials from the Authorization header
// (RFC 6749 §2.3.1: id and secret are form-encoded, then Basic-encoded) and
// the form's client_id and client_secret. Using two mechanisms at once is
// invalid_request; a broken Basic header or no credentials, invalid_client.
func parseCredentials(authorization, formID, formSecret []byte) (credentials, error) {
	if len(authorization) == 0 {
		switch {
		case len(formID) == 0:
			return credentials{}, oauth.ErrInvalidClient(false, "client authentication is required")
		case len(formSecret) > 0:
			return credentials{id: string(formID), secret: string(formSecret), method: authSecretPost}, nil
		default:
			return credentials{id: string(formID), method: authNone}, nil
		}
	}
	scheme, encoded, ok := bytes.Cut(authorization, []byte(" "))
	if !ok || !bytes.EqualFold(scheme, []byte("Basic")) {
		return credentials{}, oauth.ErrInvalidClient(true, "the Authorization header must use the Basic scheme")
	}
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(encoded)))
	if err != nil {
		return credentials{}, oauth.ErrInvalidClient(true, "the Basic credentials are not valid base64")
	}
	rawID, rawSecret, ok := bytes.Cut(raw, []byte(":"))
	if !ok {
		return credentials{}, oauth.ErrInvalidClient(true, "the Basic credentials lack the ':' separator")
	}
	id, err1 := url.QueryUnescape(string(rawID))
	secret, err2 := url.QueryUnescape(string(rawSecret))
	if err1 != nil || err2 != nil || id == "" {
		return credentials{}, oauth.ErrInvalidClient(true, "the Basic credentials are not form-encoded")
	}
	if len(formSecret) > 0 {
		return credentials{}, oauth.ErrInvalidRequest("client credentials were sent both in the Authorization header and in the body")
	}
	if len(formID) > 0 && string(formID) != id {
		return credentials{}, oauth.ErrInvalidRequest("client_id in the body differs from the Authorization header")
	}
	return credentials{id: id, secret: secret, method: authSecretBasic}, nil
}

// hashSecret is how client secrets are stored: HMAC-SHA-256 under the
// client's own random salt, so two clients given one secret, or a leaked
// table and a list of likely secrets, do not line up; records from before
// salts are plain SHA-256. Secrets oidcgate generates carry 256 bits of
// entropy and operator-supplied ones must be 32+ characters, so a slow
// password hash would buy nothing but latency on the token path.
func hashSecret(secret string, salt []byte) []byte {
	if len(salt) == 0 {
		h := sha256.Sum256([]byte(secret))
		return h[:]
	}
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// newSalt is a client's secret salt.
func newSalt() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}

// dummySalt and dummySecretHash keep the work for an unknown client the
// same as for a known one.
var (
	dummySalt       = newSalt()
	dummySecretHash = hashSecret("oidcgate: no such client", dummySalt)
)

// authenticate checks creds against the registered client.
func (p *Provider) authenticate(ctx context.Context, creds credentials) (*storage.Client, error) {
	basic := creds.method == authSecretBasic
	c, err := p.client(ctx, creds.id)
	if errors.Is(err, storage.ErrNotFound) {
		subtle.ConstantTimeCompare(hashSecret(creds.secret, dummySalt), dummySecretHash)
		return nil, oauth.ErrInvalidClient(basic, "client authentication failed")
	}
	if err != nil {
		return nil, oauth.ErrUnavailable(err)
	}
	if c.TokenEndpointAuthMethod == authTLSClient || c.TokenEndpointAuthMethod == authSelfSignedTLSClient {
		// The certificate, and nothing else (RFC 8705 §2).
		if creds.method != authNone || !certMatches(c, creds.cert, creds.chained) {
			p.log.Info("mTLS client authentication refused", "client_id", c.ID, "certificate", creds.cert != nil)
			return nil, oauth.ErrInvalidClient(false, "client authentication failed")
		}
		return c, nil
	}
	if creds.method == authAssertion {
		// A signed assertion, for a client registered for one: never a
		// fallback to a secret, nor a secret for a keyed client.
		if c.TokenEndpointAuthMethod != authPrivateKeyJWT && c.TokenEndpointAuthMethod != authFederatedJWT && c.TokenEndpointAuthMethod != authSecretJWT {
			return nil, oauth.ErrInvalidClient(false, "client authentication failed")
		}
		if err := p.checkAssertion(ctx, c, creds.secret); err != nil {
			return nil, err
		}
		return c, nil
	}
	if c.TokenEndpointAuthMethod != creds.method {
		// The same answer as a wrong secret: which method a client uses is
		// not for strangers to learn (client enumeration).
		return nil, oauth.ErrInvalidClient(basic, "client authentication failed")
	}
	if creds.method == authNone {
		return c, nil
	}
	h := hashSecret(creds.secret, c.SecretSalt)
	current := len(c.SecretHash) > 0 && subtle.ConstantTimeCompare(h, c.SecretHash) == 1
	// In a rotation's overlap window the previous secret works too.
	previous := len(c.PreviousSecretHash) > 0 && subtle.ConstantTimeCompare(h, c.PreviousSecretHash) == 1 &&
		p.now().Before(c.PreviousSecretExpiresAt)
	if !current && !previous {
		return nil, oauth.ErrInvalidClient(basic, "client authentication failed")
	}
	return c, nil
}
