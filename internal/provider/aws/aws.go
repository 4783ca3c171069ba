// Package aws mints AWS credentials for keyferry roles with aws-sdk-go-v2:
// STS AssumeRole with the broker's own credentials,
// AssumeRoleWithWebIdentity forwarding the job's token, and dynamic IAM
// users (CreateUser, WaitUsable, DeleteUser). Upstream failures are mapped
// to *Error values with a stable code.
package aws

import (
	"time"
)

// Request is what a role asks STS for.
type Request struct {
	Region            string
	RoleARN           string
	SessionName       string
	Policy            string // compact JSON, may be empty
	PolicyARNs        []string
	Tags              []Tag
	TransitiveTagKeys []string
	SourceIdentity    string
	ExternalID        string
	Duration          time.Duration
	// WebIdentityToken is set for AssumeRoleWithWebIdentity only.
	WebIdentityToken string
}

// Tag is one session tag.
type Tag struct{ Key, Value string }

// Credentials are minted AWS credentials.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	Expiration      time.Time
	AssumedRoleARN  string
	AssumedRoleID   string
	AccountID       string
}

// Error codes for upstream failures.
const (
	CodeThrottled      = "upstream_throttled"       // → 503 + Retry-After
	CodeAccessDenied   = "upstream_access_denied"   // → 403
	CodeInvalidRequest = "upstream_invalid_request" // → 422 (malformed policy, packed size, validation)
	CodeUnavailable    = "upstream_unavailable"     // → 502 (5xx, connection errors)
	CodeTimeout        = "upstream_timeout"         // → 504
	CodeTokenRejected  = "upstream_token_rejected"  // → 401/403 (web identity: InvalidIdentityToken, ExpiredToken, IDPRejectedClaim)
)

// Error is an upstream failure. Message names the upstream reason and is
// safe to show the caller; Err is the SDK error for logs.
type Error struct {
	Code string
	// UpstreamCode is the AWS error code, e.g. "AccessDenied".
	UpstreamCode string
	Message      string
	// RetryAfter is a hint for throttling errors.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	s := "aws: " + e.Code
	if e.UpstreamCode != "" {
		s += " (" + e.UpstreamCode + ")"
	}
	s += ": " + e.Message
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }
