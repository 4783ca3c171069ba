// Package storagetest is the conformance suite for storage.Store. Every
// backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store { return memory.New() })
//	}
//
// The suite checks the contract written in package storage's doc comments:
// not-found and conflict sentinels, atomic rollback when fn fails, prefix
// scans in byte order, read-your-writes, snapshot isolation of View, value
// isolation, size limits, cancellation, Close, panics, and atomicity under
// concurrency. It is black-box: it uses only the storage API, so a network
// backend (etcd) runs it unchanged against a real server.
//
// Notes for backend authors:
//   - fn may run more than once (batching, retries). The suite's fns are
//     deterministic functions of what they read, as the contract requires.
//   - View must be a snapshot. A backend that reads through to a live
//     server (etcd) must pin every read of one View to one revision, the
//     revision of its first read.
//   - Update must not commit after the caller's context is done, so a
//     network backend checks the context before it sends the commit.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyferry/keyferry/internal/storage"
)

// Run runs the conformance suite. newStore must return a new, empty store
// each time it is called; Run closes it when the test ends.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"GetMissing", testGetMissing},
		{"PutGet", testPutGet},
		{"PutReplaces", testPutReplaces},
		{"Create", testCreate},
		{"Delete", testDelete},
		{"FnErrorWritesNothing", testFnErrorWritesNothing},
		{"Scan", testScan},
		{"ScanStopsEarly", testScanStopsEarly},
		{"ScanError", testScanError},
		{"ScanWhileWriting", testScanWhileWriting},
		{"ReadYourWrites", testReadYourWrites},
		{"ViewIsSnapshot", testViewIsSnapshot},
		{"ValueIsolation", testValueIsolation},
		{"Limits", testLimits},
		{"CancelledContext", testCancelledContext},
		{"Closed", testClosed},
		{"Panic", testPanic},
		{"ConcurrentIncrements", testConcurrentIncrements},
		{"ConcurrentCreate", testConcurrentCreate},
		{"ConcurrentFailuresAreIsolated", testConcurrentFailuresAreIsolated},
		{"LargeTxn", testLargeTxn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
					t.Errorf("Close() = %v, want nil", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

var errTest = errors.New("storagetest: injected error")

func put(t *testing.T, s storage.Store, kv ...string) {
	t.Helper()
	if len(kv)%2 != 0 {
		t.Fatalf("put: odd number of arguments")
	}
	err := s.Update(t.Context(), func(tx storage.Txn) error {
		for i := 0; i < len(kv); i += 2 {
			if err := tx.Put(kv[i], []byte(kv[i+1])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update(put %q) = %v, want nil", kv, err)
	}
}

// wantValue fails the test unless key holds want.
func wantValue(t *testing.T, s storage.Store, key, want string) {
	t.Helper()
	got, err := storage.Get(t.Context(), s, key)
	if err != nil {
		t.Fatalf("Get(%q) error = %v, want value %q", key, err, want)
	}
	if string(got) != want {
		t.Errorf("Get(%q) = %q, want %q", key, got, want)
	}
}

// wantMissing fails the test unless key is absent.
func wantMissing(t *testing.T, s storage.Store, key string) {
	t.Helper()
	got, err := storage.Get(t.Context(), s, key)
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get(%q) = %q, %v; want ErrNotFound", key, got, err)
	}
}

// keys returns every key with prefix, in scan order.
func keys(t *testing.T, s storage.Store, prefix string) []string {
	t.Helper()
	var out []string
	err := s.View(t.Context(), func(tx storage.ReadTxn) error {
		return tx.Scan(prefix, "", func(k string, _ []byte) (bool, error) {
			out = append(out, k)
			return true, nil
		})
	})
	if err != nil {
		t.Fatalf("Scan(%q) = %v, want nil", prefix, err)
	}
	return out
}

func testGetMissing(t *testing.T, s storage.Store) {
	wantMissing(t, s, "nope")
	err := s.Update(t.Context(), func(tx storage.Txn) error {
		_, err := tx.Get("nope")
		return err
	})
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get in Update = %v, want ErrNotFound", err)
	}
}

func testPutGet(t *testing.T, s storage.Store) {
	tests := []struct {
		name string
		key  string
		val  []byte
	}{
		{"text", "roles/deploy", []byte(`{"name":"deploy"}`)},
		{"binary", "bin/\x00\xff", []byte{0, 1, 2, 0xff, 0}},
		{"empty value", "empty", []byte{}},
		{"nil value", "nil", nil},
		{"one byte key", "k", []byte("v")},
		{"max key", strings.Repeat("k", storage.MaxKeyLen), []byte("long key")},
		{"max value", "big", bytes.Repeat([]byte("v"), storage.MaxValueLen)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Update(t.Context(), func(tx storage.Txn) error { return tx.Put(tt.key, tt.val) })
			if err != nil {
				t.Fatalf("Put = %v, want nil", err)
			}
			got, err := storage.Get(t.Context(), s, tt.key)
			if err != nil {
				t.Fatalf("Get = %v, want nil", err)
			}
			if !bytes.Equal(got, tt.val) {
				t.Errorf("Get = %d bytes %.40q, want %d bytes %.40q", len(got), got, len(tt.val), tt.val)
			}
		})
	}
}

func testPutReplaces(t *testing.T, s storage.Store) {
	put(t, s, "k", "one")
	put(t, s, "k", "two")
	wantValue(t, s, "k", "two")
	if got, want := keys(t, s, ""), []string{"k"}; !cmp.Equal(got, want) {
		t.Errorf("keys = %q, want %q", got, want)
	}
}

func testCreate(t *testing.T, s storage.Store) {
	err := s.Update(t.Context(), func(tx storage.Txn) error { return tx.Create("k", []byte("first")) })
	if err != nil {
		t.Fatalf("Create(new key) = %v, want nil", err)
	}
	err = s.Update(t.Context(), func(tx storage.Txn) error { return tx.Create("k", []byte("second")) })
	if !errors.Is(err, storage.ErrConflict) {
		t.Errorf("Create(existing key) = %v, want ErrConflict", err)
	}
	wantValue(t, s, "k", "first")

	// An empty value still makes the key exist.
	put(t, s, "empty", "")
	err = s.Update(t.Context(), func(tx storage.Txn) error { return tx.Create("empty", []byte("x")) })
	if !errors.Is(err, storage.ErrConflict) {
		t.Errorf("Create(key with empty value) = %v, want ErrConflict", err)
	}

	// A conflict the caller handles does not spoil the transaction.
	err = s.Update(t.Context(), func(tx storage.Txn) error {
		if err := tx.Create("k", []byte("third")); !errors.Is(err, storage.ErrConflict) {
			return fmt.Errorf("Create(existing key) = %v, want ErrConflict", err)
		}
		return tx.Put("other", []byte("x"))
	})
	if err != nil {
		t.Fatalf("Update = %v, want nil", err)
	}
	wantValue(t, s, "k", "first")
	wantValue(t, s, "other", "x")
}

func testDelete(t *testing.T, s storage.Store) {
	put(t, s, "a", "1", "b", "2")
	err := s.Update(t.Context(), func(tx storage.Txn) error {
		if err := tx.Delete("missing"); err != nil {
			return fmt.Errorf("Delete(missing) = %w", err)
		}
		return tx.Delete("a")
	})
	if err != nil {
		t.Fatalf("Update = %v, want nil", err)
	}
	wantMissing(t, s, "a")
	wantValue(t, s, "b", "2")
}

func testFnErrorWritesNothing(t *testing.T, s storage.Store) {
	put(t, s, "keep", "old", "doomed", "still here")
	wrapped := fmt.Errorf("role check: %w", errTest)
	err := s.Update(t.Context(), func(tx storage.Txn) error {
		for _, step := range []error{
			tx.Put("new", []byte("x")),
			tx.Put("keep", []byte("changed")),
			tx.Create("created", []byte("x")),
			tx.Delete("doomed"),
		} {
			if step != nil {
				return step
			}
		}
		return wrapped
	})
	if !errors.Is(err, errTest) {
		t.Fatalf("Update = %v, want the error fn returned", err)
	}
	if err.Error() != wrapped.Error() {
		t.Errorf("Update error = %q, want it unchanged: %q", err, wrapped)
	}
	wantMissing(t, s, "new")
	wantMissing(t, s, "created")
	wantValue(t, s, "keep", "old")
	wantValue(t, s, "doomed", "still here")

	// ErrConflict from Create, returned by fn, also rolls back.
	err = s.Update(t.Context(), func(tx storage.Txn) error {
		if err := tx.Put("new", []byte("x")); err != nil {
			return err
		}
		return tx.Create("keep", []byte("x"))
	})
	if !errors.Is(err, storage.ErrConflict) {
		t.Errorf("Update = %v, want ErrConflict", err)
	}
	wantMissing(t, s, "new")
}

func testScan(t *testing.T, s storage.Store) {
	put(t, s,
		"a", "0",
		"a/", "1",
		"a/B", "2", // upper case sorts before lower case in bytes
		"a/a", "3",
		"a/a/x", "4",
		"a/b", "5",
		"a/\xff", "6",
		"a0", "7", // '0' > '/': after the a/ range
		"b/a/1", "8", // contains "a/" but does not start with it
		"x/a/", "9",
	)
	type kv struct{ K, V string }
	tests := []struct {
		name          string
		prefix, after string
		want          []kv
	}{
		{"prefix", "a/", "", []kv{{"a/", "1"}, {"a/B", "2"}, {"a/a", "3"}, {"a/a/x", "4"}, {"a/b", "5"}, {"a/\xff", "6"}}},
		{"after is exclusive", "a/", "a/a", []kv{{"a/a/x", "4"}, {"a/b", "5"}, {"a/\xff", "6"}}},
		{"after missing key", "a/", "a/aa", []kv{{"a/b", "5"}, {"a/\xff", "6"}}},
		{"after equals prefix", "a/", "a/", []kv{{"a/B", "2"}, {"a/a", "3"}, {"a/a/x", "4"}, {"a/b", "5"}, {"a/\xff", "6"}}},
		{"after before prefix", "a/", "a", []kv{{"a/", "1"}, {"a/B", "2"}, {"a/a", "3"}, {"a/a/x", "4"}, {"a/b", "5"}, {"a/\xff", "6"}}},
		{"after last key", "a/", "a/\xff", nil},
		{"after past prefix range", "a/", "b", nil},
		{"nested prefix", "a/a", "", []kv{{"a/a", "3"}, {"a/a/x", "4"}}},
		{"no match", "c/", "", nil},
		{"empty prefix is everything", "", "a/b", []kv{{"a/\xff", "6"}, {"a0", "7"}, {"b/a/1", "8"}, {"x/a/", "9"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, kind := range []string{"View", "Update"} {
				var got []kv
				fn := func(tx storage.ReadTxn) error {
					return tx.Scan(tt.prefix, tt.after, func(k string, v []byte) (bool, error) {
						got = append(got, kv{k, string(v)})
						return true, nil
					})
				}
				var err error
				if kind == "View" {
					err = s.View(t.Context(), fn)
				} else {
					err = s.Update(t.Context(), func(tx storage.Txn) error { got = nil; return fn(tx) })
				}
				if err != nil {
					t.Fatalf("%s: Scan(%q, %q) = %v, want nil", kind, tt.prefix, tt.after, err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("%s: Scan(%q, %q) mismatch (-want +got):\n%s", kind, tt.prefix, tt.after, diff)
				}
			}
		})
	}
}

func testScanStopsEarly(t *testing.T, s storage.Store) {
	put(t, s, "p/1", "", "p/2", "", "p/3", "", "p/4", "")
	var got []string
	err := s.View(t.Context(), func(tx storage.ReadTxn) error {
		return tx.Scan("p/", "", func(k string, _ []byte) (bool, error) {
			got = append(got, k)
			return len(got) < 2, nil
		})
	})
	if err != nil {
		t.Fatalf("View = %v, want nil", err)
	}
	if want := []string{"p/1", "p/2"}; !cmp.Equal(got, want) {
		t.Errorf("visited %q, want %q", got, want)
	}
}

func testScanError(t *testing.T, s storage.Store) {
	put(t, s, "p/1", "", "p/2", "", "p/3", "")
	calls := 0
	err := s.View(t.Context(), func(tx storage.ReadTxn) error {
		return tx.Scan("p/", "", func(string, []byte) (bool, error) {
			calls++
			if calls == 2 {
				// An error wins over more=true.
				return true, fmt.Errorf("decode: %w", errTest)
			}
			return true, nil
		})
	})
	if !errors.Is(err, errTest) {
		t.Errorf("View = %v, want the error the scan callback returned", err)
	}
	if calls != 2 {
		t.Errorf("callback ran %d times, want 2 (stop at the error)", calls)
	}
}

// testScanWhileWriting is the expiry sweep: scan an index and delete (and
// write) as you go, in one Update.
func testScanWhileWriting(t *testing.T, s storage.Store) {
	var kv []string
	for i := range 20 {
		kv = append(kv, fmt.Sprintf("exp/%02d", i), "")
	}
	put(t, s, kv...)
	var visited []string
	err := s.Update(t.Context(), func(tx storage.Txn) error {
		visited = nil
		// A write next to the range before the scan starts: a B+tree
		// backend now iterates its in-memory copy of the leaf, where a
		// delete shifts the entries under a naive cursor.
		if err := tx.Put("exo", nil); err != nil {
			return err
		}
		return tx.Scan("exp/", "", func(k string, _ []byte) (bool, error) {
			visited = append(visited, k)
			if err := tx.Delete(k); err != nil {
				return false, err
			}
			return true, tx.Put("swept/"+k, []byte("x"))
		})
	})
	if err != nil {
		t.Fatalf("Update = %v, want nil", err)
	}
	var want []string
	for i := 0; i < len(kv); i += 2 {
		want = append(want, kv[i])
	}
	if diff := cmp.Diff(want, visited); diff != "" {
		t.Errorf("visited mismatch (-want +got):\n%s", diff)
	}
	if got := keys(t, s, "exp/"); len(got) != 0 {
		t.Errorf("keys(exp/) = %q after deleting them all, want none", got)
	}
	if got := len(keys(t, s, "swept/")); got != len(want) {
		t.Errorf("len(keys(swept/)) = %d, want %d", got, len(want))
	}
}

func testReadYourWrites(t *testing.T, s storage.Store) {
	put(t, s, "p/gone", "x", "p/old", "1")
	err := s.Update(t.Context(), func(tx storage.Txn) error {
		if err := tx.Put("p/new", []byte("n")); err != nil {
			return err
		}
		if err := tx.Put("p/old", []byte("2")); err != nil {
			return err
		}
		if err := tx.Delete("p/gone"); err != nil {
			return err
		}
		if v, err := tx.Get("p/new"); err != nil || string(v) != "n" {
			return fmt.Errorf("Get(p/new) = %q, %v; want %q", v, err, "n")
		}
		if v, err := tx.Get("p/old"); err != nil || string(v) != "2" {
			return fmt.Errorf("Get(p/old) = %q, %v; want %q", v, err, "2")
		}
		if _, err := tx.Get("p/gone"); !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("Get(p/gone) error = %v, want ErrNotFound", err)
		}
		var got []string
		if err := tx.Scan("p/", "", func(k string, v []byte) (bool, error) {
			got = append(got, k+"="+string(v))
			return true, nil
		}); err != nil {
			return err
		}
		if want := []string{"p/new=n", "p/old=2"}; !cmp.Equal(got, want) {
			return fmt.Errorf("Scan = %q, want %q", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testViewIsSnapshot(t *testing.T, s storage.Store) {
	put(t, s, "k", "old")
	err := s.View(t.Context(), func(tx storage.ReadTxn) error {
		if v, err := tx.Get("k"); err != nil || string(v) != "old" {
			return fmt.Errorf("Get(k) before the Update = %q, %v; want %q", v, err, "old")
		}
		// Commit an Update while this View is open, and wait for it.
		done := make(chan error, 1)
		go func() {
			done <- s.Update(t.Context(), func(tx storage.Txn) error {
				if err := tx.Put("k", []byte("new")); err != nil {
					return err
				}
				if err := tx.Delete("gone"); err != nil {
					return err
				}
				return tx.Put("k2", []byte("x"))
			})
		}()
		if err := <-done; err != nil {
			return fmt.Errorf("concurrent Update = %w", err)
		}
		if v, err := tx.Get("k"); err != nil || string(v) != "old" {
			return fmt.Errorf("Get(k) after the Update = %q, %v; want %q (snapshot)", v, err, "old")
		}
		if v, err := tx.Get("k2"); !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("Get(k2) = %q, %v; want ErrNotFound (snapshot)", v, err)
		}
		n := 0
		if err := tx.Scan("", "", func(string, []byte) (bool, error) { n++; return true, nil }); err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("Scan saw %d keys, want 1 (snapshot)", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantValue(t, s, "k", "new")
	wantValue(t, s, "k2", "x")
}

func testValueIsolation(t *testing.T, s storage.Store) {
	in := []byte("original")
	err := s.Update(t.Context(), func(tx storage.Txn) error {
		if err := tx.Put("put", in); err != nil {
			return err
		}
		if err := tx.Create("create", in); err != nil {
			return err
		}
		in[0] = 'X' // after Put, before commit
		got, err := tx.Get("put")
		if err != nil {
			return err
		}
		got[0] = 'Y'
		return nil
	})
	if err != nil {
		t.Fatalf("Update = %v, want nil", err)
	}
	wantValue(t, s, "put", "original")
	wantValue(t, s, "create", "original")

	err = s.View(t.Context(), func(tx storage.ReadTxn) error {
		got, err := tx.Get("put")
		if err != nil {
			return err
		}
		// Writing to the returned slice must be safe (not, say, a
		// read-only mapping) and must not reach the store.
		for i := range got {
			got[i] = 'Z'
		}
		_ = append(got[:0], "overwrite past the end"...)
		return nil
	})
	if err != nil {
		t.Fatalf("View = %v, want nil", err)
	}
	wantValue(t, s, "put", "original")
}

func testLimits(t *testing.T, s storage.Store) {
	longKey := strings.Repeat("k", storage.MaxKeyLen+1)
	bigVal := make([]byte, storage.MaxValueLen+1)
	tests := []struct {
		name string
		fn   func(tx storage.Txn) error
	}{
		{"Put key too long", func(tx storage.Txn) error { return tx.Put(longKey, []byte("v")) }},
		{"Create key too long", func(tx storage.Txn) error { return tx.Create(longKey, []byte("v")) }},
		{"Put empty key", func(tx storage.Txn) error { return tx.Put("", []byte("v")) }},
		{"Create empty key", func(tx storage.Txn) error { return tx.Create("", []byte("v")) }},
		{"Put value too large", func(tx storage.Txn) error { return tx.Put("big", bigVal) }},
		{"Create value too large", func(tx storage.Txn) error { return tx.Create("big", bigVal) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opErr error
			err := s.Update(t.Context(), func(tx storage.Txn) error {
				opErr = tt.fn(tx)
				return nil // ignore it: the failed write must not happen anyway
			})
			if err != nil {
				t.Fatalf("Update = %v, want nil", err)
			}
			if opErr == nil {
				t.Errorf("got nil error, want an error")
			}
			wantMissing(t, s, "big")
			wantMissing(t, s, longKey)
		})
	}
}

func testCancelledContext(t *testing.T, s storage.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	called := false
	err := s.Update(ctx, func(tx storage.Txn) error {
		called = true
		return tx.Put("before", []byte("x"))
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update(cancelled ctx) = %v, want context.Canceled", err)
	}
	if called {
		t.Errorf("Update(cancelled ctx) ran fn, want it not to")
	}
	err = s.View(ctx, func(storage.ReadTxn) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("View(cancelled ctx) = %v, want context.Canceled", err)
	}

	// Cancelled while fn runs: the caller has given up, so nothing may
	// commit.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	err = s.Update(ctx, func(tx storage.Txn) error {
		cancel()
		return tx.Put("during", []byte("x"))
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update(cancelled during fn) = %v, want context.Canceled", err)
	}
	wantMissing(t, s, "before")
	wantMissing(t, s, "during")
}

func testClosed(t *testing.T, s storage.Store) {
	put(t, s, "k", "v")
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	called := false
	tests := []struct {
		name string
		fn   func() error
	}{
		{"Update", func() error {
			return s.Update(t.Context(), func(storage.Txn) error { called = true; return nil })
		}},
		{"View", func() error {
			return s.View(t.Context(), func(storage.ReadTxn) error { called = true; return nil })
		}},
		{"Get", func() error { _, err := storage.Get(t.Context(), s, "k"); return err }},
		{"Close", s.Close},
	}
	for _, tt := range tests {
		if err := tt.fn(); !errors.Is(err, storage.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", tt.name, err)
		}
	}
	if called {
		t.Errorf("a closed store ran fn, want it not to")
	}
}

func testPanic(t *testing.T, s storage.Store) {
	got := func() (p any) {
		defer func() { p = recover() }()
		_ = s.Update(t.Context(), func(tx storage.Txn) error {
			if err := tx.Put("k", []byte("x")); err != nil {
				return err
			}
			panic("boom")
		})
		return nil
	}()
	if got != "boom" {
		t.Errorf("recovered %v, want the panic from fn: boom", got)
	}
	wantMissing(t, s, "k")
	// The store is still usable: no lock or transaction was left behind.
	put(t, s, "after", "ok")
	wantValue(t, s, "after", "ok")
}

// testConcurrentIncrements proves that Update is atomic: every
// read-modify-write of one counter survives.
func testConcurrentIncrements(t *testing.T, s storage.Store) {
	const workers, perWorker = 32, 50
	put(t, s, "counter", "0")
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range perWorker {
				err := s.Update(t.Context(), func(tx storage.Txn) error {
					v, err := tx.Get("counter")
					if err != nil {
						return err
					}
					var n int
					if _, err := fmt.Sscan(string(v), &n); err != nil {
						return err
					}
					return tx.Put("counter", fmt.Appendf(nil, "%d", n+1))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Update = %v, want nil", err)
	}
	wantValue(t, s, "counter", fmt.Sprint(workers*perWorker))
}

func testConcurrentCreate(t *testing.T, s storage.Store) {
	const workers = 16
	results := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			results[i] = s.Update(t.Context(), func(tx storage.Txn) error {
				return tx.Create("lock", fmt.Appendf(nil, "%d", i))
			})
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range results {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("Create succeeded for workers %d and %d, want exactly one", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, storage.ErrConflict):
			t.Errorf("worker %d: Create = %v, want nil or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no Create succeeded, want exactly one")
	}
	wantValue(t, s, "lock", fmt.Sprint(winner))
}

// workerError is the error a failing worker returns, so the test can check
// that each caller gets its own error and not a neighbour's.
type workerError struct{ worker int }

func (e *workerError) Error() string { return fmt.Sprintf("worker %d failed", e.worker) }

// testConcurrentFailuresAreIsolated runs failing and succeeding Updates at
// once. Backends that batch concurrent transactions into one commit must
// drop exactly the failing callers' writes, hand each its own error, and
// still commit everybody else's.
func testConcurrentFailuresAreIsolated(t *testing.T, s storage.Store) {
	const workers = 32
	results := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			results[i] = s.Update(t.Context(), func(tx storage.Txn) error {
				if err := tx.Put(fmt.Sprintf("w/%02d", i), []byte("x")); err != nil {
					return err
				}
				if i%2 == 1 {
					if err := tx.Put("shared", fmt.Appendf(nil, "%d", i)); err != nil {
						return err
					}
					return &workerError{i}
				}
				return nil
			})
		})
	}
	wg.Wait()
	var want []string
	for i, err := range results {
		if i%2 == 0 {
			want = append(want, fmt.Sprintf("w/%02d", i))
			if err != nil {
				t.Errorf("worker %d: Update = %v, want nil", i, err)
			}
			continue
		}
		var we *workerError
		if !errors.As(err, &we) || we.worker != i {
			t.Errorf("worker %d: Update = %v, want its own workerError", i, err)
		}
	}
	if diff := cmp.Diff(want, keys(t, s, "w/")); diff != "" {
		t.Errorf("committed keys mismatch (-want +got):\n%s", diff)
	}
	wantMissing(t, s, "shared")
}

func testLargeTxn(t *testing.T, s storage.Store) {
	const n = 1000
	val := bytes.Repeat([]byte("v"), 100)
	write := func(prefix string, fail bool) error {
		return s.Update(t.Context(), func(tx storage.Txn) error {
			for i := range n {
				if err := tx.Put(fmt.Sprintf("%s%04d", prefix, i), val); err != nil {
					return err
				}
			}
			if fail {
				return errTest
			}
			return nil
		})
	}
	if err := write("fail/", true); !errors.Is(err, errTest) {
		t.Fatalf("Update(1000 puts, then fail) = %v, want errTest", err)
	}
	if got := keys(t, s, "fail/"); len(got) != 0 {
		t.Errorf("after a failed 1000-key Update, %d keys exist, want 0", len(got))
	}
	if err := write("ok/", false); err != nil {
		t.Fatalf("Update(1000 puts) = %v, want nil", err)
	}
	got := 0
	err := s.View(t.Context(), func(tx storage.ReadTxn) error {
		return tx.Scan("ok/", "", func(k string, v []byte) (bool, error) {
			if want := fmt.Sprintf("ok/%04d", got); k != want || !bytes.Equal(v, val) {
				return false, fmt.Errorf("entry %d = %q (%d bytes), want %q (%d bytes)", got, k, len(v), want, len(val))
			}
			got++
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Errorf("scanned %d keys, want %d", got, n)
	}
}
