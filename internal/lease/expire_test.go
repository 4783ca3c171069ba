package lease

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/storage"
	"github.com/keyferry/keyferry/internal/storage/memory"
)

// countingStore counts commits.
type countingStore struct {
	storage.Store
	updates atomic.Int32
}

func (s *countingStore) Commit(ctx context.Context, conds []storage.Cond, ops []storage.Op) error {
	s.updates.Add(1)
	return s.Store.Commit(ctx, conds, ops)
}

// TestExpireDueWritesOnlyWhenDue: a scheduler tick with nothing due
// commits nothing (each commit is durable, and ticks come four a second).
func TestExpireDueWritesOnlyWhenDue(t *testing.T) {
	f := newLCFixture(t)
	cs := &countingStore{Store: f.m.store()}
	f.m.setStore(cs)
	ctx := context.Background()
	if n, err := f.m.ExpireDue(ctx); err != nil || n != 0 {
		t.Fatalf("empty store: ExpireDue = %d, %v; want 0, nil", n, err)
	}
	out, err := f.m.Issue(ctx, IssueRequest{Role: "artifacts", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	before := cs.updates.Load()
	if n, err := f.m.ExpireDue(ctx); err != nil || n != 0 {
		t.Fatalf("nothing due: ExpireDue = %d, %v; want 0, nil", n, err)
	}
	if got := cs.updates.Load() - before; got != 0 {
		t.Errorf("nothing due: %d commits, want 0", got)
	}
	f.now = out.Lease.ExpiresAt.Add(time.Second)
	if n, err := f.m.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("one due: ExpireDue = %d, %v; want 1, nil", n, err)
	}
	if l := f.state(t, out.Lease.ID); l.State != StateRevoking {
		t.Errorf("expired iam_user lease is %s, want revoking", l.State)
	}
}

// TestExpireSkipsARenewedLease: the expiry index is read before each
// lease is changed, so a renewal can move a lease's expiry between the
// two. The stale entry is dropped and the lease, no longer due, stays
// active.
func TestExpireSkipsARenewedLease(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	out, err := f.m.Issue(ctx, IssueRequest{Role: "artifacts", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	stale := expiryKey(out.Lease.ExpiresAt, out.Lease.ID)
	renewed, err := f.m.update(ctx, out.Lease.ID, func(l *Lease) error {
		l.ExpiresAt = l.ExpiresAt.Add(time.Hour)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The entry as the scheduler listed it before the renewal.
	if err := f.m.store().Commit(ctx, nil, []storage.Op{storage.Put(stale, nil)}); err != nil {
		t.Fatal(err)
	}
	f.now = out.Lease.ExpiresAt.Add(time.Second)
	if n, err := f.m.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("ExpireDue = %d, %v; want 1, nil", n, err)
	}
	if l := f.state(t, out.Lease.ID); l.State != StateActive || !l.ExpiresAt.Equal(renewed.ExpiresAt) {
		t.Errorf("renewed lease is %s until %v, want active until %v", l.State, l.ExpiresAt, renewed.ExpiresAt)
	}
	if _, err := f.m.store().Get(ctx, stale); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("stale expiry entry: Get = %v, want ErrNotFound", err)
	}
	if _, err := f.m.store().Get(ctx, expiryKey(renewed.ExpiresAt, renewed.ID)); err != nil {
		t.Errorf("current expiry entry: Get = %v, want it kept", err)
	}
}

// TestSeedSpansCommits seeds more leases than one commit holds.
func TestSeedSpansCommits(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	st := memory.New()
	var leases []*Lease
	for i := range 100 {
		leases = append(leases, &Lease{ID: NewID(now), Role: "r", State: StateActive, AccessKeyID: fmt.Sprintf("ASIA%016d", i),
			Identity: identity.Summary{Project: "g/p", Pipeline: "1", Subject: "s"}, IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
	}
	if err := Seed(context.Background(), st, leases); err != nil {
		t.Fatal(err)
	}
	m := newTestLeases(testConfig{Store: st, Now: func() time.Time { return now }})
	got, err := m.Select(context.Background(), Selector{Project: "g/p"})
	if err != nil || len(got) != len(leases) {
		t.Errorf("Select after seeding %d leases = %d leases, %v", len(leases), len(got), err)
	}
}
