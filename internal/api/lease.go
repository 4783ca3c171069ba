package api

import "time"

// Lease is a lease as the admin API shows it (GET /v1/leases/{id}, and
// the answer of revoke, retry, forget and renew). It has no field for the
// token's claims or the refresh handle's hashes: the server keeps those,
// and they never leave it.
type Lease struct {
	ID          string    `json:"id"`
	Role        string    `json:"role"`
	Type        string    `json:"type"`
	Identity    Identity  `json:"identity"`
	RoleARN     string    `json:"role_arn"`
	SessionName string    `json:"session_name,omitempty"`
	AccessKeyID string    `json:"access_key_id"`
	IssuedAt    time.Time `json:"issued_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	// State is the effective state: pending, active, revoking, revoked,
	// irrevocable, or expired (an active lease past ExpiresAt).
	State     string    `json:"state"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	RevokedBy string    `json:"revoked_by,omitempty"`
	// RevokeNote explains a revocation; for STS sessions it says that the
	// credentials stay usable upstream until they expire.
	RevokeNote string `json:"revoke_note,omitempty"`
	RequestID  string `json:"request_id,omitempty"`
	SourceAddr string `json:"source_addr,omitempty"`
	// MaxExpiresAt bounds refreshes and renewals.
	MaxExpiresAt time.Time `json:"max_expires_at,omitzero"`
	// Refreshes counts the credentials minted after the first.
	Refreshes int `json:"refreshes,omitempty"`
	// Issuer names the issuer whose token the lease was issued for.
	Issuer         string `json:"issuer,omitempty"`
	Region         string `json:"region,omitempty"`
	Tags           []Tag  `json:"tags,omitempty"`
	SourceIdentity string `json:"source_identity,omitempty"`
	// iam_user: the user created for this lease, its path, and what
	// issuance attached to it besides its access key.
	UserName  string     `json:"user_name,omitempty"`
	UserPath  string     `json:"user_path,omitempty"`
	UserParts *UserParts `json:"user_parts,omitempty"`
	// AssumedRoleID is STS's AROA… id of the session.
	AssumedRoleID string `json:"assumed_role_id,omitempty"`
	// SessionIssuedAt is when STS issued the current session.
	SessionIssuedAt time.Time `json:"session_issued_at,omitzero"`
	// EarlyRevocation records the role's setting at issuance.
	EarlyRevocation bool `json:"early_revocation,omitempty"`
	// Revocation progress: attempts so far, the last upstream error, and
	// when the next attempt is due.
	Attempts      int       `json:"revoke_attempts,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
}

// Tag is a session tag.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// UserParts is what issuance attached to an iam_user lease's user besides
// its access key.
type UserParts struct {
	InlinePolicies []string `json:"inline_policies,omitempty"`
	PolicyARNs     []string `json:"policy_arns,omitempty"`
	Groups         []string `json:"groups,omitempty"`
}

// LeaseList is the body of GET /v1/leases: one page, oldest first. Next
// is the id to pass as ?after= for the next page, "" on the last one (and
// always "" when listing by access_key_id).
type LeaseList struct {
	Leases []Lease `json:"leases"`
	Next   string  `json:"next"`
}

// BulkRevokeResult is the body of POST /v1/leases/revoke: the leases that
// matched (with DryRun) or were revoked. Error is set when some of the
// revocations failed; Leases then lists those made so far.
type BulkRevokeResult struct {
	Count  int     `json:"count"`
	DryRun bool    `json:"dry_run"`
	Error  string  `json:"error,omitempty"`
	Leases []Lease `json:"leases"`
}

// Orphan is an IAM user under keyferry's path that no live lease owns.
type Orphan struct {
	UserName string    `json:"user_name"`
	Path     string    `json:"path"`
	Created  time.Time `json:"created"`
	// LeaseID is read from the user's tag, when it has one.
	LeaseID string `json:"lease_id,omitempty"`
	Deleted bool   `json:"deleted"`
	Error   string `json:"error,omitempty"`
}

// SweepResult is the body of POST /v1/orphans/sweep. DryRun is the
// effective mode: the server's configuration can force it on.
type SweepResult struct {
	DryRun  bool     `json:"dry_run"`
	Orphans []Orphan `json:"orphans"`
}
