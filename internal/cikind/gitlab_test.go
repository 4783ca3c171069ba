package cikind_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyferry/keyferry/internal/cikind"
)

func TestGitLabClaimsTypes(t *testing.T) {
	c := roundTrip(t, cikind.GitLabClaims("https://gitlab.example.com", cikind.GitLabOptions{
		Environment: "production", Now: t0, GroupsDirect: []string{"g"}, JobSource: "push",
		UserIdentities: []map[string]string{{"provider": "ldap", "extern_uid": "uid=alice"}},
	}))
	// GitLab's claim table, with GitLab's JSON types.
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
	c := cikind.GitLabClaims("https://gitlab.example.com", cikind.GitLabOptions{Now: t0})
	want := map[string]any{
		"iss": "https://gitlab.example.com", "sub": "project_path:g/p:ref_type:branch:ref:main", "aud": cikind.DevAudience,
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
	other := cikind.GitLabClaims("https://gitlab.example.com", cikind.GitLabOptions{Now: t0})
	if c["jti"] == other["jti"] || c["job_id"] == other["job_id"] {
		t.Errorf("got the same jti/job_id twice (%v, %v), want random values", c["jti"], c["job_id"])
	}
}

func TestGitLabClaimsOptions(t *testing.T) {
	tests := []struct {
		name string
		opts cikind.GitLabOptions
		want map[string]any
	}{
		{name: "tag, unprotected", opts: cikind.GitLabOptions{Ref: "v1.2.0", RefType: "tag", ProjectPath: "a/b/c"},
			want: map[string]any{"sub": "project_path:a/b/c:ref_type:tag:ref:v1.2.0", "ref_path": "refs/tags/v1.2.0",
				"ref_protected": "false", "namespace_path": "a/b"}},
		{name: "explicit ref keeps Protected", opts: cikind.GitLabOptions{Ref: "release", Protected: true},
			want: map[string]any{"ref_protected": "true", "ref_path": "refs/heads/release"}},
		{name: "environment", opts: cikind.GitLabOptions{Environment: "production", EnvironmentTier: "production", EnvironmentProtected: true},
			want: map[string]any{"environment": "production", "deployment_tier": "production", "environment_protected": "true",
				"environment_action": "start"}},
		{name: "environment defaults", opts: cikind.GitLabOptions{Environment: "review/x"},
			want: map[string]any{"deployment_tier": "other", "environment_protected": "false"}},
		{name: "several audiences", opts: cikind.GitLabOptions{Audience: []string{"a", "b"}},
			want: map[string]any{"aud": []string{"a", "b"}}},
		{name: "fork MR pipeline", opts: cikind.GitLabOptions{ProjectPath: "fork/p", ProjectID: "9",
			JobProjectPath: "upstream/p", JobProjectID: "1", PipelineSource: "merge_request_event"},
			want: map[string]any{"project_path": "fork/p", "job_project_path": "upstream/p", "job_namespace_path": "upstream",
				"job_project_id": "1", "pipeline_source": "merge_request_event"}},
		{name: "ttl and user", opts: cikind.GitLabOptions{TTL: 10 * time.Minute, UserLogin: "bob", UserID: "7"},
			want: map[string]any{"exp": t0.Add(10 * time.Minute).Unix(), "user_login": "bob", "user_email": "bob@example.com", "user_id": "7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Now = t0
			c := cikind.GitLabClaims("https://gitlab.example.com", tt.opts)
			for k, w := range tt.want {
				if diff := cmp.Diff(w, c[k]); diff != "" {
					t.Errorf("claim %s (-want +got):\n%s", k, diff)
				}
			}
		})
	}
}
