package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/oidcgate/oidcgate/provider"
)

// ConnectorsCommandConfig configures `oidcgate connectors`: the provider's
// own configuration (the same --config file), for its connectors.
type ConnectorsCommandConfig struct {
	ProviderConfig `yaml:",inline"`
	OutputConfig   `yaml:",inline"`
}

// runConnectors checks each configured connector from where it runs:
// discovery (oidc), the API root (github), a service bind (ldap). A
// running provider reports its own view at GET /admin/v1/connectors.
func runConnectors(ctx context.Context, args []string, std stdio) error {
	cfg := ConnectorsCommandConfig{ProviderConfig: defaultProviderConfig()}
	rest, err := load("connectors", &cfg, args, std.env, std.out)
	if err != nil {
		return err
	}
	if _, err := parseVerb(rest, map[string]int{"list": 0}, "list"); err != nil {
		return err
	}
	var p problems
	p.library(cfg.Config.Validate())
	if err := p.err(); err != nil {
		return err
	}
	statuses, err := provider.CheckConnectors(ctx, cfg.Config)
	if err != nil {
		return err
	}
	unhealthy := 0
	for _, s := range statuses {
		if !s.Healthy {
			unhealthy++
		}
	}
	if unhealthy > 0 {
		err = fmt.Errorf("%d of %d connectors unreachable", unhealthy, len(statuses))
	}
	if cfg.JSON {
		if perr := printJSON(std.out, statuses); perr != nil {
			return perr
		}
		return err
	}
	if len(statuses) == 0 {
		fmt.Fprintln(std.out, "no connectors configured (add a connectors: list to the --config file; see docs/connectors.md)")
		return nil
	}
	w := tabwriter.NewWriter(std.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTYPE\tNAME\tHEALTH\tLATENCY")
	for _, s := range statuses {
		health := "ok"
		if !s.Healthy {
			health = "unreachable: " + s.Error
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Type, s.Name, health, s.Latency)
	}
	if ferr := w.Flush(); ferr != nil {
		return ferr
	}
	return err
}
