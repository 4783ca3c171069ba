package audit

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Memory is a Writer that keeps events in memory, for other packages'
// tests. It assigns Seq, PrevHash and Hash exactly as a FileSink would, so
// its events form a valid chain. It is safe for concurrent use.
type Memory struct {
	mu     sync.Mutex
	events []Event
	err    error
	buf    []byte
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{} }

// Write stores a copy of ev, setting ev.Seq, ev.PrevHash, ev.Hash and, if
// zero, ev.Time (from time.Now, in UTC). It returns the error given to
// SetErr, if any, without storing anything, and ctx's error if ctx is done.
func (m *Memory) Write(ctx context.Context, ev *Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit: event not written: %w", err)
	}
	e := cloneEvent(*ev)
	e.Time = utcTime(e.Time, time.Now)
	body, err := encodeBody(&e)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	e.Seq = uint64(len(m.events)) + 1
	if len(m.events) > 0 {
		e.PrevHash = m.events[len(m.events)-1].Hash
	}
	m.buf, e.Hash = appendLine(m.buf[:0], e.Seq, e.PrevHash, body)
	m.events = append(m.events, e)
	ev.Seq, ev.Time, ev.PrevHash, ev.Hash = e.Seq, e.Time, e.PrevHash, e.Hash
	return nil
}

// Events returns copies of the events written so far, in order.
func (m *Memory) Events() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Event, len(m.events))
	for i, e := range m.events {
		out[i] = cloneEvent(e)
	}
	return out
}

// SetErr makes every later Write fail with err, until SetErr(nil).
func (m *Memory) SetErr(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.err = err
}

// cloneEvent returns a deep copy of e. TestCloneEventIsDeep fails when a new
// field needs handling here.
func cloneEvent(e Event) Event {
	if e.Identity != nil {
		id := *e.Identity
		e.Identity = &id
	}
	return e
}
