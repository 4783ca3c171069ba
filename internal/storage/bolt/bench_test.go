package bolt_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/storage/bolt"
	"github.com/keyferry/keyferry/internal/storage/storagetest"
)

func openBench(b *testing.B, opts bolt.Options) *bolt.Store {
	b.Helper()
	s, err := bolt.Open(filepath.Join(b.TempDir(), "kf.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkUpdateParallel is the production configuration: durable, default
// options, 64 concurrent writers each putting a lease and its index entry.
func BenchmarkUpdateParallel(b *testing.B) {
	storagetest.BenchUpdateParallel(b, openBench(b, bolt.Options{}))
}

// BenchmarkUpdateParallelOptions is the sweep behind DefaultMaxBatchDelay:
// MaxBatchDelay with the commit gate, the same with bbolt's DB.Batch
// alone ("batchonly"), every Update committed on its own ("unbatched"),
// and no fsync at all ("nosync", the ceiling).
func BenchmarkUpdateParallelOptions(b *testing.B) {
	tests := []struct {
		name   string
		opts   bolt.Options
		noGate bool
	}{
		{name: "unbatched", opts: bolt.Options{MaxBatchSize: 1}},
		{name: "delay=250us", opts: bolt.Options{MaxBatchDelay: 250 * time.Microsecond}},
		{name: "delay=500us", opts: bolt.Options{MaxBatchDelay: 500 * time.Microsecond}},
		{name: "delay=1ms", opts: bolt.Options{MaxBatchDelay: time.Millisecond}},
		{name: "delay=2ms", opts: bolt.Options{MaxBatchDelay: 2 * time.Millisecond}},
		{name: "delay=5ms", opts: bolt.Options{MaxBatchDelay: 5 * time.Millisecond}},
		{name: "batchonly/delay=1ms", opts: bolt.Options{MaxBatchDelay: time.Millisecond}, noGate: true},
		{name: "batchonly/delay=2ms", opts: bolt.Options{MaxBatchDelay: 2 * time.Millisecond}, noGate: true},
		{name: "batchonly/delay=10ms", opts: bolt.Options{MaxBatchDelay: 10 * time.Millisecond}, noGate: true},
		{name: "nosync", opts: bolt.Options{NoSync: true}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			s := openBench(b, tt.opts)
			if tt.noGate {
				bolt.DisableCommitGate(s)
			}
			storagetest.BenchUpdateParallel(b, s)
		})
	}
}
