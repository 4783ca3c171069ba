package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
	"github.com/keyferry/keyferry/internal/storage"
)

// UserRemover deletes and lists the IAM users of iam_user leases. Errors
// are *awsprov.Error where the upstream refused.
type UserRemover interface {
	// DeleteUser deletes the user and what it has. known, when not nil,
	// names what keyferry attached to it (a hint: the implementation must
	// still delete anything else the user has, and treat a missing user
	// as deleted).
	DeleteUser(ctx context.Context, userName string, known *awsprov.UserParts) error
	ListUsers(ctx context.Context, pathPrefix string) ([]UserInfo, error)
}

// UserInfo is a listed user.
type UserInfo struct {
	UserName, Path string
	Created        time.Time
	Tags           map[string]string
}

// SessionDenier cuts off assumed-role sessions before they expire, by a
// deny statement on the role.
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
	// AuditStopped reports that a background path stopped (true) or went
	// on again (false) because the audit log refused (took) its records.
	AuditStopped(path string, stopped bool)
}

type nopLifecycle struct{}

func (nopLifecycle) Revoked(string, time.Duration) {}
func (nopLifecycle) RevokeFailed(string)           {}
func (nopLifecycle) Irrevocable()                  {}
func (nopLifecycle) Backlog(int)                   {}
func (nopLifecycle) Orphan(string)                 {}
func (nopLifecycle) AuditStopped(string, bool)     {}

// Tuning tunes expiry, revocation and reconciliation. The zero value
// means the defaults.
type Tuning struct {
	// Tick is how often the scheduler and dispatcher look for due work
	// (default 250ms).
	Tick time.Duration
	// Batch bounds the entries read per pass (default 500).
	Batch int
	// Workers is the number of concurrent upstream revocations (default 8).
	Workers int
	// RevocationsPerSecond rate-limits revocations against the IAM
	// account (each deletes a user: several IAM writes; default 5).
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
	// AuditRetry is how often a background path that stopped because the
	// audit log refused its record tries again (default 5s).
	AuditRetry time.Duration
}

func (c *Tuning) setDefaults() {
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
	def(&c.AuditRetry, 5*time.Second)
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
	if len(c.SweepPaths) == 0 {
		c.SweepPaths = []string{policy.DefaultUserPath}
	}
}

// LifecycleConfig wires a Lifecycle.
type LifecycleConfig struct {
	Store storage.Store
	Audit audit.Writer
	// Roles gives a renewal its role's ttl.
	Roles Roles
	// Users deletes IAM users (iam_user roles); Denier adds deny
	// statements for revoked sessions (early_revocation). Either may be
	// nil when no role needs it.
	Users    UserRemover
	Denier   SessionDenier
	Observer LifecycleObserver
	Logger   *slog.Logger
	Now      func() time.Time
	Tuning   Tuning
}

// Lifecycle runs what happens to leases after issuance: the expiry
// scheduler, the revocation dispatcher and its workers, the reconciler
// of abandoned pending leases and orphaned IAM users; and the operators'
// actions on leases (revoke, retry, forget, renew) and their reads. It is
// safe for concurrent use.
//
// The record of every destructive action is written before the action.
// When the audit log refuses a record, a background path (expiry,
// revocation, reconciler, orphan sweep) stops doing its work, says so in
// the log, in metrics and through Healthy (which /readyz reports), and
// tries again every Tuning.AuditRetry until the log takes records again.
type Lifecycle struct {
	records
	audit  audit.Writer
	roles  Roles
	users  UserRemover
	denier SessionDenier
	obs    LifecycleObserver
	log    *slog.Logger
	now    func() time.Time
	tune   Tuning

	limiter *rate.Limiter
	kick    chan struct{}

	inflightMu sync.Mutex
	inflight   map[string]bool
	sweepMu    sync.Mutex // one orphan sweep at a time

	stopMu  sync.Mutex
	stopped map[string]stop // background paths stopped for the audit log
}

type stop struct {
	err   error
	since time.Time
	tried time.Time // the last attempt
}

// NewLifecycle returns a Lifecycle; call Run to start its background work.
func NewLifecycle(cfg LifecycleConfig) *Lifecycle {
	lc := &Lifecycle{
		records: records{st: cfg.Store}, audit: cfg.Audit, roles: cfg.Roles, users: cfg.Users, denier: cfg.Denier,
		obs: cfg.Observer, log: cfg.Logger, now: cfg.Now, tune: cfg.Tuning,
		kick: make(chan struct{}, 1), inflight: map[string]bool{}, stopped: map[string]stop{},
	}
	if lc.log == nil {
		lc.log = slog.New(slog.DiscardHandler)
	}
	if lc.now == nil {
		lc.now = time.Now
	}
	if lc.obs == nil {
		lc.obs = nopLifecycle{}
	}
	lc.tune.setDefaults()
	lc.limiter = newLimiter(lc.tune.RevocationsPerSecond)
	return lc
}

// Background paths, as named in logs, metrics and Healthy.
const (
	PathExpiry      = "expiry"
	PathRevocation  = "revocation"
	PathReconciler  = "reconciler"
	PathOrphanSweep = "orphan_sweep"
)

// auditStopped is the error of a background pass that stopped because
// the audit log refused a record.
type auditStopped struct{ err error }

func (e *auditStopped) Error() string { return "audit log refused a record: " + e.err.Error() }
func (e *auditStopped) Unwrap() error { return e.err }

// track records the outcome of a pass of a background path: stopped for
// the audit log, going again, or failed for another reason (logged).
func (lc *Lifecycle) track(path string, err error) {
	var as *auditStopped
	now := lc.now()
	lc.stopMu.Lock()
	prev, was := lc.stopped[path]
	switch {
	case errors.As(err, &as):
		if !was {
			prev.since = now
		}
		prev.err, prev.tried = as.err, now
		lc.stopped[path] = prev
	case err == nil && was:
		delete(lc.stopped, path)
	}
	lc.stopMu.Unlock()
	switch {
	case as != nil && !was:
		lc.log.Error("background work stopped: the audit log refuses records, and nothing is done without one; retrying", "path", path,
			"retry_every", lc.tune.AuditRetry, "err", as.err)
		lc.obs.AuditStopped(path, true)
	case err == nil && was:
		lc.log.Info("background work goes on: the audit log takes records again", "path", path, "stopped_for", now.Sub(prev.since).Round(time.Millisecond))
		lc.obs.AuditStopped(path, false)
	case err != nil && as == nil:
		lc.log.Error("background work failed", "path", path, "err", err)
	}
}

// mayRun reports whether a background path should do a pass now: always,
// unless it stopped for the audit log and tried less than AuditRetry ago.
func (lc *Lifecycle) mayRun(path string) bool {
	lc.stopMu.Lock()
	defer lc.stopMu.Unlock()
	s, ok := lc.stopped[path]
	return !ok || lc.now().Sub(s.tried) >= lc.tune.AuditRetry
}

// isStopped reports whether path is stopped for the audit log.
func (lc *Lifecycle) isStopped(path string) bool {
	lc.stopMu.Lock()
	defer lc.stopMu.Unlock()
	_, ok := lc.stopped[path]
	return ok
}

// Healthy returns nil, or an error naming the background paths stopped
// because the audit log refuses their records.
func (lc *Lifecycle) Healthy() error {
	lc.stopMu.Lock()
	defer lc.stopMu.Unlock()
	if len(lc.stopped) == 0 {
		return nil
	}
	paths := make([]string, 0, len(lc.stopped))
	var first error
	for p, s := range lc.stopped {
		paths = append(paths, p)
		if first == nil {
			first = s.err
		}
	}
	sort.Strings(paths)
	return fmt.Errorf("lease: %s stopped: the audit log refuses records: %w", strings.Join(paths, ", "), first)
}

// Run runs the lease lifecycle until ctx is done: the expiry scheduler,
// the revocation dispatcher and its workers, and the reconciler of
// abandoned pending leases and orphaned IAM users. Start-up reads only
// what is due: its cost does not grow with the number of live leases.
func (lc *Lifecycle) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	work := make(chan string)
	g.Go(func() error { return lc.runScheduler(ctx) })
	g.Go(func() error { return lc.runDispatcher(ctx, work) })
	g.Go(func() error { return lc.runBacklog(ctx) })
	for range lc.tune.Workers {
		g.Go(func() error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case id := <-work:
					err := lc.revokeOne(ctx, id)
					lc.done(id)
					if ctx.Err() == nil {
						lc.track(PathRevocation, err)
					}
				}
			}
		})
	}
	g.Go(func() error { return lc.runReconciler(ctx) })
	return g.Wait()
}

// wake nudges the scheduler and dispatcher (a revoke was queued).
func (lc *Lifecycle) wake() {
	select {
	case lc.kick <- struct{}{}:
	default:
	}
}

func (lc *Lifecycle) runScheduler(ctx context.Context) error {
	t := time.NewTicker(lc.tune.Tick)
	defer t.Stop()
	for {
		if lc.mayRun(PathExpiry) {
			_, err := lc.ExpireDue(ctx)
			if ctx.Err() == nil {
				lc.track(PathExpiry, err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ExpireDue moves every lease whose expiry has passed out of the expiry
// index: iam_user leases into the revocation queue, after a revoke record
// with reason "expired"; STS leases simply drop their entry, since AWS
// ends the session itself. It reads only the due part of the index (a
// time range), and writes only when an entry is due: an idle broker
// commits nothing. If the audit log refuses a record it stops, with an
// error wrapping the audit error; what it did not reach stays due.
func (lc *Lifecycle) ExpireDue(ctx context.Context) (int, error) {
	total := 0
	defer func() {
		if total > 0 {
			lc.wake()
		}
	}()
	for {
		r := due(expiryPrefix, lc.now())
		r.Limit = lc.tune.Batch
		page, err := lc.st.List(ctx, r)
		if err != nil {
			return total, err
		}
		n, err := lc.expire(ctx, page.KVs)
		total += n
		if err != nil || !page.More {
			return total, err
		}
	}
}

// commitParallelism is how many independent commits a batch job (expiry,
// Seed) runs at once. The bolt backend groups commits that arrive
// together into one transaction (up to its batch size of 256), so running
// them side by side is what makes a batch cost a few disk syncs, not one
// each. With 64, draining 10k same-second expiries took twice as long as
// with 256 (bench/leasescale drain).
const commitParallelism = 256

// expire processes due expiry entries and returns how many leases they
// named.
func (lc *Lifecycle) expire(ctx context.Context, entries []storage.KV) (int, error) {
	var n atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(commitParallelism)
	for _, e := range entries {
		_, id, ok := parseTimeKey(expiryPrefix, e.Key)
		if !ok {
			continue
		}
		g.Go(func() error {
			found, err := lc.expireOne(gctx, e.Key, id)
			if found {
				n.Add(1)
			}
			return err
		})
	}
	err := g.Wait()
	return int(n.Load()), err
}

// actorExpired is the actor of revocations of expired leases.
const actorExpired = "keyferry (expired)"

// expireOne removes one due expiry entry, and queues its lease for
// revocation when it is an iam_user lease still pending or active; the
// revoke record comes first.
func (lc *Lifecycle) expireOne(ctx context.Context, entry, id string) (found bool, err error) {
	recorded := false
	for range 10 {
		kv, err := lc.st.Get(ctx, leaseKey(id))
		if errors.Is(err, storage.ErrNotFound) {
			return false, lc.st.Commit(ctx, []storage.Cond{storage.Absent(leaseKey(id))}, []storage.Op{storage.Del(entry)}) // a stray entry
		}
		if err != nil {
			return false, err
		}
		l, err := decodeLease(kv)
		if err != nil {
			return true, err
		}
		// A lease renewed since the listing no longer owns the entry: it
		// is stale, and the lease is not due.
		queue := l.Type == policy.TypeIAMUser && (l.State == StateActive || l.State == StatePending) && expiryKey(l.ExpiresAt, l.ID) == entry
		ops := []storage.Op{storage.Del(entry)}
		if queue {
			if !recorded {
				if err := lc.audit.Write(context.WithoutCancel(ctx), &audit.Event{
					Type: audit.TypeRevoke, Role: l.Role, Identity: summaryOf(l.Identity), LeaseID: l.ID, AccessKeyID: l.AccessKeyID, Object: l.UserName,
					Actor: actorExpired, Reason: "expired", Message: "the lease expired: IAM user " + l.UserName + " queued for deletion",
				}); err != nil {
					return true, &auditStopped{err}
				}
				recorded = true
			}
			next := *l
			next.State, next.NextAttemptAt, next.RevokedBy = StateRevoking, lc.now(), actorExpired
			if ops, err = saveOps(l, &next); err != nil {
				return true, err
			}
			if !slices.ContainsFunc(ops, func(op storage.Op) bool { return op.Key == entry }) {
				ops = append(ops, storage.Del(entry))
			}
		}
		err = lc.st.Commit(ctx, []storage.Cond{storage.Unchanged(kv)}, ops)
		if !errors.Is(err, storage.ErrConflict) {
			return true, err
		}
	}
	return true, fmt.Errorf("lease %s: expiry kept conflicting with other writes", id)
}

// runDispatcher hands due revocations to the workers, each lease once.
// After a full batch it looks again at once, so a backlog drains as fast
// as the workers and the rate limit allow rather than one batch per tick.
// While revocation is stopped for the audit log, it hands out one lease
// per AuditRetry: the attempt that finds the log working again.
func (lc *Lifecycle) runDispatcher(ctx context.Context, work chan<- string) error {
	t := time.NewTicker(lc.tune.Tick)
	defer t.Stop()
	for {
		more := false
		if lc.mayRun(PathRevocation) {
			var err error
			more, err = lc.dispatch(ctx, work)
			if err != nil && ctx.Err() == nil {
				lc.log.Error("revocation dispatcher", "err", err)
			}
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
		case <-lc.kick:
		}
	}
}

// dispatch hands one batch of due revocations to the workers, blocking
// until they take them. more reports a full batch: more may be due.
func (lc *Lifecycle) dispatch(ctx context.Context, work chan<- string) (more bool, err error) {
	limit := lc.tune.Batch
	if lc.isStopped(PathRevocation) {
		limit = 1
	}
	due, err := lc.dueRevocations(ctx, limit)
	if err != nil {
		return false, err
	}
	for _, id := range due {
		if !lc.claim(id) {
			continue
		}
		select {
		case work <- id:
		case <-ctx.Done():
			return false, nil
		}
	}
	return len(due) == lc.tune.Batch, nil
}

// runBacklog reports the revocation backlog every Tick. It runs apart
// from the dispatcher, which blocks while it hands a batch to busy
// workers (a batch of 500 takes 100 s at 5 revocations/s).
func (lc *Lifecycle) runBacklog(ctx context.Context) error {
	t := time.NewTicker(lc.tune.Tick)
	defer t.Stop()
	for {
		if err := lc.reportBacklog(ctx); err != nil && ctx.Err() == nil {
			lc.log.Error("counting the revocation backlog", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// reportBacklog counts the revocations due now and not yet done (queued
// or held by a worker) and reports them.
func (lc *Lifecycle) reportBacklog(ctx context.Context) error {
	n, err := lc.countDue(ctx, backlogCountMax)
	if err != nil {
		return err
	}
	lc.obs.Backlog(n)
	return nil
}

// backlogCountMax bounds the count behind the backlog gauge: it reads
// backlogCountMax when at least that many revocations are due, so that
// a huge queue costs a bounded scan per count.
const backlogCountMax = 100_000

// countDue counts the revocations due now, whether a worker holds them or
// not, up to limit.
func (lc *Lifecycle) countDue(ctx context.Context, limit int) (int, error) {
	n := 0
	err := storage.Scan(ctx, lc.st, due(revokePrefix, lc.now()), func(storage.KV) (bool, error) {
		n++
		return n < limit, nil
	})
	return n, err
}

// dueRevocations returns up to limit due revocations, in queue order,
// leaving out those a worker holds.
func (lc *Lifecycle) dueRevocations(ctx context.Context, limit int) ([]string, error) {
	var ids []string
	r := due(revokePrefix, lc.now())
	r.Limit = limit
	err := storage.Scan(ctx, lc.st, r, func(kv storage.KV) (bool, error) {
		_, id, ok := parseTimeKey(revokePrefix, kv.Key)
		if !ok || lc.held(id) {
			return true, nil
		}
		ids = append(ids, id)
		return len(ids) < limit, nil
	})
	return ids, err
}

func (lc *Lifecycle) claim(id string) bool {
	lc.inflightMu.Lock()
	defer lc.inflightMu.Unlock()
	if lc.inflight[id] {
		return false
	}
	lc.inflight[id] = true
	return true
}

// held reports whether a worker holds id.
func (lc *Lifecycle) held(id string) bool {
	lc.inflightMu.Lock()
	defer lc.inflightMu.Unlock()
	return lc.inflight[id]
}

func (lc *Lifecycle) done(id string) {
	lc.inflightMu.Lock()
	delete(lc.inflight, id)
	lc.inflightMu.Unlock()
}

// revokeOne performs one revocation attempt for a revoking lease and
// records the outcome: revoked, a retry later, or irrevocable. The
// outcome's audit record is written before the lease changes: if the log
// refuses it, the lease stays revoking as it was and the attempt is made
// again once the log works (deleting an IAM user twice is harmless).
func (lc *Lifecycle) revokeOne(ctx context.Context, id string) error {
	kv, l, err := lc.read(ctx, id)
	if errors.Is(err, storage.ErrNotFound) || err == nil && l.State != StateRevoking {
		return nil // forgotten or revoked meanwhile
	}
	if err != nil {
		return err // the store is down: the next tick sees it again
	}
	if err := lc.limiter.Wait(ctx); err != nil {
		return nil
	}
	upErr := lc.upstreamRevoke(ctx, l)
	if ctx.Err() != nil && upErr != nil {
		return nil // shutting down: the queue entry stays, the next start retries
	}
	if upErr != nil {
		var ae *awsprov.Error
		code := "error"
		if errors.As(upErr, &ae) {
			code = ae.Code
		}
		lc.obs.RevokeFailed(code)
		lc.log.Warn("revocation attempt failed", "lease_id", id, "attempt", l.Attempts+1, "err", upErr)
	}
	now := lc.now()
	final := upErr == nil || l.Attempts+1 >= lc.tune.MaxAttempts
	if final {
		ev := &audit.Event{Type: audit.TypeRevoke, Role: l.Role, Identity: summaryOf(l.Identity), LeaseID: l.ID, AccessKeyID: l.AccessKeyID,
			Actor: l.RevokedBy, Object: l.UserName}
		switch {
		case upErr != nil:
			ev.Decision, ev.Reason = audit.DecisionDeny, "irrevocable"
			ev.Message = fmt.Sprintf("gave up after %d attempts: %s", l.Attempts+1, revokeErrorText(upErr))
		case l.Type == policy.TypeIAMUser:
			ev.Message = "IAM user " + l.UserName + " deleted"
		default:
			ev.Message = "upstream cleanup done"
		}
		if err := lc.audit.Write(context.WithoutCancel(ctx), ev); err != nil {
			return &auditStopped{err}
		}
	}
	event := ""
	l, err = lc.updateRead(context.WithoutCancel(ctx), kv, l, func(cur *Lease) error {
		event = ""
		if cur.State != StateRevoking {
			return errSkip
		}
		if upErr == nil {
			cur.State, cur.RevokedAt, cur.LastError = StateRevoked, now, ""
			event = "revoked"
			return nil
		}
		cur.Attempts++
		cur.LastError = revokeErrorText(upErr)
		if cur.Attempts >= lc.tune.MaxAttempts {
			cur.State = StateIrrevocable
			event = "irrevocable"
		} else {
			cur.NextAttemptAt = now.Add(lc.backoff(cur.Attempts, upErr))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording a revocation attempt of lease %s: %w", id, err)
	}
	switch event {
	case "revoked":
		lag := time.Duration(0)
		if l.RevokedBy == actorExpired {
			lag = now.Sub(l.ExpiresAt)
		}
		lc.obs.Revoked(l.Type, lag)
	case "irrevocable":
		lc.obs.Irrevocable()
	}
	return nil
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
	k := *l.UserParts
	k.AccessKeyIDs = nil
	if l.AccessKeyID != "" {
		k.AccessKeyIDs = []string{l.AccessKeyID}
	}
	return &k
}

// upstreamRevoke does the upstream part of a revocation.
func (lc *Lifecycle) upstreamRevoke(ctx context.Context, l *Lease) error {
	switch {
	case l.Type == policy.TypeIAMUser:
		if lc.users == nil {
			return errors.New("no IAM client configured")
		}
		return lc.users.DeleteUser(ctx, l.UserName, knownParts(l))
	case l.EarlyRevocation && lc.now().Before(l.ExpiresAt):
		if lc.denier == nil {
			return errors.New("no IAM client configured for early revocation")
		}
		issued := l.SessionIssuedAt
		if issued.IsZero() {
			issued = lc.now() // the latest it can have been: the cutoff then surely covers it
		}
		if err := lc.denier.DenySession(ctx, l.RoleARN, sessionUserID(l), issued, l.ExpiresAt); err != nil {
			return err
		}
		// Remember the role, so the reconciler prunes its policy once the
		// session would have expired anyway.
		k := denyPrefix + url.PathEscape(l.RoleARN)
		return storage.Update(ctx, lc.st, k, func(cur *storage.KV) ([]storage.Op, error) {
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
// Pruning removes statements that no longer deny anything (their
// sessions have expired), so it writes no audit record.
func (lc *Lifecycle) PruneDenials(ctx context.Context) error {
	if lc.denier == nil {
		return nil
	}
	now := lc.now()
	var expired []storage.KV
	err := storage.Scan(ctx, lc.st, storage.Range{Prefix: denyPrefix}, func(kv storage.KV) (bool, error) {
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
		empty, err := lc.denier.PruneDeniedSessions(ctx, arn)
		if err != nil {
			lc.log.Warn("pruning a role's deny policy", "role_arn", arn, "err", err)
			continue
		}
		if !empty {
			continue
		}
		// Forget the role unless a revocation denied a new session
		// meanwhile (it then moved the expiry on): the next prune sees it.
		err = lc.st.Commit(ctx, []storage.Cond{storage.Unchanged(kv)}, []storage.Op{storage.Del(kv.Key)})
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
func (lc *Lifecycle) backoff(attempt int, err error) time.Duration {
	d := lc.tune.BackoffBase << min(attempt-1, 20)
	if d <= 0 || d > lc.tune.BackoffMax {
		d = lc.tune.BackoffMax
	}
	d = d/2 + time.Duration(rand.Int64N(int64(d)))
	var ae *awsprov.Error
	if errors.As(err, &ae) && ae.RetryAfter > d {
		d = ae.RetryAfter
	}
	return d
}

// needsUpstream reports whether revoking l involves an upstream call.
func (lc *Lifecycle) needsUpstream(l *Lease) bool {
	return l.Type == policy.TypeIAMUser || (l.EarlyRevocation && lc.now().Before(l.ExpiresAt))
}

// waitRevoked polls until lease id leaves the revoking state or ctx ends.
func (lc *Lifecycle) waitRevoked(ctx context.Context, id string) (*Lease, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		l, err := lc.get(ctx, id)
		if err != nil {
			return nil, asNotFound(id, err)
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

// newLimiter builds the upstream revocation rate limiter.
func newLimiter(perSecond float64) *rate.Limiter {
	burst := max(1, int(perSecond))
	return rate.NewLimiter(rate.Limit(perSecond), burst)
}
