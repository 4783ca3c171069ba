package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
)

// linesOf encodes events as a file would hold them.
func linesOf(t *testing.T, evs []Event) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, ev := range evs {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(append(b, '\n'))
	}
	return buf.Bytes()
}

func TestMemory(t *testing.T) {
	m := NewMemory()
	for i := range 3 {
		if err := m.Write(t.Context(), testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	evs := m.Events()
	if len(evs) != 3 {
		t.Fatalf("got %d events, want 3", len(evs))
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) || ev.RequestID != testEvent(i).RequestID {
			t.Errorf("event %d: got seq %d request %q, want seq %d request %q", i, ev.Seq, ev.RequestID, i+1, testEvent(i).RequestID)
		}
	}
	rep, err := Verify(bytes.NewReader(linesOf(t, evs)))
	if err != nil {
		t.Fatalf("Memory's events do not form a valid chain: %v", err)
	}
	if rep.LastHash != evs[2].Hash {
		t.Errorf("got last hash %s, want %s", rep.LastHash, evs[2].Hash)
	}
	evs[0].Identity.Project = "changed"
	if got := m.Events()[0].Identity.Project; got != "g/p" {
		t.Errorf("got project %q after changing a returned copy, want %q", got, "g/p")
	}
}

func TestMemoryErrors(t *testing.T) {
	injected := errors.New("disk on fire")
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	for _, tc := range []struct {
		name    string
		setErr  error
		ctx     context.Context
		wantErr error
	}{
		{"SetErr", injected, t.Context(), injected},
		{"context done", nil, cancelled, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemory()
			m.SetErr(tc.setErr)
			if err := m.Write(tc.ctx, testEvent(1)); !errors.Is(err, tc.wantErr) {
				t.Errorf("got error %v, want %v", err, tc.wantErr)
			}
			if got := len(m.Events()); got != 0 {
				t.Errorf("got %d events after a failed write, want 0", got)
			}
			m.SetErr(nil)
			ev := testEvent(2)
			if err := m.Write(t.Context(), ev); err != nil {
				t.Fatalf("after SetErr(nil): %v", err)
			}
			if ev.Seq != 1 {
				t.Errorf("got seq %d, want 1", ev.Seq)
			}
		})
	}
}

func TestMemoryConcurrent(t *testing.T) {
	const writers, each = 16, 50
	m := NewMemory()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := m.Write(t.Context(), testEvent(w*each+i)); err != nil {
					t.Error(err)
				}
			}
		})
		wg.Go(func() { _ = m.Events() })
	}
	wg.Wait()
	rep, err := Verify(bytes.NewReader(linesOf(t, m.Events())))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != writers*each {
		t.Errorf("got %d events, want %d", rep.Events, writers*each)
	}
}
