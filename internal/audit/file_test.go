package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// writeN writes n test events one after the other and returns them.
func writeN(t *testing.T, s *FileSink, n int) []*Event {
	t.Helper()
	evs := make([]*Event, n)
	for i := range evs {
		evs[i] = testEvent(i)
		if err := s.Write(t.Context(), evs[i]); err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
	}
	return evs
}

func mustOpen(t *testing.T, path string, opts Options) *FileSink {
	t.Helper()
	s, err := OpenFile(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeAndClose writes evs through s, closes it and returns the content of
// its file, path.
func writeAndClose(t *testing.T, s *FileSink, path string, evs ...*Event) []byte {
	t.Helper()
	for _, ev := range evs {
		if err := s.Write(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, s)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// appendAfterRecovery opens content as an audit log, checks that the
// sink reports a recovery mentioning wantRecovered, appends ev and checks
// that ev got seq wantSeq and the file verifies with wantSeq events.
func appendAfterRecovery(t *testing.T, content []byte, opts Options, wantRecovered string, ev *Event, wantSeq uint64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, path, opts)
	if got := s.Recovered(); !strings.Contains(got, wantRecovered) {
		t.Errorf("got Recovered() %q, want it to report %q", got, wantRecovered)
	}
	writeAndClose(t, s, path, ev)
	if ev.Seq != wantSeq {
		t.Errorf("got seq %d, want %d", ev.Seq, wantSeq)
	}
	if got := verifyFile(t, path); got.Events != int(wantSeq) {
		t.Errorf("got %d events, want %d", got.Events, wantSeq)
	}
}

func mustClose(t *testing.T, s *FileSink) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestFileSinkChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := mustOpen(t, path, Options{})
	evs := writeN(t, s, 200)
	mustClose(t, s)

	prev := ""
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) || ev.PrevHash != prev || len(ev.Hash) != 64 {
			t.Fatalf("event %d: got seq %d prev_hash %q hash %q, want seq %d prev_hash %q and a hash", i, ev.Seq, ev.PrevHash, ev.Hash, i+1, prev)
		}
		prev = ev.Hash
	}
	rep := verifyFile(t, path)
	want := Report{Events: 200, First: 1, Last: 200, LastHash: evs[199].Hash}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	// Every line decodes to the event written.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		var got Event
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if diff := cmp.Diff(*evs[i], got); diff != "" {
			t.Fatalf("line %d (-written +read):\n%s", i+1, diff)
		}
	}
}

func TestFileSinkTime(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	now := time.Date(2025, 1, 2, 3, 4, 5, 6, berlin)
	for _, tc := range []struct {
		name string
		in   time.Time
		want string
	}{
		{"zero takes Now in UTC", time.Time{}, `"time":"2025-01-02T02:04:05.000000006Z"`},
		{"set is kept, in UTC", time.Date(2024, 6, 1, 12, 0, 0, 0, berlin), `"time":"2024-06-01T11:00:00Z"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			s := mustOpen(t, path, Options{Now: func() time.Time { return now }, NoSync: true})
			ev := &Event{Type: TypeServerStart, Time: tc.in}
			b := writeAndClose(t, s, path, ev)
			if !bytes.Contains(b, []byte(tc.want)) {
				t.Errorf("got line %s, want it to contain %s", b, tc.want)
			}
			if ev.Time.Location() != time.UTC {
				t.Errorf("got ev.Time in %v, want UTC", ev.Time.Location())
			}
		})
	}
}

// TestWriteSnapshotsEvent checks that the caller's event is encoded when
// Write is called, so changing it afterwards changes nothing.
func TestWriteSnapshotsEvent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := mustOpen(t, path, Options{NoSync: true})
	ev := testEvent(1)
	if err := s.Write(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	ev.Identity.Project = "changed"
	ev.Seq = 0
	b := writeAndClose(t, s, path, ev)
	if got := bytes.Count(b, []byte(`"project":"g/p"`)); got != 1 {
		t.Errorf("got %d lines with the original project, want 1", got)
	}
	if ev.Seq != 2 {
		t.Errorf("got seq %d, want 2", ev.Seq)
	}
}

func TestOpenFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "audit")
	path := filepath.Join(dir, "audit.log")
	s := mustOpen(t, path, Options{NoSync: true})
	writeN(t, s, 1)
	mustClose(t, s)
	for _, tc := range []struct {
		path string
		want os.FileMode
	}{
		{path, 0o600},
		{dir, 0o700 | os.ModeDir},
	} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != tc.want {
			t.Errorf("%s: got mode %v, want %v", tc.path, got, tc.want)
		}
	}
}

func TestOpenFileLocks(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock on windows")
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	s := mustOpen(t, path, Options{NoSync: true})
	_, err := OpenFile(path, Options{NoSync: true})
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Errorf("got error %v for a second sink on the same file, want a lock error", err)
	}
	mustClose(t, s)
	s = mustOpen(t, path, Options{NoSync: true}) // the lock went with Close
	mustClose(t, s)
}

func TestReopenContinuesChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := mustOpen(t, path, Options{})
	first := writeN(t, s, 3)
	mustClose(t, s)

	s = mustOpen(t, path, Options{})
	if got := s.Recovered(); got != "" {
		t.Errorf("got Recovered() %q for a clean file, want \"\"", got)
	}
	ev := testEvent(9)
	if err := s.Write(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	if ev.Seq != 4 || ev.PrevHash != first[2].Hash {
		t.Errorf("got seq %d prev_hash %s, want seq 4 prev_hash %s", ev.Seq, ev.PrevHash, first[2].Hash)
	}
	if got := verifyFile(t, path); got.Events != 4 {
		t.Errorf("got %d events, want 4", got.Events)
	}
}

func TestReopenCutsPartialLine(t *testing.T) {
	good := join(chainLines(t, 3, 1, ""))
	next := chainLines(t, 4, 1, "")[3]
	for _, tc := range []struct {
		name    string
		content []byte
		wantSeq uint64
	}{
		{"half a line", append(bytes.Clone(good), next[:len(next)/2]...), 4},
		{"a line without its newline", append(bytes.Clone(good), next[:len(next)-1]...), 4},
		{"zeros after a crash", append(bytes.Clone(good), make([]byte, 4096)...), 4},
		{"only a partial line", next[:20], 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			appendAfterRecovery(t, tc.content, Options{}, "partial line", testEvent(7), tc.wantSeq)
		})
	}
}

// TestReopenLongestLines puts the recovery window's edge exactly on the
// newline before a longest last line followed by a longest partial line.
func TestReopenLongestLines(t *testing.T) {
	first := lineOfSize(t, 200, 1, "")
	l, err := parseLine(bytes.TrimSuffix(first, []byte("\n")))
	if err != nil {
		t.Fatal(err)
	}
	second := lineOfSize(t, MaxLineBytes, 2, l.Hash)
	content := slices.Concat(first, second, bytes.Repeat([]byte("x"), MaxLineBytes))
	if got, want := len(content)-2*(MaxLineBytes+1), len(first)-1; got != want {
		t.Fatalf("window starts at %d, want at %d (the first newline)", got, want)
	}
	appendAfterRecovery(t, content, Options{NoSync: true}, "removed a 1048576-byte partial line", testEvent(1), 3)
}

func TestOpenFileRefuses(t *testing.T) {
	good := join(chainLines(t, 3, 1, ""))
	tampered := join(append(chainLines(t, 2, 1, ""), bytes.Replace(chainLines(t, 3, 1, "")[2], []byte("deploy"), []byte("admin!"), 1)))
	for _, tc := range []struct {
		name    string
		content []byte
		dir     bool
		wantErr string
	}{
		{"last line not an audit line", append(bytes.Clone(good), "hello\n"...), false, fmt.Sprintf("last line (offset %d) is not a valid audit line", len(good))},
		{"last line modified", tampered, false, "hash mismatch (event modified)"},
		{"last line too long", append(append(bytes.Clone(good), bytes.Repeat([]byte("x"), MaxLineBytes+1)...), '\n'), false, "last line is longer than 1048576 bytes"},
		{"partial line too long", append(bytes.Clone(good), bytes.Repeat([]byte("x"), 2*MaxLineBytes+10)...), false, "last line is longer than 1048576 bytes"},
		{"a directory", nil, true, "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			var err error
			if tc.dir {
				err = os.Mkdir(path, 0o700)
			} else {
				err = os.WriteFile(path, tc.content, 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			s, err := OpenFile(path, Options{})
			if err == nil {
				s.Close()
				t.Fatal("got no error, want OpenFile to refuse the file")
			}
			if !strings.HasPrefix(err.Error(), "audit: ") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %q, want it to start %q and contain %q", err, "audit: ", tc.wantErr)
			}
			if !tc.dir {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b, tc.content) {
					t.Error("OpenFile changed a file it refused")
				}
			}
		})
	}
}

// TestConcurrentWriters races 64 writers with real fsync.
func TestConcurrentWriters(t *testing.T) {
	const writers, each = 64, 100
	var flushes flushLog
	path := filepath.Join(t.TempDir(), "audit.log")
	s := mustOpen(t, path, Options{OnFlush: flushes.onFlush})
	seqs := make(chan uint64, writers*each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				ev := testEvent(w*each + i)
				if err := s.Write(t.Context(), ev); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				seqs <- ev.Seq
			}
		})
	}
	wg.Wait()
	mustClose(t, s)
	close(seqs)

	seen := make(map[uint64]bool)
	for seq := range seqs {
		if seen[seq] || seq < 1 || seq > writers*each {
			t.Fatalf("got seq %d twice or out of 1..%d", seq, writers*each)
		}
		seen[seq] = true
	}
	if got := len(seen); got != writers*each {
		t.Errorf("got %d distinct seqs, want %d", got, writers*each)
	}
	if got := verifyFile(t, path); got.Events != writers*each || got.Last != writers*each {
		t.Errorf("got %d events up to seq %d, want %d", got.Events, got.Last, writers*each)
	}
	sizes, _ := flushes.get()
	total, largest := 0, 0
	for _, n := range sizes {
		total += n
		largest = max(largest, n)
	}
	if total != writers*each || largest < 2 {
		t.Errorf("got %d flushes of %d events in all, largest %d; want %d events and some batch > 1", len(sizes), total, largest, writers*each)
	}
	t.Logf("%d flushes, %.1f events per flush on average, largest %d", len(sizes), float64(total)/float64(len(sizes)), largest)
}

// holdFirstFlush opens a sink whose writer, after its first one-event
// batch, waits in OnFlush until the test sends on (or closes) log.release.
// It returns when the writer is waiting there, so that later writes queue.
func holdFirstFlush(t *testing.T, opts Options) (*FileSink, *faultFile, *flushLog, string) {
	t.Helper()
	log := &flushLog{release: make(chan struct{})}
	opts.OnFlush = log.onFlush
	s, ff, path := openFault(t, opts)
	go func() {
		if err := s.Write(context.Background(), testEvent(0)); err != nil {
			t.Errorf("first write: %v", err)
		}
	}()
	synctest.Wait()
	if sizes, _ := log.get(); !cmp.Equal(sizes, []int{1}) {
		t.Fatalf("got flushes %v, want the writer held after [1]", sizes)
	}
	return s, ff, log, path
}

// startWrites starts n writes and returns their errors once done.
func startWrites(ctx context.Context, s *FileSink, n int) func() []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = s.Write(ctx, testEvent(100+i)) })
	}
	return func() []error { wg.Wait(); return errs }
}

func TestGroupCommit(t *testing.T) {
	for _, tc := range []struct {
		name        string
		maxBatch    int
		queued      int
		wantFlushes []int
	}{
		{"one batch", 0, 63, []int{1, 63}},
		{"split by MaxBatch", 4, 10, []int{1, 4, 4, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, ff, log, path := holdFirstFlush(t, Options{MaxBatch: tc.maxBatch})
				wait := startWrites(t.Context(), s, tc.queued)
				synctest.Wait() // every writer is queued
				close(log.release)
				for i, err := range wait() {
					if err != nil {
						t.Errorf("write %d: %v", i, err)
					}
				}
				mustClose(t, s)
				sizes, _ := log.get()
				if diff := cmp.Diff(tc.wantFlushes, sizes); diff != "" {
					t.Errorf("flush sizes (-want +got):\n%s", diff)
				}
				writes, syncs := ff.counts()
				if writes != len(tc.wantFlushes) || syncs != len(tc.wantFlushes) {
					t.Errorf("got %d writes and %d fsyncs, want one of each per batch (%d)", writes, syncs, len(tc.wantFlushes))
				}
				if got := verifyFile(t, path); got.Events != tc.queued+1 {
					t.Errorf("got %d events, want %d", got.Events, tc.queued+1)
				}
			})
		})
	}
}

func TestWriteErrorRecovers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(f *faultFile)
	}{
		{"write fails", func(f *faultFile) { f.failWrites = 1 }},
		{"write fails part way", func(f *faultFile) { f.failWrites, f.partial = 1, 300 }},
		{"fsync fails", func(f *faultFile) { f.failSyncs = 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, ff, log, path := holdFirstFlush(t, Options{})
				ff.set(tc.fault)
				wait := startWrites(t.Context(), s, 5)
				synctest.Wait()
				close(log.release)
				for i, err := range wait() {
					if !errors.Is(err, errInjected) || !strings.HasPrefix(err.Error(), "audit: ") {
						t.Errorf("write %d of the failed batch: got error %v, want the injected error prefixed %q", i, err, "audit: ")
					}
				}
				ev := testEvent(9)
				if err := s.Write(t.Context(), ev); err != nil {
					t.Fatalf("write after the failed batch: %v", err)
				}
				mustClose(t, s)
				if ev.Seq != 2 {
					t.Errorf("got seq %d after the failed batch, want 2", ev.Seq)
				}
				sizes, errs := log.get()
				if !cmp.Equal(sizes, []int{1, 5, 1}) || errs[1] == nil {
					t.Errorf("got flushes %v with errors %v, want [1 5 1] with the middle one failed", sizes, errs)
				}
				if got := verifyFile(t, path); got.Events != 2 {
					t.Errorf("got %d events in the file, want the 2 that succeeded", got.Events)
				}
			})
		})
	}
}

func TestBrokenSinkFailsClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, ff, log, _ := holdFirstFlush(t, Options{})
		ff.set(func(f *faultFile) { f.failWrites, f.partial, f.failTruncs = 1, 100, 1 })
		wait := startWrites(t.Context(), s, 3)
		synctest.Wait()
		close(log.release)
		for i, err := range wait() {
			if !errors.Is(err, ErrBroken) || !errors.Is(err, errInjected) {
				t.Errorf("write %d: got error %v, want ErrBroken wrapping the injected error", i, err)
			}
		}
		writes, _ := ff.counts()
		err := s.Write(t.Context(), testEvent(9))
		if !errors.Is(err, ErrBroken) {
			t.Errorf("write after the sink broke: got error %v, want ErrBroken", err)
		}
		if got, _ := ff.counts(); got != writes {
			t.Errorf("got %d file writes after the sink broke, want none", got-writes)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close of a broken sink: %v", err)
		}
	})
}

func TestWriteContext(t *testing.T) {
	t.Run("done before Write", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		s := mustOpen(t, path, Options{NoSync: true})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := s.Write(ctx, testEvent(1)); !errors.Is(err, context.Canceled) {
			t.Errorf("got error %v, want context.Canceled", err)
		}
		mustClose(t, s)
		if got := verifyFile(t, path); got.Events != 0 {
			t.Errorf("got %d events, want 0", got.Events)
		}
	})
	t.Run("cancelled while queued", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _, log, path := holdFirstFlush(t, Options{})
			ctx, cancel := context.WithCancel(t.Context())
			wait := startWrites(ctx, s, 1)
			synctest.Wait()
			cancel()
			err := wait()[0]
			if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "not written") {
				t.Errorf("got error %v, want context.Canceled and \"not written\"", err)
			}
			close(log.release)
			mustClose(t, s)
			if got := verifyFile(t, path); got.Events != 1 {
				t.Errorf("got %d events, want only the first (the cancelled one is never written)", got.Events)
			}
		})
	})
	t.Run("cancelled while being written", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, ff, path := openFault(t, Options{})
			block := make(chan struct{})
			ff.set(func(f *faultFile) { f.block = block })
			ctx, cancel := context.WithCancel(t.Context())
			wait := startWrites(ctx, s, 1)
			synctest.Wait() // the writer holds the event, in f.Write
			cancel()
			err := wait()[0]
			if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "may still be written") {
				t.Errorf("got error %v, want context.Canceled and \"may still be written\"", err)
			}
			close(block)
			mustClose(t, s)
			if got := verifyFile(t, path); got.Events != 1 {
				t.Errorf("got %d events, want 1 (taken before the cancel)", got.Events)
			}
		})
	})
}

func TestClose(t *testing.T) {
	t.Run("drains the queue", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _, log, path := holdFirstFlush(t, Options{})
			wait := startWrites(t.Context(), s, 10)
			synctest.Wait()
			closed := make(chan error)
			go func() { closed <- s.Close() }()
			synctest.Wait()
			if err := s.Write(t.Context(), testEvent(1)); !errors.Is(err, ErrClosed) {
				t.Errorf("Write while closing: got error %v, want ErrClosed", err)
			}
			close(log.release)
			if err := <-closed; err != nil {
				t.Errorf("Close: %v", err)
			}
			for i, err := range wait() {
				if err != nil {
					t.Errorf("queued write %d: %v", i, err)
				}
			}
			if got := verifyFile(t, path); got.Events != 11 {
				t.Errorf("got %d events, want 11", got.Events)
			}
		})
	})
	t.Run("write and close after close", func(t *testing.T) {
		s := mustOpen(t, filepath.Join(t.TempDir(), "audit.log"), Options{NoSync: true})
		mustClose(t, s)
		if err := s.Write(t.Context(), testEvent(1)); !errors.Is(err, ErrClosed) {
			t.Errorf("Write after Close: got error %v, want ErrClosed", err)
		}
		if err := s.Close(); !errors.Is(err, ErrClosed) {
			t.Errorf("second Close: got error %v, want ErrClosed", err)
		}
	})
}

func TestWriteTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := mustOpen(t, path, Options{NoSync: true})
	err := s.Write(t.Context(), &Event{Type: TypeDeny, Message: strings.Repeat("m", MaxLineBytes)})
	if err == nil || !strings.Contains(err.Error(), "line limit") {
		t.Errorf("got error %v, want a line limit error", err)
	}
	writeN(t, s, 1)
	mustClose(t, s)
	if got := verifyFile(t, path); got.Events != 1 {
		t.Errorf("got %d events, want 1", got.Events)
	}
}

func TestOpenFileBadOptions(t *testing.T) {
	_, err := OpenFile(filepath.Join(t.TempDir(), "audit.log"), Options{MaxBatch: -1})
	if err == nil || !strings.HasPrefix(err.Error(), "audit: ") {
		t.Errorf("got error %v, want an audit: error for MaxBatch -1", err)
	}
}
