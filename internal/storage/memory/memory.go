// Package memory is an in-process storage.Store for tests and demos. Its
// contents are lost when the process exits.
//
// The data is a persistent (copy-on-write) treap. Commits run one at a
// time under a mutex, build a new tree that shares every untouched node
// with the published one, and publish it with one atomic store. Get and
// List load the current root and read it without locks, so every read is
// a snapshot that never blocks a Commit and is never blocked by one.
//
// Like etcd, the store keeps a revision: every Commit that writes bumps
// it, every key remembers the revision that last wrote it, and
// storage.Unchanged compares revisions. So a test on memory sees what it
// would on etcd, where rewriting a key with identical bytes breaks an
// Unchanged condition (on bolt it does not; the contract allows both).
//
// Values are copied on the way in and on the way out, so no caller can
// change stored data through a slice.
package memory

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/keyferry/keyferry/internal/storage"
)

var _ storage.Store = (*Store)(nil)

// Store is an in-memory storage.Store. The zero value is not usable; call
// New.
type Store struct {
	seed   maphash.Seed // hashes keys to treap priorities
	mu     sync.Mutex   // serialises Commit and Close
	rev    int64        // the latest revision; guarded by mu
	root   atomic.Pointer[node]
	closed atomic.Bool
}

// New returns an empty store.
func New() *Store {
	return &Store{seed: maphash.MakeSeed()}
}

// Get reads key from the current tree.
func (s *Store) Get(ctx context.Context, key string) (storage.KV, error) {
	if err := s.usable(ctx); err != nil {
		return storage.KV{}, fmt.Errorf("memory: get: %w", err)
	}
	n := get(s.root.Load(), key)
	if n == nil {
		return storage.KV{}, fmt.Errorf("memory: get %q: %w", key, storage.ErrNotFound)
	}
	return storage.KV{Key: key, Value: clone(n.val), Rev: n.rev}, nil
}

// List reads one page of r from the current tree.
func (s *Store) List(ctx context.Context, r storage.Range) (storage.Page, error) {
	if err := s.usable(ctx); err != nil {
		return storage.Page{}, fmt.Errorf("memory: list: %w", err)
	}
	limit := r.PageLimit()
	var page storage.Page
	err := scan(s.root.Load(), r.Prefix, r.After, func(n *node) (bool, error) {
		if r.Before != "" && n.key >= r.Before {
			return false, nil
		}
		if len(page.KVs) == limit {
			page.More = true
			return false, nil
		}
		kv := storage.KV{Key: n.key, Rev: n.rev}
		if !r.KeysOnly {
			kv.Value = clone(n.val)
		}
		page.KVs = append(page.KVs, kv)
		return true, nil
	})
	return page, err
}

// Commit checks conds against the current tree and, if they hold,
// publishes a tree with ops applied.
func (s *Store) Commit(ctx context.Context, conds []storage.Cond, ops []storage.Op) error {
	if err := storage.CheckCommit(conds, ops); err != nil {
		return fmt.Errorf("memory: commit: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Checked under the lock: a caller that gave up while waiting for it
	// gets no write.
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("memory: commit: %w", err)
	}
	root := s.root.Load()
	for _, c := range conds {
		n := get(root, c.Key)
		switch {
		case c.Absent && n != nil:
			return fmt.Errorf("memory: commit: %q exists: %w", c.Key, storage.ErrConflict)
		case !c.Absent && (n == nil || n.rev != c.Read().Rev):
			return fmt.Errorf("memory: commit: %q changed: %w", c.Key, storage.ErrConflict)
		}
	}
	if len(ops) == 0 {
		return nil
	}
	rev := s.rev + 1
	for _, op := range ops {
		if op.Delete {
			root, _ = remove(root, op.Key)
			continue
		}
		root = insert(root, op.Key, clone(op.Value), rev, maphash.String(s.seed, op.Key))
	}
	s.rev = rev
	s.root.Store(root)
	return nil
}

// Close drops the data. Later calls of any method return storage.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return fmt.Errorf("memory: close: %w", storage.ErrClosed)
	}
	s.root.Store(nil)
	return nil
}

func (s *Store) usable(ctx context.Context) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	return ctx.Err()
}

// clone copies v; unlike bytes.Clone it returns a non-nil slice for a nil
// or empty v, so a stored empty value reads back as empty, not as absent.
func clone(v []byte) []byte {
	c := make([]byte, len(v))
	copy(c, v)
	return c
}
