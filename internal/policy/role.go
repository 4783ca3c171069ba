// Package policy holds keyferry's role model and its pure functions: claim
// matching (exact, glob, any-of), CEL conditions over claims, templates
// that build session names, tags and source identities from claims, and
// the validation run whenever a role is written. Nothing here does I/O.
package policy

import (
	"encoding/json"

	"github.com/keyferry/keyferry/internal/api"

	"github.com/keyferry/keyferry/internal/dur"
)

// Credential types a role can mint.
const (
	TypeAssumeRole  = "assume_role"
	TypeWebIdentity = "web_identity"
	// TypeIAMUser creates an IAM user with an access key per lease and
	// deletes it when the lease ends.
	TypeIAMUser = "iam_user"
)

// Role binds CI identities to AWS credentials.
type Role struct {
	// Name is the role's identifier: [a-z0-9][a-z0-9._-]{0,62}.
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Issuer names the identity.Issuer whose tokens this role accepts.
	Issuer string `json:"issuer"`
	// Match maps claim names to accepted values. All keys must match
	// (AND); a key matches when the claim equals any listed value (OR).
	// Values containing * or ? are globs. A key starting with "/" is a
	// JSON pointer into nested claims ("/kubernetes.io/namespace").
	Match map[string]Values `json:"match,omitempty"`
	// Condition is an optional CEL expression over `claims` that must
	// evaluate to true.
	Condition string `json:"condition,omitempty"`
	// AllowUnbound permits a role that binds no project or namespace.
	AllowUnbound bool `json:"allow_unbound,omitempty"`
	// AWS says what to mint.
	AWS AWS `json:"aws"`
}

// AWS holds a role's credential settings.
type AWS struct {
	// Type is assume_role or web_identity.
	Type string `json:"type"`
	// RoleARN is the IAM role to assume.
	RoleARN string `json:"role_arn"`
	// SessionName is a template ("gl-{project_path}-{job_id}"); the result
	// is sanitised to [\w+=,.@-]{2,64}.
	SessionName string `json:"session_name,omitempty"`
	// SessionPolicy is an inline IAM policy (a JSON object, or a string
	// holding one) that narrows the session.
	SessionPolicy json.RawMessage `json:"session_policy,omitempty"`
	// PolicyARNs are managed policies that narrow the session (≤ 10).
	PolicyARNs []string `json:"policy_arns,omitempty"`
	// Tags are session tags; values are templates (≤ 50 tags).
	Tags map[string]string `json:"tags,omitempty"`
	// TransitiveTagKeys must each name a key of Tags.
	TransitiveTagKeys []string `json:"transitive_tag_keys,omitempty"`
	// SourceIdentity is a template for sts:SourceIdentity.
	SourceIdentity string `json:"source_identity,omitempty"`
	// ExternalID is passed to AssumeRole.
	ExternalID string `json:"external_id,omitempty"`
	// TTL is the credential lifetime (default 1h, 15m–12h).
	TTL dur.Duration `json:"ttl,omitempty"`
	// MaxTTL bounds renewal and refresh (default TTL).
	MaxTTL dur.Duration `json:"max_ttl,omitempty"`
	// Region overrides the server's default region for this role.
	Region string `json:"region,omitempty"`

	// EarlyRevocation (assume_role): when a lease is revoked, add a deny
	// statement for its session to the target role's inline policy, so the
	// session stops working before it expires (needs iam:PutRolePolicy).
	EarlyRevocation bool `json:"early_revocation,omitempty"`

	// iam_user settings.

	// UserName is a template for the IAM user's name; it must contain
	// {lease_id} (default "kf-{lease_id}"), sanitised to [\w+=,.@-]{1,64}.
	UserName string `json:"user_name,omitempty"`
	// UserPath is the IAM path users are created under (default
	// /keyferry/); the orphan sweep only ever looks there.
	UserPath string `json:"user_path,omitempty"`
	// PermissionsBoundary is a managed policy ARN set as the user's
	// permissions boundary.
	PermissionsBoundary string `json:"permissions_boundary,omitempty"`
	// UserPolicy is an inline policy put on the user (a JSON object, or a
	// string holding one).
	UserPolicy json.RawMessage `json:"user_policy,omitempty"`
	// Groups the user is added to.
	Groups []string `json:"groups,omitempty"`
	// WaitUntilUsable (default true) probes the new key until it works
	// before returning it: IAM is eventually consistent and a new key is
	// refused for several seconds after creation.
	WaitUntilUsable *bool `json:"wait_until_usable,omitempty"`
}

// WaitsUntilUsable reports the effective wait_until_usable setting.
func (a AWS) WaitsUntilUsable() bool { return a.WaitUntilUsable == nil || *a.WaitUntilUsable }

// Values is a list of accepted claim values. It decodes from a single
// scalar or a list; booleans and numbers are kept in their string form,
// because GitLab sends booleans as "true"/"false". It is the API's type:
// a role's match values are read and written in one way only.
type Values = api.Values
