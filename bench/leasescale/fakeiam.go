package main

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/keyferry/keyferry/internal/lease"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
	"github.com/keyferry/keyferry/internal/testutil"
)

// Upstreams of a drain run.
const (
	upstreamFake = "fake" // the real provider (aws-sdk-go-v2) → testutil's fake IAM over loopback HTTP
	upstreamMem  = "mem"  // an in-memory IAM with no latency: the broker alone
)

// drainIAM is the IAM a drain run revokes against.
type drainIAM interface {
	lease.UserCreator
	lease.UserRemover
	// prepare creates the users of leases, as their issuance would have,
	// and sets their access key ids.
	prepare(ctx context.Context, leases []*lease.Lease) error
	// limit starts enforcing the write quota (none during prepare).
	limit()
	stats() iamStats
	close()
}

// iamStats counts what the IAM saw since limit.
type iamStats struct {
	Users     int `json:"users_left"`
	Requests  int `json:"requests"`         // every call, throttled ones included
	Writes    int `json:"writes_accepted"`  // DeleteAccessKey, DeleteUserPolicy, DeleteUser, …
	Throttled int `json:"writes_throttled"` // refused by the write quota
	Reads     int `json:"reads"`            // List*, Get*
}

// writeLimiter is an IAM account's write quota: a token bucket holding
// one second of writes (IAM's quotas are per second and it does not
// publish its burst). Off until started.
type writeLimiter struct {
	perSecond float64
	on        atomic.Bool
	lim       *rate.Limiter
	throttled atomic.Int64
}

func (w *writeLimiter) start() {
	if w.perSecond > 0 {
		w.lim = rate.NewLimiter(rate.Limit(w.perSecond), max(1, int(w.perSecond)))
		w.on.Store(true)
	}
}

// allow spends one write, or counts a throttled one.
func (w *writeLimiter) allow() bool {
	if !w.on.Load() || w.lim.Allow() {
		return true
	}
	w.throttled.Add(1)
	return false
}

func isWrite(action string) bool {
	return !strings.HasPrefix(action, "Get") && !strings.HasPrefix(action, "List")
}

// fakeIAM is testutil's fake IAM (AWS's rules: DeleteUser refuses while
// the user has keys or policies, …) on an httptest server, reached through
// the real provider and the AWS SDK, as the server does. Throttled writes
// get IAM's answer (Throttling, HTTP 400), which the SDK retries (up to
// the provider's MaxAttempts) before the provider returns a throttling
// error with a Retry-After hint.
type fakeIAM struct {
	h      *testutil.FakeIAMHandler
	srv    *httptest.Server
	p      *awsprov.Provider
	wl     *writeLimiter
	before map[string]int // per-action counts at limit
}

var deleteActions = []string{testutil.ActionListAccessKeys, testutil.ActionDeleteAccessKey, testutil.ActionListUserPolicies,
	testutil.ActionDeleteUserPolicy, testutil.ActionListAttachedUserPolicies, testutil.ActionDetachUserPolicy,
	testutil.ActionListGroupsForUser, testutil.ActionRemoveUserFromGroup, testutil.ActionDeleteUser}

func newFakeIAM(ctx context.Context, writesPerSecond float64) (*fakeIAM, error) {
	f := &fakeIAM{wl: &writeLimiter{perSecond: writesPerSecond}}
	f.h = testutil.NewFakeIAMHandler(testutil.WithoutIAMRecording(), testutil.WithIAMHook(func(r *testutil.IAMRequest) error {
		if r.Service == "iam" && isWrite(r.Action) && !f.wl.allow() {
			return &testutil.QueryError{Code: "Throttling", Message: "Rate exceeded"}
		}
		return nil
	}))
	// The fake's goroutines carry the pprof label side=upstream, so a
	// profile splits the broker's CPU from the fake's.
	f.srv = httptest.NewUnstartedServer(f.h)
	pprof.Do(ctx, pprof.Labels("side", "upstream"), func(context.Context) { f.srv.Start() })
	p, err := awsprov.New(ctx, awsprov.Config{
		Region: "us-east-1", Endpoint: f.srv.URL, IAMEndpoint: f.srv.URL,
		Credentials: credentials.NewStaticCredentialsProvider(testutil.FakeIAMAccessKeyID, testutil.FakeIAMSecretAccessKey, ""),
	})
	if err != nil {
		f.close()
		return nil, err
	}
	f.p = p
	return f, nil
}

func (f *fakeIAM) prepare(ctx context.Context, leases []*lease.Lease) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, l := range leases {
		g.Go(func() error {
			u, err := f.p.CreateUser(ctx, awsprov.UserSpec{
				UserName: l.UserName, Path: l.UserPath, InlinePolicyName: "keyferry",
				InlinePolicy: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::ci-artifacts/*"}]}`,
				Tags: []awsprov.Tag{{Key: lease.TagLeaseID, Value: l.ID}, {Key: lease.TagRole, Value: l.Role},
					{Key: lease.TagProject, Value: l.Identity.Project}, {Key: lease.TagPipeline, Value: l.Identity.Pipeline}},
			})
			if err != nil {
				return err
			}
			l.AccessKeyID = u.AccessKeyID
			return nil
		})
	}
	return g.Wait()
}

func (f *fakeIAM) limit() {
	f.before = map[string]int{"": f.h.Calls()}
	for _, a := range deleteActions {
		f.before[a] = f.h.CallsFor(a)
	}
	f.wl.start()
}

func (f *fakeIAM) stats() iamStats {
	s := iamStats{Users: len(f.h.Users()), Requests: f.h.Calls() - f.before[""], Throttled: int(f.wl.throttled.Load())}
	for _, a := range deleteActions {
		n := f.h.CallsFor(a) - f.before[a]
		if isWrite(a) {
			s.Writes += n
		} else {
			s.Reads += n
		}
	}
	s.Writes -= s.Throttled
	return s
}

func (f *fakeIAM) close() {
	f.h.Close()
	f.srv.Close()
}

func (f *fakeIAM) CreateUser(context.Context, lease.UserSpec) (*lease.User, error) {
	return nil, errors.New("fakeIAM: drain runs create users in prepare")
}

func (f *fakeIAM) WaitUsable(context.Context, string, string, int, time.Duration) error { return nil }

func (f *fakeIAM) DeleteUser(ctx context.Context, name string, known *awsprov.UserParts) error {
	return f.p.DeleteUser(ctx, name, known)
}

func (f *fakeIAM) ListUsers(context.Context, string) ([]lease.UserInfo, error) { return nil, nil }

// memIAM is an in-memory IAM with no latency: the broker alone. DeleteUser
// makes, in effect, the calls the real provider makes for a user with an
// access key and an inline policy (what an iam_user role without groups or
// managed policies creates). With the parts the lease recorded (a first
// attempt): three writes (DeleteAccessKey, DeleteUserPolicy, DeleteUser),
// each spent even when the part is already gone. Without (a retry, a lease
// from before user_parts, or -list): four reads (ListAccessKeys, ListUserPolicies, ListAttachedUserPolicies,
// ListGroupsForUser) and the writes still needed. A write beyond the quota
// fails at once with a throttling error and a Retry-After hint (no SDK
// retries), and the user keeps what the attempt did not remove.
type memIAM struct {
	mu         sync.Mutex
	users      map[string]*memUser
	wl         *writeLimiter
	retryAfter time.Duration
	s          iamStats
}

type memUser struct{ hasKey, hasPolicy bool }

func newMemIAM(writesPerSecond float64, retryAfter time.Duration) *memIAM {
	return &memIAM{users: map[string]*memUser{}, wl: &writeLimiter{perSecond: writesPerSecond}, retryAfter: retryAfter}
}

func (f *memIAM) prepare(_ context.Context, leases []*lease.Lease) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, l := range leases {
		f.users[l.UserName] = &memUser{hasKey: true, hasPolicy: true}
		l.AccessKeyID = fmt.Sprintf("AKIAMEMIAM%010d", i)
	}
	return nil
}

func (f *memIAM) limit() { f.wl.start() }

// write spends one write of the quota. Callers hold f.mu.
func (f *memIAM) write(op string) error {
	f.s.Requests++
	if !f.wl.allow() {
		return &awsprov.Error{Code: awsprov.CodeThrottled, UpstreamCode: "Throttling", RetryAfter: f.retryAfter,
			Message: "AWS IAM is throttling " + op + " calls (Throttling); retry later"}
	}
	f.s.Writes++
	return nil
}

func (f *memIAM) DeleteUser(_ context.Context, name string, known *awsprov.UserParts) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[name]
	if known != nil {
		// Each named part is a write whether or not it is still there
		// (NoSuchEntity counts as done), then DeleteUser.
		if len(known.AccessKeyIDs) > 0 {
			if err := f.write("DeleteAccessKey"); err != nil {
				return err
			}
			if ok {
				u.hasKey = false
			}
		}
		if len(known.InlinePolicies) > 0 {
			if err := f.write("DeleteUserPolicy"); err != nil {
				return err
			}
			if ok {
				u.hasPolicy = false
			}
		}
		if err := f.write("DeleteUser"); err != nil {
			return err
		}
		if !ok || (!u.hasKey && !u.hasPolicy) {
			delete(f.users, name)
			return nil
		}
		// DeleteConflict: list what is left.
	}
	f.s.Reads++ // ListAccessKeys: NoSuchEntity when the user is gone, which counts as done
	f.s.Requests++
	if !ok {
		return nil
	}
	f.s.Reads += 3 // ListUserPolicies, ListAttachedUserPolicies, ListGroupsForUser
	f.s.Requests += 3
	if u.hasKey {
		if err := f.write("DeleteAccessKey"); err != nil {
			return err
		}
		u.hasKey = false
	}
	if u.hasPolicy {
		if err := f.write("DeleteUserPolicy"); err != nil {
			return err
		}
		u.hasPolicy = false
	}
	if err := f.write("DeleteUser"); err != nil {
		return err
	}
	delete(f.users, name)
	return nil
}

func (f *memIAM) stats() iamStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.s
	s.Users, s.Throttled = len(f.users), int(f.wl.throttled.Load())
	return s
}

func (f *memIAM) close() {}

func (f *memIAM) CreateUser(context.Context, lease.UserSpec) (*lease.User, error) {
	return nil, errors.New("memIAM: drain runs create users in prepare")
}

func (f *memIAM) WaitUsable(context.Context, string, string, int, time.Duration) error { return nil }

func (f *memIAM) ListUsers(context.Context, string) ([]lease.UserInfo, error) { return nil, nil }
