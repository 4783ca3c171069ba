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

// blockCommit starts a write transaction that holds the writer lock, as
// a slow commit would, shutting the gate as Commit does, and returns once
// it holds the lock. The returned release lets it commit.
func blockCommit(t *testing.T, s *Store) (release func() error) {
	t.Helper()
	running, unblock, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	var runOnce, unblockOnce sync.Once
	go func() {
		var ran *bbolt.Tx
		err := s.db.Batch(func(btx *bbolt.Tx) error {
			ran = btx
			s.gate.shut(btx)
			runOnce.Do(func() { close(running) })
			<-unblock
			return btx.Bucket(bucket).Put([]byte("blocker"), nil)
		})
		s.gate.open(ran)
		done <- err
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

// lastTxID is the id of the latest committed write transaction.
func lastTxID(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bbolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
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

// TestGateHoldsArrivalsDuringCommit checks that commits arriving while a
// batch commits wait at the gate, then share one transaction.
func TestGateHoldsArrivalsDuringCommit(t *testing.T) {
	const callers = 16
	// The batch fills exactly when every held caller has entered it, so
	// "one transaction" does not depend on scheduling.
	s := openTest(t, Options{MaxBatchDelay: time.Minute, MaxBatchSize: 1, NoSync: true})
	before := lastTxID(t, s)
	release := blockCommit(t, s)
	// Safe to change now: no Batch call is in progress but the blocker's,
	// which has read the old value.
	s.db.MaxBatchSize = callers

	results := make(chan error, callers)
	for i := range callers {
		go func() {
			results <- s.Commit(context.Background(), nil, []storage.Op{storage.Put(fmt.Sprintf("k/%02d", i), nil)})
		}()
	}
	waitForWaiters(t, s, callers)
	if err := release(); err != nil {
		t.Fatalf("blocking transaction = %v, want nil", err)
	}
	for range callers {
		if err := <-results; err != nil {
			t.Errorf("Commit = %v, want nil", err)
		}
	}
	// One transaction for the blocker, one for every held caller.
	if got := lastTxID(t, s) - before; got != 2 {
		t.Errorf("held callers committed in %d transactions, want 1", got-1)
	}
}

func TestGateWaitHonoursContext(t *testing.T) {
	s := openTest(t, Options{MaxBatchSize: 1, NoSync: true})
	release := blockCommit(t, s)

	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() {
		result <- s.Commit(ctx, nil, []storage.Op{storage.Put("late", nil)})
	}()
	waitForWaiters(t, s, 1)
	cancel()
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Errorf("Commit cancelled at the gate = %v, want context.Canceled", err)
	}
	if err := release(); err != nil {
		t.Fatalf("blocking transaction = %v, want nil", err)
	}
	if _, err := s.Get(context.Background(), "late"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get(late) = %v, want ErrNotFound", err)
	}
}
