// Command oidcgate is one binary for the OpenID Connect provider, the edge
// gateway and their operator tools. It only wires: load configuration,
// validate it, construct the parts, run them.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// exitUsage is the status for bad configuration or usage.
const exitUsage = 2

// stdio is the process's standard streams and environment, injected for
// tests; commands name it std, leaving the io package its name.
type stdio struct {
	in       io.Reader
	out, err io.Writer
	env      func(string) string
}

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, std stdio) error
}

func commands() []command {
	return []command{
		{"provider", "run the OpenID Connect provider", runProvider},
		{"edge", "run the edge gateway: token validation, reverse proxy and forward-auth", runEdge},
		{"all", "run the provider and an edge in one process", runAll},
		{"echo", "run a tiny upstream that echoes the identity headers it gets (for demos)", runEcho},
		{"clients", "create, list, get or delete clients (create --client-id ID … | list | get ID | delete ID)", runClients},
		{"users", "create, list or delete users, set a password, list or unlink upstream identities (create NAME | list | delete NAME | set-password NAME | identities NAME | unlink NAME CONNECTOR SUBJECT)", runUsers},
		{"connectors", "list the configured upstream connectors and check that each answers (list, with the provider's --config)", runConnectors},
		{"keys", "list, rotate or revoke signing keys (list | rotate [--alg ALG] | revoke KID)", runKeys},
		{"admin-tokens", "create, list or revoke the admin API's bearer tokens (create --name NAME [--ttl D] | list | revoke NAME)", runAdminTokens},
		{"bench", "load-test a provider or an edge: token, introspect, jwks, discovery, edge (exits non-zero on any unexpected answer)", runBench},
		{"migrate", "apply, revert or list PostgreSQL schema migrations (up|down|status)", runMigrate},
		{"version", "print the version", func(_ context.Context, _ []string, std stdio) error {
			fmt.Fprintf(std.out, "oidcgate %s (%s)\n", version, runtime.Version())
			return nil
		}},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: oidcgate COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `oidcgate COMMAND --help` for the settings of each.")
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, std stdio) int {
	if len(args) == 0 {
		usage(std.err)
		return exitUsage
	}
	if args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		usage(std.out)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], std)
		var cerr ConfigError
		switch {
		case err == nil, errors.Is(err, errHelp):
			return 0
		case errors.As(err, &cerr):
			for _, line := range cerr {
				fmt.Fprintf(std.err, "oidcgate %s: %s\n", c.name, line)
			}
			return exitUsage
		default:
			fmt.Fprintf(std.err, "oidcgate %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(std.err, "oidcgate: unknown command %q\n\n", args[0])
	usage(std.err)
	return exitUsage
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	code := run(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr, env: os.Getenv})
	stop()
	os.Exit(code)
}
