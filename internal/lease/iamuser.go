package lease

import (
	"context"
	"net/http"
	"time"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
)

// Tags keyferry puts on every IAM user it creates; the orphan sweep and an
// operator in the AWS console find the owning lease by them.
const (
	TagLeaseID  = "keyferry:lease-id"
	TagRole     = "keyferry:role"
	TagProject  = "keyferry:project"
	TagPipeline = "keyferry:pipeline"
)

// userPolicyName names the inline policy put on each user.
const userPolicyName = "keyferry"

// issueUser creates an IAM user and access key for a lease, write-ahead:
//
//  1. persist a pending lease naming the user and its parts (a crash from here on leaves
//     a record the reconciler finishes by deleting whatever exists);
//  2. create the user, its policies, groups and key;
//  3. optionally wait until the key works (IAM is eventually consistent);
//  4. audit it and mark the lease active; only then return the key.
//
// Any failure after step 1 queues the lease for revocation, which deletes
// what was created (NoSuchEntity counts as done).
func (m *Manager) issueUser(ctx context.Context, req IssueRequest, id *identity.Identity, r policy.Role, rendered policy.Rendered,
	leaseID string, now time.Time, ttl time.Duration, region string, deny func(*identity.Identity, *Error) error) (*Issued, error) {
	if m.users == nil {
		return nil, deny(id, &Error{Status: http.StatusServiceUnavailable, Code: awsprov.CodeUnavailable, Message: "this server has no IAM client configured for iam_user roles"})
	}
	l := &Lease{
		ID: leaseID, Role: r.Name, Type: r.AWS.Type, Identity: id.Summary(), IssuedAt: now.UTC(),
		ExpiresAt: now.Add(ttl).UTC(), MaxExpiresAt: now.Add(r.AWS.MaxTTL.D()).UTC(), State: StatePending,
		RequestID: req.RequestID, SourceAddr: req.SourceAddr, Issuer: id.Issuer, Region: region,
		UserName: rendered.SessionName, UserPath: r.AWS.UserPath, Tags: rendered.Tags,
		UserParts: &UserParts{PolicyARNs: r.AWS.PolicyARNs, Groups: r.AWS.Groups},
	}
	userPolicy := compactPolicy(r.AWS.UserPolicy)
	if userPolicy != "" {
		l.UserParts.InlinePolicies = []string{userPolicyName}
	}
	if err := m.put(ctx, l); err != nil {
		return nil, deny(id, &Error{Status: http.StatusServiceUnavailable, Code: CodeStoreUnavailable, Message: "the lease store is unavailable", Err: err})
	}
	fail := func(e *Error) (*Issued, error) {
		// The user may exist in part: the revocation workers delete it.
		if _, _, err := m.queueRevoke(context.WithoutCancel(ctx), l.ID, "keyferry (issuance failed)", "issuance failed: "+e.Code); err != nil {
			m.log.Error("queueing cleanup of a failed iam_user issuance", "lease_id", l.ID, "err", err)
		}
		return nil, deny(id, e)
	}

	spec := UserSpec{
		UserName: l.UserName, Path: l.UserPath, PermissionsBoundary: r.AWS.PermissionsBoundary,
		InlinePolicyName: userPolicyName, InlinePolicy: userPolicy,
		PolicyARNs: r.AWS.PolicyARNs, Groups: r.AWS.Groups,
	}
	for _, t := range rendered.Tags {
		spec.Tags = append(spec.Tags, awsprov.Tag{Key: t.Key, Value: t.Value})
	}
	spec.Tags = append(spec.Tags, awsprov.Tag{Key: TagLeaseID, Value: l.ID}, awsprov.Tag{Key: TagRole, Value: l.Role})
	if p := l.Identity.Project; p != "" {
		spec.Tags = append(spec.Tags, awsprov.Tag{Key: TagProject, Value: p})
	}
	if p := l.Identity.Pipeline; p != "" {
		spec.Tags = append(spec.Tags, awsprov.Tag{Key: TagPipeline, Value: p})
	}
	u, err := m.users.CreateUser(ctx, spec)
	if err != nil {
		return fail(m.upstreamError(err))
	}
	if r.AWS.WaitsUntilUsable() {
		wctx, cancel := context.WithTimeout(ctx, m.lc.UsableTimeout)
		err := m.users.WaitUsable(wctx, u.AccessKeyID, u.SecretAccessKey, m.lc.UsableSuccesses, m.lc.UsableInterval)
		cancel()
		if err != nil {
			return fail(&Error{Status: http.StatusServiceUnavailable, Code: awsprov.CodeUnavailable,
				Message: "the new IAM access key did not become usable in time; retry", Err: err})
		}
	}
	// The audit record comes before the lease turns active: a crash in
	// between leaves a pending lease (reclaimed, the user deleted) with an
	// issue record for a key nobody received — never a live user without
	// its record.
	summary := l.Identity
	if err := m.audit.Write(context.WithoutCancel(ctx), &audit.Event{
		Type: audit.TypeIssue, Decision: audit.DecisionAllow, Role: r.Name, Identity: &summary,
		LeaseID: l.ID, AccessKeyID: u.AccessKeyID, Expiration: l.ExpiresAt, Object: l.UserName,
		RequestID: req.RequestID, SourceAddr: req.SourceAddr,
	}); err != nil {
		m.log.Error("audit write failed: IAM user key withheld", "request_id", req.RequestID, "lease_id", l.ID, "access_key_id", u.AccessKeyID, "err", err)
		return fail(&Error{Status: http.StatusServiceUnavailable, Code: CodeAuditUnavailable, Message: "the audit log is unavailable; no credentials were issued", Err: err})
	}
	l, err = m.update(context.WithoutCancel(ctx), l.ID, func(cur *Lease) error {
		if cur.State != StatePending {
			// The reconciler decided it was abandoned: do not hand out a
			// key that is being deleted.
			return &Error{Status: http.StatusServiceUnavailable, Code: CodeStoreUnavailable, Message: "the lease was reclaimed during issuance; retry"}
		}
		cur.State, cur.AccessKeyID = StateActive, u.AccessKeyID
		return nil
	})
	if err != nil {
		if e, ok := err.(*Error); ok {
			return fail(e)
		}
		return fail(&Error{Status: http.StatusServiceUnavailable, Code: CodeStoreUnavailable, Message: "the lease store is unavailable", Err: err})
	}
	return &Issued{
		Lease: l, Region: region, Audience: id.Audience,
		Credentials: api.Credentials{AccessKeyID: u.AccessKeyID, SecretAccessKey: u.SecretAccessKey, Expiration: l.ExpiresAt, AccountID: accountFromARN(u.UserARN)},
	}, nil
}

// accountFromARN returns the account of arn:aws:iam::123456789012:user/x.
func accountFromARN(arn string) string {
	const p = "arn:aws:iam::"
	if len(arn) > len(p)+12 && arn[:len(p)] == p && arn[len(p)+12] == ':' {
		return arn[len(p) : len(p)+12]
	}
	return ""
}
