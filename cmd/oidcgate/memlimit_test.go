package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"48MiB": 48 << 20, "1GiB": 1 << 30, "512KiB": 512 << 10, "100": 100,
		"64 MB": 64 << 20, "7B": 7} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-5MiB", "12XB", "MiB", "1.5GiB", "9999999999999GiB"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestMemoryLimitFromCgroup(t *testing.T) {
	dir := t.TempDir()
	v2 := filepath.Join(dir, "memory.max")
	saved := cgroupMemoryFiles
	t.Cleanup(func() { cgroupMemoryFiles = saved })
	cgroupMemoryFiles = []string{v2}
	noEnv := func(string) string { return "" }

	for content, want := range map[string]int64{"134217728\n": 134217728 / 10 * 9, "max\n": 0} {
		if err := os.WriteFile(v2, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, _, err := memoryLimit("auto", noEnv); err != nil || got != want {
			t.Errorf("cgroup %q: auto = %d, %v; want %d", content, got, err, want)
		}
	}
	if got, _, _ := memoryLimit("off", noEnv); got != 0 {
		t.Errorf("off = %d, want 0", got)
	}
	if got, _, _ := memoryLimit("48MiB", noEnv); got != 48<<20 {
		t.Errorf("48MiB = %d", got)
	}
	env := func(k string) string {
		if k == "GOMEMLIMIT" {
			return "100MiB"
		}
		return ""
	}
	if got, src, _ := memoryLimit("48MiB", env); got != 0 || src != "GOMEMLIMIT" {
		t.Errorf("with GOMEMLIMIT set: %d from %q, want it left to the runtime", got, src)
	}
	if _, _, err := memoryLimit("lots", noEnv); err == nil {
		t.Error(`"lots" was accepted`)
	}
	cgroupMemoryFiles = []string{filepath.Join(dir, "missing")}
	if got, _, _ := memoryLimit("auto", noEnv); got != 0 {
		t.Errorf("no cgroup file: auto = %d, want 0", got)
	}
}
