package lease

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/fault"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
	"github.com/keyferry/keyferry/internal/storage"
)

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

// UserCreator creates the IAM users of iam_user leases. Errors are
// *awsprov.Error where the upstream refused.
type UserCreator interface {
	CreateUser(ctx context.Context, s UserSpec) (*User, error)
	// WaitUsable returns once the new key has worked successes times in
	// a row, probing every interval.
	WaitUsable(ctx context.Context, accessKeyID, secret string, successes int, interval time.Duration) error
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

// Observer receives issuance metrics; nil means none.
type Observer interface {
	Issued(role, result string, took time.Duration)
	UpstreamError(code string)
}

type nopObserver struct{}

func (nopObserver) Issued(string, string, time.Duration) {}
func (nopObserver) UpstreamError(string)                 {}

// IssuerConfig wires an Issuer.
type IssuerConfig struct {
	Store    storage.Store
	Audit    audit.Writer
	Verifier Verifier
	Roles    Roles
	Minter   Minter
	// Users creates IAM users for iam_user roles; nil when no role needs
	// it (such an issuance is then refused).
	Users    UserCreator
	Observer Observer
	Logger   *slog.Logger
	Now      func() time.Time
	// DefaultRegion is used when a role sets none.
	DefaultRegion string
	// UsableSuccesses, UsableInterval and UsableTimeout shape the probe
	// of a new IAM key (wait_until_usable): consecutive successes, their
	// interval, and the bound of the whole wait (defaults 3, 1s, 60s).
	UsableSuccesses int
	UsableInterval  time.Duration
	UsableTimeout   time.Duration
}

// Issuer issues credentials and refreshes them: verify the job token →
// find and evaluate the role → mint with the provider → persist the lease
// → write the audit event (fail closed) → return the credentials. Every
// refusal is audited too. It is safe for concurrent use.
type Issuer struct {
	records
	audit    audit.Writer
	verifier Verifier
	roles    Roles
	minter   Minter
	users    UserCreator
	obs      Observer
	log      *slog.Logger
	now      func() time.Time
	region   string

	usableSuccesses               int
	usableInterval, usableTimeout time.Duration
}

// NewIssuer returns an Issuer.
func NewIssuer(cfg IssuerConfig) *Issuer {
	is := &Issuer{
		records: records{st: cfg.Store}, audit: cfg.Audit, verifier: cfg.Verifier, roles: cfg.Roles, minter: cfg.Minter,
		users: cfg.Users, obs: cfg.Observer, log: cfg.Logger, now: cfg.Now, region: cfg.DefaultRegion,
		usableSuccesses: cfg.UsableSuccesses, usableInterval: cfg.UsableInterval, usableTimeout: cfg.UsableTimeout,
	}
	if is.log == nil {
		is.log = slog.New(slog.DiscardHandler)
	}
	if is.now == nil {
		is.now = time.Now
	}
	if is.obs == nil {
		is.obs = nopObserver{}
	}
	if is.usableSuccesses <= 0 {
		is.usableSuccesses = 3
	}
	if is.usableInterval <= 0 {
		is.usableInterval = time.Second
	}
	if is.usableTimeout <= 0 {
		is.usableTimeout = 60 * time.Second
	}
	return is
}

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
	Credentials awsprov.Credentials
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
func (is *Issuer) Issue(ctx context.Context, req IssueRequest) (*Issued, error) {
	start := is.now()
	out, err := is.issue(ctx, req)
	roleLabel := req.Role
	if out != nil {
		roleLabel = out.Lease.Role // the STS endpoint picks it from candidates
	} else if _, ok := is.roles.Role(req.Role); !ok {
		roleLabel = "(unknown)" // bound the metric's label set
	}
	is.obs.Issued(roleLabel, resultOf(err, "issued"), is.now().Sub(start))
	return out, err
}

// issuance is one request on its way through Issue, once its token and
// role are known.
type issuance struct {
	req      IssueRequest
	id       *identity.Identity
	role     policy.Role // a deep copy, taken once
	rendered policy.Rendered
	leaseID  string
	now      time.Time
	ttl      time.Duration
	region   string
}

// deny audits a refusal and returns it; if the audit log does not take
// the record, the caller gets audit_unavailable instead.
func (is *Issuer) deny(ctx context.Context, req IssueRequest, id *identity.Identity, e *fault.Error, ev *audit.Event) error {
	if ev == nil {
		ev = &audit.Event{}
	}
	ev.Type, ev.Decision, ev.Reason, ev.Message = audit.TypeDeny, audit.DecisionDeny, e.Code, e.Message
	ev.RequestID, ev.SourceAddr = req.RequestID, req.SourceAddr
	if ev.Role == "" {
		ev.Role = req.Role
	}
	if id != nil {
		ev.Identity = summaryOf(id.Summary())
	}
	if err := is.audit.Write(context.WithoutCancel(ctx), ev); err != nil {
		is.log.Error("audit write failed for a denial", "request_id", req.RequestID, "err", err)
		return errAudit(err, "the audit log is unavailable; no request can be served")
	}
	return e
}

func (is *Issuer) issue(ctx context.Context, req IssueRequest) (*Issued, error) {
	id, err := is.verifier.Verify(ctx, req.Token)
	if err != nil {
		return nil, is.deny(ctx, req, nil, identityError(err), nil)
	}
	if req.Role == "" {
		for _, name := range req.Candidates {
			if c, ok := is.roles.Role(name); ok && c.Role().Issuer == id.Issuer && c.Evaluate(id.Claims).Allowed {
				req.Role = name
				break
			}
		}
		if req.Role == "" {
			return nil, is.deny(ctx, req, id, fault.New(fault.Forbidden, CodeNoMatchingRole,
				"no keyferry role for this RoleArn accepts this token"), nil)
		}
	}
	compiled, ok := is.roles.Role(req.Role)
	var r policy.Role
	if ok {
		r = compiled.Role() // a deep copy: take it once per issuance
	}
	if !ok || r.Issuer != id.Issuer {
		return nil, is.deny(ctx, req, id, fault.Newf(fault.Forbidden, CodeNoMatchingRole,
			"role %q does not exist or does not accept tokens from this issuer", req.Role), nil)
	}
	if res := compiled.Evaluate(id.Claims); !res.Allowed {
		return nil, is.deny(ctx, req, id, fault.Newf(fault.Forbidden, CodeNoMatchingRole,
			"role %q does not accept this token: %s", req.Role, res.Denial()), nil)
	}

	ttl := r.AWS.TTL.D()
	if req.TTL != 0 {
		minTTL := policy.MinTTL
		if r.AWS.Type == policy.TypeIAMUser {
			minTTL = policy.MinUserTTL
		}
		if req.TTL < minTTL || req.TTL > ttl {
			return nil, is.deny(ctx, req, id, fault.Newf(fault.Invalid, CodeInvalidRequest,
				"ttl_seconds must be between %d and the role's ttl (%d)", int64(minTTL.Seconds()), int64(ttl.Seconds())), nil)
		}
		ttl = req.TTL
	}

	now := is.now()
	leaseID := NewID(now)
	rendered, err := compiled.Render(id.Claims, map[string]string{"role": r.Name, "lease_id": leaseID})
	if err != nil {
		return nil, is.deny(ctx, req, id, fault.Newf(fault.Forbidden, CodeNoMatchingRole,
			"role %q cannot build a session from this token: %v", r.Name, err), nil)
	}
	region := r.AWS.Region
	if region == "" {
		region = is.region
	}
	in := &issuance{req: req, id: id, role: r, rendered: rendered, leaseID: leaseID, now: now, ttl: ttl, region: region}
	if r.AWS.Type == policy.TypeIAMUser {
		return is.issueUser(ctx, in)
	}
	return is.issueSession(ctx, in)
}

// issueSession mints an STS session (assume_role, web_identity).
func (is *Issuer) issueSession(ctx context.Context, in *issuance) (*Issued, error) {
	r, req := in.role, in.req
	preq := awsprov.Request{
		Region: in.region, RoleARN: r.AWS.RoleARN, SessionName: in.rendered.SessionName,
		Policy: compactPolicy(r.AWS.SessionPolicy), PolicyARNs: r.AWS.PolicyARNs,
		TransitiveTagKeys: r.AWS.TransitiveTagKeys, SourceIdentity: in.rendered.SourceIdentity,
		ExternalID: r.AWS.ExternalID, Duration: in.ttl,
	}
	for _, t := range in.rendered.Tags {
		preq.Tags = append(preq.Tags, awsprov.Tag{Key: t.Key, Value: t.Value})
	}
	var (
		creds *awsprov.Credentials
		err   error
	)
	switch r.AWS.Type {
	case policy.TypeWebIdentity:
		preq.WebIdentityToken = req.Token
		creds, err = is.minter.AssumeRoleWithWebIdentity(ctx, preq)
	default:
		creds, err = is.minter.AssumeRole(ctx, preq)
	}
	if err != nil {
		return nil, is.deny(ctx, req, in.id, upstreamError(err, is.obs), nil)
	}

	now := in.now
	l := &Lease{
		ID: in.leaseID, Role: r.Name, Type: r.AWS.Type, Identity: in.id.Summary(), RoleARN: r.AWS.RoleARN,
		SessionName: in.rendered.SessionName, AccessKeyID: creds.AccessKeyID, IssuedAt: now.UTC(),
		ExpiresAt: creds.Expiration.UTC(), State: StateActive, RequestID: req.RequestID, SourceAddr: req.SourceAddr,
		MaxExpiresAt: now.Add(r.AWS.MaxTTL.D()).UTC(), Region: r.AWS.Region, Tags: in.rendered.Tags, SourceIdentity: in.rendered.SourceIdentity,
		Issuer: in.id.Issuer, AssumedRoleID: creds.AssumedRoleID, EarlyRevocation: r.AWS.EarlyRevocation, SessionIssuedAt: now.UTC(),
	}
	var handle string
	if refreshable(l.Type) {
		handle, l.RefreshHash = newRefreshHandle(l.ID)
		l.Claims = in.id.Claims
	}
	if err := is.create(ctx, l); err != nil {
		is.log.Error("lease write failed", "request_id", req.RequestID, "access_key_id", creds.AccessKeyID, "err", err)
		return nil, is.deny(ctx, req, in.id, errStore(err), nil)
	}
	if err := is.audit.Write(context.WithoutCancel(ctx), &audit.Event{
		Type: audit.TypeIssue, Decision: audit.DecisionAllow, Role: r.Name, Identity: summaryOf(l.Identity),
		LeaseID: l.ID, AccessKeyID: l.AccessKeyID, Expiration: l.ExpiresAt, SessionName: l.SessionName,
		RequestID: req.RequestID, SourceAddr: req.SourceAddr,
	}); err != nil {
		// Fail closed: the credentials are never returned. Mark the lease
		// so operators see what happened.
		is.log.Error("audit write failed: credentials withheld", "request_id", req.RequestID, "lease_id", l.ID, "access_key_id", l.AccessKeyID, "err", err)
		if _, uerr := is.update(context.WithoutCancel(ctx), l.ID, func(l *Lease) error {
			l.State, l.RevokedAt, l.RevokedBy = StateRevoked, is.now().UTC(), "keyferry"
			l.RevokeNote = "audit log unavailable at issuance: credentials were never returned"
			return nil
		}); uerr != nil {
			is.log.Error("marking a withheld lease revoked failed: it shows as active until it expires", "lease_id", l.ID, "err", uerr)
		}
		return nil, errAudit(err, "the audit log is unavailable; no credentials were issued")
	}
	return &Issued{
		Lease: l, Region: in.region, RefreshHandle: handle, Audience: in.id.Audience,
		Credentials: utc(*creds),
	}, nil
}

// utc returns c with its expiration in UTC.
func utc(c awsprov.Credentials) awsprov.Credentials {
	c.Expiration = c.Expiration.UTC()
	return c
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

// Tags keyferry puts on every IAM user it creates; the orphan sweep and an
// operator in the AWS console find the owning lease by them.
const (
	TagLeaseID  = "keyferry:lease-id"
	TagRole     = "keyferry:role"
	TagProject  = "keyferry:project"
	TagPipeline = "keyferry:pipeline"
)

// userPolicyName names the inline policy put on each user.
const userPolicyName = "keyferry"

// actorIssuanceFailed queues the cleanup of a failed iam_user issuance.
const actorIssuanceFailed = "keyferry (issuance failed)"

// issueUser creates an IAM user and access key for a lease, write-ahead:
//
//  1. persist a pending lease naming the user and its parts (a crash from
//     here on leaves a record the reconciler finishes by deleting
//     whatever exists);
//  2. create the user, its policies, groups and key;
//  3. optionally wait until the key works (IAM is eventually consistent);
//  4. audit it and mark the lease active; only then return the key.
//
// A failure after step 1 is audited as a refusal and then queues the
// lease for revocation, which deletes what was created (NoSuchEntity
// counts as done). If the refusal cannot be audited, the lease stays
// pending and the reconciler queues it once the audit log works again.
func (is *Issuer) issueUser(ctx context.Context, in *issuance) (*Issued, error) {
	r, req := in.role, in.req
	if is.users == nil {
		return nil, is.deny(ctx, req, in.id, fault.New(fault.Unavailable, awsprov.CodeUnavailable, "this server has no IAM client configured for iam_user roles"), nil)
	}
	now := in.now
	l := &Lease{
		ID: in.leaseID, Role: r.Name, Type: r.AWS.Type, Identity: in.id.Summary(), IssuedAt: now.UTC(),
		ExpiresAt: now.Add(in.ttl).UTC(), MaxExpiresAt: now.Add(r.AWS.MaxTTL.D()).UTC(), State: StatePending,
		RequestID: req.RequestID, SourceAddr: req.SourceAddr, Issuer: in.id.Issuer, Region: in.region,
		UserName: in.rendered.SessionName, UserPath: r.AWS.UserPath, Tags: in.rendered.Tags,
		UserParts: &awsprov.UserParts{PolicyARNs: r.AWS.PolicyARNs, Groups: r.AWS.Groups},
	}
	userPolicy := compactPolicy(r.AWS.UserPolicy)
	if userPolicy != "" {
		l.UserParts.InlinePolicies = []string{userPolicyName}
	}
	if err := is.create(ctx, l); err != nil {
		return nil, is.deny(ctx, req, in.id, errStore(err), nil)
	}
	fail := func(e *fault.Error) (*Issued, error) {
		// The refusal is the record of the cleanup that follows: the user
		// may exist in part, and the revocation workers delete it.
		err := is.deny(ctx, req, in.id, e, &audit.Event{LeaseID: l.ID, Object: l.UserName})
		if fault.CodeOf(err) == CodeAuditUnavailable {
			return nil, err
		}
		if _, _, qerr := queueRevoke(context.WithoutCancel(ctx), is.records, is.now, l.ID, actorIssuanceFailed, "issuance failed: "+e.Code); qerr != nil {
			is.log.Error("queueing cleanup of a failed iam_user issuance; the reconciler will", "lease_id", l.ID, "err", qerr)
		}
		return nil, err
	}

	spec := UserSpec{
		UserName: l.UserName, Path: l.UserPath, PermissionsBoundary: r.AWS.PermissionsBoundary,
		InlinePolicyName: userPolicyName, InlinePolicy: userPolicy,
		PolicyARNs: r.AWS.PolicyARNs, Groups: r.AWS.Groups,
	}
	for _, t := range in.rendered.Tags {
		spec.Tags = append(spec.Tags, awsprov.Tag{Key: t.Key, Value: t.Value})
	}
	spec.Tags = append(spec.Tags, awsprov.Tag{Key: TagLeaseID, Value: l.ID}, awsprov.Tag{Key: TagRole, Value: l.Role})
	if p := l.Identity.Project; p != "" {
		spec.Tags = append(spec.Tags, awsprov.Tag{Key: TagProject, Value: p})
	}
	if p := l.Identity.Pipeline; p != "" {
		spec.Tags = append(spec.Tags, awsprov.Tag{Key: TagPipeline, Value: p})
	}
	u, err := is.users.CreateUser(ctx, spec)
	if err != nil {
		return fail(upstreamError(err, is.obs))
	}
	if r.AWS.WaitsUntilUsable() {
		wctx, cancel := context.WithTimeout(ctx, is.usableTimeout)
		err := is.users.WaitUsable(wctx, u.AccessKeyID, u.SecretAccessKey, is.usableSuccesses, is.usableInterval)
		cancel()
		if err != nil {
			return fail(fault.Wrap(err, fault.Unavailable, awsprov.CodeUnavailable, "the new IAM access key did not become usable in time; retry"))
		}
	}
	// The audit record comes before the lease turns active: a crash in
	// between leaves a pending lease (reclaimed, the user deleted) with an
	// issue record for a key nobody received — never a live user without
	// its record.
	if err := is.audit.Write(context.WithoutCancel(ctx), &audit.Event{
		Type: audit.TypeIssue, Decision: audit.DecisionAllow, Role: r.Name, Identity: summaryOf(l.Identity),
		LeaseID: l.ID, AccessKeyID: u.AccessKeyID, Expiration: l.ExpiresAt, Object: l.UserName,
		RequestID: req.RequestID, SourceAddr: req.SourceAddr,
	}); err != nil {
		is.log.Error("audit write failed: IAM user key withheld", "request_id", req.RequestID, "lease_id", l.ID, "access_key_id", u.AccessKeyID, "err", err)
		// No refusal can be recorded either: the lease stays pending and
		// the reconciler cleans up once the audit log works again.
		return nil, errAudit(err, "the audit log is unavailable; no credentials were issued")
	}
	l, err = is.update(context.WithoutCancel(ctx), l.ID, func(cur *Lease) error {
		if cur.State != StatePending {
			// The reconciler decided it was abandoned: do not hand out a
			// key that is being deleted.
			return fault.New(fault.Unavailable, CodeStoreUnavailable, "the lease was reclaimed during issuance; retry")
		}
		cur.State, cur.AccessKeyID = StateActive, u.AccessKeyID
		return nil
	})
	if err != nil {
		if e, ok := fault.As(err); ok {
			return fail(e)
		}
		return fail(errStore(err))
	}
	return &Issued{
		Lease: l, Region: in.region, Audience: in.id.Audience,
		Credentials: awsprov.Credentials{AccessKeyID: u.AccessKeyID, SecretAccessKey: u.SecretAccessKey, Expiration: l.ExpiresAt, AccountID: accountFromARN(u.UserARN)},
	}, nil
}

// accountFromARN returns the account of arn:aws:iam::123456789012:user/x.
func accountFromARN(arn string) string {
	const p = "arn:aws:iam::"
	if len(arn) > len(p)+12 && arn[:len(p)] == p && arn[len(p)+12] == ':' {
		return arn[len(p) : len(p)+12]
	}
	return ""
}
