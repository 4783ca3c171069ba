package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/dur"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
	"github.com/keyferry/keyferry/internal/storage/memory"
)

// fakeUsers is an in-memory IAM for lifecycle tests.
type fakeUsers struct {
	mu        sync.Mutex
	users     map[string]UserSpec
	created   map[string]time.Time
	n         int
	createErr error
	deleteErr []error // consumed one per DeleteUser call
	deletes   int
	known     map[string]*awsprov.UserParts // the last DeleteUser's hint, by user
	waits     int
	now       func() time.Time
	// beforeDelete, if set, runs at the start of every DeleteUser.
	beforeDelete func(name string)
}

func newFakeUsers(now func() time.Time) *fakeUsers {
	return &fakeUsers{users: map[string]UserSpec{}, created: map[string]time.Time{}, known: map[string]*awsprov.UserParts{}, now: now}
}

func (f *fakeUsers) CreateUser(_ context.Context, s UserSpec) (*User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[s.UserName] = s // created even when a later step fails
	f.created[s.UserName] = f.now()
	if f.createErr != nil {
		return nil, f.createErr
	}
	f.n++
	return &User{UserName: s.UserName, UserARN: "arn:aws:iam::123456789012:user" + s.Path + s.UserName, AccessKeyID: fmt.Sprintf("AKIATEST%012d", f.n), SecretAccessKey: "secret"}, nil
}

func (f *fakeUsers) WaitUsable(context.Context, string, string, int, time.Duration) error {
	f.mu.Lock()
	f.waits++
	f.mu.Unlock()
	return nil
}

func (f *fakeUsers) DeleteUser(_ context.Context, name string, known *awsprov.UserParts) error {
	if f.beforeDelete != nil {
		f.beforeDelete(name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes++
	f.known[name] = known
	if len(f.deleteErr) > 0 {
		err := f.deleteErr[0]
		f.deleteErr = f.deleteErr[1:]
		if err != nil {
			return err
		}
	}
	delete(f.users, name) // NoSuchEntity counts as done
	return nil
}

func (f *fakeUsers) ListUsers(_ context.Context, path string) ([]UserInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []UserInfo
	for n, s := range f.users {
		if strings.HasPrefix(s.Path, path) {
			tags := map[string]string{}
			for _, t := range s.Tags {
				tags[t.Key] = t.Value
			}
			out = append(out, UserInfo{UserName: n, Path: s.Path, Created: f.created[n], Tags: tags})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserName < out[j].UserName })
	return out, nil
}

func (f *fakeUsers) exists(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.users[name]
	return ok
}

type fakeDenier struct {
	mu     sync.Mutex
	denied []string
	pruned []string
}

func (d *fakeDenier) DenySession(_ context.Context, roleARN, userID string, _, _ time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.denied = append(d.denied, roleARN+" "+userID)
	return nil
}

func (d *fakeDenier) PruneDeniedSessions(_ context.Context, roleARN string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pruned = append(d.pruned, roleARN)
	return true, nil
}

type lcFixture struct {
	m     *testLeases
	now   time.Time
	users *fakeUsers
	deny  *fakeDenier
	aw    *audit.Memory
	mint  *fakeMinter
}

func newLCFixture(t *testing.T) *lcFixture {
	t.Helper()
	f := &lcFixture{now: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC), aw: audit.NewMemory(), deny: &fakeDenier{}, mint: &fakeMinter{}}
	clock := func() time.Time { return f.now }
	f.users = newFakeUsers(clock)
	f.mint.now = clock
	userRole, err := policy.Compile(policy.Role{
		Name: "artifacts", Issuer: "gitlab", Match: map[string]policy.Values{"project_path": {"group/app", "other/app"}},
		AWS: policy.AWS{Type: policy.TypeIAMUser, TTL: dur.Duration(10 * time.Minute), MaxTTL: dur.Duration(time.Hour),
			UserPolicy: json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"*"}]}`),
			Tags:       map[string]string{"job": "{job_id}"}},
	}, identity.KindGitLab)
	if err != nil {
		t.Fatal(err)
	}
	stsRole, err := policy.Compile(policy.Role{
		Name: "deploy", Issuer: "gitlab", Match: map[string]policy.Values{"project_path": {"group/app", "other/app"}},
		AWS: policy.AWS{Type: policy.TypeAssumeRole, RoleARN: "arn:aws:iam::123456789012:role/deploy", EarlyRevocation: true},
	}, identity.KindGitLab)
	if err != nil {
		t.Fatal(err)
	}
	f.m = newTestLeases(testConfig{
		Store: memory.New(), Audit: f.aw, Verifier: fakeVerifier{id: gitlabIdentity("group/app")},
		Roles: roleMap{"artifacts": userRole, "deploy": stsRole}, Minter: f.mint, Users: f.users, Denier: f.deny, Now: clock,
		Tuning: Tuning{MaxAttempts: 3, BackoffBase: time.Second, BackoffMax: 4 * time.Second, RevocationsPerSecond: 1000, OrphanGrace: 15 * time.Minute},
	})
	return f
}

// drain runs the dispatcher's work synchronously until nothing is due.
func (f *lcFixture) drain(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if _, err := f.m.ExpireDue(ctx); err != nil {
			t.Fatal(err)
		}
		ids, err := f.m.dueRevocations(ctx, f.m.Lifecycle.tune.Batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			return
		}
		for _, id := range ids {
			f.m.revokeOne(ctx, id)
		}
	}
	t.Fatal("revocations never drained")
}

func (f *lcFixture) state(t *testing.T, id string) *Lease {
	t.Helper()
	l, err := f.m.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestIAMUserIssueAndExpiry(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	out, err := f.m.Issue(ctx, IssueRequest{Role: "artifacts", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	l := out.Lease
	if l.State != StateActive || l.UserName != "kf-"+l.ID || l.UserPath != "/keyferry/" || out.Credentials.SecretAccessKey == "" || out.Credentials.AccountID != "123456789012" {
		t.Fatalf("issued %+v / %+v", l, out.Credentials.AccessKeyID)
	}
	spec := f.users.users[l.UserName]
	tags := map[string]string{}
	for _, tg := range spec.Tags {
		tags[tg.Key] = tg.Value
	}
	if tags[TagLeaseID] != l.ID || tags[TagProject] != "group/app" || tags["job"] != "20" || !strings.Contains(spec.InlinePolicy, "s3:PutObject") {
		t.Errorf("user spec %+v", spec)
	}
	if f.users.waits != 1 {
		t.Errorf("WaitUsable called %d times, want 1 (on by default)", f.users.waits)
	}
	// Not due yet: nothing happens.
	f.drain(t)
	if !f.users.exists(l.UserName) {
		t.Fatal("user deleted before expiry")
	}
	f.now = l.ExpiresAt.Add(time.Second)
	f.drain(t)
	if f.users.exists(l.UserName) {
		t.Fatal("user still exists after expiry")
	}
	got := f.state(t, l.ID)
	if got.State != StateRevoked || got.RevokedBy != "keyferry (expired)" {
		t.Errorf("lease after expiry: %s by %q", got.State, got.RevokedBy)
	}
	// Revocation deletes what issuance recorded: the key and the inline policy.
	want := &awsprov.UserParts{AccessKeyIDs: []string{l.AccessKeyID}, InlinePolicies: []string{"keyferry"}}
	if diff := cmp.Diff(want, f.users.known[l.UserName]); diff != "" {
		t.Errorf("DeleteUser's known parts (-want +got):\n%s", diff)
	}
	var deleted bool
	for _, ev := range f.aw.Events() {
		deleted = deleted || (ev.Type == audit.TypeRevoke && ev.LeaseID == l.ID && strings.Contains(ev.Message, "deleted"))
	}
	if !deleted {
		t.Error("no audit event for the deletion")
	}
}

func TestIAMUserCreateFailureCleansUp(t *testing.T) {
	f := newLCFixture(t)
	f.users.createErr = &awsprov.Error{Code: awsprov.CodeThrottled, Message: "slow down"}
	_, err := f.m.Issue(context.Background(), IssueRequest{Role: "artifacts", Token: "t"})
	if codeOf(err) != awsprov.CodeThrottled {
		t.Fatalf("got %v, want upstream_throttled", err)
	}
	if len(f.users.users) != 1 {
		t.Fatalf("the partial user is not there to clean up: %v", f.users.users)
	}
	// The pending lease recorded what CreateUser was to attach, before it
	// ran; it never learnt an access key.
	var name string
	for n := range f.users.users {
		name = n
	}
	f.drain(t)
	if len(f.users.users) != 0 {
		t.Errorf("the partially created user survived: %v", f.users.users)
	}
	if diff := cmp.Diff(&awsprov.UserParts{InlinePolicies: []string{"keyferry"}}, f.users.known[name]); diff != "" {
		t.Errorf("DeleteUser's known parts (-want +got):\n%s", diff)
	}
}

// TestRevokeLeaseWithoutUserParts: a lease written before keyferry
// recorded user parts is deleted by listing (a nil hint).
func TestRevokeLeaseWithoutUserParts(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	out, err := f.m.Issue(ctx, IssueRequest{Role: "artifacts", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.update(ctx, out.Lease.ID, func(l *Lease) error { l.UserParts = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	f.now = out.Lease.ExpiresAt.Add(time.Second)
	f.drain(t)
	if f.users.exists(out.Lease.UserName) {
		t.Fatal("user still exists after expiry")
	}
	if k, ok := f.users.known[out.Lease.UserName]; !ok || k != nil {
		t.Errorf("DeleteUser's known parts: %+v (called: %v), want nil", k, ok)
	}
}

func TestRevocationRetriesThenIrrevocable(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	out, err := f.m.Issue(ctx, IssueRequest{Role: "artifacts", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	boom := &awsprov.Error{Code: awsprov.CodeUnavailable, Message: "IAM is down"}
	f.users.deleteErr = []error{boom, boom, boom}
	if _, err := f.m.Revoke(ctx, out.Lease.ID, audit.Origin{Actor: "op"}, false); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		f.drain(t)
		l := f.state(t, out.Lease.ID)
		if i < 2 && (l.State != StateRevoking || l.Attempts != i+1 || !l.NextAttemptAt.After(f.now)) {
			t.Fatalf("after attempt %d: %s attempts %d next %v", i+1, l.State, l.Attempts, l.NextAttemptAt)
		}
		f.now = f.now.Add(time.Minute) // past any backoff
	}
	l := f.state(t, out.Lease.ID)
	if l.State != StateIrrevocable || !strings.Contains(l.LastError, "IAM is down") {
		t.Fatalf("got %s (%q), want irrevocable with the last error", l.State, l.LastError)
	}
	if _, err := f.m.Retry(ctx, l.ID, audit.Origin{Actor: "op"}); err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	if l := f.state(t, out.Lease.ID); l.State != StateRevoked || f.users.exists(l.UserName) {
		t.Fatalf("after retry: %s, user exists %v", l.State, f.users.exists(l.UserName))
	}
	if _, err := f.m.Retry(ctx, l.ID, audit.Origin{Actor: "op"}); codeOf(err) != "not_irrevocable" {
		t.Errorf("retry of a revoked lease: %v", err)
	}
}

// TestRevocationRetryLists: the first attempt deletes what the lease
// recorded; after a failure the user's state is unknown, so the retry
// lists (reads) rather than repeating deletes (writes against the quota).
func TestRevocationRetryLists(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	out, err := f.m.Issue(ctx, IssueRequest{Role: "artifacts", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	name := out.Lease.UserName
	f.users.deleteErr = []error{&awsprov.Error{Code: awsprov.CodeThrottled, Message: "slow down"}}
	if _, err := f.m.Revoke(ctx, out.Lease.ID, audit.Origin{Actor: "op"}, false); err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	if k := f.users.known[name]; k == nil || len(k.AccessKeyIDs) != 1 {
		t.Fatalf("first attempt's known parts: %+v, want the recorded ones", k)
	}
	f.now = f.now.Add(time.Minute) // past the backoff
	f.drain(t)
	if l := f.state(t, out.Lease.ID); l.State != StateRevoked || f.users.exists(name) {
		t.Fatalf("after the retry: %s, user exists %v", l.State, f.users.exists(name))
	}
	if k, ok := f.users.known[name]; !ok || k != nil {
		t.Errorf("retry's known parts: %+v, want nil (list)", k)
	}
}

func TestForgetSkipsUpstream(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	out, _ := f.m.Issue(ctx, IssueRequest{Role: "artifacts", Token: "t"})
	if _, err := f.m.Forget(ctx, out.Lease.ID, audit.Origin{Actor: "op"}); codeOf(err) != CodeInvalidRequest {
		t.Fatalf("forget without a reason: %v", err)
	}
	l, err := f.m.Forget(ctx, out.Lease.ID, audit.Origin{Actor: "op", Reason: "user deleted by hand"})
	if err != nil || l.State != StateRevoked || !strings.Contains(l.RevokeNote, "may still exist") {
		t.Fatalf("forget: %+v %v", l, err)
	}
	f.drain(t)
	if f.users.deletes != 0 {
		t.Error("forget triggered an upstream deletion")
	}
}

// TestPendingLeaseReclaimed is the crash between the write-ahead record and
// the end of issuance: the reconciler deletes what was created.
func TestPendingLeaseReclaimed(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	l := &Lease{ID: NewID(f.now), Role: "artifacts", Type: policy.TypeIAMUser, State: StatePending, IssuedAt: f.now,
		ExpiresAt: f.now.Add(time.Hour), UserName: "kf-crashed", UserPath: "/keyferry/"}
	if err := f.m.create(ctx, l); err != nil {
		t.Fatal(err)
	}
	f.users.users["kf-crashed"] = UserSpec{UserName: "kf-crashed", Path: "/keyferry/"}
	if n, _ := f.m.ReclaimPending(ctx, f.now); n != 0 {
		t.Fatalf("reclaimed %d leases newer than the cutoff", n)
	}
	n, err := f.m.ReclaimPending(ctx, f.now.Add(time.Second))
	if err != nil || n != 1 {
		t.Fatalf("reclaimed %d (%v), want 1", n, err)
	}
	f.drain(t)
	if f.users.exists("kf-crashed") || f.state(t, l.ID).State != StateRevoked {
		t.Error("the crashed issuance's user was not cleaned up")
	}
	if n, _ := f.m.ReclaimPending(ctx, f.now.Add(time.Hour)); n != 0 {
		t.Errorf("the pending index still lists the lease (%d)", n)
	}
}

func TestOrphanSweep(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	out, _ := f.m.Issue(ctx, IssueRequest{Role: "artifacts", Token: "t"})
	f.users.users["kf-orphan"] = UserSpec{UserName: "kf-orphan", Path: "/keyferry/"}
	f.users.created["kf-orphan"] = f.now
	f.users.users["someone-else"] = UserSpec{UserName: "someone-else", Path: "/humans/"}
	if got, _ := f.m.SweepOrphans(ctx, false); len(got) != 0 {
		t.Fatalf("young orphans swept: %+v", got)
	}
	f.now = f.now.Add(time.Hour)
	got, err := f.m.SweepOrphans(ctx, true)
	if err != nil || len(got) != 1 || got[0].UserName != "kf-orphan" || got[0].Deleted || !f.users.exists("kf-orphan") {
		t.Fatalf("dry run: %+v %v", got, err)
	}
	got, _ = f.m.SweepOrphans(ctx, false)
	if len(got) != 1 || !got[0].Deleted || f.users.exists("kf-orphan") {
		t.Fatalf("sweep: %+v", got)
	}
	if !f.users.exists(out.Lease.UserName) || !f.users.exists("someone-else") {
		t.Error("the sweep deleted a user it does not own")
	}
}

// TestBreakGlassRevokesOneProject revokes everything of one project while
// the other project's leases stay active.
func TestBreakGlassRevokesOneProject(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	var mine, theirs []string
	for i := 0; i < 3; i++ {
		a, _ := f.m.Issue(ctx, IssueRequest{Role: "artifacts", Token: "t"})
		mine = append(mine, a.Lease.ID)
	}
	f.m.verifier = fakeVerifier{id: gitlabIdentity("other/app")}
	for i := 0; i < 2; i++ {
		b, _ := f.m.Issue(ctx, IssueRequest{Role: "deploy", Token: "t"})
		theirs = append(theirs, b.Lease.ID)
	}
	sel, err := f.m.Select(ctx, Selector{Project: "group/app"})
	if err != nil || len(sel) != 3 {
		t.Fatalf("select: %d leases (%v), want 3", len(sel), err)
	}
	got, err := f.m.RevokeMatching(ctx, Selector{Project: "group/app"}, audit.Origin{Actor: "op", Reason: "key leaked"})
	if err != nil || len(got) != 3 {
		t.Fatalf("revoke matching: %d (%v)", len(got), err)
	}
	f.drain(t)
	for _, id := range mine {
		if l := f.state(t, id); l.State != StateRevoked || f.users.exists(l.UserName) {
			t.Errorf("lease %s: %s", id, l.State)
		}
	}
	for _, id := range theirs {
		if l := f.state(t, id); l.State != StateActive {
			t.Errorf("other project's lease %s: %s", id, l.State)
		}
	}
	if _, err := f.m.Select(ctx, Selector{}); codeOf(err) != CodeInvalidRequest {
		t.Errorf("an empty selector must be refused: %v", err)
	}
	// The leak runbook: find by access key id.
	byKey, _ := f.m.Select(ctx, Selector{AccessKeyID: f.state(t, theirs[0]).AccessKeyID})
	if len(byKey) != 1 || byKey[0].ID != theirs[0] {
		t.Errorf("by access key: %+v", byKey)
	}
}

func TestEarlyRevocationOfSTSSession(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	out, err := f.m.Issue(ctx, IssueRequest{Role: "deploy", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	l := out.Lease
	if !l.EarlyRevocation {
		t.Fatal("lease does not record early revocation")
	}
	l2, err := f.m.Revoke(ctx, l.ID, audit.Origin{Actor: "op"}, false)
	if err != nil || l2.State != StateRevoking {
		t.Fatalf("revoke: %v %v", l2, err)
	}
	f.drain(t)
	if len(f.deny.denied) != 1 || f.deny.denied[0] != "arn:aws:iam::123456789012:role/deploy *:"+l.SessionName {
		t.Fatalf("denied %v", f.deny.denied)
	}
	if f.state(t, l.ID).State != StateRevoked {
		t.Error("not revoked after the deny statement")
	}
	// Pruned only once the session would have expired anyway.
	if err := f.m.PruneDenials(ctx); err != nil || len(f.deny.pruned) != 0 {
		t.Fatalf("pruned %v (%v) before the session expired", f.deny.pruned, err)
	}
	f.now = l.ExpiresAt.Add(time.Second)
	if err := f.m.PruneDenials(ctx); err != nil || len(f.deny.pruned) != 1 {
		t.Fatalf("pruned %v (%v), want the role once", f.deny.pruned, err)
	}
	_ = f.m.PruneDenials(ctx)
	if len(f.deny.pruned) != 1 {
		t.Errorf("an empty policy's role is pruned again: %v", f.deny.pruned)
	}
}

func TestRenewIAMUser(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	out, _ := f.m.Issue(ctx, IssueRequest{Role: "artifacts", Token: "t"})
	f.now = f.now.Add(5 * time.Minute)
	l, err := f.m.Renew(ctx, out.Lease.ID, 0, audit.Origin{Actor: "op"})
	if err != nil || !l.ExpiresAt.Equal(f.now.Add(10*time.Minute)) {
		t.Fatalf("renew: %v %v", l, err)
	}
	// The old expiry no longer fires.
	f.now = out.Lease.ExpiresAt.Add(time.Second)
	f.drain(t)
	if f.state(t, l.ID).State != StateActive {
		t.Fatal("the lease expired at its old expiry")
	}
	f.now = out.Lease.IssuedAt.Add(14 * time.Minute)
	l, err = f.m.Renew(ctx, out.Lease.ID, 2*time.Hour, audit.Origin{Actor: "op"})
	if err != nil || !l.ExpiresAt.Equal(out.Lease.MaxExpiresAt) {
		t.Fatalf("renew near max_ttl: %v %v", l, err)
	}
	if _, err := f.m.Renew(ctx, out.Lease.ID, 0, audit.Origin{Actor: "op"}); codeOf(err) != CodeMaxTTLReached {
		t.Errorf("renew past max_ttl: %v", err)
	}
	sts, _ := f.m.Issue(ctx, IssueRequest{Role: "deploy", Token: "t"})
	if _, err := f.m.Renew(ctx, sts.Lease.ID, 0, audit.Origin{Actor: "op"}); codeOf(err) != "not_renewable" {
		t.Errorf("renew of an STS lease: %v", err)
	}
}

// TestRunDrainsExpiries runs the real goroutines: 200 leases expiring
// together are all revoked.
func TestRunDrainsExpiries(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	var mu sync.Mutex
	clock := f.now
	f.m.Issuer.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	f.m.Lifecycle.now = f.m.Issuer.now
	f.m.Lifecycle.tune.Tick = 5 * time.Millisecond
	var ids []string
	for i := 0; i < 200; i++ {
		out, err := f.m.Issue(ctx, IssueRequest{Role: "artifacts", Token: "t"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, out.Lease.ID)
	}
	mu.Lock()
	clock = clock.Add(11 * time.Minute)
	mu.Unlock()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.m.Run(rctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := 0
		for _, id := range ids {
			if f.state(t, id).State != StateRevoked {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d leases not revoked", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(f.users.users) != 0 {
		t.Errorf("%d users left", len(f.users.users))
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		t.Fatal("unreachable")
	}
}
