package bolt

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/keyferry/keyferry/internal/storage"
)

// BenchmarkOpenLoopSlowCommit shows why the commit gate exists. Commits
// arrive at a fixed rate (Poisson), independent of how fast earlier ones
// finish, as requests to a server do. Each commit is made to cost 2 ms (the
// first commit run in every bbolt transaction sleeps while holding the
// writer lock, as a slow fsync would; NoSync keeps the real disk out of
// it), with the default 1 ms MaxBatchDelay. slowCommit is Commit with that
// sleep, with or without the gate.
//
// Without the gate, bbolt closes a batch every MaxBatchDelay however long
// commits take, so once commits are slower than the delay the batches
// queue, stay small, and the backlog grows for as long as the load lasts
// (stable only below 1/(commit-delay) = 1000 txn/s here). With the gate,
// the next batch takes everything that arrived during the previous commit.
// Compare p99-ms and max-inflight. Two runs on a 2-core VM, 2026-11-26,
//
//	go test -run '^$' -bench OpenLoop -count 2 ./internal/storage/bolt/
//
//	rate=1500/gate=true    p99  7.3-9.7 ms   max in flight   22-30
//	rate=1500/gate=false   p99  223-265 ms   max in flight  283-296
//	rate=5000/gate=true    p99  7.9 ms       max in flight   57-66
//	rate=5000/gate=false   p99  320-350 ms   max in flight  955-1273
func BenchmarkOpenLoopSlowCommit(b *testing.B) {
	const commit = 2 * time.Millisecond
	for _, rate := range []int{1500, 5000} {
		for _, gate := range []bool{true, false} {
			b.Run(fmt.Sprintf("rate=%d/gate=%v", rate, gate), func(b *testing.B) {
				s, err := Open(filepath.Join(b.TempDir(), "kf.db"), Options{NoSync: true})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				var lastTx atomic.Pointer[bbolt.Tx]
				ops := []storage.Op{storage.Put("k", nil)}
				rng := rand.New(rand.NewPCG(1, uint64(rate)))
				lat := make([]time.Duration, b.N)
				var inflight, maxInflight atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				var due time.Duration
				for i := range b.N {
					due += time.Duration(rng.ExpFloat64() / float64(rate) * float64(time.Second))
					time.Sleep(due - time.Since(start))
					wg.Go(func() {
						n := inflight.Add(1)
						for m := maxInflight.Load(); n > m && !maxInflight.CompareAndSwap(m, n); m = maxInflight.Load() {
						}
						t0 := time.Now()
						if err := slowCommit(s, gate, &lastTx, commit, ops); err != nil {
							b.Errorf("commit = %v, want nil", err)
						}
						lat[i] = time.Since(t0)
						inflight.Add(-1)
					})
				}
				wg.Wait()
				b.StopTimer()
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(maxInflight.Load()), "max-inflight")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// slowCommit is Store.Commit (with the gate or without) whose first run
// in each bbolt transaction sleeps for commit.
func slowCommit(s *Store, gate bool, lastTx *atomic.Pointer[bbolt.Tx], commit time.Duration, ops []storage.Op) error {
	ctx := context.Background()
	c, err := s.prepare(ctx, nil, ops)
	if err != nil {
		return err
	}
	if gate {
		if err := s.gate.wait(ctx); err != nil {
			return err
		}
	}
	var ran *bbolt.Tx
	defer func() { s.gate.open(ran) }()
	return c.result(s.db.Batch(func(btx *bbolt.Tx) error {
		ran = btx
		if gate {
			s.gate.shut(btx)
		}
		if lastTx.Swap(btx) != btx {
			time.Sleep(commit)
		}
		return c.apply(btx)
	}))
}
