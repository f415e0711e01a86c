package main

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestEachSettingDeclaredOnce walks every command's config type: each
// setting has a name (its yaml key, from which the flag and environment
// names derive), help, and a default shown by --help; and each is declared
// by one struct field in the whole source. A second field with the same
// name and meaning (the same help) is a copy that can drift, as the
// provider's settings once were copied into cmd; the same name for
// another meaning in another command (the edge's --issuer, the issuer it
// trusts; bench's --client-id) is not.
func TestEachSettingDeclaredOnce(t *testing.T) {
	commands := map[string]any{
		"provider": &ProviderConfig{}, "all": &AllConfig{}, "edge": &EdgeConfig{}, "keys": &KeysCommandConfig{},
		"clients": &ClientsCommandConfig{}, "users": &UsersCommandConfig{}, "migrate": &MigrateConfig{},
		"bench": &BenchConfig{}, "echo": &EchoConfig{}, "connectors": &ConnectorsCommandConfig{},
	}
	key := regexp.MustCompile(`^[a-z][a-z0-9_]*[a-z0-9]$`)
	type decl struct{ where, help string }
	declared := map[string]decl{} // yaml key → the struct field declaring it
	for name, cfg := range commands {
		seen, fileOnly := map[string]bool{}, map[string]bool{}
		var walk func(t0 reflect.Type)
		walk = func(t0 reflect.Type) {
			for i := range t0.NumField() {
				f := t0.Field(i)
				k, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
				if opts == "inline" {
					walk(f.Type)
					continue
				}
				if k == "-" {
					continue
				}
				where := t0.PkgPath() + "." + t0.Name() + "." + f.Name
				switch {
				case !key.MatchString(k):
					t.Errorf("%s: %s has no valid yaml name (%q)", name, where, k)
				case f.Tag.Get("help") == "":
					t.Errorf("%s: --%s (%s) has no help", name, strings.ReplaceAll(k, "_", "-"), where)
				case seen[k]:
					t.Errorf("%s: --%s is declared twice in one command", name, k)
				}
				seen[k] = true
				fileOnly[k] = f.Tag.Get("file") == "only"
				if prior, ok := declared[k]; ok && prior.where != where && prior.help == f.Tag.Get("help") {
					t.Errorf("setting %s is declared twice: %s and %s", k, prior.where, where)
				}
				declared[k] = decl{where, f.Tag.Get("help")}
			}
		}
		walk(reflect.TypeOf(cfg).Elem())
		// --help shows every setting with its environment name and default.
		code, out, _ := runCmd(t, nil, name, "--help")
		if code != 0 {
			t.Fatalf("%s --help: exit %d", name, code)
		}
		for k := range seen {
			flag := "--" + strings.ReplaceAll(k, "_", "-") + "  (env OIDCGATE_" + strings.ToUpper(k) + ", yaml " + k + ", default "
			if fileOnly[k] { // a structure: the YAML file's only
				flag = "  " + k + ":  (YAML file only)"
			}
			if !strings.Contains(out, flag) {
				t.Errorf("%s --help does not list %q", name, flag)
			}
		}
	}
	if len(declared) < 60 {
		t.Errorf("only %d settings found: the walk missed some", len(declared))
	}
}
