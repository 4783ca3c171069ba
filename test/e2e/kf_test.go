//go:build e2e

// Helpers that drive the real keyferry binary: build or locate it, start
// `keyferry server` as a child process bound to 127.0.0.1, run CLI
// commands against it, and read its audit log. Nothing here calls
// keyferry's Go packages: the tests see keyferry exactly as a user does.

package e2e

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/test/e2e/peers"
)

// devAdminToken is the fixed admin token of the dev brokers (the
// kfa_<16 hex>_<43 base64url> format).
const devAdminToken = "kfa_0e2e0e2e0e2e0e2e_e2eAdminTokenForKeyferryEndToEndTests000000"

// keyferryEnv names the variable that points the tests at a built binary
// (the Makefile's test-e2e target sets it).
const keyferryEnv = "KEYFERRY_BIN"

var (
	builtDirMu sync.Mutex
	builtDir   string // temp dir of a binary built by keyferryBinary
)

// keyferryBinary returns $KEYFERRY_BIN, or builds ./cmd/keyferry once per
// test binary into a temp dir.
var keyferryBinary = sync.OnceValues(func() (string, error) {
	if p := os.Getenv(keyferryEnv); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		if fi, err := os.Stat(abs); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("%s=%s is not an executable file (run `make build`)", keyferryEnv, p)
		}
		return abs, nil
	}
	goBin, root, err := peers.GoModule()
	if err != nil {
		return "", fmt.Errorf("%w: set %s", err, keyferryEnv)
	}
	dir, err := os.MkdirTemp("", "keyferry-e2e-bin-")
	if err != nil {
		return "", err
	}
	builtDirMu.Lock()
	builtDir = dir
	builtDirMu.Unlock()
	bin := filepath.Join(dir, "keyferry")
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/keyferry")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/keyferry: %w\n%s", err, out)
	}
	return bin, nil
})

func removeBuiltKeyferry() {
	builtDirMu.Lock()
	defer builtDirMu.Unlock()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
}

// kfBin returns the keyferry binary or fails the test.
func kfBin(t testing.TB) string {
	t.Helper()
	bin, err := keyferryBinary()
	if err != nil {
		t.Fatalf("keyferry binary: %v", err)
	}
	return bin
}

// kfRun runs the keyferry CLI in a controlled environment (see peers.Run:
// no inherited AWS_* variables, a fresh HOME) with env added.
func kfRun(t testing.TB, env []string, args ...string) peers.Result {
	t.Helper()
	return peers.Run(t, "keyferry", env, nil, kfBin(t), args...)
}

// requireExecutable fails the test when a client program is missing, or
// skips it when KEYFERRY_E2E_ALLOW_SKIP=1 (the peers package's rule).
func requireExecutable(t testing.TB, path, fix string) {
	t.Helper()
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return
	}
	if os.Getenv(peers.AllowSkipEnv) == "1" {
		t.Skipf("%s not found (%s); skipping because %s=1", path, fix, peers.AllowSkipEnv)
	}
	t.Fatalf("%s not found: %s", path, fix)
}

// brokerOptions say how to start `keyferry server`.
type brokerOptions struct {
	// Dev starts `keyferry server --dev --dev-admin-token devAdminToken`.
	Dev bool
	// AWSAccessKey/AWSSecretKey, when set, are the broker's own AWS
	// credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in its
	// environment). Empty: the broker's environment holds no AWS key.
	AWSAccessKey, AWSSecretKey string
	// STSEndpoint is --aws-sts-endpoint.
	STSEndpoint string
	// Dir holds the store and the audit log (default t.TempDir()); a
	// second broker on the same Dir reuses them.
	Dir string
	// Listen is --listen (default 127.0.0.1:0: the kernel picks a port).
	Listen string
	// Args are added to the command line.
	Args []string
	// TLSCert and TLSKey, when set, are --tls-cert and --tls-key; the
	// certificate must be self-signed (it is also the clients' CA).
	TLSCert, TLSKey string
	// ExpectExit: the process is expected to exit during start-up;
	// startBroker returns once it has, without waiting for readiness.
	ExpectExit bool
}

// broker is a running `keyferry server` child process.
type broker struct {
	URL        string // http://127.0.0.1:PORT
	AdminToken string // the dev admin token (dev mode only)
	Dir        string
	StoreURL   string
	AuditPath  string
	CACert     string // the TLS certificate clients must trust (TLS only)
	Stdout     string // path of the captured stdout
	Stderr     string // path of the captured stderr (the JSON log)

	*peers.Child
}

// brokerReadyTimeout bounds start-up; keyferry is ready in well under a
// second on this machine.
const brokerReadyTimeout = 20 * time.Second

// startBroker starts `keyferry server` with opts and waits until its
// /readyz answers 200. The process is stopped (SIGTERM, then SIGKILL) in
// t.Cleanup and killed by the kernel if the test binary dies.
func startBroker(t *testing.T, opts brokerOptions) *broker {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	b := &broker{
		Dir:       opts.Dir,
		StoreURL:  "bolt://" + filepath.Join(opts.Dir, "keyferry.db"),
		AuditPath: filepath.Join(opts.Dir, "audit.log"),
	}
	logDir := t.TempDir()
	b.Stdout, b.Stderr = filepath.Join(logDir, "stdout"), filepath.Join(logDir, "stderr")
	args := []string{"server",
		"--listen", opts.Listen,
		"--storage", b.StoreURL,
		"--audit-path", b.AuditPath,
		"--aws-region", "us-east-1",
		"--log-format", "json", "--log-level", "debug",
	}
	if opts.STSEndpoint != "" {
		args = append(args, "--aws-sts-endpoint", opts.STSEndpoint)
	}
	if opts.TLSCert != "" {
		args = append(args, "--tls-cert", opts.TLSCert, "--tls-key", opts.TLSKey)
		b.CACert = opts.TLSCert
	}
	if opts.Dev {
		args = append(args, "--dev", "--dev-admin-token", devAdminToken)
		b.AdminToken = devAdminToken
	}
	args = append(args, opts.Args...)

	env := brokerEnv(t.TempDir())
	if opts.AWSAccessKey != "" {
		env = append(env, "AWS_ACCESS_KEY_ID="+opts.AWSAccessKey, "AWS_SECRET_ACCESS_KEY="+opts.AWSSecretKey)
	}
	if err := b.start(kfBin(t), args, env); err != nil {
		t.Fatalf("start keyferry server: %v", err)
	}
	t.Logf("keyferry %s", strings.Join(args, " "))
	t.Cleanup(func() {
		if b.Running() {
			b.stop(10 * time.Second)
		}
		if t.Failed() {
			t.Logf("keyferry server log (%s):\n%s", b.Stderr, peers.LogTail(b.Stderr, 40))
		}
	})
	if opts.ExpectExit {
		select {
		case <-b.Exited():
		case <-time.After(brokerReadyTimeout):
			b.stop(time.Second)
			t.Fatalf("keyferry server did not exit within %s", brokerReadyTimeout)
		}
		return b
	}
	if err := b.waitReady(); err != nil {
		b.stop(time.Second)
		t.Fatalf("keyferry server: %v\nstderr:\n%s\nstdout:\n%s", err, peers.LogTail(b.Stderr, 30), peers.LogTail(b.Stdout, 30))
	}
	return b
}

// brokerEnv is the test process's environment without AWS, keyferry or
// HOME settings, plus a fresh HOME (no ~/.aws) and IMDS turned off, so the
// broker sees only the AWS credentials a test gives it.
func brokerEnv(home string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "KEYFERRY_") || k == "HOME"
	})
	return append(env, "HOME="+home, "AWS_EC2_METADATA_DISABLED=true")
}

func (b *broker) start(bin string, args, env []string) error {
	stdout, err := os.Create(b.Stdout)
	if err != nil {
		return err
	}
	stderr, err := os.Create(b.Stderr)
	if err != nil {
		stdout.Close()
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = b.Dir
	cmd.Stdout, cmd.Stderr = stdout, stderr
	b.Child, err = peers.StartChild(cmd, func() {
		stdout.Close()
		stderr.Close()
	})
	return err
}

// waitReady reads the listen address from the "keyferry server ready" log
// line, then polls /readyz.
func (b *broker) waitReady() error {
	deadline := time.Now().Add(brokerReadyTimeout)
	scheme, client := "http://", http.DefaultClient
	if b.CACert != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(readFileErr(b.CACert))) {
			return fmt.Errorf("no certificate in %s", b.CACert)
		}
		scheme = "https://"
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	for time.Now().Before(deadline) {
		if !b.Running() {
			return fmt.Errorf("exited during start-up: %v", b.WaitErr())
		}
		if b.URL == "" {
			for _, l := range logLines(b.Stderr) {
				if l["msg"] == "keyferry server ready" {
					if addr, _ := l["listen"].(string); addr != "" {
						b.URL = scheme + addr
					}
				}
			}
		}
		if b.URL != "" {
			resp, err := client.Get(b.URL + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s", brokerReadyTimeout)
}

// stop sends SIGTERM and waits up to grace, then kills. It returns the
// exit code (-1 if killed by a signal) and how long the exit took.
func (b *broker) stop(grace time.Duration) (code int, took time.Duration) {
	start := time.Now()
	b.Stop(grace)
	return b.exitCode(), time.Since(start)
}

// exitCode is the exit status of an exited broker (-1: killed by a signal).
func (b *broker) exitCode() int {
	<-b.Exited()
	if b.Cmd.ProcessState == nil {
		return -1
	}
	return b.Cmd.ProcessState.ExitCode()
}

// env is the environment of a CLI command talking to this broker.
func (b *broker) env(extra ...string) []string {
	env := []string{"KEYFERRY_ADDR=" + b.URL}
	if b.CACert != "" {
		env = append(env, "KEYFERRY_CACERT="+b.CACert)
	}
	return append(env, extra...)
}

// adminEnv adds the admin token.
func (b *broker) adminEnv(extra ...string) []string {
	return b.env(append([]string{"KEYFERRY_TOKEN=" + b.AdminToken}, extra...)...)
}

// admin runs an admin CLI command and fails the test unless it succeeds.
func (b *broker) admin(t testing.TB, args ...string) peers.Result {
	t.Helper()
	res := kfRun(t, b.adminEnv(), args...)
	if !res.OK() {
		t.Fatalf("keyferry %s: %s", strings.Join(args, " "), res)
	}
	return res
}

// postJSON POSTs in as JSON to the broker's path (with a bearer token when
// auth is set) and decodes a JSON response body into out.
func (b *broker) postJSON(path, auth string, in, out any) (status int, err error) {
	body, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequest(http.MethodPost, b.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return resp.StatusCode, fmt.Errorf("response %d is not JSON: %w: %.200s", resp.StatusCode, err, raw)
	}
	return resp.StatusCode, nil
}

// apiErrorBody is the body of every keyferry error response.
type apiErrorBody struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

// writeFile writes content to a new file in a temp dir and returns its path.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFileErr(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// selfSignedCert writes a self-signed ECDSA certificate for 127.0.0.1 and
// its key, both PEM, and returns their paths.
func selfSignedCert(t testing.TB) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "keyferry e2e"},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath = writeFile(t, "tls.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyPath = writeFile(t, "tls.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})))
	return certPath, keyPath
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// devToken mints a GitLab-shaped job token with `keyferry dev token`.
func (b *broker) devToken(t testing.TB, args ...string) string {
	t.Helper()
	res := b.admin(t, append([]string{"dev", "token"}, args...)...)
	tok := strings.TrimSpace(res.Stdout)
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("keyferry dev token printed %d bytes that are not a JWT", len(tok))
	}
	return tok
}

// leaseJSON is a lease as `keyferry lease list/get --json` prints it; the
// fields are the documented wire names.
type leaseJSON struct {
	ID          string    `json:"id"`
	Role        string    `json:"role"`
	Type        string    `json:"type"`
	RoleARN     string    `json:"role_arn"`
	SessionName string    `json:"session_name"`
	AccessKeyID string    `json:"access_key_id"`
	State       string    `json:"state"`
	RevokedBy   string    `json:"revoked_by"`
	RevokeNote  string    `json:"revoke_note"`
	ExpiresAt   time.Time `json:"expires_at"`
	Identity    struct {
		Project  string `json:"project"`
		Pipeline string `json:"pipeline"`
		Job      string `json:"job"`
		User     string `json:"user"`
	} `json:"identity"`
}

// leases runs `keyferry lease list --json --all` with extra filters.
func (b *broker) leases(t testing.TB, filters ...string) []leaseJSON {
	t.Helper()
	res := b.admin(t, append([]string{"lease", "list", "--json", "--all"}, filters...)...)
	var out []leaseJSON
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
		t.Fatalf("lease list --json: not a JSON list of leases: %v\n%s", err, res.Stdout)
	}
	return out
}

// credsJSON is the output of `keyferry creds --format json`.
type credsJSON struct {
	LeaseID       string    `json:"lease_id"`
	Role          string    `json:"role"`
	Region        string    `json:"region"`
	RefreshHandle string    `json:"refresh_handle"`
	MaxExpiration time.Time `json:"max_expiration"`
	Credentials   struct {
		AccessKeyID     string    `json:"access_key_id"`
		SecretAccessKey string    `json:"secret_access_key"`
		SessionToken    string    `json:"session_token"`
		Expiration      time.Time `json:"expiration"`
		AccountID       string    `json:"account_id"`
		AssumedRoleARN  string    `json:"assumed_role_arn"`
	} `json:"credentials"`
}

// credsAsJSON runs `keyferry creds --format json` with the job token in
// KEYFERRY_ID_TOKEN and fails the test unless it succeeds.
func (b *broker) credsAsJSON(t testing.TB, role, jobToken string) credsJSON {
	t.Helper()
	res := kfRun(t, b.env("KEYFERRY_ID_TOKEN="+jobToken), "creds", "--role", role, "--format", "json")
	if !res.OK() {
		t.Fatalf("keyferry creds --role %s --format json: %s", role, res)
	}
	var c credsJSON
	if err := json.Unmarshal([]byte(res.Stdout), &c); err != nil {
		t.Fatalf("creds --format json output is not JSON: %v", err)
	}
	if c.LeaseID == "" || c.Credentials.AccessKeyID == "" || c.Credentials.SecretAccessKey == "" || c.Credentials.SessionToken == "" {
		t.Fatalf("creds --format json: incomplete response (lease %q, key %q)", c.LeaseID, c.Credentials.AccessKeyID)
	}
	return c
}

// auditEvent is one line of the audit log, in the documented schema.
type auditEvent struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	RequestID string    `json:"request_id"`
	Identity  *struct {
		Issuer   string `json:"iss"`
		Subject  string `json:"sub"`
		Project  string `json:"project"`
		Pipeline string `json:"pipeline"`
		Job      string `json:"job"`
		User     string `json:"user"`
	} `json:"identity"`
	Actor       string `json:"actor"`
	Role        string `json:"role"`
	Decision    string `json:"decision"`
	Reason      string `json:"reason"`
	Message     string `json:"message"`
	LeaseID     string `json:"lease_id"`
	AccessKeyID string `json:"access_key_id"`
	SessionName string `json:"session_name"`
	Object      string `json:"object"`
	PrevHash    string `json:"prev_hash"`
	Hash        string `json:"hash"`
}

// auditEvents parses the audit log (one JSON object per line).
func (b *broker) auditEvents(t testing.TB) []auditEvent {
	t.Helper()
	raw, err := os.ReadFile(b.AuditPath)
	if err != nil {
		t.Fatalf("read audit log: %v", err)
	}
	var out []auditEvent
	for i, line := range bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n")) {
		var ev auditEvent
		dec := json.NewDecoder(bytes.NewReader(line))
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("audit log line %d is not a JSON object: %v", i+1, err)
		}
		out = append(out, ev)
	}
	return out
}

// logLines parses a JSON-lines log file, skipping lines that are not JSON.
func logLines(path string) []map[string]any {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}
