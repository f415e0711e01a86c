package main

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/valyala/fasthttp"
)

// EchoConfig configures `oidcgate echo`.
type EchoConfig struct {
	ServeConfig `yaml:",inline"`
	Addr        string `yaml:"addr" help:"address of the echo upstream"`
	Bare        bool   `yaml:"bare" help:"answer every request with an empty 200 (the ceiling in benchmarks)"`
}

// runEcho serves a demo upstream: every request gets its method, path and
// X-Auth-* headers back as JSON, so a newcomer sees what the edge forwards.
func runEcho(ctx context.Context, args []string, std stdio) error {
	cfg := EchoConfig{ServeConfig: defaultServeConfig(), Addr: "127.0.0.1:8001"}
	if _, err := load("echo", &cfg, args, std.env, std.out); err != nil {
		return err
	}
	var p problems
	p.addr("addr", cfg.Addr)
	cfg.ServeConfig.validate(&p)
	if err := p.err(); err != nil {
		return err
	}
	log := newLogger(cfg.ServeConfig, std.err)
	h := func(ctx *fasthttp.RequestCtx) {
		out := map[string]any{"method": string(ctx.Method()), "path": string(ctx.Path())}
		ids := map[string]string{}
		ctx.Request.Header.VisitAll(func(k, v []byte) {
			if strings.HasPrefix(strings.ToLower(string(k)), "x-auth-") {
				ids[string(k)] = string(v)
			}
		})
		out["identity"] = ids
		b, _ := json.MarshalIndent(out, "", "  ")
		ctx.SetContentType("application/json")
		ctx.SetBody(append(b, '\n'))
	}
	if cfg.Bare {
		h = func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(fasthttp.StatusOK) }
	}
	return runListeners(ctx, &lifecycle{}, []listener{{"echo", cfg.Addr, h, nil, cfg.ServeConfig}}, nil, cfg.ServeConfig, log)
}
