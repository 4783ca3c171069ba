package lease

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/storage"
)

// countingStore counts read-write transactions.
type countingStore struct {
	storage.Store
	updates atomic.Int32
}

func (s *countingStore) Update(ctx context.Context, fn func(storage.Txn) error) error {
	s.updates.Add(1)
	return s.Store.Update(ctx, fn)
}

// TestExpireDueWritesOnlyWhenDue: a scheduler tick with nothing due opens
// no write transaction (each would be a durable commit, four a second).
func TestExpireDueWritesOnlyWhenDue(t *testing.T) {
	f := newLCFixture(t)
	cs := &countingStore{Store: f.m.store}
	f.m.store = cs
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
		t.Errorf("nothing due: %d write transactions, want 0", got)
	}
	f.now = out.Lease.ExpiresAt.Add(time.Second)
	if n, err := f.m.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("one due: ExpireDue = %d, %v; want 1, nil", n, err)
	}
	if l := f.state(t, out.Lease.ID); l.State != StateRevoking {
		t.Errorf("expired iam_user lease is %s, want revoking", l.State)
	}
}
