package peers

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// ErrPeerMissing is wrapped by every error that means "a third-party peer or
// client is not installed on this machine". Test helpers turn it into
// t.Fatal, or t.Skip when KEYFERRY_E2E_ALLOW_SKIP=1.
var ErrPeerMissing = errors.New("peers: peer not installed")

// AllowSkipEnv names the environment variable that turns a missing peer into
// a skipped test instead of a failed one. End-to-end runs in CI leave it
// unset: a missing peer must fail the run, never pass it silently.
const AllowSkipEnv = "KEYFERRY_E2E_ALLOW_SKIP"

// missingPeer builds an ErrPeerMissing error that names how to install it.
func missingPeer(what, fix string) error {
	return fmt.Errorf("%w: %s; %s", ErrPeerMissing, what, fix)
}

// failOrSkip reports err on t: a missing peer is skipped when the
// environment allows it, every other error fails the test.
func failOrSkip(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrPeerMissing) && os.Getenv(AllowSkipEnv) == "1" {
		t.Skipf("%v (skipping because %s=1)", err, AllowSkipEnv)
	}
	t.Fatal(err)
}

// CacheDir is where scripts/peers.sh puts built peers:
// $KEYFERRY_PEERS_CACHE, or ~/.cache/keyferry/peers.
func CacheDir() string {
	if d := os.Getenv("KEYFERRY_PEERS_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "keyferry-peers")
	}
	return filepath.Join(home, ".cache", "keyferry", "peers")
}

// peerBinary locates a peer's binary: the file $env names, else file in
// CacheDir(). name and version describe it in errors; build says how to
// build it.
func peerBinary(env, name, version, file, build string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if !executable(p) {
			return "", missingPeer(env+"="+p+" is not an executable file", "unset it or point it at a "+name+" "+version+" binary")
		}
		return p, nil
	}
	p := filepath.Join(CacheDir(), file)
	if !executable(p) {
		return "", missingPeer(name+" "+version+" not found at "+p, build+", or set "+env)
	}
	return p, nil
}

// stopOnCleanup has t.Cleanup write logs() to t if t failed, then stop a
// peer with stop, reporting an error as "stop name: …".
func stopOnCleanup(t testing.TB, name string, logs func() string, stop func() error) {
	t.Cleanup(func() {
		logIfFailed(t, logs)
		if err := stop(); err != nil {
			t.Errorf("stop %s: %v", name, err)
		}
	})
}

// logIfFailed writes logs() to t if t failed.
func logIfFailed(t testing.TB, logs func() string) {
	if t.Failed() {
		t.Log(logs())
	}
}

// executable reports whether path is a regular file with an execute bit.
func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Loopback is the only address peers bind.
const Loopback = "127.0.0.1"
