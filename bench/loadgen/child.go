package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// childSpec tells a client process what to run (-child-spec file).
type childSpec struct {
	Addr    string        `json:"addr"`
	Tokens  []string      `json:"tokens"`
	Mode    string        `json:"mode"`
	Workers int           `json:"workers"`
	Rate    float64       `json:"rate"`
	Warmup  time.Duration `json:"warmup"`
	Measure time.Duration `json:"measure"`
	Start   time.Time     `json:"start"`
}

func (c childSpec) spec() loadSpec {
	return loadSpec{mode: c.Mode, workers: c.Workers, rate: c.Rate, warmup: c.Warmup, measure: c.Measure}
}

// runChild is the client process: it runs the load the spec file names and
// prints the loadResult as JSON on stdout, with its own CPU time in the
// window.
func runChild(ctx context.Context, specFile string) error {
	b, err := os.ReadFile(specFile)
	if err != nil {
		return err
	}
	var cs childSpec
	if err := json.Unmarshal(b, &cs); err != nil {
		return fmt.Errorf("child spec: %w", err)
	}
	var cpu0, cpu1 time.Duration
	res := runLoad(ctx, cs.Addr, cs.Tokens, cs.spec(), cs.Start, func(win window) {
		cpu0 = processCPU()
		sleepUntil(ctx, win.end)
		cpu1 = processCPU()
	})
	res.CPU = cpu1 - cpu0
	return json.NewEncoder(os.Stdout).Encode(res)
}

// runLoadInChild runs the clients in a copy of this program and waits for
// its result. The load starts at a fixed time so that the parent's window
// hooks (metrics scrapes, profiles) line up with the child's window.
func runLoadInChild(ctx context.Context, dir, addr string, tokens []string, spec loadSpec, onWindow func(window)) (loadResult, error) {
	start := time.Now().Add(500 * time.Millisecond) // time for the child to start
	cs := childSpec{Addr: addr, Tokens: tokens, Mode: spec.mode, Workers: spec.workers, Rate: spec.rate,
		Warmup: spec.warmup, Measure: spec.measure, Start: start}
	b, err := json.Marshal(cs)
	if err != nil {
		return loadResult{}, err
	}
	specFile := filepath.Join(dir, "child-spec.json")
	if err := os.WriteFile(specFile, b, 0o600); err != nil {
		return loadResult{}, err
	}
	exe, err := os.Executable()
	if err != nil {
		return loadResult{}, err
	}
	cmd := exec.CommandContext(ctx, exe, "-child-spec", specFile)
	cmd.Stderr = os.Stderr
	// The clients keep Go's default GOMAXPROCS whatever the broker runs
	// with, so that changing it for the broker changes only the broker.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return loadResult{}, err
	}
	if err := cmd.Start(); err != nil {
		return loadResult{}, fmt.Errorf("start client process: %w", err)
	}
	var hooks sync.WaitGroup
	watchWindow(ctx, windowOf(spec, start), onWindow, &hooks)
	var res loadResult
	decErr := json.NewDecoder(out).Decode(&res)
	waitErr := cmd.Wait()
	hooks.Wait()
	if waitErr != nil {
		return res, fmt.Errorf("client process: %w", waitErr)
	}
	if decErr != nil {
		return res, fmt.Errorf("client process result: %w", decErr)
	}
	if time.Now().Before(start) || res.OK+res.AllOK+len(res.Errors) == 0 {
		return res, fmt.Errorf("client process reported no requests")
	}
	return res, nil
}
