package bolt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/keyferry/keyferry/internal/storage"
)

func openTest(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "kf.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// blockCommit starts an Update whose fn blocks until the returned release
// is called, and returns once that fn is running, i.e. once its batch
// holds the writer lock and has shut the gate.
func blockCommit(t *testing.T, s *Store) (release func() error) {
	t.Helper()
	running, unblock, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	var runOnce, unblockOnce sync.Once
	go func() {
		done <- s.Update(context.Background(), func(tx storage.Txn) error {
			runOnce.Do(func() { close(running) })
			<-unblock
			return tx.Put("blocker", nil)
		})
	}()
	<-running
	// If the test fails first, unblock before the store's Close (cleanups
	// run last-registered first), which would otherwise wait forever.
	t.Cleanup(func() { unblockOnce.Do(func() { close(unblock) }) })
	return func() error {
		unblockOnce.Do(func() { close(unblock) })
		return <-done
	}
}

// waitForWaiters spins until n callers wait at the gate. It yields
// instead of sleeping, and gives up after a generous bound.
func waitForWaiters(t *testing.T, s *Store, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; runtime.Gosched() {
		s.gate.mu.Lock()
		got := s.gate.waiting
		s.gate.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers wait at the gate, want %d", got, n)
		}
	}
}

// TestGateHoldsArrivalsDuringCommit checks that Updates arriving while a
// batch commits wait at the gate, then share one transaction.
func TestGateHoldsArrivalsDuringCommit(t *testing.T) {
	const callers = 16
	// The batch fills exactly when every held caller has entered it, so
	// "one transaction" does not depend on scheduling.
	s := openTest(t, Options{MaxBatchDelay: time.Minute, MaxBatchSize: 1, NoSync: true})
	release := blockCommit(t, s)
	// Safe to change now: no Batch call is in progress but the blocker's,
	// which has read the old value.
	s.db.MaxBatchSize = callers

	var mu sync.Mutex
	txs := map[*bbolt.Tx]bool{}
	results := make(chan error, callers)
	for i := range callers {
		go func() {
			results <- s.Update(context.Background(), func(tx storage.Txn) error {
				mu.Lock()
				txs[tx.(*txn).b.Tx()] = true
				mu.Unlock()
				return tx.Put(fmt.Sprintf("k/%02d", i), nil)
			})
		}()
	}
	waitForWaiters(t, s, callers)
	if err := release(); err != nil {
		t.Fatalf("blocking Update = %v, want nil", err)
	}
	for range callers {
		if err := <-results; err != nil {
			t.Errorf("Update = %v, want nil", err)
		}
	}
	if len(txs) != 1 {
		t.Errorf("held callers committed in %d transactions, want 1", len(txs))
	}
}

func TestGateWaitHonoursContext(t *testing.T) {
	s := openTest(t, Options{MaxBatchSize: 1, NoSync: true})
	release := blockCommit(t, s)

	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan bool, 1)
	result := make(chan error, 1)
	go func() {
		result <- s.Update(ctx, func(tx storage.Txn) error {
			ran <- true
			return tx.Put("late", nil)
		})
	}()
	waitForWaiters(t, s, 1)
	cancel()
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Errorf("Update cancelled at the gate = %v, want context.Canceled", err)
	}
	if err := release(); err != nil {
		t.Fatalf("blocking Update = %v, want nil", err)
	}
	select {
	case <-ran:
		t.Errorf("fn of the cancelled Update ran, want it not to")
	default:
	}
	if _, err := storage.Get(context.Background(), s, "late"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get(late) = %v, want ErrNotFound", err)
	}
}
