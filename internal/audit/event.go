package audit

import (
	"time"

	"github.com/keyferry/keyferry/internal/identity"
)

// Event types.
const (
	TypeIssue        = "issue"
	TypeDeny         = "deny"
	TypeRefresh      = "refresh"
	TypeRevoke       = "revoke"
	TypeRenew        = "renew"
	TypeOrphanFound  = "orphan.found"
	TypeOrphanDelete = "orphan.delete"
	TypeRoleWrite    = "role.write"
	TypeRoleDelete   = "role.delete"
	TypeIssuerWrite  = "issuer.write"
	TypeIssuerDelete = "issuer.delete"
	TypeTokenCreate  = "admin_token.create"
	TypeTokenRevoke  = "admin_token.revoke"
	TypeServerStart  = "server.start"
)

// Decisions.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
)

// Event is one audit record. The schema is documented in docs/audit-log.md;
// fields are only ever added, never renamed.
type Event struct {
	// Seq is the event's position in the file, from 1; set by the sink.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Type string    `json:"type"`
	// RequestID correlates with the HTTP response and server logs.
	RequestID string `json:"request_id,omitempty"`
	// Identity is the CI identity (issue, deny, refresh).
	Identity *identity.Summary `json:"identity,omitempty"`
	// Actor names the admin token behind an admin action.
	Actor    string `json:"actor,omitempty"`
	Role     string `json:"role,omitempty"`
	Decision string `json:"decision,omitempty"`
	// Reason is a stable code (token_expired, no_matching_role, …).
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	LeaseID string `json:"lease_id,omitempty"`
	// AccessKeyID identifies minted credentials for CloudTrail correlation.
	AccessKeyID string    `json:"access_key_id,omitempty"`
	Expiration  time.Time `json:"expiration,omitzero"`
	SessionName string    `json:"session_name,omitempty"`
	SourceAddr  string    `json:"source_addr,omitempty"`
	// Object names the role/issuer/lease an admin action changed.
	Object string `json:"object,omitempty"`
	// Count is the number of objects affected by a bulk action.
	Count int `json:"count,omitempty"`
	// PrevHash and Hash chain events: Hash = hex(sha256(PrevHash + "\n" +
	// the event's JSON with Hash empty)). Set by the sink.
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// Origin says who asked for an action and why: the admin token behind an
// operator's request (or the component acting on its own, such as
// "keyferry (expired)"), the request, and the operator's free-text reason.
// Every operator action carries one, and the events it causes record it.
type Origin struct {
	Actor      string
	RequestID  string
	SourceAddr string
	// Reason is the operator's explanation (a revocation's, a forget's);
	// where it goes in an event depends on the action.
	Reason string
}

// Stamp copies o's actor, request id and source address into ev.
func (o Origin) Stamp(ev *Event) *Event {
	ev.Actor, ev.RequestID, ev.SourceAddr = o.Actor, o.RequestID, o.SourceAddr
	return ev
}

// Reasons of the record that says an action recorded just before did not
// happen (see NotApplied).
const (
	// ReasonStoreError: the store write that was to make the change failed.
	ReasonStoreError = "store_error"
	// ReasonNotFound: the object was gone (deleted by another request
	// between the record and the change).
	ReasonNotFound = "not_found"
)

// NotApplied returns the event that says the action recorded by ev did
// not happen: a copy of ev (without its position in the chain) with
// decision deny, the given reason, and message. keyferry writes the record
// of an action before the action; when the action then fails, this second
// record keeps the log from claiming a change that never took effect.
func NotApplied(ev *Event, reason, message string) *Event {
	e := cloneEvent(*ev)
	e.Seq, e.Time, e.PrevHash, e.Hash = 0, time.Time{}, "", ""
	e.Decision, e.Reason, e.Message = DecisionDeny, reason, message
	return &e
}
