package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	PasswordFile          string           `yaml:"password_file" help:"create, set-password: read the password from this file; - (the default) reads standard input, prompting on a terminal"`
	Claims                string           `yaml:"claims" help:"create: profile claims as a JSON object, e.g. {\"email\":\"a@example.com\",\"name\":\"A\"}"`
	provider.Argon2Params `yaml:",inline"` // the cost of the new hash
}

func (c *UsersCommandConfig) Validate() error {
	var p problems
	c.StoreConfig.validate(&p)
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
	var hash string
	if verb == "create" || verb == "set-password" {
		pw, err := readPassword(cfg.PasswordFile, std)
		if err != nil {
			return fmt.Errorf("reading the password: %w", err)
		}
		if err := provider.ValidatePassword(pw); err != nil {
			return ConfigError{err.Error()}
		}
		if hash, err = provider.HashPassword(pw, cfg.Argon2Params); err != nil {
			return err
		}
	}
	store, err := openStore(ctx, cfg.StoreConfig, newLogger(ServeConfig{LogFormat: "text", LogLevel: "warn"}, std.err))
	if err != nil {
		return err
	}
	defer store.Close()
	now := time.Now()
	var u *storage.User // the user the verb names, but for create and list
	if verb != "create" && verb != "list" {
		if u, err = store.GetUserByUsername(ctx, rest[1]); errors.Is(err, storage.ErrNotFound) {
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
		u := &storage.User{ID: provider.NewUserID(), Username: rest[1], PasswordHash: hash, Claims: claims, CreatedAt: now, UpdatedAt: now}
		if err := store.CreateUser(ctx, u); errors.Is(err, storage.ErrAlreadyExists) {
			return fmt.Errorf("user %q already exists", rest[1])
		} else if err != nil {
			return err
		}
		if cfg.JSON {
			return printJSON(std.out, userView(u))
		}
		fmt.Fprintf(std.out, "created user %s (sub %s)\n", u.Username, u.ID)
		return nil
	case "factors", "reset-mfa":
		if verb == "reset-mfa" {
			n, err := provider.ResetFactors(ctx, store, u.ID, "")
			if err != nil {
				return err
			}
			fmt.Fprintf(std.out, "removed %d second factors and recovery codes of %s\n", n, u.Username)
			return nil
		}
		factors, err := store.ListFactors(ctx, u.ID)
		if err != nil {
			return err
		}
		views := provider.ViewFactors(factors)
		if cfg.JSON {
			return printJSON(std.out, views)
		}
		w := tabwriter.NewWriter(std.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "KIND\tNAME\tADDED\tLAST USED")
		for _, v := range views {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", v.Kind, v.Name, v.CreatedAt, v.LastUsedAt)
		}
		return w.Flush()
	case "identities", "unlink":
		if verb == "unlink" {
			if err := provider.UnlinkIdentity(ctx, store, u.ID, rest[2], rest[3]); errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("user %s has no identity %s at connector %s", u.Username, rest[3], rest[2])
			} else if err != nil {
				return err
			}
			fmt.Fprintf(std.out, "unlinked %s at %s from %s\n", rest[3], rest[2], u.Username)
			return nil
		}
		links, err := store.ListIdentities(ctx, u.ID)
		if err != nil {
			return err
		}
		views := provider.ViewIdentities(links)
		if cfg.JSON {
			return printJSON(std.out, views)
		}
		w := tabwriter.NewWriter(std.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "CONNECTOR\tSUBJECT\tLINKED\tLAST SIGN-IN")
		for _, v := range views {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", v.Connector, v.Subject, v.CreatedAt, v.LastLoginAt)
		}
		return w.Flush()
	case "set-password", "delete":
		if verb == "delete" {
			if err := store.DeleteUser(ctx, u.ID); err != nil {
				return err
			}
			fmt.Fprintf(std.out, "deleted user %s\n", u.Username)
			return nil
		}
		u.PasswordHash, u.UpdatedAt = hash, now
		if err := store.UpdateUser(ctx, u); err != nil {
			return err
		}
		fmt.Fprintf(std.out, "password of %s changed\n", u.Username)
		return nil
	default:
		list, err := store.ListUsers(ctx)
		if err != nil {
			return err
		}
		views := make([]userJSON, len(list))
		for i, u := range list {
			views[i] = userView(u)
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
