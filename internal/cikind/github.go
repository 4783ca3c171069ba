package cikind

import (
	"strings"
	"time"
)

// GitHub is the kind of GitHub Actions OIDC tokens.
//
// Claims: https://docs.github.com/en/actions/reference/security/oidc. All
// ids are strings. The default sub is repo:OWNER/REPO: followed by
// environment:NAME, pull_request or ref:REF, the first that applies.
const GitHub = "github"

var gitHub = Kind{
	name: GitHub,
	// Tokens live 5 minutes.
	maxTokenAge: time.Hour,
	shape: func(c map[string]any) []string {
		missing := subPrefix(nil, c, "repo:")
		return need(missing, c, "repository", "run_id")
	},
	summary: func(c map[string]any) Summary {
		s := Summary{
			Project: claimString(c, "repository"), ProjectID: claimString(c, "repository_id"),
			Ref: claimString(c, "ref"), Pipeline: claimString(c, "run_id"), User: claimString(c, "actor"),
		}
		// A token names the run, not the job: the attempt tells re-runs apart.
		if a := claimString(c, "run_attempt"); a != "" && s.Pipeline != "" {
			s.Job = s.Pipeline + "-" + a
		}
		return s
	},

	claims: []string{
		"aud", "iss", "sub", "exp", "iat", "jti", "nbf",
		"actor", "actor_id", "base_ref", "head_ref", "enterprise", "enterprise_id",
		"environment", "event_name", "job_workflow_ref", "job_workflow_sha",
		"ref", "ref_type", "repository", "repository_id", "repository_owner",
		"repository_owner_id", "repository_visibility", "run_id", "run_number",
		"run_attempt", "runner_environment", "sha", "workflow", "workflow_ref",
		"workflow_sha",
	},
	bindings: []Binding{
		{Key: "repository", Rule: path('/', 1), Doc: "exact, or `owner/*`"},
		{Key: "repository_id", Rule: exact, Doc: "it is exact"},
		{Key: "repository_owner", Rule: exact, Doc: "it is exact"},
		{Key: "repository_owner_id", Rule: exact, Doc: "it is exact"},
		{Key: "sub", Rule: path('/', 1, "repo:"), Doc: "`repo:owner/…` with a complete owner"},
	},
	bindingHint: "not repo:* or a wildcard in the owner such as acme*; acme/* is fine",
	// The per-job part comes first; a token names the run, not the job,
	// so {lease_id} keeps names unique.
	sessionName: "gh-{run_id}-{run_attempt}-{lease_id}",
	perJob:      []string{"run_id"},

	dev: func(iss string, o DevOptions) map[string]any {
		return GitHubClaims(iss, GitHubOptions{Repository: o.Project, Ref: o.Ref, Actor: o.User,
			Audience: o.Audience, TTL: o.TTL, Now: o.Now, JTI: o.JTI})
	},
}

// GitHubOptions shape a GitHub Actions OIDC token. Zero fields get
// defaults: repository octo-org/octo-repo (ids "1"), ref refs/heads/main,
// event push, actor octocat, workflow "CI" in .github/workflows/ci.yml,
// a random run id, run number and attempt "1", visibility private,
// github-hosted runner, audience DevAudience, TTL 5m, Now time.Now().
type GitHubOptions struct {
	Repository, RepositoryID, RepositoryOwnerID string
	Ref                                         string // full ref: refs/heads/…, refs/tags/…, refs/pull/…
	SHA                                         string
	EventName                                   string
	// Environment, when set, adds the environment claim and makes sub
	// repo:…:environment:NAME.
	Environment                   string
	Actor, ActorID                string
	Workflow, WorkflowFile        string
	RunID, RunNumber, RunAttempt  string
	BaseRef, HeadRef              string
	Visibility, RunnerEnvironment string
	// Enterprise and EnterpriseID, when set, add the enterprise claims.
	Enterprise, EnterpriseID string
	Audience                 []string
	TTL                      time.Duration
	Now                      time.Time
	JTI                      string
}

// GitHubClaims returns the claims of a GitHub Actions OIDC token issued by
// iss (normally https://token.actions.githubusercontent.com). All ids are
// strings; sub follows GitHub's default template: environment, then
// pull_request, then ref.
func GitHubClaims(iss string, o GitHubOptions) map[string]any {
	def(&o.Repository, "octo-org/octo-repo")
	def(&o.RepositoryID, "1")
	def(&o.RepositoryOwnerID, "1")
	def(&o.Ref, "refs/heads/main")
	def(&o.SHA, randomSHA())
	def(&o.EventName, "push")
	def(&o.Actor, "octocat")
	def(&o.ActorID, "1")
	def(&o.Workflow, "CI")
	def(&o.WorkflowFile, ".github/workflows/ci.yml")
	def(&o.RunID, randomID())
	def(&o.RunNumber, "1")
	def(&o.RunAttempt, "1")
	def(&o.Visibility, "private")
	def(&o.RunnerEnvironment, "github-hosted")
	def(&o.JTI, randomUUID())
	defTimes(&o.TTL, &o.Now, 5*time.Minute)

	var sub string
	switch {
	case o.Environment != "":
		sub = "repo:" + o.Repository + ":environment:" + o.Environment
	case strings.HasPrefix(o.EventName, "pull_request"):
		sub = "repo:" + o.Repository + ":pull_request"
	default:
		sub = "repo:" + o.Repository + ":ref:" + o.Ref
	}
	refType := "branch"
	if strings.HasPrefix(o.Ref, "refs/tags/") {
		refType = "tag"
	}
	owner, _, _ := strings.Cut(o.Repository, "/")
	workflowRef := o.Repository + "/" + o.WorkflowFile + "@" + o.Ref
	iat := o.Now.Unix()
	c := map[string]any{
		"iss":                   iss,
		"sub":                   sub,
		"aud":                   audienceClaim(o.Audience),
		"iat":                   iat,
		"nbf":                   iat - 600,
		"exp":                   iat + int64(o.TTL/time.Second),
		"jti":                   o.JTI,
		"actor":                 o.Actor,
		"actor_id":              o.ActorID,
		"base_ref":              o.BaseRef,
		"head_ref":              o.HeadRef,
		"event_name":            o.EventName,
		"job_workflow_ref":      workflowRef,
		"job_workflow_sha":      o.SHA,
		"ref":                   o.Ref,
		"ref_type":              refType,
		"repository":            o.Repository,
		"repository_id":         o.RepositoryID,
		"repository_owner":      owner,
		"repository_owner_id":   o.RepositoryOwnerID,
		"repository_visibility": o.Visibility,
		"run_id":                o.RunID,
		"run_number":            o.RunNumber,
		"run_attempt":           o.RunAttempt,
		"runner_environment":    o.RunnerEnvironment,
		"sha":                   o.SHA,
		"workflow":              o.Workflow,
		"workflow_ref":          workflowRef,
		"workflow_sha":          o.SHA,
	}
	if o.Environment != "" {
		c["environment"] = o.Environment
	}
	if o.Enterprise != "" {
		c["enterprise"] = o.Enterprise
	}
	if o.EnterpriseID != "" {
		c["enterprise_id"] = o.EnterpriseID
	}
	return c
}
