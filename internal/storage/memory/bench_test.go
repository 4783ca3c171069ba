package memory_test

import (
	"testing"

	"github.com/keyferry/keyferry/internal/storage/memory"
	"github.com/keyferry/keyferry/internal/storage/storagetest"
)

func BenchmarkCommitParallel(b *testing.B) {
	s := memory.New()
	defer s.Close()
	storagetest.BenchCommitParallel(b, s)
}
