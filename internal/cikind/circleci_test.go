package cikind_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyferry/keyferry/internal/cikind"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/policy"
)

const (
	ccOrg     = "c9035eb6-6eb2-4c85-8a81-d9ed6a1d1d1e"
	ccProject = "3a2f5b1c-7d4e-4f6a-9b8c-0d1e2f3a4b5c"
	ccUser    = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
)

func TestCircleCIDevToken(t *testing.T) {
	k := cikind.Lookup(cikind.CircleCI)
	c := verified(t, k.DevClaims("https://oidc.circleci.com/org/"+ccOrg, cikind.DevOptions{
		Project: ccProject, User: ccUser, Ref: "refs/tags/v1", Now: t0,
	}))
	want := map[string]any{
		"sub":                          "org/" + ccOrg + "/project/" + ccProject + "/user/" + ccUser,
		"aud":                          cikind.DevAudience,
		"exp":                          t0.Unix() + 3600,
		"oidc.circleci.com/org-id":     ccOrg,
		"oidc.circleci.com/project-id": ccProject,
		"oidc.circleci.com/vcs-ref":    "refs/tags/v1",
		"oidc.circleci.com/ssh-rerun":  false,
	}
	for name, w := range want {
		if diff := cmp.Diff(w, c[name]); diff != "" {
			t.Errorf("claim %s (-want +got):\n%s", name, diff)
		}
	}
	if ids, _ := c["oidc.circleci.com/context-ids"].([]any); len(ids) != 1 {
		t.Errorf("got context-ids %#v, want one context", c["oidc.circleci.com/context-ids"])
	}
	for _, name := range []string{"nbf", "jti"} {
		if _, ok := c[name]; ok {
			t.Errorf("got claim %s, want none (CircleCI sends none)", name)
		}
	}
}

func TestCircleCISummary(t *testing.T) {
	k := cikind.Lookup(cikind.CircleCI)
	tests := []struct {
		name   string
		claims map[string]any
		want   cikind.Summary
	}{
		{name: "V2 token", claims: map[string]any{
			"sub":                           "org/" + ccOrg + "/project/" + ccProject + "/user/" + ccUser + "/vcs-origin/github.com/acme/app/vcs-ref/refs/heads/main",
			"oidc.circleci.com/project-id":  ccProject,
			"oidc.circleci.com/vcs-origin":  "github.com/acme/app",
			"oidc.circleci.com/vcs-ref":     "refs/heads/main",
			"oidc.circleci.com/pipeline-id": "p-1",
			"oidc.circleci.com/job-id":      "j-1",
		}, want: cikind.Summary{Project: "github.com/acme/app", ProjectID: ccProject, Ref: "refs/heads/main",
			Pipeline: "p-1", Job: "j-1", User: ccUser}},
		{name: "custom webhook: no vcs claims", claims: map[string]any{
			"sub":                          "org/" + ccOrg + "/project/" + ccProject + "/user/" + ccUser,
			"oidc.circleci.com/project-id": ccProject,
		}, want: cikind.Summary{ProjectID: ccProject, User: ccUser}},
		{name: "no user in sub", claims: map[string]any{"sub": "org/o/project/p"}, want: cikind.Summary{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, k.Summarize(tt.claims)); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCircleCIShape(t *testing.T) {
	k := cikind.Lookup(cikind.CircleCI)
	tests := []struct {
		name   string
		claims map[string]any
		want   string
	}{
		{name: "V1 token", claims: map[string]any{"sub": "org/o/project/p/user/u", "oidc.circleci.com/project-id": "p"}},
		{name: "GitHub token", claims: map[string]any{"sub": "repo:o/r:ref:refs/heads/main", "repository": "o/r"},
			want: `this is not a circleci CI token: it lacks sub starting with "org/", oidc.circleci.com/project-id`},
		{name: "no project id", claims: map[string]any{"sub": "org/o/project/p/user/u"},
			want: "this is not a circleci CI token: it lacks oidc.circleci.com/project-id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := k.ShapeProblem(tt.claims); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestCircleCIBindings runs the kind's binding rules through policy: the
// issuer pins the organization, so a role must name a project.
func TestCircleCIBindings(t *testing.T) {
	tests := []struct {
		name    string
		match   map[string]policy.Values
		unbound bool
	}{
		{name: "project id", match: map[string]policy.Values{"oidc.circleci.com/project-id": {ccProject}}},
		{name: "sub of a project", match: map[string]policy.Values{"sub": {"org/" + ccOrg + "/project/" + ccProject + "/user/*"}}},
		{name: "project id wildcard", match: map[string]policy.Values{"oidc.circleci.com/project-id": {"3a2f*"}}, unbound: true},
		{name: "sub of the whole organization", match: map[string]policy.Values{"sub": {"org/" + ccOrg + "/*"}}, unbound: true},
		{name: "sub with a partial project id", match: map[string]policy.Values{"sub": {"org/" + ccOrg + "/project/3a2f*"}}, unbound: true},
		{name: "org id only", match: map[string]policy.Values{"oidc.circleci.com/org-id": {ccOrg}}, unbound: true},
		{name: "vcs origin only", match: map[string]policy.Values{"oidc.circleci.com/vcs-origin": {"github.com/acme/app"}}, unbound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := policy.Role{Name: "deploy", Issuer: "circleci", Match: tt.match,
				AWS: policy.AWS{Type: policy.TypeAssumeRole, RoleARN: "arn:aws:iam::123456789012:role/deploy"}}
			_, err := policy.Compile(r, identity.Kind(cikind.CircleCI))
			switch {
			case tt.unbound && (err == nil || !strings.Contains(err.Error(), "binds no tenant")):
				t.Errorf("got %v, want the role refused as unbound", err)
			case !tt.unbound && err != nil:
				t.Errorf("got %v, want the role accepted", err)
			}
		})
	}
}
