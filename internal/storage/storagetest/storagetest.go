// Package storagetest is the conformance suite for storage.Store. Every
// backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store { return memory.New() })
//	}
//
// The suite checks the contract written in package storage's doc comment:
// the not-found and conflict sentinels, conditions (absent, unchanged) and
// the all-or-nothing commit of several keys, ranges (prefix, after,
// before, limit, keys only) in byte order, paging, atomic visibility of a
// commit to concurrent readers, value isolation, the limits, cancellation,
// Close, and compare-and-swap under concurrency. It is black-box: it uses
// only the storage API, so a network backend (etcd) runs it unchanged
// against a real server.
//
// Notes for backend authors:
//   - Unchanged may compare revisions or values; the suite only asserts
//     what both guarantee (a different value written since the read breaks
//     the condition, no write keeps it).
//   - Commit must not write once the caller's context is done, so a
//     network backend checks the context before it sends the commit.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
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
		{"CommitIsAllOrNothing", testCommitAllOrNothing},
		{"CondAbsent", testCondAbsent},
		{"CondUnchanged", testCondUnchanged},
		{"Update", testUpdate},
		{"List", testList},
		{"ListLimit", testListLimit},
		{"ListKeysOnly", testListKeysOnly},
		{"ScanPages", testScanPages},
		{"ScanWhileWriting", testScanWhileWriting},
		{"CommitVisibleAtOnce", testCommitVisibleAtOnce},
		{"ValueIsolation", testValueIsolation},
		{"Limits", testLimits},
		{"CancelledContext", testCancelledContext},
		{"Closed", testClosed},
		{"ConcurrentIncrements", testConcurrentIncrements},
		{"ConcurrentCreate", testConcurrentCreate},
		{"ConcurrentFailuresAreIsolated", testConcurrentFailuresAreIsolated},
		{"LargeCommit", testLargeCommit},
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

// put commits key/value pairs in one unconditional commit.
// UnchangedAfterRewrite creates k = v, reads it, rewrites the same bytes,
// then commits k = w on the condition that k is Unchanged since the read,
// and returns the read and that commit's error. The contract allows the
// commit to succeed (a backend comparing values, like bolt) or to conflict
// (one comparing revisions, like memory and etcd): each backend's own test
// asserts which.
func UnchangedAfterRewrite(t *testing.T, s storage.Store) (storage.KV, error) {
	t.Helper()
	ctx := t.Context()
	if err := storage.Create(ctx, s, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	read, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, nil, []storage.Op{storage.Put("k", []byte("v"))}); err != nil {
		t.Fatal(err)
	}
	return read, s.Commit(ctx, []storage.Cond{storage.Unchanged(read)}, []storage.Op{storage.Put("k", []byte("w"))})
}

func put(t *testing.T, s storage.Store, kv ...string) {
	t.Helper()
	if len(kv)%2 != 0 {
		t.Fatalf("put: odd number of arguments")
	}
	var ops []storage.Op
	for i := 0; i < len(kv); i += 2 {
		ops = append(ops, storage.Put(kv[i], []byte(kv[i+1])))
	}
	if err := s.Commit(t.Context(), nil, ops); err != nil {
		t.Fatalf("Commit(put %q) = %v, want nil", kv, err)
	}
}

func get(t *testing.T, s storage.Store, key string) storage.KV {
	t.Helper()
	kv, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q) = %v, want nil", key, err)
	}
	return kv
}

// wantValue fails the test unless key holds want.
func wantValue(t *testing.T, s storage.Store, key, want string) {
	t.Helper()
	kv, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q) error = %v, want value %q", key, err, want)
	}
	if string(kv.Value) != want {
		t.Errorf("Get(%q) = %q, want %q", key, kv.Value, want)
	}
	if kv.Key != key {
		t.Errorf("Get(%q).Key = %q, want %q", key, kv.Key, key)
	}
}

// wantMissing fails the test unless key is absent.
func wantMissing(t *testing.T, s storage.Store, key string) {
	t.Helper()
	kv, err := s.Get(t.Context(), key)
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get(%q) = %q, %v; want ErrNotFound", key, kv.Value, err)
	}
}

// keys returns every key of r, through storage.Scan.
func keys(t *testing.T, s storage.Store, r storage.Range) []string {
	t.Helper()
	var out []string
	err := storage.Scan(t.Context(), s, r, func(kv storage.KV) (bool, error) {
		out = append(out, kv.Key)
		return true, nil
	})
	if err != nil {
		t.Fatalf("Scan(%+v) = %v, want nil", r, err)
	}
	return out
}

func testGetMissing(t *testing.T, s storage.Store) {
	wantMissing(t, s, "nope")
	put(t, s, "nope/child", "x", "nop", "y")
	wantMissing(t, s, "nope")
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
			if err := s.Commit(t.Context(), nil, []storage.Op{storage.Put(tt.key, tt.val)}); err != nil {
				t.Fatalf("Commit(put) = %v, want nil", err)
			}
			kv := get(t, s, tt.key)
			if !bytes.Equal(kv.Value, tt.val) {
				t.Errorf("Get = %d bytes %.40q, want %d bytes %.40q", len(kv.Value), kv.Value, len(tt.val), tt.val)
			}
			if kv.Value == nil {
				t.Errorf("Get of an existing key returned a nil value, want non-nil (empty values exist)")
			}
		})
	}
}

func testPutReplaces(t *testing.T, s storage.Store) {
	put(t, s, "k", "one")
	put(t, s, "k", "two")
	wantValue(t, s, "k", "two")
	if got, want := keys(t, s, storage.Range{}), []string{"k"}; !cmp.Equal(got, want) {
		t.Errorf("keys = %q, want %q", got, want)
	}
}

func testCreate(t *testing.T, s storage.Store) {
	ctx := t.Context()
	if err := storage.Create(ctx, s, "k", []byte("first")); err != nil {
		t.Fatalf("Create(new key) = %v, want nil", err)
	}
	if err := storage.Create(ctx, s, "k", []byte("second")); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("Create(existing key) = %v, want ErrConflict", err)
	}
	wantValue(t, s, "k", "first")

	// An empty value still makes the key exist.
	put(t, s, "empty", "")
	if err := storage.Create(ctx, s, "empty", []byte("x")); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("Create(key with empty value) = %v, want ErrConflict", err)
	}
	wantValue(t, s, "empty", "")
}

func testDelete(t *testing.T, s storage.Store) {
	put(t, s, "a", "1", "b", "2")
	if err := storage.Delete(t.Context(), s, "missing"); err != nil {
		t.Errorf("Delete(missing) = %v, want nil", err)
	}
	if err := storage.Delete(t.Context(), s, "a"); err != nil {
		t.Fatalf("Delete(a) = %v, want nil", err)
	}
	wantMissing(t, s, "a")
	wantValue(t, s, "b", "2")
	// A deleted key can be created again.
	if err := storage.Create(t.Context(), s, "a", []byte("again")); err != nil {
		t.Errorf("Create(deleted key) = %v, want nil", err)
	}
	wantValue(t, s, "a", "again")
}

func testCommitAllOrNothing(t *testing.T, s storage.Store) {
	ctx := t.Context()
	put(t, s, "keep", "old", "doomed", "still here", "guard", "g")
	read := get(t, s, "guard")
	put(t, s, "guard", "moved on")
	ops := []storage.Op{
		storage.Put("new", []byte("x")),
		storage.Put("keep", []byte("changed")),
		storage.Del("doomed"),
	}
	// The last condition fails: nothing of the commit may be written.
	conds := []storage.Cond{storage.Absent("new"), storage.Unchanged(get(t, s, "keep")), storage.Unchanged(read)}
	if err := s.Commit(ctx, conds, ops); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("Commit with a failing condition = %v, want ErrConflict", err)
	}
	wantMissing(t, s, "new")
	wantValue(t, s, "keep", "old")
	wantValue(t, s, "doomed", "still here")

	// The same commit with conditions that hold writes every key.
	conds[2] = storage.Unchanged(get(t, s, "guard"))
	if err := s.Commit(ctx, conds, ops); err != nil {
		t.Fatalf("Commit with holding conditions = %v, want nil", err)
	}
	wantValue(t, s, "new", "x")
	wantValue(t, s, "keep", "changed")
	wantMissing(t, s, "doomed")

	// Conditions without operations write nothing and report the result.
	if err := s.Commit(ctx, []storage.Cond{storage.Absent("new")}, nil); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("Commit(no ops, failing condition) = %v, want ErrConflict", err)
	}
	if err := s.Commit(ctx, []storage.Cond{storage.Absent("nothing")}, nil); err != nil {
		t.Errorf("Commit(no ops, holding condition) = %v, want nil", err)
	}
	wantMissing(t, s, "nothing")
}

func testCondAbsent(t *testing.T, s storage.Store) {
	ctx := t.Context()
	put(t, s, "exists", "")
	if err := s.Commit(ctx, []storage.Cond{storage.Absent("exists")}, []storage.Op{storage.Put("x", nil)}); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("Absent(existing key with empty value) = %v, want ErrConflict", err)
	}
	wantMissing(t, s, "x")
	// A condition on one key, a write to another.
	if err := s.Commit(ctx, []storage.Cond{storage.Absent("lock")}, []storage.Op{storage.Put("x", []byte("1"))}); err != nil {
		t.Errorf("Absent(missing key) = %v, want nil", err)
	}
	wantValue(t, s, "x", "1")
	wantMissing(t, s, "lock")
}

func testCondUnchanged(t *testing.T, s storage.Store) {
	ctx := t.Context()
	commitIf := func(kv storage.KV, val string) error {
		return s.Commit(ctx, []storage.Cond{storage.Unchanged(kv)}, []storage.Op{storage.Put(kv.Key, []byte(val))})
	}
	put(t, s, "k", "v1")

	// Nothing written since the read: holds, and the write lands.
	read := get(t, s, "k")
	if err := commitIf(read, "v2"); err != nil {
		t.Fatalf("Unchanged(fresh read) = %v, want nil", err)
	}
	wantValue(t, s, "k", "v2")

	// The value read is gone: the old read no longer holds.
	if err := commitIf(read, "stale"); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("Unchanged(stale read) = %v, want ErrConflict", err)
	}
	wantValue(t, s, "k", "v2")

	// A read from List with values works like one from Get.
	page, err := s.List(ctx, storage.Range{Prefix: "k"})
	if err != nil || len(page.KVs) != 1 {
		t.Fatalf("List(k) = %+v, %v; want one key", page, err)
	}
	if err := commitIf(page.KVs[0], "v3"); err != nil {
		t.Errorf("Unchanged(read by List) = %v, want nil", err)
	}
	wantValue(t, s, "k", "v3")

	// Deleted since the read, and deleted then re-created with another
	// value: neither holds.
	read = get(t, s, "k")
	if err := storage.Delete(ctx, s, "k"); err != nil {
		t.Fatal(err)
	}
	if err := commitIf(read, "ghost"); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("Unchanged(deleted key) = %v, want ErrConflict", err)
	}
	wantMissing(t, s, "k")
	put(t, s, "k", "reborn")
	if err := commitIf(read, "ghost"); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("Unchanged(re-created key) = %v, want ErrConflict", err)
	}
	wantValue(t, s, "k", "reborn")

	// A write to another key does not disturb the condition.
	read = get(t, s, "k")
	put(t, s, "other", "x")
	if err := commitIf(read, "v4"); err != nil {
		t.Errorf("Unchanged after a write to another key = %v, want nil", err)
	}
}

func testUpdate(t *testing.T, s storage.Store) {
	ctx := t.Context()
	// fn sees nil for a missing key; its ops may write several keys.
	err := storage.Update(ctx, s, "rec", func(cur *storage.KV) ([]storage.Op, error) {
		if cur != nil {
			return nil, fmt.Errorf("cur = %+v, want nil for a missing key", *cur)
		}
		return []storage.Op{storage.Put("rec", []byte("1")), storage.Put("idx/1", nil)}, nil
	})
	if err != nil {
		t.Fatalf("Update(missing) = %v, want nil", err)
	}
	wantValue(t, s, "rec", "1")
	wantValue(t, s, "idx/1", "")

	// fn sees the current value and may move an index entry.
	err = storage.Update(ctx, s, "rec", func(cur *storage.KV) ([]storage.Op, error) {
		if cur == nil || string(cur.Value) != "1" {
			return nil, fmt.Errorf("cur = %+v, want value 1", cur)
		}
		return []storage.Op{storage.Put("rec", []byte("2")), storage.Del("idx/1"), storage.Put("idx/2", nil)}, nil
	})
	if err != nil {
		t.Fatalf("Update(existing) = %v, want nil", err)
	}
	wantValue(t, s, "rec", "2")
	wantMissing(t, s, "idx/1")
	wantValue(t, s, "idx/2", "")

	// An error from fn is returned unchanged and writes nothing.
	wrapped := fmt.Errorf("role check: %w", errTest)
	err = storage.Update(ctx, s, "rec", func(*storage.KV) ([]storage.Op, error) { return nil, wrapped })
	if !errors.Is(err, errTest) || err.Error() != wrapped.Error() {
		t.Errorf("Update = %v, want the error fn returned, unchanged", err)
	}
	// No ops: nothing written, no error.
	calls := 0
	err = storage.Update(ctx, s, "rec", func(*storage.KV) ([]storage.Op, error) { calls++; return nil, nil })
	if err != nil || calls != 1 {
		t.Errorf("Update(no ops) = %v after %d calls, want nil after 1", err, calls)
	}
	wantValue(t, s, "rec", "2")

	// A write between the read and the commit makes Update call fn again
	// with the new value.
	calls = 0
	var seen []string
	err = storage.Update(ctx, s, "rec", func(cur *storage.KV) ([]storage.Op, error) {
		calls++
		seen = append(seen, string(cur.Value))
		if calls == 1 {
			put(t, s, "rec", "sneaked in")
		}
		return []storage.Op{storage.Put("rec", append(cur.Value, '+'))}, nil
	})
	if err != nil {
		t.Fatalf("Update(with a racing write) = %v, want nil", err)
	}
	if want := []string{"2", "sneaked in"}; !cmp.Equal(seen, want) {
		t.Errorf("fn saw %q, want %q", seen, want)
	}
	wantValue(t, s, "rec", "sneaked in+")
}

func testList(t *testing.T, s storage.Store) {
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
		name string
		r    storage.Range
		want []kv
	}{
		{"prefix", storage.Range{Prefix: "a/"}, []kv{{"a/", "1"}, {"a/B", "2"}, {"a/a", "3"}, {"a/a/x", "4"}, {"a/b", "5"}, {"a/\xff", "6"}}},
		{"after is exclusive", storage.Range{Prefix: "a/", After: "a/a"}, []kv{{"a/a/x", "4"}, {"a/b", "5"}, {"a/\xff", "6"}}},
		{"after a missing key", storage.Range{Prefix: "a/", After: "a/aa"}, []kv{{"a/b", "5"}, {"a/\xff", "6"}}},
		{"after equals prefix", storage.Range{Prefix: "a/", After: "a/"}, []kv{{"a/B", "2"}, {"a/a", "3"}, {"a/a/x", "4"}, {"a/b", "5"}, {"a/\xff", "6"}}},
		{"after below prefix", storage.Range{Prefix: "a/", After: "a"}, []kv{{"a/", "1"}, {"a/B", "2"}, {"a/a", "3"}, {"a/a/x", "4"}, {"a/b", "5"}, {"a/\xff", "6"}}},
		{"after past the prefix", storage.Range{Prefix: "a/", After: "a0"}, nil},
		{"before is exclusive", storage.Range{Prefix: "a/", Before: "a/a/x"}, []kv{{"a/", "1"}, {"a/B", "2"}, {"a/a", "3"}}},
		{"before a missing key", storage.Range{Prefix: "a/", Before: "a/a/"}, []kv{{"a/", "1"}, {"a/B", "2"}, {"a/a", "3"}}},
		{"after and before", storage.Range{Prefix: "a/", After: "a/B", Before: "a/b"}, []kv{{"a/a", "3"}, {"a/a/x", "4"}}},
		{"before past the prefix", storage.Range{Prefix: "a/", Before: "b"}, []kv{{"a/", "1"}, {"a/B", "2"}, {"a/a", "3"}, {"a/a/x", "4"}, {"a/b", "5"}, {"a/\xff", "6"}}},
		{"before at the prefix", storage.Range{Prefix: "a/", Before: "a/"}, nil},
		{"before under after", storage.Range{Prefix: "a/", After: "a/b", Before: "a/B"}, nil},
		{"no match", storage.Range{Prefix: "zzz"}, nil},
		{"empty prefix", storage.Range{}, []kv{{"a", "0"}, {"a/", "1"}, {"a/B", "2"}, {"a/a", "3"}, {"a/a/x", "4"}, {"a/b", "5"}, {"a/\xff", "6"}, {"a0", "7"}, {"b/a/1", "8"}, {"x/a/", "9"}}},
		{"exact key as prefix", storage.Range{Prefix: "a/a"}, []kv{{"a/a", "3"}, {"a/a/x", "4"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := s.List(t.Context(), tt.r)
			if err != nil {
				t.Fatalf("List(%+v) = %v, want nil", tt.r, err)
			}
			var got []kv
			for _, e := range page.KVs {
				got = append(got, kv{e.Key, string(e.Value)})
			}
			if !cmp.Equal(got, tt.want) {
				t.Errorf("List(%+v) = %q, want %q", tt.r, got, tt.want)
			}
			if page.More {
				t.Errorf("List(%+v).More = true, want false", tt.r)
			}
		})
	}
}

func testListLimit(t *testing.T, s storage.Store) {
	for i := range 5 {
		put(t, s, fmt.Sprintf("p/%d", i), "v")
	}
	put(t, s, "q/0", "v")
	tests := []struct {
		name     string
		r        storage.Range
		want     []string
		wantMore bool
	}{
		{"limit below count", storage.Range{Prefix: "p/", Limit: 2}, []string{"p/0", "p/1"}, true},
		{"limit equals count", storage.Range{Prefix: "p/", Limit: 5}, []string{"p/0", "p/1", "p/2", "p/3", "p/4"}, false},
		{"limit above count", storage.Range{Prefix: "p/", Limit: 9}, []string{"p/0", "p/1", "p/2", "p/3", "p/4"}, false},
		{"next page", storage.Range{Prefix: "p/", After: "p/1", Limit: 2}, []string{"p/2", "p/3"}, true},
		{"last page", storage.Range{Prefix: "p/", After: "p/3", Limit: 2}, []string{"p/4"}, false},
		{"limit cut by before", storage.Range{Prefix: "p/", Before: "p/2", Limit: 2}, []string{"p/0", "p/1"}, false},
		{"zero means the maximum", storage.Range{Prefix: "p/"}, []string{"p/0", "p/1", "p/2", "p/3", "p/4"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := s.List(t.Context(), tt.r)
			if err != nil {
				t.Fatalf("List = %v", err)
			}
			var got []string
			for _, kv := range page.KVs {
				got = append(got, kv.Key)
			}
			if !cmp.Equal(got, tt.want) || page.More != tt.wantMore {
				t.Errorf("List(%+v) = %q more=%v, want %q more=%v", tt.r, got, page.More, tt.want, tt.wantMore)
			}
		})
	}
}

func testListKeysOnly(t *testing.T, s storage.Store) {
	put(t, s, "i/a", "value a", "i/b", "")
	page, err := s.List(t.Context(), storage.Range{Prefix: "i/", KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.KVs) != 2 || page.KVs[0].Key != "i/a" || page.KVs[1].Key != "i/b" {
		t.Fatalf("List(keys only) = %+v, want i/a and i/b", page.KVs)
	}
	for _, kv := range page.KVs {
		if len(kv.Value) != 0 {
			t.Errorf("List(keys only) gave %q a value %q, want none", kv.Key, kv.Value)
		}
	}
}

func testScanPages(t *testing.T, s storage.Store) {
	// More keys than one page holds: Scan must page through all of them.
	n := storage.MaxListLimit*2 + 17
	for i := 0; i < n; i += storage.MaxCommitOps {
		var ops []storage.Op
		for j := i; j < min(n, i+storage.MaxCommitOps); j++ {
			ops = append(ops, storage.Put(fmt.Sprintf("k/%06d", j), []byte(strconv.Itoa(j))))
		}
		if err := s.Commit(t.Context(), nil, ops); err != nil {
			t.Fatal(err)
		}
	}
	got := keys(t, s, storage.Range{Prefix: "k/"})
	if len(got) != n {
		t.Fatalf("Scan visited %d keys, want %d", len(got), n)
	}
	for i, k := range got {
		if want := fmt.Sprintf("k/%06d", i); k != want {
			t.Fatalf("key %d = %q, want %q", i, k, want)
		}
	}
	// Stopping early, and an error from fn, end the scan.
	visited := 0
	err := storage.Scan(t.Context(), s, storage.Range{Prefix: "k/"}, func(storage.KV) (bool, error) {
		visited++
		return visited < 3, nil
	})
	if err != nil || visited != 3 {
		t.Errorf("Scan stopped after %d keys with %v, want 3 and nil", visited, err)
	}
	err = storage.Scan(t.Context(), s, storage.Range{Prefix: "k/"}, func(storage.KV) (bool, error) { return true, errTest })
	if !errors.Is(err, errTest) {
		t.Errorf("Scan = %v, want fn's error", err)
	}
	// Before bounds a scan across pages too.
	got = keys(t, s, storage.Range{Prefix: "k/", After: "k/000990", Before: "k/001010", Limit: 7})
	if len(got) != 19 || got[0] != "k/000991" || got[18] != "k/001009" {
		t.Errorf("Scan(after, before, small pages) = %d keys %q…, want 19 from k/000991 to k/001009", len(got), got)
	}
}

// testScanWhileWriting deletes every key it visits and adds keys outside
// the range: the scan still visits each original key once.
func testScanWhileWriting(t *testing.T, s storage.Store) {
	for i := range 50 {
		put(t, s, fmt.Sprintf("due/%03d", i), "x")
	}
	var visited []string
	err := storage.Scan(t.Context(), s, storage.Range{Prefix: "due/", Limit: 7}, func(kv storage.KV) (bool, error) {
		visited = append(visited, kv.Key)
		return true, s.Commit(t.Context(), nil, []storage.Op{storage.Del(kv.Key), storage.Put("done/"+kv.Key, nil)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(visited) != 50 {
		t.Errorf("visited %d keys, want 50", len(visited))
	}
	if got := keys(t, s, storage.Range{Prefix: "due/"}); len(got) != 0 {
		t.Errorf("keys left = %q, want none", got)
	}
}

// testCommitVisibleAtOnce: readers never see part of a commit.
func testCommitVisibleAtOnce(t *testing.T, s storage.Store) {
	ctx := t.Context()
	const rounds = 200
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range rounds {
			// Each commit writes a pair and removes the previous pair.
			ops := []storage.Op{
				storage.Put(fmt.Sprintf("pair/%04d/a", i), []byte("x")),
				storage.Put(fmt.Sprintf("pair/%04d/b", i), []byte("x")),
			}
			if i > 0 {
				ops = append(ops, storage.Del(fmt.Sprintf("pair/%04d/a", i-1)), storage.Del(fmt.Sprintf("pair/%04d/b", i-1)))
			}
			if err := s.Commit(ctx, nil, ops); err != nil {
				t.Errorf("Commit = %v", err)
				return
			}
		}
	}()
	for range rounds {
		page, err := s.List(ctx, storage.Range{Prefix: "pair/"})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(page.KVs); n != 0 && n != 2 {
			t.Fatalf("List saw %d keys of pairs that are written and removed together: %+v", n, page.KVs)
		}
		if len(page.KVs) == 2 && page.KVs[0].Key[:10] != page.KVs[1].Key[:10] {
			t.Fatalf("List saw halves of two commits: %q, %q", page.KVs[0].Key, page.KVs[1].Key)
		}
	}
	wg.Wait()
}

func testValueIsolation(t *testing.T, s storage.Store) {
	ctx := t.Context()
	val := []byte("original")
	if err := s.Commit(ctx, nil, []storage.Op{storage.Put("k", val)}); err != nil {
		t.Fatal(err)
	}
	copy(val, "XXXXXXXX") // the caller reuses its slice after the commit
	kv := get(t, s, "k")
	if string(kv.Value) != "original" {
		t.Fatalf("Get = %q after the caller changed its slice, want original", kv.Value)
	}
	copy(kv.Value, "YYYYYYYY") // the caller scribbles on what it read
	wantValue(t, s, "k", "original")
	page, err := s.List(ctx, storage.Range{Prefix: "k"})
	if err != nil {
		t.Fatal(err)
	}
	copy(page.KVs[0].Value, "ZZZZZZZZ")
	wantValue(t, s, "k", "original")
}

func testLimits(t *testing.T, s storage.Store) {
	ctx := t.Context()
	manyOps := make([]storage.Op, storage.MaxCommitOps+1)
	for i := range manyOps {
		manyOps[i] = storage.Put(fmt.Sprintf("many/%d", i), nil)
	}
	manyConds := make([]storage.Cond, storage.MaxCommitOps+1)
	for i := range manyConds {
		manyConds[i] = storage.Absent(fmt.Sprintf("cond/%d", i))
	}
	tests := []struct {
		name  string
		conds []storage.Cond
		ops   []storage.Op
	}{
		{"empty key", nil, []storage.Op{storage.Put("", []byte("x"))}},
		{"key too long", nil, []storage.Op{storage.Put(strings.Repeat("k", storage.MaxKeyLen+1), nil)}},
		{"value too large", nil, []storage.Op{storage.Put("big", make([]byte, storage.MaxValueLen+1))}},
		{"empty key in a condition", []storage.Cond{storage.Absent("")}, []storage.Op{storage.Put("x", nil)}},
		{"too many operations", nil, manyOps},
		{"too many conditions", manyConds, []storage.Op{storage.Put("x", nil)}},
		{"key written twice", nil, []storage.Op{storage.Put("dup", []byte("1")), storage.Del("dup")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A valid write rides along: nothing of a refused commit lands.
			ops := append([]storage.Op{storage.Put("rider", []byte("x"))}, tt.ops...)
			err := s.Commit(ctx, tt.conds, ops)
			if err == nil {
				t.Fatalf("Commit = nil, want an error")
			}
			if errors.Is(err, storage.ErrConflict) {
				t.Errorf("Commit = %v, want a limit error, not a conflict", err)
			}
			wantMissing(t, s, "rider")
		})
	}
	if got := keys(t, s, storage.Range{}); len(got) != 0 {
		t.Errorf("keys after refused commits = %q, want none", got)
	}
}

func testCancelledContext(t *testing.T, s storage.Store) {
	put(t, s, "k", "v")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Commit(ctx, nil, []storage.Op{storage.Put("new", []byte("x"))}); !errors.Is(err, context.Canceled) {
		t.Errorf("Commit(cancelled) = %v, want context.Canceled", err)
	}
	wantMissing(t, s, "new")
	if _, err := s.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get(cancelled) = %v, want context.Canceled", err)
	}
	if _, err := s.List(ctx, storage.Range{}); !errors.Is(err, context.Canceled) {
		t.Errorf("List(cancelled) = %v, want context.Canceled", err)
	}
	if err := storage.Update(ctx, s, "k", func(*storage.KV) ([]storage.Op, error) {
		return []storage.Op{storage.Put("k", []byte("changed"))}, nil
	}); !errors.Is(err, context.Canceled) {
		t.Errorf("Update(cancelled) = %v, want context.Canceled", err)
	}
	wantValue(t, s, "k", "v")
}

func testClosed(t *testing.T, s storage.Store) {
	put(t, s, "k", "v")
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v, want nil", err)
	}
	ctx := t.Context()
	if _, err := s.Get(ctx, "k"); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
	if _, err := s.List(ctx, storage.Range{}); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("List after Close = %v, want ErrClosed", err)
	}
	if err := s.Commit(ctx, nil, []storage.Op{storage.Put("x", nil)}); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Commit after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
}

// testConcurrentIncrements: compare-and-swap loses no update.
func testConcurrentIncrements(t *testing.T, s storage.Store) {
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				err := storage.Update(t.Context(), s, "counter", func(cur *storage.KV) ([]storage.Op, error) {
					n := 0
					if cur != nil {
						var err error
						if n, err = strconv.Atoi(string(cur.Value)); err != nil {
							return nil, err
						}
					}
					return []storage.Op{storage.Put("counter", []byte(strconv.Itoa(n+1)))}, nil
				})
				if err != nil {
					t.Errorf("Update = %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	wantValue(t, s, "counter", strconv.Itoa(workers*each))
}

// concurrently runs fn(0) … fn(n-1) at once and returns their errors.
func concurrently(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	return errs
}

func testConcurrentCreate(t *testing.T, s storage.Store) {
	errs := concurrently(16, func(i int) error {
		return storage.Create(t.Context(), s, "once", []byte(strconv.Itoa(i)))
	})
	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
			wantValue(t, s, "once", strconv.Itoa(i))
		case !errors.Is(err, storage.ErrConflict):
			t.Errorf("Create #%d = %v, want nil or ErrConflict", i, err)
		}
	}
	if winners != 1 {
		t.Errorf("%d Creates of one key succeeded, want 1", winners)
	}
}

// testConcurrentFailuresAreIsolated: commits running together (a batching
// backend shares one transaction among them) fail or succeed on their own.
func testConcurrentFailuresAreIsolated(t *testing.T, s storage.Store) {
	put(t, s, "taken", "x")
	errs := concurrently(32, func(i int) error {
		var conds []storage.Cond
		if i%2 == 1 {
			conds = []storage.Cond{storage.Absent("taken")} // always fails
		}
		return s.Commit(t.Context(), conds, []storage.Op{storage.Put(fmt.Sprintf("w/%02d", i), []byte("x"))})
	})
	for i, err := range errs {
		if i%2 == 1 {
			if !errors.Is(err, storage.ErrConflict) {
				t.Errorf("commit #%d = %v, want ErrConflict", i, err)
			}
			wantMissing(t, s, fmt.Sprintf("w/%02d", i))
			continue
		}
		if err != nil {
			t.Errorf("commit #%d = %v, want nil", i, err)
		}
		wantValue(t, s, fmt.Sprintf("w/%02d", i), "x")
	}
}

func testLargeCommit(t *testing.T, s storage.Store) {
	ops := make([]storage.Op, storage.MaxCommitOps)
	conds := make([]storage.Cond, storage.MaxCommitOps)
	val := bytes.Repeat([]byte("v"), 4096)
	for i := range ops {
		k := fmt.Sprintf("large/%03d", i)
		ops[i] = storage.Put(k, val)
		conds[i] = storage.Absent(k)
	}
	if err := s.Commit(t.Context(), conds, ops); err != nil {
		t.Fatalf("Commit(%d ops, %d conditions) = %v, want nil", len(ops), len(conds), err)
	}
	if got := keys(t, s, storage.Range{Prefix: "large/"}); len(got) != storage.MaxCommitOps {
		t.Errorf("%d keys written, want %d", len(got), storage.MaxCommitOps)
	}
}
