package cikind

import (
	"strings"
	"time"
)

// GitLab is the kind of GitLab CI ID tokens (the id_tokens keyword).
//
// Claims and their JSON types: https://docs.gitlab.com/ci/secrets/id_token_authentication/
// and GitLab's lib/gitlab/ci/jwt_v2.rb. Ids and booleans are strings
// ("42", "true"); runner_id is an integer. GitLab signs user-login ID
// tokens with keys published in the same JWKS, so the shape check asks
// for a project sub and the pipeline and job ids.
const GitLab = "gitlab"

var gitLab = Kind{
	name: GitLab,
	// Tokens live as long as the job's timeout; a job may ask for
	// credentials late in a long job.
	maxTokenAge: 24 * time.Hour,
	shape: func(c map[string]any) []string {
		missing := subPrefix(nil, c, "project_path:")
		return need(missing, c, "project_path", "project_id", "pipeline_id", "job_id")
	},
	summary: func(c map[string]any) Summary {
		return Summary{
			Project: claimString(c, "project_path"), ProjectID: claimString(c, "project_id"),
			Ref: claimString(c, "ref"), Pipeline: claimString(c, "pipeline_id"), Job: claimString(c, "job_id"),
			User: claimString(c, "user_login"),
		}
	},

	claims: []string{
		"iss", "sub", "aud", "exp", "nbf", "iat", "jti",
		"namespace_id", "namespace_path", "project_id", "project_path",
		"job_project_id", "job_project_path", "job_namespace_id", "job_namespace_path",
		"source_project_id", "source_project_path",
		"user_id", "user_login", "user_email", "user_access_level", "user_identities",
		"pipeline_id", "job_id", "pipeline_source",
		"ref", "ref_type", "ref_path", "ref_protected",
		"groups_direct",
		"environment", "environment_protected", "deployment_tier", "environment_action",
		"runner_id", "runner_environment", "sha",
		"ci_config_ref_uri", "ci_config_sha", "project_visibility",
		"job_source", "job_config",
	},
	objectClaims: []string{"user_identities", "job_config"},
	bindings: []Binding{
		{Key: "project_id", Rule: exact, Doc: gitLabIDDoc},
		{Key: "project_path", Rule: path('/', 1), Doc: gitLabPathDoc},
		{Key: "namespace_id", Rule: exact, Doc: gitLabIDDoc},
		{Key: "namespace_path", Rule: path('/', 1), Doc: gitLabPathDoc},
		{Key: "job_project_id", Rule: exact, Doc: gitLabIDDoc},
		{Key: "job_project_path", Rule: path('/', 1), Doc: gitLabPathDoc},
		{Key: "sub", Rule: path('/', 1, "project_path:", "job_project_path:"),
			Doc: "the same, after `project_path:` (or `job_project_path:`): `project_path:acme/infra:ref_type:branch:ref:*` binds, `project_path:*` does not"},
	},
	bindingHint: "not *, project_path:* or a wildcard in the top-level group such as acme*; group/* is fine",
	sessionName: "gl-{job_id}-{project_path}",
	perJob:      []string{"job_id"},

	dev: func(iss string, o DevOptions) map[string]any {
		return GitLabClaims(iss, GitLabOptions{ProjectPath: o.Project, Ref: o.Ref, UserLogin: o.User,
			Audience: o.Audience, TTL: o.TTL, Now: o.Now, JTI: o.JTI})
	},
}

const (
	gitLabIDDoc   = "it is exact (no wildcard: `4*` matches 42 and 4711)"
	gitLabPathDoc = "it is exact, or its text before the first wildcard contains a complete top-level group ending in `/`: `acme/*` binds, `acme*` does not (it also matches `acme-evil/x`)"
)

// GitLabOptions shape a GitLab CI ID token. Zero fields get defaults:
// project g/p (id "1", namespace id "1"), ref main (branch, protected:
// when Ref is empty, Protected is taken as true, since main is protected
// by default; when Ref is set, Protected is used as given), pipeline
// source push, user dev-user (id "1"), random pipeline and job ids,
// audience DevAudience, TTL 1h, Now time.Now().
type GitLabOptions struct {
	ProjectPath, ProjectID, NamespaceID string
	Ref, RefType                        string // RefType: branch or tag
	Protected                           bool
	PipelineSource                      string
	// Environment, when set, adds environment, environment_protected,
	// deployment_tier (EnvironmentTier, default "other") and
	// environment_action (EnvironmentAction, default "start").
	Environment, EnvironmentTier string
	EnvironmentProtected         bool
	UserLogin, UserID, UserEmail string
	PipelineID, JobID            string
	Audience                     []string
	TTL                          time.Duration
	Now                          time.Time

	// Less common knobs, all optional.
	EnvironmentAction string
	// JobProjectPath and JobProjectID name the project running the job
	// (default: the project). They differ in merge-request pipelines
	// from a fork that run in the parent project: from GitLab 18.2.2 the
	// project claims name the fork and the job_project claims the parent.
	JobProjectPath, JobProjectID, JobNamespaceID string
	UserAccessLevel                              string // default developer
	RunnerID                                     int    // default 1
	RunnerEnvironment                            string // default self-hosted
	SHA                                          string // default random 40 hex
	ProjectVisibility                            string // default private
	// GroupsDirect, when non-nil, adds groups_direct (off by default in
	// GitLab, behind a feature flag).
	GroupsDirect []string
	// UserIdentities, when non-nil, adds user_identities (a user opt-in).
	UserIdentities []map[string]string
	// JobSource, when set, adds job_source (GitLab 18.9+).
	JobSource string
	// JTI replaces the random jti.
	JTI string
}

// GitLabClaims returns the claims of a GitLab CI ID token issued by iss,
// with GitLab's JSON types: ids and booleans are strings, runner_id is an
// int, times are integer seconds.
func GitLabClaims(iss string, o GitLabOptions) map[string]any {
	if o.Ref == "" {
		o.Ref, o.Protected = "main", true
	}
	def(&o.RefType, "branch")
	def(&o.ProjectPath, "g/p")
	def(&o.ProjectID, "1")
	def(&o.NamespaceID, "1")
	def(&o.PipelineSource, "push")
	def(&o.UserLogin, "dev-user")
	def(&o.UserID, "1")
	def(&o.UserEmail, o.UserLogin+"@example.com")
	def(&o.PipelineID, randomID())
	def(&o.JobID, randomID())
	def(&o.JobProjectPath, o.ProjectPath)
	def(&o.JobProjectID, o.ProjectID)
	def(&o.JobNamespaceID, o.NamespaceID)
	def(&o.UserAccessLevel, "developer")
	def(&o.RunnerEnvironment, "self-hosted")
	def(&o.SHA, randomSHA())
	def(&o.ProjectVisibility, "private")
	def(&o.JTI, randomUUID())
	if o.RunnerID == 0 {
		o.RunnerID = 1
	}
	defTimes(&o.TTL, &o.Now, time.Hour)

	refPath := "refs/heads/" + o.Ref
	if o.RefType == "tag" {
		refPath = "refs/tags/" + o.Ref
	}
	host := strings.TrimPrefix(strings.TrimPrefix(iss, "https://"), "http://")
	iat := o.Now.Unix()
	c := map[string]any{
		"iss":                iss,
		"sub":                gitLabSubject(o.ProjectPath, o.RefType, o.Ref),
		"aud":                audienceClaim(o.Audience),
		"iat":                iat,
		"nbf":                iat - 5,
		"exp":                iat + int64(o.TTL/time.Second),
		"jti":                o.JTI,
		"namespace_id":       o.NamespaceID,
		"namespace_path":     namespaceOf(o.ProjectPath),
		"project_id":         o.ProjectID,
		"project_path":       o.ProjectPath,
		"job_project_id":     o.JobProjectID,
		"job_project_path":   o.JobProjectPath,
		"job_namespace_id":   o.JobNamespaceID,
		"job_namespace_path": namespaceOf(o.JobProjectPath),
		"user_id":            o.UserID,
		"user_login":         o.UserLogin,
		"user_email":         o.UserEmail,
		"user_access_level":  o.UserAccessLevel,
		"pipeline_id":        o.PipelineID,
		"pipeline_source":    o.PipelineSource,
		"job_id":             o.JobID,
		"ref":                o.Ref,
		"ref_type":           o.RefType,
		"ref_path":           refPath,
		"ref_protected":      boolString(o.Protected),
		"runner_id":          o.RunnerID,
		"runner_environment": o.RunnerEnvironment,
		"sha":                o.SHA,
		"ci_config_ref_uri":  host + "/" + o.ProjectPath + "//.gitlab-ci.yml@" + refPath,
		"ci_config_sha":      o.SHA,
		"project_visibility": o.ProjectVisibility,
	}
	if o.Environment != "" {
		def(&o.EnvironmentTier, "other")
		def(&o.EnvironmentAction, "start")
		c["environment"] = o.Environment
		c["environment_protected"] = boolString(o.EnvironmentProtected)
		c["deployment_tier"] = o.EnvironmentTier
		c["environment_action"] = o.EnvironmentAction
	}
	if o.GroupsDirect != nil {
		c["groups_direct"] = append([]string(nil), o.GroupsDirect...)
	}
	if o.UserIdentities != nil {
		ids := make([]map[string]string, len(o.UserIdentities))
		for i, m := range o.UserIdentities {
			ids[i] = map[string]string{"provider": m["provider"], "extern_uid": m["extern_uid"]}
		}
		c["user_identities"] = ids
	}
	if o.JobSource != "" {
		c["job_source"] = o.JobSource
	}
	return c
}

// gitLabSubject builds GitLab's default sub: claim:value pairs of
// project_path, ref_type and ref joined with ":", empty values dropped.
func gitLabSubject(projectPath, refType, ref string) string {
	var parts []string
	for _, kv := range [][2]string{{"project_path", projectPath}, {"ref_type", refType}, {"ref", ref}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+":"+kv[1])
		}
	}
	return strings.Join(parts, ":")
}

// namespaceOf returns the namespace of a project path: "a/b/c" → "a/b".
func namespaceOf(projectPath string) string {
	if i := strings.LastIndex(projectPath, "/"); i >= 0 {
		return projectPath[:i]
	}
	return projectPath
}
