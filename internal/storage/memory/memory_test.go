package memory_test

import (
	"errors"
	"testing"

	"github.com/keyferry/keyferry/internal/storage"
	"github.com/keyferry/keyferry/internal/storage/memory"
	"github.com/keyferry/keyferry/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Store { return memory.New() })
}

// TestUnchangedComparesRevisions: like etcd, the memory store breaks an
// Unchanged condition when the key was rewritten, even with the same
// bytes (bolt, which compares values, does not; the contract allows both).
func TestUnchangedComparesRevisions(t *testing.T) {
	s := memory.New()
	read, err := storagetest.UnchangedAfterRewrite(t, s)
	if !errors.Is(err, storage.ErrConflict) {
		t.Errorf("Unchanged after an identical rewrite = %v, want ErrConflict", err)
	}
	again, err := s.Get(t.Context(), "k")
	if err != nil || again.Rev <= read.Rev {
		t.Errorf("revision after a rewrite = %d (%v), want more than %d", again.Rev, err, read.Rev)
	}
}
