package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/oidcgate/oidcgate/migrations"
	"github.com/oidcgate/oidcgate/provider/storage/postgres"
)

func runMigrate(ctx context.Context, args []string, std stdio) error {
	var cfg MigrateConfig
	rest, err := load("migrate", &cfg, args, std.env, std.out)
	if err != nil {
		return err
	}
	if len(rest) != 1 || (rest[0] != "up" && rest[0] != "down" && rest[0] != "status") {
		return ConfigError{"want exactly one of: up, down, status (e.g. `oidcgate migrate up --database-url …`)"}
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	pool, err := postgres.Connect(ctx, postgres.Config{URL: cfg.DatabaseURL})
	if err != nil {
		return err
	}
	defer pool.Close()

	switch rest[0] {
	case "up":
		applied, err := migrations.Up(ctx, pool)
		for _, m := range applied {
			fmt.Fprintf(std.out, "applied %04d_%s\n", m.Version, m.Name)
		}
		if err == nil && len(applied) == 0 {
			fmt.Fprintln(std.out, "schema is up to date")
		}
		return err
	case "down":
		m, err := migrations.Down(ctx, pool)
		if errors.Is(err, migrations.ErrNothingApplied) {
			fmt.Fprintln(std.out, "nothing to revert")
			return nil
		}
		if err == nil {
			fmt.Fprintf(std.out, "reverted %04d_%s\n", m.Version, m.Name)
		}
		return err
	default:
		states, err := migrations.Status(ctx, pool)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(std.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "VERSION\tNAME\tAPPLIED")
		for _, s := range states {
			at := "pending"
			if !s.AppliedAt.IsZero() {
				at = s.AppliedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%04d\t%s\t%s\n", s.Version, s.Name, at)
		}
		return w.Flush()
	}
}
