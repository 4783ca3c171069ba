package cikind_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyferry/keyferry/internal/cikind"
)

func TestGitHubClaims(t *testing.T) {
	base := cikind.GitHubOptions{Repository: "octo-org/octo-repo", Now: t0}
	tests := []struct {
		name string
		mod  func(*cikind.GitHubOptions)
		want map[string]any
	}{
		{name: "branch push", mod: func(*cikind.GitHubOptions) {},
			want: map[string]any{"sub": "repo:octo-org/octo-repo:ref:refs/heads/main", "ref_type": "branch",
				"repository_owner": "octo-org", "exp": t0.Add(5 * time.Minute).Unix(), "nbf": t0.Unix() - 600,
				"job_workflow_ref": "octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main", "base_ref": "", "head_ref": ""}},
		{name: "tag", mod: func(o *cikind.GitHubOptions) { o.Ref = "refs/tags/v1" },
			want: map[string]any{"sub": "repo:octo-org/octo-repo:ref:refs/tags/v1", "ref_type": "tag"}},
		{name: "pull request", mod: func(o *cikind.GitHubOptions) {
			o.EventName, o.Ref, o.BaseRef, o.HeadRef = "pull_request", "refs/pull/7/merge", "main", "feature"
		}, want: map[string]any{"sub": "repo:octo-org/octo-repo:pull_request", "base_ref": "main", "head_ref": "feature"}},
		{name: "environment wins over pull request", mod: func(o *cikind.GitHubOptions) {
			o.EventName, o.Environment = "pull_request", "prod"
		}, want: map[string]any{"sub": "repo:octo-org/octo-repo:environment:prod", "environment": "prod"}},
		{name: "enterprise", mod: func(o *cikind.GitHubOptions) { o.Enterprise, o.EnterpriseID = "acme", "5" },
			want: map[string]any{"enterprise": "acme", "enterprise_id": "5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.mod(&o)
			c := cikind.GitHubClaims("https://token.actions.githubusercontent.com", o)
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
