package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage"
)

// AdminTokensCommandConfig configures `oidcgate admin-tokens`.
type AdminTokensCommandConfig struct {
	StoreConfig  `yaml:",inline"`
	OutputConfig `yaml:",inline"`
	Name         string        `yaml:"name" help:"create: who or what will hold the token (unique), e.g. deploy-pipeline"`
	TTL          time.Duration `yaml:"ttl" help:"create: the token expires after this long; 0: when revoked"`
	Registration bool          `yaml:"registration" help:"create: an initial access token for dynamic client registration (--registration token), which opens nothing else"`
}

func (c *AdminTokensCommandConfig) Validate() error {
	var p problems
	c.StoreConfig.validate(&p)
	if c.TTL < 0 {
		p.add("ttl", "must not be negative")
	}
	return p.err()
}

// runAdminTokens is `oidcgate admin-tokens create --name NAME | list |
// revoke NAME`, on the configured store: the first token can only be made
// there, before the admin API can be reached.
func runAdminTokens(ctx context.Context, args []string, std stdio) error {
	cfg := AdminTokensCommandConfig{StoreConfig: defaultStoreConfig()}
	rest, err := load("admin-tokens", &cfg, args, std.env, std.out)
	if err != nil {
		return err
	}
	verb, err := parseVerb(rest, map[string]int{"create": 0, "list": 0, "revoke": 1}, "create --name NAME [--ttl DURATION], list, revoke NAME")
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if verb == "create" && cfg.Name == "" {
		return ConfigError{"create needs --name: who or what will hold the token"}
	}
	store, err := openStore(ctx, cfg.StoreConfig, newLogger(ServeConfig{LogFormat: "text", LogLevel: "warn"}, std.err))
	if err != nil {
		return err
	}
	defer store.Close()
	switch verb {
	case "create":
		token, rec := provider.NewAdminToken(cfg.Name, cfg.TTL, time.Now())
		if cfg.Registration {
			rec.Kind = storage.TokenKindRegistration
		}
		if err := store.CreateAdminToken(ctx, rec); errors.Is(err, storage.ErrAlreadyExists) {
			return fmt.Errorf("an admin token named %q exists: revoke it first, or choose another name", cfg.Name)
		} else if err != nil {
			return err
		}
		fmt.Fprintln(std.out, token)
		fmt.Fprintf(std.err, "created admin token %q: it is shown only now (stored as a hash); send it as Authorization: Bearer …\n", cfg.Name)
		return nil
	case "revoke":
		list, err := store.ListAdminTokens(ctx)
		if err != nil {
			return err
		}
		for _, t := range list {
			if t.Name == rest[1] {
				if err := store.DeleteAdminToken(ctx, t.ID); err != nil {
					return err
				}
				fmt.Fprintf(std.out, "revoked admin token %q\n", t.Name)
				return nil
			}
		}
		return fmt.Errorf("no admin token named %q", rest[1])
	}
	list, err := store.ListAdminTokens(ctx)
	if err != nil {
		return err
	}
	views := make([]provider.AdminTokenView, len(list))
	for i, t := range list {
		views[i] = provider.ViewAdminToken(t, time.Now())
	}
	if cfg.JSON {
		return printJSON(std.out, views)
	}
	w := tabwriter.NewWriter(std.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tKIND\tCREATED\tEXPIRES")
	for _, v := range views {
		exp := v.ExpiresAt
		if exp == "" {
			exp = "never"
		}
		if v.Expired {
			exp += " (expired)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", v.Name, v.Kind, v.CreatedAt, exp)
	}
	return w.Flush()
}
