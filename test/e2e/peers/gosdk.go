package peers

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

//go:embed gosdkclient/main.go
var gosdkclientSource []byte

const gosdkclientPackage = "github.com/keyferry/keyferry/test/e2e/peers/gosdkclient"

// GoSDKClientBinary builds the gosdkclient program (once per machine and
// source version, into CacheDir) and returns its path. The binary is keyed
// by a hash of its source, the module's go.mod and go.sum and the Go
// version, so a change to any of them rebuilds it.
func GoSDKClientBinary() (string, error) { return buildGoSDKClient() }

var buildGoSDKClient = sync.OnceValues(func() (string, error) {
	goBin, root, err := GoModule()
	if err != nil {
		return "", fmt.Errorf("peers: build gosdkclient: %w", err)
	}
	h := sha256.New()
	h.Write(gosdkclientSource)
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	h.Write([]byte(runtime.Version()))
	bin := filepath.Join(CacheDir(), "gosdkclient-"+hex.EncodeToString(h.Sum(nil))[:16])
	if executable(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(CacheDir(), 0o755); err != nil {
		return "", err
	}
	tmp := fmt.Sprintf("%s.tmp.%d", bin, os.Getpid())
	build := exec.Command(goBin, "build", "-o", tmp, gosdkclientPackage)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("peers: build gosdkclient: %w\n%s", err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, nil
})

// GoModule returns the go command and the root of the module the tests
// run in (keyferry's).
func GoModule() (goBin, root string, err error) {
	goBin, err = exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", "", errors.New("not inside the keyferry module")
	}
	return goBin, filepath.Dir(gomod), nil
}

// GoSDK runs the gosdkclient program (AWS SDK for Go v2 with its default
// credential chain) with args in a controlled environment (see Run).
func GoSDK(t testing.TB, env []string, args ...string) Result {
	t.Helper()
	bin, err := GoSDKClientBinary()
	if err != nil {
		t.Fatal(err)
	}
	return Run(t, "go-sdk", env, nil, bin, args...)
}

// GoSDKPutObject puts body at s3://bucket/key with the Go SDK's default
// credential chain. An empty endpoint leaves it to the environment.
func GoSDKPutObject(t testing.TB, env []string, endpoint, bucket, key, body string) Result {
	t.Helper()
	return GoSDK(t, env, "-endpoint="+endpoint, "-bucket="+bucket, "-key="+key, "-body="+body)
}

// GoSDKCallerIdentity calls sts:GetCallerIdentity with the Go SDK's default
// credential chain; stdout's JSON holds "credentials" (source, key id) and
// "callerIdentity".
func GoSDKCallerIdentity(t testing.TB, env []string, endpoint string) Result {
	t.Helper()
	return GoSDK(t, env, "-endpoint="+endpoint, "-identity")
}
