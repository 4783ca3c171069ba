// Package storage defines keyferry's storage port: a small transactional
// key-value interface that every backend (bolt, etcd, memory) implements,
// the sentinel errors callers branch on, and the URL scheme that picks a
// backend (ParseURL; package storage/backend opens what it names). The
// contract below is enforced by the conformance suite in
// storage/storagetest, which every backend runs.
//
// Keys are slash-separated strings ("roles/deploy", "leases/01J…"); values
// are opaque bytes, usually JSON. Backends keep keys in byte order so a
// prefix scan returns keys sorted.
package storage

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors. Backends wrap them with context; callers use errors.Is.
var (
	// ErrNotFound is returned by Get for a missing key.
	ErrNotFound = errors.New("storage: not found")
	// ErrConflict is returned by Txn.Create when the key already exists,
	// and may be returned by callers' update functions to abort.
	ErrConflict = errors.New("storage: conflict")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("storage: closed")
)

// MaxKeyLen and MaxValueLen bound what a backend must accept.
const (
	MaxKeyLen   = 512
	MaxValueLen = 1 << 20
)

// Store is a transactional, ordered key-value store.
//
// Update runs fn in a read-write transaction. Either every write fn made is
// committed and durable when Update returns nil, or none is. fn may be
// called more than once (backends batch concurrent transactions into one
// commit and retry on contention), so it must have no side effects outside
// the transaction. If fn returns an error, nothing is written and Update
// returns that error unchanged (wrapped errors keep errors.Is working).
//
// View runs fn in a read-only, consistent snapshot.
type Store interface {
	Update(ctx context.Context, fn func(tx Txn) error) error
	View(ctx context.Context, fn func(tx ReadTxn) error) error
	Close() error
}

// ReadTxn reads within a transaction.
type ReadTxn interface {
	// Get returns the value of key, or an error wrapping ErrNotFound. The
	// returned slice is owned by the caller.
	Get(key string) ([]byte, error)
	// Scan calls fn for each key with the given prefix that sorts strictly
	// after `after` (all keys with the prefix when after is ""), in
	// ascending byte order, until fn returns false or an error. Values
	// passed to fn are only valid during the call.
	//
	// Inside Update, fn may write through the transaction (an expiry
	// sweep deletes as it scans): deleting or replacing the current key
	// is safe. Whether a key written ahead of the scan position is then
	// visited is unspecified.
	Scan(prefix, after string, fn func(key string, val []byte) (more bool, err error)) error
}

// Txn reads and writes within a read-write transaction.
type Txn interface {
	ReadTxn
	// Put sets key to val, creating or replacing it.
	Put(key string, val []byte) error
	// Create sets key to val only if key does not exist; otherwise it
	// returns an error wrapping ErrConflict.
	Create(key string, val []byte) error
	// Delete removes key. Deleting a missing key is not an error.
	Delete(key string) error
}

// Get is a convenience wrapper: a View that reads one key.
func Get(ctx context.Context, s Store, key string) ([]byte, error) {
	var out []byte
	err := s.View(ctx, func(tx ReadTxn) error {
		v, err := tx.Get(key)
		out = v
		return err
	})
	return out, err
}

// CheckPut reports whether key and val may be written: the key must be
// non-empty and at most MaxKeyLen bytes, the value at most MaxValueLen
// bytes (empty is fine). Backends call it from Put and Create so that every
// backend rejects the same writes with the same message.
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
