package devissuer

import (
	"strings"
	"time"
)

// GitLabOptions shape a GitLab CI ID token. Zero fields get defaults:
// project g/p (id "1", namespace id "1"), ref main (branch, protected:
// when Ref is empty, Protected is taken as true, since main is protected
// by default; when Ref is set, Protected is used as given), pipeline
// source push, user dev-user (id "1"), random pipeline and job ids,
// audience DefaultAudience, TTL 1h, Now time.Now().
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
	// (default: the project); they differ in fork MR pipelines (§1.6).
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
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
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
	if o.TTL <= 0 {
		o.TTL = time.Hour
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}

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

// GitHubOptions shape a GitHub Actions OIDC token. Zero fields get
// defaults: repository octo-org/octo-repo (ids "1"), ref refs/heads/main,
// event push, actor octocat, workflow "CI" in .github/workflows/ci.yml,
// a random run id, run number and attempt "1", visibility private,
// github-hosted runner, audience DefaultAudience, TTL 5m, Now time.Now().
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
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
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
	if o.TTL <= 0 {
		o.TTL = 5 * time.Minute
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}

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

// KubernetesOptions shape a bound (projected) service-account token.
// Zero fields get defaults: namespace and service account "default", pod
// dev-pod, random uids, audience DefaultAudience, TTL 1h, Now time.Now().
type KubernetesOptions struct {
	Namespace, ServiceAccount, ServiceAccountUID string
	PodName, PodUID                              string
	// NodeName, when set, adds kubernetes.io.node (NodeUID default random).
	NodeName, NodeUID string
	Audience          []string
	TTL               time.Duration
	Now               time.Time
	// WarnAfter, when set, adds kubernetes.io.warnafter, as in the legacy
	// extended tokens whose exp was stretched to a year.
	WarnAfter time.Time
	JTI       string
}

// KubernetesClaims returns the claims of a Kubernetes bound
// service-account token issued by iss. aud is always an array, as the
// kube-apiserver emits it; nbf equals iat.
func KubernetesClaims(iss string, o KubernetesOptions) map[string]any {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&o.Namespace, "default")
	def(&o.ServiceAccount, "default")
	def(&o.ServiceAccountUID, randomUUID())
	def(&o.PodName, "dev-pod")
	def(&o.PodUID, randomUUID())
	def(&o.JTI, randomUUID())
	if len(o.Audience) == 0 {
		o.Audience = []string{DefaultAudience}
	}
	if o.TTL <= 0 {
		o.TTL = time.Hour
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	k8s := map[string]any{
		"namespace":      o.Namespace,
		"serviceaccount": map[string]any{"name": o.ServiceAccount, "uid": o.ServiceAccountUID},
		"pod":            map[string]any{"name": o.PodName, "uid": o.PodUID},
	}
	if o.NodeName != "" {
		def(&o.NodeUID, randomUUID())
		k8s["node"] = map[string]any{"name": o.NodeName, "uid": o.NodeUID}
	}
	if !o.WarnAfter.IsZero() {
		k8s["warnafter"] = o.WarnAfter.Unix()
	}
	iat := o.Now.Unix()
	return map[string]any{
		"iss":           iss,
		"sub":           "system:serviceaccount:" + o.Namespace + ":" + o.ServiceAccount,
		"aud":           append([]string(nil), o.Audience...),
		"iat":           iat,
		"nbf":           iat,
		"exp":           iat + int64(o.TTL/time.Second),
		"jti":           o.JTI,
		"kubernetes.io": k8s,
	}
}

// audienceClaim returns aud as GitLab and GitHub emit it: a string for one
// audience, an array for several.
func audienceClaim(aud []string) any {
	switch len(aud) {
	case 0:
		return DefaultAudience
	case 1:
		return aud[0]
	}
	return append([]string(nil), aud...)
}

// namespaceOf returns the namespace of a project path: "a/b/c" → "a/b".
func namespaceOf(projectPath string) string {
	if i := strings.LastIndex(projectPath, "/"); i >= 0 {
		return projectPath[:i]
	}
	return projectPath
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
