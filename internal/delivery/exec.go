package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Exit codes Exec returns when the command did not run or did not finish
// on its own, following env(1) and docker run. Otherwise Exec returns the
// command's own exit status, or 128+N when signal N killed it.
const (
	// ExitSetupFailed: keyferry could not get credentials or set up the
	// endpoint; the command was not started.
	ExitSetupFailed = 125
	// ExitCannotRun: the command was found but could not be started.
	ExitCannotRun = 126
	// ExitNotFound: the command was not found.
	ExitNotFound = 127
)

// TokenFileName is the token file's name inside Exec's private directory.
const TokenFileName = "container-token"

// ExecConfig configures Exec.
type ExecConfig struct {
	// Source yields the credentials. Required; wrapped in a Cached unless
	// it is one.
	Source Source
	// Region is set as AWS_REGION and AWS_DEFAULT_REGION (botocore reads
	// only the latter). Empty means the Source's region, and when that is
	// empty too the parent's region variables pass through.
	Region string
	// Args is the command and its arguments, run without a shell. The
	// command is looked up in this process's PATH.
	Args []string
	// Env is the parent environment (os.Environ()) the child's is built
	// from.
	Env []string
	// Stdin, Stdout and Stderr are the child's; nil means /dev/null.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// TokenDir is where the private token directory is created; default
	// os.TempDir().
	TokenDir string
	// KeepConfigFile passes AWS_CONFIG_FILE (and so ~/.aws/config) through
	// to the child. By default the child gets AWS_CONFIG_FILE=/dev/null,
	// because a [default] profile with keys, credential_process, role_arn
	// or SSO outranks the container endpoint in botocore and the Go SDK,
	// and the tool would silently run as someone else (see childEnv).
	KeepConfigFile bool
	// Unset names more variables to remove from the child's environment,
	// e.g. the CI variable the job token came from.
	Unset []string
	// KillDelay is how long the child has to exit after ctx is done and it
	// was sent SIGTERM, before SIGKILL; default 10s.
	KillDelay time.Duration
	Logger    *slog.Logger
	Now       func() time.Time

	// foreground overrides the terminal detection in tests.
	foreground func() bool
}

// forwardedSignals are relayed to the child.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// Exec runs cfg.Args with AWS credentials delivered through a private
// container-credentials endpoint, so the child's SDK fetches and refreshes
// them by itself and they never enter its environment:
//
//  1. It fetches credentials once, before anything else, so that a broker
//     error fails fast here (ExitSetupFailed) and not inside the tool.
//  2. It serves the container endpoint on 127.0.0.1:<random port> with a
//     new random token, written without a trailing newline to a 0600 file
//     in a new 0700 directory.
//  3. It builds the child's environment (see childEnv): every variable
//     that would outrank or confuse the endpoint is removed, the job token
//     is removed, and the endpoint, token, token file and region are set.
//  4. It runs the command without a shell, relays SIGINT, SIGTERM, SIGHUP
//     and SIGQUIT, and returns its exit code.
//
// The endpoint and the token directory are removed whatever happens (but
// not if this process is killed with SIGKILL).
//
// Signals: without a controlling terminal (CI) the child gets its own
// process group, signals are relayed to that group, and on Linux the
// child is killed if keyferry dies; so a runner that signals the job's
// process group makes the child see each signal exactly once. On an
// interactive terminal the child stays in the foreground group and gets
// Ctrl-C and Ctrl-\ from the terminal itself, so only SIGTERM and SIGHUP
// are relayed; relaying SIGINT too would deliver it twice and, for
// example, make Terraform abort without saving state. (The cost: a SIGINT
// sent to keyferry's PID alone is not relayed in a terminal.)
//
// When ctx is done the child is sent SIGTERM and, after KillDelay,
// SIGKILL; the endpoint keeps serving until the child has exited, so it
// can still save its work. Do not derive ctx from signal.NotifyContext for
// the relayed signals, or the child gets both.
//
// The error is non-nil only when Exec itself failed; a command that exits
// non-zero is reported through the exit code alone.
func Exec(ctx context.Context, cfg ExecConfig) (exitCode int, err error) {
	if len(cfg.Args) == 0 || cfg.Args[0] == "" {
		return ExitSetupFailed, errors.New("delivery: exec: no command given")
	}
	if cfg.Source == nil {
		return ExitSetupFailed, errors.New("delivery: exec: no credential source")
	}
	log := orDiscard(cfg.Logger)
	name := cfg.Args[0]

	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, forwardedSignals...)
	defer signal.Stop(sigc)

	// 1. Fetch once, interruptible by a signal.
	src := cacheSource(cfg.Source, cfg.Now)
	fctx, cancelFetch := context.WithCancel(ctx)
	defer cancelFetch()
	type fetched struct {
		region string
		err    error
	}
	fc := make(chan fetched, 1)
	go func() {
		resp, err := src.Credentials(fctx)
		if err == nil && (resp == nil || resp.Credentials.AccessKeyID == "") {
			err = errors.New("the broker returned no credentials")
		}
		f := fetched{err: err}
		if err == nil {
			f.region = resp.Region
			log.Info("delivery: exec: credentials ready",
				slog.String(logKeyAccessKeyID, resp.Credentials.AccessKeyID),
				slog.Time(logKeyExpiration, resp.Credentials.Expiration))
		}
		fc <- f
	}()
	var f fetched
	select {
	case f = <-fc:
	case sig := <-sigc:
		cancelFetch()
		return signalExit(sig), fmt.Errorf("delivery: exec: interrupted by %v while fetching credentials; %s was not started", sig, name)
	}
	if f.err != nil {
		return ExitSetupFailed, fmt.Errorf("delivery: exec: could not get credentials, so %s was not started: %w", name, f.err)
	}
	region := cfg.Region
	if region == "" {
		region = f.region
	}

	// 2. Token file and endpoint.
	dir, err := os.MkdirTemp(cfg.TokenDir, "keyferry-exec-")
	if err != nil {
		return ExitSetupFailed, fmt.Errorf("delivery: exec: token directory: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("delivery: exec: removing the token directory: %w", rerr)
		}
	}()
	token := NewToken()
	tokenFile, err := writeTokenFile(dir, token)
	if err != nil {
		return ExitSetupFailed, err
	}
	srv, err := NewLocalServer(LocalConfig{
		Addr: DefaultLocalAddr, Endpoints: EndpointContainer, ContainerToken: token,
		Source: src, Logger: log, Now: cfg.Now,
	})
	if err != nil {
		return ExitSetupFailed, fmt.Errorf("delivery: exec: %w", err)
	}
	// The endpoint outlives ctx: a child told to stop may still need
	// credentials to save its state.
	sctx, stopServer := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Run(sctx) }()
	defer func() {
		stopServer()
		if serr := <-served; serr != nil {
			log.Warn("delivery: exec: endpoint stopped with an error", slog.String(logKeyErr, serr.Error()))
		}
	}()

	// 3. Environment.
	env := childEnv(cfg.Env, childSettings{
		url: srv.ContainerURL(), token: token, tokenFile: tokenFile, region: region,
		keepConfigFile: cfg.KeepConfigFile, unset: cfg.Unset,
	})

	// 4. Run.
	select {
	case sig := <-sigc:
		return signalExit(sig), fmt.Errorf("delivery: exec: interrupted by %v; %s was not started", sig, name)
	default:
	}
	foreground := cfg.foreground
	if foreground == nil {
		foreground = inForegroundOfTerminal
	}
	interactive := foreground()
	cmd := exec.Command(name, cfg.Args[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = cfg.Stdin, cfg.Stdout, cfg.Stderr
	cmd.SysProcAttr = childProcAttr(!interactive)
	// If a grandchild keeps a pipe open after the child exits, stop
	// waiting for it after a while.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return startFailure(name, err)
	}
	log.Debug("delivery: exec: started", slog.Int(logKeyPID, cmd.Process.Pid), slog.String(logKeyURL, srv.ContainerURL()))

	waitc := make(chan error, 1)
	go func() { waitc <- cmd.Wait() }()
	killDelay := cfg.KillDelay
	if killDelay <= 0 {
		killDelay = 10 * time.Second
	}
	var kill <-chan time.Time
	done := ctx.Done()
	for {
		select {
		case sig := <-sigc:
			if interactive && (sig == syscall.SIGINT || sig == syscall.SIGQUIT) {
				continue // the terminal sent it to the child too
			}
			log.Debug("delivery: exec: relaying signal", slog.String(logKeySignal, sig.String()))
			signalChild(cmd.Process, sig, !interactive)
		case <-done:
			done = nil
			log.Info("delivery: exec: stopping the command", slog.String(logKeyReason, context.Cause(ctx).Error()))
			signalChild(cmd.Process, syscall.SIGTERM, !interactive)
			t := time.NewTimer(killDelay)
			defer t.Stop()
			kill = t.C
		case <-kill:
			kill = nil
			signalChild(cmd.Process, syscall.SIGKILL, !interactive)
		case werr := <-waitc:
			code := exitStatus(cmd.ProcessState)
			var ee *exec.ExitError
			if werr != nil && !errors.As(werr, &ee) && !errors.Is(werr, exec.ErrWaitDelay) {
				return code, fmt.Errorf("delivery: exec: waiting for %s: %w", name, werr)
			}
			log.Debug("delivery: exec: command exited", slog.Int(logKeyExitCode, code))
			return code, nil
		}
	}
}

func writeTokenFile(dir, token string) (string, error) {
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("delivery: exec: token directory: %w", err)
	}
	path := filepath.Join(dir, TokenFileName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("delivery: exec: token file: %w", err)
	}
	// No trailing newline: botocore and the Go SDK refuse a token file
	// that ends in one (delivery-contracts.md §0).
	_, werr := io.WriteString(f, token)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return "", fmt.Errorf("delivery: exec: token file: %w", err)
	}
	return path, nil
}

func startFailure(name string, err error) (int, error) {
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return ExitNotFound, fmt.Errorf("delivery: exec: %s: command not found", name)
	default:
		return ExitCannotRun, fmt.Errorf("delivery: exec: starting %s: %w", name, err)
	}
}

func signalExit(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return ExitSetupFailed
}

func exitStatus(ps *os.ProcessState) int {
	if ps == nil {
		return ExitCannotRun
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// conflictingEnv are removed from the child's environment. Each one would
// outrank the container endpoint, redirect it, or confuse the SDK about
// whose credentials it holds (delivery-contracts.md §1, §4):
var conflictingEnv = []string{
	// Static keys: first in every chain. Go also reads the short names;
	// botocore reads the legacy AWS_SECURITY_TOKEN.
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY", "AWS_SECRET_KEY",
	"AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CREDENTIAL_EXPIRATION", "AWS_ACCOUNT_ID",
	// Profiles: a named profile with credentials outranks the container
	// provider; without these the SDKs use [default] of the files below.
	"AWS_PROFILE", "AWS_DEFAULT_PROFILE",
	// Web identity: second in both chains.
	"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME",
	// Another container endpoint: Go reads RELATIVE_URI before FULL_URI.
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
	// Credential files, re-set to /dev/null below: botocore reads the
	// credentials file, the config file, AWS_CREDENTIAL_FILE (legacy EC2
	// tools) and BOTO_CONFIG (/etc/boto.cfg, ~/.boto) all before the
	// container provider.
	"AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_CREDENTIAL_FILE", "BOTO_CONFIG",
	"AWS_EC2_METADATA_DISABLED",
	// keyferry's own secrets: the job token and the admin token must not
	// reach the tool.
	"KEYFERRY_ID_TOKEN", "KEYFERRY_ID_TOKEN_FILE", "KEYFERRY_TOKEN",
}

type childSettings struct {
	url, token, tokenFile, region string
	keepConfigFile                bool
	unset                         []string
}

// childEnv builds the child's environment from the parent's.
//
// Shared files: the credentials file is lower in precedence than
// environment keys but higher than the container provider in both
// botocore and the Go SDK, so a [default] profile with keys in
// ~/.aws/credentials would win over the endpoint. The child therefore gets
// AWS_SHARED_CREDENTIALS_FILE=/dev/null (that file holds nothing else).
// The config file can also hold credentials for [default]
// (credential_process, role_arn + source_profile, SSO, static keys) that
// outrank the endpoint, so it is /dev/null too unless KeepConfigFile;
// what the child loses with it (region, endpoint URLs, retry settings)
// can be set through AWS_REGION, AWS_ENDPOINT_URL_<SERVICE>,
// AWS_MAX_ATTEMPTS and AWS_RETRY_MODE, which pass through. BOTO_CONFIG is
// /dev/null so botocore's legacy boto provider reads nothing.
//
// Both AWS_CONTAINER_AUTHORIZATION_TOKEN and its _FILE are set: botocore
// and Go prefer the file, aws-cli v2 reads only the variable. IMDS is
// disabled so that a failure of the endpoint is reported as such rather
// than as a slow IMDS timeout or, on EC2, as the instance's role.
func childEnv(parent []string, s childSettings) []string {
	drop := make(map[string]bool, len(conflictingEnv)+len(s.unset)+2)
	for _, k := range conflictingEnv {
		drop[envKey(k)] = true
	}
	for _, k := range s.unset {
		drop[envKey(k)] = true
	}
	if s.keepConfigFile {
		delete(drop, envKey("AWS_CONFIG_FILE"))
	}
	if s.region != "" {
		drop[envKey("AWS_REGION")] = true
		drop[envKey("AWS_DEFAULT_REGION")] = true
	}
	env := make([]string, 0, len(parent)+10)
	for _, kv := range parent {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || drop[envKey(k)] {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"AWS_CONTAINER_CREDENTIALS_FULL_URI="+s.url,
		"AWS_CONTAINER_AUTHORIZATION_TOKEN="+s.token,
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="+s.tokenFile,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_SHARED_CREDENTIALS_FILE="+os.DevNull,
		"BOTO_CONFIG="+os.DevNull,
	)
	if !s.keepConfigFile {
		env = append(env, "AWS_CONFIG_FILE="+os.DevNull)
	}
	if s.region != "" {
		env = append(env, "AWS_REGION="+s.region, "AWS_DEFAULT_REGION="+s.region)
	}
	return env
}

// envKey normalises a variable name: Windows names are case-insensitive.
func envKey(k string) string {
	if runtime.GOOS == "windows" {
		return strings.ToUpper(k)
	}
	return k
}
