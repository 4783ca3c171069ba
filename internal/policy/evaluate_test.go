package policy

import (
	"strings"
	"sync"
	"testing"

	"github.com/keyferry/keyferry/internal/identity"
)

// gitlabClaims returns the claims of a GitLab CI job on protected main, as
// decoded by internal/identity (runner_id is an int64).
func gitlabClaims() map[string]any {
	return map[string]any{
		"iss":                   "https://gitlab.example.com",
		"sub":                   "project_path:acme/infra:ref_type:branch:ref:main",
		"aud":                   "https://keyferry.example.com",
		"jti":                   "235b3a54-b797-45c0-8c8a-4e6d3a3b9f0e",
		"namespace_id":          "72",
		"namespace_path":        "acme",
		"project_id":            "42",
		"project_path":          "acme/infra",
		"job_project_id":        "42",
		"job_project_path":      "acme/infra",
		"user_id":               "1",
		"user_login":            "alice",
		"user_email":            "alice@example.com",
		"user_access_level":     "maintainer",
		"pipeline_id":           "574",
		"pipeline_source":       "push",
		"job_id":                "302",
		"ref":                   "main",
		"ref_type":              "branch",
		"ref_path":              "refs/heads/main",
		"ref_protected":         "true",
		"groups_direct":         []any{"acme", "acme/platform"},
		"runner_id":             int64(7),
		"runner_environment":    "self-hosted",
		"sha":                   "0123456789abcdef0123456789abcdef01234567",
		"project_visibility":    "private",
		"environment":           "production",
		"environment_protected": "true",
		"deployment_tier":       "production",
		"environment_action":    "start",
	}
}

func kubernetesClaims() map[string]any {
	return map[string]any{
		"iss": "https://kubernetes.default.svc",
		"sub": "system:serviceaccount:ci:deployer",
		"aud": []any{"https://keyferry.example.com"},
		"jti": "5b0b7b6c-1f1e-4d1e-9d5a-3c1b6a0f0a11",
		"kubernetes.io": map[string]any{
			"namespace":      "ci",
			"serviceaccount": map[string]any{"name": "deployer", "uid": "c0ffee00-0000-0000-0000-000000000001"},
			"pod":            map[string]any{"name": "build-7f9c", "uid": "c0ffee00-0000-0000-0000-000000000002"},
		},
	}
}

func with(base map[string]any, kv ...any) map[string]any {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(base, kv[i].(string))
			continue
		}
		base[kv[i].(string)] = kv[i+1]
	}
	return base
}

func TestEvaluateMatch(t *testing.T) {
	tests := []struct {
		name       string
		kind       identity.Kind // default gitlab
		match      map[string]Values
		claims     map[string]any
		want       bool
		wantDetail string // detail of the failing (or only) check
	}{
		{name: "exact", match: map[string]Values{"project_id": {"42"}}, claims: gitlabClaims(), want: true, wantDetail: `"42" matches "42"`},
		{name: "exact mismatch", match: map[string]Values{"project_id": {"43"}}, claims: gitlabClaims(), wantDetail: `got "42", want "43"`},
		{name: "glob across slash", match: map[string]Values{"project_id": {"42"}, "ref": {"release/*"}},
			claims: with(gitlabClaims(), "ref", "release/2024/q1"), want: true},
		{name: "glob mismatch", match: map[string]Values{"project_id": {"42"}, "ref": {"release/*"}},
			claims: gitlabClaims(), wantDetail: `got "main", want "release/*"`},
		{name: "any of", match: map[string]Values{"project_id": {"42"}, "ref": {"main", "release/*"}}, claims: gitlabClaims(), want: true},
		{name: "any of mismatch", match: map[string]Values{"project_id": {"42"}, "ref": {"main", "release/*"}},
			claims: with(gitlabClaims(), "ref", "feature"), wantDetail: `got "feature", want one of "main", "release/*"`},
		{name: "keys are ANDed", match: map[string]Values{"project_id": {"42"}, "ref_type": {"tag"}}, claims: gitlabClaims(), wantDetail: `got "branch", want "tag"`},
		{name: "gitlab string boolean", match: map[string]Values{"project_id": {"42"}, "ref_protected": {"true"}}, claims: gitlabClaims(), want: true},
		{name: "gitlab string boolean false", match: map[string]Values{"project_id": {"42"}, "ref_protected": {"true"}},
			claims: with(gitlabClaims(), "ref_protected", "false"), wantDetail: `got "false", want "true"`},
		{name: "real boolean compares as string", kind: identity.KindGeneric, match: map[string]Values{"sub": {"x"}, "admin": {"true"}},
			claims: map[string]any{"sub": "x", "admin": true}, want: true},
		{name: "numeric claim", match: map[string]Values{"project_id": {"42"}, "runner_id": {"7"}}, claims: gitlabClaims(), want: true},
		{name: "numeric claim as float", match: map[string]Values{"project_id": {"42"}, "runner_id": {"7"}},
			claims: with(gitlabClaims(), "runner_id", float64(7)), want: true},
		{name: "numeric claim mismatch", match: map[string]Values{"project_id": {"42"}, "runner_id": {"8"}}, claims: gitlabClaims(), wantDetail: `got "7", want "8"`},
		{name: "array claim aud", match: map[string]Values{"project_id": {"42"}, "aud": {"https://keyferry.example.com"}},
			claims: with(gitlabClaims(), "aud", []any{"https://vault.example.com", "https://keyferry.example.com"}), want: true},
		{name: "array claim groups_direct glob", match: map[string]Values{"project_id": {"42"}, "groups_direct": {"acme/plat*"}}, claims: gitlabClaims(), want: true},
		{name: "array claim no item matches", match: map[string]Values{"project_id": {"42"}, "groups_direct": {"other"}},
			claims: gitlabClaims(), wantDetail: `no item of ["acme", "acme/platform"] matches "other"`},
		{name: "empty array never matches", match: map[string]Values{"project_id": {"42"}, "groups_direct": {"*"}},
			claims: with(gitlabClaims(), "groups_direct", []any{}), wantDetail: "no item of [] matches"},
		{name: "json pointer into kubernetes.io", kind: identity.KindKubernetes,
			match:  map[string]Values{"/kubernetes.io/namespace": {"ci"}, "/kubernetes.io/serviceaccount/name": {"deployer"}},
			claims: kubernetesClaims(), want: true},
		{name: "json pointer mismatch", kind: identity.KindKubernetes,
			match:  map[string]Values{"/kubernetes.io/namespace": {"ci"}, "/kubernetes.io/serviceaccount/name": {"admin"}},
			claims: kubernetesClaims(), wantDetail: `got "deployer", want "admin"`},
		{name: "json pointer missing", kind: identity.KindKubernetes,
			match:  map[string]Values{"/kubernetes.io/namespace": {"ci"}, "/kubernetes.io/node/name": {"n1"}},
			claims: kubernetesClaims(), wantDetail: "claim missing"},
		{name: "json pointer through a string", kind: identity.KindKubernetes,
			match:  map[string]Values{"/kubernetes.io/namespace": {"ci"}, "/kubernetes.io/namespace/x": {"ci"}},
			claims: kubernetesClaims(), wantDetail: "claim missing"},
		{name: "missing claim", match: map[string]Values{"project_id": {"42"}, "environment": {"production"}},
			claims: with(gitlabClaims(), "environment", nil), wantDetail: "claim missing"},
		{name: "null claim", match: map[string]Values{"project_id": {"42"}, "ci_config_sha": {"*"}},
			claims: with(gitlabClaims(), "ci_config_sha", "x", "ci_config_sha", nil), wantDetail: "claim missing"},
		{name: "explicit null claim", match: map[string]Values{"project_id": {"42"}, "ci_config_ref_uri": {"*"}},
			claims: func() map[string]any { c := gitlabClaims(); c["ci_config_ref_uri"] = nil; return c }(), wantDetail: "claim is null"},
		{name: "object claim never matches", kind: identity.KindGeneric, match: map[string]Values{"sub": {"x"}, "ctx": {"*"}},
			claims: map[string]any{"sub": "x", "ctx": map[string]any{"a": "b"}}, wantDetail: "claim is an object"},
		{name: "nil claims", match: map[string]Values{"project_id": {"42"}}, claims: nil, wantDetail: "claim missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := compileChanged(t, tt.kind, func(r *Role) { r.Match = tt.match })
			res := c.Evaluate(tt.claims)
			if res.Allowed != tt.want {
				t.Fatalf("got allowed %v, want %v (checks %+v)", res.Allowed, tt.want, res.Checks)
			}
			if len(res.Checks) != len(tt.match) {
				t.Fatalf("got %d checks, want %d", len(res.Checks), len(tt.match))
			}
			for i := 1; i < len(res.Checks); i++ {
				if res.Checks[i-1].Name >= res.Checks[i].Name {
					t.Errorf("got checks in order %q, %q; want sorted by key", res.Checks[i-1].Name, res.Checks[i].Name)
				}
			}
			if tt.wantDetail == "" {
				return
			}
			// The detail of the first failing check, or of the only check.
			detail := res.Checks[0].Detail
			for _, ch := range res.Checks {
				if !ch.OK {
					detail = ch.Detail
					break
				}
			}
			if !strings.Contains(detail, tt.wantDetail) {
				t.Errorf("got detail %q, want it to contain %q", detail, tt.wantDetail)
			}
		})
	}
}

func TestCondition(t *testing.T) {
	tests := []struct {
		name       string
		kind       identity.Kind // default gitlab
		cond       string
		claims     map[string]any
		want       bool
		wantDetail string
	}{
		{name: "true", cond: `claims.pipeline_source != "merge_request_event"`, claims: gitlabClaims(), want: true, wantDetail: "condition is true"},
		{name: "false", cond: `claims.pipeline_source != "merge_request_event"`,
			claims: with(gitlabClaims(), "pipeline_source", "merge_request_event"), wantDetail: "condition is false"},
		{name: "index syntax", cond: `claims["ref"] == "main"`, claims: gitlabClaims(), want: true},
		{name: "list claim", cond: `claims.groups_direct.exists(g, g.startsWith("acme/"))`, claims: gitlabClaims(), want: true},
		{name: "numeric claim", cond: `claims.runner_id == 7`, claims: gitlabClaims(), want: true},
		{name: "regex", cond: `claims.ref.matches("^(main|release/[0-9]+)$")`, claims: with(gitlabClaims(), "ref", "release/12"), want: true},
		{name: "has on missing claim", cond: `!has(claims.environment) || claims.environment_protected == "true"`,
			claims: with(gitlabClaims(), "environment", nil), want: true},
		{name: "missing claim is false with detail", cond: `claims.environment == "production"`,
			claims: with(gitlabClaims(), "environment", nil), wantDetail: "evaluation error: no such key: environment"},
		{name: "type error is false with detail", cond: `claims.ref > 3`, claims: gitlabClaims(), wantDetail: "evaluation error: no such overload"},
		{name: "dyn result that is not a bool", cond: `claims.ref`, claims: gitlabClaims(), wantDetail: "condition returned string, not a bool"},
		{name: "kubernetes nested claim", kind: identity.KindKubernetes,
			cond: `claims["kubernetes.io"].serviceaccount.name in ["deployer", "builder"]`, claims: kubernetesClaims(), want: true},
		{name: "generic accepts any claim", kind: identity.KindGeneric,
			cond: `claims["https://example.com/team"] == "core"`, claims: map[string]any{"sub": "x", "https://example.com/team": "core"}, want: true},
		{name: "nil claims", cond: `claims.ref == "main"`, claims: nil, wantDetail: "evaluation error: no such key: ref"},
		// The static estimate assumes claims of at most claimSizeBound
		// items; a larger claim is stopped by the runtime cost limit.
		{name: "cost limit stops evaluation", cond: `claims.groups_direct.exists(g, g == "acme/none")`,
			claims: with(gitlabClaims(), "groups_direct", longList(60000, "acme/other")), wantDetail: "cost limit exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := compileChanged(t, tt.kind, func(r *Role) { r.Condition = tt.cond })
			res := c.Evaluate(tt.claims)
			last := res.Checks[len(res.Checks)-1]
			if last.Name != CheckCondition {
				t.Fatalf("got last check %q, want condition", last.Name)
			}
			if last.OK != tt.want {
				t.Fatalf("got condition %v (%s), want %v", last.OK, last.Detail, tt.want)
			}
			if tt.wantDetail != "" && !strings.Contains(last.Detail, tt.wantDetail) {
				t.Errorf("got detail %q, want it to contain %q", last.Detail, tt.wantDetail)
			}
			if !tt.want && res.Allowed {
				t.Error("got allowed with a false condition, want denied")
			}
		})
	}
}

func longList(n int, item string) []any {
	l := make([]any, n)
	for i := range l {
		l[i] = item
	}
	return l
}

func TestDenial(t *testing.T) {
	r := validRole(identity.KindGitLab)
	r.Match["ref"] = Values{"main", "release/*"}
	r.Match["environment"] = Values{"production"}
	r.Condition = `claims.pipeline_source != "merge_request_event"`
	c := mustCompile(t, r, identity.KindGitLab)
	tests := []struct {
		name   string
		claims map[string]any
		want   string
	}{
		{name: "allowed", claims: gitlabClaims(), want: ""},
		{name: "first failing claim is named", claims: with(gitlabClaims(), "ref", "feature", "project_id", "43"), want: `the token's "project_id" claim does not match the role`},
		{name: "missing claim", claims: with(gitlabClaims(), "environment", nil), want: `the token has no "environment" claim, which the role requires`},
		{name: "condition", claims: with(gitlabClaims(), "pipeline_source", "merge_request_event"), want: "the token does not satisfy the role's condition"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.Evaluate(tt.claims)
			got := res.Denial()
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			for _, secret := range []string{"42", "release/*", "main", "production", "merge_request_event"} {
				if strings.Contains(got, secret) {
					t.Errorf("got %q, which reveals the expected value %q", got, secret)
				}
			}
		})
	}
}

// Example roles for protected branches, tags and environments. The docs
// reuse them; keep them realistic.
func TestExampleRoles(t *testing.T) {
	protectedBranches := Role{
		Name:   "deploy-infra",
		Issuer: "gitlab",
		Match: map[string]Values{
			"project_id":    {"42"},
			"ref_type":      {"branch"},
			"ref":           {"main", "release/*"},
			"ref_protected": {"true"},
		},
		Condition: `claims.pipeline_source != "merge_request_event"`,
		AWS: AWS{Type: TypeAssumeRole, RoleARN: "arn:aws:iam::123456789012:role/infra-deploy",
			Tags: map[string]string{"project": "{project_path}", "pipeline": "{pipeline_id}"}},
	}
	tagsOnly := Role{
		Name:   "release-publish",
		Issuer: "gitlab",
		Match: map[string]Values{
			"project_id":    {"42"},
			"ref_type":      {"tag"},
			"ref":           {"v*"},
			"ref_protected": {"true"},
		},
		AWS: AWS{Type: TypeAssumeRole, RoleARN: "arn:aws:iam::123456789012:role/release-publish"},
	}
	productionEnv := Role{
		Name:   "deploy-production",
		Issuer: "gitlab",
		Match: map[string]Values{
			"namespace_id":          {"72"},
			"environment":           {"production"},
			"environment_protected": {"true"},
			"deployment_tier":       {"production"},
		},
		AWS: AWS{Type: TypeAssumeRole, RoleARN: "arn:aws:iam::123456789012:role/prod-deploy",
			SourceIdentity: "{user_login}"},
	}
	tag := func(ref string) map[string]any {
		return with(gitlabClaims(), "ref_type", "tag", "ref", ref, "ref_path", "refs/tags/"+ref,
			"sub", "project_path:acme/infra:ref_type:tag:ref:"+ref)
	}
	tests := []struct {
		name   string
		role   Role
		claims map[string]any
		want   bool
	}{
		{name: "protected main", role: protectedBranches, claims: gitlabClaims(), want: true},
		{name: "protected release branch", role: protectedBranches, claims: with(gitlabClaims(), "ref", "release/1.4"), want: true},
		{name: "unprotected main", role: protectedBranches, claims: with(gitlabClaims(), "ref_protected", "false")},
		{name: "feature branch", role: protectedBranches, claims: with(gitlabClaims(), "ref", "feature/x")},
		{name: "merge request pipeline", role: protectedBranches, claims: with(gitlabClaims(), "pipeline_source", "merge_request_event")},
		{name: "tag named main", role: protectedBranches, claims: tag("main")},
		{name: "fork project", role: protectedBranches, claims: with(gitlabClaims(), "project_id", "4242")},
		{name: "protected tag", role: tagsOnly, claims: tag("v1.2.3"), want: true},
		{name: "unprotected tag", role: tagsOnly, claims: with(tag("v1.2.3"), "ref_protected", "false")},
		{name: "branch named like a tag", role: tagsOnly, claims: with(gitlabClaims(), "ref", "v1.2.3")},
		{name: "production environment", role: productionEnv, claims: gitlabClaims(), want: true},
		{name: "unprotected production environment", role: productionEnv, claims: with(gitlabClaims(), "environment_protected", "false")},
		{name: "staging", role: productionEnv, claims: with(gitlabClaims(), "environment", "staging", "deployment_tier", "staging")},
		{name: "job without environment", role: productionEnv,
			claims: with(gitlabClaims(), "environment", nil, "environment_protected", nil, "deployment_tier", nil)},
		{name: "other namespace", role: productionEnv, claims: with(gitlabClaims(), "namespace_id", "73")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustCompile(t, tt.role, identity.KindGitLab)
			res := c.Evaluate(tt.claims)
			if res.Allowed != tt.want {
				t.Errorf("got allowed %v, want %v (checks %+v)", res.Allowed, tt.want, res.Checks)
			}
			if !tt.want && res.Denial() == "" {
				t.Error("got an empty denial for a refused token, want a message")
			}
		})
	}
}

// TestEvaluateConcurrent runs Evaluate and Render from many goroutines;
// run with -race.
func TestEvaluateConcurrent(t *testing.T) {
	c := mustCompile(t, benchRole(), identity.KindGitLab)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			claims := gitlabClaims()
			if i%2 == 1 {
				claims["ref"] = "feature"
			}
			for range 200 {
				if got, want := c.Evaluate(claims).Allowed, i%2 == 0; got != want {
					errs <- "got allowed " + map[bool]string{true: "true", false: "false"}[got]
					return
				}
				if _, err := c.Render(claims, map[string]string{VarLeaseID: "l-1"}); err != nil {
					errs <- err.Error()
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
