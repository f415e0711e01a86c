package provider_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/storage"
	"github.com/oidcgate/oidcgate/provider/storage/memory"
)

// TestBootstrapAdminTokens: declared admin tokens are stored as hashes,
// applied idempotently, replaced when their value changes, and refused
// when too short to be safe.
func TestBootstrapAdminTokens(t *testing.T) {
	dir := t.TempDir()
	write := func(token string) string {
		path := filepath.Join(dir, "boot.yaml")
		os.WriteFile(path, []byte("admin_tokens:\n  - name: ci\n    token: "+token+"\n"), 0o600)
		return path
	}
	store := memory.New(time.Now)
	ctx := context.Background()
	apply := func(token string) {
		t.Helper()
		b, err := provider.LoadBootstrap(write(token))
		if err != nil {
			t.Fatal(err)
		}
		if err := provider.ApplyBootstrap(ctx, store, nil, b, provider.Argon2Params{Time: 1, Memory: 8 * 1024, Threads: 1}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	first := strings.Repeat("a", 40)
	apply(first)
	apply(first)
	list, _ := store.ListAdminTokens(ctx)
	if len(list) != 1 || list[0].Name != "ci" || list[0].Hash != storage.HashOf(first) {
		t.Fatalf("tokens after two applies: %+v", list)
	}
	second := strings.Repeat("b", 40)
	apply(second)
	if _, err := store.GetAdminToken(ctx, storage.HashOf(first)); err == nil {
		t.Error("the replaced token still works")
	}
	if _, err := store.GetAdminToken(ctx, storage.HashOf(second)); err != nil {
		t.Errorf("the new token: %v", err)
	}
	if _, err := provider.LoadBootstrap(write("short")); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("a short token: %v", err)
	}
}
