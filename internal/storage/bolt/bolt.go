// Package bolt is the embedded, single-node storage.Store on
// go.etcd.io/bbolt: one file, one bucket, keys in byte order.
//
// # Group commit
//
// A durable bbolt commit costs two fdatasyncs (pages, then meta), about
// 2 ms each on a typical cloud disk, so committing each Update on its own
// caps a server at a few hundred writes per second however many cores it
// has. Update therefore goes through bbolt's DB.Batch: transactions that
// arrive within Options.MaxBatchDelay of each other run one after another
// inside one bbolt transaction and share its commit. What that means for
// fn:
//
//   - fn may run more than once. When fn returns an error inside a batch,
//     bbolt rolls the shared transaction back, re-runs the batch without
//     it, and then re-runs fn alone in its own transaction; the error of
//     that solo run is what Update returns, unchanged, and a failing solo
//     run writes nothing. So an error aborts only its own caller's writes.
//   - A panic in fn is treated the same way and finally re-raised in the
//     caller's goroutine, with the solo transaction rolled back.
//   - fn runs on bbolt's batch goroutine, not the caller's.
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
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/keyferry/keyferry/internal/storage"
)

var _ storage.Store = (*Store)(nil)

// Defaults for Options; see Options for what each does.
const (
	// DefaultMaxBatchDelay is how long the first transaction of a batch
	// waits for company. It is close to one fdatasync on the disks we run
	// on (~2 ms): a shorter delay closes batches faster than the disk can
	// commit them, so under steady load they queue up half-empty and each
	// pays a full commit; a longer one adds latency without adding
	// throughput. docs in bench_test.go record the measurements.
	DefaultMaxBatchDelay = 2 * time.Millisecond
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
	// MaxBatchDelay is the longest an Update waits for others to share
	// its commit. Zero means DefaultMaxBatchDelay.
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
		// fragmented, and not writing the freelist saves a page write
		// per commit (it is rebuilt by a scan at Open instead).
		FreelistType:   bbolt.FreelistMapType,
		NoFreelistSync: true,
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
	err := s.db.Batch(func(btx *bbolt.Tx) error {
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
