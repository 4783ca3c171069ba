package policy

import (
	"testing"

	"github.com/keyferry/keyferry/internal/identity"
)

// benchRole is a realistic GitLab deploy role: four match keys, a CEL
// condition and four tags.
func benchRole() Role {
	return Role{
		Name:   "deploy-prod",
		Issuer: "gitlab",
		Match: map[string]Values{
			"project_id":    {"42"},
			"ref_protected": {"true"},
			"ref":           {"main", "release/*"},
			"ref_type":      {"branch"},
		},
		Condition: `claims.pipeline_source != "merge_request_event" && claims.groups_direct.exists(g, g.startsWith("acme"))`,
		AWS: AWS{
			Type:    TypeAssumeRole,
			RoleARN: "arn:aws:iam::123456789012:role/deploy",
			Tags: map[string]string{
				"project":  "{project_path}",
				"pipeline": "{pipeline_id}",
				"job":      "{job_id}",
				"user":     "{user_login}",
			},
			SourceIdentity: "{user_login}",
		},
	}
}

func BenchmarkEvaluate(b *testing.B) {
	c := mustCompile(b, benchRole(), identity.KindGitLab)
	claims := gitlabClaims()
	claims["ref"] = "release/2024"
	b.ReportAllocs()
	for b.Loop() {
		if !c.Evaluate(claims).Allowed {
			b.Fatal("got denied, want allowed")
		}
	}
}

func BenchmarkRender(b *testing.B) {
	c := mustCompile(b, benchRole(), identity.KindGitLab)
	claims := gitlabClaims()
	vars := map[string]string{VarLeaseID: "l-01HX"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Render(claims, vars); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	r := benchRole()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(r, identity.KindGitLab); err != nil {
			b.Fatal(err)
		}
	}
}
