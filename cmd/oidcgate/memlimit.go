package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
)

// parseSize reads a byte size: a number with an optional B, KiB, MiB or
// GiB suffix (also KB, MB, GB, meaning the same powers of 1024).
func parseSize(s string) (int64, error) {
	num, mul := strings.TrimSpace(s), int64(1)
	for _, u := range []struct {
		suffix string
		mul    int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(num, u.suffix) {
			num, mul = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mul
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mul {
		return 0, fmt.Errorf("not a positive size like 48MiB: %q", s)
	}
	return n * mul, nil
}

// Where the cgroup hierarchy and this process's place in it are; tests
// point them elsewhere.
var (
	cgroupRoot     = "/sys/fs/cgroup"
	procSelfCgroup = "/proc/self/cgroup"
)

// cgroupMemoryLimit is the memory limit of this process's cgroup (v2's
// memory.max, or v1's memory.limit_in_bytes), or 0 when there is none. The
// cgroup's own directory is tried first (a systemd unit's MemoryMax=), then
// the root of the mount (a container with its own cgroup namespace).
func cgroupMemoryLimit() int64 {
	var files []string
	if b, err := os.ReadFile(procSelfCgroup); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.SplitN(line, ":", 3) // hierarchy-ID:controllers:path
			switch {
			case len(f) != 3:
			case f[0] == "0" && f[1] == "":
				files = append(files, filepath.Join(cgroupRoot, f[2], "memory.max"))
			case slices.Contains(strings.Split(f[1], ","), "memory"):
				files = append(files, filepath.Join(cgroupRoot, "memory", f[2], "memory.limit_in_bytes"))
			}
		}
	}
	files = append(files, filepath.Join(cgroupRoot, "memory.max"), filepath.Join(cgroupRoot, "memory", "memory.limit_in_bytes"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		// "max" (v2) or a huge number (v1's page-rounded MaxInt64): no limit.
		if err != nil || n <= 0 || n >= 1<<62 {
			return 0
		}
		return n
	}
	return 0
}

// memoryLimit resolves --memory-limit to the runtime's soft limit in
// bytes (0: none) and says where it came from.
func memoryLimit(setting string, getenv func(string) string) (int64, string, error) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, "GOMEMLIMIT", nil // the runtime has applied it already
	}
	switch setting {
	case "off":
		return 0, "off", nil
	case "auto":
		if limit := cgroupMemoryLimit(); limit > 0 {
			return limit / 10 * 9, "90% of the cgroup memory limit", nil
		}
		return 0, "no cgroup memory limit", nil
	}
	n, err := parseSize(setting)
	if err != nil {
		return 0, "", fmt.Errorf(`must be "auto", "off" or a size like 48MiB, got %q`, setting)
	}
	return n, "memory_limit", nil
}

// applyMemoryLimit sets the Go runtime's soft memory limit: the GC then
// works harder instead of letting the heap grow past it (a sidecar under a
// container limit is killed, not slowed, when it goes over).
func applyMemoryLimit(setting string, log *slog.Logger) {
	limit, source, err := memoryLimit(setting, os.Getenv)
	if err != nil { // validated at load
		log.Error("memory limit", "error", err)
		return
	}
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	if cur := debug.SetMemoryLimit(-1); cur != math.MaxInt64 {
		log.Info("soft memory limit", "bytes", cur, "from", source)
	}
}
