package api

import (
	"encoding/json"

	"github.com/keyferry/keyferry/internal/dur"
)

// Role binds CI identities to AWS credentials: what GET /v1/roles/{name}
// returns and what PUT /v1/roles/{name} and `keyferry apply` manifests
// decode (strictly: unknown fields are refused). docs/roles.md describes
// each field.
type Role struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Issuer names the issuer whose tokens the role accepts.
	Issuer string `json:"issuer"`
	// Match maps claim names to accepted values: every key must match,
	// and a key matches when the claim equals any of its values.
	Match        map[string]Values `json:"match,omitempty"`
	Condition    string            `json:"condition,omitempty"`
	AllowUnbound bool              `json:"allow_unbound,omitempty"`
	AWS          AWS               `json:"aws"`
}

// AWS holds a role's credential settings.
type AWS struct {
	// Type is assume_role, web_identity or iam_user.
	Type        string `json:"type"`
	RoleARN     string `json:"role_arn"`
	SessionName string `json:"session_name,omitempty"`
	// SessionPolicy and UserPolicy are inline IAM policies: a JSON object,
	// or a string holding one.
	SessionPolicy     json.RawMessage   `json:"session_policy,omitempty"`
	PolicyARNs        []string          `json:"policy_arns,omitempty"`
	Tags              map[string]string `json:"tags,omitempty"`
	TransitiveTagKeys []string          `json:"transitive_tag_keys,omitempty"`
	SourceIdentity    string            `json:"source_identity,omitempty"`
	ExternalID        string            `json:"external_id,omitempty"`
	TTL               dur.Duration      `json:"ttl,omitempty"`
	MaxTTL            dur.Duration      `json:"max_ttl,omitempty"`
	Region            string            `json:"region,omitempty"`
	EarlyRevocation   bool              `json:"early_revocation,omitempty"`

	// iam_user settings.
	UserName            string          `json:"user_name,omitempty"`
	UserPath            string          `json:"user_path,omitempty"`
	PermissionsBoundary string          `json:"permissions_boundary,omitempty"`
	UserPolicy          json.RawMessage `json:"user_policy,omitempty"`
	Groups              []string        `json:"groups,omitempty"`
	// WaitUntilUsable is unset (meaning true), true or false.
	WaitUntilUsable *bool `json:"wait_until_usable,omitempty"`
}

// RoleList is the body of GET /v1/roles, sorted by name.
type RoleList struct {
	Roles []Role `json:"roles"`
}
