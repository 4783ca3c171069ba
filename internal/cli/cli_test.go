package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/cli"
	"github.com/keyferry/keyferry/internal/server/servertest"
	"github.com/keyferry/keyferry/internal/testutil"
)

type result struct {
	code           int
	stdout, stderr string
}

func run(env map[string]string, args ...string) result {
	var out, errb bytes.Buffer
	code := cli.Run(args, strings.NewReader(""), &out, &errb, testutil.Env(env))
	return result{code, out.String(), errb.String()}
}

func setup(t *testing.T) (*servertest.Server, map[string]string) {
	t.Helper()
	s := servertest.Start(t)
	env := map[string]string{"KEYFERRY_ADDR": s.Addr, "KEYFERRY_TOKEN": servertest.AdminToken, "HOME": t.TempDir()}
	manifest := filepath.Join(t.TempDir(), "roles.yaml")
	doc := `roles:
  - name: deploy
    issuer: dev
    match: { project_path: group/app, ref_protected: "true" }
    aws:
      type: assume_role
      role_arn: arn:aws:iam::123456789012:role/deploy
      max_ttl: 2h
`
	if err := os.WriteFile(manifest, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(env, "apply", "-f", manifest); r.code != 0 || !strings.Contains(r.stdout, "+ role deploy (created)") {
		t.Fatalf("apply: %+v", r)
	}
	if r := run(env, "apply", "-f", manifest); r.code != 0 || !strings.Contains(r.stdout, "nothing to do") {
		t.Fatalf("second apply should be a no-op: %+v", r)
	}
	env["KEYFERRY_ID_TOKEN"] = s.Token(api.DevTokenRequest{ProjectPath: "group/app"})
	return s, env
}

func TestCredsFormats(t *testing.T) {
	_, env := setup(t)
	tests := []struct {
		format string
		check  func(t *testing.T, out string)
	}{
		{"env", func(t *testing.T, out string) {
			for _, k := range []string{"export AWS_ACCESS_KEY_ID='ASIA", "export AWS_SECRET_ACCESS_KEY=", "export AWS_SESSION_TOKEN=", "export AWS_REGION='us-east-1'", "export AWS_DEFAULT_REGION='us-east-1'"} {
				if !strings.Contains(out, k) {
					t.Errorf("missing %q", k)
				}
			}
		}},
		{"dotenv", func(t *testing.T, out string) {
			if !strings.Contains(out, "\nAWS_SECRET_ACCESS_KEY=") || strings.Contains(out, "export") {
				t.Errorf("not dotenv: %s", out)
			}
		}},
		{"json", func(t *testing.T, out string) {
			var r api.CredsResponse
			if err := json.Unmarshal([]byte(out), &r); err != nil || r.LeaseID == "" || r.RefreshHandle == "" {
				t.Errorf("json: %v %+v", err, r.LeaseID)
			}
		}},
		{"credential-process", func(t *testing.T, out string) {
			var d map[string]any
			if err := json.Unmarshal([]byte(out), &d); err != nil || d["Version"] != float64(1) || d["Expiration"] == nil {
				t.Errorf("credential-process: %v %v", err, d)
			}
		}},
		{"ini", func(t *testing.T, out string) {
			if !strings.HasPrefix(out, "[default]\naws_access_key_id = ASIA") {
				t.Errorf("ini: %s", out)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			r := run(env, "creds", "--role", "deploy", "--format", tt.format)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			tt.check(t, r.stdout)
			if r.stderr != "" {
				t.Errorf("stderr not empty: %s", r.stderr)
			}
		})
	}
}

func TestCredsWriteProfile(t *testing.T) {
	_, env := setup(t)
	path := filepath.Join(env["HOME"], ".aws", "credentials")
	_ = os.MkdirAll(filepath.Dir(path), 0o700)
	_ = os.WriteFile(path, []byte("[keep]\naws_access_key_id = AKIAKEEP\n"), 0o600)
	r := run(env, "creds", "--role", "deploy", "--write-profile", "ci")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("exit %d, stdout %q (want nothing printed), stderr %s", r.code, r.stdout, r.stderr)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "[keep]\naws_access_key_id = AKIAKEEP") || !strings.Contains(string(b), "[ci]\naws_access_key_id = ASIA") {
		t.Errorf("credentials file:\n%s", b)
	}
	if strings.Contains(r.stderr, "aws_secret") || !strings.Contains(r.stderr, "AccessKeyId ASIA") {
		t.Errorf("stderr %q", r.stderr)
	}
}

func TestCredsErrors(t *testing.T) {
	s, env := setup(t)
	noTok := map[string]string{"KEYFERRY_ADDR": env["KEYFERRY_ADDR"]}
	r := run(noTok, "creds", "--role", "deploy")
	if r.code == 0 || !strings.Contains(r.stderr, "KEYFERRY_ID_TOKEN") || !strings.Contains(r.stderr, "ACTIONS_ID_TOKEN_REQUEST_URL") {
		t.Errorf("no token: %+v", r)
	}
	evil := map[string]string{"KEYFERRY_ADDR": env["KEYFERRY_ADDR"], "KEYFERRY_ID_TOKEN": s.Token(api.DevTokenRequest{ProjectPath: "evil/app"})}
	r = run(evil, "creds", "--role", "deploy")
	if r.code != 1 || !strings.Contains(r.stderr, "403 no_matching_role") || r.stdout != "" {
		t.Errorf("other project: %+v", r)
	}
	if strings.Contains(r.stderr, evil["KEYFERRY_ID_TOKEN"]) {
		t.Error("the error shows the job token")
	}
	r = run(map[string]string{"KEYFERRY_ID_TOKEN": "x"}, "creds", "--role", "deploy")
	if r.code == 0 || !strings.Contains(r.stderr, "KEYFERRY_ADDR") {
		t.Errorf("no address: %+v", r)
	}
	r = run(env, "creds", "--role", "deploy", "--format", "yaml")
	if r.code == 0 || !strings.Contains(r.stderr, "credential-process") {
		t.Errorf("bad format: %+v", r)
	}
}

func TestRoleTestLeaseAndAudit(t *testing.T) {
	s, env := setup(t)
	r := run(env, "role", "test", "--role", "deploy")
	if r.code != 0 || !strings.Contains(r.stdout, "ALLOWED") || !strings.Contains(r.stdout, "session name: gl-") {
		t.Errorf("role test allowed: %+v", r)
	}
	r = run(env, "role", "test", "--role", "deploy", "--claims", `{"project_path":"group/app","ref_protected":"false"}`)
	if r.code != 2 || !strings.Contains(r.stdout, "FAIL ref_protected") || !strings.Contains(r.stdout, "DENIED") {
		t.Errorf("role test denied: %+v", r)
	}
	r = run(env, "creds", "--role", "deploy", "--format", "json")
	var resp api.CredsResponse
	_ = json.Unmarshal([]byte(r.stdout), &resp)
	r = run(env, "lease", "list", "--project", "group/app")
	if r.code != 0 || !strings.Contains(r.stdout, resp.LeaseID) || !strings.Contains(r.stdout, "active") {
		t.Errorf("lease list: %+v", r)
	}
	r = run(env, "lease", "revoke", resp.LeaseID)
	if r.code != 0 || !strings.Contains(r.stdout, "revoked") || !strings.Contains(r.stdout, "STS sessions cannot be deleted") {
		t.Errorf("lease revoke: %+v", r)
	}
	r = run(env, "audit", "verify", s.AuditPath)
	if r.code != 0 || !strings.Contains(r.stdout, ": ok:") {
		t.Errorf("audit verify: %+v", r)
	}
	b, _ := os.ReadFile(s.AuditPath)
	tampered := filepath.Join(t.TempDir(), "audit.log")
	_ = os.WriteFile(tampered, bytes.Replace(b, []byte(`"role":"deploy"`), []byte(`"role":"admin!"`), 1), 0o600)
	r = run(env, "audit", "verify", tampered)
	if r.code != 3 || !strings.Contains(r.stderr, "line") {
		t.Errorf("tampered audit: %+v", r)
	}
}

func TestApplyPlanAndErrors(t *testing.T) {
	_, env := setup(t)
	dir := t.TempDir()
	changed := filepath.Join(dir, "changed.yaml")
	_ = os.WriteFile(changed, []byte(`roles:
  - name: deploy
    issuer: dev
    match: { project_path: group/app, ref_protected: "true" }
    aws: { type: assume_role, role_arn: "arn:aws:iam::123456789012:role/deploy", max_ttl: 3h }
`), 0o600)
	r := run(env, "apply", "-f", changed, "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "~ role deploy (updated)") || !strings.Contains(r.stdout, "aws.max_ttl: \"2h0m0s\" → \"3h0m0s\"") || !strings.Contains(r.stdout, "none made") {
		t.Errorf("dry run: %+v", r)
	}
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("roles:\n  - name: x\n    issuer: dev\n    aws: { type: assume_role, role_arn: nope }\n    colour: blue\n"), 0o600)
	r = run(env, "apply", "-f", bad)
	if r.code == 0 || !strings.Contains(r.stderr, `unknown field "colour"`) {
		t.Errorf("unknown key: %+v", r)
	}
	invalid := filepath.Join(dir, "invalid.yaml")
	_ = os.WriteFile(invalid, []byte("roles:\n  - name: x\n    issuer: dev\n    aws: { type: assume_role, role_arn: nope }\n"), 0o600)
	r = run(env, "apply", "-f", invalid)
	if r.code == 0 || !strings.Contains(r.stderr, "nothing was changed") || !strings.Contains(r.stderr, "role_arn") {
		t.Errorf("invalid role: %+v", r)
	}
}

func TestCredentialProcessCachesAndRefreshes(t *testing.T) {
	s, env := setup(t)
	env["KEYFERRY_CACHE_DIR"] = filepath.Join(t.TempDir(), "cache")
	parse := func(r result) map[string]any {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
			t.Fatalf("stdout is not JSON: %q", r.stdout)
		}
		return d
	}
	first := parse(run(env, "credential-process", "--role", "deploy"))
	calls := s.STS.Calls()
	second := parse(run(env, "credential-process", "--role", "deploy"))
	if second["AccessKeyId"] != first["AccessKeyId"] || s.STS.Calls() != calls {
		t.Fatalf("second run: key %v (first %v), STS calls %d→%d; want a cache hit", second["AccessKeyId"], first["AccessKeyId"], calls, s.STS.Calls())
	}
	entries, _ := os.ReadDir(env["KEYFERRY_CACHE_DIR"])
	found := false
	for _, de := range entries {
		fi, _ := de.Info()
		if strings.HasSuffix(de.Name(), ".json") {
			found = true
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("cache file %s has mode %v, want 0600", de.Name(), fi.Mode().Perm())
			}
		}
	}
	if !found {
		t.Errorf("no cache entry in %v", entries)
	}
	// Make the cached credentials due (as if 55 of their 60 minutes had
	// passed): the refresh handle from the cache gets new ones (an
	// audited refresh, not a second token exchange).
	ageCacheEntries(t, env["KEYFERRY_CACHE_DIR"], 55*time.Minute)
	third := parse(run(env, "credential-process", "--role", "deploy"))
	if third["AccessKeyId"] == first["AccessKeyId"] {
		t.Fatal("a due entry was served from the cache")
	}
	refreshes := 0
	for _, ev := range s.AuditEvents() {
		if ev.Type == "refresh" && ev.Decision == "allow" {
			refreshes++
		}
	}
	if refreshes != 1 {
		t.Errorf("got %d refresh events, want 1 (the due entry must be refreshed with its handle, not the token)", refreshes)
	}
	noTok := map[string]string{"KEYFERRY_ADDR": env["KEYFERRY_ADDR"]}
	r := run(noTok, "credential-process", "--role", "deploy", "--no-cache")
	if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, "no job token") {
		t.Errorf("no token, no cache: %+v", r)
	}
}

func TestApplyValidatesRolesOfNewIssuers(t *testing.T) {
	_, env := setup(t)
	p := filepath.Join(t.TempDir(), "m.yaml")
	_ = os.WriteFile(p, []byte(`issuers:
  - name: gh
    kind: github
    url: https://token.actions.githubusercontent.com
    audiences: [https://keyferry.example.com]
roles:
  - name: gh-deploy
    issuer: gh
    match: { project_path: group/app }
    aws: { type: assume_role, role_arn: "arn:aws:iam::123456789012:role/deploy" }
`), 0o600)
	r := run(env, "apply", "-f", p, "--dry-run")
	if r.code == 0 || !strings.Contains(r.stderr, "project_path") {
		t.Fatalf("a GitLab claim on a GitHub role passed the dry run: %+v", r)
	}
	r = run(env, "issuer", "list")
	if strings.Contains(r.stdout, "gh ") {
		t.Error("the dry run created the issuer")
	}
}

func TestExecServesCredentialsToTheChild(t *testing.T) {
	_, env := setup(t)
	// The child reads the endpoint the way an SDK does, and shows what it
	// sees of its environment.
	script := `set -e
test -z "$AWS_ACCESS_KEY_ID" && echo no-static-keys
test -z "$KEYFERRY_ID_TOKEN" && echo no-job-token
echo "region=$AWS_REGION/$AWS_DEFAULT_REGION"
tok=$(cat "$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
test "$tok" = "$AWS_CONTAINER_AUTHORIZATION_TOKEN" && echo token-file-matches
curl -fsS -H "Authorization: $tok" "$AWS_CONTAINER_CREDENTIALS_FULL_URI"
echo
exit 7`
	// Exec builds the child's environment from the real process
	// environment: put the test's variables there.
	for k, v := range env {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIASHOULDNOTLEAK0000")
	r := run(env, "exec", "--role", "deploy", "--", "sh", "-c", script)
	if r.code != 7 {
		t.Fatalf("exit %d, want the child's 7; stderr %s", r.code, r.stderr)
	}
	for _, want := range []string{"no-static-keys", "no-job-token", "region=us-east-1/us-east-1", "token-file-matches", `"AccessKeyId":"ASIA`, `"Token":`, `"Expiration":`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("child output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = run(map[string]string{"KEYFERRY_ADDR": env["KEYFERRY_ADDR"], "KEYFERRY_ID_TOKEN": "garbage"}, "exec", "--role", "deploy", "--", "true")
	if r.code == 0 || !strings.Contains(r.stderr, "token_malformed") {
		t.Errorf("a broker refusal must fail before the command runs: %+v", r)
	}
}

// ageCacheEntries rewrites every credential cache entry as if it had been
// stored d earlier.
func ageCacheEntries(t *testing.T, dir string, d time.Duration) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range entries {
		if !strings.HasSuffix(de.Name(), ".json") {
			continue
		}
		p := filepath.Join(dir, de.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Version int    `json:"version"`
			Key     string `json:"key"`
			Entry   struct {
				Response      api.CredsResponse `json:"response"`
				RefreshHandle string            `json:"refresh_handle,omitempty"`
				Identity      string            `json:"identity"`
				StoredAt      time.Time         `json:"stored_at"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		f.Entry.StoredAt = f.Entry.StoredAt.Add(-d)
		f.Entry.Response.Credentials.Expiration = f.Entry.Response.Credentials.Expiration.Add(-d)
		nb, _ := json.Marshal(f)
		if err := os.WriteFile(p, nb, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
