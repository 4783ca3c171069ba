package lease

import (
	"context"
	"errors"
	"time"

	"github.com/keyferry/keyferry/internal/fault"
	"github.com/keyferry/keyferry/internal/identity"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
	"github.com/keyferry/keyferry/internal/storage"
)

// Codes of refusals that are not identity or upstream errors. They are
// part of the API: never rename one.
const (
	CodeNoMatchingRole       = "no_matching_role"
	CodeInvalidRequest       = fault.CodeInvalidRequest
	CodeAuditUnavailable     = fault.CodeAuditUnavailable
	CodeStoreUnavailable     = fault.CodeStoreUnavailable
	CodeInternal             = fault.CodeInternal
	CodeNotFound             = fault.CodeNotFound
	CodeInvalidRefreshHandle = "invalid_refresh_handle"
	CodeRefreshHandleReused  = "refresh_handle_reused"
	CodeLeaseRevoked         = "lease_revoked"
	CodeMaxTTLReached        = "max_ttl_reached"
	CodeRoleGone             = "role_gone"
	CodeRefreshConflict      = "refresh_conflict"
	CodeNotIrrevocable       = "not_irrevocable"
	CodeNotRenewable         = "not_renewable"
	CodeNoIAM                = "no_iam"
)

// errAudit is the refusal when the audit log did not take a record:
// nothing was done.
func errAudit(err error, message string) *fault.Error {
	return fault.Wrap(err, fault.Unavailable, CodeAuditUnavailable, message)
}

// errStore is the refusal when the lease store failed.
func errStore(err error) *fault.Error {
	return fault.Wrap(err, fault.Unavailable, CodeStoreUnavailable, "the lease store is unavailable")
}

// errNotFound is the refusal for an unknown lease id.
func errNotFound(id string) *fault.Error {
	return fault.Newf(fault.NotFound, CodeNotFound, "lease %q not found", id)
}

// asNotFound turns a missing lease into errNotFound; other errors pass.
func asNotFound(id string, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return errNotFound(id)
	}
	return err
}

// identityError turns a token rejection into a refusal.
func identityError(err error) *fault.Error {
	var ie *identity.Error
	if !errors.As(err, &ie) {
		return fault.Wrap(err, fault.Internal, CodeInternal, "token verification failed")
	}
	kind := fault.Unauthenticated
	switch ie.Code {
	case identity.CodeIssuerUnavailable, identity.CodeReplayCacheFull:
		kind = fault.Unavailable
	case identity.CodeTokenTooLarge:
		kind = fault.TooLarge
	}
	return &fault.Error{Kind: kind, Code: ie.Code, Message: ie.Message, Err: ie.Err}
}

// upstreamError turns an AWS failure into a refusal, and reports it to
// obs.
func upstreamError(err error, obs Observer) *fault.Error {
	var ae *awsprov.Error
	if !errors.As(err, &ae) {
		if errors.Is(err, context.Canceled) {
			return fault.Wrap(err, fault.Cancelled, fault.CodeCancelled, "the request was cancelled")
		}
		obs.UpstreamError("unknown")
		return fault.Wrap(err, fault.BadGateway, awsprov.CodeUnavailable, "the AWS call failed")
	}
	obs.UpstreamError(ae.Code)
	e := &fault.Error{Code: ae.Code, Message: ae.Message, Err: ae.Err}
	switch ae.Code {
	case awsprov.CodeThrottled:
		e.Kind, e.RetryAfter = fault.Unavailable, ae.RetryAfter
		if e.RetryAfter <= 0 {
			e.RetryAfter = 2 * time.Second
		}
	case awsprov.CodeAccessDenied, awsprov.CodeTokenRejected:
		e.Kind = fault.Forbidden
	case awsprov.CodeInvalidRequest:
		e.Kind = fault.Unprocessable
	case awsprov.CodeTimeout:
		e.Kind = fault.Timeout
	default:
		e.Kind = fault.BadGateway
	}
	return e
}

// upstreamCode is the stable code of an upstream failure.
func upstreamCode(err error) string {
	var ae *awsprov.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return awsprov.CodeUnavailable
}

// revokeErrorText is an upstream failure as recorded in a lease (shown to
// operators).
func revokeErrorText(err error) string {
	var ae *awsprov.Error
	if errors.As(err, &ae) {
		return ae.Code + ": " + ae.Message
	}
	s := err.Error()
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// resultOf is the metrics label of an outcome: "ok", or the refusal code.
func resultOf(err error, ok string) string {
	if err == nil {
		return ok
	}
	if code := fault.CodeOf(err); code != "" {
		return code
	}
	return "denied"
}

// summaryOf returns a pointer to a copy of s, for an audit event.
func summaryOf(s identity.Summary) *identity.Summary { return &s }
