package lease

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/policy"
	"github.com/keyferry/keyferry/internal/storage"
)

// RevokeRequest names a lease to revoke and who asks.
type RevokeRequest struct {
	ID         string
	Actor      string
	Reason     string // free text from the operator, recorded in the note
	RequestID  string
	SourceAddr string
	// Wait blocks (up to ctx) until an upstream revocation is done;
	// otherwise it is queued and the lease is returned as revoking.
	Wait bool
}

// Revoke ends a lease and audits it; it is idempotent. A lease without
// upstream work (an STS session without early revocation) is revoked at
// once: AWS offers no way to delete a session, and its credentials keep
// working until they expire. A lease with upstream work (an IAM user to
// delete, a session to deny) is queued for the revocation workers.
func (m *Manager) Revoke(ctx context.Context, req RevokeRequest) (*Lease, error) {
	l, err := m.Get(ctx, req.ID)
	if err != nil {
		return nil, err
	}
	var notes []string
	if req.Reason != "" {
		notes = append(notes, "reason: "+req.Reason)
	}
	if m.needsUpstream(l) {
		if l.Type != policy.TypeIAMUser {
			notes = append(notes, "the session is denied on its role until it expires")
		}
		l, changed, err := m.queueRevoke(ctx, req.ID, req.Actor, strings.Join(notes, "; "))
		if err != nil {
			return nil, err
		}
		if changed {
			msg := "revocation queued"
			if l.RevokeNote != "" {
				msg += "; " + l.RevokeNote
			}
			if err := m.auditRevoke(ctx, l, req, msg); err != nil {
				return l, err
			}
		}
		if req.Wait {
			return m.waitRevoked(ctx, req.ID)
		}
		return l, nil
	}
	if l.Type == policy.TypeAssumeRole || l.Type == policy.TypeWebIdentity {
		notes = append(notes, "STS sessions cannot be deleted: the credentials stay valid upstream until "+l.ExpiresAt.Format(time.RFC3339))
	}
	changed := false
	l, err = m.update(ctx, req.ID, func(l *Lease) error {
		changed = false
		if l.State == StateRevoked || l.State == StateIrrevocable || l.State == StateRevoking {
			return errSkip
		}
		changed = true
		l.State, l.RevokedAt, l.RevokedBy, l.RevokeNote = StateRevoked, m.now().UTC(), req.Actor, strings.Join(notes, "; ")
		return nil
	})
	if err != nil {
		return nil, err
	}
	if changed {
		if err := m.auditRevoke(ctx, l, req, l.RevokeNote); err != nil {
			return l, err
		}
	}
	return l, nil
}

func (m *Manager) auditRevoke(ctx context.Context, l *Lease, req RevokeRequest, msg string) error {
	s := l.Identity
	if err := m.audit.Write(context.WithoutCancel(ctx), &audit.Event{
		Type: audit.TypeRevoke, Role: l.Role, Identity: &s, LeaseID: l.ID, AccessKeyID: l.AccessKeyID,
		Actor: req.Actor, RequestID: req.RequestID, SourceAddr: req.SourceAddr, Message: msg, Reason: "revoked_by_operator", Object: l.UserName,
	}); err != nil {
		// The revocation stands (it only takes power away); report the
		// audit failure to the operator.
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeAuditUnavailable, Message: "lease revoked, but the audit log is unavailable", Err: err}
	}
	return nil
}

// Selector picks leases for a bulk revocation; at least one field is
// required. Fields are ANDed.
type Selector struct {
	Role     string `json:"role,omitempty"`
	Project  string `json:"project,omitempty"`
	Pipeline string `json:"pipeline,omitempty"`
	Subject  string `json:"sub,omitempty"`
	// AccessKeyID finds the lease that ever held this key.
	AccessKeyID string `json:"access_key_id,omitempty"`
}

// Empty reports whether s selects nothing (a bulk revoke of everything
// must be spelled out field by field).
func (s Selector) Empty() bool {
	return s.Role == "" && s.Project == "" && s.Pipeline == "" && s.Subject == "" && s.AccessKeyID == ""
}

// Select returns the live (not revoked) leases s matches, using the
// narrowest index, in id order.
func (m *Manager) Select(ctx context.Context, s Selector) ([]Lease, error) {
	if s.Empty() {
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: "give at least one of role, project, pipeline, sub, access_key_id"}
	}
	field, value := FieldRole, s.Role
	switch {
	case s.AccessKeyID != "":
		field, value = FieldKey, s.AccessKeyID
	case s.Pipeline != "":
		field, value = FieldPipeline, s.Pipeline
	case s.Subject != "":
		field, value = FieldSubject, s.Subject
	case s.Project != "":
		field, value = FieldProject, s.Project
	}
	now := m.now()
	var out []Lease
	err := m.eachIndexed(ctx, field, value, func(l *Lease) error {
		switch l.EffectiveState(now) {
		case StateRevoked, StateIrrevocable:
			return nil
		}
		if (s.Role == "" || l.Role == s.Role) &&
			(s.Project == "" || l.Identity.Project == s.Project || l.Identity.ProjectID == s.Project) &&
			(s.Pipeline == "" || l.Identity.Pipeline == s.Pipeline) &&
			(s.Subject == "" || l.Identity.Subject == s.Subject) {
			out = append(out, *l)
		}
		return nil
	})
	return out, err
}

// eachIndexed calls fn with every lease indexed under field = value, in id
// order. A lease deleted since its index entry was read is skipped.
func (m *Manager) eachIndexed(ctx context.Context, field, value string, fn func(l *Lease) error) error {
	prefix := byKeyPrefix(field, value)
	return storage.Scan(ctx, m.store, storage.Range{Prefix: prefix, KeysOnly: true}, func(kv storage.KV) (bool, error) {
		l, err := m.getLease(ctx, kv.Key[len(prefix):])
		if errors.Is(err, storage.ErrNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return true, fn(l)
	})
}

// RevokeMatching revokes every live lease s matches (break glass) and
// returns them. Upstream work is queued, not awaited: thousands of IAM
// deletions drain at the configured rate.
func (m *Manager) RevokeMatching(ctx context.Context, s Selector, req RevokeRequest) ([]Lease, error) {
	ls, err := m.Select(ctx, s)
	if err != nil {
		return nil, err
	}
	out := make([]Lease, 0, len(ls))
	var firstErr error
	for _, l := range ls {
		r := req
		r.ID, r.Wait = l.ID, false
		got, err := m.Revoke(ctx, r)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if got != nil {
			out = append(out, *got)
		}
	}
	return out, firstErr
}

// Retry puts an irrevocable lease back into the revocation queue with its
// attempts reset.
func (m *Manager) Retry(ctx context.Context, id, actor, requestID, sourceAddr string) (*Lease, error) {
	now := m.now()
	l, err := m.update(ctx, id, func(l *Lease) error {
		if l.State != StateIrrevocable {
			return &Error{Status: http.StatusConflict, Code: "not_irrevocable", Message: fmt.Sprintf("lease %s is %s: only irrevocable leases are retried", id, l.State)}
		}
		l.State, l.Attempts, l.NextAttemptAt = StateRevoking, 0, now
		return nil
	})
	if err != nil {
		return nil, m.notFound(id, err)
	}
	m.wake()
	s := l.Identity
	_ = m.audit.Write(context.WithoutCancel(ctx), &audit.Event{Type: audit.TypeRevoke, Role: l.Role, Identity: &s, LeaseID: l.ID,
		Actor: actor, RequestID: requestID, SourceAddr: sourceAddr, Message: "retry of an irrevocable lease", Object: l.UserName})
	return l, nil
}

// Forget marks a lease revoked without any upstream work: the operator
// takes responsibility for what may remain (e.g. an IAM user deleted by
// hand). It is explicit and audited.
func (m *Manager) Forget(ctx context.Context, id, actor, reason, requestID, sourceAddr string) (*Lease, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: "forgetting a lease needs a reason: it skips upstream cleanup"}
	}
	now := m.now()
	l, err := m.update(ctx, id, func(l *Lease) error {
		if l.State == StateRevoked {
			return errSkip
		}
		l.State, l.RevokedAt, l.RevokedBy = StateRevoked, now, actor
		l.RevokeNote = "forgotten without upstream cleanup: " + reason
		if l.UserName != "" {
			l.RevokeNote += " (IAM user " + l.UserName + " may still exist)"
		}
		return nil
	})
	if err != nil {
		return nil, m.notFound(id, err)
	}
	s := l.Identity
	if err := m.audit.Write(context.WithoutCancel(ctx), &audit.Event{Type: audit.TypeRevoke, Decision: audit.DecisionDeny, Reason: "forgotten",
		Role: l.Role, Identity: &s, LeaseID: l.ID, AccessKeyID: l.AccessKeyID, Actor: actor, RequestID: requestID, SourceAddr: sourceAddr,
		Message: l.RevokeNote, Object: l.UserName}); err != nil {
		return l, &Error{Status: http.StatusServiceUnavailable, Code: CodeAuditUnavailable, Message: "lease forgotten, but the audit log is unavailable", Err: err}
	}
	return l, nil
}

// Renew extends an iam_user lease by ttl (default the role's ttl), up to
// its max_ttl. STS sessions cannot be extended: refresh them instead. The
// audit event is written before the lease changes (renewing extends
// power, so it fails closed).
func (m *Manager) Renew(ctx context.Context, id string, ttl time.Duration, actor, requestID, sourceAddr string) (*Lease, error) {
	now := m.now()
	cur, err := m.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	exp, err := m.renewedExpiry(cur, ttl, now)
	if err != nil {
		return nil, err
	}
	s := cur.Identity
	if err := m.audit.Write(context.WithoutCancel(ctx), &audit.Event{Type: audit.TypeRenew, Role: cur.Role, Identity: &s, LeaseID: cur.ID,
		AccessKeyID: cur.AccessKeyID, Expiration: exp, Actor: actor, RequestID: requestID, SourceAddr: sourceAddr}); err != nil {
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: CodeAuditUnavailable, Message: "the audit log is unavailable; the lease was not renewed", Err: err}
	}
	l, err := m.update(ctx, id, func(l *Lease) error {
		e, err := m.renewedExpiry(l, ttl, now)
		if err != nil {
			return err
		}
		l.ExpiresAt = e
		return nil
	})
	if err != nil {
		return nil, m.notFound(id, err)
	}
	return l, nil
}

func (m *Manager) renewedExpiry(l *Lease, ttl time.Duration, now time.Time) (time.Time, error) {
	if l.Type != policy.TypeIAMUser {
		return time.Time{}, &Error{Status: http.StatusConflict, Code: "not_renewable", Message: "STS sessions cannot be extended: use the refresh handle to get new credentials"}
	}
	if st := l.EffectiveState(now); st != StateActive {
		return time.Time{}, &Error{Status: http.StatusConflict, Code: "not_renewable", Message: fmt.Sprintf("lease %s is %s", l.ID, st)}
	}
	if ttl <= 0 {
		if c, ok := m.roles.Role(l.Role); ok {
			ttl = c.Role().AWS.TTL.D()
		} else {
			ttl = l.ExpiresAt.Sub(l.IssuedAt)
		}
	}
	exp := now.Add(ttl)
	if exp.After(l.MaxExpiresAt) {
		exp = l.MaxExpiresAt
	}
	if !exp.After(l.ExpiresAt) {
		if !l.ExpiresAt.Before(l.MaxExpiresAt) {
			return time.Time{}, &Error{Status: http.StatusConflict, Code: CodeMaxTTLReached, Message: fmt.Sprintf("the lease cannot be extended past its max_ttl (%s)", l.MaxExpiresAt.Format(time.RFC3339))}
		}
		return time.Time{}, &Error{Status: http.StatusConflict, Code: "not_renewable", Message: fmt.Sprintf("a ttl of %s would not extend the lease (it expires %s)", ttl, l.ExpiresAt.Format(time.RFC3339))}
	}
	return exp.UTC(), nil
}

func (m *Manager) notFound(id string, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf("lease %q not found", id)}
	}
	return err
}

// FindByKey returns every lease that ever held accessKeyID, whatever its
// state (the leaked-key runbook).
func (m *Manager) FindByKey(ctx context.Context, accessKeyID string) ([]Lease, error) {
	var out []Lease
	err := m.eachIndexed(ctx, FieldKey, accessKeyID, func(l *Lease) error {
		out = append(out, *l)
		return nil
	})
	return out, err
}

// SweepOrphansNow runs the orphan sweep once, on demand, and says whether
// it was a dry run (the server's orphan_sweep_dry_run forces one).
func (m *Manager) SweepOrphansNow(ctx context.Context, dryRun bool) ([]Orphan, bool, error) {
	if m.users == nil {
		return nil, false, &Error{Status: http.StatusConflict, Code: "no_iam", Message: "this server has no IAM client configured (no iam_user roles)"}
	}
	dry := dryRun || m.lc.SweepDryRun
	out, err := m.SweepOrphans(ctx, dry)
	return out, dry, err
}
