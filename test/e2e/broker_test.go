//go:build e2e

// End-to-end tests of the broker core (issue 2, "Prove it"). The real
// keyferry binary runs as `keyferry server`; a real STS (SeaweedFS 4.53)
// mints the credentials; real clients (aws-cli v2 and v1, boto3, the AWS
// SDK for Go v2) use them against a real S3 that enforces the role's
// policy; a real TLS OIDC issuer signs the web-identity tokens. Every
// keyferry interaction goes through its command line or raw HTTP.
//
// Run with: make build && KEYFERRY_BIN=$PWD/bin/keyferry go test -tags e2e ./test/e2e/ -run Broker

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyferry/keyferry/internal/devissuer"
	"github.com/keyferry/keyferry/test/e2e/peers"
)

// Names of the peers' objects the broker tests use.
const (
	kfCIRole     = "ci-role"      // SeaweedFS role assumed with the broker's key; may put into ci-bucket
	kfWIRole     = "wi-role"      // SeaweedFS role for web identity from the IdP with aud=ci-broker
	kfClientID   = "ci-broker"    // the audience SeaweedFS's OIDC provider (and wi-role's trust) expects
	kfProvider   = "kf-idp"       // SeaweedFS's name of the TLS IdP
	kfCIBucket   = "ci-bucket"    // the role's policy allows s3:PutObject here
	kfOtherBkt   = "other-bucket" // and nowhere else
	kfProject    = "group/app"    // the project the keyferry roles bind
	kfRegion     = "us-east-1"
	kfIdPIssuer  = "idp" // keyferry's name of the TLS IdP
	stsARNPrefix = "arn:aws:sts::" + peers.SeaweedAccountID + ":assumed-role/"
)

// brokerStack is one TLS IdP and one SeaweedFS trusting it, shared by the
// broker tests of this binary; every test starts its own keyferry server
// (which takes well under a second) against it.
var brokerStack = peers.SharedStack(func(idp *peers.IdP) peers.SeaweedConfig {
	cfg := putCIStack(idp.SeaweedProvider(kfProvider, kfClientID), kfCIRole, kfCIBucket, kfOtherBkt)
	cfg.Roles = append(cfg.Roles, putCIRole(peers.SeaweedRole{Name: kfWIRole, TrustWebIdentity: true, Audience: kfClientID}))
	return cfg
})

func getBrokerPeers(t *testing.T) stackPeers { t.Helper(); return getStack(t, brokerStack) }

// putCIBucket is the policy of a role or user that may put into ci-bucket
// and nowhere else.
const putCIBucket = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject"],"Resource":["arn:aws:s3:::ci-bucket/*"]}]}`

// putCIStack is the SeaweedFS config of a shared stack: provider, the role
// assumeRole that the admin identity may assume and that may put into
// ci-bucket, and buckets. Add roles with putCIRole.
func putCIStack(provider peers.SeaweedOIDCProvider, assumeRole string, buckets ...string) peers.SeaweedConfig {
	return peers.SeaweedConfig{
		Policies:  putCIPolicies(),
		Providers: []peers.SeaweedOIDCProvider{provider},
		Roles:     []peers.SeaweedRole{putCIRole(peers.SeaweedRole{Name: assumeRole, TrustAssumeRole: true})},
		Buckets:   buckets,
	}
}

// putCIRole is r with the PutCiBucket policy (putCIPolicies) attached.
func putCIRole(r peers.SeaweedRole) peers.SeaweedRole {
	r.AttachedPolicies = []string{"PutCiBucket"}
	return r
}

// putCIPolicies are the SeaweedFS policies of the roles that may put into
// ci-bucket: PutCiBucket.
func putCIPolicies() map[string]json.RawMessage {
	return map[string]json.RawMessage{"PutCiBucket": json.RawMessage(putCIBucket)}
}

// stackPeers gives the tests short names for a shared stack.
type stackPeers struct {
	idp *peers.IdP
	sw  *peers.SeaweedFS
}

// assumeRole returns SeaweedFS's credentials for role, assumed by the
// admin identity, or fails the test.
func (p stackPeers) assumeRole(t *testing.T, role, session string) aws.Credentials {
	t.Helper()
	creds, err := p.sw.AssumeRole(testContext(t), role, session)
	if err != nil {
		t.Fatalf("AssumeRole: %v", err)
	}
	return creds
}

// getStack returns the peers of a shared stack, started on first use.
func getStack(t *testing.T, stack *peers.Shared[*peers.Stack]) stackPeers {
	t.Helper()
	start := time.Now()
	s := stack.Get(t)
	if d := time.Since(start); d > time.Second {
		t.Logf("started the shared IdP + SeaweedFS in %s", d.Round(10*time.Millisecond))
	}
	return stackPeers{idp: s.IdP, sw: s.SeaweedFS}
}

// startDevBroker starts `keyferry server --dev` holding SeaweedFS's admin
// key (the broker's own AWS identity for AssumeRole) and using SeaweedFS
// as its STS.
func startDevBroker(t *testing.T, p stackPeers) *broker {
	t.Helper()
	return startBroker(t, brokerOptions{
		Dev: true, AWSAccessKey: p.sw.AdminAccessKey, AWSSecretKey: p.sw.AdminSecretKey, STSEndpoint: p.sw.Endpoint,
	})
}

// ciRoleYAML binds jobs of group/app on protected refs (dev issuer) to
// SeaweedFS's ci-role.
const ciRoleYAML = `name: ci
description: CI jobs of group/app on protected refs may put into ci-bucket
issuer: dev
match:
  project_path: group/app
  ref_protected: "true"
aws:
  type: assume_role
  role_arn: arn:aws:iam::000000000000:role/ci-role
  session_name: "gl-{project_path}-{job_id}"
  ttl: 1h
`

// wiRoleYAML forwards tokens of the TLS IdP to SeaweedFS's
// AssumeRoleWithWebIdentity for wi-role.
const wiRoleYAML = `name: wi
issuer: idp
match:
  project_path: group/app
  ref_protected: "true"
aws:
  type: web_identity
  role_arn: arn:aws:iam::000000000000:role/wi-role
  session_name: "wi-{project_path}-{job_id}"
`

// idpIssuerFile is the keyferry issuer document for the TLS IdP: kind
// gitlab, its CA, and the audience SeaweedFS expects (so that the same
// token is accepted by keyferry and, forwarded, by SeaweedFS's STS).
func idpIssuerFile(t *testing.T, p stackPeers) string {
	t.Helper()
	doc, err := json.Marshal(map[string]any{
		"name": kfIdPIssuer, "kind": "gitlab", "url": p.idp.Issuer,
		"ca_cert": string(p.idp.CAPEM), "audiences": []string{kfClientID},
	})
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "issuer.json", string(doc))
}

// manifestYAML is a `keyferry apply` manifest: the TLS IdP's issuer (as a
// JSON flow mapping, for its PEM) and the given role documents.
func manifestYAML(t *testing.T, p stackPeers, roles ...string) string {
	t.Helper()
	issuer, err := os.ReadFile(idpIssuerFile(t, p))
	if err != nil {
		t.Fatal(err)
	}
	var m strings.Builder
	m.WriteString("issuers:\n  - " + string(issuer) + "\nroles:\n")
	for _, r := range roles {
		for i, line := range strings.Split(strings.TrimSuffix(r, "\n"), "\n") {
			if i == 0 {
				m.WriteString("  - " + line + "\n")
			} else {
				m.WriteString("    " + line + "\n")
			}
		}
	}
	return m.String()
}

// idpToken signs a GitLab-shaped job token with the TLS IdP. The audience
// is a single string: SeaweedFS only sets oidc:aud from a string aud (see
// TestPeersWebIdentity), and wi-role's trust policy conditions on it.
func idpToken(p stackPeers, edit func(o *devissuer.GitLabOptions)) string {
	o := devissuer.GitLabOptions{ProjectPath: kfProject, Audience: []string{kfClientID}}
	if edit != nil {
		edit(&o)
	}
	return p.idp.Sign(devissuer.GitLabClaims(p.idp.Issuer, o))
}

// credsEnvKeys are the variables the env and dotenv formats must set.
var credsEnvKeys = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_CREDENTIAL_EXPIRATION", "AWS_REGION", "AWS_DEFAULT_REGION",
}

// shellExports evaluates the output of `keyferry creds --format env` in a
// POSIX shell, as `eval "$(keyferry creds …)"` does in a CI job, and
// returns the AWS_* variables the shell then exports to its children.
func shellExports(t testing.TB, exports string) []string {
	t.Helper()
	f := writeFile(t, "creds.env", exports)
	cmd := exec.Command("/bin/sh", "-c", `. "$1" && exec env -0`, "sh", f)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("/bin/sh could not evaluate the env output: %v: %s", err, stderr.String())
	}
	var env []string
	for _, kv := range strings.Split(string(out), "\x00") {
		if strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	requireEnvKeys(t, "env", env)
	return env
}

// dotenvVars parses `keyferry creds --format dotenv` output the way GitLab
// reads an artifacts:reports:dotenv file: one KEY=value per line, the
// value taken literally.
func dotenvVars(t testing.TB, out string) []string {
	t.Helper()
	keyRE := regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	var env []string
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || !keyRE.MatchString(k) {
			t.Fatalf("dotenv line %d is not KEY=value (key %q)", i+1, k)
		}
		if strings.ContainsAny(v, `"' `) {
			t.Errorf("dotenv value of %s holds quotes or spaces: GitLab would keep them literally", k)
		}
		env = append(env, k+"="+v)
	}
	requireEnvKeys(t, "dotenv", env)
	return env
}

func requireEnvKeys(t testing.TB, format string, env []string) {
	t.Helper()
	for _, k := range credsEnvKeys {
		if envValue(env, k) == "" {
			t.Errorf("--format %s does not set %s", format, k)
		}
	}
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
		if got := envValue(env, k); got != kfRegion {
			t.Errorf("--format %s: %s=%q, want %q", format, k, got, kfRegion)
		}
	}
	if exp, err := time.Parse(time.RFC3339, envValue(env, "AWS_CREDENTIAL_EXPIRATION")); err != nil {
		t.Errorf("--format %s: AWS_CREDENTIAL_EXPIRATION is not RFC 3339: %v", format, err)
	} else if left := time.Until(exp); left < 55*time.Minute || left > 61*time.Minute {
		t.Errorf("--format %s: credentials expire in %s, want the role's ttl of 1h", format, left.Round(time.Second))
	}
}

// jsonEnv turns `keyferry creds --format json` output into the
// environment a job would export from it.
func jsonEnv(t testing.TB, c credsJSON) []string {
	t.Helper()
	if c.Region != kfRegion {
		t.Errorf("--format json: region %q, want %q", c.Region, kfRegion)
	}
	if c.LeaseID == "" || c.Credentials.AccessKeyID == "" || c.Credentials.SecretAccessKey == "" || c.Credentials.SessionToken == "" {
		t.Fatalf("--format json: incomplete response (lease %q, key %q)", c.LeaseID, c.Credentials.AccessKeyID)
	}
	return peers.CredsEnv(aws.Credentials{
		AccessKeyID: c.Credentials.AccessKeyID, SecretAccessKey: c.Credentials.SecretAccessKey, SessionToken: c.Credentials.SessionToken,
	}, c.Region)
}

// credentialProcessEnv writes ~/.aws/config with a profile whose
// credential_process runs keyferry, and returns the client environment
// that selects it. botocore runs the command without a shell (shlex
// split); the Go SDK runs it with `sh -c`: the command line is a plain
// absolute path and flags, valid for both. KEYFERRY_ADDR and
// KEYFERRY_ID_TOKEN reach keyferry through the client's environment.
func credentialProcessEnv(t testing.TB, b *broker, role, jobToken string) []string {
	t.Helper()
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".aws"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("[profile kf]\ncredential_process = %s creds --role %s --format credential-process\nregion = %s\n",
		kfBin(t), role, kfRegion)
	if err := os.WriteFile(filepath.Join(home, ".aws", "config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"HOME=" + home, "AWS_PROFILE=kf", "KEYFERRY_ADDR=" + b.URL, "KEYFERRY_ID_TOKEN=" + jobToken}
}

func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val // the last one wins, as in exec
		}
	}
	return v
}

// goSDKCreds reads what the gosdkclient program reports about the
// credentials it used.
func goSDKCreds(t testing.TB, res peers.Result) (source, accessKeyID string) {
	t.Helper()
	var out struct {
		Credentials struct {
			Source      string `json:"source"`
			AccessKeyID string `json:"accessKeyId"`
		} `json:"credentials"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
		t.Fatalf("gosdkclient output is not JSON: %v", err)
	}
	return out.Credentials.Source, out.Credentials.AccessKeyID
}

// getObject reads an object with SeaweedFS's admin identity.
func getObject(t testing.TB, sw *peers.SeaweedFS, bucket, key string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := sw.S3Client(sw.AdminCredentials()).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return string(b), err
}

// TestBrokerAssumeRoleAWSCLIv2 is the article's pipeline: a role written
// with the CLI, a GitLab-shaped job token, `keyferry creds --format env`
// evaluated by a shell, and aws-cli v2 using the credentials against S3,
// within the role's policy and outside it.
func TestBrokerAssumeRoleAWSCLIv2(t *testing.T) {
	requireExecutable(t, peers.AWSCLIv2Path, "install it with `scripts/peers.sh clients`")
	p := getBrokerPeers(t)
	b := startDevBroker(t, p)

	res := b.admin(t, "role", "write", "-f", writeFile(t, "role.yaml", ciRoleYAML))
	if got, want := strings.TrimSpace(res.Stdout), "role ci created"; got != want {
		t.Errorf("role write: got %q, want %q", got, want)
	}
	tok := b.devToken(t, "--project", kfProject, "--job-id", "4242", "--pipeline-id", "77")

	res = kfRun(t, b.env("KEYFERRY_ID_TOKEN="+tok), "creds", "--role", "ci", "--format", "env")
	if !res.OK() {
		t.Fatalf("keyferry creds --format env: %s", res)
	}
	env := shellExports(t, res.Stdout)
	keyID := envValue(env, "AWS_ACCESS_KEY_ID")

	// The credentials are an assumed-role session of ci-role, named from
	// the role's template gl-{project_path}-{job_id} ("/" sanitised to "-").
	res = peers.AWSCLIv2(t, env, "sts", "get-caller-identity", "--output", "json", "--endpoint-url", p.sw.Endpoint)
	if !res.OK() {
		t.Fatalf("aws sts get-caller-identity: %s", res)
	}
	if got, want := callerARN(t, res.Stdout), stsARNPrefix+kfCIRole+"/gl-group-app-4242"; got != want {
		t.Errorf("caller ARN: got %q, want %q", got, want)
	}

	body := "artifact of job 4242\n"
	file := writeFile(t, "artifact.txt", body)
	key := uniqueKey(t, "aws-cli-v2")
	res = peers.AWSCLIv2(t, env, "s3", "cp", file, "s3://"+kfCIBucket+"/"+key, "--endpoint-url", p.sw.Endpoint)
	if !res.OK() {
		t.Fatalf("aws s3 cp into %s (allowed by ci-role's policy): %s", kfCIBucket, res)
	}
	if got, err := getObject(t, p.sw, kfCIBucket, key); err != nil {
		t.Errorf("the uploaded object is not in %s: %v", kfCIBucket, err)
	} else if got != body {
		t.Errorf("object body: got %q, want %q", got, body)
	}

	res = peers.AWSCLIv2(t, env, "s3", "cp", file, "s3://"+kfOtherBkt+"/"+key, "--endpoint-url", p.sw.Endpoint)
	if res.OK() || !peers.IsAccessDenied(res.Stderr) {
		t.Errorf("aws s3 cp into %s (outside the policy): got %s, want AccessDenied", kfOtherBkt, res)
	}
	if _, err := getObject(t, p.sw, kfOtherBkt, key); err == nil {
		t.Errorf("the denied upload is in %s", kfOtherBkt)
	}

	// The lease records who got which key.
	ls := b.leases(t, "--project", kfProject)
	if len(ls) != 1 {
		t.Fatalf("lease list --project %s: got %d leases, want 1", kfProject, len(ls))
	}
	l := ls[0]
	if l.AccessKeyID != keyID || l.Role != "ci" || l.Type != "assume_role" || l.State != "active" ||
		l.SessionName != "gl-group-app-4242" || l.RoleARN != peers.RoleARN(kfCIRole) ||
		l.Identity.Project != kfProject || l.Identity.Job != "4242" || l.Identity.Pipeline != "77" {
		t.Errorf("lease: got %+v, want ci/assume_role/active for key %s, session gl-group-app-4242, job 4242, pipeline 77", l, keyID)
	}
}

// TestBrokerSessionPolicyAndTTL: what a role asks of STS reaches it. The
// role's session policy narrows ci-role's own policy (SeaweedFS enforces
// session policies), and the credentials live for the role's ttl, or for
// the shorter ttl the job asks for within [15m, role ttl].
func TestBrokerSessionPolicyAndTTL(t *testing.T) {
	p := getBrokerPeers(t)
	b := startDevBroker(t, p)
	role := strings.Replace(ciRoleYAML, "ttl: 1h", "ttl: 2h", 1) + `  session_policy:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Action: s3:PutObject
        Resource: arn:aws:s3:::ci-bucket/builds/*
`
	b.admin(t, "role", "write", "-f", writeFile(t, "role.yaml", role))
	tok := b.devToken(t, "--project", kfProject, "--job-id", "2121")

	c := b.credsAsJSON(t, "ci", tok)
	if left := time.Until(c.Credentials.Expiration); left < 115*time.Minute || left > 121*time.Minute {
		t.Errorf("credentials expire in %s, want the role's ttl of 2h", left.Round(time.Second))
	}
	env := jsonEnv(t, c)
	if res := peers.GoSDKPutObject(t, env, p.sw.Endpoint, kfCIBucket, "builds/"+uniqueKey(t, "go-sdk"), "x"); !res.OK() {
		t.Errorf("put under builds/ (allowed by the session policy): %s", res)
	}
	// Control: ci-role itself may put anywhere in ci-bucket.
	direct, err := p.sw.AssumeRole(t.Context(), kfCIRole, "control")
	if err != nil {
		t.Fatal(err)
	}
	releases := "releases/" + uniqueKey(t, "go-sdk")
	if res := peers.GoSDKPutObject(t, peers.CredsEnv(direct, p.sw.Region), p.sw.Endpoint, kfCIBucket, releases, "x"); !res.OK() {
		t.Fatalf("control: ci-role without a session policy cannot put under releases/: %s", res)
	}
	if res := peers.GoSDKPutObject(t, env, p.sw.Endpoint, kfCIBucket, releases, "x"); !peers.IsAccessDenied(res.Stderr) {
		t.Errorf("put under releases/ (outside the session policy): got %s, want AccessDenied", res)
	}

	res := kfRun(t, b.env("KEYFERRY_ID_TOKEN="+tok), "creds", "--role", "ci", "--format", "json", "--ttl", "900")
	if !res.OK() {
		t.Fatalf("creds --ttl 900: %s", res)
	}
	var short credsJSON
	if err := json.Unmarshal([]byte(res.Stdout), &short); err != nil {
		t.Fatal(err)
	}
	if left := time.Until(short.Credentials.Expiration); left < 14*time.Minute || left > 16*time.Minute {
		t.Errorf("creds --ttl 900: credentials expire in %s, want 15m", left.Round(time.Second))
	}
	res = b.admin(t, "lease", "get", short.LeaseID)
	var l leaseJSON
	if err := json.Unmarshal([]byte(res.Stdout), &l); err != nil || !l.ExpiresAt.Equal(short.Credentials.Expiration) {
		t.Errorf("lease get %s: expires_at %s (%v), want the credentials' expiration %s", short.LeaseID, l.ExpiresAt, err, short.Credentials.Expiration)
	}

	for _, ttl := range []string{"600", "10800"} {
		res := kfRun(t, b.env("KEYFERRY_ID_TOKEN="+tok), "creds", "--role", "ci", "--format", "json", "--ttl", ttl)
		if res.OK() || !strings.Contains(res.Stderr, "400 invalid_request") {
			t.Errorf("creds --ttl %s (outside 900..7200): got %s, want 400 invalid_request", ttl, res)
		}
	}
	if n := len(b.leases(t)); n != 2 {
		t.Errorf("got %d leases, want 2 (refused ttls write none)", n)
	}
}

// TestBrokerDeniesOtherProjects: a token of another project, or of the
// right project on an unprotected ref, gets no credentials: `keyferry
// creds` fails with 403 no_matching_role and a message naming the failed
// claim, prints nothing a shell could eval, and no lease is written.
func TestBrokerDeniesOtherProjects(t *testing.T) {
	p := getBrokerPeers(t)
	b := startDevBroker(t, p)
	b.admin(t, "role", "write", "-f", writeFile(t, "role.yaml", ciRoleYAML))

	// Control: the role works for its own project.
	b.credsAsJSON(t, "ci", b.devToken(t, "--project", kfProject))
	before := b.leases(t)
	if len(before) != 1 {
		t.Fatalf("got %d leases after one issuance, want 1", len(before))
	}

	for _, tc := range []struct {
		name      string
		tokenArgs []string
		claim     string // the claim the message must name
	}{
		{"another project", []string{"--project", "other/app", "--job-id", "9191"}, "project_path"},
		{"unprotected ref", []string{"--project", kfProject, "--ref", "feature", "--protected=false", "--job-id", "9292"}, "ref_protected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := b.devToken(t, tc.tokenArgs...)
			res := kfRun(t, b.env("KEYFERRY_ID_TOKEN="+tok), "creds", "--role", "ci", "--format", "env")
			if res.OK() {
				t.Fatalf("keyferry creds succeeded for %s", tc.name)
			}
			m := regexp.MustCompile(`403 no_matching_role: (.+)`).FindStringSubmatch(res.Stderr)
			if m == nil {
				t.Fatalf("stderr: got %q, want 403 no_matching_role and a message", res.Stderr)
			}
			if msg := m[1]; !strings.Contains(msg, tc.claim) {
				t.Errorf("message %q does not name the failed claim %s", msg, tc.claim)
			} else if strings.Contains(msg, "group/app") && tc.claim == "project_path" {
				t.Errorf("message %q reveals the value the role expects", msg)
			}
			if res.Stdout != "" {
				t.Errorf("a denied creds printed %d bytes on stdout: a job's eval would run them", len(res.Stdout))
			}
			// `role test` explains the same decision, and mints nothing.
			res = kfRun(t, b.adminEnv("KEYFERRY_ID_TOKEN="+tok), "role", "test", "--role", "ci")
			if res.ExitCode != 2 || !strings.Contains(res.Stdout, "role ci: DENIED") ||
				!regexp.MustCompile(`FAIL\s+`+tc.claim).MatchString(res.Stdout) {
				t.Errorf("role test: got exit %d, stdout %q; want exit 2, DENIED and a FAIL line for %s", res.ExitCode, res.Stdout, tc.claim)
			}
		})
	}

	after := b.leases(t)
	if len(after) != len(before) {
		t.Errorf("got %d leases after the denials, want %d (a denial writes none)", len(after), len(before))
	}
	denied := map[string]bool{}
	for _, ev := range b.auditEvents(t) {
		if ev.Type == "deny" && ev.Reason == "no_matching_role" && ev.Decision == "deny" && ev.Role == "ci" && ev.Identity != nil {
			denied[ev.Identity.Job] = true
		}
	}
	if !denied["9191"] || !denied["9292"] {
		t.Errorf("audited denials by job: got %v, want jobs 9191 and 9292", denied)
	}
}

// deliveryFormat hands credentials to a client in one of `keyferry
// creds`'s formats; wantKey is the issued AccessKeyId, or "" when each
// client run fetches its own (credential_process).
type deliveryFormat struct {
	name string
	env  func(t *testing.T, b *broker, jobToken string) (env []string, wantKey string)
}

var deliveryFormats = []deliveryFormat{
	// The job token reaches keyferry in KEYFERRY_ID_TOKEN (the default).
	{"env", func(t *testing.T, b *broker, tok string) ([]string, string) {
		res := kfRun(t, b.env("KEYFERRY_ID_TOKEN="+tok), "creds", "--role", "ci", "--format", "env")
		if !res.OK() {
			t.Fatalf("creds --format env: %s", res)
		}
		env := shellExports(t, res.Stdout)
		return env, envValue(env, "AWS_ACCESS_KEY_ID")
	}},
	// The job token in a file ending with a newline (--token-file), as a
	// runner or an editor writes it.
	{"dotenv", func(t *testing.T, b *broker, tok string) ([]string, string) {
		res := kfRun(t, b.env(), "creds", "--role", "ci", "--format", "dotenv", "--token-file", writeFile(t, "job.jwt", tok+"\n"))
		if !res.OK() {
			t.Fatalf("creds --format dotenv --token-file: %s", res)
		}
		env := dotenvVars(t, res.Stdout)
		return env, envValue(env, "AWS_ACCESS_KEY_ID")
	}},
	// The job token in the variable GitLab's id_tokens: declares
	// (--token-env).
	{"json", func(t *testing.T, b *broker, tok string) ([]string, string) {
		res := kfRun(t, b.env("GITLAB_OIDC_TOKEN="+tok), "creds", "--role", "ci", "--format", "json", "--token-env", "GITLAB_OIDC_TOKEN")
		if !res.OK() {
			t.Fatalf("creds --format json --token-env: %s", res)
		}
		var c credsJSON
		if err := json.Unmarshal([]byte(res.Stdout), &c); err != nil {
			t.Fatalf("creds --format json output is not JSON: %v", err)
		}
		return jsonEnv(t, c), c.Credentials.AccessKeyID
	}},
	{"credential-process", func(t *testing.T, b *broker, tok string) ([]string, string) {
		return credentialProcessEnv(t, b, "ci", tok), ""
	}},
}

// TestBrokerFormatsAndClients: every output format of `keyferry creds`
// works with every client: aws-cli v2, aws-cli v1, boto3 and the Go SDK
// each put into ci-bucket and are denied on other-bucket.
func TestBrokerFormatsAndClients(t *testing.T) {
	p := getBrokerPeers(t)
	b := startDevBroker(t, p)
	b.admin(t, "role", "write", "-f", writeFile(t, "role.yaml", ciRoleYAML))
	tok := b.devToken(t, "--project", kfProject, "--job-id", "3131")

	var (
		mu          sync.Mutex
		processKeys []string // keys the Go SDK got from credential_process
		putKeys     []string // objects the clients put
	)
	t.Run("matrix", func(t *testing.T) {
		for _, f := range deliveryFormats {
			t.Run(f.name, func(t *testing.T) {
				t.Parallel()
				env, wantKey := f.env(t, b, tok)
				for _, c := range smokeClients {
					t.Run(c.name, func(t *testing.T) {
						t.Parallel()
						key := uniqueKey(t, c.name)
						res := c.put(t, env, p.sw.Endpoint, kfCIBucket, key)
						if !res.OK() {
							t.Fatalf("put into %s with --format %s credentials: %s", kfCIBucket, f.name, res)
						}
						mu.Lock()
						putKeys = append(putKeys, key)
						mu.Unlock()
						if c.name == "go-sdk" {
							source, used := goSDKCreds(t, res)
							switch {
							case wantKey == "":
								if source != "ProcessProvider" {
									t.Errorf("Go SDK credential source: got %q, want ProcessProvider", source)
								}
								mu.Lock()
								processKeys = append(processKeys, used)
								mu.Unlock()
							case source != "EnvConfigCredentials" || used != wantKey:
								t.Errorf("Go SDK used %s key %q, want EnvConfigCredentials key %q", source, used, wantKey)
							}
						}
						res = c.put(t, env, p.sw.Endpoint, kfOtherBkt, uniqueKey(t, c.name))
						if res.OK() || !peers.IsAccessDenied(res.Stderr) {
							t.Errorf("put into %s with --format %s credentials: got %s, want AccessDenied", kfOtherBkt, f.name, res)
						}
					})
				}
			})
		}
	})

	for _, key := range putKeys {
		if _, err := getObject(t, p.sw, kfCIBucket, key); err != nil {
			t.Errorf("object %s reported put is not in %s: %v", key, kfCIBucket, err)
		}
	}
	// credential_process credentials are keyferry leases like any other.
	ls := b.leases(t)
	byKey := map[string]leaseJSON{}
	for _, l := range ls {
		byKey[l.AccessKeyID] = l
	}
	for _, k := range processKeys {
		if l, ok := byKey[k]; !ok || l.Role != "ci" || l.Identity.Job != "3131" {
			t.Errorf("the Go SDK's credential_process key %q is not a lease of role ci for job 3131 (lease %+v)", k, l)
		}
	}
	// 3 issuances (env, dotenv, json), then one per credential_process
	// run: 4 clients × 2 puts. (`creds --format credential-process` does
	// not cache: every client run mints a new session.)
	t.Logf("%d leases, %d of them from credential_process runs", len(ls), len(ls)-3)
	if want := 3 + 4*2; len(ls) < want {
		t.Errorf("got %d leases, want at least %d", len(ls), want)
	}
}

// TestBrokerWebIdentity: a keyferry role of type web_identity forwards a
// job token of an external issuer to SeaweedFS's
// AssumeRoleWithWebIdentity. The broker holds no AWS secret at all.
func TestBrokerWebIdentity(t *testing.T) {
	requireExecutable(t, peers.AWSCLIv2Path, "install it with `scripts/peers.sh clients`")
	p := getBrokerPeers(t)
	// No AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the broker's
	// environment, no ~/.aws, IMDS off.
	b := startBroker(t, brokerOptions{Dev: true, STSEndpoint: p.sw.Endpoint})

	res := b.admin(t, "issuer", "write", "-f", idpIssuerFile(t, p))
	if got, want := strings.TrimSpace(res.Stdout), "issuer idp created"; got != want {
		t.Errorf("issuer write: got %q, want %q", got, want)
	}
	b.admin(t, "role", "write", "-f", writeFile(t, "wi.yaml", wiRoleYAML))

	tok := idpToken(p, func(o *devissuer.GitLabOptions) { o.JobID, o.PipelineID = "5151", "55" })
	c := b.credsAsJSON(t, "wi", tok)
	env := jsonEnv(t, c)
	// Every STS call of this path needs the job's token: there is nothing
	// a refresh handle could be traded for.
	if c.RefreshHandle != "" {
		t.Error("a web_identity issuance came with a refresh handle")
	}

	// Quirk: after web identity SeaweedFS's caller ARN has no account.
	res = peers.AWSCLIv2(t, env, "sts", "get-caller-identity", "--output", "json", "--endpoint-url", p.sw.Endpoint)
	if !res.OK() {
		t.Fatalf("aws sts get-caller-identity: %s", res)
	}
	if got, want := callerARN(t, res.Stdout), "arn:aws:sts::assumed-role/"+kfWIRole+"/wi-group-app-5151"; got != want {
		t.Errorf("caller ARN: got %q, want %q", got, want)
	}
	body := "web identity artifact\n"
	file := writeFile(t, "artifact.txt", body)
	key := uniqueKey(t, "aws-cli-v2")
	if res := peers.AWSCLIv2(t, env, "s3", "cp", file, "s3://"+kfCIBucket+"/"+key, "--endpoint-url", p.sw.Endpoint); !res.OK() {
		t.Fatalf("aws s3 cp with web-identity credentials: %s", res)
	}
	if got, err := getObject(t, p.sw, kfCIBucket, key); err != nil || got != body {
		t.Errorf("uploaded object: got %q, %v; want %q", got, err, body)
	}
	if res := peers.AWSCLIv2(t, env, "s3", "cp", file, "s3://"+kfOtherBkt+"/"+key, "--endpoint-url", p.sw.Endpoint); !peers.IsAccessDenied(res.Stderr) {
		t.Errorf("aws s3 cp outside the policy: got %s, want AccessDenied", res)
	}

	l := b.leases(t, "--role", "wi")
	if len(l) != 1 || l[0].AccessKeyID != c.Credentials.AccessKeyID || l[0].Type != "web_identity" ||
		l[0].SessionName != "wi-group-app-5151" || l[0].Identity.Job != "5151" || l[0].ID != c.LeaseID {
		t.Errorf("leases of role wi: got %+v, want one web_identity lease %s for key %s", l, c.LeaseID, c.Credentials.AccessKeyID)
	}

	// SeaweedFS has the last word: a token keyferry accepts (the issuer now
	// also takes audience "elsewhere") but wi-role's trust policy refuses
	// (it wants oidc:aud ci-broker) gets 403 upstream_access_denied, is
	// audited as a denial, and writes no lease.
	widened := strings.Replace(readFile(t, idpIssuerFile(t, p)), `"audiences":["ci-broker"]`, `"audiences":["ci-broker","elsewhere"]`, 1)
	b.admin(t, "issuer", "write", "-f", writeFile(t, "issuer.json", widened))
	elsewhere := idpToken(p, func(o *devissuer.GitLabOptions) { o.Audience, o.JobID = []string{"elsewhere"}, "5252" })
	res = kfRun(t, b.env("KEYFERRY_ID_TOKEN="+elsewhere), "creds", "--role", "wi", "--format", "json")
	if res.OK() || !strings.Contains(res.Stderr, "403 upstream_access_denied") || res.Stdout != "" {
		t.Errorf("web identity refused by the STS trust policy: got %s, want 403 upstream_access_denied and no output", res)
	}
	if !slices.ContainsFunc(b.auditEvents(t), func(ev auditEvent) bool {
		return ev.Type == "deny" && ev.Reason == "upstream_access_denied" && ev.Identity != nil && ev.Identity.Job == "5252"
	}) {
		t.Error("the upstream refusal is not audited as a denial")
	}

	// Control: the same broker cannot mint an assume_role session, which
	// needs a signing key: the web-identity path above used none.
	b.admin(t, "role", "write", "-f", writeFile(t, "ci.yaml", strings.Replace(ciRoleYAML, "issuer: dev", "issuer: idp", 1)))
	res = kfRun(t, b.env("KEYFERRY_ID_TOKEN="+tok), "creds", "--role", "ci", "--format", "json")
	if res.OK() || !regexp.MustCompile(`keyferry: 5\d\d [a-z_]+: `).MatchString(res.Stderr) {
		t.Errorf("assume_role with no broker credentials: got %s, want a 5xx error", res)
	}
	if n := len(b.leases(t)); n != 1 {
		t.Errorf("got %d leases, want 1 (the failed assume_role writes none)", n)
	}
}

var jwtRE = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.`)

// TestBrokerAudit: the audit log records every decision of a run that
// covers both credential types, a credential_process client and a denial,
// with the AccessKeyId the client really used and the job's identity, and
// never a secret; `keyferry audit verify` accepts it and names the line of
// a tampered copy.
func TestBrokerAudit(t *testing.T) {
	p := getBrokerPeers(t)
	b := startDevBroker(t, p)

	// The issuer and both roles from one manifest; a second apply changes
	// nothing and writes no audit event.
	manifest := writeFile(t, "keyferry.yaml", manifestYAML(t, p, ciRoleYAML, wiRoleYAML))
	res := b.admin(t, "apply", "-f", manifest)
	for _, want := range []string{"+ issuer idp (created)", "+ role ci (created)", "+ role wi (created)", "applied 3 change(s)"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("apply: output %q lacks %q", res.Stdout, want)
		}
	}
	before := len(b.auditEvents(t))
	res = b.admin(t, "apply", "-f", manifest)
	if !strings.Contains(res.Stdout, "nothing to do") {
		t.Errorf("second apply of the same manifest: got %q, want it to change nothing (\"nothing to do\")", res.Stdout)
	}
	if after := len(b.auditEvents(t)); after != before {
		t.Errorf("the second apply wrote %d audit events, want none", after-before)
	}

	// 1. The Go SDK through credential_process: the key it used.
	devTok := b.devToken(t, "--project", kfProject, "--job-id", "6161", "--pipeline-id", "61")
	res = peers.GoSDKPutObject(t, credentialProcessEnv(t, b, "ci", devTok), p.sw.Endpoint, kfCIBucket, uniqueKey(t, "go-sdk"), "audited")
	if !res.OK() {
		t.Fatalf("Go SDK put through credential_process: %s", res)
	}
	_, usedKey := goSDKCreds(t, res)
	// 2. assume_role and 3. web_identity as JSON: their secrets must not
	// reach the log.
	ar := b.credsAsJSON(t, "ci", devTok)
	wiTok := idpToken(p, func(o *devissuer.GitLabOptions) { o.JobID = "6262" })
	wi := b.credsAsJSON(t, "wi", wiTok)
	// 4. A denial.
	otherTok := b.devToken(t, "--project", "other/app", "--job-id", "6363")
	if res := kfRun(t, b.env("KEYFERRY_ID_TOKEN="+otherTok), "creds", "--role", "ci"); res.OK() {
		t.Fatal("creds for another project succeeded")
	}

	evs := b.auditEvents(t)
	find := func(what string, ok func(ev auditEvent) bool) *auditEvent {
		t.Helper()
		for i := range evs {
			if ok(evs[i]) {
				return &evs[i]
			}
		}
		t.Errorf("no %s event in the audit log", what)
		return nil
	}
	find("server.start", func(ev auditEvent) bool { return ev.Type == "server.start" })
	find("issuer.write of idp by the admin token", func(ev auditEvent) bool {
		return ev.Type == "issuer.write" && ev.Object == kfIdPIssuer && strings.HasPrefix(ev.Actor, "admin_token:")
	})
	for _, role := range []string{"ci", "wi"} {
		find("role.write of "+role, func(ev auditEvent) bool {
			return ev.Type == "role.write" && ev.Object == role && strings.HasPrefix(ev.Actor, "admin_token:")
		})
	}
	isIssue := func(ev auditEvent, key, role, job string) bool {
		return ev.Type == "issue" && ev.Decision == "allow" && ev.AccessKeyID == key && ev.Role == role &&
			ev.LeaseID != "" && ev.RequestID != "" && ev.Identity != nil && ev.Identity.Project == kfProject && ev.Identity.Job == job
	}
	find("issue for the key the Go SDK used ("+usedKey+")", func(ev auditEvent) bool {
		return isIssue(ev, usedKey, "ci", "6161") && ev.SessionName == "gl-group-app-6161" && ev.Identity.Pipeline == "61"
	})
	find("issue for the assume_role JSON key", func(ev auditEvent) bool {
		return isIssue(ev, ar.Credentials.AccessKeyID, "ci", "6161") && ev.LeaseID == ar.LeaseID
	})
	find("issue for the web_identity key", func(ev auditEvent) bool {
		return isIssue(ev, wi.Credentials.AccessKeyID, "wi", "6262") && ev.LeaseID == wi.LeaseID && ev.Identity.Issuer == p.idp.Issuer
	})
	deny := find("deny no_matching_role of other/app", func(ev auditEvent) bool {
		return ev.Type == "deny" && ev.Decision == "deny" && ev.Reason == "no_matching_role" && ev.Message != "" &&
			ev.Identity != nil && ev.Identity.Project == "other/app" && ev.Identity.Job == "6363"
	})

	// No secret, session token or job token, in the audit log nor in the
	// server's log.
	secrets := map[string]string{
		"assume_role SecretAccessKey": ar.Credentials.SecretAccessKey, "assume_role SessionToken": ar.Credentials.SessionToken,
		"web_identity SecretAccessKey": wi.Credentials.SecretAccessKey, "web_identity SessionToken": wi.Credentials.SessionToken,
		"dev job token": devTok, "IdP job token": wiTok, "denied job token": otherTok,
		"job token signature": devTok[strings.LastIndex(devTok, ".")+1:], "admin token": b.AdminToken,
	}
	if h := ar.RefreshHandle; h != "" {
		secrets["refresh handle's secret"] = h[strings.LastIndex(h, "_")+1:]
	}
	rawAudit, err := os.ReadFile(b.AuditPath)
	if err != nil {
		t.Fatal(err)
	}
	rawLog, _ := os.ReadFile(b.Stderr)
	rawStore, err := os.ReadFile(strings.TrimPrefix(b.StoreURL, "bolt://"))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range secrets {
		for what, raw := range map[string][]byte{"audit log": rawAudit, "server log": rawLog, "lease store": rawStore} {
			if bytes.Contains(raw, []byte(s)) {
				t.Errorf("the %s contains the %s", what, name)
			}
		}
	}
	if m := jwtRE.FindString(string(rawAudit)); m != "" {
		t.Errorf("the audit log contains a JWT (%.20s…)", m)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(rawAudit)), "\n") {
		lower := strings.ToLower(line)
		for _, k := range []string{`secret`, `session_token`, `"token"`} {
			if strings.Contains(lower, k) {
				t.Errorf("audit line %d has a %s field or value", i+1, k)
			}
		}
	}

	// The chain verifies with the CLI.
	res = kfRun(t, nil, "audit", "verify", b.AuditPath)
	if !res.OK() {
		t.Fatalf("keyferry audit verify: %s", res)
	}
	if want := fmt.Sprintf("ok: %d events", len(evs)); !strings.Contains(res.Stdout, want) {
		t.Errorf("audit verify: got %q, want it to say %q", strings.TrimSpace(res.Stdout), want)
	}

	// Tampered copies fail and name the line.
	lines := strings.SplitAfter(string(rawAudit), "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline
	if deny == nil {
		t.Fatal("no deny line to tamper with")
	}
	denyLine := int(deny.Seq) // a file that starts the chain: seq counts lines from 1
	issueLine := 0
	for i, ev := range evs {
		if ev.Type == "issue" && ev.AccessKeyID != "" {
			issueLine = i + 1
			break
		}
	}
	if issueLine == 0 {
		t.Fatal("no issue line to tamper with")
	}
	for _, tc := range []struct {
		name  string
		edit  func(lines []string) []string
		line  int
		check string // what the edited line must still look like
	}{
		{"a denial rewritten as another reason", func(ls []string) []string {
			ls[denyLine-1] = strings.Replace(ls[denyLine-1], `"reason":"no_matching_role"`, `"reason":"token_expired"`, 1)
			return ls
		}, denyLine, `"reason":"token_expired"`},
		{"an issuance's access key swapped", func(ls []string) []string {
			ev := evs[issueLine-1]
			ls[issueLine-1] = strings.Replace(ls[issueLine-1], ev.AccessKeyID, "ASIA0000000000000000", 1)
			return ls
		}, issueLine, "ASIA0000000000000000"},
		{"an issuance deleted", func(ls []string) []string {
			return slices.Delete(ls, issueLine-1, issueLine)
		}, issueLine, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edited := tc.edit(slices.Clone(lines))
			if tc.check != "" && !strings.Contains(edited[tc.line-1], tc.check) {
				t.Fatalf("the edit did not apply to line %d", tc.line)
			}
			copyPath := writeFile(t, "audit.log", strings.Join(edited, ""))
			res := kfRun(t, nil, "audit", "verify", copyPath)
			if res.OK() {
				t.Fatalf("audit verify accepted a copy with %s", tc.name)
			}
			if want := fmt.Sprintf("line %d", tc.line); !strings.Contains(res.Stderr, want) {
				t.Errorf("audit verify: got %q, want it to name %q", strings.TrimSpace(res.Stderr), want)
			}
		})
	}
}

// TestBrokerBadInput sends malformed requests to the binary over plain
// HTTP: each gets its specific status and code in a JSON error that does
// not echo the input, and none writes a lease.
func TestBrokerBadInput(t *testing.T) {
	p := getBrokerPeers(t)
	b := startDevBroker(t, p)
	b.admin(t, "issuer", "write", "-f", idpIssuerFile(t, p))
	b.admin(t, "role", "write", "-f", writeFile(t, "ci.yaml", ciRoleYAML))
	b.admin(t, "role", "write", "-f", writeFile(t, "wi.yaml", wiRoleYAML))

	// A token of a registered issuer, well signed, that expired an hour
	// ago (far beyond the leeway).
	expired := idpToken(p, func(o *devissuer.GitLabOptions) { o.Now, o.TTL = time.Now().Add(-2*time.Hour), time.Hour })
	// A forgery: the IdP's kid, another key.
	forged := p.idp.SignWithUnknownKey(devissuer.GitLabClaims(p.idp.Issuer, devissuer.GitLabOptions{ProjectPath: kfProject, Audience: []string{kfClientID}}))
	// A genuine token meant for another relying party.
	otherAud := idpToken(p, func(o *devissuer.GitLabOptions) { o.Audience = []string{"sts.amazonaws.com"} })
	good := b.devToken(t, "--project", kfProject)
	parts := strings.Split(good, ".")
	cases := []struct {
		name        string
		body        string
		wantStatus  int
		wantCode    string
		mustNotEcho string
	}{
		{"oversized body", `{"role":"ci","token":"` + strings.Repeat("a", 100<<10) + `"}`, 413, "body_too_large", "aaaaaaaaaaaaaaaa"},
		{"unknown field", `{"role":"ci","token":"x","admin":true}`, 400, "unknown_field", ""},
		{"token that is not a JWT", `{"role":"ci","token":"not-a-jwt"}`, 401, "token_malformed", "not-a-jwt"},
		{"token with a payload that is not base64url", `{"role":"ci","token":"` + parts[0] + `.%%%%.` + parts[2] + `"}`, 401, "token_malformed", parts[2]},
		{"expired token of a registered issuer", `{"role":"wi","token":"` + expired + `"}`, 401, "token_expired", expired},
		{"token signed by a key the issuer does not publish", `{"role":"wi","token":"` + forged + `"}`, 401, "signature_invalid", forged},
		{"token for another audience", `{"role":"wi","token":"` + otherAud + `"}`, 401, "audience_mismatch", otherAud},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, b.URL+"/v1/creds", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("POST /v1/creds: %v", err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var er struct {
				Error struct {
					Code, Message string
					RequestID     string `json:"request_id"`
				} `json:"error"`
			}
			if err := json.Unmarshal(raw, &er); err != nil {
				t.Fatalf("%d response is not a JSON error: %v: %.200s", resp.StatusCode, err, raw)
			}
			if resp.StatusCode != tc.wantStatus || er.Error.Code != tc.wantCode {
				t.Fatalf("got %d %s (%s), want %d %s", resp.StatusCode, er.Error.Code, er.Error.Message, tc.wantStatus, tc.wantCode)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if er.Error.Message == "" || er.Error.RequestID == "" || er.Error.RequestID != resp.Header.Get("X-Request-Id") {
				t.Errorf("error %+v: want a message and the request id of the X-Request-Id header (%q)", er.Error, resp.Header.Get("X-Request-Id"))
			}
			if tc.mustNotEcho != "" && strings.Contains(string(raw), tc.mustNotEcho) {
				t.Errorf("the response echoes the input: %.200s", raw)
			}
		})
	}

	if ls := b.leases(t); len(ls) != 0 {
		t.Errorf("got %d leases after bad requests, want 0", len(ls))
	}
	// Token refusals are identity decisions: audited as denials.
	reasons := map[string]int{}
	for _, ev := range b.auditEvents(t) {
		if ev.Type == "deny" {
			reasons[ev.Reason]++
		}
		if ev.Type == "issue" {
			t.Errorf("an issue event after bad requests only: %+v", ev)
		}
	}
	if want := map[string]int{"token_malformed": 2, "token_expired": 1, "signature_invalid": 1, "audience_mismatch": 1}; !maps.Equal(reasons, want) {
		t.Errorf("audited denials by reason: got %v, want %v", reasons, want)
	}
}

// TestBrokerLeaseLifecycle: list by project, get, revoke (idempotent, one
// audit event), then a graceful shutdown on SIGTERM.
func TestBrokerLeaseLifecycle(t *testing.T) {
	p := getBrokerPeers(t)
	b := startDevBroker(t, p)
	b.admin(t, "role", "write", "-f", writeFile(t, "ci.yaml", ciRoleYAML))
	otherRole := strings.NewReplacer("name: ci", "name: other", "project_path: group/app", "project_path: group/other").Replace(ciRoleYAML)
	b.admin(t, "role", "write", "-f", writeFile(t, "other.yaml", otherRole))

	mine := b.credsAsJSON(t, "ci", b.devToken(t, "--project", kfProject, "--job-id", "7171", "--pipeline-id", "71"))
	theirs := b.credsAsJSON(t, "other", b.devToken(t, "--project", "group/other", "--job-id", "7272"))

	// The table lists only group/app's lease.
	res := b.admin(t, "lease", "list", "--project", kfProject)
	rows := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	if len(rows) != 2 || !strings.HasPrefix(rows[0], "ID") {
		t.Fatalf("lease list --project %s: got %q, want a header and one row", kfProject, res.Stdout)
	}
	if f := strings.Fields(rows[1]); len(f) < 7 || f[0] != mine.LeaseID || f[1] != "ci" || f[2] != "active" ||
		f[3] != kfProject || f[4] != "71" || f[5] != "7171" || f[6] != mine.Credentials.AccessKeyID {
		t.Errorf("lease list row: got %q, want %s ci active %s 71 7171 %s …", rows[1], mine.LeaseID, kfProject, mine.Credentials.AccessKeyID)
	}
	if strings.Contains(res.Stdout, theirs.LeaseID) {
		t.Errorf("lease list --project %s shows group/other's lease", kfProject)
	}

	get := func() leaseJSON {
		t.Helper()
		res := b.admin(t, "lease", "get", mine.LeaseID)
		var l leaseJSON
		if err := json.Unmarshal([]byte(res.Stdout), &l); err != nil {
			t.Fatalf("lease get: not JSON: %v", err)
		}
		return l
	}
	if l := get(); l.ID != mine.LeaseID || l.State != "active" || l.AccessKeyID != mine.Credentials.AccessKeyID ||
		l.Identity.Job != "7171" || !l.ExpiresAt.Equal(mine.Credentials.Expiration) {
		t.Errorf("lease get: got %+v, want the active lease of key %s expiring %s", l, mine.Credentials.AccessKeyID, mine.Credentials.Expiration)
	}

	for i := 1; i <= 2; i++ {
		res := b.admin(t, "lease", "revoke", mine.LeaseID)
		out := strings.Split(strings.TrimSpace(res.Stdout), "\n")
		if out[0] != "lease "+mine.LeaseID+" revoked" {
			t.Errorf("revoke #%d: got %q, want %q", i, out[0], "lease "+mine.LeaseID+" revoked")
		}
		// STS sessions cannot be deleted upstream; the CLI says so.
		if len(out) < 2 || !strings.HasPrefix(out[1], "note: ") {
			t.Errorf("revoke #%d: no note about the upstream session: %q", i, res.Stdout)
		}
	}
	if l := get(); l.State != "revoked" || !strings.HasPrefix(l.RevokedBy, "admin_token:") {
		t.Errorf("after revoke: state %q revoked_by %q, want revoked by an admin token", l.State, l.RevokedBy)
	}
	if ls := b.leases(t, "--state", "active"); len(ls) != 1 || ls[0].ID != theirs.LeaseID {
		t.Errorf("active leases after the revoke: got %d, want only %s", len(ls), theirs.LeaseID)
	}
	revokes := 0
	for _, ev := range b.auditEvents(t) {
		if ev.Type == "revoke" && ev.LeaseID == mine.LeaseID {
			revokes++
			if ev.AccessKeyID != mine.Credentials.AccessKeyID || !strings.HasPrefix(ev.Actor, "admin_token:") {
				t.Errorf("revoke event: got key %q actor %q", ev.AccessKeyID, ev.Actor)
			}
		}
	}
	if revokes != 1 {
		t.Errorf("got %d revoke events for %s, want exactly 1", revokes, mine.LeaseID)
	}
	res = kfRun(t, b.adminEnv(), "lease", "revoke", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
	if res.OK() || !strings.Contains(res.Stderr, "404 not_found") {
		t.Errorf("revoke of an unknown lease: got %s, want 404 not_found", res)
	}

	// SIGTERM with a request in flight: the server stops accepting
	// connections, finishes the request, then exits 0 within a few seconds.
	// The request's body is sent in two parts so that it is surely in
	// flight (its handler reading the body) when the signal arrives.
	host := strings.TrimPrefix(b.URL, "http://")
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"role":"ci","token":"` + b.devToken(t, "--project", kfProject, "--job-id", "7373") + `"}`
	fmt.Fprintf(conn, "POST /v1/creds HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		host, len(body), body[:10])
	time.Sleep(300 * time.Millisecond) // the server reads the headers and starts the handler
	sigterm := time.Now()
	if err := b.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if b.Wait(time.Second) {
		t.Fatalf("the server exited (code %d) with a request in flight", b.exitCode())
	}
	if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
		c.Close()
		t.Error("the server still accepts connections after SIGTERM")
	}
	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatalf("finish the in-flight request: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the in-flight request got no response: %v", err)
	}
	var inflight credsJSON
	json.NewDecoder(resp.Body).Decode(&inflight)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || inflight.Credentials.AccessKeyID == "" {
		t.Errorf("in-flight request during shutdown: got %d (key %q), want 200 with credentials", resp.StatusCode, inflight.Credentials.AccessKeyID)
	}
	if !b.Wait(5 * time.Second) {
		t.Errorf("the server did not exit within 5s of SIGTERM")
	}
	if code, took := b.exitCode(), time.Since(sigterm); code != 0 {
		t.Errorf("after SIGTERM: exit %d in %s, want exit 0", code, took.Round(time.Millisecond))
	}
	shuttingDown := false
	for _, l := range logLines(b.Stderr) {
		shuttingDown = shuttingDown || l["msg"] == "shutting down"
	}
	if !shuttingDown {
		t.Error("the server did not log its shutdown")
	}
	if res := kfRun(t, nil, "audit", "verify", b.AuditPath); !res.OK() {
		t.Errorf("the audit log after shutdown does not verify: %s", res)
	}
	if inflight.Credentials.AccessKeyID != "" && !slices.ContainsFunc(b.auditEvents(t), func(ev auditEvent) bool {
		return ev.Type == "issue" && ev.AccessKeyID == inflight.Credentials.AccessKeyID
	}) {
		t.Error("the issuance served during shutdown is not in the audit log")
	}

	// A restart on the same store and audit log: the leases and their
	// states survive, and the audit chain goes on.
	events := len(b.auditEvents(t))
	b2 := startBroker(t, brokerOptions{
		Dev: true, Dir: b.Dir, AWSAccessKey: p.sw.AdminAccessKey, AWSSecretKey: p.sw.AdminSecretKey, STSEndpoint: p.sw.Endpoint,
	})
	states := map[string]string{}
	for _, l := range b2.leases(t) {
		states[l.ID] = l.State
	}
	if states[mine.LeaseID] != "revoked" || states[theirs.LeaseID] != "active" || states[inflight.LeaseID] != "active" {
		t.Errorf("lease states after a restart: got %v, want %s revoked, %s and %s active", states, mine.LeaseID, theirs.LeaseID, inflight.LeaseID)
	}
	if code, _ := b2.stop(10 * time.Second); code != 0 {
		t.Errorf("second shutdown: exit %d, want 0", code)
	}
	res = kfRun(t, nil, "audit", "verify", b.AuditPath)
	if !res.OK() {
		t.Errorf("the audit log across a restart does not verify: %s", res)
	}
	if evs := b2.auditEvents(t); len(evs) <= events || evs[events].Seq != uint64(events)+1 {
		t.Errorf("after the restart the audit log has %d events (had %d), want the chain to go on", len(evs), events)
	}
}

var adminTokenRE = regexp.MustCompile(`kfa_[0-9a-f]{16}_[A-Za-z0-9_-]{43}`)

// TestServerInitAndListenSafety: `server init` prints the first admin
// token once and refuses a second run; a non-dev server refuses an
// uninitialised store and plain HTTP on a non-loopback address, and
// serves with the init token on loopback.
func TestServerInitAndListenSafety(t *testing.T) {
	dir := t.TempDir()
	store, auditPath := "bolt://"+filepath.Join(dir, "keyferry.db"), filepath.Join(dir, "audit.log")
	storeArgs := []string{"--storage", store, "--audit-path", auditPath}

	// Before init, the server refuses to start.
	b := startBroker(t, brokerOptions{Dir: dir, ExpectExit: true})
	if code := b.exitCode(); code == 0 || !strings.Contains(peers.LogTail(b.Stderr, 20), "keyferry server init") {
		t.Errorf("server on an uninitialised store: exit %d, stderr %q; want a failure pointing at `keyferry server init`", code, peers.LogTail(b.Stderr, 5))
	}

	res := kfRun(t, nil, append([]string{"server", "init"}, storeArgs...)...)
	if !res.OK() {
		t.Fatalf("server init: %s", res)
	}
	tokens := adminTokenRE.FindAllString(res.Stdout, -1)
	if len(tokens) != 1 {
		t.Fatalf("server init printed %d admin tokens, want exactly 1", len(tokens))
	}
	root := tokens[0]
	// The store keeps a hash of the token, never the token; the store and
	// the audit log are readable by their owner only.
	rawStore, err := os.ReadFile(filepath.Join(dir, "keyferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	if secret := root[strings.LastIndex(root, "_")+1:]; bytes.Contains(rawStore, []byte(secret)) {
		t.Error("the store holds the admin token's secret in clear")
	}
	for _, f := range []string{filepath.Join(dir, "keyferry.db"), auditPath} {
		if fi, err := os.Stat(f); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, want no access for group and others", filepath.Base(f), fi.Mode().Perm())
		}
	}

	res = kfRun(t, nil, append([]string{"server", "init"}, storeArgs...)...)
	if res.OK() || !strings.Contains(res.Stderr, "already initialised") {
		t.Errorf("second server init: got %s, want a refusal saying the store is already initialised", res)
	}
	if adminTokenRE.MatchString(res.Stdout + res.Stderr) {
		t.Error("the second server init printed an admin token")
	}

	// Plain HTTP on 0.0.0.0 is refused at configuration time. The port is
	// held on 127.0.0.1 by this test, so even a keyferry that skipped the
	// check could not bind it on any address: nothing ever listens beyond
	// loopback, and such a keyferry fails this test with "address already
	// in use" instead of the expected message.
	hold, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	port := strconv.Itoa(hold.Addr().(*net.TCPAddr).Port)
	b = startBroker(t, brokerOptions{Dir: dir, Listen: "0.0.0.0:" + port, ExpectExit: true})
	stderr := peers.LogTail(b.Stderr, 20)
	if code := b.exitCode(); code == 0 || !strings.Contains(stderr, "plain HTTP") || !strings.Contains(stderr, "0.0.0.0:"+port) {
		t.Errorf("server --listen 0.0.0.0:%s without TLS: exit %d, stderr %q; want a refusal about plain HTTP on that address", port, code, stderr)
	}

	// Dev mode, whose built-in issuer mints job tokens for anyone holding
	// the admin token, never leaves loopback either, with or without
	// --insecure-http.
	for _, extra := range [][]string{nil, {"--insecure-http"}} {
		b = startBroker(t, brokerOptions{Dev: true, Listen: "0.0.0.0:" + port, Args: extra, ExpectExit: true})
		stderr := peers.LogTail(b.Stderr, 20)
		if code := b.exitCode(); code == 0 || strings.Contains(stderr, "address already in use") ||
			!(strings.Contains(stderr, "plain HTTP") || strings.Contains(stderr, "loopback")) {
			t.Errorf("server --dev --listen 0.0.0.0:%s %v: exit %d, stderr %q; want a refusal before binding", port, extra, code, stderr)
		}
	}

	// On loopback (here with --insecure-http too) it serves, and the init
	// token is its admin token.
	b = startBroker(t, brokerOptions{Dir: dir, Args: []string{"--insecure-http"}})
	b.AdminToken = root
	b.admin(t, "role", "list")
	b.AdminToken = "kfa_0123456789abcdef_" + strings.Repeat("A", 43)
	if res := kfRun(t, b.adminEnv(), "role", "list"); res.OK() || !strings.Contains(res.Stderr, "401 unauthenticated") {
		t.Errorf("role list with a wrong admin token: got %s, want 401 unauthenticated", res)
	}
	if code, took := b.stop(10 * time.Second); code != 0 || took > 5*time.Second {
		t.Errorf("after SIGTERM: exit %d in %s, want exit 0 within 5s", code, took.Round(time.Millisecond))
	}

	res = kfRun(t, nil, "audit", "verify", auditPath)
	if !res.OK() {
		t.Fatalf("audit verify: %s", res)
	}
	var types []string
	for _, ev := range b.auditEvents(t) {
		types = append(types, ev.Type)
	}
	if !slices.Contains(types, "admin_token.create") || !slices.Contains(types, "server.start") {
		t.Errorf("audit event types: got %v, want admin_token.create (init) and server.start", types)
	}
}

// TestBrokerTLSProductionShape runs keyferry as in production: a non-dev
// server initialised with `server init`, serving HTTPS, configured with
// `apply`, trusting an external issuer (the TLS IdP) and holding its own
// AWS key. A job gets credentials over TLS and uses them; a client that
// does not trust the certificate, or speaks plain HTTP, gets nothing.
func TestBrokerTLSProductionShape(t *testing.T) {
	requireExecutable(t, peers.AWSCLIv2Path, "install it with `scripts/peers.sh clients`")
	p := getBrokerPeers(t)
	dir := t.TempDir()
	res := kfRun(t, nil, "server", "init", "--storage", "bolt://"+filepath.Join(dir, "keyferry.db"), "--audit-path", filepath.Join(dir, "audit.log"))
	root := adminTokenRE.FindString(res.Stdout)
	if !res.OK() || root == "" {
		t.Fatalf("server init: %s", res)
	}
	cert, key := selfSignedCert(t)
	b := startBroker(t, brokerOptions{
		Dir: dir, TLSCert: cert, TLSKey: key,
		AWSAccessKey: p.sw.AdminAccessKey, AWSSecretKey: p.sw.AdminSecretKey, STSEndpoint: p.sw.Endpoint,
	})
	if !strings.HasPrefix(b.URL, "https://127.0.0.1:") {
		t.Fatalf("server URL %q, want https on loopback", b.URL)
	}
	b.AdminToken = root
	role := strings.Replace(ciRoleYAML, "issuer: dev", "issuer: idp", 1)
	b.admin(t, "apply", "-f", writeFile(t, "keyferry.yaml", manifestYAML(t, p, role)))

	tok := idpToken(p, func(o *devissuer.GitLabOptions) { o.JobID = "8181" })
	res = kfRun(t, b.env("KEYFERRY_ID_TOKEN="+tok), "creds", "--role", "ci", "--format", "env")
	if !res.OK() {
		t.Fatalf("creds over TLS: %s", res)
	}
	env := shellExports(t, res.Stdout)
	body := "shipped over TLS\n"
	objKey := uniqueKey(t, "aws-cli-v2")
	if res := peers.AWSCLIv2(t, env, "s3", "cp", writeFile(t, "a.txt", body), "s3://"+kfCIBucket+"/"+objKey, "--endpoint-url", p.sw.Endpoint); !res.OK() {
		t.Fatalf("aws s3 cp: %s", res)
	}
	if got, err := getObject(t, p.sw, kfCIBucket, objKey); err != nil || got != body {
		t.Errorf("uploaded object: got %q, %v; want %q", got, err, body)
	}

	for _, tc := range []struct{ name, addr, want string }{
		{"a client that does not trust the certificate", b.URL, "x509: certificate signed by unknown authority"},
		// Go's TLS server answers "400 Client sent an HTTP request to an
		// HTTPS server" and closes; with a request body still unread the
		// client often sees a connection reset instead: either is a refusal.
		{"plain HTTP to the TLS port", strings.Replace(b.URL, "https://", "http://", 1), "keyferry: "},
	} {
		res := kfRun(t, []string{"KEYFERRY_ADDR=" + tc.addr, "KEYFERRY_ID_TOKEN=" + tok}, "creds", "--role", "ci")
		if res.OK() || res.Stdout != "" || !strings.Contains(res.Stderr, tc.want) {
			t.Errorf("%s: got %s (stdout %d bytes), want a failure mentioning %q and no output", tc.name, res, len(res.Stdout), tc.want)
		}
	}
	if ls := b.leases(t); len(ls) != 1 || ls[0].Identity.Job != "8181" {
		t.Errorf("leases: got %+v, want the one of job 8181", ls)
	}
}

// TestBrokerConcurrentIssuance: many jobs at once. Every request gets its
// own STS session; every issuance has exactly one lease and one issue
// event with its key and job; the audit chain stays intact.
func TestBrokerConcurrentIssuance(t *testing.T) {
	p := getBrokerPeers(t)
	b := startDevBroker(t, p)
	b.admin(t, "role", "write", "-f", writeFile(t, "ci.yaml", ciRoleYAML))

	const n = 40
	post := func(path, auth string, in, out any) (int, error) { return b.postJSON(path, auth, in, out) }
	tokens := make([]string, n)
	for i := range tokens {
		var out struct{ Token string }
		job := strconv.Itoa(10000 + i)
		if st, err := post("/v1/dev/token", b.AdminToken, map[string]string{"project_path": kfProject, "job_id": job}, &out); err != nil || st != 200 {
			t.Fatalf("dev token: %d %v", st, err)
		}
		tokens[i] = out.Token
	}

	results := make([]credsJSON, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			st, err := post("/v1/creds", "", map[string]string{"role": "ci", "token": tokens[i]}, &results[i])
			if err == nil && st != 200 {
				err = fmt.Errorf("status %d", st)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	t.Logf("%d concurrent issuances in %s", n, time.Since(start).Round(time.Millisecond))

	keys := map[string]string{} // access key → job
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
			continue
		}
		k := results[i].Credentials.AccessKeyID
		if _, dup := keys[k]; dup || k == "" {
			t.Errorf("request %d: access key %q is empty or was issued twice", i, k)
		}
		keys[k] = strconv.Itoa(10000 + i)
	}
	leases := b.leases(t)
	if len(leases) != n {
		t.Errorf("got %d leases, want %d", len(leases), n)
	}
	for _, l := range leases {
		if job, ok := keys[l.AccessKeyID]; !ok || l.Identity.Job != job {
			t.Errorf("lease %s: key %q job %q does not match an issuance", l.ID, l.AccessKeyID, l.Identity.Job)
		}
	}
	issued := 0
	for _, ev := range b.auditEvents(t) {
		if ev.Type == "issue" {
			issued++
			if job, ok := keys[ev.AccessKeyID]; !ok || ev.Identity == nil || ev.Identity.Job != job {
				t.Errorf("issue event seq %d: key %q does not match an issuance of that job", ev.Seq, ev.AccessKeyID)
			}
		}
	}
	if issued != n {
		t.Errorf("got %d issue events, want %d", issued, n)
	}
	if res := kfRun(t, nil, "audit", "verify", b.AuditPath); !res.OK() {
		t.Errorf("audit verify: %s", res)
	}
}

// TestBrokerRefreshHandle: an assume_role issuance comes with a refresh
// handle that trades, without the job token, for new working credentials
// and a new handle; a spent handle presented again revokes the lease.
// Handles never reach the audit log, the server log or the store.
func TestBrokerRefreshHandle(t *testing.T) {
	p := getBrokerPeers(t)
	b := startDevBroker(t, p)
	b.admin(t, "role", "write", "-f", writeFile(t, "ci.yaml", strings.Replace(ciRoleYAML, "ttl: 1h", "ttl: 1h\n  max_ttl: 3h", 1)))
	first := b.credsAsJSON(t, "ci", b.devToken(t, "--project", kfProject, "--job-id", "4141"))
	if !strings.HasPrefix(first.RefreshHandle, "kfr_") {
		t.Fatalf("creds --format json: refresh handle %q, want kfr_…", first.RefreshHandle)
	}
	if left := time.Until(first.MaxExpiration); left < 175*time.Minute || left > 181*time.Minute {
		t.Errorf("max_expiration in %s, want the role's max_ttl of 3h", left.Round(time.Second))
	}

	var second credsJSON
	st, err := b.postJSON("/v1/creds/refresh", "", map[string]string{"refresh_handle": first.RefreshHandle}, &second)
	if err != nil || st != http.StatusOK {
		t.Fatalf("refresh: %d %v", st, err)
	}
	if second.LeaseID != first.LeaseID || second.Credentials.AccessKeyID == first.Credentials.AccessKeyID ||
		second.RefreshHandle == "" || second.RefreshHandle == first.RefreshHandle {
		t.Errorf("refresh: lease %s key %s, new handle %t; want lease %s, a new key and a new handle",
			second.LeaseID, second.Credentials.AccessKeyID, second.RefreshHandle != first.RefreshHandle, first.LeaseID)
	}
	if res := peers.GoSDKPutObject(t, jsonEnv(t, second), p.sw.Endpoint, kfCIBucket, uniqueKey(t, "go-sdk"), "refreshed"); !res.OK() {
		t.Errorf("put with refreshed credentials: %s", res)
	}
	if l := b.leases(t); len(l) != 1 || l[0].AccessKeyID != second.Credentials.AccessKeyID {
		t.Errorf("leases after the refresh: got %+v, want one lease holding the new key %s", l, second.Credentials.AccessKeyID)
	}

	// The spent handle again: treated as stolen.
	var er apiErrorBody
	st, err = b.postJSON("/v1/creds/refresh", "", map[string]string{"refresh_handle": first.RefreshHandle}, &er)
	if err != nil || st != http.StatusUnauthorized || er.Error.Code != "refresh_handle_reused" {
		t.Errorf("replayed handle: got %d %s (%v), want 401 refresh_handle_reused", st, er.Error.Code, err)
	}
	if l := b.leases(t); len(l) != 1 || l[0].State != "revoked" {
		t.Errorf("lease after a replayed handle: got %+v, want revoked", l)
	}
	er = apiErrorBody{}
	st, err = b.postJSON("/v1/creds/refresh", "", map[string]string{"refresh_handle": second.RefreshHandle}, &er)
	if err != nil || st != http.StatusUnauthorized || er.Error.Code != "lease_revoked" {
		t.Errorf("current handle of the revoked lease: got %d %s (%v), want 401 lease_revoked", st, er.Error.Code, err)
	}

	evs := b.auditEvents(t)
	if !slices.ContainsFunc(evs, func(ev auditEvent) bool {
		return ev.Type == "refresh" && ev.Decision == "allow" && ev.LeaseID == first.LeaseID && ev.AccessKeyID == second.Credentials.AccessKeyID
	}) {
		t.Error("no refresh event with the new key")
	}
	if !slices.ContainsFunc(evs, func(ev auditEvent) bool {
		return ev.Type == "revoke" && ev.LeaseID == first.LeaseID && ev.Reason == "refresh_handle_reused"
	}) {
		t.Error("no revoke event for the replayed handle")
	}
	rawAudit, _ := os.ReadFile(b.AuditPath)
	rawLog, _ := os.ReadFile(b.Stderr)
	rawStore, _ := os.ReadFile(strings.TrimPrefix(b.StoreURL, "bolt://"))
	for _, h := range []string{first.RefreshHandle, second.RefreshHandle} {
		secret := h[strings.LastIndex(h, "_")+1:]
		for what, raw := range map[string][]byte{"audit log": rawAudit, "server log": rawLog, "lease store": rawStore} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("the %s contains a refresh handle's secret", what)
			}
		}
	}
}
