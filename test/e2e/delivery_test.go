//go:build e2e

// End-to-end tests of keyferry's runner-side delivery channels (issue 3,
// "Prove it"). Every channel a CI job can use to hand keyferry credentials
// to a tool is driven through the real keyferry binary, and every client
// that matters (aws-cli v2 2.9.19, aws-cli v1, boto3, the AWS SDK for Go
// v2) runs `sts get-caller-identity` and an S3 put against SeaweedFS, which
// minted the session and enforces its policy. The client × channel table
// below is the one docs/delivery.md publishes.
//
// Run with: make build && KEYFERRY_BIN=$PWD/bin/keyferry go test -tags e2e ./test/e2e/ -run Delivery

package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/test/e2e/peers"
)

// deliveryRoleARN is what a client of the STS-compatible endpoint sets as
// AWS_ROLE_ARN: its last path segment names the keyferry role "ci".
const deliveryRoleARN = "arn:aws:iam::" + peers.SeaweedAccountID + ":role/ci"

// Matrix axes. The names are the ones docs/delivery.md uses.
const (
	chEnv       = "env"                // eval "$(keyferry creds --format env)"
	chProfile   = "profile"            // keyferry creds --write-profile kf
	chProcess   = "credential_process" // credential_process = keyferry credential-process
	chExec      = "exec"               // keyferry exec -- tool
	chServeIMDS = "serve-imds"         // keyferry serve --endpoints imds
	chServeCtr  = "serve-container"    // keyferry serve --endpoints container
	chSTS       = "sts-endpoint"       // AWS_ENDPOINT_URL_STS=<broker>/sts

	clAWSv2 = "aws-cli-v2"
	clAWSv1 = "aws-cli-v1"
	clBoto3 = "boto3"
	clGoSDK = "go-sdk"
)

// support is a cell's status in the client × channel table.
type support string

const (
	// supported: the channel's own contract (what keyferry prints or
	// documents) works as is.
	supported support = "supported"
	// workaround: the client misses part of the contract; an extra step,
	// tested here, makes it work.
	workaround support = "workaround"
	// unsupported: no way found; the test pins the failure.
	unsupported support = "unsupported"
)

// cellException is a cell that is not plainly supported. pin proves the
// client's failure with the channel's plain contract, so that the table
// is revisited when a client changes; fix adds the workaround to the
// cell's environment (nil for unsupported cells).
type cellException struct {
	channel, client string
	status          support
	reason          string // why the plain contract fails
	howto           string // the workaround
	pin             func(t *testing.T, m *matrix, job string)
	fix             func(t *testing.T, m *matrix, r *cellRunner)
}

// deliveryExceptions lists every cell of the matrix that is not plainly
// supported; every other cell is. docs/delivery.md reproduces this table:
//
//	channel            aws-cli-v2   aws-cli-v1  boto3  go-sdk
//	env                yes          yes         yes    yes
//	profile            yes          yes         yes    yes
//	credential_process yes          yes         yes    yes
//	exec               yes          yes         yes    yes
//	serve-imds         yes          yes         yes    yes
//	serve-container    workaround   yes         yes    yes
//	sts-endpoint       workaround   yes         yes    yes
//
// No cell is unsupported; an unsupported one would list its reason here
// and have only its pin run.
var deliveryExceptions = []cellException{
	{
		channel: chServeCtr, client: clAWSv2, status: workaround,
		reason: "aws-cli 2.9.19 does not read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: it sends no Authorization " +
			"header and keyferry answers 401 missing_authorization",
		howto: `also export AWS_CONTAINER_AUTHORIZATION_TOKEN="$(cat <token file>)" (visible in the environment)`,
		pin:   pinContainerTokenFileIgnored,
		fix: func(t *testing.T, m *matrix, r *cellRunner) {
			r.env = append(r.env, "AWS_CONTAINER_AUTHORIZATION_TOKEN="+readFile(t, envValue(r.env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")))
		},
	},
	{
		channel: chSTS, client: clAWSv2, status: workaround,
		reason: "aws-cli 2.9.19 ignores AWS_ENDPOINT_URL_STS, and has no endpoint_url or [services] config " +
			"(added in 2.13): its web-identity provider calls sts.us-east-1.amazonaws.com",
		howto: "AWS_DATA_PATH=<dir> holding sts/2011-06-15/endpoint-rule-set-1.json whose rules resolve to " +
			"<broker>/sts unless an explicit --endpoint-url is given",
		pin: pinAWSCLIv2IgnoresEndpointURLSTS,
		fix: func(t *testing.T, m *matrix, r *cellRunner) {
			r.env = append(r.env, "AWS_DATA_PATH="+stsRuleSetDir(t, m.b.URL+"/sts"))
		},
	},
}

func exceptionFor(channel, client string) *cellException {
	for i := range deliveryExceptions {
		if e := &deliveryExceptions[i]; e.channel == channel && e.client == client {
			return e
		}
	}
	return nil
}

// matrix is what every cell shares: the peers and one broker with role ci.
type matrix struct {
	p stackPeers
	b *broker
}

// clientCmd is one client invocation: its command line and stdin.
type clientCmd struct {
	argv  []string
	stdin []byte
}

// cellRunner runs a client's commands the way one channel delivers the
// credentials: in an environment, optionally under a wrapper command
// (keyferry exec).
type cellRunner struct {
	env  []string
	wrap []string
}

func (r cellRunner) run(t *testing.T, name string, c clientCmd) peers.Result {
	t.Helper()
	argv := append(slices.Clone(r.wrap), c.argv...)
	return peers.Run(t, name, r.env, c.stdin, argv[0], argv[1:]...)
}

// deliveryClient builds a real client's invocations. Every command names
// SeaweedFS explicitly (--endpoint-url, endpoint_url=, -endpoint), which
// beats AWS_ENDPOINT_URL_STS for the tool's own calls while the credential
// providers still use the channel's settings.
type deliveryClient struct {
	name     string
	identity func(t *testing.T, endpoint string) clientCmd
	put      func(t *testing.T, endpoint, bucket, key string) clientCmd
}

func awsCLICmd(name string, prefix func(t testing.TB) []string) deliveryClient {
	return deliveryClient{
		name: name,
		identity: func(t *testing.T, endpoint string) clientCmd {
			return clientCmd{argv: append(prefix(t), "sts", "get-caller-identity", "--output", "json", "--endpoint-url", endpoint)}
		},
		put: func(t *testing.T, endpoint, bucket, key string) clientCmd {
			file := writeFile(t, "body.txt", "hello from "+name)
			return clientCmd{argv: append(prefix(t), "s3", "cp", file, "s3://"+bucket+"/"+key, "--endpoint-url", endpoint)}
		},
	}
}

// boto3CellScript calls STS or S3 with boto3's default credential chain
// and reports the AccessKeyId it signed with. Errors: one line on stderr
// in botocore's wording, exit 1.
const boto3CellScript = `
import json, sys
import boto3, botocore.exceptions
from botocore.config import Config

op, endpoint = sys.argv[1], sys.argv[2]
session = boto3.Session()
try:
    if op == "identity":
        out = session.client("sts", endpoint_url=endpoint).get_caller_identity()
        res = {"Arn": out["Arn"]}
    else:
        s3 = session.client("s3", endpoint_url=endpoint,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
        s3.put_object(Bucket=sys.argv[3], Key=sys.argv[4], Body=b"hello from boto3")
        res = {"putObject": "ok"}
    res["accessKeyId"] = session.get_credentials().get_frozen_credentials().access_key
except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
    print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
    sys.exit(1)
print(json.dumps(res))
`

func goSDKClientPath(t *testing.T) string {
	t.Helper()
	bin, err := peers.GoSDKClientBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

var deliveryClients = []deliveryClient{
	awsCLICmd(clAWSv2, func(t testing.TB) []string {
		requireExecutable(t, peers.AWSCLIv2Path, "install it with `scripts/peers.sh clients`")
		return []string{peers.AWSCLIv2Path}
	}),
	awsCLICmd(clAWSv1, peers.AWSCLIv1Command),
	{
		name: clBoto3,
		identity: func(t *testing.T, endpoint string) clientCmd {
			return clientCmd{argv: []string{peers.PythonExe(t), "-", "identity", endpoint}, stdin: []byte(boto3CellScript)}
		},
		put: func(t *testing.T, endpoint, bucket, key string) clientCmd {
			return clientCmd{argv: []string{peers.PythonExe(t), "-", "put", endpoint, bucket, key}, stdin: []byte(boto3CellScript)}
		},
	},
	{
		name: clGoSDK,
		identity: func(t *testing.T, endpoint string) clientCmd {
			return clientCmd{argv: []string{goSDKClientPath(t), "-endpoint=" + endpoint, "-identity"}}
		},
		put: func(t *testing.T, endpoint, bucket, key string) clientCmd {
			return clientCmd{argv: []string{goSDKClientPath(t), "-endpoint=" + endpoint, "-bucket=" + bucket, "-key=" + key, "-body=hello from go-sdk"}}
		},
	},
}

// usedKey is the AccessKeyId a client reports having signed with (boto3:
// accessKeyId; gosdkclient: credentials.accessKeyId), or "" for the CLIs,
// which do not say.
func usedKey(stdout string) string {
	var out struct {
		AccessKeyID string `json:"accessKeyId"`
		Credentials struct {
			AccessKeyID string `json:"accessKeyId"`
		} `json:"credentials"`
	}
	if json.Unmarshal([]byte(stdout), &out) != nil {
		return ""
	}
	if out.AccessKeyID != "" {
		return out.AccessKeyID
	}
	return out.Credentials.AccessKeyID
}

// deliveryChannel sets up one way of delivering credentials for one job.
// leasesPerCell is how many leases a cell's three client runs must leave:
// 1 when the channel issues once per job (and caches), 3 when every
// client process gets its own issuance.
type deliveryChannel struct {
	name          string
	leasesPerCell int
	setup         func(t *testing.T, m *matrix, jobToken string) cellRunner
}

var deliveryChannels = []deliveryChannel{
	{chEnv, 1, func(t *testing.T, m *matrix, tok string) cellRunner {
		res := kfRun(t, m.b.env("KEYFERRY_ID_TOKEN="+tok), "creds", "--role", "ci", "--format", "env")
		if !res.OK() {
			t.Fatalf("keyferry creds --format env: %s", res)
		}
		return cellRunner{env: shellExports(t, res.Stdout)}
	}},
	{chProfile, 1, func(t *testing.T, m *matrix, tok string) cellRunner {
		home := t.TempDir()
		res := kfRun(t, m.b.env("KEYFERRY_ID_TOKEN="+tok, "HOME="+home), "creds", "--role", "ci", "--write-profile", "kf")
		if !res.OK() {
			t.Fatalf("keyferry creds --write-profile kf: %s", res)
		}
		if res.Stdout != "" {
			t.Errorf("creds --write-profile printed %d bytes on stdout, want none", len(res.Stdout))
		}
		file := filepath.Join(home, ".aws", "credentials")
		if fi, err := os.Stat(file); err != nil {
			t.Fatalf("creds --write-profile wrote no %s: %v", file, err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", file, fi.Mode().Perm())
		}
		if !strings.Contains(readFile(t, file), "[kf]\naws_access_key_id = ") {
			t.Errorf("%s has no [kf] section with a key", file)
		}
		return cellRunner{env: []string{"HOME=" + home, "AWS_PROFILE=kf", "AWS_REGION=" + kfRegion, "AWS_DEFAULT_REGION=" + kfRegion}}
	}},
	{chProcess, 1, func(t *testing.T, m *matrix, tok string) cellRunner {
		return cellRunner{env: credentialProcessProfile(t, m.b, tok, filepath.Join(t.TempDir(), "cache"))}
	}},
	{chExec, 3, func(t *testing.T, m *matrix, tok string) cellRunner {
		return cellRunner{env: m.b.env("KEYFERRY_ID_TOKEN=" + tok), wrap: []string{kfBin(t), "exec", "--role", "ci", "--"}}
	}},
	{chServeIMDS, 1, func(t *testing.T, m *matrix, tok string) cellRunner {
		s := startServe(t, m.b, tok, "--endpoints", "imds")
		return cellRunner{env: []string{
			"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + s.exports["AWS_EC2_METADATA_SERVICE_ENDPOINT"],
			"AWS_EC2_METADATA_DISABLED=false", "AWS_REGION=" + kfRegion, "AWS_DEFAULT_REGION=" + kfRegion,
		}}
	}},
	{chServeCtr, 1, func(t *testing.T, m *matrix, tok string) cellRunner {
		s := startServe(t, m.b, tok, "--endpoints", "container", "--token-file-out", filepath.Join(t.TempDir(), "kf", "token"))
		return cellRunner{env: []string{
			"AWS_CONTAINER_CREDENTIALS_FULL_URI=" + s.exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
			"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=" + s.exports["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"],
			"AWS_REGION=" + kfRegion, "AWS_DEFAULT_REGION=" + kfRegion,
		}}
	}},
	{chSTS, 3, func(t *testing.T, m *matrix, tok string) cellRunner {
		return cellRunner{env: stsEndpointEnv(t, m.b, tok)}
	}},
}

// credentialProcessProfile writes ~/.aws/config with a profile whose
// credential_process is `keyferry credential-process` (an absolute path and
// flags: botocore runs it without a shell, Go with sh -c) and returns the
// client environment selecting it. KEYFERRY_ADDR, KEYFERRY_ID_TOKEN and
// KEYFERRY_CACHE_DIR reach keyferry through the client's environment.
func credentialProcessProfile(t testing.TB, b *broker, jobToken, cacheDir string) []string {
	t.Helper()
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".aws"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("[profile kf]\ncredential_process = %s credential-process --role ci\nregion = %s\n", kfBin(t), kfRegion)
	if err := os.WriteFile(filepath.Join(home, ".aws", "config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return b.env("HOME="+home, "AWS_PROFILE=kf", "KEYFERRY_ID_TOKEN="+jobToken, "KEYFERRY_CACHE_DIR="+cacheDir)
}

// stsEndpointEnv is the environment of a client of the STS-compatible
// endpoint: the job token in a file without a trailing newline (the SDKs
// send it byte for byte), the keyferry role in AWS_ROLE_ARN.
func stsEndpointEnv(t testing.TB, b *broker, jobToken string) []string {
	t.Helper()
	return []string{
		"AWS_ENDPOINT_URL_STS=" + b.URL + "/sts",
		"AWS_ROLE_ARN=" + deliveryRoleARN,
		"AWS_WEB_IDENTITY_TOKEN_FILE=" + writeFile(t, "job.jwt", jobToken),
		"AWS_REGION=" + kfRegion, "AWS_DEFAULT_REGION=" + kfRegion,
	}
}

// stsRuleSetDir writes the aws-cli v2 workaround: an AWS_DATA_PATH
// directory whose STS endpoint rule set sends every STS call to stsURL,
// unless the command gives --endpoint-url. The parameters are those of the
// rule set bundled with aws-cli 2.9.19; botocore's loader takes the first
// sts/2011-06-15/endpoint-rule-set-1.json on AWS_DATA_PATH.
func stsRuleSetDir(t testing.TB, stsURL string) string {
	t.Helper()
	dir := t.TempDir()
	ruleSet := map[string]any{
		"version": "1.0",
		"parameters": map[string]any{
			"Region":            map[string]any{"builtIn": "AWS::Region", "required": false, "type": "String"},
			"UseDualStack":      map[string]any{"builtIn": "AWS::UseDualStack", "required": true, "default": false, "type": "Boolean"},
			"UseFIPS":           map[string]any{"builtIn": "AWS::UseFIPS", "required": true, "default": false, "type": "Boolean"},
			"Endpoint":          map[string]any{"builtIn": "SDK::Endpoint", "required": false, "type": "String"},
			"UseGlobalEndpoint": map[string]any{"builtIn": "AWS::STS::UseGlobalEndpoint", "required": true, "default": false, "type": "Boolean"},
		},
		"rules": []any{
			map[string]any{
				"conditions": []any{map[string]any{"fn": "isSet", "argv": []any{map[string]any{"ref": "Endpoint"}}}},
				"endpoint":   map[string]any{"url": map[string]any{"ref": "Endpoint"}, "properties": map[string]any{}, "headers": map[string]any{}},
				"type":       "endpoint",
			},
			map[string]any{
				"conditions": []any{},
				"endpoint":   map[string]any{"url": stsURL, "properties": map[string]any{}, "headers": map[string]any{}},
				"type":       "endpoint",
			},
		},
	}
	raw, err := json.Marshal(ruleSet)
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sts", "2011-06-15")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "endpoint-rule-set-1.json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// serveProc is a running `keyferry serve`, managed like the server child
// (start, stop and exit code of broker).
type serveProc struct {
	*broker
	exports map[string]string // the variables it told us to export
	addr    string            // host:port
}

// startServe runs `keyferry serve --role ci args…` with the job token in
// KEYFERRY_ID_TOKEN, waits until it prints the variables to export, and
// stops it (SIGTERM, expecting exit 0) in t.Cleanup.
func startServe(t *testing.T, b *broker, jobToken string, args ...string) *serveProc {
	t.Helper()
	dir := t.TempDir()
	s := &serveProc{broker: &broker{
		Dir: dir, Stdout: filepath.Join(dir, "stdout"), Stderr: filepath.Join(dir, "stderr"),
	}}
	env := append(brokerEnv(t.TempDir()), b.env("KEYFERRY_ID_TOKEN="+jobToken)...)
	args = append([]string{"serve", "--role", "ci"}, args...)
	if err := s.start(kfBin(t), args, env); err != nil {
		t.Fatalf("start keyferry serve: %v", err)
	}
	t.Cleanup(func() {
		if code, took := s.stop(10 * time.Second); code != 0 {
			t.Errorf("keyferry serve after SIGTERM: exit %d in %s, want 0; stderr:\n%s", code, took.Round(time.Millisecond), peers.LogTail(s.Stderr, 20))
		}
	})
	// The variables serve prints for its --endpoints (default both).
	want := []string{"AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"}
	if i := slices.Index(args, "--endpoints"); i >= 0 && i+1 < len(args) {
		switch args[i+1] {
		case "imds":
			want = want[:1]
		case "container":
			want = want[1:]
		}
	}
	addrRE := regexp.MustCompile(`^keyferry serve: role ci on (\S+)$`)
	deadline := time.Now().Add(15 * time.Second)
	for {
		s.exports = map[string]string{}
		for _, line := range strings.Split(readFileErr(s.Stdout), "\n") {
			line = strings.TrimSpace(line)
			if m := addrRE.FindStringSubmatch(line); m != nil {
				s.addr = m[1]
			}
			if kv, ok := strings.CutPrefix(line, "export "); ok {
				k, v, _ := strings.Cut(kv, "=")
				s.exports[k] = v
			}
		}
		if s.addr != "" && !slices.ContainsFunc(want, func(k string) bool { return s.exports[k] == "" }) {
			return s
		}
		if !s.Running() {
			t.Fatalf("keyferry serve exited (code %d): stderr:\n%s", s.exitCode(), peers.LogTail(s.Stderr, 20))
		}
		if time.Now().After(deadline) {
			t.Fatalf("keyferry serve printed no endpoint within 15s: stdout %q, stderr:\n%s", readFileErr(s.Stdout), peers.LogTail(s.Stderr, 20))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// jobLeases returns the broker's leases of one job.
func jobLeases(t testing.TB, b *broker, job string) []leaseJSON {
	t.Helper()
	var out []leaseJSON
	for _, l := range b.leases(t, "--project", kfProject) {
		if l.Identity.Job == job {
			out = append(out, l)
		}
	}
	return out
}

// cellOutcome is one line of the matrix report.
type cellOutcome struct {
	channel, client string
	status          support
	result          string
}

// TestDeliveryMatrix: every channel × every client, against SeaweedFS. A
// cell passes when the client's caller identity is the session keyferry
// minted for that cell's job (session name gl-group-app-<job>, recorded
// in a lease of that job; for boto3 and the Go SDK also the AccessKeyId
// they signed with), its put into ci-bucket lands, and its put into
// other-bucket is AccessDenied. Cells in deliveryExceptions also pin how
// the client fails without the workaround.
func TestDeliveryMatrix(t *testing.T) {
	t.Parallel()
	p := getBrokerPeers(t)
	m := &matrix{p: p, b: startDevBroker(t, p)}
	m.b.admin(t, "role", "write", "-f", writeFile(t, "role.yaml", ciRoleYAML))

	var (
		mu       sync.Mutex
		outcomes []cellOutcome
	)
	t.Run("cells", func(t *testing.T) {
		for ci, ch := range deliveryChannels {
			for cj, c := range deliveryClients {
				job := strconv.Itoa(20000 + 100*ci + 10*cj)
				t.Run(ch.name+"/"+c.name, func(t *testing.T) {
					t.Parallel()
					o := cellOutcome{channel: ch.name, client: c.name, status: supported}
					ex := exceptionFor(ch.name, c.name)
					if ex != nil {
						o.status = ex.status
						ex.pin(t, m, job+"1")
					}
					if ex == nil || ex.status != unsupported {
						runCell(t, m, ch, c, ex, job)
					}
					o.result = "pass"
					if t.Failed() {
						o.result = "FAIL"
					}
					mu.Lock()
					outcomes = append(outcomes, o)
					mu.Unlock()
				})
			}
		}
	})

	var report strings.Builder
	report.WriteString("client × channel results:\n| channel | " + clAWSv2 + " | " + clAWSv1 + " | " + clBoto3 + " | " + clGoSDK + " |\n|---|---|---|---|---|\n")
	for _, ch := range deliveryChannels {
		report.WriteString("| " + ch.name + " |")
		for _, c := range deliveryClients {
			cell := "not run"
			for _, o := range outcomes {
				if o.channel == ch.name && o.client == c.name {
					cell = o.result + " (" + string(o.status) + ")"
				}
			}
			report.WriteString(" " + cell + " |")
		}
		report.WriteString("\n")
	}
	t.Log(report.String())
}

// runCell runs one cell: identity, allowed put, denied put, then the
// leases of the cell's job.
func runCell(t *testing.T, m *matrix, ch deliveryChannel, c deliveryClient, ex *cellException, job string) {
	t.Helper()
	sw := m.p.sw
	r := ch.setup(t, m, m.b.devToken(t, "--project", kfProject, "--job-id", job))
	if ex != nil && ex.fix != nil {
		ex.fix(t, m, &r)
	}
	var used []string

	res := r.run(t, c.name, c.identity(t, sw.Endpoint))
	if !res.OK() {
		t.Fatalf("get-caller-identity: %s", res)
	}
	session := "gl-group-app-" + job
	if got, want := callerARN(t, res.Stdout), stsARNPrefix+kfCIRole+"/"+session; got != want {
		t.Errorf("caller ARN: got %q, want %q (the session keyferry names for job %s)", got, want, job)
	}
	if k := usedKey(res.Stdout); k != "" {
		used = append(used, k)
	}

	key := uniqueKey(t, c.name)
	res = r.run(t, c.name, c.put(t, sw.Endpoint, kfCIBucket, key))
	if !res.OK() {
		t.Errorf("put into %s (allowed by ci-role): %s", kfCIBucket, res)
	} else if _, err := getObject(t, sw, kfCIBucket, key); err != nil {
		t.Errorf("the object put is not in %s: %v", kfCIBucket, err)
	}
	if k := usedKey(res.Stdout); k != "" {
		used = append(used, k)
	}

	res = r.run(t, c.name, c.put(t, sw.Endpoint, kfOtherBkt, key))
	if res.OK() || !peers.IsAccessDenied(res.Stderr) {
		t.Errorf("put into %s (outside ci-role's policy): got %s, want AccessDenied", kfOtherBkt, res)
	}

	ls := jobLeases(t, m.b, job)
	keys := map[string]bool{}
	for _, l := range ls {
		keys[l.AccessKeyID] = true
		if l.Role != "ci" || l.Type != "assume_role" || l.SessionName != session || l.RoleARN != peers.RoleARN(kfCIRole) {
			t.Errorf("lease %s: role %q type %q session %q role_arn %q, want ci/assume_role/%s/%s",
				l.ID, l.Role, l.Type, l.SessionName, l.RoleARN, session, peers.RoleARN(kfCIRole))
		}
	}
	if len(ls) != ch.leasesPerCell {
		t.Errorf("job %s has %d leases, want %d for channel %s", job, len(ls), ch.leasesPerCell, ch.name)
	}
	for _, k := range used {
		if !keys[k] {
			t.Errorf("%s signed with AccessKeyId %q, which is not a lease of job %s", c.name, k, job)
		}
	}
}

// pinContainerTokenFileIgnored: with only the token file `serve` prints,
// aws-cli v2 sends no Authorization header.
func pinContainerTokenFileIgnored(t *testing.T, m *matrix, job string) {
	t.Helper()
	s := startServe(t, m.b, m.b.devToken(t, "--project", kfProject, "--job-id", job),
		"--endpoints", "container", "--token-file-out", filepath.Join(t.TempDir(), "token"))
	env := []string{
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=" + s.exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=" + s.exports["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"],
		"AWS_REGION=" + kfRegion,
	}
	res := peers.AWSCLIv2(t, env, "sts", "get-caller-identity", "--endpoint-url", m.p.sw.Endpoint)
	if res.OK() || !strings.Contains(res.Stderr, "401") || !strings.Contains(res.Stderr, "missing_authorization") {
		t.Errorf("pin: aws-cli v2 with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE only: got %s, want a 401 missing_authorization "+
			"(if it now works, aws-cli reads the token file: update deliveryExceptions and docs/delivery.md)", res)
	}
}

// pinAWSCLIv2IgnoresEndpointURLSTS: aws-cli v2 with AWS_ENDPOINT_URL_STS
// (and, to be sure, the profile's endpoint_url and a [services] section)
// still goes to AWS's own STS. An HTTPS proxy that records CONNECT targets
// and refuses them all stands in for the internet, so nothing leaves the
// machine; the broker must see nothing of the job.
func pinAWSCLIv2IgnoresEndpointURLSTS(t *testing.T, m *matrix, job string) {
	t.Helper()
	proxy := startConnectRecorder(t)
	tok := m.b.devToken(t, "--project", kfProject, "--job-id", job)
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".aws"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("[default]\nservices = kf\nendpoint_url = %[1]s\n[services kf]\nsts =\n  endpoint_url = %[1]s\n", m.b.URL+"/sts")
	if err := os.WriteFile(filepath.Join(home, ".aws", "config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(stsEndpointEnv(t, m.b, tok), "HOME="+home, "HTTPS_PROXY="+proxy.url)
	res := peers.AWSCLIv2(t, env, "s3", "cp", writeFile(t, "a.txt", "x"), "s3://"+kfCIBucket+"/"+uniqueKey(t, clAWSv2), "--endpoint-url", m.p.sw.Endpoint)
	if res.OK() {
		t.Errorf("pin: aws-cli v2 with AWS_ENDPOINT_URL_STS: succeeded; if it now honours it, update deliveryExceptions and docs/delivery.md")
	}
	if got := proxy.targets(); !slices.Contains(got, "sts.us-east-1.amazonaws.com:443") {
		t.Errorf("pin: aws-cli v2 asked the proxy for %q, want sts.us-east-1.amazonaws.com:443", got)
	}
	if ls := jobLeases(t, m.b, job); len(ls) != 0 {
		t.Errorf("pin: the broker issued %d leases for job %s, want none", len(ls), job)
	}
}

// connectRecorder is an HTTP proxy that records the CONNECT targets it is
// asked for and refuses every one by closing the connection.
type connectRecorder struct {
	url string
	mu  sync.Mutex
	got []string
}

func startConnectRecorder(t testing.TB) *connectRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	r := &connectRecorder{url: "http://" + ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "CONNECT" {
					r.mu.Lock()
					r.got = append(r.got, f[1])
					r.mu.Unlock()
				}
			}()
		}
	}()
	return r
}

func (r *connectRecorder) targets() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// TestDeliveryExecChildEnvironment: what `keyferry exec` hands the child,
// seen from inside it: the endpoint on 127.0.0.1, both token forms, a
// private token file without a trailing newline, both region variables,
// /dev/null config files; no job token, no keys, no profile.
func TestDeliveryExecChildEnvironment(t *testing.T) {
	t.Parallel()
	p := getBrokerPeers(t)
	b := startDevBroker(t, p)
	b.admin(t, "role", "write", "-f", writeFile(t, "role.yaml", ciRoleYAML))
	tok := b.devToken(t, "--project", kfProject, "--job-id", "30001")
	parent := b.env("KEYFERRY_ID_TOKEN="+tok, "AWS_ACCESS_KEY_ID=AKIAPARENT0000000000", "AWS_SECRET_ACCESS_KEY=parentsecret0000",
		"AWS_PROFILE=parent", "AWS_WEB_IDENTITY_TOKEN_FILE=/nonexistent", "KEYFERRY_TOKEN=kfa_x")
	script := `f="$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"; echo "mode=$(stat -c %a "$f") dirmode=$(stat -c %a "$(dirname "$f")") bytes=$(wc -c <"$f") lines=$(wc -l <"$f")"; env`
	res := peers.Run(t, "exec", parent, nil, kfBin(t), "exec", "--role", "ci", "--", "/bin/sh", "-c", script)
	if !res.OK() {
		t.Fatalf("keyferry exec -- sh: %s", res)
	}
	lines := strings.Split(res.Stdout, "\n")
	if got := lines[0]; !regexp.MustCompile(`^mode=600 dirmode=700 bytes=43 lines=0$`).MatchString(got) {
		t.Errorf("token file: got %q, want mode 600 in a 700 directory, 43 bytes, no newline", got)
	}
	child := lines[1:]
	for _, k := range []string{"KEYFERRY_ID_TOKEN", "KEYFERRY_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		if v := envValue(child, k); v != "" {
			t.Errorf("the child sees %s", k)
		}
	}
	if strings.Contains(res.Stdout, tok) {
		t.Error("the job token reached the child")
	}
	uri := envValue(child, "AWS_CONTAINER_CREDENTIALS_FULL_URI")
	if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+/creds$`).MatchString(uri) {
		t.Errorf("AWS_CONTAINER_CREDENTIALS_FULL_URI=%q, want http://127.0.0.1:PORT/creds", uri)
	}
	want := map[string]string{
		"AWS_REGION": kfRegion, "AWS_DEFAULT_REGION": kfRegion, "AWS_CONFIG_FILE": os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_EC2_METADATA_DISABLED": "true",
	}
	for k, v := range want {
		if got := envValue(child, k); got != v {
			t.Errorf("child %s=%q, want %q", k, got, v)
		}
	}
	if len(envValue(child, "AWS_CONTAINER_AUTHORIZATION_TOKEN")) != 43 {
		t.Error("the child has no 43-character AWS_CONTAINER_AUTHORIZATION_TOKEN (aws-cli v2 reads only the variable)")
	}
	if f := envValue(child, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); f == "" {
		t.Error("the child has no AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
	} else if _, err := os.Stat(filepath.Dir(f)); !os.IsNotExist(err) {
		t.Errorf("the token directory %s is left after exec: %v", filepath.Dir(f), err)
	}
}

// TestDeliveryCredentialProcessConcurrency: ten aws-cli v2 commands start
// at once with an empty cache; keyferry credential-process makes exactly
// one issuance between them, and later commands are cache hits. Both for
// a role of 1 hour and for one of 15 minutes, the shortest session STS
// grants (and what --ttl 900 asks for): the `exec` endpoint serves such
// credentials until half their lifetime, and the disk cache must not
// turn every aws command into a broker request either.
func TestDeliveryCredentialProcessConcurrency(t *testing.T) {
	t.Parallel()
	requireExecutable(t, peers.AWSCLIv2Path, "install it with `scripts/peers.sh clients`")
	p := getBrokerPeers(t)
	for _, tc := range []struct {
		name, ttl, job string
	}{
		{"role ttl 1h", "1h", "31001"},
		{"role ttl 15m", "15m", "31002"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startDevBroker(t, p)
			b.admin(t, "role", "write", "-f", writeFile(t, "role.yaml", strings.Replace(ciRoleYAML, "ttl: 1h", "ttl: "+tc.ttl, 1)))
			credentialProcessConcurrency(t, p, b, tc.job)
		})
	}
}

func credentialProcessConcurrency(t *testing.T, p stackPeers, b *broker, job string) {
	cacheDir := filepath.Join(t.TempDir(), "cache")
	env := credentialProcessProfile(t, b, b.devToken(t, "--project", kfProject, "--job-id", job), cacheDir)
	file := writeFile(t, "artifact.txt", "concurrent artifact\n")

	round := func(n int, prefix string) {
		t.Helper()
		var wg sync.WaitGroup
		results := make([]peers.Result, n)
		keys := make([]string, n)
		for i := range n {
			keys[i] = uniqueKey(t, fmt.Sprintf("%s-%d", prefix, i))
			wg.Go(func() {
				results[i] = peers.AWSCLIv2(t, env, "s3", "cp", file, "s3://"+kfCIBucket+"/"+keys[i], "--endpoint-url", p.sw.Endpoint)
			})
		}
		wg.Wait()
		for i, res := range results {
			if !res.OK() {
				t.Errorf("%s %d: aws s3 cp: %s", prefix, i, res)
			} else if _, err := getObject(t, p.sw, kfCIBucket, keys[i]); err != nil {
				t.Errorf("%s %d: object not in %s: %v", prefix, i, kfCIBucket, err)
			}
		}
	}
	// count returns the broker requests the job made, by audit event type
	// and decision (issue/allow, refresh/allow, refresh/deny, …).
	count := func() map[string]int {
		n := map[string]int{}
		for _, ev := range b.auditEvents(t) {
			if ev.Identity != nil && ev.Identity.Job == job && ev.Type != "revoke" {
				n[ev.Type+"/"+ev.Decision]++
			}
		}
		return n
	}
	one := map[string]int{"issue/allow": 1}

	start := time.Now()
	round(10, "first")
	t.Logf("10 concurrent aws s3 cp with an empty cache: %s", time.Since(start).Round(time.Millisecond))
	if got := count(); !maps.Equal(got, one) {
		t.Errorf("after 10 concurrent runs: broker requests of job %s by audit event %v, want exactly one issuance %v", job, got, one)
	}
	ls := jobLeases(t, b, job)
	if len(ls) != 1 {
		t.Fatalf("after 10 concurrent runs: %d leases for job %s, want 1", len(ls), job)
	}

	round(5, "again")
	if got := count(); !maps.Equal(got, one) {
		t.Errorf("after 5 more runs: broker requests %v, want still only the first issuance (cache hits)", got)
	}
	if after := jobLeases(t, b, job); len(after) != 1 || after[0].AccessKeyID != ls[0].AccessKeyID {
		t.Errorf("after 5 more runs: %d leases, want only %s with key %s", len(after), ls[0].ID, ls[0].AccessKeyID)
	}

	// The cache: a private directory holding one private entry.
	if fi, err := os.Stat(cacheDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("cache directory: %v (mode %v), want mode 0700", err, fi.Mode().Perm())
	}
	entries, _ := filepath.Glob(filepath.Join(cacheDir, "*.json"))
	if len(entries) != 1 {
		t.Fatalf("cache entries: got %v, want exactly one", entries)
	}
	if fi, err := os.Stat(entries[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("cache entry: %v (mode %v), want mode 0600", err, fi.Mode().Perm())
	}
}

// jwtExpiry reads the exp claim of a JWT (no verification: the test
// minted it).
func jwtExpiry(t testing.TB, tok string) time.Time {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatal("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(raw, &c); err != nil || c.Exp == 0 {
		t.Fatalf("no exp claim: %v", err)
	}
	return time.Unix(c.Exp, 0)
}

// longJobSession is how long the long-job peer's STS sessions last.
// SeaweedFS caps every session at sts.maxSessionLength (tokenDuration is
// only the default when DurationSeconds is absent, and keyferry always
// sends the role's ttl), without enforcing the 900 s minimum on it.
const longJobSession = 30 * time.Second

// boto3LoopScript is a long job: one boto3 session and S3 client for the
// whole run, n puts interval apart, one JSON line per put with the
// AccessKeyId it signed with.
const boto3LoopScript = `
import json, sys, time, datetime
import boto3
from botocore.config import Config

endpoint, bucket, prefix, n, interval = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
session = boto3.Session()
s3 = session.client("s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
failed = False
for i in range(n):
    if i:
        time.sleep(interval)
    line = {"i": i, "time": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    try:
        line["accessKeyId"] = session.get_credentials().get_frozen_credentials().access_key
        s3.put_object(Bucket=bucket, Key="%s-%d" % (prefix, i), Body=b"long job")
        line["putObject"] = "ok"
    except Exception as e:
        line["error"] = "%s: %s" % (type(e).__name__, e)
        print("put %d: %s" % (i, line["error"]), file=sys.stderr)
        failed = True
    print(json.dumps(line), flush=True)
sys.exit(1 if failed else 0)
`

// loopLine is one put of a long job, as both loop programs print it.
type loopLine struct {
	I           int       `json:"i"`
	Time        time.Time `json:"time"`
	AccessKeyID string    `json:"accessKeyId"`
	PutObject   string    `json:"putObject"`
	Error       string    `json:"error"`
}

// TestDeliveryLongJobRefresh: two long jobs, boto3 and the Go SDK, each
// under `keyferry exec`, keep uploading while their STS sessions (30 s on
// this peer) expire again and again, and after the job's JWT (60 s) has
// expired. keyferry refreshes with the lease's refresh handle; the
// clients refetch from the exec endpoint by themselves.
func TestDeliveryLongJobRefresh(t *testing.T) {
	t.Parallel()
	sw := peers.StartSeaweedFS(t, peers.SeaweedConfig{
		Policies:         putCIPolicies(),
		Roles:            []peers.SeaweedRole{putCIRole(peers.SeaweedRole{Name: kfCIRole, TrustAssumeRole: true})},
		Buckets:          []string{kfCIBucket},
		MaxSessionLength: longJobSession,
	})
	b := startBroker(t, brokerOptions{Dev: true, AWSAccessKey: sw.AdminAccessKey, AWSSecretKey: sw.AdminSecretKey, STSEndpoint: sw.Endpoint})
	// keyferry roles ask STS for at least 15 minutes; the peer cuts that.
	b.admin(t, "role", "write", "-f", writeFile(t, "role.yaml", strings.Replace(ciRoleYAML, "ttl: 1h", "ttl: 15m\n  max_ttl: 1h", 1)))

	// Control: the peer's sessions really are short, and it refuses an
	// expired one (checked at the end): refreshing is necessary.
	control := b.credsAsJSON(t, "ci", b.devToken(t, "--project", kfProject, "--job-id", "32000"))
	if left := time.Until(control.Credentials.Expiration); left > longJobSession+5*time.Second {
		t.Fatalf("the peer issued a session of %s, want at most %s: it does not cap sessions", left.Round(time.Second), longJobSession)
	}

	const (
		puts     = 11
		interval = 10 * time.Second
	)
	type job struct {
		name, id, token string
		prog            []string
		stdin           []byte
		res             peers.Result
	}
	jobs := []*job{
		{name: clBoto3, id: "32001", stdin: []byte(boto3LoopScript),
			prog: []string{peers.PythonExe(t), "-", sw.Endpoint, kfCIBucket, "long/boto3", strconv.Itoa(puts), strconv.Itoa(int(interval.Seconds()))}},
		{name: clGoSDK, id: "32002",
			prog: []string{goSDKClientPath(t), "-endpoint=" + sw.Endpoint, "-bucket=" + kfCIBucket, "-key=long/go", "-body=long job",
				"-repeat=" + strconv.Itoa(puts), "-interval=" + interval.String(), "-timeout=3m"}},
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		j.token = b.devToken(t, "--project", kfProject, "--job-id", j.id, "--ttl", "60")
		wg.Go(func() {
			args := append([]string{"exec", "--role", "ci", "--"}, j.prog...)
			j.res = peers.RunTimeout(t, 3*time.Minute, j.name, b.env("KEYFERRY_ID_TOKEN="+j.token), j.stdin, kfBin(t), args...)
		})
	}
	wg.Wait()

	evs := b.auditEvents(t)
	for _, j := range jobs {
		t.Run(j.name, func(t *testing.T) {
			if !j.res.OK() {
				t.Errorf("keyferry exec -- %s loop: %s", j.name, j.res)
			}
			var lines []loopLine
			sc := bufio.NewScanner(strings.NewReader(j.res.Stdout))
			for sc.Scan() {
				var l loopLine
				if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
					t.Fatalf("loop output line is not JSON: %v", err)
				}
				lines = append(lines, l)
			}
			if len(lines) != puts {
				t.Errorf("got %d puts, want %d", len(lines), puts)
			}
			var used []string // AccessKeyIds in the order used
			for _, l := range lines {
				if l.PutObject != "ok" {
					t.Errorf("put %d at %s failed: %s", l.I, l.Time.Format(time.TimeOnly), l.Error)
				}
				if len(used) == 0 || used[len(used)-1] != l.AccessKeyID {
					used = append(used, l.AccessKeyID)
				}
			}

			ls := jobLeases(t, b, j.id)
			if len(ls) != 1 {
				t.Fatalf("job %s has %d leases, want 1 (one issuance, then refreshes)", j.id, len(ls))
			}
			exp := jwtExpiry(t, j.token)
			minted := map[string]bool{} // keys of this lease's issue and refresh events
			var refreshes []auditEvent
			for _, ev := range evs {
				if ev.LeaseID != ls[0].ID {
					continue
				}
				switch ev.Type {
				case "issue":
					minted[ev.AccessKeyID] = true
				case "refresh":
					if ev.Decision != "allow" {
						t.Errorf("refresh event seq %d: decision %q reason %q", ev.Seq, ev.Decision, ev.Reason)
						continue
					}
					minted[ev.AccessKeyID] = true
					refreshes = append(refreshes, ev)
				}
			}
			afterExp := 0
			var times []string
			for _, ev := range refreshes {
				times = append(times, ev.Time.Sub(exp).Round(time.Second).String())
				if ev.Time.After(exp) {
					afterExp++
				}
			}
			t.Logf("%s: %d puts with %d AccessKeyIds; %d refresh events at %v relative to the JWT's exp",
				j.name, len(lines), len(used), len(refreshes), times)
			if len(refreshes) < 2 {
				t.Errorf("%d refresh events, want at least 2", len(refreshes))
			}
			if afterExp == 0 {
				t.Errorf("no refresh after the JWT expired at %s", exp.Format(time.TimeOnly))
			}
			if len(used) < 3 {
				t.Errorf("the client used %d AccessKeyIds (%v), want the credentials to change at least twice", len(used), used)
			}
			for _, k := range used {
				if !minted[k] {
					t.Errorf("the client signed with %q, which no issue or refresh event of lease %s names", k, ls[0].ID)
				}
			}
			if n := len(refreshes); n > 0 && ls[0].AccessKeyID != refreshes[n-1].AccessKeyID {
				t.Errorf("lease %s holds key %q, want the last refreshed key %q", ls[0].ID, ls[0].AccessKeyID, refreshes[n-1].AccessKeyID)
			}
		})
	}

	// The control session, long expired, is refused by the peer.
	res := peers.GoSDKPutObject(t, jsonEnv(t, control), sw.Endpoint, kfCIBucket, uniqueKey(t, "control"), "x")
	if res.OK() || !peers.HasErrorCode(res.Stderr, "InvalidAccessKeyId", "ExpiredToken", "InvalidClientTokenId") {
		t.Errorf("put with a session that expired at %s: got %s, want the peer to refuse it", control.Credentials.Expiration.Format(time.TimeOnly), res)
	}
}

// TestDeliverySTSEndpointServesOnlyWebIdentity pins a limit of the STS
// channel: AWS_ENDPOINT_URL_STS sends every STS call of the tool to
// keyferry, which answers only AssumeRoleWithWebIdentity, so the tool's
// own get-caller-identity fails with InvalidAction unless it names another
// endpoint (the matrix names SeaweedFS explicitly). Tools that call
// GetCallerIdentity (Terraform's account lookup) or AssumeRole (role
// chaining) through the same variable fail likewise.
func TestDeliverySTSEndpointServesOnlyWebIdentity(t *testing.T) {
	t.Parallel()
	p := getBrokerPeers(t)
	b := startDevBroker(t, p)
	b.admin(t, "role", "write", "-f", writeFile(t, "role.yaml", ciRoleYAML))
	env := stsEndpointEnv(t, b, b.devToken(t, "--project", kfProject, "--job-id", "33001"))

	for _, tc := range []struct {
		client string
		run    func() peers.Result
	}{
		{clAWSv1, func() peers.Result { return peers.AWSCLIv1(t, env, "sts", "get-caller-identity") }},
		{clGoSDK, func() peers.Result { return peers.GoSDKCallerIdentity(t, env, "") }},
	} {
		res := tc.run()
		if res.OK() || !peers.HasErrorCode(res.Stdout+res.Stderr, "InvalidAction") {
			t.Errorf("%s get-caller-identity with AWS_ENDPOINT_URL_STS=<keyferry>: got %s, want InvalidAction from keyferry", tc.client, res)
		}
	}
	// The credentials were issued all the same: the failure is the second call.
	if n := len(jobLeases(t, b, "33001")); n != 2 {
		t.Errorf("got %d leases, want 2 (one web-identity exchange per client)", n)
	}
}
