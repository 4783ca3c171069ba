// Package api holds the wire types of keyferry's HTTP API, shared by the
// server's handlers (internal/httpapi) and the Go client (internal/client).
// It has no behaviour; docs/api.md documents the same shapes for users.
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
