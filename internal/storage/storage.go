// Package storage defines keyferry's storage port: the key-value interface
// every backend implements (bolt on one node, memory in tests, etcd for
// several brokers), the sentinel errors callers branch on, the helpers
// callers use on top of it, and the URL scheme that picks a backend
// (ParseURL; package storage/backend opens what it names). The contract
// below is enforced by the conformance suite in storage/storagetest, which
// every backend runs.
//
// # Shape
//
// The port is shaped like etcd's key-value API, the strictest backend it
// must fit, not like an embedded database's transactions:
//
//   - Get reads one key with its revision.
//   - List reads one page of a key range: a prefix, optionally cut to the
//     keys strictly after one key and strictly before another (a time
//     range of a time-ordered index), at most Limit keys, with or without
//     values. Each page is a consistent snapshot; successive pages are
//     not one snapshot, so a caller paging through a range may see writes
//     made meanwhile.
//   - Commit applies a set of writes (puts and deletes, to any keys) all
//     at once or not at all, and only if every condition holds: a key is
//     absent, or a key is unchanged since it was read. That is the one
//     multi-key primitive: it is what lets a lease and its index entries
//     change together, and what Create, Update and Delete are built on.
//
// There are no read-write transactions: nothing can read inside a write.
// A caller reads, decides, and commits on the condition that what it read
// has not changed (optimistic concurrency); Update runs that loop.
//
// # What callers may rely on
//
//   - A Commit that returns nil is durable and visible to every later Get
//     and List of this process and, for a shared backend, of every broker.
//   - A Commit that returns an error wrapping ErrConflict wrote nothing.
//     One that returns any other error may or may not have been applied
//     (a network backend can lose the answer): callers that must know read
//     again.
//   - A Commit holds at most MaxCommitOps operations and MaxCommitOps
//     conditions, and names each key at most once among its operations.
//   - Keys are byte-ordered: List returns keys in ascending byte order.
//
// Keys are slash-separated strings ("roles/deploy", "leases/01J…"); values
// are opaque bytes, usually JSON.
package storage

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors. Backends wrap them with context; callers use errors.Is.
var (
	// ErrNotFound is returned by Get for a missing key, and by Update when
	// its function says a missing key is an error.
	ErrNotFound = errors.New("storage: not found")
	// ErrConflict is returned by Commit when a condition does not hold,
	// and by Create when the key already exists. Nothing was written.
	ErrConflict = errors.New("storage: conflict")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("storage: closed")
)

// Limits every backend must accept, and callers must stay within.
const (
	MaxKeyLen   = 512
	MaxValueLen = 1 << 20
	// MaxCommitOps bounds the operations, and separately the conditions,
	// of one Commit. It is etcd's default --max-txn-ops.
	MaxCommitOps = 128
	// MaxListLimit is the largest page List returns; a Range with a
	// Limit of 0 (or more) gets pages of this size.
	MaxListLimit = 1000
)

// Store is what a storage backend implements. It is safe for concurrent
// use. Callers mostly use it through the package's functions (Create,
// Update, Delete, Scan), which build on these four methods.
type Store interface {
	// Get returns the value and revision of key, or an error wrapping
	// ErrNotFound. The value belongs to the caller.
	Get(ctx context.Context, key string) (KV, error)
	// List returns one page of r, in ascending key order.
	List(ctx context.Context, r Range) (Page, error)
	// Commit checks every condition and, if all hold, applies every
	// operation, atomically and durably. If a condition does not hold it
	// writes nothing and returns an error wrapping ErrConflict. It must
	// not commit once ctx is done.
	Commit(ctx context.Context, conds []Cond, ops []Op) error
	// Close releases the store. Every later call returns ErrClosed.
	Close() error
}

// KV is a key as read: its value and its revision.
type KV struct {
	Key   string
	Value []byte
	// Rev is the backend's revision of the value (etcd's mod revision),
	// or 0 where the backend compares values instead (bolt, memory). It
	// means nothing to callers except through Unchanged.
	Rev int64
}

// Range selects keys for List: every key that starts with Prefix, sorts
// strictly after After (when set) and strictly before Before (when set).
// After and Before need not exist; they are bounds, not keys to find.
type Range struct {
	Prefix string
	// After continues a listing: pass the last key of the previous page.
	After string
	// Before ends the range: with time-ordered keys, the first time not
	// wanted (see lease's expiry index).
	Before string
	// Limit caps the page (1..MaxListLimit; 0 or more means MaxListLimit).
	Limit int
	// KeysOnly leaves values out (index scans).
	KeysOnly bool
}

// Page is one page of a List.
type Page struct {
	KVs []KV
	// More reports that the range holds keys after the last one returned:
	// list again with After set to it.
	More bool
}

// PageLimit returns the page size List uses for r.
func (r Range) PageLimit() int {
	if r.Limit <= 0 || r.Limit > MaxListLimit {
		return MaxListLimit
	}
	return r.Limit
}

// Cond is a condition of a Commit. Build it with Absent or Unchanged.
type Cond struct {
	Key string
	// Absent: the key must not exist. Otherwise the key must exist and
	// still be as read (kv).
	Absent bool
	kv     KV
}

// Absent is a condition that key does not exist.
func Absent(key string) Cond { return Cond{Key: key, Absent: true} }

// Unchanged is a condition that kv.Key still holds what was read as kv. A
// backend with revisions (etcd) compares kv.Rev with the key's current
// revision; one without (bolt, memory) compares kv.Value with the key's
// current value. Either way the condition holds for a caller that decided
// on kv's bytes exactly when those are still the key's bytes; an
// intervening write of identical bytes may or may not break it. kv must
// come from Get or from a List with values, and its Value must not be
// modified.
func Unchanged(kv KV) Cond { return Cond{Key: kv.Key, kv: kv} }

// Read returns what an Unchanged condition was built from.
func (c Cond) Read() KV { return c.kv }

// Op is one write of a Commit. Build it with Put or Del.
type Op struct {
	Key   string
	Value []byte
	// Delete removes the key (deleting a missing key is not an error);
	// otherwise the key is set to Value.
	Delete bool
}

// Put sets key to val.
func Put(key string, val []byte) Op { return Op{Key: key, Value: val} }

// Del deletes key.
func Del(key string) Op { return Op{Key: key, Delete: true} }

// CheckPut reports whether key and val may be written: the key must be
// non-empty and at most MaxKeyLen bytes, the value at most MaxValueLen
// bytes (empty is fine).
func CheckPut(key string, val []byte) error {
	switch {
	case key == "":
		return errors.New("storage: empty key")
	case len(key) > MaxKeyLen:
		return fmt.Errorf("storage: key of %d bytes exceeds the limit of %d", len(key), MaxKeyLen)
	case len(val) > MaxValueLen:
		return fmt.Errorf("storage: value of %d bytes exceeds the limit of %d", len(val), MaxValueLen)
	}
	return nil
}

// CheckCommit reports whether a Commit of conds and ops is within the
// contract: at most MaxCommitOps of each, valid keys and values, and no key
// written twice. Backends call it first, so that every backend refuses
// the same commits with the same message.
func CheckCommit(conds []Cond, ops []Op) error {
	if len(ops) > MaxCommitOps {
		return fmt.Errorf("storage: %d operations in one commit exceed the limit of %d", len(ops), MaxCommitOps)
	}
	if len(conds) > MaxCommitOps {
		return fmt.Errorf("storage: %d conditions in one commit exceed the limit of %d", len(conds), MaxCommitOps)
	}
	for _, c := range conds {
		if err := CheckPut(c.Key, nil); err != nil {
			return err
		}
	}
	seen := make(map[string]struct{}, len(ops))
	for _, op := range ops {
		if err := CheckPut(op.Key, op.Value); err != nil {
			return err
		}
		if _, dup := seen[op.Key]; dup {
			return fmt.Errorf("storage: key %q written twice in one commit", op.Key)
		}
		seen[op.Key] = struct{}{}
	}
	return nil
}
