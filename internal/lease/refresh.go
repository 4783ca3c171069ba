package lease

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"regexp"
	"slices"
	"time"

	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/fault"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
	"github.com/keyferry/keyferry/internal/storage"
)

// keepPrevHashes bounds how many replaced handles a lease remembers.
const keepPrevHashes = 16

// minSession is STS's shortest session.
const minSession = 15 * time.Minute

var refreshRE = regexp.MustCompile(`^kfr_([0-9A-HJKMNP-TV-Z]{26})_([A-Za-z0-9_-]{43})$`)

// newRefreshHandle returns a handle for lease id and the hash to store.
func newRefreshHandle(id string) (handle, hash string) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("lease: crypto/rand failed: " + err.Error())
	}
	secret := base64.RawURLEncoding.EncodeToString(b[:])
	return "kfr_" + id + "_" + secret, hashSecret(secret)
}

func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// refreshable reports whether leases of this type get a refresh handle:
// assume_role sessions are minted with the broker's own credentials, so a
// refresh needs no job token. web_identity sessions need the job's token
// for every call to STS.
func refreshable(typ string) bool { return typ == policy.TypeAssumeRole }

// RefreshRequest trades a refresh handle for new credentials.
type RefreshRequest struct {
	Handle     string
	RequestID  string
	SourceAddr string
}

// Refreshed is the result of a refresh. Handle replaces the one presented,
// which is now spent: presenting it again revokes the lease.
type Refreshed struct {
	Issued
	Handle string
}

// Refresh mints new credentials for the lease a refresh handle belongs to,
// until the lease's max_ttl, without the job token. Each use rotates the
// handle. A handle that was already used is treated as stolen: the lease
// is revoked (which stops its refresh chain) and the event audited.
//
// Order: verify the handle → mint → audit → commit the rotation. If
// minting or auditing fails, the presented handle stays valid, so the
// client can retry without tripping the reuse detector.
func (is *Issuer) Refresh(ctx context.Context, req RefreshRequest) (*Refreshed, error) {
	start := is.now()
	out, l, err := is.refresh(ctx, req)
	role := "(unknown)"
	if l != nil {
		if _, ok := is.roles.Role(l.Role); ok {
			role = l.Role
		}
	}
	is.obs.Issued(role, "refresh:"+resultOf(err, "refreshed"), is.now().Sub(start))
	return out, err
}

func (is *Issuer) refresh(ctx context.Context, req RefreshRequest) (*Refreshed, *Lease, error) {
	invalid := fault.New(fault.Unauthenticated, CodeInvalidRefreshHandle, "the refresh handle is not valid: request new credentials with the job token")
	mm := refreshRE.FindStringSubmatch(req.Handle)
	if mm == nil {
		return nil, nil, is.denyRefresh(ctx, req, nil, invalid)
	}
	id, presented := mm[1], hashSecret(mm[2])
	l, err := is.get(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, is.denyRefresh(ctx, req, nil, invalid)
	}
	if err != nil {
		return nil, nil, errStore(err)
	}
	switch {
	case l.RefreshHash != "" && subtle.ConstantTimeCompare([]byte(presented), []byte(l.RefreshHash)) == 1:
		// the current handle: go on
	case slices.Contains(l.PrevRefreshHashes, presented):
		return nil, l, is.handleReuse(ctx, req, l)
	default:
		return nil, l, is.denyRefresh(ctx, req, l, invalid)
	}
	if l.State != StateActive {
		return nil, l, is.denyRefresh(ctx, req, l, fault.New(fault.Unauthenticated, CodeLeaseRevoked, "the lease was revoked: its credentials can no longer be refreshed"))
	}
	now := is.now()
	left := l.MaxExpiresAt.Sub(now)
	if left < minSession {
		return nil, l, is.denyRefresh(ctx, req, l, fault.Newf(fault.Forbidden, CodeMaxTTLReached,
			"the lease reached its max_ttl (%s): request new credentials with a fresh job token", l.MaxExpiresAt.Format(time.RFC3339)))
	}
	role, ok := is.roles.Role(l.Role)
	var r policy.Role
	if ok {
		r = role.Role()
	}
	if !ok || r.AWS.Type != l.Type || r.Issuer != l.Issuer {
		return nil, l, is.denyRefresh(ctx, req, l, fault.Newf(fault.Forbidden, CodeRoleGone, "role %q no longer exists or changed type or issuer: request new credentials with the job token", l.Role))
	}
	if res := role.Evaluate(l.Claims); !res.Allowed {
		return nil, l, is.denyRefresh(ctx, req, l, fault.Newf(fault.Forbidden, CodeNoMatchingRole, "role %q no longer accepts this lease's identity: %s", l.Role, res.Denial()))
	}
	ttl := min(r.AWS.TTL.D(), left)
	preq := awsprov.Request{
		Region: l.Region, RoleARN: r.AWS.RoleARN, SessionName: l.SessionName,
		Policy: compactPolicy(r.AWS.SessionPolicy), PolicyARNs: r.AWS.PolicyARNs,
		TransitiveTagKeys: r.AWS.TransitiveTagKeys, SourceIdentity: l.SourceIdentity,
		ExternalID: r.AWS.ExternalID, Duration: ttl,
	}
	if preq.Region == "" {
		preq.Region = is.region
	}
	for _, t := range l.Tags {
		preq.Tags = append(preq.Tags, awsprov.Tag{Key: t.Key, Value: t.Value})
	}
	creds, err := is.minter.AssumeRole(ctx, preq)
	if err != nil {
		return nil, l, is.denyRefresh(ctx, req, l, upstreamError(err, is.obs))
	}
	if err := is.audit.Write(context.WithoutCancel(ctx), &audit.Event{
		Type: audit.TypeRefresh, Decision: audit.DecisionAllow, Role: l.Role, Identity: summaryOf(l.Identity),
		LeaseID: l.ID, AccessKeyID: creds.AccessKeyID, Expiration: creds.Expiration.UTC(), SessionName: l.SessionName,
		RequestID: req.RequestID, SourceAddr: req.SourceAddr,
	}); err != nil {
		is.log.Error("audit write failed: refreshed credentials withheld", "request_id", req.RequestID, "lease_id", l.ID, "access_key_id", creds.AccessKeyID, "err", err)
		return nil, l, errAudit(err, "the audit log is unavailable; no credentials were issued")
	}
	handle, hash := newRefreshHandle(l.ID)
	conflict := false
	updated, err := is.update(ctx, l.ID, func(cur *Lease) error {
		if cur.RefreshHash != l.RefreshHash || cur.State != l.State {
			conflict = true // another refresh or a revoke won the race
			return errSkip
		}
		conflict = false
		cur.PrevRefreshHashes = append(slices.Clone(cur.PrevRefreshHashes), cur.RefreshHash)
		if n := len(cur.PrevRefreshHashes); n > keepPrevHashes {
			cur.PrevRefreshHashes = cur.PrevRefreshHashes[n-keepPrevHashes:]
		}
		cur.RefreshHash = hash
		cur.AccessKeyID, cur.ExpiresAt = creds.AccessKeyID, creds.Expiration.UTC()
		cur.AssumedRoleID, cur.SessionIssuedAt = creds.AssumedRoleID, now.UTC()
		cur.Refreshes++
		return nil
	})
	if err != nil {
		return nil, l, errStore(err)
	}
	if conflict {
		return nil, l, fault.New(fault.Conflict, CodeRefreshConflict, "the lease changed during the refresh (a concurrent refresh or a revocation): retry with the handle you hold")
	}
	return &Refreshed{
		Handle: handle,
		Issued: Issued{
			Lease: updated, Region: preq.Region,
			Credentials: utc(*creds),
		},
	}, updated, nil
}

// handleReuse revokes a lease whose spent refresh handle came back: either
// the handle was copied, or the client lost track of it; in both cases the
// chain can no longer be trusted. The revocation's record comes first: if
// the audit log does not take it, the lease is left as it is and the
// caller gets audit_unavailable (no request is served then anyway).
func (is *Issuer) handleReuse(ctx context.Context, req RefreshRequest, l *Lease) error {
	note := "refresh handle reused: treated as stolen, lease and refresh chain revoked"
	if err := is.audit.Write(context.WithoutCancel(ctx), &audit.Event{
		Type: audit.TypeRevoke, Role: l.Role, Identity: summaryOf(l.Identity), LeaseID: l.ID, AccessKeyID: l.AccessKeyID,
		Reason: CodeRefreshHandleReused, Message: note, Actor: "keyferry", RequestID: req.RequestID, SourceAddr: req.SourceAddr,
	}); err != nil {
		is.log.Error("audit write failed for a refresh-handle reuse: the lease is not revoked", "lease_id", l.ID, "err", err)
		return errAudit(err, "the audit log is unavailable; no request can be served")
	}
	if _, err := is.update(context.WithoutCancel(ctx), l.ID, func(cur *Lease) error {
		if cur.State == StateRevoked {
			return errSkip
		}
		cur.State, cur.RevokedAt, cur.RevokedBy, cur.RevokeNote = StateRevoked, is.now().UTC(), "keyferry", note
		return nil
	}); err != nil {
		is.log.Error("revoking a lease after refresh-handle reuse failed", "lease_id", l.ID, "err", err)
		return errStore(err)
	}
	return is.denyRefresh(ctx, req, l, fault.New(fault.Unauthenticated, CodeRefreshHandleReused,
		"this refresh handle was already used: the lease has been revoked as a precaution; request new credentials with the job token"))
}

func (is *Issuer) denyRefresh(ctx context.Context, req RefreshRequest, l *Lease, e *fault.Error) error {
	ev := &audit.Event{
		Type: audit.TypeRefresh, Decision: audit.DecisionDeny, Reason: e.Code, Message: e.Message,
		RequestID: req.RequestID, SourceAddr: req.SourceAddr,
	}
	if l != nil {
		ev.Identity, ev.Role, ev.LeaseID = summaryOf(l.Identity), l.Role, l.ID
	}
	if err := is.audit.Write(context.WithoutCancel(ctx), ev); err != nil {
		is.log.Error("audit write failed for a refresh denial", "request_id", req.RequestID, "err", err)
		return errAudit(err, "the audit log is unavailable; no request can be served")
	}
	return e
}
