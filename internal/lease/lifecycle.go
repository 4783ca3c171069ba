package lease

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
	"github.com/keyferry/keyferry/internal/storage"
)

// Users creates and deletes the IAM users of iam_user leases. Errors are
// *awsprov.Error where the upstream refused.
type Users interface {
	CreateUser(ctx context.Context, s UserSpec) (*User, error)
	WaitUsable(ctx context.Context, accessKeyID, secret string, successes int, interval time.Duration) error
	// DeleteUser deletes the user and what it has. known, when not nil,
	// names what keyferry attached to it (a hint: the implementation must
	// still delete anything else the user has, and treat a missing user
	// as deleted).
	DeleteUser(ctx context.Context, userName string, known *awsprov.UserParts) error
	ListUsers(ctx context.Context, pathPrefix string) ([]UserInfo, error)
}

// UserParts is what issuance attaches to an IAM user besides its access
// key (the lease's AccessKeyID): inline policy names, managed policy ARNs
// and groups.
type UserParts struct {
	InlinePolicies []string `json:"inline_policies,omitempty"`
	PolicyARNs     []string `json:"policy_arns,omitempty"`
	Groups         []string `json:"groups,omitempty"`
}

// UserSpec describes an IAM user to create.
type UserSpec struct {
	UserName, Path, PermissionsBoundary string
	InlinePolicyName, InlinePolicy      string
	PolicyARNs, Groups                  []string
	Tags                                []awsprov.Tag
}

// User is a created user and its access key (a secret).
type User struct {
	UserName, UserARN, AccessKeyID, SecretAccessKey string
}

// UserInfo is a listed user.
type UserInfo struct {
	UserName, Path string
	Created        time.Time
	Tags           map[string]string
}

// SessionDenier cuts off assumed-role sessions before they expire, by a
// deny statement on the role (see denylist.go).
type SessionDenier interface {
	DenySession(ctx context.Context, roleARN, userID string, issuedAt, until time.Time) error
	// PruneDeniedSessions drops expired entries; true when none is left.
	PruneDeniedSessions(ctx context.Context, roleARN string) (bool, error)
}

// LifecycleObserver receives lifecycle metrics; nil means none.
type LifecycleObserver interface {
	// Revoked reports a finished upstream revocation and, for expiries,
	// the lag between expiry and revocation (0 for operator revokes).
	Revoked(leaseType string, lag time.Duration)
	RevokeFailed(code string)
	Irrevocable()
	// Backlog reports the revocations due now but not yet done.
	Backlog(n int)
	Orphan(action string)
}

// LifecycleConfig tunes expiry, revocation and reconciliation.
type LifecycleConfig struct {
	// Tick is how often the scheduler and dispatcher look for due work
	// (default 250ms).
	Tick time.Duration
	// Batch bounds the entries moved per transaction (default 500).
	Batch int
	// Workers is the number of concurrent upstream revocations (default 8).
	Workers int
	// IAMWritesPerSecond rate-limits revocations against the IAM account
	// (each deletes a user: several IAM writes; default 5 revocations/s).
	RevocationsPerSecond float64
	// MaxAttempts before a lease becomes irrevocable (default 10).
	MaxAttempts int
	// BackoffBase and BackoffMax shape the retry delays (default 1s, 5m),
	// doubled per attempt with ±50% jitter.
	BackoffBase, BackoffMax time.Duration
	// PendingGrace is how old a pending lease must be before the
	// reconciler treats it as abandoned (default 3m: longer than an
	// issuance can take).
	PendingGrace time.Duration
	// SweepInterval is how often IAM is checked for orphaned users
	// (default 10m; 0 keeps the default, negative disables).
	SweepInterval time.Duration
	// OrphanGrace is how old an unowned user must be before deletion
	// (default 15m).
	OrphanGrace time.Duration
	// SweepDryRun reports orphans without deleting them.
	SweepDryRun bool
	// SweepPaths are the IAM paths swept (default /keyferry/).
	SweepPaths []string
	// UsableProbe: consecutive successes and interval of WaitUsable, and
	// its bound (defaults 3, 1s, 60s).
	UsableSuccesses int
	UsableInterval  time.Duration
	UsableTimeout   time.Duration
}

func (c *LifecycleConfig) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Tick, 250*time.Millisecond)
	def(&c.BackoffBase, time.Second)
	def(&c.BackoffMax, 5*time.Minute)
	def(&c.PendingGrace, 3*time.Minute)
	def(&c.SweepInterval, 10*time.Minute)
	def(&c.OrphanGrace, 15*time.Minute)
	def(&c.UsableInterval, time.Second)
	def(&c.UsableTimeout, 60*time.Second)
	if c.Batch <= 0 {
		c.Batch = 500
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.RevocationsPerSecond <= 0 {
		c.RevocationsPerSecond = 5
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.UsableSuccesses <= 0 {
		c.UsableSuccesses = 3
	}
	if len(c.SweepPaths) == 0 {
		c.SweepPaths = []string{policy.DefaultUserPath}
	}
}

type nopLifecycle struct{}

func (nopLifecycle) Revoked(string, time.Duration) {}
func (nopLifecycle) RevokeFailed(string)           {}
func (nopLifecycle) Irrevocable()                  {}
func (nopLifecycle) Backlog(int)                   {}
func (nopLifecycle) Orphan(string)                 {}

// Run runs the lease lifecycle until ctx is done: the expiry scheduler,
// the revocation dispatcher and its workers, and the reconciler of
// abandoned pending leases and orphaned IAM users. Start-up reads only
// what is due: its cost does not grow with the number of live leases.
func (m *Manager) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	work := make(chan string)
	g.Go(func() error { return m.runScheduler(ctx) })
	g.Go(func() error { return m.runDispatcher(ctx, work) })
	g.Go(func() error { return m.runBacklog(ctx) })
	for i := 0; i < m.lc.Workers; i++ {
		g.Go(func() error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case id := <-work:
					m.revokeOne(ctx, id)
					m.done(id)
				}
			}
		})
	}
	g.Go(func() error { return m.runReconciler(ctx) })
	return g.Wait()
}

// wake nudges the scheduler and dispatcher (a revoke was queued).
func (m *Manager) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Manager) runScheduler(ctx context.Context) error {
	t := time.NewTicker(m.lc.Tick)
	defer t.Stop()
	for {
		if _, err := m.ExpireDue(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("expiry scheduler", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ExpireDue moves every lease whose expiry has passed out of the expiry
// index: iam_user leases into the revocation queue; STS leases simply
// drop their entry, since AWS ends the session itself. It reads only the
// due part of the index (a time range), and writes only when an entry is
// due: an idle broker commits nothing.
func (m *Manager) ExpireDue(ctx context.Context) (int, error) {
	total := 0
	defer func() {
		if total > 0 {
			m.wake()
		}
	}()
	for {
		r := due(expiryPrefix, m.now())
		r.Limit = m.lc.Batch
		page, err := m.store.List(ctx, r)
		if err != nil {
			return total, err
		}
		n, err := m.expire(ctx, page.KVs)
		total += n
		if err != nil || !page.More {
			return total, err
		}
	}
}

// expireParallelism is how many expiries are committed at once. Each is
// its own compare-and-swap on one lease; the bolt backend groups commits
// that arrive together into one transaction (up to its batch size of
// 256), so running them side by side is what makes a batch of expiries
// cost a few disk syncs, not one each. With 64, draining 10k same-second
// expiries took twice as long as with 256 (bench/leasescale drain).
const expireParallelism = 256

// expire processes due expiry entries and returns how many leases they
// named.
func (m *Manager) expire(ctx context.Context, entries []storage.KV) (int, error) {
	var n atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(expireParallelism)
	for _, e := range entries {
		_, id, ok := parseTimeKey(expiryPrefix, e.Key)
		if !ok {
			continue
		}
		g.Go(func() error {
			found, err := m.expireOne(gctx, e.Key, id)
			if found {
				n.Add(1)
			}
			return err
		})
	}
	err := g.Wait()
	return int(n.Load()), err
}

// expireOne removes one due expiry entry, and queues its lease for
// revocation when it is an iam_user lease still pending or active.
func (m *Manager) expireOne(ctx context.Context, entry, id string) (found bool, err error) {
	err = storage.Update(ctx, m.store, leaseKey(id), func(cur *storage.KV) ([]storage.Op, error) {
		found = cur != nil
		if cur == nil {
			return []storage.Op{storage.Del(entry)}, nil // a stray entry
		}
		ops, _, _, err := modifyOps(id, cur, func(l *Lease) error {
			if l.Type != policy.TypeIAMUser || (l.State != StateActive && l.State != StatePending) {
				return errSkip
			}
			if expiryKey(l.ExpiresAt, l.ID) != entry {
				// Renewed between the listing and now: the entry is
				// stale and the lease not due.
				return errSkip
			}
			l.State, l.NextAttemptAt, l.RevokedBy = StateRevoking, m.now(), "keyferry (expired)"
			return nil
		})
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(ops, func(op storage.Op) bool { return op.Key == entry }) {
			ops = append(ops, storage.Del(entry))
		}
		return ops, nil
	})
	return found, err
}

// runDispatcher hands due revocations to the workers, each lease once.
// After a full batch it looks again at once, so a backlog drains as fast
// as the workers and the rate limit allow rather than one batch per tick.
func (m *Manager) runDispatcher(ctx context.Context, work chan<- string) error {
	t := time.NewTicker(m.lc.Tick)
	defer t.Stop()
	for {
		more, err := m.dispatch(ctx, work)
		if err != nil && ctx.Err() == nil {
			m.log.Error("revocation dispatcher", "err", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		if more {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-m.kick:
		}
	}
}

// dispatch hands one batch of due revocations to the workers, blocking
// until they take them. more reports a full batch: more may be due.
func (m *Manager) dispatch(ctx context.Context, work chan<- string) (more bool, err error) {
	due, err := m.dueRevocations(ctx)
	if err != nil {
		return false, err
	}
	for _, id := range due {
		if !m.claim(id) {
			continue
		}
		select {
		case work <- id:
		case <-ctx.Done():
			return false, nil
		}
	}
	return len(due) == m.lc.Batch, nil
}

// runBacklog reports the revocation backlog every Tick. It runs apart
// from the dispatcher, which blocks while it hands a batch to busy
// workers (a batch of 500 takes 100 s at 5 revocations/s).
func (m *Manager) runBacklog(ctx context.Context) error {
	t := time.NewTicker(m.lc.Tick)
	defer t.Stop()
	for {
		if err := m.reportBacklog(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("counting the revocation backlog", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// backlogCountMax bounds the count behind the backlog gauge: it reads
// backlogCountMax when at least that many revocations are due, so that
// a huge queue costs a bounded scan (about 10 ms) per count.
const backlogCountMax = 100_000

// reportBacklog counts the revocations due now and not yet done (queued
// or held by a worker) and reports them.
func (m *Manager) reportBacklog(ctx context.Context) error {
	n, err := m.countDue(ctx, backlogCountMax)
	if err != nil {
		return err
	}
	m.lobs.Backlog(n)
	return nil
}

// countDue counts the revocations due now, whether a worker holds them or
// not, up to limit.
func (m *Manager) countDue(ctx context.Context, limit int) (int, error) {
	n := 0
	err := storage.Scan(ctx, m.store, due(revokePrefix, m.now()), func(storage.KV) (bool, error) {
		n++
		return n < limit, nil
	})
	return n, err
}

// dueRevocations returns up to Batch due revocations, in queue order,
// leaving out those a worker holds.
func (m *Manager) dueRevocations(ctx context.Context) ([]string, error) {
	var ids []string
	r := due(revokePrefix, m.now())
	r.Limit = m.lc.Batch
	err := storage.Scan(ctx, m.store, r, func(kv storage.KV) (bool, error) {
		_, id, ok := parseTimeKey(revokePrefix, kv.Key)
		if !ok || m.held(id) {
			return true, nil
		}
		ids = append(ids, id)
		return len(ids) < m.lc.Batch, nil
	})
	return ids, err
}

func (m *Manager) claim(id string) bool {
	m.inflightMu.Lock()
	defer m.inflightMu.Unlock()
	if m.inflight[id] {
		return false
	}
	m.inflight[id] = true
	return true
}

// held reports whether a worker holds id.
func (m *Manager) held(id string) bool {
	m.inflightMu.Lock()
	defer m.inflightMu.Unlock()
	return m.inflight[id]
}

func (m *Manager) done(id string) {
	m.inflightMu.Lock()
	delete(m.inflight, id)
	m.inflightMu.Unlock()
}

// revokeOne performs one revocation attempt for a revoking lease and
// records the outcome: revoked, a retry later, or irrevocable.
func (m *Manager) revokeOne(ctx context.Context, id string) {
	l, err := m.Get(ctx, id)
	if err != nil || l.State != StateRevoking {
		return // revoked meanwhile, forgotten, or the store is down: the next tick sees it again
	}
	if err := m.limiter.Wait(ctx); err != nil {
		return
	}
	upErr := m.upstreamRevoke(ctx, l)
	if ctx.Err() != nil && upErr != nil {
		return // shutting down: the queue entry stays, the next start retries
	}
	now := m.now()
	var final *Lease
	event := ""
	_, err = m.update(context.WithoutCancel(ctx), id, func(cur *Lease) error {
		final, event = nil, ""
		if cur.State != StateRevoking {
			return errSkip
		}
		if upErr == nil {
			cur.State, cur.RevokedAt, cur.LastError = StateRevoked, now, ""
			event = "revoked"
		} else {
			cur.Attempts++
			cur.LastError = revokeErrorText(upErr)
			if cur.Attempts >= m.lc.MaxAttempts {
				cur.State = StateIrrevocable
				event = "irrevocable"
			} else {
				cur.NextAttemptAt = now.Add(m.backoff(cur.Attempts, upErr))
			}
		}
		final = cur
		return nil
	})
	if err != nil {
		m.log.Error("recording a revocation attempt", "lease_id", id, "err", err)
		return
	}
	if upErr != nil {
		var ae *awsprov.Error
		code := "error"
		if errors.As(upErr, &ae) {
			code = ae.Code
		}
		m.lobs.RevokeFailed(code)
		m.log.Warn("revocation attempt failed", "lease_id", id, "attempt", final.Attempts, "err", upErr)
	}
	if final == nil || event == "" {
		return
	}
	s := final.Identity
	ev := &audit.Event{Type: audit.TypeRevoke, Role: final.Role, Identity: &s, LeaseID: final.ID, AccessKeyID: final.AccessKeyID,
		Actor: final.RevokedBy, Object: final.UserName}
	switch event {
	case "revoked":
		lag := time.Duration(0)
		if final.RevokedBy == "keyferry (expired)" {
			lag = now.Sub(final.ExpiresAt)
		}
		m.lobs.Revoked(final.Type, lag)
		ev.Message = "upstream cleanup done"
		if final.Type == policy.TypeIAMUser {
			ev.Message = "IAM user " + final.UserName + " deleted"
		}
	case "irrevocable":
		m.lobs.Irrevocable()
		ev.Type, ev.Decision, ev.Reason = audit.TypeRevoke, audit.DecisionDeny, "irrevocable"
		ev.Message = fmt.Sprintf("gave up after %d attempts: %s", final.Attempts, final.LastError)
	}
	if err := m.audit.Write(context.WithoutCancel(ctx), ev); err != nil {
		m.log.Error("audit write failed for a revocation", "lease_id", id, "err", err)
	}
}

// knownParts is what the lease says its user has: the recorded parts and
// the access key (none yet when issuance stopped before CreateAccessKey
// returned). nil, so that the user is deleted by listing, for a lease that
// recorded nothing and after a failed attempt: that attempt may have
// removed some parts, and repeating their deletes would spend IAM write
// quota on NoSuchEntity answers, where a list is a read (under a
// throttled account, repeated writes made most leases fail 7 times).
func knownParts(l *Lease) *awsprov.UserParts {
	if l.UserParts == nil || l.Attempts > 0 {
		return nil
	}
	k := &awsprov.UserParts{InlinePolicies: l.UserParts.InlinePolicies, PolicyARNs: l.UserParts.PolicyARNs, Groups: l.UserParts.Groups}
	if l.AccessKeyID != "" {
		k.AccessKeyIDs = []string{l.AccessKeyID}
	}
	return k
}

// upstreamRevoke does the upstream part of a revocation.
func (m *Manager) upstreamRevoke(ctx context.Context, l *Lease) error {
	switch {
	case l.Type == policy.TypeIAMUser:
		if m.users == nil {
			return errors.New("no IAM client configured")
		}
		return m.users.DeleteUser(ctx, l.UserName, knownParts(l))
	case l.EarlyRevocation && m.now().Before(l.ExpiresAt):
		if m.denier == nil {
			return errors.New("no IAM client configured for early revocation")
		}
		issued := l.SessionIssuedAt
		if issued.IsZero() {
			issued = m.now() // the latest it can have been: the cutoff then surely covers it
		}
		if err := m.denier.DenySession(ctx, l.RoleARN, sessionUserID(l), issued, l.ExpiresAt); err != nil {
			return err
		}
		// Remember the role, so the reconciler prunes its policy once the
		// session would have expired anyway.
		k := denyPrefix + url.PathEscape(l.RoleARN)
		return storage.Update(ctx, m.store, k, func(cur *storage.KV) ([]storage.Op, error) {
			if cur != nil {
				if t, err := time.Parse(time.RFC3339, string(cur.Value)); err == nil && !t.Before(l.ExpiresAt) {
					return nil, nil
				}
			}
			return []storage.Op{storage.Put(k, []byte(l.ExpiresAt.UTC().Format(time.RFC3339)))}, nil
		})
	}
	return nil
}

// denyPrefix keys the roles whose deny policy keyferry must prune:
// lease-deny/<escaped role ARN> → the latest expiry it holds (RFC 3339).
const denyPrefix = "lease-deny/"

// PruneDenials prunes the deny policy of every role whose last denied
// session has expired, and forgets the role once its policy is gone.
func (m *Manager) PruneDenials(ctx context.Context) error {
	if m.denier == nil {
		return nil
	}
	now := m.now()
	var expired []storage.KV
	err := storage.Scan(ctx, m.store, storage.Range{Prefix: denyPrefix}, func(kv storage.KV) (bool, error) {
		if t, err := time.Parse(time.RFC3339, string(kv.Value)); err != nil || !t.After(now) {
			expired = append(expired, kv)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, kv := range expired {
		arn, err := url.PathUnescape(kv.Key[len(denyPrefix):])
		if err != nil {
			continue
		}
		empty, err := m.denier.PruneDeniedSessions(ctx, arn)
		if err != nil {
			m.log.Warn("pruning a role's deny policy", "role_arn", arn, "err", err)
			continue
		}
		if !empty {
			continue
		}
		// Forget the role unless a revocation denied a new session
		// meanwhile (it then moved the expiry on): the next prune sees it.
		err = m.store.Commit(ctx, []storage.Cond{storage.Unchanged(kv)}, []storage.Op{storage.Del(kv.Key)})
		if err != nil && !errors.Is(err, storage.ErrConflict) {
			return err
		}
	}
	return nil
}

// sessionUserID is the aws:userid of an assumed-role session: STS's
// AssumedRoleId ("AROA…:session-name"). When STS did not report it, the
// role's unique id is unknown and "*:session-name" is matched instead
// (session names are unique per job, and a StringLike needs no more).
func sessionUserID(l *Lease) string {
	if strings.HasSuffix(l.AssumedRoleID, ":"+l.SessionName) {
		return l.AssumedRoleID
	}
	return "*:" + l.SessionName
}

// backoff is exponential with ±50% jitter, capped; a throttling error
// waits at least its Retry-After.
func (m *Manager) backoff(attempt int, err error) time.Duration {
	d := m.lc.BackoffBase << min(attempt-1, 20)
	if d <= 0 || d > m.lc.BackoffMax {
		d = m.lc.BackoffMax
	}
	d = d/2 + time.Duration(rand.Int64N(int64(d)))
	var ae *awsprov.Error
	if errors.As(err, &ae) && ae.RetryAfter > d {
		d = ae.RetryAfter
	}
	return d
}

func revokeErrorText(err error) string {
	var ae *awsprov.Error
	if errors.As(err, &ae) {
		return ae.Code + ": " + ae.Message
	}
	s := err.Error()
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// queueRevoke moves a lease into the revocation queue (due now). It is
// idempotent: a lease already revoking keeps its schedule.
func (m *Manager) queueRevoke(ctx context.Context, id, actor, note string) (*Lease, bool, error) {
	changed := false
	now := m.now()
	l, err := m.update(ctx, id, func(l *Lease) error {
		changed = false
		switch l.State {
		case StateRevoked, StateRevoking, StateIrrevocable:
			return errSkip
		}
		changed = true
		l.State, l.NextAttemptAt, l.RevokedBy, l.Attempts, l.LastError = StateRevoking, now, actor, 0, ""
		if note != "" {
			l.RevokeNote = note
		}
		return nil
	})
	if changed {
		m.wake()
	}
	return l, changed, err
}

// needsUpstream reports whether revoking l involves an upstream call.
func (m *Manager) needsUpstream(l *Lease) bool {
	return l.Type == policy.TypeIAMUser || (l.EarlyRevocation && m.now().Before(l.ExpiresAt))
}

// waitRevoked polls until lease id leaves the revoking state or ctx ends.
func (m *Manager) waitRevoked(ctx context.Context, id string) (*Lease, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		l, err := m.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if l.State != StateRevoking {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return l, nil // still queued: the caller reports "revoking"
		case <-t.C:
		}
	}
}

// limiterFor builds the upstream revocation rate limiter.
func newLimiter(perSecond float64) *rate.Limiter {
	burst := max(1, int(perSecond))
	return rate.NewLimiter(rate.Limit(perSecond), burst)
}
