//go:build e2e

// Attacks on keyferry's runner-side channels, one named test per attack,
// each against the real binary: the local endpoints of `keyferry serve`,
// the broker's refresh handles, and the disk cache of `keyferry
// credential-process`.

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/test/e2e/peers"
)

// serveFixture is a dev broker with role ci and a `keyferry serve
// --endpoints both` for one job.
type serveFixture struct {
	b     *broker
	s     *serveProc
	base  string // http://127.0.0.1:PORT
	token string // the container endpoint's token
}

func startServeFixture(t *testing.T, job string) serveFixture {
	t.Helper()
	p := getBrokerPeers(t)
	b := startDevBroker(t, p)
	b.admin(t, "role", "write", "-f", writeFile(t, "role.yaml", ciRoleYAML))
	tokenFile := filepath.Join(t.TempDir(), "token")
	s := startServe(t, b, b.devToken(t, "--project", kfProject, "--job-id", job), "--endpoints", "both", "--token-file-out", tokenFile)
	return serveFixture{b: b, s: s, base: "http://" + s.addr, token: readFile(t, tokenFile)}
}

// localResponse is what a local endpoint answered.
type localResponse struct {
	status int
	body   string
	header http.Header
}

// code is the "code" of a {"code","message"} error body.
func (r localResponse) code() string {
	var e struct{ Code string }
	json.Unmarshal([]byte(r.body), &e)
	return e.Code
}

// leaksCredentials reports whether a response carries credentials.
func (r localResponse) leaksCredentials() bool {
	return strings.Contains(r.body, "AccessKeyId") || strings.Contains(r.body, "SecretAccessKey") || strings.Contains(r.body, "ASIA")
}

// do sends one request to the serve endpoint with exactly the given
// headers ("Host" sets the Host header).
func (f serveFixture) do(t *testing.T, method, path string, headers map[string]string) localResponse {
	t.Helper()
	req, err := http.NewRequest(method, f.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return localResponse{status: resp.StatusCode, body: string(body), header: resp.Header}
}

const (
	imdsTokenPath = "/latest/api/token"
	imdsRolePath  = "/latest/meta-data/iam/security-credentials/"
	imdsTTLHeader = "X-aws-ec2-metadata-token-ttl-seconds"
	imdsTokHeader = "X-aws-ec2-metadata-token"
)

// imdsToken gets an IMDSv2 token the way the SDKs do, failing the test
// unless the endpoint grants it.
func (f serveFixture) imdsToken(t *testing.T, ttl string) string {
	t.Helper()
	r := f.do(t, http.MethodPut, imdsTokenPath, map[string]string{imdsTTLHeader: ttl})
	if r.status != http.StatusOK || r.body == "" || r.header.Get(imdsTTLHeader) != ttl {
		t.Fatalf("PUT %s: got %d %q (ttl header %q), want 200, a token and the ttl echoed", imdsTokenPath, r.status, r.body, r.header.Get(imdsTTLHeader))
	}
	return r.body
}

// imdsCreds fetches the role's credentials with an IMDSv2 token.
func (f serveFixture) imdsCreds(t *testing.T, token string) localResponse {
	t.Helper()
	return f.do(t, http.MethodGet, imdsRolePath+"keyferry", map[string]string{imdsTokHeader: token})
}

// refuse asserts a refusal with the given status and code, and no
// credentials in the answer.
func refuse(t *testing.T, what string, r localResponse, status int, code string) {
	t.Helper()
	if r.status != status || r.code() != code {
		t.Errorf("%s: got %d %q, want %d %s", what, r.status, r.body, status, code)
	}
	if r.leaksCredentials() {
		t.Errorf("%s: the refusal carries credentials", what)
	}
}

// TestServeRefusesForeignHost: a web page whose name resolves to
// 127.0.0.1 (DNS rebinding) sends its own name as Host; serve refuses
// every endpoint to it, even with valid tokens, with and without a port.
func TestServeRefusesForeignHost(t *testing.T) {
	t.Parallel()
	f := startServeFixture(t, "40001")
	imdsTok := f.imdsToken(t, "60")
	_, port, _ := strings.Cut(f.s.addr, ":")
	for _, host := range []string{"attacker.example", "attacker.example:" + port, "127.0.0.1.attacker.example:" + port} {
		refuse(t, "IMDS token PUT, Host "+host,
			f.do(t, http.MethodPut, imdsTokenPath, map[string]string{"Host": host, imdsTTLHeader: "60"}), http.StatusForbidden, "forbidden_host")
		refuse(t, "IMDS credentials GET with a valid token, Host "+host,
			f.do(t, http.MethodGet, imdsRolePath+"keyferry", map[string]string{"Host": host, imdsTokHeader: imdsTok}), http.StatusForbidden, "forbidden_host")
		refuse(t, "container GET with the right token, Host "+host,
			f.do(t, http.MethodGet, "/creds", map[string]string{"Host": host, "Authorization": f.token}), http.StatusForbidden, "forbidden_host")
	}
	// Control: the same requests naming the endpoint itself succeed.
	if r := f.imdsCreds(t, imdsTok); r.status != http.StatusOK || !r.leaksCredentials() {
		t.Errorf("control: IMDS credentials with Host %s: got %d, want 200 with credentials", f.s.addr, r.status)
	}
	if r := f.do(t, http.MethodGet, "/creds", map[string]string{"Authorization": f.token}); r.status != http.StatusOK || !r.leaksCredentials() {
		t.Errorf("control: container credentials with the right token: got %d, want 200 with credentials", r.status)
	}
}

// TestServeIMDSRefusesMissingToken: IMDSv1-style requests (no session
// token) get nothing: serve is IMDSv2 only.
func TestServeIMDSRefusesMissingToken(t *testing.T) {
	t.Parallel()
	f := startServeFixture(t, "40002")
	for _, path := range []string{imdsRolePath, imdsRolePath + "keyferry", "/latest/meta-data/iam/info"} {
		refuse(t, "GET "+path+" without a token", f.do(t, http.MethodGet, path, nil), http.StatusUnauthorized, "unauthorized")
		refuse(t, "GET "+path+" with an empty token", f.do(t, http.MethodGet, path, map[string]string{imdsTokHeader: ""}), http.StatusUnauthorized, "unauthorized")
	}
}

// TestServeIMDSRefusesForgedToken: tokens serve did not mint, or minted
// and expired, are refused: random bytes of the right shape, a token with
// one character changed, a valid token of another serve process (another
// key), and a 1-second token after it expired.
func TestServeIMDSRefusesForgedToken(t *testing.T) {
	t.Parallel()
	f := startServeFixture(t, "40003")
	good := f.imdsToken(t, "60")
	if r := f.imdsCreds(t, good); r.status != http.StatusOK {
		t.Fatalf("control: a fresh token: got %d %q, want 200", r.status, r.body)
	}
	random := make([]byte, base64.RawURLEncoding.DecodedLen(len(good)))
	rand.Read(random)
	flipped := []byte(good)
	if flipped[10] == 'A' {
		flipped[10] = 'B'
	} else {
		flipped[10] = 'A'
	}
	other := startServe(t, f.b, f.b.devToken(t, "--project", kfProject, "--job-id", "40004"), "--endpoints", "imds")
	otherTok := serveFixture{base: "http://" + other.addr}.imdsToken(t, "60")
	short := f.imdsToken(t, "1")
	time.Sleep(1100 * time.Millisecond)

	for name, tok := range map[string]string{
		"random bytes":                   base64.RawURLEncoding.EncodeToString(random),
		"one character changed":          string(flipped),
		"minted by another serve":        otherTok,
		"expired (ttl 1 s)":              short,
		"the token with a trailing byte": good + "A",
	} {
		refuse(t, name, f.imdsCreds(t, tok), http.StatusUnauthorized, "unauthorized")
	}
}

// TestServeIMDSRefusesForwardedTokenRequest: a token request relayed by a
// proxy (X-Forwarded-For, as an SSRF through an open reverse proxy would
// be) gets no token, whatever the header's value.
func TestServeIMDSRefusesForwardedTokenRequest(t *testing.T) {
	t.Parallel()
	f := startServeFixture(t, "40005")
	for _, xff := range []string{"203.0.113.7", "127.0.0.1", ""} {
		r := f.do(t, http.MethodPut, imdsTokenPath, map[string]string{imdsTTLHeader: "60", "X-Forwarded-For": xff})
		refuse(t, "PUT "+imdsTokenPath+" with X-Forwarded-For "+xff, r, http.StatusBadRequest, "forwarded_request")
		if r.header.Get(imdsTTLHeader) != "" {
			t.Errorf("X-Forwarded-For %q: the refusal carries a token TTL header", xff)
		}
	}
}

// TestServeContainerRefusesWrongToken: the container endpoint serves only
// the caller that presents its token, exactly, in Authorization.
func TestServeContainerRefusesWrongToken(t *testing.T) {
	t.Parallel()
	f := startServeFixture(t, "40006")
	other := startServe(t, f.b, f.b.devToken(t, "--project", kfProject, "--job-id", "40007"),
		"--endpoints", "container", "--token-file-out", filepath.Join(t.TempDir(), "token"))
	otherTok := readFile(t, other.exports["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"])

	refuse(t, "no Authorization", f.do(t, http.MethodGet, "/creds", nil), http.StatusUnauthorized, "missing_authorization")
	for name, auth := range map[string]string{
		"another serve's token": otherTok,
		"same length, all A":    strings.Repeat("A", len(f.token)),
		"a prefix of the token": f.token[:len(f.token)-1],
		"the token and more":    f.token + "x",
		"with a Bearer prefix":  "Bearer " + f.token,
	} {
		refuse(t, name, f.do(t, http.MethodGet, "/creds", map[string]string{"Authorization": auth}), http.StatusForbidden, "invalid_authorization")
	}
	// Control.
	if r := f.do(t, http.MethodGet, "/creds", map[string]string{"Authorization": f.token}); r.status != http.StatusOK || !r.leaksCredentials() {
		t.Errorf("control: the right token: got %d, want 200 with credentials", r.status)
	}
}

// TestRefreshHandleReplayRevokesLease: a refresh handle copied from a job
// (`keyferry creds --format json` prints it) and replayed after the job
// already used it is treated as stolen: 401 refresh_handle_reused, the
// lease is revoked (and shown so by `keyferry lease list`), and the
// handle the job holds now stops working too.
func TestRefreshHandleReplayRevokesLease(t *testing.T) {
	t.Parallel()
	p := getBrokerPeers(t)
	b := startDevBroker(t, p)
	b.admin(t, "role", "write", "-f", writeFile(t, "role.yaml", ciRoleYAML))
	stolen := b.credsAsJSON(t, "ci", b.devToken(t, "--project", kfProject, "--job-id", "41001"))
	if stolen.RefreshHandle == "" {
		t.Fatal("creds --format json printed no refresh handle")
	}

	// The job refreshes first: the copied handle is now spent.
	var job credsJSON
	if st, err := b.postJSON("/v1/creds/refresh", "", map[string]string{"refresh_handle": stolen.RefreshHandle}, &job); err != nil || st != http.StatusOK {
		t.Fatalf("legitimate refresh: %d %v", st, err)
	}
	// The attacker replays the copy.
	var er apiErrorBody
	st, err := b.postJSON("/v1/creds/refresh", "", map[string]string{"refresh_handle": stolen.RefreshHandle}, &er)
	if err != nil || st != http.StatusUnauthorized || er.Error.Code != "refresh_handle_reused" {
		t.Errorf("replayed handle: got %d %s (%v), want 401 refresh_handle_reused", st, er.Error.Code, err)
	}
	if strings.Contains(er.Error.Message, stolen.RefreshHandle) {
		t.Error("the refusal echoes the handle")
	}

	res := b.admin(t, "lease", "list", "--project", kfProject)
	row := ""
	for _, line := range strings.Split(res.Stdout, "\n") {
		if strings.HasPrefix(line, stolen.LeaseID) {
			row = line
		}
	}
	if f := strings.Fields(row); len(f) < 3 || f[2] != "revoked" {
		t.Errorf("lease list: row %q, want lease %s revoked", row, stolen.LeaseID)
	}
	if ls := b.leases(t, "--state", "revoked"); len(ls) != 1 || ls[0].ID != stolen.LeaseID || ls[0].RevokedBy != "keyferry" {
		t.Errorf("revoked leases: got %+v, want %s revoked by keyferry", ls, stolen.LeaseID)
	}
	// The handle the job holds is dead too: the chain is cut.
	er = apiErrorBody{}
	st, err = b.postJSON("/v1/creds/refresh", "", map[string]string{"refresh_handle": job.RefreshHandle}, &er)
	if err != nil || st != http.StatusUnauthorized || er.Error.Code != "lease_revoked" {
		t.Errorf("the job's current handle after the replay: got %d %s (%v), want 401 lease_revoked", st, er.Error.Code, err)
	}
	if !slices.ContainsFunc(b.auditEvents(t), func(ev auditEvent) bool {
		return ev.Type == "revoke" && ev.LeaseID == stolen.LeaseID && ev.Reason == "refresh_handle_reused" && ev.Actor == "keyferry"
	}) {
		t.Error("no revoke event with reason refresh_handle_reused")
	}
}

// TestCredentialProcessDistrustsWorldReadableCache: a cache entry another
// user could have read (chmod 644) is not served: credential-process
// warns on stderr without secrets, fetches new credentials with the job
// token (the refresh handle in the exposed file is not used), and
// rewrites the entry 0600.
func TestCredentialProcessDistrustsWorldReadableCache(t *testing.T) {
	t.Parallel()
	p := getBrokerPeers(t)
	b := startDevBroker(t, p)
	b.admin(t, "role", "write", "-f", writeFile(t, "role.yaml", ciRoleYAML))
	const job = "42001"
	cacheDir := filepath.Join(t.TempDir(), "cache")
	env := b.env("KEYFERRY_ID_TOKEN="+b.devToken(t, "--project", kfProject, "--job-id", job), "KEYFERRY_CACHE_DIR="+cacheDir)
	run := func(what string) (key string, res peers.Result) {
		t.Helper()
		res = kfRun(t, env, "credential-process", "--role", "ci")
		if !res.OK() {
			t.Fatalf("%s: keyferry credential-process: %s", what, res)
		}
		var doc struct {
			Version         int
			AccessKeyID     string `json:"AccessKeyId"`
			SecretAccessKey string
			SessionToken    string
			Expiration      time.Time
		}
		if err := json.Unmarshal([]byte(res.Stdout), &doc); err != nil || doc.Version != 1 || doc.AccessKeyID == "" || doc.SessionToken == "" {
			t.Fatalf("%s: output is not a credential_process document: %v", what, err)
		}
		return doc.AccessKeyID, res
	}
	events := func() (issues, refreshes int) {
		for _, ev := range b.auditEvents(t) {
			if ev.Identity != nil && ev.Identity.Job == job {
				switch ev.Type {
				case "issue":
					issues++
				case "refresh":
					refreshes++
				}
			}
		}
		return issues, refreshes
	}

	first, _ := run("first run")
	entries, _ := filepath.Glob(filepath.Join(cacheDir, "*.json"))
	if len(entries) != 1 {
		t.Fatalf("cache entries after the first run: %v, want one", entries)
	}
	entry := entries[0]
	if k, _ := run("second run"); k != first {
		t.Errorf("second run: key %s, want the cached %s", k, first)
	}
	if i, r := events(); i != 1 || r != 0 {
		t.Fatalf("after two runs: %d issue and %d refresh events, want 1 and 0", i, r)
	}

	// The attack surface: the entry becomes world-readable.
	if err := os.Chmod(entry, 0o644); err != nil {
		t.Fatal(err)
	}
	exposed := readFile(t, entry)
	fresh, res := run("run with a world-readable entry")
	if fresh == first {
		t.Errorf("the world-readable entry was served (key %s)", first)
	}
	if !regexp.MustCompile(`(?i)warning`).MatchString(res.Stderr) || !strings.Contains(res.Stderr, filepath.Base(entry)) {
		t.Errorf("stderr: got %q, want a warning naming the entry", res.Stderr)
	}
	t.Logf("warning: %s", strings.TrimSpace(res.Stderr))
	for _, secret := range regexp.MustCompile(`"(?:secret_access_key|session_token|refresh_handle)":"([^"]{8,})"`).FindAllStringSubmatch(exposed, -1) {
		if strings.Contains(res.Stderr, secret[1]) {
			t.Error("the warning contains a secret of the entry")
		}
	}
	if i, r := events(); i != 2 || r != 0 {
		t.Errorf("after the untrusted entry: %d issue and %d refresh events, want a second issuance with the job token and no refresh", i, r)
	}
	if fi, err := os.Stat(entry); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the entry after the refetch: %v (mode %v), want rewritten with mode 0600", err, fi.Mode().Perm())
	}
	if bytes.Equal([]byte(readFile(t, entry)), []byte(exposed)) {
		t.Error("the entry was not rewritten")
	}
	if k, res := run("run after the rewrite"); k != fresh || res.Stderr != "" {
		t.Errorf("after the rewrite: key %s (stderr %q), want the cached %s and no warning", k, res.Stderr, fresh)
	}
	if i, _ := events(); i != 2 {
		t.Errorf("after the rewrite: %d issue events, want still 2", i)
	}
}
