package lease

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/audit"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
)

// queueRevocations issues n iam_user leases and queues each for revocation
// (due now), returning their ids.
func queueRevocations(t *testing.T, f *lcFixture, n int) []string {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for range n {
		out, err := f.m.Issue(ctx, IssueRequest{Role: "artifacts", Token: "t"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.m.Revoke(ctx, out.Lease.ID, audit.Origin{Actor: "op"}, false); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, out.Lease.ID)
	}
	return ids
}

// TestDispatchFullBatchAsksForMore: a full batch reports that more may be
// due, and the next batch skips the revocations workers still hold, so a
// backlog larger than one batch is handed out without waiting for ticks.
func TestDispatchFullBatchAsksForMore(t *testing.T) {
	f := newLCFixture(t)
	f.m.Lifecycle.tune.Batch = 2
	ids := queueRevocations(t, f, 5)
	work := make(chan string, 10) // workers that take everything and never finish
	ctx := context.Background()
	for i, wantMore := range []bool{true, true, false, false} {
		more, err := f.m.dispatch(ctx, work)
		if err != nil {
			t.Fatal(err)
		}
		if more != wantMore {
			t.Errorf("dispatch %d: got more=%v, want %v", i+1, more, wantMore)
		}
	}
	close(work)
	var got []string
	for id := range work {
		got = append(got, id)
	}
	if len(got) != len(ids) {
		t.Fatalf("handed out %v, want each of %v once", got, ids)
	}
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Errorf("%s handed out twice", id)
		}
		seen[id] = true
	}
	// A worker that gives a lease back (done) makes it due again.
	f.m.done(got[0])
	work = make(chan string, 10)
	if _, err := f.m.dispatch(ctx, work); err != nil {
		t.Fatal(err)
	}
	if len(work) != 1 || <-work != got[0] {
		t.Errorf("after done: got %d handed out, want %s again", len(work), got[0])
	}
}

type backlogRecorder struct {
	nopLifecycle
	got []int
}

func (r *backlogRecorder) Backlog(n int) { r.got = append(r.got, n) }

// TestBacklogCountsEveryDueRevocation: the gauge counts every due
// revocation, held by a worker or not, beyond one batch.
func TestBacklogCountsEveryDueRevocation(t *testing.T) {
	f := newLCFixture(t)
	f.m.Lifecycle.tune.Batch = 2
	rec := &backlogRecorder{}
	f.m.Lifecycle.obs = rec
	queueRevocations(t, f, 5)
	ctx := context.Background()
	work := make(chan string, 10)
	report := func() {
		t.Helper()
		if err := f.m.reportBacklog(ctx); err != nil {
			t.Fatal(err)
		}
	}
	report()
	if _, err := f.m.dispatch(ctx, work); err != nil {
		t.Fatal(err)
	}
	report() // two held by workers: still due
	for range 2 {
		id := <-work
		f.m.revokeOne(ctx, id)
		f.m.done(id)
	}
	report()
	if want := []int{5, 5, 3}; !slices.Equal(rec.got, want) {
		t.Errorf("backlog reports %v, want %v", rec.got, want)
	}
	if n, err := f.m.countDue(ctx, 2); err != nil || n != 2 {
		t.Errorf("countDue with limit 2 = %d, %v; want 2", n, err)
	}
}

// TestThrottledRevocationWaitsRetryAfter: a throttled attempt is retried
// no sooner than the upstream's Retry-After, even when the backoff for
// its attempt number is shorter.
func TestThrottledRevocationWaitsRetryAfter(t *testing.T) {
	f := newLCFixture(t) // backoff base 1s: attempt 1 waits 0.5–1.5 s
	f.users.deleteErr = []error{&awsprov.Error{Code: awsprov.CodeThrottled, Message: "Rate exceeded", RetryAfter: 30 * time.Second}}
	id := queueRevocations(t, f, 1)[0]
	f.drain(t)
	l := f.state(t, id)
	if l.State != StateRevoking || l.Attempts != 1 {
		t.Fatalf("after a throttled attempt: %s, %d attempts; want revoking, 1", l.State, l.Attempts)
	}
	if wait := l.NextAttemptAt.Sub(f.now); wait < 30*time.Second {
		t.Errorf("next attempt in %v, want at least the Retry-After of 30s", wait)
	}
	f.now = l.NextAttemptAt
	f.drain(t)
	if l := f.state(t, id); l.State != StateRevoked {
		t.Errorf("after the wait: %s, want revoked", l.State)
	}
}
