package lease

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/fault"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
	"github.com/keyferry/keyferry/internal/storage"
)

// The tests in this file hold the lease code to "no audit record, no
// action": the record of a destructive action is written before the
// action, and when the audit log refuses it, nothing happens.

var errDiskFull = errors.New("disk full")

// events returns the audit events about lease id.
func (f *lcFixture) events(id string) []audit.Event {
	var out []audit.Event
	for _, ev := range f.aw.Events() {
		if ev.LeaseID == id {
			out = append(out, ev)
		}
	}
	return out
}

// deletionsWithRecord makes every DeleteUser check that the audit log
// already holds a revoke or orphan record naming the user.
func (f *lcFixture) deletionsWithRecord(t *testing.T) {
	t.Helper()
	f.users.beforeDelete = func(name string) {
		for _, ev := range f.aw.Events() {
			if ev.Object == name && (ev.Type == audit.TypeRevoke || ev.Type == audit.TypeOrphanDelete) {
				return
			}
		}
		t.Errorf("IAM user %s deleted before any audit record named it", name)
	}
}

func TestExpiryWritesTheRecordBeforeTheDeletion(t *testing.T) {
	f := newLCFixture(t)
	f.deletionsWithRecord(t)
	ctx := context.Background()
	out, err := f.m.Issue(ctx, IssueRequest{Role: "artifacts", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	f.now = out.Lease.ExpiresAt.Add(time.Second)
	f.drain(t)
	var reasons []string
	for _, ev := range f.events(out.Lease.ID) {
		if ev.Type == audit.TypeRevoke {
			reasons = append(reasons, ev.Reason+"/"+ev.Actor)
		}
	}
	if want := []string{"expired/" + actorExpired, "/" + actorExpired}; strings.Join(reasons, ",") != strings.Join(want, ",") {
		t.Errorf("revoke events (reason/actor) = %q, want %q (decided, then done)", reasons, want)
	}
}

func TestExpiryStopsWhenAuditFails(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	out, err := f.m.Issue(ctx, IssueRequest{Role: "artifacts", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	f.now = out.Lease.ExpiresAt.Add(time.Second)
	f.aw.SetErr(errDiskFull)
	_, err = f.m.ExpireDue(ctx)
	var as *auditStopped
	if !errors.As(err, &as) {
		t.Fatalf("ExpireDue = %v, want an audit stop", err)
	}
	if l := f.state(t, out.Lease.ID); l.State != StateActive {
		t.Errorf("lease is %s after a refused record, want active (nothing done)", l.State)
	}
	if n, _ := f.m.countDue(ctx, 10); n != 0 {
		t.Errorf("%d revocations queued without a record, want 0", n)
	}
	f.aw.SetErr(nil)
	if _, err := f.m.ExpireDue(ctx); err != nil {
		t.Fatalf("ExpireDue after the audit log recovered = %v", err)
	}
	if l := f.state(t, out.Lease.ID); l.State != StateRevoking {
		t.Errorf("lease is %s once the audit log works, want revoking", l.State)
	}
}

func TestRevocationOutcomeWaitsForTheAuditLog(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	out, err := f.m.Issue(ctx, IssueRequest{Role: "artifacts", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Revoke(ctx, out.Lease.ID, audit.Origin{Actor: "op"}, false); err != nil {
		t.Fatal(err)
	}
	f.aw.SetErr(errDiskFull)
	var as *auditStopped
	if err := f.m.revokeOne(ctx, out.Lease.ID); !errors.As(err, &as) {
		t.Fatalf("revokeOne = %v, want an audit stop", err)
	}
	l := f.state(t, out.Lease.ID)
	if l.State != StateRevoking || l.Attempts != 0 {
		t.Errorf("lease is %s after %d attempts, want still revoking as before (the outcome was not recorded)", l.State, l.Attempts)
	}
	f.aw.SetErr(nil)
	if err := f.m.revokeOne(ctx, out.Lease.ID); err != nil {
		t.Fatal(err)
	}
	if l := f.state(t, out.Lease.ID); l.State != StateRevoked {
		t.Errorf("lease is %s once the audit log works, want revoked", l.State)
	}
	evs := f.events(out.Lease.ID)
	if last := evs[len(evs)-1]; last.Type != audit.TypeRevoke || !strings.Contains(last.Message, "deleted") {
		t.Errorf("last event = %+v, want the deletion's record", last)
	}
}

func TestReclaimStopsWhenAuditFails(t *testing.T) {
	f := newLCFixture(t)
	f.deletionsWithRecord(t)
	ctx := context.Background()
	l := &Lease{ID: NewID(f.now), Role: "artifacts", Type: "iam_user", State: StatePending, IssuedAt: f.now,
		ExpiresAt: f.now.Add(time.Hour), UserName: "kf-crashed", UserPath: "/keyferry/"}
	if err := f.m.create(ctx, l); err != nil {
		t.Fatal(err)
	}
	f.aw.SetErr(errDiskFull)
	n, err := f.m.ReclaimPending(ctx, f.now.Add(time.Minute))
	var as *auditStopped
	if !errors.As(err, &as) || n != 0 {
		t.Fatalf("ReclaimPending = %d, %v; want 0 and an audit stop", n, err)
	}
	if got := f.state(t, l.ID); got.State != StatePending {
		t.Errorf("lease is %s, want still pending", got.State)
	}
	f.aw.SetErr(nil)
	if n, err := f.m.ReclaimPending(ctx, f.now.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("ReclaimPending after recovery = %d, %v; want 1, nil", n, err)
	}
	f.drain(t)
	if evs := f.events(l.ID); len(evs) != 2 || evs[0].Reason != "abandoned_pending" {
		t.Errorf("events = %+v, want abandoned_pending then the deletion", evs)
	}
}

func TestOrphanSweepStopsWhenAuditFails(t *testing.T) {
	f := newLCFixture(t)
	f.deletionsWithRecord(t)
	ctx := context.Background()
	f.users.users["kf-orphan"] = UserSpec{UserName: "kf-orphan", Path: "/keyferry/"}
	f.users.created["kf-orphan"] = f.now.Add(-time.Hour)
	f.aw.SetErr(errDiskFull)
	for _, dry := range []bool{true, false} {
		_, err := f.m.SweepOrphans(ctx, dry)
		var as *auditStopped
		if !errors.As(err, &as) {
			t.Errorf("SweepOrphans(dry=%v) = %v, want an audit stop", dry, err)
		}
	}
	if !f.users.exists("kf-orphan") || f.users.deletes != 0 {
		t.Fatalf("the orphan was deleted (%d deletes) although its record was refused", f.users.deletes)
	}
	// Through the admin API the operator is told why.
	if _, _, err := f.m.SweepOrphansNow(ctx, false); fault.CodeOf(err) != CodeAuditUnavailable {
		t.Errorf("SweepOrphansNow = %v, want audit_unavailable", err)
	}
	f.aw.SetErr(nil)
	got, err := f.m.SweepOrphans(ctx, false)
	if err != nil || len(got) != 1 || !got[0].Deleted {
		t.Fatalf("sweep after recovery = %+v, %v; want the orphan deleted", got, err)
	}
}

// TestOrphanDeletionFailureIsRecorded: the record says the sweep is
// deleting a user; when IAM refuses, a second record says it did not.
func TestOrphanDeletionFailureIsRecorded(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	f.users.users["kf-orphan"] = UserSpec{UserName: "kf-orphan", Path: "/keyferry/"}
	f.users.created["kf-orphan"] = f.now.Add(-time.Hour)
	f.users.deleteErr = []error{errors.New("IAM is down")}
	got, err := f.m.SweepOrphans(ctx, false)
	if err != nil || len(got) != 1 || got[0].Deleted {
		t.Fatalf("sweep = %+v, %v; want one orphan not deleted", got, err)
	}
	var kinds []string
	for _, ev := range f.aw.Events() {
		if ev.Object == "kf-orphan" {
			kinds = append(kinds, ev.Type+"/"+ev.Reason)
		}
	}
	if want := "orphan.delete/,orphan.delete/" + awsprov.CodeUnavailable; strings.Join(kinds, ",") != want {
		t.Errorf("orphan events = %q, want %q", kinds, want)
	}
}

// TestOperatorActionsFailClosed: revoke, retry, forget and renew change
// nothing when their record is refused, and say why.
func TestOperatorActionsFailClosed(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	iam, err := f.m.Issue(ctx, IssueRequest{Role: "artifacts", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	sts, err := f.m.Issue(ctx, IssueRequest{Role: "deploy", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	irrevocable := &Lease{ID: NewID(f.now), Role: "artifacts", Type: "iam_user", State: StateActive, IssuedAt: f.now, ExpiresAt: f.now.Add(time.Hour), UserName: "kf-x"}
	if err := f.m.create(ctx, irrevocable); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.update(ctx, irrevocable.ID, func(l *Lease) error { l.State = StateIrrevocable; return nil }); err != nil {
		t.Fatal(err)
	}
	f.aw.SetErr(errDiskFull)
	op := audit.Origin{Actor: "op", Reason: "leak"}
	actions := []struct {
		name  string
		id    string
		act   func() error
		state State
	}{
		{"revoke iam_user", iam.Lease.ID, func() error { _, err := f.m.Revoke(ctx, iam.Lease.ID, op, false); return err }, StateActive},
		{"revoke sts", sts.Lease.ID, func() error { _, err := f.m.Revoke(ctx, sts.Lease.ID, op, false); return err }, StateActive},
		{"bulk revoke", iam.Lease.ID, func() error { _, err := f.m.RevokeMatching(ctx, Selector{Project: "group/app"}, op); return err }, StateActive},
		{"retry", irrevocable.ID, func() error { _, err := f.m.Retry(ctx, irrevocable.ID, op); return err }, StateIrrevocable},
		{"forget", irrevocable.ID, func() error { _, err := f.m.Forget(ctx, irrevocable.ID, op); return err }, StateIrrevocable},
		{"renew", iam.Lease.ID, func() error { _, err := f.m.Renew(ctx, iam.Lease.ID, 30*time.Minute, op); return err }, StateActive},
	}
	for _, a := range actions {
		t.Run(a.name, func(t *testing.T) {
			before := f.state(t, a.id)
			err := a.act()
			if e, ok := fault.As(err); !ok || e.Code != CodeAuditUnavailable || e.Kind != fault.Unavailable {
				t.Fatalf("got %v, want unavailable audit_unavailable", err)
			}
			after := f.state(t, a.id)
			if after.State != a.state || !after.ExpiresAt.Equal(before.ExpiresAt) {
				t.Errorf("lease is %s until %v, want %s until %v: changed without a record", after.State, after.ExpiresAt, a.state, before.ExpiresAt)
			}
		})
	}
	if f.users.deletes != 0 {
		t.Errorf("%d IAM deletions without records", f.users.deletes)
	}
}

// failingCommits fails every commit that writes a lease record.
type failingCommits struct{ storage.Store }

func (s failingCommits) Commit(ctx context.Context, conds []storage.Cond, ops []storage.Op) error {
	for _, op := range ops {
		if strings.HasPrefix(op.Key, leasePrefix) {
			return errors.New("disk on fire")
		}
	}
	return s.Store.Commit(ctx, conds, ops)
}

// TestRecordOfAnActionThatFailedIsCorrected: when the store fails after
// the record was written, a store_error record follows, so the log never
// claims a revocation that did not happen.
func TestRecordOfAnActionThatFailedIsCorrected(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	out, err := f.m.Issue(ctx, IssueRequest{Role: "deploy", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	f.m.setStore(failingCommits{f.m.store()})
	if _, err := f.m.Revoke(ctx, out.Lease.ID, audit.Origin{Actor: "op"}, false); err == nil {
		t.Fatal("Revoke = nil, want the store's error")
	}
	evs := f.events(out.Lease.ID)
	if len(evs) != 3 || evs[1].Reason != "revoked_by_operator" || evs[2].Reason != audit.ReasonStoreError || evs[2].Decision != audit.DecisionDeny {
		t.Fatalf("events = %+v, want issue, revoke, revoke store_error", evs)
	}
}

// recordingObserver records AuditStopped calls.
type recordingObserver struct {
	nopLifecycle
	mu    sync.Mutex
	calls []string
}

func (o *recordingObserver) AuditStopped(path string, stopped bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := "go"
	if stopped {
		s = "stop"
	}
	o.calls = append(o.calls, path+":"+s)
}

// TestBackgroundStopIsVisible runs the real loops: while the audit log
// refuses records, the expiry path reports itself stopped through Healthy
// and the observer, and nothing expires; once it takes them, the path goes
// on by itself.
func TestBackgroundStopIsVisible(t *testing.T) {
	f := newLCFixture(t)
	obs := &recordingObserver{}
	f.m.Lifecycle.obs = obs
	f.m.Lifecycle.tune.Tick = 2 * time.Millisecond
	f.m.Lifecycle.tune.AuditRetry = 10 * time.Millisecond
	var mu sync.Mutex
	clock := f.now
	f.m.Issuer.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	f.m.Lifecycle.now = f.m.Issuer.now
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, err := f.m.Issue(ctx, IssueRequest{Role: "artifacts", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	f.aw.SetErr(errDiskFull)
	mu.Lock()
	clock = out.Lease.ExpiresAt.Add(time.Second)
	mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- f.m.Run(ctx) }()
	waitFor(t, "Healthy to report the expiry path stopped", func() bool {
		err := f.m.Healthy()
		return err != nil && strings.Contains(err.Error(), PathExpiry) && errors.Is(err, errDiskFull)
	})
	if l := f.state(t, out.Lease.ID); l.State != StateActive {
		t.Errorf("lease is %s while the audit log refuses records, want active", l.State)
	}
	f.aw.SetErr(nil)
	waitFor(t, "the lease to be revoked after recovery", func() bool {
		mu.Lock()
		clock = clock.Add(5 * time.Millisecond) // the retry is paced by the injected clock
		mu.Unlock()
		return f.state(t, out.Lease.ID).State == StateRevoked
	})
	waitFor(t, "Healthy to clear", func() bool { return f.m.Healthy() == nil })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.calls) < 2 || obs.calls[0] != PathExpiry+":stop" || obs.calls[len(obs.calls)-1] != PathExpiry+":go" {
		t.Errorf("observer calls = %q, want expiry:stop first and expiry:go last", obs.calls)
	}
}

// waitFor polls cond (with no sleep of its own beyond a yield) until it
// holds or a generous bound passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
