package server_test

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/keyferry/keyferry/internal/server"
	"github.com/keyferry/keyferry/internal/testutil"
)

func TestProcs(t *testing.T) {
	for _, tt := range []struct{ def, want int }{{1, 3}, {2, 4}, {16, 18}} {
		if got := server.Procs(tt.def); got != tt.want {
			t.Errorf("Procs(%d): got %d, want %d", tt.def, got, tt.want)
		}
	}
}

// TestSetProcs changes this test process's GOMAXPROCS and restores it.
func TestSetProcs(t *testing.T) {
	orig := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(orig) })
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	noEnv := testutil.Env(nil)

	server.SetProcs(noEnv)
	server.SetProcs(noEnv) // idempotent: from Go's default, not from the current value
	if got, want := runtime.GOMAXPROCS(0), def+server.ExtraProcs; got != want {
		t.Errorf("without GOMAXPROCS in the environment: got %d, want %d", got, want)
	}

	runtime.GOMAXPROCS(1)
	server.SetProcs(testutil.Env(map[string]string{"GOMAXPROCS": "1"}))
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Errorf("with GOMAXPROCS=1 in the environment: got %d, want 1 (the operator's choice)", got)
	}
}

// TestSetGC changes this test process's GC percent and restores it.
func TestSetGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	server.SetGC(testutil.Env(nil))
	if got := debug.SetGCPercent(100); got != server.GCPercent {
		t.Errorf("without GOGC in the environment: got %d, want %d", got, server.GCPercent)
	}
	server.SetGC(testutil.Env(map[string]string{"GOGC": "100"}))
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC=100 in the environment: got %d, want 100 (the operator's choice)", got)
	}
}
