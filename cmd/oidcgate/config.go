package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Settings are declared as fields of a config struct with a `yaml` tag
// (the file key), a `help` tag, and optionally `secret:"true"`. The flag
// and environment names derive from the YAML key: public_addr →
// --public-addr and OIDCGATE_PUBLIC_ADDR. A secret may also be read from a
// file named by --NAME-file / OIDCGATE_NAME_FILE. Precedence: the struct's
// defaults < the YAML file (--config) < environment < flags.

// setting is one leaf field of a config struct.
type setting struct {
	key    string // yaml key
	help   string
	secret bool
	field  reflect.Value
}

func (s setting) flagName() string { return strings.ReplaceAll(s.key, "_", "-") }
func (s setting) envName() string  { return "OIDCGATE_" + strings.ToUpper(s.key) }

// settings lists the leaf fields of *cfg, descending into structs tagged
// `yaml:",inline"`.
func settings(cfg any) []setting {
	var out []setting
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			key, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if opts == "inline" {
				walk(v.Field(i))
				continue
			}
			if key == "" || key == "-" || f.Tag.Get("file") == "only" {
				continue // a structure the YAML file alone can hold
			}
			out = append(out, setting{key: key, help: f.Tag.Get("help"), secret: f.Tag.Get("secret") == "true", field: v.Field(i)})
		}
	}
	walk(reflect.ValueOf(cfg).Elem())
	return out
}

var durationType = reflect.TypeOf(time.Duration(0))

// set parses raw into the field.
func (s setting) set(raw string) error {
	f := s.field
	switch {
	case f.Type() == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("not a duration like 15m or 1h30m: %q", raw)
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(raw)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("not true or false: %q", raw)
		}
		f.SetBool(b)
	case f.Kind() == reflect.Int || f.Kind() == reflect.Int32 || f.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, f.Type().Bits())
		if err != nil {
			return fmt.Errorf("not a whole number: %q", raw)
		}
		f.SetInt(n)
	case f.Kind() == reflect.Uint8 || f.Kind() == reflect.Uint32:
		n, err := strconv.ParseUint(raw, 10, f.Type().Bits())
		if err != nil {
			return fmt.Errorf("not a whole number from 0 to %d: %q", uint64(1)<<f.Type().Bits()-1, raw)
		}
		f.SetUint(n)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		var parts []string
		for _, p := range strings.Split(raw, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		f.Set(reflect.ValueOf(parts))
	default:
		panic(fmt.Sprintf("config: unsupported type %s for %s", f.Type(), s.key))
	}
	return nil
}

func (s setting) String() string {
	f := s.field
	switch {
	case s.secret && !f.IsZero():
		return "(set)"
	case f.Type() == durationType:
		return time.Duration(f.Int()).String()
	case f.Kind() == reflect.Slice:
		return strings.Join(f.Interface().([]string), ",")
	}
	return fmt.Sprint(f.Interface())
}

// recorded holds a flag's raw value until the file and environment have
// been applied beneath it.
type recorded struct {
	isBool bool
	raw    *[]string
}

func (r recorded) String() string { return "" }
func (r recorded) Set(v string) error {
	*r.raw = append(*r.raw, v)
	return nil
}
func (r recorded) IsBoolFlag() bool { return r.isBool }

// ConfigError lists every bad setting, one per line.
type ConfigError []string

func (e ConfigError) Error() string { return strings.Join(e, "\n") }

// errHelp is returned when --help was asked for; usage has been printed.
var errHelp = errors.New("help requested")

// load fills cfg (holding its defaults) from the YAML file, environment and
// args, in that order of precedence, and returns the positional arguments.
// Every problem is collected into one ConfigError.
func load(cmd string, cfg any, args []string, env func(string) string, usage io.Writer) ([]string, error) {
	all := settings(cfg)
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := env("OIDCGATE_CONFIG")
	fs.StringVar(&configPath, "config", configPath, "")

	type pending struct {
		s    setting
		file bool
		raws *[]string
	}
	var flagged []pending
	for _, s := range all {
		raws := new([]string)
		fs.Var(recorded{isBool: s.field.Kind() == reflect.Bool, raw: raws}, s.flagName(), "")
		flagged = append(flagged, pending{s: s, raws: raws})
		if s.secret {
			fraws := new([]string)
			fs.Var(recorded{raw: fraws}, s.flagName()+"-file", "")
			flagged = append(flagged, pending{s: s, file: true, raws: fraws})
		}
	}
	// Flags may come before or after positional arguments (`migrate up
	// --database-url …`); "--" ends the flags.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printUsage(usage, cmd, cfg)
				return nil, errHelp
			}
			return nil, ConfigError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}

	var problems ConfigError
	if configPath != "" {
		if err := loadYAML(configPath, cfg); err != nil {
			problems = append(problems, err.Error())
		}
	}
	readFile := func(s setting, path, from string) {
		b, err := os.ReadFile(path)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", from, err))
			return
		}
		if err := s.set(strings.TrimRight(string(b), "\r\n")); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", from, err))
		}
	}
	for _, s := range all {
		if v, ok := lookup(env, s.envName()); ok {
			if err := s.set(v); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", s.envName(), err))
			}
		}
		if s.secret {
			if path, ok := lookup(env, s.envName()+"_FILE"); ok {
				readFile(s, path, s.envName()+"_FILE")
			}
		}
	}
	for _, p := range flagged {
		for _, raw := range *p.raws {
			name := "--" + p.s.flagName()
			if p.file {
				readFile(p.s, raw, name+"-file")
				continue
			}
			if err := p.s.set(raw); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", name, err))
			}
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return positional, nil
}

func lookup(env func(string) string, name string) (string, bool) {
	v := env(name)
	return v, v != ""
}

var unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)

// loadYAML decodes the file strictly: an unknown key is an error.
func loadYAML(path string, cfg any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %v", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			lines := make([]string, len(te.Errors))
			for i, e := range te.Errors {
				lines[i] = fmt.Sprintf("%s: %s", path, unknownField.ReplaceAllString(e, "unknown setting $1"))
			}
			return errors.New(strings.Join(lines, "\n"))
		}
		return fmt.Errorf("%s: %v", path, err)
	}
	return nil
}

// printUsage documents every setting with its flag, environment name and
// default.
func printUsage(w io.Writer, cmd string, cfg any) {
	fmt.Fprintf(w, "Usage: oidcgate %s [flags]\n\nEvery setting can come from a YAML file (--config FILE, or OIDCGATE_CONFIG),\nthe environment, or a flag; later ones win. Durations read like 15m or 1h30m.\n\n", cmd)
	fmt.Fprintf(w, "  --config FILE\n      YAML configuration file; keys as below (e.g. public_addr). Unknown keys are errors.\n")
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) { // the settings only the file can hold
		for i := range t.NumField() {
			f := t.Field(i)
			key, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if opts == "inline" {
				walk(f.Type)
			} else if f.Tag.Get("file") == "only" {
				fmt.Fprintf(w, "  %s:  (YAML file only)\n      %s\n", key, f.Tag.Get("help"))
			}
		}
	}
	walk(reflect.TypeOf(cfg).Elem())
	all := settings(cfg)
	for _, s := range all {
		def := s.String()
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "  --%s  (env %s, yaml %s, default %s)\n      %s\n", s.flagName(), s.envName(), s.key, def, s.help)
		if s.secret {
			fmt.Fprintf(w, "  --%s-file FILE  (env %s_FILE)\n      read the above from a file\n", s.flagName(), s.envName())
		}
	}
}

// parseVerb checks a subcommand's positional arguments: rest[0] must be one of
// arity's verbs, followed by exactly that many more arguments.
func parseVerb(rest []string, arity map[string]int, usage string) (string, error) {
	if len(rest) > 0 {
		if n, ok := arity[rest[0]]; ok && len(rest) == n+1 {
			return rest[0], nil
		}
	}
	return "", ConfigError{"want one of: " + usage}
}
