// Package memory is an in-process storage.Store for tests and demos. Its
// contents are lost when the process exits.
//
// The data is a persistent (copy-on-write) treap. Update runs one at a time
// under a mutex, writes into a private copy of the tree that shares every
// untouched node with the published one, and publishes the new root with
// one atomic store when fn succeeds. View loads the current root and reads
// it without locks, so a View is a true snapshot: it never blocks an
// Update, is never blocked by one, and never sees a later commit.
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
	mu     sync.Mutex   // serialises Update and Close
	root   atomic.Pointer[node]
	closed atomic.Bool
}

// New returns an empty store.
func New() *Store {
	return &Store{seed: maphash.MakeSeed()}
}

// Update runs fn against a private copy of the tree and publishes it if fn
// returns nil. Updates are serialised, so fn runs exactly once per call.
func (s *Store) Update(ctx context.Context, fn func(tx storage.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: update: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("memory: update: %w", storage.ErrClosed)
	}
	tx := &txn{readTxn: readTxn{root: s.root.Load()}, seed: s.seed}
	if err := fn(tx); err != nil {
		return err
	}
	// The caller may have given up while fn ran (or while we waited for
	// the lock); honour that rather than commit work nobody will see.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: update: %w", err)
	}
	s.root.Store(tx.root)
	return nil
}

// View runs fn against the tree as of the call. It takes no lock.
func (s *Store) View(ctx context.Context, fn func(tx storage.ReadTxn) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: view: %w", err)
	}
	if s.closed.Load() {
		return fmt.Errorf("memory: view: %w", storage.ErrClosed)
	}
	return fn(&readTxn{root: s.root.Load()})
}

// Close drops the data. Later calls of any method return storage.ErrClosed.
// A View already running keeps its snapshot until it returns.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return fmt.Errorf("memory: close: %w", storage.ErrClosed)
	}
	s.root.Store(nil)
	return nil
}

type readTxn struct {
	root *node
}

func (t *readTxn) Get(key string) ([]byte, error) {
	n := get(t.root, key)
	if n == nil {
		return nil, fmt.Errorf("memory: get %q: %w", key, storage.ErrNotFound)
	}
	return clone(n.val), nil
}

func (t *readTxn) Scan(prefix, after string, fn func(key string, val []byte) (bool, error)) error {
	// Values are copied even though the contract only promises them for
	// the duration of the call: a caller that scribbles on one must not
	// corrupt a tree other snapshots share.
	return scan(t.root, prefix, after, func(n *node) (bool, error) {
		return fn(n.key, clone(n.val))
	})
}

// txn is a read-write transaction. Its root starts as the published root
// and moves to a new, privately built tree with each write; readTxn's
// methods read that tree, so fn sees its own writes. Scan walks the tree as
// it was when Scan began, so fn may write during a Scan.
type txn struct {
	readTxn
	seed maphash.Seed
}

func (t *txn) Put(key string, val []byte) error {
	if err := storage.CheckPut(key, val); err != nil {
		return fmt.Errorf("memory: put: %w", err)
	}
	t.root = insert(t.root, key, clone(val), maphash.String(t.seed, key))
	return nil
}

func (t *txn) Create(key string, val []byte) error {
	if err := storage.CheckPut(key, val); err != nil {
		return fmt.Errorf("memory: create: %w", err)
	}
	if get(t.root, key) != nil {
		return fmt.Errorf("memory: create %q: %w", key, storage.ErrConflict)
	}
	t.root = insert(t.root, key, clone(val), maphash.String(t.seed, key))
	return nil
}

func (t *txn) Delete(key string) error {
	t.root, _ = remove(t.root, key)
	return nil
}

// clone copies v; unlike bytes.Clone it returns a non-nil slice for a nil
// or empty v, so a stored empty value reads back as empty, not as absent.
func clone(v []byte) []byte {
	c := make([]byte, len(v))
	copy(c, v)
	return c
}
