package bolt_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/storage"
	"github.com/keyferry/keyferry/internal/storage/bolt"
	"github.com/keyferry/keyferry/internal/storage/storagetest"
)

func open(t *testing.T, path string, opts bolt.Options) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s) = %v, want nil", path, err)
	}
	return s
}

// TestConformance runs the suite with production options (fsync on), so
// the batching paths are the ones a server uses.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return open(t, filepath.Join(t.TempDir(), "kf.db"), bolt.Options{})
	})
}

// TestConformanceUnbatched runs the suite with every Commit on its own,
// the path bbolt takes to re-run a commit whose condition failed.
func TestConformanceUnbatched(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return open(t, filepath.Join(t.TempDir(), "kf.db"), bolt.Options{MaxBatchSize: 1, NoSync: true})
	})
}

func TestDurableAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kf.db")
	s := open(t, path, bolt.Options{})
	err := s.Commit(t.Context(), nil, []storage.Op{storage.Put("leases/1", []byte("lease")), storage.Put("empty", nil)})
	if err != nil {
		t.Fatalf("Commit = %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v, want nil", err)
	}

	s = open(t, path, bolt.Options{})
	defer s.Close()
	tests := []struct{ key, want string }{{"leases/1", "lease"}, {"empty", ""}}
	for _, tt := range tests {
		got, err := s.Get(t.Context(), tt.key)
		if err != nil || string(got.Value) != tt.want {
			t.Errorf("after reopen, Get(%q) = %q, %v; want %q, nil", tt.key, got.Value, err, tt.want)
		}
	}
}

func TestOpenTwiceFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kf.db")
	s := open(t, path, bolt.Options{})
	defer s.Close()

	// bbolt's flock is per open file, so a second Open in this process
	// contends exactly like a second process would.
	const timeout = 100 * time.Millisecond
	start := time.Now()
	s2, err := bolt.Open(path, bolt.Options{LockTimeout: timeout})
	if err == nil {
		s2.Close()
		t.Fatalf("second Open = nil error, want ErrInUse")
	}
	if !errors.Is(err, bolt.ErrInUse) {
		t.Errorf("second Open = %v, want ErrInUse", err)
	}
	if want := "bolt: database " + path + " is in use by another process"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("second Open error = %q, want prefix %q", err, want)
	}
	if d := time.Since(start); d > 10*timeout {
		t.Errorf("second Open took %v, want about the lock timeout %v", d, timeout)
	}
}

func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "keyferry")
	path := filepath.Join(dir, "kf.db")
	s := open(t, path, bolt.Options{})
	defer s.Close()
	tests := []struct {
		path string
		want os.FileMode
	}{
		{path, 0o600},
		{dir, 0o700 | os.ModeDir},
		{filepath.Dir(dir), 0o700 | os.ModeDir},
	}
	for _, tt := range tests {
		fi, err := os.Stat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		// umask can only remove bits, so anything beyond the wanted
		// ones is our bug.
		if got := fi.Mode(); got&^tt.want != 0 {
			t.Errorf("mode of %s = %v, want at most %v", tt.path, got, tt.want)
		}
	}
}

func TestOpenNotABoltFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kf.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := bolt.Open(path, bolt.Options{})
	if err == nil {
		s.Close()
		t.Fatalf("Open(garbage) = nil error, want an error")
	}
	if !strings.HasPrefix(err.Error(), "bolt: open "+path) {
		t.Errorf("Open(garbage) error = %q, want prefix %q", err, "bolt: open "+path)
	}
}

// TestBatchIsolatesFailedConditions pins down the bbolt behaviour the
// contract leans on: with concurrent commits sharing a batch, one whose
// condition fails makes bbolt re-run the batch without it and then run it
// alone. Every caller gets its own result, and the failed one writes
// nothing.
func TestBatchIsolatesFailedConditions(t *testing.T) {
	// A long delay and a batch size equal to the number of callers make
	// all of them share one batch without relying on timing.
	const callers = 8
	path := filepath.Join(t.TempDir(), "kf.db")
	s := open(t, path, bolt.Options{NoSync: true})
	if err := s.Commit(t.Context(), nil, []storage.Op{storage.Put("taken", nil)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path, bolt.Options{MaxBatchDelay: time.Minute, MaxBatchSize: callers, NoSync: true})
	defer s.Close()

	results := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			var conds []storage.Cond
			key := "ok/" + string(rune('a'+i))
			if i == 0 {
				conds, key = []storage.Cond{storage.Absent("taken")}, "failed"
			}
			results[i] = s.Commit(t.Context(), conds, []storage.Op{storage.Put(key, []byte("x"))})
		})
	}
	wg.Wait()

	if !errors.Is(results[0], storage.ErrConflict) {
		t.Errorf("failing caller got %v, want ErrConflict", results[0])
	}
	for i, err := range results[1:] {
		if err != nil {
			t.Errorf("caller %d got %v, want nil", i+1, err)
		}
	}
	for i := 1; i < callers; i++ {
		if _, err := s.Get(t.Context(), "ok/"+string(rune('a'+i))); err != nil {
			t.Errorf("caller %d's write: Get = %v, want nil", i, err)
		}
	}
	if _, err := s.Get(t.Context(), "failed"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get(failed) = %v, want ErrNotFound", err)
	}
}

// TestFreelistIsPersisted: the file records its freelist, so Open reads
// it instead of walking every page of the file to rebuild it (which made
// start-up time and memory grow with the number of leases). The check
// reads bbolt's meta pages as laid out on disk (format version 2).
func TestFreelistIsPersisted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kf.db")
	s := open(t, path, bolt.Options{})
	for i := range 3 {
		err := s.Commit(t.Context(), nil, []storage.Op{storage.Put(fmt.Sprintf("leases/%d", i), make([]byte, 3000))})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Each meta page: a 16-byte page header, then magic, version,
	// page size, flags (4 bytes each), the root bucket (16), and the
	// freelist page id, the high-water page id and the txid (8 each).
	const pgidNoFreelist = ^uint64(0)
	pageSize := int(binary.LittleEndian.Uint32(b[16+8:]))
	var freelist, txid uint64
	for _, off := range []int{0, pageSize} {
		m := b[off+16:]
		if binary.LittleEndian.Uint32(m) != 0xED0CDAED {
			t.Fatalf("no bbolt meta page at offset %d", off)
		}
		if id := binary.LittleEndian.Uint64(m[48:]); id >= txid {
			txid, freelist = id, binary.LittleEndian.Uint64(m[32:])
		}
	}
	if freelist == pgidNoFreelist {
		t.Errorf("the latest meta page (txid %d) has no freelist: Open would walk the whole file to rebuild it", txid)
	}
}

// TestUnchangedComparesValues: bolt keeps no revisions, so an Unchanged
// condition holds while the key's bytes are those that were read, even
// after a rewrite of the same bytes (memory and etcd compare revisions;
// the contract allows both).
func TestUnchangedComparesValues(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "kf.db"), bolt.Options{NoSync: true})
	defer s.Close()
	if _, err := storagetest.UnchangedAfterRewrite(t, s); err != nil {
		t.Errorf("Unchanged after an identical rewrite = %v, want nil", err)
	}
}
