package storagetest

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/storage"
)

// BenchWriters is how many goroutines BenchCommitParallel runs: the
// concurrency keyferry is sized for.
const BenchWriters = 64

// BenchCommitParallel measures issuance-shaped writes: each Commit creates
// a ~400-byte lease (on the condition that it is absent) and puts its
// ~64-byte expiry index entry, from
// BenchWriters goroutines at once (b.SetParallelism(BenchWriters/GOMAXPROCS)).
// Keys increase, as lease ids and expiry times do. It reports throughput
// (txn/s) and the p50 and p99 latency of one Commit.
func BenchCommitParallel(b *testing.B, s storage.Store) {
	lease := bytes.Repeat([]byte("l"), 400)
	index := bytes.Repeat([]byte("i"), 64)
	var next atomic.Uint64
	var mu sync.Mutex
	var lat []time.Duration

	b.SetParallelism(max(1, BenchWriters/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			id := next.Add(1)
			start := time.Now()
			key := fmt.Sprintf("leases/%016x", id)
			err := s.Commit(b.Context(), []storage.Cond{storage.Absent(key)}, []storage.Op{
				storage.Put(key, lease),
				storage.Put(fmt.Sprintf("expiry/%020d/%016x", id, id), index),
			})
			mine = append(mine, time.Since(start))
			if err != nil {
				b.Errorf("Commit = %v, want nil", err)
				return
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()

	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txn/s")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	b.ReportMetric(0, "ns/op") // per-op time of 64 overlapping writers misleads; see txn/s
}
