package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/oidcgate/oidcgate/keys"
)

// runKeys is `oidcgate keys list|rotate|revoke KID`, on the configured store.
func runKeys(ctx context.Context, args []string, std stdio) error {
	cfg := KeysCommandConfig{StoreConfig: defaultStoreConfig(), KeysConfig: defaultKeysConfig()}
	rest, err := load("keys", &cfg, args, std.env, std.out)
	if err != nil {
		return err
	}
	verb, err := parseVerb(rest, map[string]int{"list": 0, "rotate": 0, "revoke": 1}, "list, rotate [--alg ALG], revoke KID")
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.AdminURL != "" {
		return keysViaAdmin(ctx, cfg, verb, rest, std)
	}
	log := newLogger(ServeConfig{LogFormat: "text", LogLevel: "warn"}, std.err)
	store, err := openStore(ctx, cfg.StoreConfig, log)
	if err != nil {
		return err
	}
	defer store.Close()
	ringCfg, _, err := cfg.KeysConfig.ringConfig(cfg.DataDir)
	if err != nil {
		return err
	}
	ring, err := keys.NewRing(ctx, ringCfg, store, log, time.Now)
	if err != nil {
		return err
	}

	switch verb {
	case "rotate":
		alg := cfg.Alg
		if alg == "" {
			alg = ringCfg.Algs[0]
		}
		staged, err := ring.Rotate(ctx, alg)
		if err != nil {
			return err
		}
		fmt.Fprintf(std.err, "staged %s (%s): published now, signs from %s\n", staged.ID, staged.Alg, staged.ActivatesAt.Format(time.RFC3339))
	case "revoke":
		if err := ring.Revoke(ctx, rest[1]); err != nil {
			return err
		}
		fmt.Fprintf(std.err, "revoked %s: removed from the JWKS; replicas drop it within %s\n", rest[1], cfg.ReloadInterval)
	}
	return printKeys(std, ring.Keys(), cfg.JSON)
}

func printKeys(std stdio, recs []keys.Record, asJSON bool) error {
	if asJSON {
		type row struct {
			KID         string     `json:"kid"`
			Alg         string     `json:"alg"`
			State       keys.State `json:"state"`
			Created     time.Time  `json:"created"`
			Activates   time.Time  `json:"activates"`
			Retires     *time.Time `json:"retires,omitempty"`
			RemovedFrom *time.Time `json:"removed_from_jwks,omitempty"`
		}
		rows := make([]row, len(recs))
		for i, r := range recs {
			rows[i] = row{KID: r.ID, Alg: r.Alg, State: r.State, Created: r.CreatedAt, Activates: r.ActivatesAt}
			if !r.RetiresAt.IsZero() {
				rows[i].Retires, rows[i].RemovedFrom = &recs[i].RetiresAt, &recs[i].RemoveAt
			}
		}
		enc := json.NewEncoder(std.out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	w := tabwriter.NewWriter(std.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KID\tALG\tSTATE\tCREATED\tACTIVATES\tRETIRES")
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, r := range recs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Alg, r.State, ts(r.CreatedAt), ts(r.ActivatesAt), ts(r.RetiresAt))
	}
	return w.Flush()
}

// keysViaAdmin runs a keys command through a provider's admin API.
func keysViaAdmin(ctx context.Context, cfg KeysCommandConfig, verb string, rest []string, std stdio) error {
	method, path := http.MethodGet, "/admin/v1/keys"
	switch verb {
	case "rotate":
		method, path = http.MethodPost, "/admin/v1/keys/rotate?alg="+url.QueryEscape(cfg.Alg)
	case "revoke":
		method, path = http.MethodPost, "/admin/v1/keys/"+url.PathEscape(rest[1])+"/revoke"
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(cfg.AdminURL, "/")+path, nil)
	if err != nil {
		return err
	}
	if cfg.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.AdminToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		dec.Decode(&e)
		return fmt.Errorf("admin API: %s: %s %s", resp.Status, e.Error, e.Description)
	}
	var views []struct {
		KID       string `json:"kid"`
		Alg       string `json:"alg"`
		State     string `json:"state"`
		CreatedAt string `json:"created_at"`
		Activates string `json:"activates_at"`
		Retires   string `json:"retires_at"`
	}
	if err := dec.Decode(&views); err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if verb == "revoke" {
		fmt.Fprintf(std.err, "revoked %s: removed from the JWKS, no longer signing in that provider; other replicas drop it within their reload interval\n", rest[1])
	}
	recs := make([]keys.Record, len(views))
	for i, v := range views {
		recs[i] = keys.Record{ID: v.KID, Alg: v.Alg, State: keys.State(v.State)}
		recs[i].CreatedAt, _ = time.Parse(time.RFC3339, v.CreatedAt)
		recs[i].ActivatesAt, _ = time.Parse(time.RFC3339, v.Activates)
		recs[i].RetiresAt, _ = time.Parse(time.RFC3339, v.Retires)
	}
	return printKeys(std, recs, cfg.JSON)
}
