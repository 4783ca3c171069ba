package lease

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/keyferry/keyferry/internal/storage"
)

// Seed writes leases to st exactly as issuance does (the same encoding,
// expiry entry, lookup indexes and, for pending leases, write-ahead
// entry), as many leases per commit as the storage port allows, several
// commits at a time. It exists so that benchmarks and tests can fill a
// store with many leases without minting each one (bench/leasescale seeds
// a million); the server never calls it. Leases must be new (a lease id
// that exists fails with storage.ErrConflict, and the commit it was in
// writes nothing) and in StateActive or StatePending, the states issuance
// creates.
func Seed(ctx context.Context, st storage.Store, leases []*Lease) error {
	type commit struct {
		conds []storage.Cond
		ops   []storage.Op
	}
	var commits []commit
	var cur commit
	for _, l := range leases {
		if l.State != StateActive && l.State != StatePending {
			return fmt.Errorf("lease: seed %s: state %q, want %q or %q", l.ID, l.State, StateActive, StatePending)
		}
		b, err := encodeLease(l)
		if err != nil {
			return fmt.Errorf("lease: seed %s: %w", l.ID, err)
		}
		if len(cur.ops)+maxCreateOps > storage.MaxCommitOps {
			commits, cur = append(commits, cur), commit{}
		}
		cur.conds = append(cur.conds, storage.Absent(leaseKey(l.ID)))
		cur.ops = append(cur.ops, createOps(l, b)...)
	}
	if len(cur.ops) > 0 {
		commits = append(commits, cur)
	}
	// Side by side, so that a batching backend shares disk syncs among
	// them, as it does for concurrent issuances.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(commitParallelism)
	for _, c := range commits {
		g.Go(func() error { return st.Commit(gctx, c.conds, c.ops) })
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("lease: seed: %w", err)
	}
	return nil
}
