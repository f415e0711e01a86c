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

// cgroupFixture lays out a cgroup hierarchy with files (path → content)
// and a /proc/self/cgroup of procCgroup, and points the lookup at it.
func cgroupFixture(t *testing.T, procCgroup string, files map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, "sys", name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	proc := filepath.Join(dir, "cgroup")
	if err := os.WriteFile(proc, []byte(procCgroup), 0o600); err != nil {
		t.Fatal(err)
	}
	savedRoot, savedProc := cgroupRoot, procSelfCgroup
	t.Cleanup(func() { cgroupRoot, procSelfCgroup = savedRoot, savedProc })
	cgroupRoot, procSelfCgroup = filepath.Join(dir, "sys"), proc
}

func TestMemoryLimitFromCgroup(t *testing.T) {
	noEnv := func(string) string { return "" }
	const mib128 = 128 << 20
	for _, tc := range []struct {
		name, proc string
		files      map[string]string
		want       int64
	}{
		{"v2 container (own namespace)", "0::/\n", map[string]string{"memory.max": "134217728\n"}, mib128 / 10 * 9},
		{"v2 systemd unit", "0::/system.slice/oidcgate.service\n",
			map[string]string{"memory.max": "max\n", "system.slice/oidcgate.service/memory.max": "134217728\n"}, mib128 / 10 * 9},
		{"v2 unlimited", "0::/\n", map[string]string{"memory.max": "max\n"}, 0},
		{"v1", "4:memory:/docker/abc\n3:cpuset:/\n",
			map[string]string{"memory/docker/abc/memory.limit_in_bytes": "134217728\n"}, mib128 / 10 * 9},
		{"v1 joint controllers, container root", "5:cpu,memory:/kubepods/pod1\n",
			map[string]string{"memory/memory.limit_in_bytes": "134217728\n"}, mib128 / 10 * 9},
		{"v1 unlimited", "4:memory:/\n", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0},
		{"no cgroup files", "0::/\n", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cgroupFixture(t, tc.proc, tc.files)
			if got, _, err := memoryLimit("auto", noEnv); err != nil || got != tc.want {
				t.Errorf("auto = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestMemoryLimitSettings(t *testing.T) {
	cgroupFixture(t, "0::/\n", map[string]string{"memory.max": "134217728\n"})
	noEnv := func(string) string { return "" }
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
	if got, src, _ := memoryLimit("auto", env); got != 0 || src != "GOMEMLIMIT" {
		t.Errorf("with GOMEMLIMIT set: %d from %q, want it left to the runtime", got, src)
	}
	if _, _, err := memoryLimit("lots", noEnv); err == nil {
		t.Error(`"lots" was accepted`)
	}
}
