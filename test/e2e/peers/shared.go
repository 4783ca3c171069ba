package peers

import (
	"sync"
	"testing"
)

// Shared starts a set of peers once per test binary, on the first Get, and
// hands the same value to every later Get. Tests that need pristine state
// use StartSeaweedFS instead; tests sharing peers use names (buckets, keys,
// session names) unique to the test.
//
// Declare it at package level in the test package:
//
//	var stack = peers.NewShared(func() (*Stack, error) { … })
//
// and optionally close it from TestMain. Without Close, the peers die with
// the test binary (LaunchSeaweedFS sets a parent-death signal), which
// leaves its temp dir behind.
type Shared[T any] struct {
	start func() (T, error)
	close func(T)

	once    sync.Once
	started bool
	v       T
	err     error
}

// NewShared returns a Shared that starts its value with start and stops it
// with stop (which may be nil).
func NewShared[T any](start func() (T, error), stop func(T)) *Shared[T] {
	return &Shared[T]{start: start, close: stop}
}

// Get returns the shared value, starting it on first use. If the value has
// a LogOnFailure(testing.TB) method (SeaweedFS, Stack), Get calls it for t.
// If starting failed, every Get fails its test with the same error (or skips it when the
// error is ErrPeerMissing and KEYFERRY_E2E_ALLOW_SKIP=1).
func (s *Shared[T]) Get(t testing.TB) T {
	t.Helper()
	s.once.Do(func() { s.v, s.err = s.start(); s.started = true })
	if s.err != nil {
		failOrSkip(t, s.err)
	}
	if l, ok := any(s.v).(interface{ LogOnFailure(testing.TB) }); ok {
		l.LogOnFailure(t) // a shared SeaweedFS's log goes to the test that failed
	}
	return s.v
}

// Close stops the value if it was started. Call it from TestMain after
// m.Run.
func (s *Shared[T]) Close() {
	s.once.Do(func() {}) // forbid a start after Close
	if s.started && s.err == nil && s.close != nil {
		var zero T
		s.close(s.v)
		s.v = zero
	}
}
