package lease

import (
	"context"
	"errors"
	"time"

	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/storage"
)

// actorReconciler is the actor of revocations the reconciler queues.
const actorReconciler = "keyferry (reconciler)"

// runReconciler finishes what crashes and failures leave behind:
//   - pending leases older than PendingGrace (their issuance died between
//     the write-ahead record and the end) are queued for revocation, which
//     deletes whatever part of the IAM user exists; at start-up every
//     pending lease written before this process started qualifies;
//   - IAM users under keyferry's paths that no live lease owns are
//     deleted after OrphanGrace (the orphan sweep), or only reported in
//     dry-run mode.
//
// A pass that stops because the audit log refused a record is tried again
// every AuditRetry until the log takes records again.
func (lc *Lifecycle) runReconciler(ctx context.Context) error {
	reclaim := func(cutoff time.Time) {
		if _, err := lc.ReclaimPending(ctx, cutoff); ctx.Err() == nil {
			lc.track(PathReconciler, err)
		}
	}
	reclaim(lc.now())
	pendingT := time.NewTicker(time.Minute)
	defer pendingT.Stop()
	retryT := time.NewTicker(lc.tune.AuditRetry)
	defer retryT.Stop()
	var sweepC <-chan time.Time
	if lc.tune.SweepInterval > 0 && lc.users != nil {
		st := time.NewTicker(lc.tune.SweepInterval)
		defer st.Stop()
		sweepC = st.C
	}
	sweep := func() {
		if _, err := lc.SweepOrphans(ctx, lc.tune.SweepDryRun); ctx.Err() == nil {
			lc.track(PathOrphanSweep, err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-pendingT.C:
			reclaim(lc.now().Add(-lc.tune.PendingGrace))
			if err := lc.PruneDenials(ctx); err != nil && ctx.Err() == nil {
				lc.log.Error("pruning deny policies", "err", err)
			}
		case <-retryT.C:
			if lc.isStopped(PathReconciler) {
				reclaim(lc.now().Add(-lc.tune.PendingGrace))
			}
			if lc.isStopped(PathOrphanSweep) {
				sweep()
			}
		case <-sweepC:
			sweep()
		}
	}
}

// ReclaimPending queues for revocation every pending lease created before
// cutoff, each after its revoke record (reason "abandoned_pending"), and
// returns how many it queued. It stops at the first record the audit log
// refuses.
func (lc *Lifecycle) ReclaimPending(ctx context.Context, cutoff time.Time) (int, error) {
	var ids []string
	err := storage.Scan(ctx, lc.st, before(pendingPrefix, cutoff), func(kv storage.KV) (bool, error) {
		if _, id, ok := parseTimeKey(pendingPrefix, kv.Key); ok {
			ids = append(ids, id)
		}
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	const note = "issuance did not finish (crash or timeout): cleaning up the IAM user"
	n := 0
	defer func() {
		if n > 0 {
			lc.wake()
			lc.log.Warn("reclaimed abandoned pending leases", "count", n)
		}
	}()
	for _, id := range ids {
		l, err := lc.get(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		if l.State != StatePending {
			continue
		}
		ev := event(audit.TypeRevoke, l, audit.Origin{Actor: actorReconciler})
		ev.AccessKeyID, ev.Reason, ev.Message = "", "abandoned_pending", note
		if err := lc.audit.Write(context.WithoutCancel(ctx), ev); err != nil {
			return n, &auditStopped{err}
		}
		_, changed, err := queueRevoke(ctx, lc.records, lc.now, id, actorReconciler, note)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return n, err
		}
		if changed {
			n++
		}
	}
	return n, nil
}

// Orphan is an IAM user under keyferry's path that no live lease owns.
type Orphan struct {
	UserName string
	Path     string
	Created  time.Time
	LeaseID  string // from the user's tag, if any
	Deleted  bool
	Error    string
}

// SweepOrphans lists the IAM users under the configured paths and deletes
// those older than OrphanGrace that no live lease owns (a lease that is
// pending, active or revoking owns its user; a revoking one is the
// workers' job). In dry-run mode it only reports them. Each deletion is
// recorded before it happens (and its failure after); a dry run records
// each orphan it finds. It stops at the first record the audit log
// refuses.
func (lc *Lifecycle) SweepOrphans(ctx context.Context, dryRun bool) ([]Orphan, error) {
	if lc.users == nil {
		return nil, nil
	}
	lc.sweepMu.Lock()
	defer lc.sweepMu.Unlock()
	now := lc.now()
	var out []Orphan
	defer func() {
		if len(out) > 0 {
			lc.log.Warn("orphan sweep", "orphans", len(out), "dry_run", dryRun)
		}
	}()
	write := func(ev *audit.Event) error {
		if err := lc.audit.Write(context.WithoutCancel(ctx), ev); err != nil {
			return &auditStopped{err}
		}
		return nil
	}
	for _, path := range lc.tune.SweepPaths {
		users, err := lc.users.ListUsers(ctx, path)
		if err != nil {
			return out, err
		}
		for _, u := range users {
			if !u.Created.IsZero() && now.Sub(u.Created) < lc.tune.OrphanGrace {
				continue
			}
			owned, leaseID, err := lc.userOwned(ctx, u.UserName)
			if err != nil {
				return out, err
			}
			if owned {
				continue
			}
			if leaseID == "" {
				leaseID = u.Tags[TagLeaseID]
			}
			o := Orphan{UserName: u.UserName, Path: u.Path, Created: u.Created, LeaseID: leaseID}
			if dryRun {
				if err := write(&audit.Event{Type: audit.TypeOrphanFound, Actor: "keyferry (orphan sweep, dry run)",
					Object: u.UserName, LeaseID: leaseID, Message: "IAM user under " + u.Path + " owned by no live lease"}); err != nil {
					return out, err
				}
				lc.obs.Orphan("found")
				out = append(out, o)
				continue
			}
			if err := lc.limiter.Wait(ctx); err != nil {
				return out, err
			}
			ev := &audit.Event{Type: audit.TypeOrphanDelete, Actor: "keyferry (orphan sweep)",
				Object: u.UserName, LeaseID: leaseID, Message: "deleting IAM user under " + u.Path + ": owned by no live lease"}
			if err := write(ev); err != nil {
				return out, err
			}
			if err := lc.users.DeleteUser(ctx, u.UserName, nil); err != nil {
				o.Error = revokeErrorText(err)
				lc.obs.Orphan("error")
				if err := write(audit.NotApplied(ev, upstreamCode(err), "could not delete IAM user: "+o.Error)); err != nil {
					return append(out, o), err
				}
			} else {
				o.Deleted = true
				lc.obs.Orphan("deleted")
			}
			out = append(out, o)
		}
	}
	return out, nil
}

// userOwned reports whether a live lease owns the IAM user name.
func (lc *Lifecycle) userOwned(ctx context.Context, name string) (bool, string, error) {
	owned, leaseID := false, ""
	prefix := byKeyPrefix(FieldUser, name)
	err := storage.Scan(ctx, lc.st, storage.Range{Prefix: prefix, KeysOnly: true}, func(kv storage.KV) (bool, error) {
		id := kv.Key[len(prefix):]
		leaseID = id
		l, err := lc.get(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		switch l.State {
		case StatePending, StateActive, StateRevoking:
			owned = true
			return false, nil
		}
		return true, nil
	})
	return owned, leaseID, err
}
