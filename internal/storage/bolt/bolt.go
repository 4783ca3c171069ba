// Package bolt is the embedded, single-node storage.Store on
// go.etcd.io/bbolt: one file, one bucket, keys in byte order.
//
// # Group commit
//
// A durable bbolt commit costs two fdatasyncs (pages, then meta), and
// there is one writer at a time, so committing each Update on its own
// queues every writer behind everyone else's fsyncs (64 writers: about
// 4k txn/s at 16 ms p50, against 35k txn/s at 1.7 ms batched; see
// bench_test.go). Update therefore goes through bbolt's DB.Batch:
// transactions that arrive together run one after another inside one
// bbolt transaction and share its commit.
//
// bbolt closes a batch when its MaxBatchDelay timer fires, whether or not
// the previous commit has finished. Left alone, Updates that arrive during
// a slow commit form a chain of small batches that queue for the writer
// lock and pay a full commit each, so a backlog (after a disk stall, say)
// drains no faster than it builds. Update therefore waits at a gate while
// a batch is committing; when the commit ends, everything that arrived
// meanwhile enters DB.Batch at once and shares the next commit (up to
// MaxBatchSize). Batches grow with the load instead of with the timer,
// and MaxBatchDelay only decides how long an Update that finds the store
// idle waits for company. The gate only delays entry into DB.Batch; it
// plays no part in correctness.
//
// What batching means for fn:
//
//   - fn may run more than once. When fn returns an error inside a batch,
//     bbolt rolls the shared transaction back, re-runs the batch without
//     it, and then re-runs fn alone in its own transaction; the error of
//     that solo run is what Update returns, unchanged, and a failing solo
//     run writes nothing. So an error aborts only its own caller's writes.
//   - A panic in fn is treated the same way and finally re-raised in the
//     caller's goroutine, with the solo transaction rolled back.
//   - fn runs on bbolt's batch goroutine, not the caller's.
//   - fn must not call Update itself: bbolt has one writer at a time, so
//     that deadlocks.
//
// # Other properties
//
// View is a bbolt read transaction: an MVCC snapshot that neither blocks nor
// is blocked by writers. Values returned by Get are copies. Scan tolerates
// writes made from its own callback (an expiry sweep deletes as it goes).
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
	// DefaultMaxBatchDelay is how long an Update that finds no commit
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
	// MaxBatchDelay is how long an Update that finds no commit running
	// waits for others to share its commit. Zero means
	// DefaultMaxBatchDelay.
	MaxBatchDelay time.Duration
	// MaxBatchSize commits a batch as soon as it holds this many
	// transactions, without waiting for MaxBatchDelay. Zero means
	// DefaultMaxBatchSize; 1 commits every Update on its own.
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
	noGate bool // tests only: measure bbolt's batching without the gate
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
	// transaction before it can remap, so a long View would stall all
	// Updates. Reserving address space up front avoids that until the
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

// Update runs fn in a batched read-write transaction; see the package
// documentation for how batching affects fn.
func (s *Store) Update(ctx context.Context, fn func(tx storage.Txn) error) error {
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("bolt: update: %w", err)
	}
	if !s.noGate {
		if err := s.gate.wait(ctx); err != nil {
			return fmt.Errorf("bolt: update: %w", err)
		}
	}
	var ran *bbolt.Tx // the last transaction fn ran in
	defer func() { s.gate.open(ran) }()
	err := s.db.Batch(func(btx *bbolt.Tx) error {
		ran = btx
		s.gate.shut(btx)
		// Checked on every run: a caller that gave up while queued for a
		// batch, or while fn ran, gets no write.
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(&txn{readTxn{b: btx.Bucket(bucket)}}); err != nil {
			return &fnError{err}
		}
		return ctx.Err()
	})
	if fe, ok := err.(*fnError); ok {
		return fe.err // unchanged, as the contract promises
	}
	if err != nil {
		return fmt.Errorf("bolt: update: %w", closedErr(err))
	}
	return nil
}

// View runs fn in a read-only snapshot.
func (s *Store) View(ctx context.Context, fn func(tx storage.ReadTxn) error) error {
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("bolt: view: %w", err)
	}
	err := s.db.View(func(btx *bbolt.Tx) error {
		if err := fn(&readTxn{b: btx.Bucket(bucket)}); err != nil {
			return &fnError{err}
		}
		return nil
	})
	if fe, ok := err.(*fnError); ok {
		return fe.err
	}
	if err != nil {
		return fmt.Errorf("bolt: view: %w", closedErr(err))
	}
	return nil
}

// Close waits for running transactions and closes the file. Updates still
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

// fnError marks an error as fn's own on its way through bbolt, which
// returns it as is, so Update can hand it back unchanged and wrap only
// bbolt's own errors. (Comparing errors with == instead would panic on an
// error type that is not comparable.)
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// closedErr maps bbolt's "database not open", which a transaction racing
// Close gets, to storage.ErrClosed.
func closedErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return storage.ErrClosed
	}
	return err
}

type readTxn struct {
	b *bbolt.Bucket
	// writes counts writes made through the enclosing txn, so Scan can
	// tell when its callback changed the bucket under the cursor.
	writes int
}

func (t *readTxn) Get(key string) ([]byte, error) {
	k, v := t.b.Cursor().Seek([]byte(key))
	if k == nil || string(k) != key {
		return nil, fmt.Errorf("bolt: get %q: %w", key, storage.ErrNotFound)
	}
	// bbolt's slice points into the read-only mmap (or the transaction's
	// dirty pages) and dies with the transaction: hand out a copy. v may
	// be nil for an empty value; the copy is non-nil either way.
	out := make([]byte, len(v))
	copy(out, v)
	return out, nil
}

func (t *readTxn) Scan(prefix, after string, fn func(key string, val []byte) (bool, error)) error {
	p := []byte(prefix)
	start := p
	if after >= prefix {
		start = []byte(after)
	}
	c := t.b.Cursor()
	k, v := c.Seek(start)
	if after >= prefix && k != nil && string(k) == after {
		k, v = c.Next()
	}
	for k != nil && bytes.HasPrefix(k, p) {
		key := string(k)
		writes := t.writes
		more, err := fn(key, v)
		if err != nil || !more {
			return err
		}
		if t.writes == writes {
			k, v = c.Next()
			continue
		}
		// fn wrote to the bucket, which may have rebalanced the nodes
		// under the cursor: find our place again from the last key.
		if k, v = c.Seek([]byte(key)); k != nil && string(k) == key {
			k, v = c.Next()
		}
	}
	return nil
}

type txn struct {
	readTxn
}

func (t *txn) Put(key string, val []byte) error {
	if err := storage.CheckPut(key, val); err != nil {
		return fmt.Errorf("bolt: put: %w", err)
	}
	return t.put(key, val)
}

func (t *txn) Create(key string, val []byte) error {
	if err := storage.CheckPut(key, val); err != nil {
		return fmt.Errorf("bolt: create: %w", err)
	}
	if k, _ := t.b.Cursor().Seek([]byte(key)); k != nil && string(k) == key {
		return fmt.Errorf("bolt: create %q: %w", key, storage.ErrConflict)
	}
	return t.put(key, val)
}

func (t *txn) put(key string, val []byte) error {
	// bbolt keeps a reference to val until commit, and fn may reuse its
	// slice before then: store a copy.
	v := make([]byte, len(val))
	copy(v, val)
	t.writes++
	if err := t.b.Put([]byte(key), v); err != nil {
		return fmt.Errorf("bolt: put %q: %w", key, err)
	}
	return nil
}

func (t *txn) Delete(key string) error {
	t.writes++
	if err := t.b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("bolt: delete %q: %w", key, err)
	}
	return nil
}

// commitGate holds Updates back while a batch commits; see "Group commit"
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
