package lease

import (
	"context"
	"fmt"

	"github.com/keyferry/keyferry/internal/storage"
)

// Seed writes leases to st exactly as issuance does (the same encoding,
// expiry entry, lookup indexes and, for pending leases, write-ahead
// entry), all in one transaction. It exists so that benchmarks and tests
// can fill a store with many leases without minting each one
// (bench/leasescale seeds a million); the server never calls it. Leases
// must be new (a lease id that exists fails with storage.ErrConflict) and
// in StateActive or StatePending, the states issuance creates.
func Seed(ctx context.Context, st storage.Store, leases []*Lease) error {
	enc := make([][]byte, len(leases))
	for i, l := range leases {
		if l.State != StateActive && l.State != StatePending {
			return fmt.Errorf("lease: seed %s: state %q, want %q or %q", l.ID, l.State, StateActive, StatePending)
		}
		b, err := encodeLease(l)
		if err != nil {
			return fmt.Errorf("lease: seed %s: %w", l.ID, err)
		}
		enc[i] = b
	}
	return st.Update(ctx, func(tx storage.Txn) error {
		for i, l := range leases {
			if err := createLease(tx, l, enc[i]); err != nil {
				return fmt.Errorf("lease: seed %s: %w", l.ID, err)
			}
		}
		return nil
	})
}
