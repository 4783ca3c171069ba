// Package lease issues credentials and tracks them as leases, in two
// parts that share the lease records in the store:
//
//   - Issuer: verify the job token → find and evaluate the role → mint
//     with the provider → persist the lease → write the audit event (fail
//     closed) → return the credentials; and refresh them with a refresh
//     handle. Every refusal is audited too.
//   - Lifecycle: what happens after issuance — the expiry scheduler, the
//     revocation dispatcher and its workers, the reconciler of abandoned
//     issuances and orphaned IAM users — and the operators' reads and
//     actions on leases (revoke, retry, forget, renew), each carrying an
//     audit.Origin.
//
// The record of every destructive action is written before the action; no
// audit record, no action.
package lease

import (
	"crypto/rand"
	"encoding/binary"
	"time"

	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
)

// State is a lease's lifecycle state.
type State string

// Lease states: pending → active → revoking → revoked, or irrevocable
// after bounded retries. Expired is derived on read from an active lease
// whose expiry has passed; it is never stored.
const (
	// StatePending: written before the first upstream write (an IAM user
	// about to be created), so that a crash leaves a record to clean up.
	StatePending State = "pending"
	StateActive  State = "active"
	// StateRevoking: queued for upstream cleanup (user deletion, a
	// session deny statement); the revocation workers retry it.
	StateRevoking State = "revoking"
	StateRevoked  State = "revoked"
	// StateIrrevocable: upstream cleanup failed after bounded retries; an
	// operator retries it or forgets it.
	StateIrrevocable State = "irrevocable"
	StateExpired     State = "expired"
)

// Lease records one issuance. It never holds a secret.
type Lease struct {
	ID          string           `json:"id"`
	Role        string           `json:"role"`
	Type        string           `json:"type"`
	Identity    identity.Summary `json:"identity"`
	RoleARN     string           `json:"role_arn"`
	SessionName string           `json:"session_name,omitempty"`
	AccessKeyID string           `json:"access_key_id"`
	IssuedAt    time.Time        `json:"issued_at"`
	ExpiresAt   time.Time        `json:"expires_at"`
	State       State            `json:"state"`
	RevokedAt   time.Time        `json:"revoked_at,omitzero"`
	RevokedBy   string           `json:"revoked_by,omitempty"`
	// RevokeNote explains a revocation; for STS sessions it says that the
	// credentials stay usable upstream until they expire.
	RevokeNote string `json:"revoke_note,omitempty"`
	RequestID  string `json:"request_id,omitempty"`
	SourceAddr string `json:"source_addr,omitempty"`

	// MaxExpiresAt bounds refreshes: the role's max_ttl after issuance.
	MaxExpiresAt time.Time `json:"max_expires_at,omitzero"`
	// Refreshes counts the credentials minted after the first.
	Refreshes int `json:"refreshes,omitempty"`
	// Issuer and Claims are the verified token's issuer name and claims,
	// kept so that a refresh is authorised against the role as it is at
	// the time of the refresh (a tightened role stops refresh chains).
	Issuer string         `json:"issuer,omitempty"`
	Claims map[string]any `json:"claims,omitempty"`
	// Session parameters, kept so that a refresh mints the same session
	// without the job token.
	Region         string       `json:"region,omitempty"`
	Tags           []policy.Tag `json:"tags,omitempty"`
	SourceIdentity string       `json:"source_identity,omitempty"`
	// iam_user: the user created for this lease, and its path.
	UserName string `json:"user_name,omitempty"`
	UserPath string `json:"user_path,omitempty"`
	// UserParts is what issuance attaches to the user besides its access
	// key, recorded in the pending lease before the first IAM write, so
	// that revocation deletes exactly that (leases from before it have
	// none, and revocation lists what the user has).
	UserParts *awsprov.UserParts `json:"user_parts,omitempty"`
	// AssumedRoleID is STS's AROA… id of the session (early revocation
	// denies "AssumedRoleID:SessionName").
	AssumedRoleID string `json:"assumed_role_id,omitempty"`
	// SessionIssuedAt is when STS issued the current session (at issuance
	// or the last refresh): early revocation's issued-before cutoff needs it.
	SessionIssuedAt time.Time `json:"session_issued_at,omitzero"`
	// EarlyRevocation records the role's setting at issuance.
	EarlyRevocation bool `json:"early_revocation,omitempty"`

	// Revocation progress: attempts so far, the last upstream error
	// (caller-safe text), and when the next attempt is due.
	Attempts      int       `json:"revoke_attempts,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`

	// RefreshHash is the hex SHA-256 of the current refresh handle's
	// secret; PrevRefreshHashes holds those it replaced, to detect reuse.
	RefreshHash       string   `json:"refresh_hash,omitempty"`
	PrevRefreshHashes []string `json:"prev_refresh_hashes,omitempty"`
}

// EffectiveState returns the state as of now: an active lease past its
// expiry is expired.
func (l *Lease) EffectiveState(now time.Time) State {
	if l.State == StateActive && !now.Before(l.ExpiresAt) {
		return StateExpired
	}
	return l.State
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewID returns a 26-character, time-ordered, random lease id (ULID layout:
// 48-bit millisecond time, 80 random bits, Crockford base32).
func NewID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic("lease: crypto/rand failed: " + err.Error()) // unreachable on supported platforms
	}
	// 128 bits → 26 base32 characters (the first carries 3 bits).
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
