package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// ClientsCommandConfig configures `oidcgate clients`.
type ClientsCommandConfig struct {
	StoreConfig  `yaml:",inline"`
	OutputConfig `yaml:",inline"`
	AdminClient  `yaml:",inline"`

	ClientID               string        `yaml:"client_id" help:"create: the client's ID (1-128 of A-Z a-z 0-9 - . _ ~)"`
	ClientName             string        `yaml:"client_name" help:"create: a display name"`
	Public                 bool          `yaml:"public" help:"create: a public client (no secret; PKCE)"`
	AuthMethod             string        `yaml:"auth_method" help:"create: client_secret_basic (default), client_secret_post, client_secret_jwt (through --admin-url), private_key_jwt (with --jwks-uri), federated_jwt (with --federated-issuer and --federated-subject), tls_client_auth (with --tls-client-auth-subject-dn or --tls-client-auth-san-dns), or none for public clients"`
	SecretFile             string        `yaml:"secret_file" help:"create: read the client secret (32+ characters) from this file; - reads standard input; default: generate one"`
	GrantTypes             []string      `yaml:"grant_types" help:"create: client_credentials, authorization_code, refresh_token (default: client_credentials, or code+refresh for public)"`
	Scopes                 []string      `yaml:"scopes" help:"create: scopes the client may request"`
	Audiences              []string      `yaml:"audiences" help:"create: audiences (RFC 8707 resources) the client may request"`
	DefaultAudience        string        `yaml:"default_audience" help:"create: audience when none is requested"`
	RedirectURIs           []string      `yaml:"redirect_uris" help:"create: registered redirect URIs (exact match)"`
	PostLogoutRedirectURIs []string      `yaml:"post_logout_redirect_uris" help:"create: registered post-logout redirect URIs"`
	TokenFormat            string        `yaml:"token_format" help:"create: access token format, jwt or opaque"`
	AccessTokenTTL         time.Duration `yaml:"client_access_token_ttl" help:"create: access token lifetime (0: the provider's default)"`
	FirstParty             bool          `yaml:"first_party" help:"create: skip the consent page"`
	IntrospectAny          bool          `yaml:"introspect_any" help:"create: a resource server that may introspect every client's tokens"`
	DefaultConnector       string        `yaml:"default_connector" help:"create: send this client's sign-ins straight to this connector (id from connectors:)"`
	RequireMFA             bool          `yaml:"require_mfa" help:"create: issue codes to this client only for sessions with a second factor (users are stepped up)"`
	JWKSURI                string        `yaml:"jwks_uri" help:"create: a private_key_jwt client's JWK set URL (https)"`
	FederatedIssuer        string        `yaml:"federated_issuer" help:"create: a federated_jwt client's trusted issuer, e.g. the cluster's service-account issuer"`
	FederatedSubject       string        `yaml:"federated_subject" help:"create: a federated_jwt client's subject at that issuer, e.g. system:serviceaccount:NS:NAME"`
	TLSSubjectDN           string        `yaml:"tls_client_auth_subject_dn" help:"create: a tls_client_auth client's certificate subject DN"`
	TLSSANDNS              string        `yaml:"tls_client_auth_san_dns" help:"create: a tls_client_auth client's certificate DNS name"`
	DPoPBound              bool          `yaml:"dpop_bound_access_tokens" help:"create: every token request of the client must carry a DPoP proof"`
}

func (c *ClientsCommandConfig) Validate() error {
	var p problems
	c.StoreConfig.validate(&p)
	c.AdminClient.validate(&p)
	return p.err()
}

func (c *ClientsCommandConfig) spec(in io.Reader) (provider.ClientSpec, error) {
	s := provider.ClientSpec{
		ID: c.ClientID, Name: c.ClientName, Public: c.Public, TokenEndpointAuthMethod: c.AuthMethod,
		GrantTypes: c.GrantTypes, Scopes: c.Scopes, Audiences: c.Audiences, DefaultAudience: c.DefaultAudience,
		RedirectURIs: c.RedirectURIs, PostLogoutRedirectURIs: c.PostLogoutRedirectURIs, AccessTokenFormat: c.TokenFormat,
		AccessTokenTTL: c.AccessTokenTTL, FirstParty: c.FirstParty, IntrospectAny: c.IntrospectAny,
		DefaultConnector: c.DefaultConnector,
		RequireMFA:       c.RequireMFA,
		JWKSURI:          c.JWKSURI, FederatedIssuer: c.FederatedIssuer, FederatedSubject: c.FederatedSubject,
		TLSSubjectDN: c.TLSSubjectDN, TLSSANDNS: c.TLSSANDNS, DPoPBoundAccessTokens: c.DPoPBound,
	}
	if c.SecretFile != "" {
		secret, err := readSecret(c.SecretFile, in)
		if err != nil {
			return s, err
		}
		if secret == "" {
			return s, errors.New("the secret is empty")
		}
		s.Secret = secret
	}
	return s, nil
}

// readSecret reads one line from a file, or from in when path is "-".
func readSecret(path string, in io.Reader) (string, error) {
	if path != "-" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func runClients(ctx context.Context, args []string, std stdio) error {
	cfg := ClientsCommandConfig{StoreConfig: defaultStoreConfig()}
	rest, err := load("clients", &cfg, args, std.env, std.out)
	if err != nil {
		return err
	}
	verb, err := parseVerb(rest, map[string]int{"create": 0, "list": 0, "get": 1, "delete": 1},
		"create --client-id ID [settings], list, get ID, delete ID")
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	var spec provider.ClientSpec
	if verb == "create" {
		if spec, err = cfg.spec(std.in); err != nil {
			return ConfigError{"--secret-file: " + err.Error()}
		}
	}
	var clients clientsBackend
	if cfg.AdminURL != "" {
		clients = apiClients{newAdminAPI(cfg.AdminClient)}
	} else {
		store, err := openStore(ctx, cfg.StoreConfig, newLogger(ServeConfig{LogFormat: "text", LogLevel: "warn"}, std.err))
		if err != nil {
			return err
		}
		defer store.Close()
		clients = storeClients{store}
	}

	switch verb {
	case "create":
		v, generated, err := clients.create(ctx, spec)
		if err != nil {
			if errors.Is(err, storage.ErrAlreadyExists) {
				return fmt.Errorf("client %q already exists", spec.ID)
			}
			return err
		}
		if cfg.JSON {
			return printJSON(std.out, struct {
				provider.ClientView
				Secret string `json:"client_secret,omitempty"`
			}{v, generated})
		}
		fmt.Fprintf(std.out, "created client %s\n", v.ID)
		if generated != "" {
			fmt.Fprintf(std.out, "client_secret: %s\n(shown once: it is stored only as a hash)\n", generated)
		}
		return nil
	case "get":
		v, err := clients.get(ctx, rest[1])
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("no client %q", rest[1])
		}
		if err != nil {
			return err
		}
		return printJSON(std.out, v)
	case "delete":
		if err := clients.delete(ctx, rest[1]); errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("no client %q", rest[1])
		} else if err != nil {
			return err
		}
		fmt.Fprintf(std.out, "deleted client %s (running providers forget it within --client-cache-ttl)\n", rest[1])
		return nil
	default:
		views, err := clients.list(ctx)
		if err != nil {
			return err
		}
		if cfg.JSON {
			return printJSON(std.out, views)
		}
		w := tabwriter.NewWriter(std.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "CLIENT ID\tNAME\tTYPE\tGRANTS\tSCOPES")
		for _, v := range views {
			kind := "public"
			if v.Confidential {
				kind = "confidential"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", v.ID, v.Name, kind, strings.Join(v.GrantTypes, ","), strings.Join(v.Scopes, " "))
		}
		return w.Flush()
	}
}

// clientsBackend is where the clients command works: the store, or a
// running provider's admin API.
type clientsBackend interface {
	create(ctx context.Context, spec provider.ClientSpec) (provider.ClientView, string, error)
	get(ctx context.Context, id string) (provider.ClientView, error)
	list(ctx context.Context) ([]provider.ClientView, error)
	delete(ctx context.Context, id string) error
}

type storeClients struct{ s storage.Clients }

func (b storeClients) create(ctx context.Context, spec provider.ClientSpec) (provider.ClientView, string, error) {
	c, generated, err := spec.Build(time.Now())
	if err == nil {
		err = provider.SealClientSecret(nil, c, generated) // refuses client_secret_jwt: the CLI holds no key-encryption key
	}
	if err != nil {
		return provider.ClientView{}, "", ConfigError(strings.Split(err.Error(), "\n"))
	}
	if err := b.s.CreateClient(ctx, c); err != nil {
		return provider.ClientView{}, "", err
	}
	return provider.ViewClient(c), generated, nil
}

func (b storeClients) get(ctx context.Context, id string) (provider.ClientView, error) {
	c, err := b.s.GetClient(ctx, id)
	if err != nil {
		return provider.ClientView{}, err
	}
	return provider.ViewClient(c), nil
}

func (b storeClients) list(ctx context.Context) ([]provider.ClientView, error) {
	list, err := b.s.ListClients(ctx)
	views := make([]provider.ClientView, len(list))
	for i, c := range list {
		views[i] = provider.ViewClient(c)
	}
	return views, err
}

func (b storeClients) delete(ctx context.Context, id string) error { return b.s.DeleteClient(ctx, id) }

type apiClients struct{ a *adminAPI }

func (b apiClients) create(ctx context.Context, spec provider.ClientSpec) (provider.ClientView, string, error) {
	if _, _, err := spec.Build(time.Now()); err != nil { // the same errors, before the request
		return provider.ClientView{}, "", ConfigError(strings.Split(err.Error(), "\n"))
	}
	var out struct {
		provider.ClientView
		Secret string `json:"client_secret"`
	}
	err := b.a.call(ctx, http.MethodPost, "/admin/v1/clients", provider.AdminClientBody(spec), &out)
	return out.ClientView, out.Secret, err
}

func (b apiClients) get(ctx context.Context, id string) (v provider.ClientView, err error) {
	err = b.a.call(ctx, http.MethodGet, "/admin/v1/clients/"+url.PathEscape(id), nil, &v)
	return v, err
}

func (b apiClients) list(ctx context.Context) ([]provider.ClientView, error) {
	return pages[provider.ClientView](ctx, b.a, "/admin/v1/clients")
}

func (b apiClients) delete(ctx context.Context, id string) error {
	return b.a.call(ctx, http.MethodDelete, "/admin/v1/clients/"+url.PathEscape(id), nil, nil)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
