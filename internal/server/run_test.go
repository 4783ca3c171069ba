package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/config"
	"github.com/keyferry/keyferry/internal/server"
	"github.com/keyferry/keyferry/internal/server/servertest"
)

// TestRunLeavesItsConfigAlone: with a listen address of port 0, Run
// learns the real address from its listener and uses it (the dev
// issuer's URL has the real port), without writing it into the caller's
// config.
func TestRunLeavesItsConfigAlone(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Listen: "127.0.0.1:0", PublicURL: "http://127.0.0.1:0", Storage: "bolt://" + filepath.Join(dir, "kf.db"),
		Audit: config.Audit{Path: filepath.Join(dir, "audit.log")}, Dev: true,
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	before := *cfg
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, cfg, server.Options{Out: io.Discard, DevAdminToken: servertest.AdminToken, Listener: ln})
	}()
	addr := "http://" + ln.Addr().String()
	var disc struct{ Issuer string }
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(addr + "/dev/oidc/.well-known/openid-configuration")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&disc)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if want := addr + "/dev/oidc"; disc.Issuer != want {
		t.Errorf("dev issuer = %q, want %q (the real address)", disc.Issuer, want)
	}
	if cfg.Listen != before.Listen || cfg.PublicURL != before.PublicURL {
		t.Errorf("Run changed its caller's config: listen %q → %q, public URL %q → %q", before.Listen, cfg.Listen, before.PublicURL, cfg.PublicURL)
	}
	// The audit log was closed cleanly: its chain verifies, and it holds
	// the start event.
	f, err := os.Open(cfg.Audit.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := audit.Verify(f)
	if err != nil || rep.Events == 0 {
		t.Errorf("audit log after shutdown: %+v, %v", rep, err)
	}
}
