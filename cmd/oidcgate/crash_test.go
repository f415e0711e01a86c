package main

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/bench"
)

// TestKillUnderRefreshLoadLosesNoChain: the provider on the embedded store
// is killed (SIGKILL) twice while 16 clients rotate refresh tokens and
// retry as they should; after each restart every chain carries on — no
// rotation left a used token without its successor, and an answer lost to
// the crash is retried within the reuse grace.
func TestKillUnderRefreshLoadLosesNoChain(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	boot, err := filepath.Abs("../../bench/fault/bootstrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	envs := []string{"OIDCGATE_ISSUER=http://" + addr, "OIDCGATE_BOOTSTRAP=" + boot, "OIDCGATE_ARGON2_MEMORY_KIB=8192",
		"OIDCGATE_ARGON2_TIME=1"}
	up := func() *exec.Cmd {
		t.Helper()
		cmd, _ := startProvider(t, dir, append(envs, "OIDCGATE_PUBLIC_ADDR="+addr)...)
		for i := 0; ; i++ {
			if resp, err := http.Get("http://" + addr + "/jwks"); err == nil {
				resp.Body.Close()
				return cmd
			}
			if i > 200 {
				t.Fatal("the provider did not come up")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	cmd := up()
	progress := make(chan string, 100)
	done := make(chan *bench.ChainsResult, 1)
	errc := make(chan error, 1)
	go func() {
		res, err := bench.RunChains(context.Background(), bench.ChainsConfig{Issuer: "http://" + addr, ClientID: "chains",
			ClientSecret: "chains-secret-0123456789abcdefghijklmnop", RedirectURI: "http://127.0.0.1:9/cb",
			Username: "chains-user", Password: "chains-password-123", Chains: 16, Duration: 8 * time.Second,
			Outage: 20 * time.Second, Progress: lineWriter(progress)})
		if err != nil {
			errc <- err
			return
		}
		done <- res
	}()
	for round := range 2 {
		select { // rotations are under way
		case <-progress:
		case err := <-errc:
			t.Fatal(err)
		case <-time.After(30 * time.Second):
			t.Fatal("no progress")
		}
		cmd.Process.Kill()
		cmd.Wait()
		t.Logf("round %d: killed under load", round+1)
		cmd = up()
	}
	select {
	case err := <-errc:
		t.Fatal(err)
	case res := <-done:
		if res.Dead != 0 || res.Stuck != 0 || res.Refreshes == 0 {
			t.Errorf("after two crashes: %+v", res)
		}
		t.Logf("%+v", res)
	case <-time.After(60 * time.Second):
		t.Fatal("the run did not end")
	}
}

// lineWriter sends each write (a progress line) to ch, dropping it when ch
// is full.
type lineWriter chan string

func (w lineWriter) Write(b []byte) (int, error) {
	select {
	case w <- string(b):
	default:
	}
	return len(b), nil
}
