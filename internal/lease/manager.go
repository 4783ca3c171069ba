package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
	"github.com/keyferry/keyferry/internal/storage"
	"golang.org/x/time/rate"
)

// Reason codes of refusals that are not identity or upstream errors.
const (
	CodeNoMatchingRole   = "no_matching_role"
	CodeInvalidRequest   = "invalid_request"
	CodeAuditUnavailable = "audit_unavailable"
	CodeStoreUnavailable = "store_unavailable"
	CodeInternal         = "internal_error"
	CodeNotFound         = "not_found"
)

// Error is a refusal with its HTTP status, a stable code and a message that
// is safe to show the caller. Err is for logs only.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("lease: %s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("lease: %s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Verifier authenticates job tokens.
type Verifier interface {
	Verify(ctx context.Context, raw string) (*identity.Identity, error)
}

// Roles looks up compiled roles.
type Roles interface {
	Role(name string) (*policy.Compiled, bool)
}

// Minter mints AWS credentials.
type Minter interface {
	AssumeRole(ctx context.Context, req awsprov.Request) (*awsprov.Credentials, error)
	AssumeRoleWithWebIdentity(ctx context.Context, req awsprov.Request) (*awsprov.Credentials, error)
}

// Observer receives issuance metrics; nil means none.
type Observer interface {
	Issued(role, result string, took time.Duration)
	UpstreamError(code string)
}

// Config wires a Manager.
type Config struct {
	Store    storage.Store
	Audit    audit.Writer
	Verifier Verifier
	Roles    Roles
	Minter   Minter
	Observer Observer
	Logger   *slog.Logger
	Now      func() time.Time
	// DefaultRegion is used when a role sets none.
	DefaultRegion string
	// Users creates and deletes IAM users (iam_user roles); Denier adds
	// deny statements for revoked sessions (early_revocation). Either may
	// be nil when no role needs it.
	Users  Users
	Denier SessionDenier
	// Lifecycle tunes expiry, revocation and reconciliation.
	Lifecycle         LifecycleConfig
	LifecycleObserver LifecycleObserver
}

// Manager issues, lists and revokes leases. It is safe for concurrent use.
type Manager struct {
	store    storage.Store
	audit    audit.Writer
	verifier Verifier
	roles    Roles
	minter   Minter
	obs      Observer
	log      *slog.Logger
	now      func() time.Time
	region   string

	users   Users
	denier  SessionDenier
	lc      LifecycleConfig
	lobs    LifecycleObserver
	limiter *rate.Limiter
	kick    chan struct{}

	inflightMu sync.Mutex
	inflight   map[string]bool
	sweepMu    sync.Mutex // one orphan sweep at a time
}

// NewManager returns a Manager.
func NewManager(cfg Config) *Manager {
	m := &Manager{
		store: cfg.Store, audit: cfg.Audit, verifier: cfg.Verifier, roles: cfg.Roles,
		minter: cfg.Minter, obs: cfg.Observer, log: cfg.Logger, now: cfg.Now, region: cfg.DefaultRegion,
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.obs == nil {
		m.obs = nopObserver{}
	}
	m.users, m.denier, m.lc, m.lobs = cfg.Users, cfg.Denier, cfg.Lifecycle, cfg.LifecycleObserver
	m.lc.setDefaults()
	if m.lobs == nil {
		m.lobs = nopLifecycle{}
	}
	m.limiter = newLimiter(m.lc.RevocationsPerSecond)
	m.kick = make(chan struct{}, 1)
	m.inflight = map[string]bool{}
	return m
}

type nopObserver struct{}

func (nopObserver) Issued(string, string, time.Duration) {}
func (nopObserver) UpstreamError(string)                 {}

// IssueRequest is one credential request.
type IssueRequest struct {
	Role string
	// Candidates, used when Role is empty, are tried in order after the
	// token is verified; the first role that accepts it is used (the
	// STS-compatible endpoint maps one RoleArn to several roles).
	Candidates []string
	Token      string
	TTL        time.Duration // 0 = the role's ttl
	RequestID  string
	SourceAddr string
}

// Issued is a successful issuance. Credentials and RefreshHandle are
// secrets: never log them.
type Issued struct {
	Lease       *Lease
	Credentials api.Credentials
	Region      string
	// RefreshHandle trades for fresh credentials until MaxExpiresAt
	// (assume_role leases only).
	RefreshHandle string
	// Audience is the verified token's audience.
	Audience []string
}

// Issue runs the whole issuance. Every outcome, allow or deny, is audited;
// credentials are returned only after both the lease and the audit event
// are durable.
func (m *Manager) Issue(ctx context.Context, req IssueRequest) (*Issued, error) {
	start := m.now()
	out, err := m.issue(ctx, req)
	result := "issued"
	if err != nil {
		result = "denied"
		var e *Error
		if errors.As(err, &e) {
			result = e.Code
		}
	}
	roleLabel := req.Role
	if out != nil {
		roleLabel = out.Lease.Role // the STS endpoint picks it from candidates
	} else if _, ok := m.roles.Role(req.Role); !ok {
		roleLabel = "(unknown)" // bound the metric's label set
	}
	m.obs.Issued(roleLabel, result, m.now().Sub(start))
	return out, err
}

func (m *Manager) issue(ctx context.Context, req IssueRequest) (*Issued, error) {
	deny := func(id *identity.Identity, e *Error) error {
		ev := &audit.Event{
			Type: audit.TypeDeny, Decision: audit.DecisionDeny, Role: req.Role, Reason: e.Code,
			Message: e.Message, RequestID: req.RequestID, SourceAddr: req.SourceAddr,
		}
		if id != nil {
			s := id.Summary()
			ev.Identity = &s
		}
		if err := m.audit.Write(context.WithoutCancel(ctx), ev); err != nil {
			m.log.Error("audit write failed for a denial", "request_id", req.RequestID, "err", err)
			return &Error{Status: http.StatusServiceUnavailable, Code: CodeAuditUnavailable, Message: "the audit log is unavailable; no request can be served", Err: err}
		}
		return e
	}

	id, err := m.verifier.Verify(ctx, req.Token)
	if err != nil {
		var ie *identity.Error
		if errors.As(err, &ie) {
			status := http.StatusUnauthorized
			switch ie.Code {
			case identity.CodeIssuerUnavailable, identity.CodeReplayCacheFull:
				status = http.StatusServiceUnavailable
			case identity.CodeTokenTooLarge:
				status = http.StatusRequestEntityTooLarge
			}
			return nil, deny(nil, &Error{Status: status, Code: ie.Code, Message: ie.Message, Err: ie.Err})
		}
		return nil, deny(nil, &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "token verification failed", Err: err})
	}

	if req.Role == "" {
		for _, name := range req.Candidates {
			if c, ok := m.roles.Role(name); ok && c.Role().Issuer == id.Issuer && c.Evaluate(id.Claims).Allowed {
				req.Role = name
				break
			}
		}
		if req.Role == "" {
			return nil, deny(id, &Error{Status: http.StatusForbidden, Code: CodeNoMatchingRole,
				Message: "no keyferry role for this RoleArn accepts this token"})
		}
	}
	role, ok := m.roles.Role(req.Role)
	var r policy.Role
	if ok {
		r = role.Role() // a deep copy: take it once per issuance
	}
	if !ok || r.Issuer != id.Issuer {
		return nil, deny(id, &Error{Status: http.StatusForbidden, Code: CodeNoMatchingRole,
			Message: fmt.Sprintf("role %q does not exist or does not accept tokens from this issuer", req.Role)})
	}
	if res := role.Evaluate(id.Claims); !res.Allowed {
		return nil, deny(id, &Error{Status: http.StatusForbidden, Code: CodeNoMatchingRole,
			Message: fmt.Sprintf("role %q does not accept this token: %s", req.Role, res.Denial())})
	}

	ttl := r.AWS.TTL.D()
	if req.TTL != 0 {
		minTTL := policy.MinTTL
		if r.AWS.Type == policy.TypeIAMUser {
			minTTL = policy.MinUserTTL
		}
		if req.TTL < minTTL || req.TTL > ttl {
			return nil, deny(id, &Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest,
				Message: fmt.Sprintf("ttl_seconds must be between %d and the role's ttl (%d)", int64(minTTL.Seconds()), int64(ttl.Seconds()))})
		}
		ttl = req.TTL
	}

	now := m.now()
	leaseID := NewID(now)
	rendered, err := role.Render(id.Claims, map[string]string{"role": r.Name, "lease_id": leaseID})
	if err != nil {
		return nil, deny(id, &Error{Status: http.StatusForbidden, Code: CodeNoMatchingRole,
			Message: fmt.Sprintf("role %q cannot build a session from this token: %v", r.Name, err)})
	}
	region := r.AWS.Region
	if region == "" {
		region = m.region
	}
	if r.AWS.Type == policy.TypeIAMUser {
		return m.issueUser(ctx, req, id, r, rendered, leaseID, now, ttl, region, deny)
	}
	preq := awsprov.Request{
		Region: region, RoleARN: r.AWS.RoleARN, SessionName: rendered.SessionName,
		Policy: compactPolicy(r.AWS.SessionPolicy), PolicyARNs: r.AWS.PolicyARNs,
		TransitiveTagKeys: r.AWS.TransitiveTagKeys, SourceIdentity: rendered.SourceIdentity,
		ExternalID: r.AWS.ExternalID, Duration: ttl,
	}
	for _, t := range rendered.Tags {
		preq.Tags = append(preq.Tags, awsprov.Tag{Key: t.Key, Value: t.Value})
	}
	var creds *awsprov.Credentials
	switch r.AWS.Type {
	case policy.TypeWebIdentity:
		preq.WebIdentityToken = req.Token
		creds, err = m.minter.AssumeRoleWithWebIdentity(ctx, preq)
	default:
		creds, err = m.minter.AssumeRole(ctx, preq)
	}
	if err != nil {
		return nil, deny(id, m.upstreamError(err))
	}

	l := &Lease{
		ID: leaseID, Role: r.Name, Type: r.AWS.Type, Identity: id.Summary(), RoleARN: r.AWS.RoleARN,
		SessionName: rendered.SessionName, AccessKeyID: creds.AccessKeyID, IssuedAt: now.UTC(),
		ExpiresAt: creds.Expiration.UTC(), State: StateActive, RequestID: req.RequestID, SourceAddr: req.SourceAddr,
		MaxExpiresAt: now.Add(r.AWS.MaxTTL.D()).UTC(), Region: r.AWS.Region, Tags: rendered.Tags, SourceIdentity: rendered.SourceIdentity,
		Issuer: id.Issuer, AssumedRoleID: creds.AssumedRoleID, EarlyRevocation: r.AWS.EarlyRevocation, SessionIssuedAt: now.UTC(),
	}
	var handle string
	if refreshable(l.Type) {
		handle, l.RefreshHash = newRefreshHandle(l.ID)
		l.Claims = id.Claims
	}
	if err := m.put(ctx, l); err != nil {
		m.log.Error("lease write failed", "request_id", req.RequestID, "access_key_id", creds.AccessKeyID, "err", err)
		return nil, deny(id, &Error{Status: http.StatusServiceUnavailable, Code: CodeStoreUnavailable, Message: "the lease store is unavailable", Err: err})
	}
	summary := l.Identity
	if err := m.audit.Write(context.WithoutCancel(ctx), &audit.Event{
		Type: audit.TypeIssue, Decision: audit.DecisionAllow, Role: r.Name, Identity: &summary,
		LeaseID: l.ID, AccessKeyID: l.AccessKeyID, Expiration: l.ExpiresAt, SessionName: l.SessionName,
		RequestID: req.RequestID, SourceAddr: req.SourceAddr,
	}); err != nil {
		// Fail closed: the credentials are never returned. Mark the lease
		// so operators see what happened.
		m.log.Error("audit write failed: credentials withheld", "request_id", req.RequestID, "lease_id", l.ID, "access_key_id", l.AccessKeyID, "err", err)
		_, _ = m.update(context.WithoutCancel(ctx), l.ID, func(l *Lease) error {
			l.State, l.RevokedAt, l.RevokedBy = StateRevoked, m.now().UTC(), "keyferry"
			l.RevokeNote = "audit log unavailable at issuance: credentials were never returned"
			return nil
		})
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: CodeAuditUnavailable, Message: "the audit log is unavailable; no credentials were issued", Err: err}
	}
	return &Issued{
		Lease: l, Region: region, RefreshHandle: handle, Audience: id.Audience,
		Credentials: api.Credentials{
			AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken,
			Expiration: creds.Expiration.UTC(), AccountID: creds.AccountID, AssumedRoleARN: creds.AssumedRoleARN,
		},
	}, nil
}

func (m *Manager) upstreamError(err error) *Error {
	var ae *awsprov.Error
	if !errors.As(err, &ae) {
		if errors.Is(err, context.Canceled) {
			return &Error{Status: 499, Code: "request_cancelled", Message: "the request was cancelled", Err: err}
		}
		m.obs.UpstreamError("unknown")
		return &Error{Status: http.StatusBadGateway, Code: awsprov.CodeUnavailable, Message: "the AWS call failed", Err: err}
	}
	m.obs.UpstreamError(ae.Code)
	e := &Error{Code: ae.Code, Message: ae.Message, Err: ae.Err}
	switch ae.Code {
	case awsprov.CodeThrottled:
		e.Status, e.RetryAfter = http.StatusServiceUnavailable, ae.RetryAfter
		if e.RetryAfter <= 0 {
			e.RetryAfter = 2 * time.Second
		}
	case awsprov.CodeAccessDenied:
		e.Status = http.StatusForbidden
	case awsprov.CodeTokenRejected:
		e.Status = http.StatusForbidden
	case awsprov.CodeInvalidRequest:
		e.Status = http.StatusUnprocessableEntity
	case awsprov.CodeTimeout:
		e.Status = http.StatusGatewayTimeout
	default:
		e.Status = http.StatusBadGateway
	}
	return e
}

func compactPolicy(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func (m *Manager) put(ctx context.Context, l *Lease) error {
	b, err := encodeLease(l)
	if err != nil {
		return err
	}
	return m.store.Commit(ctx, []storage.Cond{storage.Absent(leaseKey(l.ID))}, createOps(l, b))
}

// getLease reads lease id; a missing lease is an error wrapping
// storage.ErrNotFound.
func (m *Manager) getLease(ctx context.Context, id string) (*Lease, error) {
	kv, err := m.store.Get(ctx, leaseKey(id))
	if err != nil {
		return nil, err
	}
	return decodeLease(kv)
}

// update applies fn to lease id and saves the result with its index
// entries in one commit, on the condition that nobody changed the lease
// meanwhile (fn runs again if somebody did, so it must only change the
// lease it is given). fn returning errSkip leaves the lease as it is.
func (m *Manager) update(ctx context.Context, id string, fn func(*Lease) error) (*Lease, error) {
	var out *Lease
	err := storage.Update(ctx, m.store, leaseKey(id), func(cur *storage.KV) ([]storage.Op, error) {
		ops, _, l, err := modifyOps(id, cur, fn)
		out = l
		return ops, err
	})
	return out, err
}

// Get returns one lease.
func (m *Manager) Get(ctx context.Context, id string) (*Lease, error) {
	l, err := m.getLease(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf("lease %q not found", id)}
	}
	return l, err
}

// Filter selects leases; empty fields match everything.
type Filter struct {
	Role     string
	Project  string
	Pipeline string
	State    State
	// After is the id to continue after (pagination); Limit caps the page.
	After string
	Limit int
}

func (f Filter) match(l *Lease, now time.Time) bool {
	return (f.Role == "" || l.Role == f.Role) &&
		(f.Project == "" || l.Identity.Project == f.Project || l.Identity.ProjectID == f.Project) &&
		(f.Pipeline == "" || l.Identity.Pipeline == f.Pipeline) &&
		(f.State == "" || l.EffectiveState(now) == f.State)
}

// List returns leases matching f in id (issuance) order, and the cursor of
// the next page ("" when done).
func (m *Manager) List(ctx context.Context, f Filter) ([]Lease, string, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 1000
	}
	now := m.now()
	var out []Lease
	next := ""
	after := ""
	if f.After != "" {
		after = leasePrefix + f.After
	}
	err := storage.Scan(ctx, m.store, storage.Range{Prefix: leasePrefix, After: after}, func(kv storage.KV) (bool, error) {
		l, err := decodeLease(kv)
		if err != nil {
			return false, err
		}
		if !f.match(l, now) {
			return true, nil
		}
		if len(out) == f.Limit {
			next = out[len(out)-1].ID
			return false, nil
		}
		out = append(out, *l)
		return true, nil
	})
	return out, next, err
}

// ValidState reports whether s names a state usable in a filter.
func ValidState(s string) bool {
	switch State(strings.ToLower(s)) {
	case StatePending, StateActive, StateRevoking, StateRevoked, StateIrrevocable, StateExpired:
		return true
	}
	return false
}
