package devissuer_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyferry/keyferry/internal/devissuer"
)

var (
	t0      = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	uuidRE  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	sha40RE = regexp.MustCompile(`^[0-9a-f]{40}$`)
	digitRE = regexp.MustCompile(`^[1-9][0-9]*$`)
)

// roundTrip returns claims as a verifier sees them: through JSON, with
// numbers kept as json.Number so that int and float can be told apart.
func roundTrip(t *testing.T, claims map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// jsonType names the JSON type of a decoded value.
func jsonType(v any) string {
	switch n := v.(type) {
	case string:
		return "string"
	case bool:
		return "bool"
	case json.Number:
		if _, err := n.Int64(); err == nil {
			return "int"
		}
		return "float"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case nil:
		return "null"
	}
	return "?"
}

func TestGitLabClaimsTypes(t *testing.T) {
	c := roundTrip(t, devissuer.GitLabClaims("https://gitlab.example.com", devissuer.GitLabOptions{
		Environment: "production", Now: t0, GroupsDirect: []string{"g"}, JobSource: "push",
		UserIdentities: []map[string]string{{"provider": "ldap", "extern_uid": "uid=alice"}},
	}))
	// The reference table §1.2, with GitLab's JSON types.
	want := map[string]string{
		"iss": "string", "sub": "string", "aud": "string", "exp": "int", "nbf": "int", "iat": "int", "jti": "string",
		"namespace_id": "string", "namespace_path": "string", "project_id": "string", "project_path": "string",
		"job_project_id": "string", "job_project_path": "string", "job_namespace_id": "string", "job_namespace_path": "string",
		"user_id": "string", "user_login": "string", "user_email": "string", "user_access_level": "string",
		"user_identities": "array", "pipeline_id": "string", "job_id": "string", "pipeline_source": "string",
		"ref": "string", "ref_type": "string", "ref_path": "string", "ref_protected": "string", "groups_direct": "array",
		"environment": "string", "environment_protected": "string", "deployment_tier": "string", "environment_action": "string",
		"runner_id": "int", "runner_environment": "string", "sha": "string", "ci_config_ref_uri": "string",
		"ci_config_sha": "string", "project_visibility": "string", "job_source": "string",
	}
	got := map[string]string{}
	for k, v := range c {
		got[k] = jsonType(v)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("claim types (-want +got):\n%s", diff)
	}
}

func TestGitLabClaimsDefaults(t *testing.T) {
	c := devissuer.GitLabClaims("https://gitlab.example.com", devissuer.GitLabOptions{Now: t0})
	want := map[string]any{
		"iss": "https://gitlab.example.com", "sub": "project_path:g/p:ref_type:branch:ref:main", "aud": devissuer.DefaultAudience,
		"iat": t0.Unix(), "nbf": t0.Unix() - 5, "exp": t0.Add(time.Hour).Unix(),
		"namespace_id": "1", "namespace_path": "g", "project_id": "1", "project_path": "g/p",
		"job_project_id": "1", "job_project_path": "g/p", "job_namespace_id": "1", "job_namespace_path": "g",
		"user_id": "1", "user_login": "dev-user", "user_email": "dev-user@example.com", "user_access_level": "developer",
		"pipeline_source": "push", "ref": "main", "ref_type": "branch", "ref_path": "refs/heads/main", "ref_protected": "true",
		"runner_id": 1, "runner_environment": "self-hosted", "project_visibility": "private",
		"ci_config_ref_uri": "gitlab.example.com/g/p//.gitlab-ci.yml@refs/heads/main",
	}
	for k, w := range want {
		if g := c[k]; g != w {
			t.Errorf("got %s = %#v, want %#v", k, g, w)
		}
	}
	for k, re := range map[string]*regexp.Regexp{"jti": uuidRE, "sha": sha40RE, "pipeline_id": digitRE, "job_id": digitRE} {
		if s, _ := c[k].(string); !re.MatchString(s) {
			t.Errorf("got %s = %#v, want it to match %s", k, c[k], re)
		}
	}
	if c["ci_config_sha"] != c["sha"] {
		t.Errorf("got ci_config_sha %v, want sha %v", c["ci_config_sha"], c["sha"])
	}
	for _, k := range []string{"environment", "environment_protected", "deployment_tier", "environment_action",
		"groups_direct", "user_identities", "job_source"} {
		if _, ok := c[k]; ok {
			t.Errorf("got claim %s without its option, want it absent", k)
		}
	}
	other := devissuer.GitLabClaims("https://gitlab.example.com", devissuer.GitLabOptions{Now: t0})
	if c["jti"] == other["jti"] || c["job_id"] == other["job_id"] {
		t.Errorf("got the same jti/job_id twice (%v, %v), want random values", c["jti"], c["job_id"])
	}
}

func TestGitLabClaimsOptions(t *testing.T) {
	tests := []struct {
		name string
		opts devissuer.GitLabOptions
		want map[string]any
	}{
		{name: "tag, unprotected", opts: devissuer.GitLabOptions{Ref: "v1.2.0", RefType: "tag", ProjectPath: "a/b/c"},
			want: map[string]any{"sub": "project_path:a/b/c:ref_type:tag:ref:v1.2.0", "ref_path": "refs/tags/v1.2.0",
				"ref_protected": "false", "namespace_path": "a/b"}},
		{name: "explicit ref keeps Protected", opts: devissuer.GitLabOptions{Ref: "release", Protected: true},
			want: map[string]any{"ref_protected": "true", "ref_path": "refs/heads/release"}},
		{name: "environment", opts: devissuer.GitLabOptions{Environment: "production", EnvironmentTier: "production", EnvironmentProtected: true},
			want: map[string]any{"environment": "production", "deployment_tier": "production", "environment_protected": "true",
				"environment_action": "start"}},
		{name: "environment defaults", opts: devissuer.GitLabOptions{Environment: "review/x"},
			want: map[string]any{"deployment_tier": "other", "environment_protected": "false"}},
		{name: "several audiences", opts: devissuer.GitLabOptions{Audience: []string{"a", "b"}},
			want: map[string]any{"aud": []string{"a", "b"}}},
		{name: "fork MR pipeline", opts: devissuer.GitLabOptions{ProjectPath: "fork/p", ProjectID: "9",
			JobProjectPath: "upstream/p", JobProjectID: "1", PipelineSource: "merge_request_event"},
			want: map[string]any{"project_path": "fork/p", "job_project_path": "upstream/p", "job_namespace_path": "upstream",
				"job_project_id": "1", "pipeline_source": "merge_request_event"}},
		{name: "ttl and user", opts: devissuer.GitLabOptions{TTL: 10 * time.Minute, UserLogin: "bob", UserID: "7"},
			want: map[string]any{"exp": t0.Add(10 * time.Minute).Unix(), "user_login": "bob", "user_email": "bob@example.com", "user_id": "7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Now = t0
			c := devissuer.GitLabClaims("https://gitlab.example.com", tt.opts)
			for k, w := range tt.want {
				if diff := cmp.Diff(w, c[k]); diff != "" {
					t.Errorf("claim %s (-want +got):\n%s", k, diff)
				}
			}
		})
	}
}

func TestGitHubClaims(t *testing.T) {
	base := devissuer.GitHubOptions{Repository: "octo-org/octo-repo", Now: t0}
	tests := []struct {
		name string
		mod  func(*devissuer.GitHubOptions)
		want map[string]any
	}{
		{name: "branch push", mod: func(*devissuer.GitHubOptions) {},
			want: map[string]any{"sub": "repo:octo-org/octo-repo:ref:refs/heads/main", "ref_type": "branch",
				"repository_owner": "octo-org", "exp": t0.Add(5 * time.Minute).Unix(), "nbf": t0.Unix() - 600,
				"job_workflow_ref": "octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main", "base_ref": "", "head_ref": ""}},
		{name: "tag", mod: func(o *devissuer.GitHubOptions) { o.Ref = "refs/tags/v1" },
			want: map[string]any{"sub": "repo:octo-org/octo-repo:ref:refs/tags/v1", "ref_type": "tag"}},
		{name: "pull request", mod: func(o *devissuer.GitHubOptions) {
			o.EventName, o.Ref, o.BaseRef, o.HeadRef = "pull_request", "refs/pull/7/merge", "main", "feature"
		}, want: map[string]any{"sub": "repo:octo-org/octo-repo:pull_request", "base_ref": "main", "head_ref": "feature"}},
		{name: "environment wins over pull request", mod: func(o *devissuer.GitHubOptions) {
			o.EventName, o.Environment = "pull_request", "prod"
		}, want: map[string]any{"sub": "repo:octo-org/octo-repo:environment:prod", "environment": "prod"}},
		{name: "enterprise", mod: func(o *devissuer.GitHubOptions) { o.Enterprise, o.EnterpriseID = "acme", "5" },
			want: map[string]any{"enterprise": "acme", "enterprise_id": "5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.mod(&o)
			c := devissuer.GitHubClaims("https://token.actions.githubusercontent.com", o)
			for k, w := range tt.want {
				if diff := cmp.Diff(w, c[k]); diff != "" {
					t.Errorf("claim %s (-want +got):\n%s", k, diff)
				}
			}
			// Every documented claim is present, ids as strings.
			rt := roundTrip(t, c)
			for _, k := range []string{"aud", "iss", "sub", "jti", "actor", "actor_id", "base_ref", "head_ref", "event_name",
				"job_workflow_ref", "job_workflow_sha", "ref", "ref_type", "repository", "repository_id", "repository_owner",
				"repository_owner_id", "repository_visibility", "run_id", "run_number", "run_attempt", "runner_environment",
				"sha", "workflow", "workflow_ref", "workflow_sha"} {
				if got := jsonType(rt[k]); got != "string" {
					t.Errorf("got %s of JSON type %s, want string", k, got)
				}
			}
			for _, k := range []string{"exp", "iat", "nbf"} {
				if got := jsonType(rt[k]); got != "int" {
					t.Errorf("got %s of JSON type %s, want int", k, got)
				}
			}
		})
	}
}

func TestKubernetesClaims(t *testing.T) {
	c := devissuer.KubernetesClaims("https://k8s.example.com", devissuer.KubernetesOptions{
		Namespace: "ci", ServiceAccount: "deployer", ServiceAccountUID: "sa-uid", PodName: "runner-1", PodUID: "pod-uid",
		NodeName: "node-a", NodeUID: "node-uid", Now: t0, JTI: "j",
	})
	want := map[string]any{
		"iss": "https://k8s.example.com", "sub": "system:serviceaccount:ci:deployer", "aud": []string{devissuer.DefaultAudience},
		"iat": t0.Unix(), "nbf": t0.Unix(), "exp": t0.Add(time.Hour).Unix(), "jti": "j",
		"kubernetes.io": map[string]any{
			"namespace":      "ci",
			"serviceaccount": map[string]any{"name": "deployer", "uid": "sa-uid"},
			"pod":            map[string]any{"name": "runner-1", "uid": "pod-uid"},
			"node":           map[string]any{"name": "node-a", "uid": "node-uid"},
		},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}

	legacy := devissuer.KubernetesClaims("https://k8s.example.com", devissuer.KubernetesOptions{
		Now: t0, TTL: 365 * 24 * time.Hour, WarnAfter: t0.Add(time.Hour)})
	k8s := legacy["kubernetes.io"].(map[string]any)
	if k8s["warnafter"] != t0.Add(time.Hour).Unix() {
		t.Errorf("got warnafter %v, want %d", k8s["warnafter"], t0.Add(time.Hour).Unix())
	}
	if _, ok := k8s["node"]; ok {
		t.Error("got a node claim without NodeName, want none")
	}
	if got := legacy["sub"]; got != "system:serviceaccount:default:default" {
		t.Errorf("got default sub %v, want system:serviceaccount:default:default", got)
	}
}
