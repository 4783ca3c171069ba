package lease

import (
	"context"
	"fmt"

	"github.com/keyferry/keyferry/internal/storage"
)

// Seed writes leases to st exactly as issuance does (the same encoding,
// expiry entry, lookup indexes and, for pending leases, write-ahead
// entry), as many leases per commit as the storage port allows. It exists
// so that benchmarks and tests can fill a store with many leases without
// minting each one (bench/leasescale seeds a million); the server never
// calls it. Leases must be new (a lease id that exists fails with
// storage.ErrConflict, and the commit it was in writes nothing) and in
// StateActive or StatePending, the states issuance creates.
func Seed(ctx context.Context, st storage.Store, leases []*Lease) error {
	var (
		conds []storage.Cond
		ops   []storage.Op
	)
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		err := st.Commit(ctx, conds, ops)
		conds, ops = conds[:0], ops[:0]
		return err
	}
	for _, l := range leases {
		if l.State != StateActive && l.State != StatePending {
			return fmt.Errorf("lease: seed %s: state %q, want %q or %q", l.ID, l.State, StateActive, StatePending)
		}
		b, err := encodeLease(l)
		if err != nil {
			return fmt.Errorf("lease: seed %s: %w", l.ID, err)
		}
		if len(ops)+maxCreateOps > storage.MaxCommitOps {
			if err := flush(); err != nil {
				return fmt.Errorf("lease: seed: %w", err)
			}
		}
		conds = append(conds, storage.Absent(leaseKey(l.ID)))
		ops = append(ops, createOps(l, b)...)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("lease: seed: %w", err)
	}
	return nil
}
