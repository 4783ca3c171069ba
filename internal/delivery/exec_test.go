//go:build linux || darwin

package delivery

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/api"
)

// execCfg is an ExecConfig for a helper-process child, outside a terminal.
func execCfg(t *testing.T, args ...string) ExecConfig {
	t.Helper()
	return ExecConfig{
		Source:     staticSource(fixCreds(time.Now())),
		Args:       args,
		Env:        cleanEnv(t),
		TokenDir:   t.TempDir(),
		foreground: func() bool { return false },
	}
}

// runExec runs Exec and returns the exit code, error and the child's
// stdout.
func runExec(t *testing.T, cfg ExecConfig) (int, error, []byte) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cfg.Stdout, cfg.Stderr = &stdout, &stderr
	code, err := Exec(context.Background(), cfg)
	if stderr.Len() > 0 {
		t.Logf("child stderr: %s", stderr.String())
	}
	return code, err, stdout.Bytes()
}

// runExecJSON runs cfg, which must succeed, and decodes the child's JSON
// output into v.
func runExecJSON(t *testing.T, cfg ExecConfig, v any) {
	t.Helper()
	code, err, out := runExec(t, cfg)
	if code != 0 || err != nil {
		t.Fatalf("got %d %v, want 0 nil", code, err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
}

// assertTokenDirGone checks that Exec left nothing in dir.
func assertTokenDirGone(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("Exec left %v in %s", entries, dir)
	}
}

// startExec runs Exec in the background with the child's stdout on a
// pipe, and returns once the child has printed "ready".
func startExec(t *testing.T, ctx context.Context, cfg ExecConfig) <-chan [2]any {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Stdout = pw
	done := make(chan [2]any, 1)
	go func() {
		code, err := Exec(ctx, cfg)
		pw.Close()
		done <- [2]any{code, err}
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("child said %q (%v), want ready", line, err)
	}
	t.Cleanup(func() { pr.Close() })
	return done
}

func TestExecTokenFileHasNoNewlineIsPrivateAndIsRemoved(t *testing.T) {
	cfg := execCfg(t, helperArgs("token")...)
	var got map[string]string
	runExecJSON(t, cfg, &got)
	if got["content"] != got["env"] || len(got["content"]) != 43 {
		t.Errorf("token file holds %q, AWS_CONTAINER_AUTHORIZATION_TOKEN %q: want the same 43-character token", got["content"], got["env"])
	}
	if strings.ContainsAny(got["content"], "\r\n") {
		t.Errorf("token file %q ends in a newline: botocore and Go would refuse it", got["content"])
	}
	if got["file_mode"] != "600" || got["dir_mode"] != "700" {
		t.Errorf("got file mode %s dir mode %s, want 600 and 700", got["file_mode"], got["dir_mode"])
	}
	if !strings.HasPrefix(got["path"], cfg.TokenDir) {
		t.Errorf("token file %s is not under TokenDir %s", got["path"], cfg.TokenDir)
	}
	if _, err := os.Stat(got["path"]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("token file still exists after Exec: %v", err)
	}
	assertTokenDirGone(t, cfg.TokenDir)
}

// poisonedEnv is a parent environment in which every other way to get AWS
// credentials is set, plus keyferry's own secrets.
func poisonedEnv(t *testing.T) []string {
	t.Helper()
	home := t.TempDir()
	aws := filepath.Join(home, ".aws")
	if err := os.Mkdir(aws, 0o700); err != nil {
		t.Fatal(err)
	}
	creds := writeFile(t, aws, "credentials", "[default]\naws_access_key_id = POISONFILEKEY\naws_secret_access_key = poison-file-secret\n"+
		"[poison]\naws_access_key_id = POISONPROFILEKEY\naws_secret_access_key = poison-profile-secret\n")
	conf := writeFile(t, aws, "config", "[default]\nregion = us-west-2\naws_access_key_id = POISONCONFIGKEY\naws_secret_access_key = poison-config-secret\n"+
		"[profile poison]\nregion = us-west-2\n")
	return []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, helperEnv + "=1",
		"AWS_ACCESS_KEY_ID=POISONENVKEY", "AWS_SECRET_ACCESS_KEY=poison-env-secret", "AWS_SESSION_TOKEN=poison-env-session",
		"AWS_ACCESS_KEY=POISONENVKEY2", "AWS_SECRET_KEY=poison-env-secret2", "AWS_SECURITY_TOKEN=poison",
		"AWS_CREDENTIAL_EXPIRATION=2000-01-01T00:00:00Z", "AWS_ACCOUNT_ID=999999999999",
		"AWS_PROFILE=poison", "AWS_DEFAULT_PROFILE=poison",
		"AWS_ROLE_ARN=arn:aws:iam::999999999999:role/poison", "AWS_WEB_IDENTITY_TOKEN_FILE=/nonexistent/token", "AWS_ROLE_SESSION_NAME=poison",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/poison", "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:1/poison",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN=poison", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=/nonexistent/token",
		"AWS_SHARED_CREDENTIALS_FILE=" + creds, "AWS_CONFIG_FILE=" + conf, "AWS_CREDENTIAL_FILE=/nonexistent", "BOTO_CONFIG=/nonexistent",
		"AWS_EC2_METADATA_DISABLED=false", "AWS_REGION=us-west-2", "AWS_DEFAULT_REGION=us-west-2",
		"KEYFERRY_ID_TOKEN=eyJhbGciOiJSUzI1NiJ9.job.token", "KEYFERRY_ID_TOKEN_FILE=/run/job-token", "KEYFERRY_TOKEN=kf-admin-secret",
		"CI_JOB_JWT_V2=eyJother.job.token",
		"AWS_ENDPOINT_URL_STS=http://127.0.0.1:9/sts", "AWS_MAX_ATTEMPTS=2", "KEYFERRY_ADDR=https://broker.example", "UNRELATED=kept",
	}
}

func TestExecChildEnvHasNoConflictingVariablesAndNoJobToken(t *testing.T) {
	cfg := execCfg(t, helperArgs("env")...)
	cfg.Env = poisonedEnv(t)
	cfg.Unset = []string{"CI_JOB_JWT_V2"}
	var env []string
	runExecJSON(t, cfg, &env)
	got := map[string][]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = append(got[k], v)
	}
	for _, k := range append(slices.Clone(conflictingEnv), "CI_JOB_JWT_V2") {
		vals := got[k]
		switch k {
		case "AWS_CONTAINER_CREDENTIALS_FULL_URI":
			if len(vals) != 1 || !strings.HasPrefix(vals[0], "http://127.0.0.1:") || !strings.HasSuffix(vals[0], "/creds") {
				t.Errorf("%s = %q, want one http://127.0.0.1:PORT/creds", k, vals)
			}
		case "AWS_CONTAINER_AUTHORIZATION_TOKEN":
			if len(vals) != 1 || len(vals[0]) != 43 {
				t.Errorf("%s = %q, want one fresh token", k, vals)
			}
		case "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE":
			if len(vals) != 1 || !strings.HasPrefix(vals[0], cfg.TokenDir) {
				t.Errorf("%s = %q, want one file under %s", k, vals, cfg.TokenDir)
			}
		case "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "BOTO_CONFIG":
			if !slices.Equal(vals, []string{os.DevNull}) {
				t.Errorf("%s = %q, want %s", k, vals, os.DevNull)
			}
		case "AWS_EC2_METADATA_DISABLED":
			if !slices.Equal(vals, []string{"true"}) {
				t.Errorf("%s = %q, want true", k, vals)
			}
		default:
			if len(vals) != 0 {
				t.Errorf("%s = %q reached the child", k, vals)
			}
		}
	}
	for k, want := range map[string]string{
		"AWS_REGION": fixRegion, "AWS_DEFAULT_REGION": fixRegion, "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9/sts",
		"AWS_MAX_ATTEMPTS": "2", "KEYFERRY_ADDR": "https://broker.example", "UNRELATED": "kept",
	} {
		if !slices.Equal(got[k], []string{want}) {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
	for _, kv := range env {
		for _, secret := range []string{"job.token", "kf-admin-secret"} {
			if strings.Contains(kv, secret) {
				t.Errorf("the child sees %s", kv)
			}
		}
	}
}

func TestChildEnvRegion(t *testing.T) {
	parent := []string{"AWS_REGION=us-west-2", "AWS_DEFAULT_REGION=us-west-1", "AWS_PROFILE=x"}
	for _, tc := range []struct {
		name, region string
		want         []string
	}{
		{"known region replaces the parent's", "eu-west-3", []string{"AWS_REGION=eu-west-3", "AWS_DEFAULT_REGION=eu-west-3"}},
		{"unknown region keeps the parent's", "", []string{"AWS_REGION=us-west-2", "AWS_DEFAULT_REGION=us-west-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := childEnv(parent, childSettings{region: tc.region})
			for _, w := range tc.want {
				if !slices.Contains(env, w) {
					t.Errorf("env %q lacks %s", env, w)
				}
			}
			if n := len(slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return !strings.HasPrefix(kv, "AWS_REGION=") })); n != 1 {
				t.Errorf("got %d AWS_REGION entries, want 1", n)
			}
		})
	}
	if env := childEnv([]string{"AWS_CONFIG_FILE=/x"}, childSettings{keepConfigFile: true}); !slices.Contains(env, "AWS_CONFIG_FILE=/x") {
		t.Errorf("KeepConfigFile: got %q, want AWS_CONFIG_FILE=/x kept", env)
	}
}

// The child's SDK must get the broker's credentials from the endpoint even
// though the parent environment offers every other source.

func TestExecGoSDKChildGetsBrokerCredentialsDespiteConflictingEnv(t *testing.T) {
	cfg := execCfg(t, helperArgs("gosdk")...)
	cfg.Env = poisonedEnv(t)
	var r sdkResult
	runExecJSON(t, cfg, &r)
	r.check(t, "CredentialsEndpointProvider", fixRegion)
}

// TestExecKeepConfigFileLetsTheDefaultProfileWin documents why the config
// file is /dev/null by default: with it, [default]'s keys beat the endpoint.
func TestExecKeepConfigFileLetsTheDefaultProfileWin(t *testing.T) {
	cfg := execCfg(t, helperArgs("gosdk")...)
	cfg.Env = poisonedEnv(t)
	cfg.KeepConfigFile = true
	var r sdkResult
	runExecJSON(t, cfg, &r)
	if r.AccessKeyID != "POISONCONFIGKEY" {
		t.Errorf("got %s, want the config file's [default] key: has the Go SDK's chain changed?", r.AccessKeyID)
	}
}

const botocoreChainScript = `
import json, botocore.session
s = botocore.session.get_session()
c = s.get_credentials()
f = c.get_frozen_credentials()
print(json.dumps({"AccessKeyId": f.access_key, "SecretAccessKey": f.secret_key, "Token": f.token,
                  "AccountId": f.account_id or "", "Source": c.method, "Region": s.get_config_variable("region") or ""}))
`

func TestExecBotocoreChildGetsBrokerCredentialsDespiteConflictingEnvWhenPythonAndBotocoreArePresent(t *testing.T) {
	py := pythonWithBotocore(t)
	cfg := execCfg(t, py, "-c", botocoreChainScript)
	cfg.Env = poisonedEnv(t)
	var r sdkResult
	runExecJSON(t, cfg, &r)
	r.check(t, "container-role", fixRegion)
}

func TestExecAWSCLIv2ChildGetsBrokerCredentialsWhenAWSCLIv2IsPresent(t *testing.T) {
	const aws = "/usr/bin/aws" // the pip aws-cli v1 may shadow v2 on PATH
	if out, err := exec.Command(aws, "--version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "aws-cli/2.") {
		t.Skipf("skipping: aws-cli v2 not at %s (%s)", aws, out)
	}
	cfg := execCfg(t, aws, "configure", "export-credentials", "--format", "process")
	cfg.Env = poisonedEnv(t)
	var r struct{ AccessKeyId, SecretAccessKey, SessionToken string }
	runExecJSON(t, cfg, &r)
	if r.AccessKeyId != fixKeyID || r.SecretAccessKey != fixSecret || r.SessionToken != fixSession {
		t.Errorf("aws-cli v2 got %s, want %s", r.AccessKeyId, fixKeyID)
	}
}

func TestExecReturnsChildExitCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"zero", helperArgs("exit", "0"), 0},
		{"three", helperArgs("exit", "3"), 3},
		{"255", helperArgs("exit", "255"), 255},
		{"killed by SIGKILL", helperArgs("killself", "9"), 128 + 9},
		{"killed by SIGTERM", helperArgs("killself", "15"), 128 + 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := execCfg(t, tc.args...)
			code, err, _ := runExec(t, cfg)
			if code != tc.want || err != nil {
				t.Errorf("got %d %v, want %d nil", code, err, tc.want)
			}
			assertTokenDirGone(t, cfg.TokenDir)
		})
	}
}

func TestExecRelaysSignalsToTheChild(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT} {
		t.Run(sig.String(), func(t *testing.T) {
			cfg := execCfg(t, helperArgs("trap")...)
			done := startExec(t, context.Background(), cfg)
			if err := syscall.Kill(os.Getpid(), sig); err != nil { // Exec catches it
				t.Fatal(err)
			}
			res := <-done
			if res[0] != 100+int(sig) || res[1] != nil {
				t.Errorf("got %v %v, want %d (the child saw %v)", res[0], res[1], 100+int(sig), sig)
			}
			assertTokenDirGone(t, cfg.TokenDir)
		})
	}
}

func TestExecReportsDeathBySignalAs128PlusN(t *testing.T) {
	cfg := execCfg(t, helperArgs("wait")...)
	done := startExec(t, context.Background(), cfg)
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if res := <-done; res[0] != 128+int(syscall.SIGTERM) || res[1] != nil {
		t.Errorf("got %v %v, want 143 nil", res[0], res[1])
	}
}

func TestExecInteractiveLeavesCtrlCToTheTerminal(t *testing.T) {
	// In a terminal's foreground group the child gets SIGINT from the
	// terminal itself, so Exec must not relay it; SIGTERM is relayed.
	cfg := execCfg(t, helperArgs("trap")...)
	cfg.foreground = func() bool { return true }
	done := startExec(t, context.Background(), cfg)
	_ = syscall.Kill(os.Getpid(), syscall.SIGINT)
	_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	if res := <-done; res[0] != 100+int(syscall.SIGTERM) {
		t.Errorf("got %v, want %d: the child saw a relayed SIGINT", res[0], 100+int(syscall.SIGTERM))
	}
}

func TestExecChildProcessGroup(t *testing.T) {
	for _, interactive := range []bool{false, true} {
		cfg := execCfg(t, helperArgs("pgid")...)
		cfg.foreground = func() bool { return interactive }
		var g map[string]int
		runExecJSON(t, cfg, &g)
		own := g["pgid"] == g["pid"] && g["pgid"] != g["parent_pgid"]
		if own == interactive {
			t.Errorf("interactive=%v: got %v, want the child in its own group only outside a terminal", interactive, g)
		}
	}
}

func TestExecContextCancelTerminatesTheChild(t *testing.T) {
	t.Run("SIGTERM", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := startExec(t, ctx, execCfg(t, helperArgs("trap")...))
		cancel()
		if res := <-done; res[0] != 100+int(syscall.SIGTERM) || res[1] != nil {
			t.Errorf("got %v %v, want %d", res[0], res[1], 100+int(syscall.SIGTERM))
		}
	})
	t.Run("SIGKILL after KillDelay", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cfg := execCfg(t, helperArgs("ignore")...)
		cfg.KillDelay = time.Millisecond
		done := startExec(t, ctx, cfg)
		cancel()
		if res := <-done; res[0] != 128+int(syscall.SIGKILL) {
			t.Errorf("got %v %v, want 137", res[0], res[1])
		}
	})
}

func TestExecSourceErrorFailsFastWithoutStartingTheChild(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "started")
	cfg := execCfg(t, helperArgs("marker", marker)...)
	cfg.Source = failingSource("upstream 503")
	code, err, _ := runExec(t, cfg)
	if code != ExitSetupFailed || err == nil {
		t.Fatalf("got %d %v, want %d and an error", code, err, ExitSetupFailed)
	}
	for _, want := range []string{"could not get credentials", "was not started", "upstream 503"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Error("the child was started")
	}
	assertTokenDirGone(t, cfg.TokenDir)
}

func TestExecSignalDuringFetchAbortsWithoutStartingTheChild(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "started")
	cfg := execCfg(t, helperArgs("marker", marker)...)
	fetching := make(chan struct{})
	cfg.Source = SourceFunc(func(ctx context.Context) (*api.CredsResponse, error) {
		close(fetching)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	done := make(chan [2]any, 1)
	go func() {
		code, err, _ := runExec(t, cfg)
		done <- [2]any{code, err}
	}()
	<-fetching
	_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	res := <-done
	if res[0] != 128+int(syscall.SIGTERM) || res[1] == nil {
		t.Errorf("got %v %v, want 143 and an error", res[0], res[1])
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Error("the child was started")
	}
}

func TestExecStartFailures(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"not found on PATH", []string{"keyferry-no-such-command"}, ExitNotFound},
		{"no such file", []string{"/nonexistent/tool"}, ExitNotFound},
		{"not executable", []string{notExec}, ExitCannotRun},
		{"no command", nil, ExitSetupFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := execCfg(t, tc.args...)
			code, err, _ := runExec(t, cfg)
			if code != tc.want || err == nil {
				t.Errorf("got %d %v, want %d and an error", code, err, tc.want)
			}
			assertTokenDirGone(t, cfg.TokenDir)
		})
	}
}

func TestExecLogsNoSecrets(t *testing.T) {
	var logs logBuffer
	cfg := execCfg(t, helperArgs("gosdk")...)
	cfg.Env = poisonedEnv(t)
	cfg.Logger = logs.logger()
	if code, err, _ := runExec(t, cfg); code != 0 || err != nil {
		t.Fatalf("got %d %v", code, err)
	}
	out := logs.String()
	assertNoSecrets(t, "log", out)
	if strings.Contains(out, "AWS_CONTAINER_AUTHORIZATION_TOKEN") || !strings.Contains(out, fixKeyID) {
		t.Errorf("log:\n%s", out)
	}
}
