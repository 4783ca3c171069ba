package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyferry/keyferry/internal/dur"
	"github.com/keyferry/keyferry/internal/identity"
)

// validRole returns a fresh role that compiles for kind.
func validRole(kind identity.Kind) Role {
	r := Role{
		Name:   "deploy-prod",
		Issuer: string(kind),
		AWS:    AWS{Type: TypeAssumeRole, RoleARN: "arn:aws:iam::123456789012:role/deploy"},
	}
	switch kind {
	case identity.KindGitLab:
		r.Match = map[string]Values{"project_id": {"42"}, "ref_protected": {"true"}}
	case identity.KindGitHub:
		r.Match = map[string]Values{"repository_id": {"123456"}, "ref": {"refs/heads/main"}}
	case identity.KindKubernetes:
		r.Match = map[string]Values{"/kubernetes.io/namespace": {"ci"}}
	default:
		r.Match = map[string]Values{"sub": {"builder-1"}}
	}
	return r
}

// changedRole is validRole(kind) changed by change (when set), and its
// kind: GitLab when kind is empty.
func changedRole(kind identity.Kind, change func(*Role)) (Role, identity.Kind) {
	if kind == "" {
		kind = identity.KindGitLab
	}
	r := validRole(kind)
	if change != nil {
		change(&r)
	}
	return r, kind
}

// compileChanged compiles changedRole(kind, change), failing the test on a
// problem.
func compileChanged(t testing.TB, kind identity.Kind, change func(*Role)) *Compiled {
	t.Helper()
	r, kind := changedRole(kind, change)
	return mustCompile(t, r, kind)
}

func mustCompile(t testing.TB, r Role, kind identity.Kind) *Compiled {
	t.Helper()
	c, err := Compile(r, kind)
	if err != nil {
		t.Fatalf("Compile: got error %v, want none", err)
	}
	return c
}

func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got error %v (%T), want a *ValidationError", err, err)
	}
	return ve.Problems
}

func TestCompileValidRoles(t *testing.T) {
	for _, kind := range []identity.Kind{identity.KindGitLab, identity.KindGitHub, identity.KindKubernetes, identity.KindGeneric} {
		t.Run(string(kind), func(t *testing.T) {
			c := mustCompile(t, validRole(kind), kind)
			if got, want := c.Role().AWS.SessionName, DefaultSessionName(kind); got != want {
				t.Errorf("got session name %q, want default %q", got, want)
			}
		})
	}
}

// TestCompileProblems has one case per validation problem. Each case
// changes a valid role and expects exactly one problem containing want.
func TestCompileProblems(t *testing.T) {
	longName := strings.Repeat("a", 64)
	tooManyARNs := make([]string, 11)
	for i := range tooManyARNs {
		tooManyARNs[i] = "arn:aws:iam::aws:policy/ReadOnlyAccess"
	}
	tooManyTags := map[string]string{}
	for i := range 51 {
		tooManyTags[fmt.Sprintf("t%02d", i)] = "v"
	}
	bigPolicy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::` + strings.Repeat("b", 2048) + `/*"}]}`

	tests := []struct {
		name   string
		kind   identity.Kind // default gitlab
		change func(r *Role)
		want   string
	}{
		{name: "name uppercase", change: func(r *Role) { r.Name = "Deploy" }, want: `name: "Deploy" is not a valid role name`},
		{name: "name empty", change: func(r *Role) { r.Name = "" }, want: `name: "" is not a valid role name`},
		{name: "name too long", change: func(r *Role) { r.Name = longName }, want: `name: "` + longName + `" is not a valid role name`},
		{name: "name leading dash", change: func(r *Role) { r.Name = "-x" }, want: `name: "-x"`},
		{name: "issuer empty", change: func(r *Role) { r.Issuer = " " }, want: "issuer: required"},
		{name: "unknown kind", kind: "jenkins", change: func(r *Role) { r.Match = map[string]Values{"sub": {"x"}} }, want: `issuer: kind "jenkins" is not one of`},
		{name: "match unknown claim", change: func(r *Role) { r.Match["project"] = Values{"x"} }, want: `match.project: "project" is not a known claim for gitlab tokens`},
		{name: "match github claim on gitlab", change: func(r *Role) { r.Match["repository"] = Values{"x"} }, want: `match.repository: "repository" is not a known claim`},
		{name: "match pointer unknown first segment", kind: identity.KindKubernetes,
			change: func(r *Role) { r.Match["/kubernetes/pod/name"] = Values{"x"} },
			want:   `match./kubernetes/pod/name: JSON pointer starts with "kubernetes", which is not a known claim`},
		{name: "match pointer bad escape", kind: identity.KindKubernetes,
			change: func(r *Role) { r.Match["/kubernetes.io/~2"] = Values{"x"} }, want: "match./kubernetes.io/~2: bad JSON pointer escape"},
		{name: "match pointer empty first segment", kind: identity.KindKubernetes,
			change: func(r *Role) { r.Match["//x"] = Values{"x"} }, want: "match.//x: JSON pointer has an empty first segment"},
		{name: "match object claim", kind: identity.KindKubernetes,
			change: func(r *Role) { r.Match["kubernetes.io"] = Values{"x"} }, want: `match.kubernetes.io: claim "kubernetes.io" holds an object`},
		{name: "match no values", change: func(r *Role) { r.Match["ref"] = Values{} }, want: "match.ref: no values"},
		{name: "match empty value", change: func(r *Role) { r.Match["ref"] = Values{"main", ""} }, want: "match.ref: value 1 is empty"},
		{name: "match lone backslash", change: func(r *Role) { r.Match["ref"] = Values{`main\`} }, want: `match.ref: value "main\\" ends with a lone \`},
		{name: "condition syntax", change: func(r *Role) { r.Condition = "claims.ref ==" }, want: "condition: Syntax error"},
		{name: "condition not bool", change: func(r *Role) { r.Condition = `"yes"` }, want: "condition: has type string; a condition must be a bool"},
		{name: "condition int", change: func(r *Role) { r.Condition = `size(claims)` }, want: "condition: has type int"},
		{name: "condition unknown claim", change: func(r *Role) { r.Condition = `claims.branch == "main"` }, want: `condition: claims.branch: "branch" is not a known claim`},
		{name: "condition unknown claim by index", change: func(r *Role) { r.Condition = `claims["branch"] == "main"` }, want: `condition: claims.branch: "branch" is not a known claim`},
		{name: "condition unknown claim in has", change: func(r *Role) { r.Condition = `has(claims.branch)` }, want: `condition: claims.branch: "branch"`},
		{name: "condition unknown claim with in", change: func(r *Role) { r.Condition = `"branch" in claims` }, want: `condition: claims.branch: "branch"`},
		{name: "condition computed key", change: func(r *Role) { r.Condition = `claims["re" + "f"] == "main"` }, want: "condition: indexes claims with a computed key"},
		{name: "condition undeclared variable", change: func(r *Role) { r.Condition = `ref == "main"` }, want: "condition: undeclared reference to 'ref'"},
		{name: "condition too expensive", change: func(r *Role) {
			r.Condition = `claims.groups_direct.exists(a, claims.groups_direct.exists(b, claims.groups_direct.exists(c, a + b == c)))`
		}, want: "condition: estimated cost"},
		{name: "condition too long", change: func(r *Role) { r.Condition = strings.Repeat("true && ", 600) + "true" }, want: "condition: is 4804 bytes long; the limit is 4096"},
		{name: "unbound", change: func(r *Role) { delete(r.Match, "project_id") }, want: "match: the role binds no tenant"},
		{name: "aws type missing", change: func(r *Role) { r.AWS.Type = "" }, want: "aws.type: required (assume_role, web_identity or iam_user)"},
		{name: "aws type unknown", change: func(r *Role) { r.AWS.Type = "static" }, want: `aws.type: "static" is not one of assume_role, web_identity, iam_user`},
		{name: "iam_user setting on assume_role", change: func(r *Role) { r.AWS.Groups = []string{"ci"} }, want: "aws.groups: only iam_user roles use it"},
		{name: "early revocation on web_identity", change: func(r *Role) { r.AWS.Type = TypeWebIdentity; r.AWS.EarlyRevocation = true },
			want: "aws.early_revocation: only assume_role sessions"},
		{name: "role arn missing", change: func(r *Role) { r.AWS.RoleARN = "" }, want: "aws.role_arn: required"},
		{name: "role arn without account", change: func(r *Role) { r.AWS.RoleARN = "arn:aws:iam::role/x" },
			want: `aws.role_arn: "arn:aws:iam::role/x" is not an IAM role ARN (want arn:aws:iam::123456789012:role/NAME)`},
		{name: "role arn of a user", change: func(r *Role) { r.AWS.RoleARN = "arn:aws:iam::123456789012:user/x" }, want: "is not an IAM role ARN"},
		{name: "role arn bad partition", change: func(r *Role) { r.AWS.RoleARN = "arn:aws-xx:iam::123456789012:role/x" }, want: "is not an IAM role ARN"},
		{name: "role arn name too long", change: func(r *Role) { r.AWS.RoleARN = "arn:aws:iam::123456789012:role/ci/" + strings.Repeat("r", 65) },
			want: "aws.role_arn: role name \"" + strings.Repeat("r", 65) + "\" is 65 characters long; IAM allows at most 64"},
		{name: "role arn path without name", change: func(r *Role) { r.AWS.RoleARN = "arn:aws:iam::123456789012:role/ci/" }, want: "ends with /; the role name is missing"},
		{name: "session name unknown claim", change: func(r *Role) { r.AWS.SessionName = "gl-{project}-{job_id}" }, want: `aws.session_name: {project}: "project" is not a known claim`},
		{name: "session name unclosed brace", change: func(r *Role) { r.AWS.SessionName = "gl-{job_id" }, want: "aws.session_name: unclosed { at offset 3"},
		{name: "session name nested brace", change: func(r *Role) { r.AWS.SessionName = "gl-{job_{id}" }, want: "aws.session_name: unclosed { at offset 3"},
		{name: "session name stray brace", change: func(r *Role) { r.AWS.SessionName = "gl-{job_id}}" }, want: "aws.session_name: unmatched } at offset 11"},
		{name: "session name empty placeholder", change: func(r *Role) { r.AWS.SessionName = "gl-{}-{job_id}" }, want: "aws.session_name: empty placeholder {}"},
		{name: "session name not unique per job", change: func(r *Role) { r.AWS.SessionName = "gl-{project_path}-{pipeline_id}" },
			want: `aws.session_name: "gl-{project_path}-{pipeline_id}" has no per-job placeholder; include one of {job_id}, {jti}, {lease_id}`},
		{name: "session name github needs run_id", kind: identity.KindGitHub, change: func(r *Role) { r.AWS.SessionName = "gh-{repository}" },
			want: "include one of {run_id}, {jti}, {lease_id}"},
		{name: "session name kubernetes needs pod", kind: identity.KindKubernetes, change: func(r *Role) { r.AWS.SessionName = "k8s-{sub}" },
			want: "include one of {/kubernetes.io/pod/uid}, {/kubernetes.io/pod/name}, {jti}, {lease_id}"},
		{name: "session name generic needs lease", kind: identity.KindGeneric, change: func(r *Role) { r.AWS.SessionName = "kf-{sub}" },
			want: "include one of {jti}, {lease_id}"},
		{name: "session policy not an object", change: func(r *Role) { r.AWS.SessionPolicy = json.RawMessage(`[1]`) }, want: "aws.session_policy: must be a JSON object"},
		{name: "session policy string without object", change: func(r *Role) { r.AWS.SessionPolicy = json.RawMessage(`"allow all"`) }, want: "aws.session_policy: must be a JSON object"},
		{name: "session policy without statement", change: func(r *Role) { r.AWS.SessionPolicy = json.RawMessage(`{"Version":"2012-10-17"}`) }, want: `aws.session_policy: has no "Statement"`},
		{name: "session policy too long", change: func(r *Role) { r.AWS.SessionPolicy = json.RawMessage(bigPolicy) }, want: "aws.session_policy: is 2158 characters long as compact JSON; STS accepts at most 2048"},
		{name: "session policy bad character", change: func(r *Role) {
			r.AWS.SessionPolicy = json.RawMessage(`{"Statement":[],"Sid":"€"}`)
		}, want: `aws.session_policy: contains '€'`},
		{name: "too many policy arns", change: func(r *Role) { r.AWS.PolicyARNs = tooManyARNs }, want: "aws.policy_arns: 11 policies; STS accepts at most 10"},
		{name: "bad policy arn", change: func(r *Role) { r.AWS.PolicyARNs = []string{"arn:aws:iam::aws:role/x"} },
			want: `aws.policy_arns[0]: "arn:aws:iam::aws:role/x" is not a managed policy ARN`},
		{name: "too many tags", change: func(r *Role) { r.AWS.Tags = tooManyTags }, want: "aws.tags: 51 tags; STS accepts at most 50"},
		{name: "tag key bad character", change: func(r *Role) { r.AWS.Tags = map[string]string{"a*b": "x"} }, want: `aws.tags.a*b: key contains '*'`},
		{name: "tag key too long", change: func(r *Role) { r.AWS.Tags = map[string]string{strings.Repeat("k", 129): "x"} }, want: "key is 129 characters long; the limit is 128"},
		{name: "tag key empty", change: func(r *Role) { r.AWS.Tags = map[string]string{"": "x"} }, want: "aws.tags.: empty key"},
		{name: "tag key aws prefix", change: func(r *Role) { r.AWS.Tags = map[string]string{"AWS:team": "x"} }, want: "aws.tags.AWS:team: keys starting with aws: are reserved"},
		{name: "tag keys equal ignoring case", change: func(r *Role) { r.AWS.Tags = map[string]string{"Team": "a", "team": "b"} },
			want: `aws.tags.team: duplicates tag "Team"`},
		{name: "tag value unknown claim", change: func(r *Role) { r.AWS.Tags = map[string]string{"project": "{project}"} }, want: `aws.tags.project: {project}: "project" is not a known claim`},
		{name: "tag value unclosed brace", change: func(r *Role) { r.AWS.Tags = map[string]string{"project": "{project_path"} }, want: "aws.tags.project: unclosed {"},
		{name: "transitive key not a tag", change: func(r *Role) {
			r.AWS.Tags = map[string]string{"project": "{project_path}"}
			r.AWS.TransitiveTagKeys = []string{"project", "team"}
		}, want: `aws.transitive_tag_keys[1]: "team" is not a key of aws.tags`},
		{name: "source identity unknown claim", change: func(r *Role) { r.AWS.SourceIdentity = "{login}" }, want: `aws.source_identity: {login}: "login" is not a known claim`},
		{name: "source identity aws prefix", change: func(r *Role) { r.AWS.SourceIdentity = "AWS:{user_login}" }, want: "aws.source_identity: \"AWS:{user_login}\" starts with aws:"},
		{name: "external id too short", change: func(r *Role) { r.AWS.ExternalID = "x" }, want: "aws.external_id: must be 2–1224 characters"},
		{name: "external id too long", change: func(r *Role) { r.AWS.ExternalID = strings.Repeat("x", 1225) }, want: "aws.external_id: must be 2–1224 characters"},
		{name: "external id bad character", change: func(r *Role) { r.AWS.ExternalID = "a b" }, want: "aws.external_id: must be"},
		{name: "web identity with tags", change: func(r *Role) {
			r.AWS.Type = TypeWebIdentity
			r.AWS.Tags = map[string]string{"project": "{project_path}"}
		}, want: "aws.tags: web_identity roles cannot set it"},
		{name: "web identity with transitive keys", change: func(r *Role) {
			r.AWS.Type = TypeWebIdentity
			r.AWS.TransitiveTagKeys = []string{"project"}
		}, want: "aws.transitive_tag_keys: web_identity roles cannot set it"},
		{name: "web identity with source identity", change: func(r *Role) {
			r.AWS.Type = TypeWebIdentity
			r.AWS.SourceIdentity = "{user_login}"
		}, want: "aws.source_identity: web_identity roles cannot set it"},
		{name: "web identity with external id", change: func(r *Role) {
			r.AWS.Type = TypeWebIdentity
			r.AWS.ExternalID = "secret-ish"
		}, want: "aws.external_id: web_identity roles cannot set it"},
		{name: "ttl too short", change: func(r *Role) { r.AWS.TTL = dur.Duration(10 * time.Minute); r.AWS.MaxTTL = dur.Duration(time.Hour) },
			want: "aws.ttl: 10m0s is outside 15m0s–12h0m0s"},
		{name: "ttl too long", change: func(r *Role) { r.AWS.TTL = dur.Duration(13 * time.Hour) }, want: "aws.ttl: 13h0m0s is outside 15m0s–12h0m0s"},
		{name: "ttl negative", change: func(r *Role) { r.AWS.TTL = dur.Duration(-time.Hour); r.AWS.MaxTTL = dur.Duration(time.Hour) }, want: "aws.ttl: -1h0m0s is outside"},
		{name: "max ttl below ttl", change: func(r *Role) { r.AWS.TTL = dur.Duration(2 * time.Hour); r.AWS.MaxTTL = dur.Duration(time.Hour) },
			want: "aws.max_ttl: 1h0m0s is shorter than ttl 2h0m0s"},
		{name: "max ttl above a week", change: func(r *Role) { r.AWS.MaxTTL = dur.Duration(169 * time.Hour) }, want: "aws.max_ttl: 169h0m0s exceeds the limit 168h0m0s"},
		{name: "region", change: func(r *Role) { r.AWS.Region = "EU-west-1" }, want: `aws.region: "EU-west-1" is not an AWS region name`},
		{name: "region without number", change: func(r *Role) { r.AWS.Region = "eu-west" }, want: `aws.region: "eu-west"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compile(changedRole(tt.kind, tt.change))
			if err == nil {
				t.Fatalf("got compiled role %v, want a problem containing %q", c.Role(), tt.want)
			}
			ps := problemsOf(t, err)
			if len(ps) != 1 || !strings.Contains(ps[0], tt.want) {
				t.Errorf("got problems %q, want exactly one containing %q", ps, tt.want)
			}
		})
	}
}

// TestCompileReportsEveryProblem checks that a role with many problems
// reports all of them, in a stable order, and that Error() joins them.
func TestCompileReportsEveryProblem(t *testing.T) {
	r := Role{
		Name:      "Bad Name",
		Match:     map[string]Values{"project": {"x"}, "ref": {""}},
		Condition: `claims.branch == "main"`,
		AWS: AWS{
			Type:          "static",
			RoleARN:       "arn:aws:iam::role/x",
			SessionName:   "gl-{project_path}",
			SessionPolicy: json.RawMessage(`{"Version":"2012-10-17"}`),
			Tags:          map[string]string{"aws:x": "{nope}"},
			ExternalID:    "x",
			TTL:           dur.Duration(time.Minute),
			Region:        "mars",
		},
	}
	_, err := Compile(r, identity.KindGitLab)
	got := problemsOf(t, err)
	want := []string{
		`name: "Bad Name" is not a valid role name`,
		"issuer: required",
		`match.project: "project" is not a known claim`,
		"match.ref: value 0 is empty",
		`condition: claims.branch: "branch" is not a known claim`,
		"match: the role binds no tenant",
		`aws.type: "static" is not one of`,
		`aws.role_arn: "arn:aws:iam::role/x" is not an IAM role ARN`,
		`aws.session_name: "gl-{project_path}" has no per-job placeholder`,
		`aws.session_policy: has no "Statement"`,
		"aws.tags.aws:x: keys starting with aws: are reserved",
		`aws.tags.aws:x: {nope}: "nope" is not a known claim`,
		"aws.external_id: must be",
		"aws.ttl: 1m0s is outside",
		`aws.region: "mars"`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d problems %q, want %d", len(got), got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d: got %q, want it to start with %q", i, got[i], want[i])
		}
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "invalid role: ") || strings.Count(msg, "; ") < len(want)-1 {
		t.Errorf("got Error() %q, want every problem joined with \"; \"", msg)
	}
}

func TestNormalize(t *testing.T) {
	r := validRole(identity.KindGitLab)
	r.AWS.TTL = dur.Duration(2 * time.Hour)
	r.AWS.SessionPolicy = json.RawMessage(`"{ \"Version\": \"2012-10-17\",\n \"Statement\": [] }"`)
	r.AWS.Tags = map[string]string{"project": "{project_path}"}
	c := mustCompile(t, r, identity.KindGitLab)
	got := c.Role()
	want := r
	want.AWS.SessionName = "gl-{job_id}-{project_path}"
	want.AWS.MaxTTL = dur.Duration(2 * time.Hour)
	want.AWS.SessionPolicy = json.RawMessage(`{"Version":"2012-10-17","Statement":[]}`)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("normalized role mismatch (-want +got):\n%s", diff)
	}
	// The compiled role is a copy: changing the input or the returned
	// role must not change what Compiled holds.
	r.Match["project_id"][0] = "43"
	got.AWS.Tags["project"] = "changed"
	again := c.Role()
	if again.Match["project_id"][0] != "42" || again.AWS.Tags["project"] != "{project_path}" {
		t.Errorf("got role %+v after mutating copies, want the compiled role unchanged", again)
	}

	// Defaults when nothing is set: ttl 1h, max_ttl = ttl.
	n := Normalize(Role{}, identity.KindGitHub)
	if n.AWS.TTL.D() != time.Hour || n.AWS.MaxTTL.D() != time.Hour || n.AWS.SessionName != "gh-{run_id}-{run_attempt}-{lease_id}" {
		t.Errorf("got ttl %s, max_ttl %s, session name %q; want 1h, 1h, the github default", n.AWS.TTL, n.AWS.MaxTTL, n.AWS.SessionName)
	}
	if n := Normalize(Role{AWS: AWS{SessionPolicy: json.RawMessage("null")}}, identity.KindGitHub); n.AWS.SessionPolicy != nil {
		t.Errorf("got session policy %s, want null normalised away", n.AWS.SessionPolicy)
	}
}

func TestKnownClaims(t *testing.T) {
	tests := []struct {
		kind    identity.Kind
		present []string
		absent  []string
	}{
		{identity.KindGitLab,
			[]string{"project_id", "project_path", "namespace_id", "job_project_path", "ref_protected", "runner_id", "groups_direct", "environment_protected", "deployment_tier", "ci_config_ref_uri", "job_config", "user_access_level", "jti"},
			[]string{"repository", "kubernetes.io", "project"}},
		{identity.KindGitHub,
			[]string{"repository", "repository_id", "repository_owner_id", "run_id", "run_attempt", "job_workflow_ref", "enterprise_id", "event_name", "workflow_sha"},
			[]string{"project_id", "kubernetes.io"}},
		{identity.KindKubernetes,
			[]string{"kubernetes.io", "sub", "aud", "jti"},
			[]string{"namespace", "project_id"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			known := KnownClaims(tt.kind)
			for _, c := range tt.present {
				if !known[c] {
					t.Errorf("got %q unknown, want known", c)
				}
			}
			for _, c := range tt.absent {
				if known[c] {
					t.Errorf("got %q known, want unknown", c)
				}
			}
		})
	}
	if got := KnownClaims(identity.KindGeneric); got != nil {
		t.Errorf("got %v for generic, want nil (anything goes)", got)
	}
	a := KnownClaims(identity.KindGitLab)
	delete(a, "sub")
	if !KnownClaims(identity.KindGitLab)["sub"] {
		t.Error("got a shared set, want a fresh one per call")
	}
}

func TestUnbound(t *testing.T) {
	tests := []struct {
		name      string
		kind      identity.Kind
		match     map[string]Values
		unbound   bool
		wantMatch string // part of the problem, when unbound
	}{
		{name: "gitlab no binding", kind: identity.KindGitLab, match: map[string]Values{"ref": {"main"}}, unbound: true, wantMatch: "match one of project_id, project_path, namespace_id, namespace_path, job_project_id, job_project_path or sub"},
		{name: "gitlab project_id", kind: identity.KindGitLab, match: map[string]Values{"project_id": {"42"}}},
		{name: "gitlab project_id wildcard", kind: identity.KindGitLab, match: map[string]Values{"project_id": {"4*"}}, unbound: true, wantMatch: `project_id "4*": a wildcard in an ID`},
		{name: "gitlab project_path star", kind: identity.KindGitLab, match: map[string]Values{"project_path": {"*"}}, unbound: true, wantMatch: `project_path "*"`},
		{name: "gitlab project_path acme*", kind: identity.KindGitLab, match: map[string]Values{"project_path": {"acme*"}}, unbound: true, wantMatch: `project_path "acme*": a wildcard in the top-level segment`},
		{name: "gitlab project_path group/*", kind: identity.KindGitLab, match: map[string]Values{"project_path": {"group/*"}}},
		{name: "gitlab namespace_path group/*", kind: identity.KindGitLab, match: map[string]Values{"namespace_path": {"group/*"}}},
		{name: "gitlab namespace_path exact", kind: identity.KindGitLab, match: map[string]Values{"namespace_path": {"acme"}}},
		{name: "gitlab one bad value unbinds the key", kind: identity.KindGitLab, match: map[string]Values{"project_path": {"acme/infra", "*"}}, unbound: true, wantMatch: `project_path "*"`},
		{name: "gitlab another key binds", kind: identity.KindGitLab, match: map[string]Values{"project_path": {"*"}, "namespace_id": {"7"}}},
		{name: "gitlab sub project_path:*", kind: identity.KindGitLab, match: map[string]Values{"sub": {"project_path:*"}}, unbound: true, wantMatch: `sub "project_path:*"`},
		{name: "gitlab sub project_path:acme*", kind: identity.KindGitLab, match: map[string]Values{"sub": {"project_path:acme*"}}, unbound: true, wantMatch: `sub "project_path:acme*"`},
		{name: "gitlab sub star", kind: identity.KindGitLab, match: map[string]Values{"sub": {"*"}}, unbound: true, wantMatch: "a wildcard before the project_path: part"},
		{name: "gitlab sub group/*", kind: identity.KindGitLab, match: map[string]Values{"sub": {"project_path:group/*"}}},
		{name: "gitlab sub any ref", kind: identity.KindGitLab, match: map[string]Values{"sub": {"project_path:acme/infra:ref_type:branch:ref:*"}}},
		{name: "gitlab sub job_project_path", kind: identity.KindGitLab, match: map[string]Values{"sub": {"job_project_path:acme/*"}}},
		{name: "gitlab sub exact", kind: identity.KindGitLab, match: map[string]Values{"sub": {"project_path:acme/infra:ref_type:branch:ref:main"}}},
		{name: "gitlab escaped star is literal", kind: identity.KindGitLab, match: map[string]Values{"project_path": {`acme\*`}}},
		{name: "github repository", kind: identity.KindGitHub, match: map[string]Values{"repository": {"acme/infra"}}},
		{name: "github repository acme/*", kind: identity.KindGitHub, match: map[string]Values{"repository": {"acme/*"}}},
		{name: "github repository owner wildcard", kind: identity.KindGitHub, match: map[string]Values{"repository": {"acme*/infra"}}, unbound: true, wantMatch: "match one of repository, repository_id, repository_owner, repository_owner_id or sub"},
		{name: "github owner wildcard", kind: identity.KindGitHub, match: map[string]Values{"repository_owner": {"acme*"}}, unbound: true, wantMatch: `repository_owner "acme*"`},
		{name: "github owner id", kind: identity.KindGitHub, match: map[string]Values{"repository_owner_id": {"99"}}},
		{name: "github sub repo:*", kind: identity.KindGitHub, match: map[string]Values{"sub": {"repo:*"}}, unbound: true, wantMatch: `sub "repo:*"`},
		{name: "github sub repo:acme*", kind: identity.KindGitHub, match: map[string]Values{"sub": {"repo:acme*"}}, unbound: true, wantMatch: `sub "repo:acme*"`},
		{name: "github sub repo:acme/*", kind: identity.KindGitHub, match: map[string]Values{"sub": {"repo:acme/*"}}},
		{name: "github only ref", kind: identity.KindGitHub, match: map[string]Values{"ref": {"refs/heads/main"}}, unbound: true, wantMatch: "allow_unbound: true"},
		{name: "kubernetes namespace", kind: identity.KindKubernetes, match: map[string]Values{"/kubernetes.io/namespace": {"ci"}}},
		{name: "kubernetes namespace wildcard", kind: identity.KindKubernetes, match: map[string]Values{"/kubernetes.io/namespace": {"ci-*"}}, unbound: true, wantMatch: `/kubernetes.io/namespace "ci-*"`},
		{name: "kubernetes sub any sa in namespace", kind: identity.KindKubernetes, match: map[string]Values{"sub": {"system:serviceaccount:ci:*"}}},
		{name: "kubernetes sub any namespace", kind: identity.KindKubernetes, match: map[string]Values{"sub": {"system:serviceaccount:*"}}, unbound: true, wantMatch: `sub "system:serviceaccount:*"`},
		{name: "kubernetes sub namespace prefix", kind: identity.KindKubernetes, match: map[string]Values{"sub": {"system:serviceaccount:ci*:deployer"}}, unbound: true, wantMatch: "a literal namespace"},
		{name: "kubernetes only pod name", kind: identity.KindKubernetes, match: map[string]Values{"/kubernetes.io/pod/name": {"x"}}, unbound: true, wantMatch: "match one of /kubernetes.io/namespace or sub"},
		{name: "generic sub", kind: identity.KindGeneric, match: map[string]Values{"sub": {"builder-*"}}},
		{name: "generic sub star", kind: identity.KindGeneric, match: map[string]Values{"sub": {"*"}}, unbound: true, wantMatch: "match sub with values"},
		{name: "generic no match", kind: identity.KindGeneric, unbound: true, wantMatch: "set allow_unbound: true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRole(tt.kind)
			r.Match = tt.match
			_, err := Compile(r, tt.kind)
			if !tt.unbound {
				if err != nil {
					t.Fatalf("got error %v, want the role accepted", err)
				}
				return
			}
			ps := problemsOf(t, err)
			if len(ps) != 1 || !strings.HasPrefix(ps[0], "match: the role binds no tenant") || !strings.Contains(ps[0], tt.wantMatch) || !strings.Contains(ps[0], "allow_unbound: true") {
				t.Fatalf("got problems %q, want one unbound problem containing %q and allow_unbound", ps, tt.wantMatch)
			}
			r.AllowUnbound = true
			if _, err := Compile(r, tt.kind); err != nil {
				t.Errorf("with allow_unbound: got error %v, want none", err)
			}
		})
	}
}

func iamUserRole() Role {
	return Role{
		Name: "artifacts", Issuer: "gitlab",
		Match: map[string]Values{"project_id": {"42"}},
		AWS: AWS{Type: TypeIAMUser, UserPolicy: json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"*"}]}`),
			Tags: map[string]string{"project": "{project_path}"}, TTL: dur.Duration(5 * time.Minute)},
	}
}

func TestCompileIAMUser(t *testing.T) {
	c, err := Compile(iamUserRole(), identity.KindGitLab)
	if err != nil {
		t.Fatal(err)
	}
	r := c.Role()
	if r.AWS.UserName != DefaultUserName || r.AWS.UserPath != DefaultUserPath || !r.AWS.WaitsUntilUsable() || r.AWS.SessionName != "" {
		t.Errorf("normalised iam_user role: %+v", r.AWS)
	}
	out, err := c.Render(map[string]any{"project_path": "g/p"}, map[string]string{VarLeaseID: "01LEASEID"})
	if err != nil || out.SessionName != "kf-01LEASEID" || len(out.Tags) != 1 {
		t.Errorf("render: %+v %v", out, err)
	}
	tests := []struct {
		name   string
		change func(*Role)
		want   string
	}{
		{"role arn", func(r *Role) { r.AWS.RoleARN = "arn:aws:iam::123456789012:role/x" }, "aws.role_arn: iam_user roles create a user"},
		{"session name", func(r *Role) { r.AWS.SessionName = "x-{lease_id}" }, "aws.session_name: iam_user roles"},
		{"no lease id", func(r *Role) { r.AWS.UserName = "kf-{job_id}" }, "aws.user_name: \"kf-{job_id}\" must contain {lease_id}"},
		{"bad path", func(r *Role) { r.AWS.UserPath = "keyferry" }, "aws.user_path:"},
		{"bad boundary", func(r *Role) { r.AWS.PermissionsBoundary = "arn:aws:iam::123456789012:role/x" }, "aws.permissions_boundary:"},
		{"no permissions", func(r *Role) { r.AWS.UserPolicy = nil }, "aws.user_policy: the user would have no permissions"},
		{"policy too long", func(r *Role) {
			r.AWS.UserPolicy = json.RawMessage(`{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"` + strings.Repeat("a", 2100) + `"}]}`)
		}, "aws.user_policy: "},
		{"bad group", func(r *Role) { r.AWS.Groups = []string{"a b"} }, "aws.groups[0]:"},
		{"ttl too short", func(r *Role) { r.AWS.TTL = dur.Duration(30 * time.Second) }, "aws.ttl:"},
		{"external id", func(r *Role) { r.AWS.ExternalID = "abc" }, "aws.external_id: iam_user"},
		{"reserved tag prefix", func(r *Role) { r.AWS.Tags = map[string]string{"keyferry:lease-id": "x"} }, "the keyferry: prefix is reserved"},
		{"too many tags", func(r *Role) {
			r.AWS.Tags = map[string]string{}
			for i := 0; i < 47; i++ {
				r.AWS.Tags[fmt.Sprintf("t%d", i)] = "v"
			}
		}, "iam_user roles may set at most 46"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := iamUserRole()
			tt.change(&r)
			_, err := Compile(r, identity.KindGitLab)
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) != 1 || !strings.Contains(ve.Problems[0], tt.want) {
				t.Fatalf("got %v, want one problem containing %q", err, tt.want)
			}
		})
	}
}
