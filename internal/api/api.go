// Package api is the wire contract of keyferry's HTTP API: one type for
// every request and response body, shared by the server's handlers
// (internal/httpapi) and the Go client (internal/client). docs/api.md
// documents the same shapes for users.
//
// The types are not the server's domain objects. The server builds each
// response from its domain objects with a conversion that names every
// field it copies, so a field added to a domain object (a lease, a role)
// is not exposed until someone adds it here and to that conversion. The
// package imports only the standard library and internal/dur, so that the
// runner-side packages that speak to the broker link none of the broker.
package api

import "time"

// Error is the body of every non-2xx response: {"error": {...}}.
type Error struct {
	// Code is a stable machine-readable reason, e.g. "token_expired".
	Code string `json:"code"`
	// Message is a human explanation safe to show to the caller.
	Message string `json:"message"`
	// RequestID correlates the response with server logs and the audit log.
	RequestID string `json:"request_id,omitempty"`
	// Details lists every problem when a written object is invalid.
	Details []string `json:"details,omitempty"`
}

// ErrorResponse wraps Error.
type ErrorResponse struct {
	Error Error `json:"error"`
}

// CredsRequest is the body of POST /v1/creds.
type CredsRequest struct {
	// Role names the keyferry role to use.
	Role string `json:"role"`
	// Token is the job's identity token (a JWT).
	Token string `json:"token"`
	// TTL optionally asks for a shorter lifetime than the role's ttl.
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
}

// Credentials are AWS credentials as returned to a client.
type Credentials struct {
	AccessKeyID     string    `json:"access_key_id"`
	SecretAccessKey string    `json:"secret_access_key"`
	SessionToken    string    `json:"session_token,omitempty"`
	Expiration      time.Time `json:"expiration"`
	AccountID       string    `json:"account_id,omitempty"`
	// AssumedRoleARN is the ARN of the assumed-role session, when known.
	AssumedRoleARN string `json:"assumed_role_arn,omitempty"`
}

// CredsResponse is the body of a successful POST /v1/creds.
type CredsResponse struct {
	LeaseID     string      `json:"lease_id"`
	Role        string      `json:"role"`
	Credentials Credentials `json:"credentials"`
	Region      string      `json:"region,omitempty"`
	// RefreshHandle trades for fresh credentials at POST /v1/creds/refresh
	// until MaxExpiration, without the job token. Each use returns a new
	// handle and spends the old one; a spent handle presented again
	// revokes the lease. Secret: store it like the credentials.
	RefreshHandle string    `json:"refresh_handle,omitempty"`
	MaxExpiration time.Time `json:"max_expiration,omitzero"`
}

// RefreshRequest is the body of POST /v1/creds/refresh.
type RefreshRequest struct {
	RefreshHandle string `json:"refresh_handle"`
}

// Identity summarises the CI identity behind a lease or an audit event.
type Identity struct {
	Issuer    string `json:"iss,omitempty"`
	Subject   string `json:"sub,omitempty"`
	Project   string `json:"project,omitempty"`
	ProjectID string `json:"project_id,omitempty"`
	Ref       string `json:"ref,omitempty"`
	Pipeline  string `json:"pipeline,omitempty"`
	Job       string `json:"job,omitempty"`
	User      string `json:"user,omitempty"`
}

// WriteResult is the body of a successful PUT /v1/roles/{name} or
// PUT /v1/issuers/{name} (also with ?dry_run=true).
type WriteResult[T Role | Issuer] struct {
	// Outcome is created, updated or unchanged.
	Outcome string `json:"outcome"`
	// Object is the stored (normalised) object, defaults filled in.
	Object T `json:"object"`
}

// Deleted is the body of a successful DELETE: the name or id deleted.
type Deleted struct {
	Deleted string `json:"deleted"`
}

// Status is the body of GET /healthz ("ok") and GET /readyz ("ready" or,
// with status 503, "not ready").
type Status struct {
	Status string `json:"status"`
}

// RoleTestRequest is the body of POST /v1/roles/{name}/test: exactly one
// of Token and Claims.
type RoleTestRequest struct {
	Token  string         `json:"token,omitempty"`
	Claims map[string]any `json:"claims,omitempty"`
}

// RoleCheck is one evaluated rule.
type RoleCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// RoleTestResponse explains a role decision without minting anything.
type RoleTestResponse struct {
	Role    string      `json:"role"`
	Allowed bool        `json:"allowed"`
	Checks  []RoleCheck `json:"checks"`
	// TokenError is set when a token was given and did not verify.
	TokenError     *Error            `json:"token_error,omitempty"`
	Identity       *Identity         `json:"identity,omitempty"`
	SessionName    string            `json:"session_name,omitempty"`
	Tags           map[string]string `json:"tags,omitempty"`
	SourceIdentity string            `json:"source_identity,omitempty"`
}

// RevokeRequest is the optional body of POST /v1/leases/{id}/revoke
// (and of retry and forget, where Reason is required for forget).
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"`
}

// BulkRevokeRequest is the body of POST /v1/leases/revoke: every live
// lease matching all the given fields (at least one) is revoked.
type BulkRevokeRequest struct {
	Role        string `json:"role,omitempty"`
	Project     string `json:"project,omitempty"`
	Pipeline    string `json:"pipeline,omitempty"`
	Subject     string `json:"sub,omitempty"`
	AccessKeyID string `json:"access_key_id,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// DryRun lists the leases without revoking them.
	DryRun bool `json:"dry_run,omitempty"`
}

// RenewRequest is the optional body of POST /v1/leases/{id}/renew.
type RenewRequest struct {
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
}

// TokenCreateRequest is the body of POST /v1/admin-tokens.
type TokenCreateRequest struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

// TokenCreateResponse returns a new admin token; the value is shown once.
type TokenCreateResponse struct {
	ID     string   `json:"id"`
	Token  string   `json:"token"`
	Scopes []string `json:"scopes"`
}

// DevTokenRequest asks the dev issuer for a GitLab-shaped job token.
type DevTokenRequest struct {
	ProjectPath          string   `json:"project_path,omitempty"`
	ProjectID            string   `json:"project_id,omitempty"`
	Ref                  string   `json:"ref,omitempty"`
	RefType              string   `json:"ref_type,omitempty"`
	Protected            *bool    `json:"protected,omitempty"`
	PipelineSource       string   `json:"pipeline_source,omitempty"`
	Environment          string   `json:"environment,omitempty"`
	EnvironmentProtected bool     `json:"environment_protected,omitempty"`
	UserLogin            string   `json:"user_login,omitempty"`
	PipelineID           string   `json:"pipeline_id,omitempty"`
	JobID                string   `json:"job_id,omitempty"`
	Audience             []string `json:"audience,omitempty"`
	TTLSeconds           int64    `json:"ttl_seconds,omitempty"`
}

// DevTokenResponse carries a minted dev token.
type DevTokenResponse struct {
	Token  string `json:"token"`
	Issuer string `json:"issuer"`
}
