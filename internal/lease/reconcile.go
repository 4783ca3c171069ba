package lease

import (
	"context"
	"errors"
	"time"

	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/storage"
)

// runReconciler finishes what crashes and failures leave behind:
//   - pending leases older than PendingGrace (their issuance died between
//     the write-ahead record and the end) are queued for revocation, which
//     deletes whatever part of the IAM user exists; at start-up every
//     pending lease written before this process started qualifies;
//   - IAM users under keyferry's paths that no live lease owns are
//     deleted after OrphanGrace (the orphan sweep), or only reported in
//     dry-run mode.
func (m *Manager) runReconciler(ctx context.Context) error {
	started := m.now()
	if _, err := m.ReclaimPending(ctx, started); err != nil && ctx.Err() == nil {
		m.log.Error("reclaiming pending leases", "err", err)
	}
	pendingT := time.NewTicker(time.Minute)
	defer pendingT.Stop()
	var sweepC <-chan time.Time
	if m.lc.SweepInterval > 0 && m.users != nil {
		st := time.NewTicker(m.lc.SweepInterval)
		defer st.Stop()
		sweepC = st.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-pendingT.C:
			if _, err := m.ReclaimPending(ctx, m.now().Add(-m.lc.PendingGrace)); err != nil && ctx.Err() == nil {
				m.log.Error("reclaiming pending leases", "err", err)
			}
			if err := m.PruneDenials(ctx); err != nil && ctx.Err() == nil {
				m.log.Error("pruning deny policies", "err", err)
			}
		case <-sweepC:
			if _, err := m.SweepOrphans(ctx, m.lc.SweepDryRun); err != nil && ctx.Err() == nil {
				m.log.Error("orphan sweep", "err", err)
			}
		}
	}
}

// ReclaimPending queues for revocation every pending lease created before
// cutoff, and returns how many it queued.
func (m *Manager) ReclaimPending(ctx context.Context, cutoff time.Time) (int, error) {
	var ids []string
	err := storage.Scan(ctx, m.store, before(pendingPrefix, cutoff), func(kv storage.KV) (bool, error) {
		if _, id, ok := parseTimeKey(pendingPrefix, kv.Key); ok {
			ids = append(ids, id)
		}
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		l, changed, err := m.queueRevoke(ctx, id, "keyferry (reconciler)", "issuance did not finish (crash or timeout): cleaning up the IAM user")
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return n, err
		}
		if changed {
			n++
			s := l.Identity
			_ = m.audit.Write(context.WithoutCancel(ctx), &audit.Event{Type: audit.TypeRevoke, Role: l.Role, Identity: &s, LeaseID: l.ID,
				Actor: "keyferry (reconciler)", Reason: "abandoned_pending", Message: l.RevokeNote, Object: l.UserName})
		}
	}
	if n > 0 {
		m.log.Warn("reclaimed abandoned pending leases", "count", n)
	}
	return n, nil
}

// Orphan is an IAM user under keyferry's path that no live lease owns.
type Orphan struct {
	UserName string    `json:"user_name"`
	Path     string    `json:"path"`
	Created  time.Time `json:"created"`
	LeaseID  string    `json:"lease_id,omitempty"` // from the user's tag, if any
	Deleted  bool      `json:"deleted"`
	Error    string    `json:"error,omitempty"`
}

// SweepOrphans lists the IAM users under the configured paths and deletes
// those older than OrphanGrace that no live lease owns (a lease that is
// pending, active or revoking owns its user; a revoking one is the
// workers' job). In dry-run mode it only reports them. Every deletion is
// audited.
func (m *Manager) SweepOrphans(ctx context.Context, dryRun bool) ([]Orphan, error) {
	if m.users == nil {
		return nil, nil
	}
	m.sweepMu.Lock()
	defer m.sweepMu.Unlock()
	now := m.now()
	var out []Orphan
	for _, path := range m.lc.SweepPaths {
		users, err := m.users.ListUsers(ctx, path)
		if err != nil {
			return out, err
		}
		for _, u := range users {
			if !u.Created.IsZero() && now.Sub(u.Created) < m.lc.OrphanGrace {
				continue
			}
			owned, leaseID, err := m.userOwned(ctx, u.UserName)
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
				m.lobs.Orphan("found")
				_ = m.audit.Write(context.WithoutCancel(ctx), &audit.Event{Type: audit.TypeOrphanFound, Actor: "keyferry (orphan sweep, dry run)",
					Object: u.UserName, LeaseID: leaseID, Message: "IAM user under " + u.Path + " owned by no live lease"})
				out = append(out, o)
				continue
			}
			if err := m.limiter.Wait(ctx); err != nil {
				return out, err
			}
			if err := m.users.DeleteUser(ctx, u.UserName, nil); err != nil {
				o.Error = revokeErrorText(err)
				m.lobs.Orphan("error")
			} else {
				o.Deleted = true
				m.lobs.Orphan("deleted")
				_ = m.audit.Write(context.WithoutCancel(ctx), &audit.Event{Type: audit.TypeOrphanDelete, Actor: "keyferry (orphan sweep)",
					Object: u.UserName, LeaseID: leaseID, Message: "deleted IAM user under " + u.Path + " owned by no live lease"})
			}
			out = append(out, o)
		}
	}
	if len(out) > 0 {
		m.log.Warn("orphan sweep", "orphans", len(out), "dry_run", dryRun)
	}
	return out, nil
}

// userOwned reports whether a live lease owns the IAM user name.
func (m *Manager) userOwned(ctx context.Context, name string) (bool, string, error) {
	owned, leaseID := false, ""
	prefix := byKeyPrefix(FieldUser, name)
	err := storage.Scan(ctx, m.store, storage.Range{Prefix: prefix, KeysOnly: true}, func(kv storage.KV) (bool, error) {
		id := kv.Key[len(prefix):]
		leaseID = id
		l, err := m.getLease(ctx, id)
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
