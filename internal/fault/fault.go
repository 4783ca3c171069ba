// Package fault is keyferry's error for callers: a refusal or failure
// with a stable machine code ("token_expired", "not_found"), a kind that
// says what sort of failure it is (so the HTTP layer picks the status in
// one place), a message that is safe to show the caller, and, separately,
// an internal cause that only goes to logs. Domain packages (lease,
// registry, admintoken) return *Error for everything a caller should be
// told; any other error is internal and reaches callers as a generic
// "internal error".
//
// The two channels never mix: Message is written for the caller when the
// error is made, and is never cut out of an internal error's text; Err is
// never shown to the caller.
package fault

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an Error. The HTTP layer maps each kind to one status.
type Kind int

// Kinds of errors.
const (
	// Internal: keyferry failed; the caller can do nothing but retry
	// later. The zero Kind, so a forgotten one fails safe.
	Internal Kind = iota
	// Invalid: the request is malformed or out of range (400).
	Invalid
	// Unauthenticated: the caller's credential is missing or not valid
	// (401).
	Unauthenticated
	// Forbidden: the caller is known but not allowed (403).
	Forbidden
	// NotFound: the named object does not exist (404).
	NotFound
	// Conflict: the object's state does not allow the request (409).
	Conflict
	// TooLarge: the request or a part of it exceeds a size limit (413).
	TooLarge
	// Unprocessable: the request is well-formed but what it describes is
	// invalid, e.g. a role with problems, listed in Details (422).
	Unprocessable
	// Cancelled: the caller gave up (499).
	Cancelled
	// BadGateway: an upstream (AWS) failed or refused in a way the
	// caller cannot fix (502).
	BadGateway
	// Unavailable: a dependency (the store, the audit log, an issuer's
	// keys, an upstream quota) is unavailable; retry later, after
	// RetryAfter when set (503).
	Unavailable
	// Timeout: an upstream did not answer in time (504).
	Timeout
	// UnsupportedMedia: the request body is not in a format keyferry
	// reads (415).
	UnsupportedMedia
)

var kindNames = [...]string{"internal", "invalid", "unauthenticated", "forbidden", "not_found", "conflict",
	"too_large", "unprocessable", "cancelled", "bad_gateway", "unavailable", "timeout", "unsupported_media"}

func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("kind(%d)", int(k))
	}
	return kindNames[k]
}

// Error is a failure to report to a caller.
type Error struct {
	Kind Kind
	// Code is a stable machine-readable reason; part of the API.
	Code string
	// Message explains the failure to the caller, and says what to do
	// where that helps. It never holds a secret or an internal detail.
	Message string
	// Details lists every problem when an object is invalid.
	Details []string
	// RetryAfter, when positive, tells the caller when to retry.
	RetryAfter time.Duration
	// Err is the internal cause, for logs only.
	Err error
}

// New returns an Error without a cause.
func New(kind Kind, code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message}
}

// Newf is New with a formatted message.
func Newf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error whose internal cause is err.
func Wrap(err error, kind Kind, code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message, Err: err}
}

// Error is for logs: it includes the internal cause.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// CodeOf returns the code of the *Error in err's chain, or "".
func CodeOf(err error) string {
	if e, ok := As(err); ok {
		return e.Code
	}
	return ""
}

// Codes shared by several packages. Each package defines its own codes
// next to the errors that use them; these are the ones that mean the
// same everywhere.
const (
	CodeInvalidRequest   = "invalid_request"
	CodeNotFound         = "not_found"
	CodeInternal         = "internal_error"
	CodeAuditUnavailable = "audit_unavailable"
	CodeStoreUnavailable = "store_unavailable"
	CodeCancelled        = "request_cancelled"
)
