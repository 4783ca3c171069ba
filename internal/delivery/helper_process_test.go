//go:build linux || darwin

package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/config"
)

// helperEnv switches the test binary into a helper process: the usual
// TestHelperProcess pattern, done in TestMain so no test flags are needed.
const helperEnv = "KEYFERRY_DELIVERY_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" && len(os.Args) > 1 {
		os.Exit(helperMain(os.Args[1], os.Args[2:]))
	}
	os.Exit(m.Run())
}

// helperArgs is the command line that runs helper mode with args.
func helperArgs(mode string, args ...string) []string {
	return append([]string{os.Args[0], mode}, args...)
}

// helperMain implements the helper modes; its exit code is the process's.
func helperMain(mode string, args []string) int {
	out := json.NewEncoder(os.Stdout)
	switch mode {
	case "exit": // exit with the given code
		n, _ := strconv.Atoi(args[0])
		return n
	case "env": // print the environment as a JSON array
		_ = out.Encode(os.Environ())
		return 0
	case "killself": // die by the given signal
		n, _ := strconv.Atoi(args[0])
		_ = syscall.Kill(os.Getpid(), syscall.Signal(n))
		select {}
	case "trap": // report readiness, then exit 100+N on the first signal N
		c := make(chan os.Signal, 4)
		signal.Notify(c, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
		fmt.Println("ready")
		sig := <-c
		return 100 + int(sig.(syscall.Signal))
	case "wait": // report readiness, then wait to be killed
		fmt.Println("ready")
		select {}
	case "ignore": // ignore SIGTERM, report readiness, wait for SIGKILL
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		select {}
	case "pgid": // print this process's and its parent's process groups
		ppg, _ := syscall.Getpgid(os.Getppid())
		_ = out.Encode(map[string]int{"pid": os.Getpid(), "pgid": syscall.Getpgrp(), "parent_pgid": ppg})
		return 0
	case "marker": // create the file args[0]
		return exitIf(os.WriteFile(args[0], nil, 0o600))
	case "token": // describe the container token file
		path := os.Getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
		b, err := os.ReadFile(path)
		if err != nil {
			return exitIf(err)
		}
		fi, err1 := os.Stat(path)
		di, err2 := os.Stat(filepath.Dir(path))
		if err1 != nil || err2 != nil {
			return 1
		}
		_ = out.Encode(map[string]string{
			"path": path, "content": string(b), "env": os.Getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
			"file_mode": fmt.Sprintf("%o", fi.Mode().Perm()), "dir_mode": fmt.Sprintf("%o", di.Mode().Perm()),
		})
		return 0
	case "gosdk": // load credentials through the Go SDK's default chain
		cfg, err := config.LoadDefaultConfig(context.Background())
		if err != nil {
			return exitIf(err)
		}
		c, err := cfg.Credentials.Retrieve(context.Background())
		if err != nil {
			return exitIf(err)
		}
		_ = out.Encode(sdkResult{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken,
			AccountID: c.AccountID, Source: c.Source, Region: cfg.Region})
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}

func exitIf(err error) int {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	return 0
}

// sdkResult is what a real client reports it loaded.
type sdkResult struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	SessionToken    string `json:"Token"`
	AccountID       string `json:"AccountId"`
	Source          string `json:"Source"` // Go: provider name; botocore: method
	Region          string `json:"Region"`
	Expiration      string `json:"Expiration"`
}

func (r sdkResult) check(t *testing.T, wantSource, wantRegion string) {
	t.Helper()
	if r.AccessKeyID != fixKeyID || r.SecretAccessKey != fixSecret || r.SessionToken != fixSession {
		t.Errorf("got credentials %s/%.6s…/%.6s…, want the broker's %s/%.6s…/%.6s…",
			r.AccessKeyID, r.SecretAccessKey, r.SessionToken, fixKeyID, fixSecret, fixSession)
	}
	if wantSource != "" && !strings.Contains(r.Source, wantSource) {
		t.Errorf("got credential source %q, want %q", r.Source, wantSource)
	}
	if wantRegion != "" && r.Region != wantRegion {
		t.Errorf("got region %q, want %q", r.Region, wantRegion)
	}
}

// cleanEnv is a minimal environment for child processes: PATH and a
// private HOME, so nothing on this machine's ~/.aws leaks in.
func cleanEnv(t *testing.T) []string {
	t.Helper()
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), helperEnv + "=1"}
}

var python struct {
	once sync.Once
	path string
	why  string
}

// pythonWithBotocore returns the python3 interpreter's real path (not a
// pyenv shim) or skips the test when python3 or botocore is missing.
func pythonWithBotocore(t *testing.T) string {
	t.Helper()
	python.once.Do(func() {
		p, err := exec.LookPath("python3")
		if err != nil {
			python.why = "python3 not found"
			return
		}
		out, err := exec.Command(p, "-c", "import sys, botocore; print(sys.executable)").Output()
		if err != nil {
			python.why = "botocore not importable: " + err.Error()
			return
		}
		python.path = strings.TrimSpace(string(out))
	})
	if python.path == "" {
		t.Skip("skipping the botocore client: " + python.why)
	}
	return python.path
}
