package main

import (
	"strings"
	"testing"

	"github.com/oidcgate/oidcgate/provider/storage/postgres/pgtest"
)

func TestMigrateCommand(t *testing.T) {
	url := pgtest.SchemaURL(t)
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "status"}, "pending"},
		{[]string{"migrate", "up"}, "applied 0001_init\napplied 0002_access_tokens\napplied 0003_interactions\napplied 0004_identities\napplied 0005_factors\napplied 0006_admin_tokens\napplied 0007_audit_events\napplied 0008_assertions\napplied 0009_logout_deliveries\napplied 0010_revocation_seq"},
		{[]string{"migrate", "up"}, "schema is up to date"},
		{[]string{"migrate", "down"}, "reverted 0010_revocation_seq"},
		{[]string{"migrate", "down"}, "reverted 0009_logout_deliveries"},
		{[]string{"migrate", "down"}, "reverted 0008_assertions"},
		{[]string{"migrate", "down"}, "reverted 0007_audit_events"},
		{[]string{"migrate", "down"}, "reverted 0006_admin_tokens"},
		{[]string{"migrate", "down"}, "reverted 0005_factors"},
		{[]string{"migrate", "status"}, "0005     factors            pending"},
		{[]string{"migrate", "down"}, "reverted 0004_identities"},
		{[]string{"migrate", "status"}, "0004     identities         pending"},
		{[]string{"migrate", "down"}, "reverted 0003_interactions"},
		{[]string{"migrate", "status"}, "0003     interactions       pending"},
		{[]string{"migrate", "down"}, "reverted 0002_access_tokens"},
		{[]string{"migrate", "down"}, "reverted 0001_init"},
		{[]string{"migrate", "down"}, "nothing to revert"},
		{[]string{"migrate", "up"}, "applied 0001_init"},
	}
	for _, s := range steps {
		code, out, stderr := runCmd(t, env("OIDCGATE_DATABASE_URL", url), s.args...)
		if code != 0 || !strings.Contains(out, s.want) {
			t.Fatalf("%v: exit %d, stdout %q (want %q), stderr %q", s.args, code, out, s.want, stderr)
		}
	}
	code, out, _ := runCmd(t, nil, "migrate", "status", "--database-url", url)
	if code != 0 || strings.Contains(out, "pending") || !strings.Contains(out, "init") {
		t.Errorf("status after up: %d %q", code, out)
	}
}

func TestProviderRefusesSchemaBehind(t *testing.T) {
	url := pgtest.SchemaURL(t)
	code, _, stderr := runCmd(t, env("OIDCGATE_DATABASE_URL", url), "provider",
		"--public-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, "oidcgate migrate up") {
		t.Errorf("exit %d, stderr %q; want 1 and a message naming `oidcgate migrate up`", code, stderr)
	}
}
