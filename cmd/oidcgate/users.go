package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// UsersCommandConfig configures `oidcgate users`.
type UsersCommandConfig struct {
	StoreConfig           `yaml:",inline"`
	OutputConfig          `yaml:",inline"`
	AdminClient           `yaml:",inline"`
	PasswordFile          string           `yaml:"password_file" help:"create, set-password: read the password from this file; - (the default) reads standard input, prompting on a terminal"`
	Claims                string           `yaml:"claims" help:"create: profile claims as a JSON object, e.g. {\"email\":\"a@example.com\",\"name\":\"A\"}"`
	provider.Argon2Params `yaml:",inline"` // the cost of the new hash
}

func (c *UsersCommandConfig) Validate() error {
	var p problems
	c.StoreConfig.validate(&p)
	c.AdminClient.validate(&p)
	if c.Claims != "" {
		var m map[string]any
		if err := json.Unmarshal([]byte(c.Claims), &m); err != nil {
			p.add("claims", "not a JSON object: %v", err)
		}
	}
	p.library(c.Argon2Params.Validate())
	return p.err()
}

// readPassword reads a password without putting it on a command line:
// from a file, or standard input (prompting, without echo, on a terminal).
func readPassword(path string, std stdio) (string, error) {
	if path == "" || path == "-" {
		if f, ok := std.in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			fmt.Fprint(std.err, "Password: ")
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(std.err)
			return string(b), err
		}
		path = "-"
	}
	return readSecret(path, std.in)
}

func runUsers(ctx context.Context, args []string, std stdio) error {
	cfg := UsersCommandConfig{StoreConfig: defaultStoreConfig(), Argon2Params: provider.DefaultArgon2()}
	rest, err := load("users", &cfg, args, std.env, std.out)
	if err != nil {
		return err
	}
	verb, err := parseVerb(rest, map[string]int{"create": 1, "list": 0, "delete": 1, "set-password": 1, "identities": 1, "unlink": 3,
		"factors": 1, "reset-mfa": 1},
		"create USERNAME, list, delete USERNAME, set-password USERNAME (passwords from standard input or --password-file), identities USERNAME, unlink USERNAME CONNECTOR SUBJECT, factors USERNAME, reset-mfa USERNAME")
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if verb == "create" && !provider.ValidUsername(rest[1]) {
		return ConfigError{fmt.Sprintf("username %q: 1-256 characters, no surrounding spaces or line breaks", rest[1])}
	}
	var password string
	if verb == "create" || verb == "set-password" {
		if password, err = readPassword(cfg.PasswordFile, std); err != nil {
			return fmt.Errorf("reading the password: %w", err)
		}
		if err := provider.ValidatePassword(password); err != nil {
			return ConfigError{err.Error()}
		}
	}
	var users usersBackend
	if cfg.AdminURL != "" {
		users = apiUsers{newAdminAPI(cfg.AdminClient)}
	} else {
		store, err := openStore(ctx, cfg.StoreConfig, newLogger(ServeConfig{LogFormat: "text", LogLevel: "warn"}, std.err))
		if err != nil {
			return err
		}
		defer store.Close()
		users = storeUsers{store, cfg.Argon2Params}
	}
	var u userJSON // the user the verb names, but for create and list
	if verb != "create" && verb != "list" {
		if u, err = users.find(ctx, rest[1]); errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("no user %q", rest[1])
		} else if err != nil {
			return err
		}
	}

	switch verb {
	case "create":
		var claims map[string]any
		if cfg.Claims != "" {
			json.Unmarshal([]byte(cfg.Claims), &claims) // validated
		}
		u, err := users.create(ctx, rest[1], password, claims)
		if errors.Is(err, storage.ErrAlreadyExists) {
			return fmt.Errorf("user %q already exists", rest[1])
		} else if err != nil {
			return err
		}
		if cfg.JSON {
			return printJSON(std.out, u)
		}
		fmt.Fprintf(std.out, "created user %s (sub %s)\n", u.Username, u.Sub)
		return nil
	case "reset-mfa":
		n, err := users.resetMFA(ctx, u.Sub)
		if err != nil {
			return err
		}
		fmt.Fprintf(std.out, "removed %d second factors and recovery codes of %s\n", n, u.Username)
		return nil
	case "factors":
		views, err := users.factors(ctx, u.Sub)
		if err != nil {
			return err
		}
		if cfg.JSON {
			return printJSON(std.out, views)
		}
		w := tabwriter.NewWriter(std.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "KIND\tNAME\tADDED\tLAST USED")
		for _, v := range views {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", v.Kind, v.Name, v.CreatedAt, v.LastUsedAt)
		}
		return w.Flush()
	case "unlink":
		if err := users.unlink(ctx, u.Sub, rest[2], rest[3]); errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("user %s has no identity %s at connector %s", u.Username, rest[3], rest[2])
		} else if err != nil {
			return err
		}
		fmt.Fprintf(std.out, "unlinked %s at %s from %s\n", rest[3], rest[2], u.Username)
		return nil
	case "identities":
		views, err := users.identities(ctx, u.Sub)
		if err != nil {
			return err
		}
		if cfg.JSON {
			return printJSON(std.out, views)
		}
		w := tabwriter.NewWriter(std.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "CONNECTOR\tSUBJECT\tLINKED\tLAST SIGN-IN")
		for _, v := range views {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", v.Connector, v.Subject, v.CreatedAt, v.LastLoginAt)
		}
		return w.Flush()
	case "delete":
		if err := users.delete(ctx, u.Sub); err != nil {
			return err
		}
		fmt.Fprintf(std.out, "deleted user %s\n", u.Username)
		return nil
	case "set-password":
		if err := users.setPassword(ctx, u.Sub, password); err != nil {
			return err
		}
		fmt.Fprintf(std.out, "password of %s changed\n", u.Username)
		return nil
	default:
		views, err := users.list(ctx)
		if err != nil {
			return err
		}
		if cfg.JSON {
			return printJSON(std.out, views)
		}
		w := tabwriter.NewWriter(std.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "USERNAME\tSUB\tDISABLED\tCREATED")
		for _, v := range views {
			fmt.Fprintf(w, "%s\t%s\t%v\t%s\n", v.Username, v.Sub, v.Disabled, v.Created)
		}
		return w.Flush()
	}
}

// usersBackend is where the users command works: the store, or a running
// provider's admin API.
type usersBackend interface {
	create(ctx context.Context, username, password string, claims map[string]any) (userJSON, error)
	find(ctx context.Context, username string) (userJSON, error)
	list(ctx context.Context) ([]userJSON, error)
	delete(ctx context.Context, sub string) error
	setPassword(ctx context.Context, sub, password string) error
	identities(ctx context.Context, sub string) ([]provider.IdentityView, error)
	unlink(ctx context.Context, sub, connector, subject string) error
	factors(ctx context.Context, sub string) ([]provider.FactorView, error)
	resetMFA(ctx context.Context, sub string) (int, error)
}

type storeUsers struct {
	s    storage.Storage
	cost provider.Argon2Params
}

func (b storeUsers) create(ctx context.Context, username, password string, claims map[string]any) (userJSON, error) {
	hash, err := provider.HashPassword(password, b.cost)
	if err != nil {
		return userJSON{}, err
	}
	now := time.Now()
	u := &storage.User{ID: provider.NewUserID(), Username: username, PasswordHash: hash, Claims: claims, CreatedAt: now, UpdatedAt: now}
	return userView(u), b.s.CreateUser(ctx, u)
}

func (b storeUsers) find(ctx context.Context, username string) (userJSON, error) {
	u, err := b.s.GetUserByUsername(ctx, username)
	if err != nil {
		return userJSON{}, err
	}
	return userView(u), nil
}

func (b storeUsers) list(ctx context.Context) ([]userJSON, error) {
	list, err := b.s.ListUsers(ctx)
	views := make([]userJSON, len(list))
	for i, u := range list {
		views[i] = userView(u)
	}
	return views, err
}

func (b storeUsers) delete(ctx context.Context, sub string) error { return b.s.DeleteUser(ctx, sub) }

func (b storeUsers) setPassword(ctx context.Context, sub, password string) error {
	u, err := b.s.GetUser(ctx, sub)
	if err != nil {
		return err
	}
	if u.PasswordHash, err = provider.HashPassword(password, b.cost); err != nil {
		return err
	}
	u.UpdatedAt = time.Now()
	return b.s.UpdateUser(ctx, u)
}

func (b storeUsers) identities(ctx context.Context, sub string) ([]provider.IdentityView, error) {
	links, err := b.s.ListIdentities(ctx, sub)
	return provider.ViewIdentities(links), err
}

func (b storeUsers) unlink(ctx context.Context, sub, connector, subject string) error {
	return provider.UnlinkIdentity(ctx, b.s, sub, connector, subject)
}

func (b storeUsers) factors(ctx context.Context, sub string) ([]provider.FactorView, error) {
	f, err := b.s.ListFactors(ctx, sub)
	return provider.ViewFactors(f), err
}

func (b storeUsers) resetMFA(ctx context.Context, sub string) (int, error) {
	return provider.ResetFactors(ctx, b.s, sub, "")
}

type apiUsers struct{ a *adminAPI }

func (b apiUsers) path(sub, rest string) string {
	return "/admin/v1/users/" + url.PathEscape(sub) + rest
}

func (b apiUsers) create(ctx context.Context, username, password string, claims map[string]any) (userJSON, error) {
	var v provider.UserView
	err := b.a.call(ctx, http.MethodPost, "/admin/v1/users", map[string]any{"username": username, "password": password, "claims": claims}, &v)
	return fromView(v), err
}

func (b apiUsers) find(ctx context.Context, username string) (userJSON, error) {
	all, err := pages[provider.UserView](ctx, b.a, "/admin/v1/users?q="+url.QueryEscape(username))
	if err != nil {
		return userJSON{}, err
	}
	for _, v := range all {
		if v.Username == username {
			return fromView(v), nil
		}
	}
	return userJSON{}, storage.ErrNotFound
}

func (b apiUsers) list(ctx context.Context) ([]userJSON, error) {
	all, err := pages[provider.UserView](ctx, b.a, "/admin/v1/users")
	out := make([]userJSON, len(all))
	for i, v := range all {
		out[i] = fromView(v)
	}
	return out, err
}

func (b apiUsers) delete(ctx context.Context, sub string) error {
	return b.a.call(ctx, http.MethodDelete, b.path(sub, ""), nil, nil)
}

func (b apiUsers) setPassword(ctx context.Context, sub, password string) error {
	return b.a.call(ctx, http.MethodPut, b.path(sub, "/password"), map[string]string{"password": password}, nil)
}

func (b apiUsers) identities(ctx context.Context, sub string) (v []provider.IdentityView, err error) {
	err = b.a.call(ctx, http.MethodGet, b.path(sub, "/identities"), nil, &v)
	return v, err
}

func (b apiUsers) unlink(ctx context.Context, sub, connector, subject string) error {
	return b.a.call(ctx, http.MethodDelete, b.path(sub, "/identities?connector="+url.QueryEscape(connector)+"&subject="+url.QueryEscape(subject)), nil, nil)
}

func (b apiUsers) factors(ctx context.Context, sub string) (v []provider.FactorView, err error) {
	err = b.a.call(ctx, http.MethodGet, b.path(sub, "/factors"), nil, &v)
	return v, err
}

func (b apiUsers) resetMFA(ctx context.Context, sub string) (int, error) {
	var out struct {
		Removed int `json:"removed"`
	}
	err := b.a.call(ctx, http.MethodDelete, b.path(sub, "/factors"), nil, &out)
	return out.Removed, err
}

// fromView is an admin API user as the CLI shows users.
func fromView(v provider.UserView) userJSON {
	claims := v.Claims
	if len(claims) == 0 {
		claims = nil
	}
	return userJSON{Sub: v.Sub, Username: v.Username, Claims: claims, Disabled: v.Disabled, Created: v.CreatedAt}
}

// userJSON is a user as the CLI shows it: never the password hash.
type userJSON struct {
	Sub      string         `json:"sub"`
	Username string         `json:"username"`
	Claims   map[string]any `json:"claims,omitempty"`
	Disabled bool           `json:"disabled"`
	Created  string         `json:"created"`
}

func userView(u *storage.User) userJSON {
	return userJSON{Sub: u.ID, Username: u.Username, Claims: u.Claims, Disabled: u.Disabled, Created: u.CreatedAt.Format(time.RFC3339)}
}
