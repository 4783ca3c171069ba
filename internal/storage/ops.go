package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Create writes key only if it does not exist; otherwise it returns an
// error wrapping ErrConflict.
func Create(ctx context.Context, s Store, key string, val []byte) error {
	if err := s.Commit(ctx, []Cond{Absent(key)}, []Op{Put(key, val)}); err != nil {
		return fmt.Errorf("storage: create %q: %w", key, err)
	}
	return nil
}

// Delete removes key, unconditionally; deleting a missing key is not an
// error.
func Delete(ctx context.Context, s Store, key string) error {
	return s.Commit(ctx, nil, []Op{Del(key)})
}

// UpdateFunc decides the writes of an Update from key as read: cur is nil
// when the key does not exist. It returns the operations to commit, which
// may write any keys (the read key among them: a record and its index
// entries change together), or none to write nothing. It may be called
// several times, once per attempt, so it must have no other effects. An
// error it returns ends the Update and is returned unchanged.
type UpdateFunc func(cur *KV) ([]Op, error)

// maxUpdateAttempts bounds Update's retries on conflict. Conflicts need a
// concurrent write to the same key between a read and a commit; hitting
// the bound means a hot key, reported as ErrConflict.
const maxUpdateAttempts = 100

// conflictBackoff is the longest pause before an Update tries again after
// a conflict. Without a pause the writer that just won would tend to win
// again (it reads first), starving the others of a hot key; a random
// pause up to a bound that grows with the attempt count spreads them out.
const conflictBackoff = 20 * time.Millisecond

// Update is a compare-and-swap: it reads key, calls fn, and commits fn's
// operations on the condition that key is still as read (or still absent).
// When another writer changed key in between, it reads again and calls fn
// again.
func Update(ctx context.Context, s Store, key string, fn UpdateFunc) error {
	for attempt := range maxUpdateAttempts {
		var cur *KV
		kv, err := s.Get(ctx, key)
		switch {
		case err == nil:
			cur = &kv
		case !errors.Is(err, ErrNotFound):
			return err
		}
		ops, err := fn(cur)
		if err != nil {
			return err
		}
		if len(ops) == 0 {
			return nil
		}
		cond := Absent(key)
		if cur != nil {
			cond = Unchanged(*cur)
		}
		err = s.Commit(ctx, []Cond{cond}, ops)
		if !errors.Is(err, ErrConflict) {
			return err
		}
		pause := time.Duration(rand.Int64N(int64(min(conflictBackoff, time.Duration(attempt+1)*time.Millisecond)) + 1))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
	return fmt.Errorf("storage: update %q: gave up after %d conflicting attempts: %w", key, maxUpdateAttempts, ErrConflict)
}

// Scan calls fn for every key of r, in ascending order, a page at a time,
// until fn returns false or an error (which Scan returns). Pages are read
// one after another, so fn may see writes made during the scan; fn may
// itself write through the store.
func Scan(ctx context.Context, s Store, r Range, fn func(kv KV) (more bool, err error)) error {
	for {
		page, err := s.List(ctx, r)
		if err != nil {
			return err
		}
		for _, kv := range page.KVs {
			more, err := fn(kv)
			if err != nil || !more {
				return err
			}
		}
		if !page.More || len(page.KVs) == 0 {
			return nil
		}
		r.After = page.KVs[len(page.KVs)-1].Key
	}
}
