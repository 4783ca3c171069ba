package proccache

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHelperProcess is not a test: TestConcurrentProcessesFetchOnce runs
// the test binary again with PROCCACHE_HELPER=1 to get real processes, each
// a `keyferry credential-process` run in miniature. It waits for stdin to
// close (a start line for all of them), calls Get once and prints
// "<access key id> <hit>".
func TestHelperProcess(t *testing.T) {
	if os.Getenv("PROCCACHE_HELPER") != "1" {
		t.Skip("helper process")
	}
	os.Stdin.Read(make([]byte, 1)) // blocks until the parent closes the pipe
	counter := os.Getenv("PROCCACHE_COUNTER")
	c := &Cache{Dir: os.Getenv("PROCCACHE_DIR"), Warn: func(m string) { fmt.Fprintln(os.Stderr, "warning:", m) }}
	e, hit, err := c.Get(context.Background(), os.Getenv("PROCCACHE_KEY"), func(context.Context, *Entry) (*Entry, error) {
		f, err := os.OpenFile(counter, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(f, "fetch by %d\n", os.Getpid())
		f.Close()
		time.Sleep(100 * time.Millisecond) // a slow broker
		return entry(fmt.Sprintf("AKID-%d", os.Getpid()), time.Now().Add(time.Hour)), nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	fmt.Println(e.Response.Credentials.AccessKeyID, hit)
	os.Exit(0)
}

func TestConcurrentProcessesFetchOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	const n = 20
	dir := filepath.Join(t.TempDir(), "creds")
	counter := filepath.Join(t.TempDir(), "fetches")
	start, release, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer start.Close()
	cmds := make([]*exec.Cmd, n)
	outs := make([]*strings.Builder, n)
	for i := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "PROCCACHE_HELPER=1", "PROCCACHE_DIR="+dir, "PROCCACHE_COUNTER="+counter,
			"PROCCACHE_KEY="+Key("https://broker.example", "deploy", "id"))
		cmd.Stdin = start
		outs[i] = &strings.Builder{}
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	release.Close() // go: every helper's read returns EOF at once

	akids := map[string]int{}
	misses := 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, outs[i])
		}
		var akid, hit string
		if _, err := fmt.Sscan(outs[i].String(), &akid, &hit); err != nil {
			t.Fatalf("helper %d printed %q: %v", i, outs[i], err)
		}
		akids[akid]++
		if hit == "false" {
			misses++
		}
	}
	f, err := os.Open(counter)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fetches := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		fetches++
	}
	if fetches != 1 || misses != 1 || len(akids) != 1 {
		t.Errorf("got %d fetches, %d misses and access keys %v from %d processes, want 1, 1 and one key", fetches, misses, akids, n)
	}
}
