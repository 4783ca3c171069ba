package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxBatch is the batch size limit when Options.MaxBatch is zero.
const DefaultMaxBatch = 1024

// maxBatchBytes bounds the bytes of one batch (at least one event is always
// taken), so a burst of large events does not make one huge write.
const maxBatchBytes = 4 << 20

// Options configure a FileSink. The zero value is ready for production.
type Options struct {
	// Now gives the time of events written with a zero Time. Default
	// time.Now. It is called in Write's goroutine, so it must be safe for
	// concurrent use. An event's time is when Write was called; its seq is
	// when it was committed, so times of neighbouring lines may be slightly
	// out of order.
	Now func() time.Time
	// NoSync skips fsync: Write no longer means durable. For tests and
	// benchmarks only; production MUST NOT set it.
	NoSync bool
	// OnFlush, if set, is called by the writer goroutine after every batch
	// has been acknowledged, with its number of events, the time the write
	// and fsync took, and the error every writer of the batch got. It is
	// meant for metrics: it must return quickly (the next batch waits for
	// it) and must not call Write.
	OnFlush func(events int, took time.Duration, err error)
	// MaxBatch bounds the events written and fsync'd together. Zero means
	// DefaultMaxBatch.
	MaxBatch int
}

// file is what FileSink needs of its *os.File once it is open; tests wrap it
// to inject errors.
type file interface {
	Write(p []byte) (int, error)
	Sync() error
	Truncate(size int64) error
	Close() error
}

// FileSink appends events to a hash-chained JSON-lines file (see the package
// documentation for the format). It group-commits: one goroutine takes
// every queued event (up to Options.MaxBatch), writes them with one write
// and one fsync, then acknowledges each writer. Use OpenFile; a FileSink is
// safe for concurrent use.
type FileSink struct {
	path      string
	opts      Options
	maxBatch  int
	f         file
	recovered string

	wake chan struct{} // capacity 1: "the queue may be non-empty"
	done chan struct{} // closed when the writer goroutine exits

	mu     sync.Mutex
	queue  []*request
	closed bool
	broken error // wraps ErrBroken once set; never reset

	// Owned by the writer goroutine (and by openFile before it starts).
	seq  uint64 // of the last durable line
	hash string // of the last durable line
	size int64  // of the file up to and including the last durable line
	buf  []byte
}

// Request states. A request moves from queued to either taken (by the
// writer) or cancelled (by its caller's context), never both.
const (
	stateQueued int32 = iota
	stateTaken
	stateCancelled
)

type request struct {
	body  []byte
	state atomic.Int32
	res   result      // written by the writer goroutine before done
	done  chan result // capacity 1
}

type result struct {
	seq            uint64
	prevHash, hash string
	err            error
}

// OpenFile opens the audit file at path for appending, creating it (mode
// 0600, and its directory, mode 0700) if needed, and starts its writer
// goroutine. The file is locked against other processes.
//
// An existing file continues its chain from its last complete line. If the
// file ends with a partial line, left by a crash during a write, it is cut
// off and Recovered says so. If the last complete line is not a valid audit
// line, OpenFile refuses the file: an operator must inspect it. OpenFile
// does not verify the rest of the file; use Verify for that.
func OpenFile(path string, opts Options) (*FileSink, error) {
	return openFile(path, opts, nil)
}

// openFile is OpenFile with a hook that wraps the opened file.
func openFile(path string, opts Options, wrap func(file) file) (*FileSink, error) {
	if opts.MaxBatch < 0 {
		return nil, fmt.Errorf("audit: MaxBatch is %d, want >= 0", opts.MaxBatch)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	created := err == nil
	if errors.Is(err, os.ErrExist) {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	s := &FileSink{
		path:     path,
		opts:     opts,
		maxBatch: opts.MaxBatch,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	if s.maxBatch == 0 {
		s.maxBatch = DefaultMaxBatch
	}
	if err := s.prepare(f, created); err != nil {
		f.Close()
		return nil, err
	}
	s.f = f
	if wrap != nil {
		s.f = wrap(f)
	}
	go s.run()
	return s, nil
}

// prepare locks f and recovers the chain state from its tail.
func (s *FileSink) prepare(f *os.File, created bool) error {
	if err := lockFile(f); err != nil {
		return fmt.Errorf("audit: lock %s (is another keyferry process writing to it?): %w", s.path, err)
	}
	if created {
		// Make the new directory entry durable too.
		if err := syncDir(filepath.Dir(s.path)); err != nil {
			return err
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("audit: %s is not a regular file", s.path)
	}
	return s.recoverTail(f, fi.Size())
}

// recoverTail sets seq, hash and size from the last complete line of f,
// cutting off a partial last line first.
func (s *FileSink) recoverTail(f *os.File, size int64) error {
	if size == 0 {
		return nil
	}
	// The window holds a partial line (< MaxLineBytes), the last complete
	// line with its newline, and the newline before it.
	window := min(size, 2*(MaxLineBytes+1))
	base := size - window
	buf := make([]byte, window)
	if n, err := f.ReadAt(buf, base); n != len(buf) {
		return fmt.Errorf("audit: read the end of %s: %w", s.path, err)
	}
	tooLong := fmt.Errorf("audit: %s: last line is longer than %d bytes; refusing to open it, an operator must inspect the file", s.path, MaxLineBytes)
	end := len(buf) // end of the complete lines in buf
	if buf[end-1] != '\n' {
		end = bytes.LastIndexByte(buf, '\n') + 1
		if (end == 0 && base > 0) || len(buf)-end > MaxLineBytes {
			return tooLong
		}
		keep := base + int64(end)
		if err := f.Truncate(keep); err != nil {
			return fmt.Errorf("audit: cut the partial last line of %s: %w", s.path, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("audit: fsync %s: %w", s.path, err)
		}
		s.recovered = fmt.Sprintf("removed a %d-byte partial line at offset %d (write interrupted by a crash)", size-keep, keep)
		size = keep
		if size == 0 {
			s.recovered += "; the file is empty again"
			return nil
		}
	}
	start := bytes.LastIndexByte(buf[:end-1], '\n') + 1
	if (start == 0 && base > 0) || end-1-start > MaxLineBytes {
		return tooLong
	}
	l, err := parseLine(buf[start : end-1])
	if err != nil {
		return fmt.Errorf("audit: %s: last line (offset %d) is not a valid audit line: %v; refusing to open it, an operator must inspect the file", s.path, base+int64(start), err)
	}
	if s.recovered != "" {
		s.recovered += fmt.Sprintf("; the chain continues after seq %d", l.Seq)
	}
	s.seq, s.hash, s.size = l.Seq, l.Hash, size
	return nil
}

// Recovered describes what OpenFile repaired, or is "" when the file was
// clean. The server should log it.
func (s *FileSink) Recovered() string { return s.recovered }

// Write appends ev and returns once it is durable, setting ev.Seq,
// ev.PrevHash, ev.Hash and (if zero) ev.Time. Write encodes a snapshot of ev
// before queueing it and sets those fields only on success, in the caller's
// goroutine: ev is the caller's again as soon as Write returns, whatever
// the outcome.
//
// Write honours ctx while it waits. If ctx ends before the writer goroutine
// took the event, the event is never written. If it ends later, Write
// returns an error saying the event may still be written: the file can then
// hold an event whose writer saw an error (the safe direction for a broker
// that fails closed).
func (s *FileSink) Write(ctx context.Context, ev *Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit: event not written: %w", err)
	}
	e := *ev
	e.Time = utcTime(e.Time, s.opts.Now)
	body, err := encodeBody(&e)
	if err != nil {
		return err
	}
	r := &request{body: body, done: make(chan result, 1)}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.broken != nil:
		err := s.broken
		s.mu.Unlock()
		return err
	}
	s.queue = append(s.queue, r)
	s.mu.Unlock()
	s.signal()

	var res result
	select {
	case res = <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(stateQueued, stateCancelled) {
			return fmt.Errorf("audit: event not written: %w", ctx.Err())
		}
		select {
		case res = <-r.done: // finished meanwhile: report the outcome
		default:
			return fmt.Errorf("audit: event may still be written: %w", ctx.Err())
		}
	}
	if res.err != nil {
		return res.err
	}
	ev.Seq, ev.Time, ev.PrevHash, ev.Hash = res.seq, e.Time, res.prevHash, res.hash
	return nil
}

// Run makes the sink a part of a task group: it returns when ctx is done,
// after closing the sink (every event already queued is written) and with
// the error of closing it. The writer goroutine starts with OpenFile, so
// events can be written before Run is called; cancel ctx only after
// everything that writes to the sink has stopped.
func (s *FileSink) Run(ctx context.Context) error {
	<-ctx.Done()
	return s.Close()
}

// Close writes every event already queued, stops the writer goroutine and
// closes the file. Write after Close returns ErrClosed, and so does a second
// Close. Close the sink only after everything that writes to it has stopped.
func (s *FileSink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	s.signal()
	<-s.done
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("audit: close %s: %w", s.path, err)
	}
	return nil
}

func (s *FileSink) signal() {
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// run is the writer goroutine.
func (s *FileSink) run() {
	defer close(s.done)
	var batch []*request
	for range s.wake {
		for {
			var closed bool
			batch, closed = s.take(batch[:0])
			if len(batch) == 0 {
				if closed {
					return
				}
				break
			}
			s.flush(batch)
			clear(batch)
		}
	}
}

// take moves queued requests into batch, up to the batch limits, skipping
// cancelled ones. It also reports whether the sink is closed.
func (s *FileSink) take(batch []*request) ([]*request, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, n := 0, 0
	for i < len(s.queue) && len(batch) < s.maxBatch && n < maxBatchBytes {
		r := s.queue[i]
		i++
		if r.state.CompareAndSwap(stateQueued, stateTaken) {
			batch = append(batch, r)
			n += len(r.body) + lineOverhead
		}
	}
	rest := copy(s.queue, s.queue[i:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	return batch, s.closed
}

// flush commits batch, acknowledges its writers and reports to OnFlush.
func (s *FileSink) flush(batch []*request) {
	start := time.Now() // a duration for metrics, not an event time
	err := s.commit(batch)
	took := time.Since(start)
	for _, r := range batch {
		if err != nil {
			r.res = result{err: err}
		}
		r.done <- r.res
	}
	if s.opts.OnFlush != nil {
		s.opts.OnFlush(len(batch), took, err)
	}
}

// commit writes batch with one write and one fsync. On failure it cuts the
// file back to its last durable size, or marks the sink broken if it cannot.
func (s *FileSink) commit(batch []*request) error {
	s.mu.Lock()
	broken := s.broken
	s.mu.Unlock()
	if broken != nil {
		return broken
	}
	buf := s.buf[:0]
	seq, hash := s.seq, s.hash
	for _, r := range batch {
		prev := hash
		seq++
		buf, hash = appendLine(buf, seq, prev, r.body)
		r.res = result{seq: seq, prevHash: prev, hash: hash}
	}
	if cap(buf) <= maxBatchBytes+MaxLineBytes {
		s.buf = buf
	}
	err := s.writeSync(buf)
	if err == nil {
		s.seq, s.hash, s.size = seq, hash, s.size+int64(len(buf))
		return nil
	}
	if rerr := s.rollback(); rerr != nil {
		broken := fmt.Errorf("%w: %s may end with a partial batch: %w (after: %w)", ErrBroken, s.path, rerr, err)
		s.mu.Lock()
		s.broken = broken
		s.mu.Unlock()
		return broken
	}
	return err
}

func (s *FileSink) writeSync(buf []byte) error {
	n, err := s.f.Write(buf)
	if err == nil && n != len(buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("audit: write %s: %w", s.path, err)
	}
	if s.opts.NoSync {
		return nil
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("audit: fsync %s: %w", s.path, err)
	}
	return nil
}

// rollback cuts the file back to its last durable size and makes the cut
// durable, so the next batch continues the chain from the last durable line.
func (s *FileSink) rollback() error {
	if err := s.f.Truncate(s.size); err != nil {
		return fmt.Errorf("truncate to %d bytes: %w", s.size, err)
	}
	if s.opts.NoSync {
		return nil
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("fsync after truncate: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("audit: fsync directory %s: %w", dir, err)
	}
	return nil
}
