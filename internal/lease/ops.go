package lease

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/fault"
	"github.com/keyferry/keyferry/internal/policy"
	"github.com/keyferry/keyferry/internal/storage"
)

// Get returns one lease.
func (lc *Lifecycle) Get(ctx context.Context, id string) (*Lease, error) {
	l, err := lc.get(ctx, id)
	return l, asNotFound(id, err)
}

// Filter selects leases; empty fields match everything.
type Filter struct {
	Role     string
	Project  string
	Pipeline string
	State    State
	// After is the id to continue after (pagination); Limit caps the page.
	After string
	Limit int
}

func (f Filter) match(l *Lease, now time.Time) bool {
	return (f.Role == "" || l.Role == f.Role) &&
		(f.Project == "" || l.Identity.Project == f.Project || l.Identity.ProjectID == f.Project) &&
		(f.Pipeline == "" || l.Identity.Pipeline == f.Pipeline) &&
		(f.State == "" || l.EffectiveState(now) == f.State)
}

// List returns leases matching f in id (issuance) order, and the cursor of
// the next page ("" when done).
func (lc *Lifecycle) List(ctx context.Context, f Filter) ([]Lease, string, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 1000
	}
	now := lc.now()
	var out []Lease
	next := ""
	after := ""
	if f.After != "" {
		after = leasePrefix + f.After
	}
	err := storage.Scan(ctx, lc.st, storage.Range{Prefix: leasePrefix, After: after}, func(kv storage.KV) (bool, error) {
		l, err := decodeLease(kv)
		if err != nil {
			return false, err
		}
		if !f.match(l, now) {
			return true, nil
		}
		if len(out) == f.Limit {
			next = out[len(out)-1].ID
			return false, nil
		}
		out = append(out, *l)
		return true, nil
	})
	return out, next, err
}

// ValidState reports whether s names a state usable in a filter.
func ValidState(s string) bool {
	switch State(strings.ToLower(s)) {
	case StatePending, StateActive, StateRevoking, StateRevoked, StateIrrevocable, StateExpired:
		return true
	}
	return false
}

// Selector picks leases for a bulk revocation; at least one field is
// required. Fields are ANDed.
type Selector struct {
	Role     string
	Project  string
	Pipeline string
	Subject  string
	// AccessKeyID finds the lease that ever held this key.
	AccessKeyID string
}

// Empty reports whether s selects nothing (a bulk revoke of everything
// must be spelled out field by field).
func (s Selector) Empty() bool {
	return s.Role == "" && s.Project == "" && s.Pipeline == "" && s.Subject == "" && s.AccessKeyID == ""
}

// Select returns the live (not revoked) leases s matches, using the
// narrowest index, in id order.
func (lc *Lifecycle) Select(ctx context.Context, s Selector) ([]Lease, error) {
	if s.Empty() {
		return nil, fault.New(fault.Invalid, CodeInvalidRequest, "give at least one of role, project, pipeline, sub, access_key_id")
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
	now := lc.now()
	var out []Lease
	err := lc.eachIndexed(ctx, field, value, func(l *Lease) error {
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

// FindByKey returns every lease that ever held accessKeyID, whatever its
// state (the leaked-key runbook).
func (lc *Lifecycle) FindByKey(ctx context.Context, accessKeyID string) ([]Lease, error) {
	var out []Lease
	err := lc.eachIndexed(ctx, FieldKey, accessKeyID, func(l *Lease) error {
		out = append(out, *l)
		return nil
	})
	return out, err
}

// event is the base of an audit event about l caused by o.
func event(typ string, l *Lease, o audit.Origin) *audit.Event {
	return o.Stamp(&audit.Event{Type: typ, Role: l.Role, Identity: summaryOf(l.Identity), LeaseID: l.ID, AccessKeyID: l.AccessKeyID, Object: l.UserName})
}

// recordThen writes ev and then runs act: the record of an operator's
// action comes first, and no action happens without it. If act fails
// after the record was written, a second record says so (audit.NotApplied:
// reason not_found, store_error, or the refusal's code), so that the log
// never claims a change that did not happen.
func (lc *Lifecycle) recordThen(ctx context.Context, ev *audit.Event, refused string, act func() error) error {
	if err := lc.audit.Write(context.WithoutCancel(ctx), ev); err != nil {
		return errAudit(err, refused)
	}
	err := act()
	if err == nil {
		return nil
	}
	reason := audit.ReasonStoreError
	switch {
	case errors.Is(err, storage.ErrNotFound):
		reason = audit.ReasonNotFound
	case fault.CodeOf(err) != "":
		reason = fault.CodeOf(err)
	}
	if aerr := lc.audit.Write(context.WithoutCancel(ctx), audit.NotApplied(ev, reason, "not applied: "+ev.Message)); aerr != nil {
		lc.log.Error("the audit log refused the record that an action it recorded did not happen", "type", ev.Type, "lease_id", ev.LeaseID, "err", aerr)
		return errors.Join(err, errAudit(aerr, "the audit log is unavailable"))
	}
	return err
}

// Revoke ends lease id on behalf of o and audits it; it is idempotent
// (a lease already revoked, revoking or irrevocable is returned as it is,
// with no new record). A lease without upstream work (an STS session
// without early revocation) is revoked at once: AWS offers no way to
// delete a session, and its credentials keep working until they expire.
// A lease with upstream work (an IAM user to delete, a session to deny)
// is queued for the revocation workers; with wait, Revoke then waits (up
// to ctx) until they are done. The revoke record is written first.
func (lc *Lifecycle) Revoke(ctx context.Context, id string, o audit.Origin, wait bool) (*Lease, error) {
	l, err := lc.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	switch l.State {
	case StateRevoked, StateRevoking, StateIrrevocable:
		if wait && l.State == StateRevoking {
			return lc.waitRevoked(ctx, id)
		}
		return l, nil
	}
	var notes []string
	if o.Reason != "" {
		notes = append(notes, "reason: "+o.Reason)
	}
	upstream := lc.needsUpstream(l)
	switch {
	case upstream && l.Type != policy.TypeIAMUser:
		notes = append(notes, "the session is denied on its role until it expires")
	case !upstream && (l.Type == policy.TypeAssumeRole || l.Type == policy.TypeWebIdentity):
		notes = append(notes, "STS sessions cannot be deleted: the credentials stay valid upstream until "+l.ExpiresAt.Format(time.RFC3339))
	}
	note := strings.Join(notes, "; ")
	ev := event(audit.TypeRevoke, l, o)
	ev.Reason, ev.Message = "revoked_by_operator", note
	if upstream {
		ev.Message = "revocation queued"
		if note != "" {
			ev.Message += "; " + note
		}
	}
	var out *Lease
	err = lc.recordThen(ctx, ev, "the audit log is unavailable; the lease was not revoked", func() error {
		if upstream {
			var err error
			out, _, err = queueRevoke(context.WithoutCancel(ctx), lc.records, lc.now, id, o.Actor, note)
			lc.wake()
			return err
		}
		var err error
		out, err = lc.update(context.WithoutCancel(ctx), id, func(l *Lease) error {
			if l.State == StateRevoked || l.State == StateIrrevocable || l.State == StateRevoking {
				return errSkip
			}
			l.State, l.RevokedAt, l.RevokedBy, l.RevokeNote = StateRevoked, lc.now().UTC(), o.Actor, note
			return nil
		})
		return err
	})
	if err != nil {
		return nil, asNotFound(id, err)
	}
	if wait && out.State == StateRevoking {
		return lc.waitRevoked(ctx, id)
	}
	return out, nil
}

// RevokeMatching revokes every live lease s matches (break glass) and
// returns those it revoked. Upstream work is queued, not awaited:
// thousands of IAM deletions drain at the configured rate. It stops at
// the first lease it cannot revoke (the audit log or the store refused),
// returning what it revoked so far with the error.
func (lc *Lifecycle) RevokeMatching(ctx context.Context, s Selector, o audit.Origin) ([]Lease, error) {
	ls, err := lc.Select(ctx, s)
	if err != nil {
		return nil, err
	}
	out := make([]Lease, 0, len(ls))
	for _, l := range ls {
		got, err := lc.Revoke(ctx, l.ID, o, false)
		if err != nil {
			return out, err
		}
		out = append(out, *got)
	}
	return out, nil
}

// Retry puts an irrevocable lease back into the revocation queue with its
// attempts reset. The record comes first.
func (lc *Lifecycle) Retry(ctx context.Context, id string, o audit.Origin) (*Lease, error) {
	l, err := lc.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	notIrrevocable := func(l *Lease) error {
		return fault.Newf(fault.Conflict, CodeNotIrrevocable, "lease %s is %s: only irrevocable leases are retried", id, l.State)
	}
	if l.State != StateIrrevocable {
		return nil, notIrrevocable(l)
	}
	ev := event(audit.TypeRevoke, l, o)
	ev.AccessKeyID, ev.Message = "", "retry of an irrevocable lease"
	var out *Lease
	err = lc.recordThen(ctx, ev, "the audit log is unavailable; the lease was not retried", func() error {
		var err error
		out, err = lc.update(context.WithoutCancel(ctx), id, func(l *Lease) error {
			if l.State != StateIrrevocable {
				return notIrrevocable(l)
			}
			l.State, l.Attempts, l.NextAttemptAt = StateRevoking, 0, lc.now()
			return nil
		})
		return err
	})
	if err != nil {
		return nil, asNotFound(id, err)
	}
	lc.wake()
	return out, nil
}

// Forget marks a lease revoked without any upstream work: the operator
// takes responsibility for what may remain (e.g. an IAM user deleted by
// hand). It needs a reason (o.Reason), and is audited first.
func (lc *Lifecycle) Forget(ctx context.Context, id string, o audit.Origin) (*Lease, error) {
	if strings.TrimSpace(o.Reason) == "" {
		return nil, fault.New(fault.Invalid, CodeInvalidRequest, "forgetting a lease needs a reason: it skips upstream cleanup")
	}
	l, err := lc.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if l.State == StateRevoked {
		return l, nil
	}
	note := "forgotten without upstream cleanup: " + o.Reason
	if l.UserName != "" {
		note += " (IAM user " + l.UserName + " may still exist)"
	}
	ev := event(audit.TypeRevoke, l, o)
	ev.Decision, ev.Reason, ev.Message = audit.DecisionDeny, "forgotten", note
	var out *Lease
	err = lc.recordThen(ctx, ev, "the audit log is unavailable; the lease was not forgotten", func() error {
		var err error
		out, err = lc.update(context.WithoutCancel(ctx), id, func(l *Lease) error {
			if l.State == StateRevoked {
				return errSkip
			}
			l.State, l.RevokedAt, l.RevokedBy, l.RevokeNote = StateRevoked, lc.now().UTC(), o.Actor, note
			return nil
		})
		return err
	})
	if err != nil {
		return nil, asNotFound(id, err)
	}
	return out, nil
}

// Renew extends an iam_user lease by ttl (default the role's ttl), up to
// its max_ttl. STS sessions cannot be extended: refresh them instead. The
// audit event is written before the lease changes (renewing extends
// power, so it fails closed).
func (lc *Lifecycle) Renew(ctx context.Context, id string, ttl time.Duration, o audit.Origin) (*Lease, error) {
	now := lc.now()
	cur, err := lc.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	exp, err := lc.renewedExpiry(cur, ttl, now)
	if err != nil {
		return nil, err
	}
	ev := event(audit.TypeRenew, cur, o)
	ev.Object, ev.Expiration = "", exp
	var out *Lease
	err = lc.recordThen(ctx, ev, "the audit log is unavailable; the lease was not renewed", func() error {
		var err error
		out, err = lc.update(context.WithoutCancel(ctx), id, func(l *Lease) error {
			e, err := lc.renewedExpiry(l, ttl, now)
			if err != nil {
				return err
			}
			l.ExpiresAt = e
			return nil
		})
		return err
	})
	if err != nil {
		return nil, asNotFound(id, err)
	}
	return out, nil
}

func (lc *Lifecycle) renewedExpiry(l *Lease, ttl time.Duration, now time.Time) (time.Time, error) {
	if l.Type != policy.TypeIAMUser {
		return time.Time{}, fault.New(fault.Conflict, CodeNotRenewable, "STS sessions cannot be extended: use the refresh handle to get new credentials")
	}
	if st := l.EffectiveState(now); st != StateActive {
		return time.Time{}, fault.Newf(fault.Conflict, CodeNotRenewable, "lease %s is %s", l.ID, st)
	}
	if ttl <= 0 {
		if c, ok := lc.roles.Role(l.Role); ok {
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
			return time.Time{}, fault.Newf(fault.Conflict, CodeMaxTTLReached, "the lease cannot be extended past its max_ttl (%s)", l.MaxExpiresAt.Format(time.RFC3339))
		}
		return time.Time{}, fault.Newf(fault.Conflict, CodeNotRenewable, "a ttl of %s would not extend the lease (it expires %s)", ttl, l.ExpiresAt.Format(time.RFC3339))
	}
	return exp.UTC(), nil
}

// SweepOrphansNow runs the orphan sweep once, on demand, and says whether
// it was a dry run (the server's orphan_sweep_dry_run forces one).
func (lc *Lifecycle) SweepOrphansNow(ctx context.Context, dryRun bool) ([]Orphan, bool, error) {
	if lc.users == nil {
		return nil, false, fault.New(fault.Conflict, CodeNoIAM, "this server has no IAM client configured (no iam_user roles)")
	}
	dry := dryRun || lc.tune.SweepDryRun
	out, err := lc.SweepOrphans(ctx, dry)
	var as *auditStopped
	if errors.As(err, &as) {
		return out, dry, errAudit(as.err, "the audit log is unavailable; the sweep stopped")
	}
	return out, dry, err
}
