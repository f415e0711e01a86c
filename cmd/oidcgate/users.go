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
	StoreConfig   `yaml:",inline"`
	JSON          bool   `yaml:"json" help:"print machine-readable JSON"`
	PasswordFile  string `yaml:"password_file" help:"create, set-password: read the password from this file; - (the default) reads standard input, prompting on a terminal"`
	Claims        string `yaml:"claims" help:"create: profile claims as a JSON object, e.g. {\"email\":\"a@example.com\",\"name\":\"A\"}"`
	Argon2Time    int    `yaml:"argon2_time" help:"argon2id passes for the new hash"`
	Argon2Memory  int    `yaml:"argon2_memory_kib" help:"argon2id memory in KiB for the new hash"`
	Argon2Threads int    `yaml:"argon2_threads" help:"argon2id parallelism for the new hash"`
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
	if err := c.argon2().Validate(); err != nil {
		p.add("argon2_time", "%v", err)
	}
	return p.err()
}

func (c *UsersCommandConfig) argon2() provider.Argon2Params {
	return provider.Argon2Params{Time: uint32(c.Argon2Time), Memory: uint32(c.Argon2Memory), Threads: uint8(c.Argon2Threads)}
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
	cfg := UsersCommandConfig{StoreConfig: defaultStoreConfig(), Argon2Time: int(provider.DefaultArgon2.Time),
		Argon2Memory: int(provider.DefaultArgon2.Memory), Argon2Threads: int(provider.DefaultArgon2.Threads)}
	rest, err := load("users", &cfg, args, std.env, std.out)
	if err != nil {
		return err
	}
	verb, err := parseVerb(rest, map[string]int{"create": 1, "list": 0, "delete": 1, "set-password": 1},
		"create USERNAME, list, delete USERNAME, set-password USERNAME (passwords from standard input or --password-file)")
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
		if len(pw) < 8 {
			return ConfigError{"the password must have at least 8 characters"}
		}
		if hash, err = provider.HashPassword(pw, cfg.argon2()); err != nil {
			return err
		}
	}
	store, err := openStore(ctx, cfg.StoreConfig, newLogger(ServeConfig{LogFormat: "text", LogLevel: "warn"}, std.err))
	if err != nil {
		return err
	}
	defer store.Close()
	now := time.Now()

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
	case "set-password", "delete":
		u, err := store.GetUserByUsername(ctx, rest[1])
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("no user %q", rest[1])
		}
		if err != nil {
			return err
		}
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
