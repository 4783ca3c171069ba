package memory_test

import (
	"testing"

	"github.com/keyferry/keyferry/internal/storage/memory"
	"github.com/keyferry/keyferry/internal/storage/storagetest"
)

func BenchmarkUpdateParallel(b *testing.B) {
	s := memory.New()
	defer s.Close()
	storagetest.BenchUpdateParallel(b, s)
}
