// Package bolt is the embedded, single-node storage.Store on
// go.etcd.io/bbolt: one file, one bucket, keys in byte order.
//
// # Group commit
//
// A durable bbolt commit costs two fdatasyncs (pages, then meta), and
// there is one writer at a time, so committing each Commit on its own
// queues every writer behind everyone else's fsyncs (64 writers: about
// 4k txn/s at 16 ms p50, against 35k txn/s at 1.7 ms batched; see
// bench_test.go). Commit therefore goes through bbolt's DB.Batch:
// commits that arrive together run one after another inside one bbolt
// transaction and share its fsyncs.
//
// bbolt closes a batch when its MaxBatchDelay timer fires, whether or not
// the previous commit has finished. Left alone, commits that arrive during
// a slow one form a chain of small batches that queue for the writer lock
// and pay a full commit each, so a backlog (after a disk stall, say)
// drains no faster than it builds. Commit therefore waits at a gate while
// a batch is committing; when the commit ends, everything that arrived
// meanwhile enters DB.Batch at once and shares the next commit (up to
// MaxBatchSize). Batches grow with the load instead of with the timer,
// and MaxBatchDelay only decides how long a Commit that finds the store
// idle waits for company. The gate only delays entry into DB.Batch; it
// plays no part in correctness.
//
// A Commit whose condition fails writes nothing and lets the rest of its
// batch commit. Only an error from bbolt itself (or a caller's context
// ending mid-batch) makes bbolt roll the shared transaction back, re-run
// the batch without that commit, and run it alone.
//
// # Other properties
//
// Conditions compare values (storage.Unchanged holds while the key's
// bytes are those that were read): bbolt keeps no revisions, and one
// writer at a time makes the comparison exact. Get and List are bbolt
// read transactions: MVCC snapshots that neither block nor are blocked by
// writers. Values handed out are copies.
// The file is created with mode 0600 (its directory 0700) and is locked
// against other processes; Open fails fast with a clear error when another
// process holds it.
package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/keyferry/keyferry/internal/storage"
)

var _ storage.Store = (*Store)(nil)

// Defaults for Options; see Options for what each does.
const (
	// DefaultMaxBatchDelay is how long a Commit that finds no commit
	// running waits for others to join it. Under load the commit gate
	// sizes batches, so this mostly sets the latency floor of an idle
	// store. Measured with 64 closed-loop writers on a 2-core VM
	// (bench_test.go): 250 µs to 1 ms were within noise of each other,
	// about 30-38k txn/s with p99 2-10 ms; 2 ms cost a third of the
	// throughput and 5 ms two thirds. 1 ms is the top of that plateau:
	// a burst of callers woken together (64 goroutines on 2 cores take
	// a few hundred microseconds to get back in) still lands in one
	// batch, and an idle write waits at most 1 ms extra.
	DefaultMaxBatchDelay = time.Millisecond
	// DefaultMaxBatchSize bounds one batch. When a batch fails, bbolt
	// re-runs every fn in it, so a bound keeps a burst of conflicting
	// Creates from costing a quadratic number of fn calls. 256 is four
	// times the concurrency we size for (64 writers).
	DefaultMaxBatchSize = 256
	// DefaultLockTimeout is how long Open waits for another process to
	// release the file: long enough to ride out a restart that overlaps
	// the old process's shutdown, short enough to fail visibly.
	DefaultLockTimeout = time.Second
)

// bucket is the one bbolt bucket keyferry's keys live in.
var bucket = []byte("keyferry")

// ErrInUse is wrapped by the error Open returns when another process holds
// the database file's lock.
var ErrInUse = errors.New("in use by another process")

// Options tune a Store. The zero value means the defaults above.
type Options struct {
	// MaxBatchDelay is how long a Commit that finds no commit running
	// waits for others to share its commit. Zero means
	// DefaultMaxBatchDelay.
	MaxBatchDelay time.Duration
	// MaxBatchSize commits a batch as soon as it holds this many
	// transactions, without waiting for MaxBatchDelay. Zero means
	// DefaultMaxBatchSize; 1 commits every Commit on its own.
	MaxBatchSize int
	// LockTimeout is how long Open waits for the file lock. Zero means
	// DefaultLockTimeout.
	LockTimeout time.Duration
	// NoSync skips fdatasync on commit: a crash or power loss can lose
	// committed transactions or corrupt the file. For tests and
	// benchmarks only; production MUST NOT set it.
	NoSync bool
}

// Store is a storage.Store backed by a bbolt file.
type Store struct {
	db     *bbolt.DB
	closed atomic.Bool
	gate   commitGate
}

// Open opens or creates the database file at path. A missing parent
// directory is created with mode 0700, a missing file with mode 0600; the
// modes of existing ones are left alone.
func Open(path string, opts Options) (*Store, error) {
	if opts.MaxBatchDelay <= 0 {
		opts.MaxBatchDelay = DefaultMaxBatchDelay
	}
	if opts.MaxBatchSize <= 0 {
		opts.MaxBatchSize = DefaultMaxBatchSize
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("bolt: create directory for %s: %w", path, err)
	}
	bopts := &bbolt.Options{
		Timeout: opts.LockTimeout,
		NoSync:  opts.NoSync,
		// Like etcd: the hashmap freelist stays fast when the file is
		// fragmented.
		FreelistType: bbolt.FreelistMapType,
		// Unlike etcd, the freelist is written with every commit. Without
		// it, Open rebuilds the freelist by walking and checking every
		// page of the file, so start-up time and resident memory grew
		// with the number of leases: with a million, tens of seconds and
		// gigabytes of the file mapped in ("Lease scale" in
		// docs/benchmarks.md). keyferry does not delete leases in bulk,
		// so the freelist stays small and writing it costs about one page
		// per commit. The first Open of a file written without it pays
		// the walk once and writes it.
		NoFreelistSync: false,
	}
	// A writer that outgrows the mmap must wait for every open read
	// transaction before it can remap, so a long read would stall all
	// commits. Reserving address space up front avoids that until the
	// file reaches this size; on Unix it costs no disk or memory. (On
	// Windows bbolt would grow the file to this size, so skip it there.)
	if runtime.GOOS != "windows" {
		bopts.InitialMmapSize = 1 << 30
	}
	db, err := bbolt.Open(path, 0o600, bopts)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt: database %s is %w (lock not released within %v)", path, ErrInUse, opts.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	db.MaxBatchDelay = opts.MaxBatchDelay
	db.MaxBatchSize = opts.MaxBatchSize
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt: create bucket in %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Get reads key in a bbolt read transaction.
func (s *Store) Get(ctx context.Context, key string) (storage.KV, error) {
	if err := s.usable(ctx); err != nil {
		return storage.KV{}, fmt.Errorf("bolt: get: %w", err)
	}
	var out storage.KV
	err := s.db.View(func(btx *bbolt.Tx) error {
		v := btx.Bucket(bucket).Get([]byte(key))
		if v == nil {
			return fmt.Errorf("bolt: get %q: %w", key, storage.ErrNotFound)
		}
		// bbolt's slice points into the read-only mmap and dies with the
		// transaction: hand out a copy (non-nil, even for an empty value).
		out = storage.KV{Key: key, Value: append(make([]byte, 0, len(v)), v...)}
		return nil
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return storage.KV{}, fmt.Errorf("bolt: get: %w", closedErr(err))
	}
	return out, err
}

// List reads one page of r in a bbolt read transaction: an MVCC snapshot
// that neither blocks nor is blocked by writers.
func (s *Store) List(ctx context.Context, r storage.Range) (storage.Page, error) {
	if err := s.usable(ctx); err != nil {
		return storage.Page{}, fmt.Errorf("bolt: list: %w", err)
	}
	limit := r.PageLimit()
	var page storage.Page
	err := s.db.View(func(btx *bbolt.Tx) error {
		c := btx.Bucket(bucket).Cursor()
		p := []byte(r.Prefix)
		var k, v []byte
		if r.After >= r.Prefix {
			k, v = c.Seek([]byte(r.After))
			if k != nil && string(k) == r.After {
				k, v = c.Next()
			}
		} else {
			k, v = c.Seek(p)
		}
		for ; k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if r.Before != "" && string(k) >= r.Before {
				break
			}
			if len(page.KVs) == limit {
				page.More = true
				break
			}
			kv := storage.KV{Key: string(k)}
			if !r.KeysOnly {
				kv.Value = append(make([]byte, 0, len(v)), v...)
			}
			page.KVs = append(page.KVs, kv)
		}
		return nil
	})
	if err != nil {
		return storage.Page{}, fmt.Errorf("bolt: list: %w", closedErr(err))
	}
	return page, nil
}

// Commit checks conds and applies ops in a batched read-write
// transaction; see the package documentation for how batching works.
func (s *Store) Commit(ctx context.Context, conds []storage.Cond, ops []storage.Op) error {
	c, err := s.prepare(ctx, conds, ops)
	if err != nil {
		return err
	}
	if err := s.gate.wait(ctx); err != nil {
		return fmt.Errorf("bolt: commit: %w", err)
	}
	var ran *bbolt.Tx // the last transaction the commit ran in
	defer func() { s.gate.open(ran) }()
	return c.result(s.db.Batch(func(btx *bbolt.Tx) error {
		ran = btx
		s.gate.shut(btx)
		return c.apply(btx)
	}))
}

// commit is one Commit's work, ready to run in a batch.
type commit struct {
	ctx   context.Context
	conds []storage.Cond
	ops   []storage.Op
	vals  [][]byte // copies of the put values
	// failed is the condition that did not hold in the last run, if any.
	failed error
}

// prepare checks a commit against the contract and copies its values:
// bbolt keeps a reference to a value until its transaction commits, and
// the caller may reuse its slices before then. It runs before the writer
// lock is taken.
func (s *Store) prepare(ctx context.Context, conds []storage.Cond, ops []storage.Op) (*commit, error) {
	if err := storage.CheckCommit(conds, ops); err != nil {
		return nil, fmt.Errorf("bolt: commit: %w", err)
	}
	if err := s.usable(ctx); err != nil {
		return nil, fmt.Errorf("bolt: commit: %w", err)
	}
	c := &commit{ctx: ctx, conds: conds, ops: ops, vals: make([][]byte, len(ops))}
	for i, op := range ops {
		if !op.Delete {
			c.vals[i] = append(make([]byte, 0, len(op.Value)), op.Value...)
		}
	}
	return c, nil
}

// apply runs the commit in btx. It runs again on every re-run of its
// batch, so it only reads btx and the commit, and sets c.failed afresh.
//
// A condition that does not hold is not an error to bbolt: apply writes
// nothing and returns nil, so the batch commits the others' writes
// without re-running, and result reports the conflict. (An error would
// make bbolt roll back and re-run the whole batch, then run this commit
// alone: under contention, a conflict per batch doubled its cost.)
func (c *commit) apply(btx *bbolt.Tx) error {
	c.failed = nil
	// Checked on every run: a caller that gave up while queued for a
	// batch gets no write.
	if err := c.ctx.Err(); err != nil {
		return err
	}
	b := btx.Bucket(bucket)
	for _, cond := range c.conds {
		v := b.Get([]byte(cond.Key))
		switch {
		case cond.Absent && v != nil:
			c.failed = fmt.Errorf("bolt: commit: %q exists: %w", cond.Key, storage.ErrConflict)
			return nil
		case !cond.Absent && (v == nil || !bytes.Equal(v, cond.Read().Value)):
			c.failed = fmt.Errorf("bolt: commit: %q changed: %w", cond.Key, storage.ErrConflict)
			return nil
		}
	}
	for i, op := range c.ops {
		var err error
		if op.Delete {
			err = b.Delete([]byte(op.Key))
		} else {
			err = b.Put([]byte(op.Key), c.vals[i])
		}
		if err != nil {
			return fmt.Errorf("bolt: commit %q: %w", op.Key, err)
		}
	}
	return nil
}

// result turns what bbolt's Batch returned into Commit's error.
func (c *commit) result(err error) error {
	if err != nil {
		return fmt.Errorf("bolt: commit: %w", closedErr(err))
	}
	return c.failed
}

// Close waits for running transactions and closes the file. Commits still
// waiting for their batch then fail with storage.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return fmt.Errorf("bolt: close: %w", storage.ErrClosed)
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("bolt: close: %w", err)
	}
	return nil
}

func (s *Store) usable(ctx context.Context) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	return ctx.Err()
}

// closedErr maps bbolt's "database not open", which a transaction racing
// Close gets, to storage.ErrClosed.
func closedErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return storage.ErrClosed
	}
	return err
}

// commitGate holds commits back while a batch commits; see "Group commit"
// in the package documentation. A transaction shuts the gate when the
// first fn runs in it, which is when its batch has the writer lock; the
// first of its callers to return opens it again. A later transaction that
// shuts the gate before then takes over the duty to open it. Mistakes
// here would cost throughput, never correctness: the gate only delays
// callers before DB.Batch.
type commitGate struct {
	mu      sync.Mutex
	tx      *bbolt.Tx     // the latest transaction that shut the gate
	done    chan struct{} // non-nil while shut; closed to open
	waiting int           // callers in wait, for tests
}

// wait returns when the gate is open or ctx is done.
func (g *commitGate) wait(ctx context.Context) error {
	g.mu.Lock()
	done := g.done
	if done == nil {
		g.mu.Unlock()
		return nil
	}
	g.waiting++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.waiting--
		g.mu.Unlock()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// shut closes the gate on behalf of tx, which is about to commit.
func (g *commitGate) shut(tx *bbolt.Tx) {
	g.mu.Lock()
	if g.done == nil {
		g.done = make(chan struct{})
	}
	g.tx = tx
	g.mu.Unlock()
}

// open opens the gate if tx, a finished transaction, was the last to shut
// it. A nil tx (fn never ran) does nothing.
func (g *commitGate) open(tx *bbolt.Tx) {
	g.mu.Lock()
	if tx != nil && g.tx == tx {
		close(g.done)
		g.done, g.tx = nil, nil
	}
	g.mu.Unlock()
}
