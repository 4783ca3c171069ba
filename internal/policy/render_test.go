package policy

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyferry/keyferry/internal/identity"
)

var sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

func TestRender(t *testing.T) {
	tests := []struct {
		name    string
		kind    identity.Kind // default gitlab
		change  func(r *Role)
		claims  map[string]any
		vars    map[string]string
		want    Rendered
		wantErr string
	}{
		{name: "gitlab default session name sanitises slashes", claims: gitlabClaims(),
			want: Rendered{SessionName: "gl-302-acme-infra"}},
		{name: "github default", kind: identity.KindGitHub,
			claims: map[string]any{"repository": "octo-org/octo-repo", "run_id": "9876", "run_attempt": "2"}, vars: map[string]string{"lease_id": "01LEASE"},
			want: Rendered{SessionName: "gh-9876-2-01LEASE"}},
		{name: "kubernetes default uses pointers", kind: identity.KindKubernetes, claims: kubernetesClaims(),
			vars: map[string]string{VarLeaseID: "01LEASE"}, want: Rendered{SessionName: "k8s-ci-01LEASE"}},
		{name: "generic default uses lease id", kind: identity.KindGeneric, claims: map[string]any{"sub": "builder-1"},
			vars: map[string]string{VarLeaseID: "l_01HX"}, want: Rendered{SessionName: "kf-builder-1-l_01HX"}},
		{name: "role variable defaults to the role name", change: func(r *Role) { r.AWS.SessionName = "{role}-{job_id}" }, claims: gitlabClaims(),
			want: Rendered{SessionName: "deploy-prod-302"}},
		{name: "role variable from vars", change: func(r *Role) { r.AWS.SessionName = "{role}-{job_id}" }, claims: gitlabClaims(),
			vars: map[string]string{VarRole: "other"}, want: Rendered{SessionName: "other-302"}},
		{name: "unicode becomes one dash per character", change: func(r *Role) { r.AWS.SessionName = "{user_login}-{job_id}" },
			claims: with(gitlabClaims(), "user_login", "jürgen"), want: Rendered{SessionName: "j-rgen-302"}},
		{name: "literal braces", change: func(r *Role) { r.AWS.SessionName = "{{x}}-{job_id}" }, claims: gitlabClaims(),
			want: Rendered{SessionName: "-x--302"}},
		{name: "allowed punctuation kept", change: func(r *Role) { r.AWS.SessionName = "a+b=c,d.e@f_g-{job_id}" }, claims: gitlabClaims(),
			want: Rendered{SessionName: "a+b=c,d.e@f_g-302"}},
		{name: "missing claim renders empty", change: func(r *Role) { r.AWS.SessionName = "gl-{environment}-{job_id}" },
			claims: with(gitlabClaims(), "environment", nil), want: Rendered{SessionName: "gl--302"}},
		{name: "too short", change: func(r *Role) { r.AWS.SessionName = "{job_id}" }, claims: with(gitlabClaims(), "job_id", "7"),
			wantErr: `policy: session name "7" is shorter than 2 characters`},
		{name: "empty", change: func(r *Role) { r.AWS.SessionName = "{job_id}" }, claims: map[string]any{},
			wantErr: "shorter than 2 characters"},
		{name: "tags sorted, sanitised and from templates",
			change: func(r *Role) {
				r.AWS.Tags = map[string]string{
					"project":  "{project_path}",
					"pipeline": "{pipeline_id}",
					"groups":   "{groups_direct}",
					"who":      "{user_login} <{user_email}>",
					"fixed":    "team {{core}}",
					"unicode":  "Zürich 東京",
				}
			},
			claims: gitlabClaims(),
			want: Rendered{SessionName: "gl-302-acme-infra", Tags: []Tag{
				{"fixed", "team _core_"},
				{"groups", "acme_acme/platform"},
				{"pipeline", "574"},
				{"project", "acme/infra"},
				{"unicode", "Zürich 東京"},
				{"who", "alice _alice@example.com_"},
			}}},
		{name: "tag value truncated to 256 characters", change: func(r *Role) { r.AWS.Tags = map[string]string{"ref": "{ref}"} },
			claims: with(gitlabClaims(), "ref", strings.Repeat("é", 300)),
			want:   Rendered{SessionName: "gl-302-acme-infra", Tags: []Tag{{"ref", strings.Repeat("é", 256)}}}},
		{name: "source identity", change: func(r *Role) { r.AWS.SourceIdentity = "{user_login}" }, claims: gitlabClaims(),
			want: Rendered{SessionName: "gl-302-acme-infra", SourceIdentity: "alice"}},
		{name: "source identity sanitised", change: func(r *Role) { r.AWS.SourceIdentity = "gl:{user_email}" }, claims: gitlabClaims(),
			want: Rendered{SessionName: "gl-302-acme-infra", SourceIdentity: "gl-alice@example.com"}},
		{name: "empty source identity is omitted", change: func(r *Role) { r.AWS.SourceIdentity = "{user_login}" },
			claims: with(gitlabClaims(), "user_login", nil), want: Rendered{SessionName: "gl-302-acme-infra"}},
		{name: "one-character source identity", change: func(r *Role) { r.AWS.SourceIdentity = "{user_login}" },
			claims: with(gitlabClaims(), "user_login", "a"), wantErr: `policy: source identity "a" is shorter than 2 characters`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := compileChanged(t, tt.kind, tt.change)
			got, err := c.Render(tt.claims, tt.vars)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("rendered mismatch (-want +got):\n%s", diff)
			}
			if !sessionNameRE.MatchString(got.SessionName) {
				t.Errorf("got session name %q, want it to match %s", got.SessionName, sessionNameRE)
			}
		})
	}
}

func TestSessionNameTruncation(t *testing.T) {
	long := "gl-" + strings.Repeat("group/", 12) + "project-"
	a, err := sanitizeSTSName(long+"1001", "session name")
	if err != nil {
		t.Fatal(err)
	}
	b, err := sanitizeSTSName(long+"1002", "session name")
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 64 || len(b) != 64 {
		t.Fatalf("got lengths %d and %d, want 64", len(a), len(b))
	}
	if a == b {
		t.Errorf("got %q for two names that differ only at the end, want different names", a)
	}
	if a[:55] != b[:55] || a[55] != '-' {
		t.Errorf("got %q and %q, want the same 55-character prefix then '-'", a, b)
	}
	if !sessionNameRE.MatchString(a) {
		t.Errorf("got %q, want it to match %s", a, sessionNameRE)
	}
	exact := strings.Repeat("x", 64)
	if got, _ := sanitizeSTSName(exact, "session name"); got != exact {
		t.Errorf("got %q for a 64-character name, want it unchanged", got)
	}
	// Unicode counts as one replaced character per rune, before the cut.
	if got, _ := sanitizeSTSName(strings.Repeat("ü", 70), "session name"); len(got) != 64 || got[:55] != strings.Repeat("-", 55) {
		t.Errorf("got %q, want 55 dashes, a dash and a hash", got)
	}
}

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"gl-{project_path}-{job_id}", "{{x}}", "{", "}", "{/kubernetes.io/pod/name}", "{role}{lease_id}", "{}", "{/a~1b}", "é{sub}"} {
		f.Add(s, "acme/infra", "l-1")
	}
	f.Fuzz(func(t *testing.T, src, value, lease string) {
		tpl, problems := parseTemplate(src, nil)
		claims := map[string]any{}
		for _, p := range tpl.parts {
			if p.kind == partClaim {
				claims[p.path[0]] = value
			}
		}
		nested := map[string]any{"kubernetes.io": map[string]any{"pod": map[string]any{"name": value}}}
		vars := func(name string) string { return lease }
		for _, cl := range []map[string]any{claims, nested, nil} {
			raw := tpl.render(cl, vars)
			if len(problems) > 0 {
				continue
			}
			name, err := sanitizeSTSName(raw, "session name")
			if err == nil && !sessionNameRE.MatchString(name) {
				t.Fatalf("template %q rendered session name %q, want it to match %s", src, name, sessionNameRE)
			}
			if v := sanitizeTagValue(raw); len([]rune(v)) > maxTagValue {
				t.Fatalf("got a tag value of %d characters, want at most %d", len([]rune(v)), maxTagValue)
			}
		}
	})
}
