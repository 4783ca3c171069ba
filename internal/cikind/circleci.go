package cikind

import (
	"strings"
	"time"
)

// CircleCI is the kind of CircleCI OIDC tokens ($CIRCLE_OIDC_TOKEN and
// $CIRCLE_OIDC_TOKEN_V2, or `circleci run oidc get`).
//
// Facts from https://circleci.com/docs/openid-connect-tokens/ and
// https://discuss.circleci.com/t/new-oidc-custom-claims/54214:
//   - Jobs that use at least one context get tokens. The issuer is one
//     per organization: https://oidc.circleci.com/org/ORG_ID, ORG_ID a
//     UUID.
//   - sub is org/ORG_ID/project/PROJECT_ID/user/USER_ID (UUIDs; the user
//     started the job). The V2 token appends
//     /vcs-origin/ORIGIN/vcs-ref/REF unless a custom webhook triggered
//     the pipeline.
//   - aud defaults to the organization id, which every service trusting
//     the organization accepts; `circleci run oidc get --claims
//     '{"aud": "…"}'` asks for another audience.
//   - exp is one hour after iat. No nbf or jti is documented.
//   - Other claims, all under oidc.circleci.com/: project-id, org-id,
//     pipeline-id, pipeline-definition-id (UUID strings), vcs-origin
//     ("github.com/org/repo") and vcs-ref ("refs/heads/main"), both
//     absent for custom webhooks, context-ids (array of UUID strings),
//     ssh-rerun (boolean: a human can reach the job over SSH). job-id
//     and workflow-id are sent but not documented; PyPI's CircleCI
//     trusted publishers read them
//     (https://github.com/pypi/warehouse/blob/main/warehouse/oidc/models/circleci.py).
//   - Forked builds get tokens only when the project passes secrets to
//     forked pull requests; check vcs-origin then.
//
// The issuer already pins the organization, so the tenant a role binds is
// a project.
const CircleCI = "circleci"

var circleCI = Kind{
	name:        CircleCI,
	maxTokenAge: time.Hour,
	shape: func(c map[string]any) []string {
		missing := subPrefix(nil, c, "org/")
		return need(missing, c, circleCIClaim+"project-id")
	},
	summary: func(c map[string]any) Summary {
		return Summary{
			Project: claimString(c, circleCIClaim+"vcs-origin"), ProjectID: claimString(c, circleCIClaim+"project-id"),
			Ref: claimString(c, circleCIClaim+"vcs-ref"), Pipeline: claimString(c, circleCIClaim+"pipeline-id"),
			Job: claimString(c, circleCIClaim+"job-id"), User: circleCIUser(stringClaim(c, "sub")),
		}
	},

	claims: []string{
		"iss", "sub", "aud", "iat", "exp",
		circleCIClaim + "org-id", circleCIClaim + "project-id",
		circleCIClaim + "pipeline-definition-id", circleCIClaim + "pipeline-id",
		circleCIClaim + "workflow-id", circleCIClaim + "job-id",
		circleCIClaim + "vcs-origin", circleCIClaim + "vcs-ref",
		circleCIClaim + "context-ids", circleCIClaim + "ssh-rerun",
	},
	bindings: []Binding{
		{Key: circleCIClaim + "project-id", Rule: exact, Doc: "it is exact"},
		{Key: "sub", Rule: path('/', 3, "org/"),
			Doc: "`org/<org>/project/<project>/…` with complete organization and project ids"},
	},
	bindingHint: "a literal project id: org/ORG/project/PROJECT/* is fine, org/ORG/* is not",
	// Neither a readable job number nor a documented job id is in the
	// token: {lease_id} names the session.
	sessionName: "cci-{lease_id}",
	perJob:      []string{circleCIClaim + "job-id"},

	// Project is the project id, User the user id, Ref the vcs-ref; the
	// organization id comes from iss when it ends in /org/ID. No jti, as
	// in CircleCI's tokens.
	dev: func(iss string, o DevOptions) map[string]any {
		org := "00000000-0000-4000-8000-000000000001"
		if i := strings.LastIndex(iss, "/org/"); i >= 0 && !strings.Contains(iss[i+5:], "/") {
			org = iss[i+5:]
		}
		def(&o.Project, "00000000-0000-4000-8000-000000000002")
		def(&o.User, "00000000-0000-4000-8000-000000000003")
		def(&o.Ref, "refs/heads/main")
		defTimes(&o.TTL, &o.Now, time.Hour)
		iat := o.Now.Unix()
		return map[string]any{
			"iss":                                    iss,
			"sub":                                    "org/" + org + "/project/" + o.Project + "/user/" + o.User,
			"aud":                                    audienceClaim(o.Audience),
			"iat":                                    iat,
			"exp":                                    iat + int64(o.TTL/time.Second),
			circleCIClaim + "org-id":                 org,
			circleCIClaim + "project-id":             o.Project,
			circleCIClaim + "pipeline-definition-id": randomUUID(),
			circleCIClaim + "pipeline-id":            randomUUID(),
			circleCIClaim + "workflow-id":            randomUUID(),
			circleCIClaim + "job-id":                 randomUUID(),
			circleCIClaim + "vcs-origin":             "github.com/dev-org/dev-repo",
			circleCIClaim + "vcs-ref":                o.Ref,
			circleCIClaim + "context-ids":            []string{randomUUID()},
			circleCIClaim + "ssh-rerun":              false,
		}
	},
}

// circleCIClaim prefixes CircleCI's own claim names.
const circleCIClaim = "oidc.circleci.com/"

// circleCIUser returns the user id of a sub
// "org/O/project/P/user/U[/vcs-origin/…]".
func circleCIUser(sub string) string {
	_, after, ok := strings.Cut(sub, "/user/")
	if !ok {
		return ""
	}
	user, _, _ := strings.Cut(after, "/")
	return user
}
