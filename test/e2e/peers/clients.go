package peers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Result is what a client run produced.
type Result struct {
	Stdout   string
	Stderr   string
	ExitCode int // -1 if the client could not be run or was killed

	secrets []string // values String must not print
}

// OK reports whether the client exited 0.
func (r Result) OK() bool { return r.ExitCode == 0 }

// String summarises the run for test failure messages, with the secrets
// of the client's environment redacted. Stdout is left out: it may carry
// credentials.
func (r Result) String() string {
	return fmt.Sprintf("exit %d, stderr: %s", r.ExitCode, Redact(strings.TrimSpace(r.Stderr), r.secrets))
}

// ClientTimeout bounds every client run.
const ClientTimeout = 2 * time.Minute

// AWSCLIv2Path is Debian's aws-cli v2 (2.9.19). The pip aws-cli v1 usually
// shadows `aws` on PATH, so v2 is always called by this path.
const AWSCLIv2Path = "/usr/bin/aws"

// CredsEnv returns the environment that hands creds to every client: the
// key pair, the session token if any, and the region in both variables
// (botocore reads only AWS_DEFAULT_REGION).
func CredsEnv(creds aws.Credentials, region string) []string {
	env := []string{
		"AWS_ACCESS_KEY_ID=" + creds.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + creds.SecretAccessKey,
	}
	if creds.SessionToken != "" {
		env = append(env, "AWS_SESSION_TOKEN="+creds.SessionToken)
	}
	if region != "" {
		env = append(env, "AWS_REGION="+region, "AWS_DEFAULT_REGION="+region)
	}
	return env
}

// AWSCLIv2 runs aws-cli v2 with args (see Run for the environment).
// Remember that v2 ignores AWS_ENDPOINT_URL_STS: pass --endpoint-url.
func AWSCLIv2(t testing.TB, env []string, args ...string) Result {
	t.Helper()
	if !executable(AWSCLIv2Path) {
		failOrSkip(t, missingPeer("aws-cli v2 not found at "+AWSCLIv2Path, "install it with `scripts/peers.sh clients`"))
	}
	return Run(t, "aws-cli-v2", env, nil, AWSCLIv2Path, args...)
}

// AWSCLIv1 runs the pip aws-cli v1 (`python3 -m awscli`) with args.
// Remember that v1, like boto3, reads AWS_DEFAULT_REGION, not AWS_REGION.
func AWSCLIv1(t testing.TB, env []string, args ...string) Result {
	t.Helper()
	py := requirePython(t)
	if !py.awscli {
		failOrSkip(t, missingPeer("aws-cli v1 (the awscli Python package) is not importable by "+py.exe,
			"install it with `"+py.exe+" -m pip install awscli`"))
	}
	return Run(t, "aws-cli-v1", env, nil, py.exe, append([]string{"-m", "awscli"}, args...)...)
}

// AWSCLIv1Command is the command line that runs aws-cli v1, for callers
// that start it themselves (e.g. under `keyferry exec`).
func AWSCLIv1Command(t testing.TB) []string {
	t.Helper()
	py := requirePython(t)
	if !py.awscli {
		failOrSkip(t, missingPeer("aws-cli v1 (the awscli Python package) is not importable by "+py.exe,
			"install it with `"+py.exe+" -m pip install awscli`"))
	}
	return []string{py.exe, "-m", "awscli"}
}

// PythonExe is the absolute path of the python3 that has boto3, for
// callers that run a script themselves (e.g. under `keyferry exec`).
func PythonExe(t testing.TB) string {
	t.Helper()
	return requirePython(t).exe
}

// Boto3 runs a Python script (fed on stdin) with args as sys.argv[1:].
func Boto3(t testing.TB, env []string, script string, args ...string) Result {
	t.Helper()
	py := requirePython(t)
	return Run(t, "boto3", env, []byte(script), py.exe, append([]string{"-"}, args...)...)
}

// boto3Prelude turns botocore errors into one stderr line in botocore's own
// wording ("An error occurred (AccessDenied) when calling the PutObject
// operation: Access Denied") and exit status 1, instead of a traceback.
const boto3Prelude = `
import json, sys
import boto3, botocore.exceptions
from botocore.config import Config

def fail(e):
    print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
    sys.exit(1)

def endpoint(arg):
    return arg or None  # empty: let env/config files pick the endpoint
`

// Boto3PutObject puts body at s3://bucket/key with boto3's default
// credential chain. An empty endpoint leaves the endpoint to the
// environment (AWS_ENDPOINT_URL_S3, config files).
func Boto3PutObject(t testing.TB, env []string, endpoint, bucket, key, body string) Result {
	t.Helper()
	return Boto3(t, env, boto3Prelude+`
try:
    s3 = boto3.client("s3", endpoint_url=endpoint(sys.argv[1]),
                      config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    s3.put_object(Bucket=sys.argv[2], Key=sys.argv[3], Body=sys.argv[4].encode())
except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
    fail(e)
print(json.dumps({"putObject": "ok"}))
`, endpoint, bucket, key, body)
}

// Boto3CallerIdentity prints sts:GetCallerIdentity as JSON
// ({"Account", "Arn", "UserId"}) using boto3's default credential chain.
func Boto3CallerIdentity(t testing.TB, env []string, endpoint string) Result {
	t.Helper()
	return Boto3(t, env, boto3Prelude+`
try:
    out = boto3.client("sts", endpoint_url=endpoint(sys.argv[1])).get_caller_identity()
except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
    fail(e)
print(json.dumps({k: out[k] for k in ("Account", "Arn", "UserId")}))
`, endpoint)
}

// Run runs a client program in a controlled environment and logs the run
// without secrets:
//   - no inherited AWS_* or BOTO_CONFIG variables: only those in env;
//   - HOME is a fresh t.TempDir() unless env sets HOME, so no ~/.aws leaks in;
//   - AWS_EC2_METADATA_DISABLED=true and AWS_PAGER= unless env sets them;
//   - every other variable (PATH, locale, …) is inherited.
//
// Later entries of env win over earlier ones.
func Run(t testing.TB, name string, env []string, stdin []byte, prog string, args ...string) Result {
	t.Helper()
	return RunTimeout(t, ClientTimeout, name, env, stdin, prog, args...)
}

// RunTimeout is Run with another bound than ClientTimeout, for long jobs.
func RunTimeout(t testing.TB, timeout time.Duration, name string, env []string, stdin []byte, prog string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = clientEnv(env, t.TempDir)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		res.ExitCode = exit.ExitCode()
	default:
		res.ExitCode = -1
		if ctx.Err() != nil {
			err = fmt.Errorf("killed after %s: %w", timeout, err)
		}
		res.Stderr += "\npeers: " + err.Error()
	}
	secrets := secretValues(cmd.Env)
	res.secrets = secrets
	t.Logf("%s: %s %s [env %s] → exit %d in %s", name, prog, Redact(strings.Join(args, " "), secrets),
		strings.Join(RedactEnv(env), " "), res.ExitCode, time.Since(start).Round(time.Millisecond))
	if res.ExitCode != 0 {
		t.Logf("%s stderr: %s", name, truncate(Redact(res.Stderr, secrets), 2000))
	}
	return res
}

// clientEnv builds a client's environment from the test process's
// environment minus AWS settings, defaults, and env.
func clientEnv(env []string, tempDir func() string) []string {
	out := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return strings.HasPrefix(k, "AWS_") || k == "BOTO_CONFIG" || k == "HOME"
	})
	set := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	if !set["HOME"] {
		out = append(out, "HOME="+tempDir())
	}
	if !set["AWS_EC2_METADATA_DISABLED"] {
		out = append(out, "AWS_EC2_METADATA_DISABLED=true")
	}
	if !set["AWS_PAGER"] {
		out = append(out, "AWS_PAGER=")
	}
	return append(out, env...) // exec.Cmd keeps the last value of a duplicate key
}

// secretKey reports whether an environment variable carries a secret.
func secretKey(k string) bool {
	switch k {
	case "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN":
		return true
	}
	return strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD") ||
		(strings.HasSuffix(k, "_TOKEN") && !strings.HasSuffix(k, "_TOKEN_FILE"))
}

// RedactEnv returns env with the values of secret-bearing variables
// replaced by "[REDACTED]".
func RedactEnv(env []string) []string {
	out := make([]string, len(env))
	for i, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && v != "" && secretKey(k) {
			kv = k + "=[REDACTED]"
		}
		out[i] = kv
	}
	return out
}

func secretValues(env []string) []string {
	var vals []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if secretKey(k) && len(v) >= 8 {
			vals = append(vals, v)
		}
	}
	return vals
}

// Redact replaces every occurrence of the given secrets in s.
func Redact(s string, secrets []string) string {
	for _, v := range secrets {
		s = strings.ReplaceAll(s, v, "[REDACTED]")
	}
	return s
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// python is the interpreter that runs boto3 and aws-cli v1.
type python struct {
	exe    string // absolute path: pyenv shims break under a fresh HOME
	awscli bool   // the awscli package is importable
}

// findPython is computed once per test binary: it only inspects the machine.
var findPython = sync.OnceValues(func() (python, error) {
	var candidates []string
	if p := os.Getenv("KEYFERRY_PYTHON"); p != "" {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, "python3", "/usr/bin/python3")
	for _, c := range candidates {
		out, err := exec.Command(c, "-c", "import sys, boto3, botocore; print(sys.executable)").Output()
		if err != nil {
			continue
		}
		py := python{exe: strings.TrimSpace(string(out))}
		py.awscli = exec.Command(py.exe, "-c", "import awscli").Run() == nil
		return py, nil
	}
	return python{}, missingPeer("no python3 with boto3 and botocore (tried "+strings.Join(candidates, ", ")+")",
		"run `scripts/peers.sh clients`")
})

func requirePython(t testing.TB) python {
	t.Helper()
	py, err := findPython()
	if err != nil {
		failOrSkip(t, err)
	}
	return py
}
