package bolt_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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

// TestConformanceUnbatched runs the suite with every Update committed on
// its own, the path bbolt takes to re-run a failed fn.
func TestConformanceUnbatched(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return open(t, filepath.Join(t.TempDir(), "kf.db"), bolt.Options{MaxBatchSize: 1, NoSync: true})
	})
}

func TestDurableAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kf.db")
	s := open(t, path, bolt.Options{})
	err := s.Update(t.Context(), func(tx storage.Txn) error {
		if err := tx.Put("leases/1", []byte("lease")); err != nil {
			return err
		}
		return tx.Put("empty", nil)
	})
	if err != nil {
		t.Fatalf("Update = %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v, want nil", err)
	}

	s = open(t, path, bolt.Options{})
	defer s.Close()
	tests := []struct{ key, want string }{{"leases/1", "lease"}, {"empty", ""}}
	for _, tt := range tests {
		got, err := storage.Get(t.Context(), s, tt.key)
		if err != nil || string(got) != tt.want {
			t.Errorf("after reopen, Get(%q) = %q, %v; want %q, nil", tt.key, got, err, tt.want)
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

// TestBatchRerunsFailingFn pins down the bbolt behaviour the contract leans
// on: with concurrent callers sharing a batch, a failing fn is run again
// alone (after the batch is re-run without it). Every caller still gets its
// own result.
func TestBatchRerunsFailingFn(t *testing.T) {
	// A long delay and a batch size equal to the number of callers make
	// all of them share one batch without relying on timing.
	const callers = 8
	s := open(t, filepath.Join(t.TempDir(), "kf.db"), bolt.Options{
		MaxBatchDelay: time.Minute, MaxBatchSize: callers, NoSync: true,
	})
	defer s.Close()

	var failRuns, okRuns atomic.Int32
	errFail := errors.New("fail")
	results := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			results[i] = s.Update(t.Context(), func(tx storage.Txn) error {
				if i == 0 {
					failRuns.Add(1)
					if err := tx.Put("failed", []byte("x")); err != nil {
						return err
					}
					return errFail
				}
				okRuns.Add(1)
				return tx.Put("ok/"+string(rune('a'+i)), []byte("x"))
			})
		})
	}
	wg.Wait()

	if !errors.Is(results[0], errFail) {
		t.Errorf("failing caller got %v, want its own error", results[0])
	}
	for i, err := range results[1:] {
		if err != nil {
			t.Errorf("caller %d got %v, want nil", i+1, err)
		}
	}
	if got := failRuns.Load(); got != 2 {
		t.Errorf("failing fn ran %d times, want 2 (in the batch, then alone)", got)
	}
	if got := okRuns.Load(); got < callers-1 {
		t.Errorf("other fns ran %d times in all, want at least %d", got, callers-1)
	}
	for i := 1; i < callers; i++ {
		if _, err := storage.Get(t.Context(), s, "ok/"+string(rune('a'+i))); err != nil {
			t.Errorf("caller %d's write: Get = %v, want nil", i, err)
		}
	}
	if _, err := storage.Get(t.Context(), s, "failed"); !errors.Is(err, storage.ErrNotFound) {
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
		err := s.Update(t.Context(), func(tx storage.Txn) error {
			return tx.Put(fmt.Sprintf("leases/%d", i), make([]byte, 3000))
		})
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
