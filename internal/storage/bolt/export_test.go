package bolt

import (
	"context"

	"github.com/keyferry/keyferry/internal/storage"
)

// NoGate is a Store whose Commit goes through bbolt's DB.Batch alone,
// without the commit gate, so benchmarks can show what the gate buys. It
// runs the same commit code as Store.Commit.
type NoGate struct{ *Store }

// Commit is Store.Commit without the gate.
func (s NoGate) Commit(ctx context.Context, conds []storage.Cond, ops []storage.Op) error {
	c, err := s.prepare(ctx, conds, ops)
	if err != nil {
		return err
	}
	return c.result(s.db.Batch(c.apply))
}
