package memory_test

import (
	"testing"

	"github.com/keyferry/keyferry/internal/storage"
	"github.com/keyferry/keyferry/internal/storage/memory"
	"github.com/keyferry/keyferry/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Store { return memory.New() })
}
