package httpapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keyferry/keyferry/internal/admintoken"
	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/devissuer"
	"github.com/keyferry/keyferry/internal/fault"
	"github.com/keyferry/keyferry/internal/lease"
	"github.com/keyferry/keyferry/internal/registry"
)

// creds serves POST /v1/creds: a job token in, credentials out.
func (s *server) creds(w http.ResponseWriter, r *http.Request) {
	var req api.CredsRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Role == "" {
		s.fail(w, r, fault.New(fault.Invalid, "invalid_request", "role is required"))
		return
	}
	if !nameRE.MatchString(req.Role) {
		s.fail(w, r, fault.Newf(fault.Invalid, "invalid_name", "role must match %s", nameRE))
		return
	}
	if req.TTLSeconds < 0 {
		s.fail(w, r, fault.New(fault.Invalid, "invalid_request", "ttl_seconds must not be negative"))
		return
	}
	out, err := s.Issuer.Issue(r.Context(), lease.IssueRequest{
		Role: req.Role, Token: req.Token, TTL: seconds(req.TTLSeconds),
		RequestID: RequestID(r.Context()), SourceAddr: remoteHost(r),
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("credentials issued", "request_id", RequestID(r.Context()), "role", req.Role, "lease_id", out.Lease.ID,
		"access_key_id", out.Credentials.AccessKeyID, "project", out.Lease.Identity.Project, "job", out.Lease.Identity.Job)
	s.writeJSON(w, http.StatusOK, credsResponse(out, out.RefreshHandle))
}

// credsResponse renders an issuance or a refresh.
func credsResponse(out *lease.Issued, handle string) api.CredsResponse {
	r := api.CredsResponse{LeaseID: out.Lease.ID, Role: out.Lease.Role, Credentials: credentialsToAPI(out.Credentials), Region: out.Region, RefreshHandle: handle}
	if handle != "" {
		r.MaxExpiration = out.Lease.MaxExpiresAt
	}
	return r
}

// refresh serves POST /v1/creds/refresh: a refresh handle in, fresh
// credentials and a new handle out.
func (s *server) refresh(w http.ResponseWriter, r *http.Request) {
	var req api.RefreshRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	out, err := s.Issuer.Refresh(r.Context(), lease.RefreshRequest{Handle: req.RefreshHandle, RequestID: RequestID(r.Context()), SourceAddr: remoteHost(r)})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("credentials refreshed", "request_id", RequestID(r.Context()), "role", out.Lease.Role, "lease_id", out.Lease.ID,
		"access_key_id", out.Credentials.AccessKeyID, "refreshes", out.Lease.Refreshes)
	s.writeJSON(w, http.StatusOK, credsResponse(&out.Issued, out.Handle))
}

type actorKey struct{}

// admin authenticates the bearer token and checks scope.
func (s *server) admin(scope string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		// The scheme is case-insensitive (RFC 9110 §11.1).
		scheme, tok, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="keyferry"`)
			s.fail(w, r, fault.New(fault.Unauthenticated, "unauthenticated", "an admin token is required (Authorization: Bearer kfa_…)"))
			return
		}
		t, err := s.Tokens.Authenticate(r.Context(), strings.TrimSpace(tok))
		if errors.Is(err, admintoken.ErrInvalid) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="keyferry", error="invalid_token"`)
			s.fail(w, r, fault.New(fault.Unauthenticated, "unauthenticated", "the admin token is not valid"))
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if !t.Allows(scope) {
			s.fail(w, r, fault.Newf(fault.Forbidden, "forbidden", "the admin token lacks scope %q", scope))
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), actorKey{}, "admin_token:"+t.ID+"("+t.Name+")")))
	}
}

func actor(r *http.Request) string {
	a, _ := r.Context().Value(actorKey{}).(string)
	return a
}

// origin is who and what an admin request is, for the audit log.
func origin(r *http.Request) audit.Origin {
	return audit.Origin{Actor: actor(r), RequestID: RequestID(r.Context()), SourceAddr: remoteHost(r)}
}

func dryRun(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("dry_run")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fault.New(fault.Invalid, "invalid_request", "dry_run must be true or false")
	}
	return b, nil
}

// maxReasonLen caps an operator's reason (revoke, bulk revoke, forget),
// which goes into lease notes and audit events.
const maxReasonLen = 512

var errReasonTooLong = fault.Newf(fault.Invalid, "invalid_request", "reason must be at most %d characters", maxReasonLen)

// seconds converts a non-negative ttl_seconds to a duration, saturating
// at the longest one: a value too large for a time.Duration must stay too
// large (the lease manager refuses or caps it), not wrap around into a
// short or negative ttl.
func seconds(n int64) time.Duration {
	if n > int64(math.MaxInt64/time.Second) {
		return math.MaxInt64
	}
	return time.Duration(n) * time.Second
}

func (s *server) listRoles(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, http.StatusOK, api.RoleList{Roles: rolesToAPI(s.Registry.Roles())})
}

func (s *server) getRole(w http.ResponseWriter, r *http.Request) {
	name, err := pathName(r, "name")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, ok := s.Registry.Role(name)
	if !ok {
		s.fail(w, r, fault.Newf(fault.NotFound, "not_found", "role %q not found", name))
		return
	}
	s.writeJSON(w, http.StatusOK, RoleToAPI(c.Role()))
}

// readNamed decodes the body of PUT /v1/<kind>s/{name}: the object's name
// defaults to the path's and must agree with it; ?dry_run is parsed too.
func readNamed[T any](r *http.Request, kind string, nameOf func(*T) *string) (obj T, name string, dry bool, err error) {
	if name, err = pathName(r, "name"); err != nil {
		return
	}
	if err = decode(r, &obj); err != nil {
		return
	}
	n := nameOf(&obj)
	if *n == "" {
		*n = name
	}
	if *n != name {
		err = fault.Newf(fault.Invalid, "invalid_request", "body names %s %q but the path names %q", kind, *n, name)
		return
	}
	dry, err = dryRun(r)
	return
}

func (s *server) putRole(w http.ResponseWriter, r *http.Request) {
	in, name, dry, err := readNamed(r, "role", func(ro *api.Role) *string { return &ro.Name })
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ro := RoleFromAPI(in)
	if dry {
		c, err := s.Registry.CompileRole(ro)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		outcome := registry.Created
		if old, ok := s.Registry.Role(name); ok {
			outcome = registry.Updated
			if sameJSON(old.Role(), c.Role()) {
				outcome = registry.Unchanged
			}
		}
		s.writeJSON(w, http.StatusOK, api.WriteResult[api.Role]{Outcome: string(outcome), Object: RoleToAPI(c.Role())})
		return
	}
	out, err := s.Registry.PutRole(r.Context(), ro, origin(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, ok := s.Registry.Role(name)
	if !ok {
		s.fail(w, r, fault.Newf(fault.Conflict, "conflict", "role %q was written, then deleted by another request before it could be shown", name))
		return
	}
	s.writeJSON(w, http.StatusOK, api.WriteResult[api.Role]{Outcome: string(out), Object: RoleToAPI(c.Role())})
}

func (s *server) deleteRole(w http.ResponseWriter, r *http.Request) {
	name, err := pathName(r, "name")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.Registry.DeleteRole(r.Context(), name, origin(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, api.Deleted{Deleted: name})
}

// testRole explains a decision; it verifies the token (when given) but
// mints nothing and writes no lease.
func (s *server) testRole(w http.ResponseWriter, r *http.Request) {
	name, err := pathName(r, "name")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req api.RoleTestRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if (req.Token == "") == (req.Claims == nil) {
		s.fail(w, r, fault.New(fault.Invalid, "invalid_request", "give exactly one of token and claims"))
		return
	}
	c, ok := s.Registry.Role(name)
	if !ok {
		s.fail(w, r, fault.Newf(fault.NotFound, "not_found", "role %q not found", name))
		return
	}
	resp := api.RoleTestResponse{Role: name}
	claims := req.Claims
	if req.Token != "" {
		id, err := s.Verifier.Verify(r.Context(), req.Token)
		if err != nil {
			resp.TokenError = identityError(err)
			s.writeJSON(w, http.StatusOK, resp)
			return
		}
		sum := identityToAPI(id.Summary())
		resp.Identity = &sum
		claims = id.Claims
		if id.Issuer != c.Role().Issuer {
			resp.Checks = append(resp.Checks, api.RoleCheck{Name: "issuer", OK: false, Detail: fmt.Sprintf("token is from issuer %q, role wants %q", id.Issuer, c.Role().Issuer)})
		}
	} else {
		claims = normalizeClaims(claims)
	}
	res := c.Evaluate(claims)
	resp.Allowed = res.Allowed && len(resp.Checks) == 0
	for _, ch := range res.Checks {
		resp.Checks = append(resp.Checks, api.RoleCheck{Name: ch.Name, OK: ch.OK, Detail: ch.Detail})
	}
	if resp.Allowed {
		if rd, err := c.Render(claims, map[string]string{"role": name, "lease_id": "LEASEIDWILLBEHERE"}); err == nil {
			resp.SessionName, resp.SourceIdentity = rd.SessionName, rd.SourceIdentity
			resp.Tags = map[string]string{}
			for _, t := range rd.Tags {
				resp.Tags[t.Key] = t.Value
			}
		} else {
			resp.Allowed = false
			resp.Checks = append(resp.Checks, api.RoleCheck{Name: "templates", OK: false, Detail: err.Error()})
		}
	}
	s.writeJSON(w, http.StatusOK, resp)
}

// normalizeClaims turns JSON-decoded float64 integers into int64, as the
// verifier does for real tokens.
func normalizeClaims(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = normalizeValue(v)
	}
	return out
}

func normalizeValue(v any) any {
	switch t := v.(type) {
	case float64:
		if t == float64(int64(t)) {
			return int64(t)
		}
	case map[string]any:
		return normalizeClaims(t)
	case []any:
		o := make([]any, len(t))
		for i := range t {
			o[i] = normalizeValue(t[i])
		}
		return o
	}
	return v
}

func (s *server) listIssuers(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, http.StatusOK, api.IssuerList{Issuers: issuersToAPI(s.Registry.Issuers())})
}

func (s *server) getIssuer(w http.ResponseWriter, r *http.Request) {
	name, err := pathName(r, "name")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	is, ok := s.Registry.Issuer(name)
	if !ok {
		s.fail(w, r, fault.Newf(fault.NotFound, "not_found", "issuer %q not found", name))
		return
	}
	s.writeJSON(w, http.StatusOK, IssuerToAPI(is))
}

func (s *server) putIssuer(w http.ResponseWriter, r *http.Request) {
	in, name, dry, err := readNamed(r, "issuer", func(is *api.Issuer) *string { return &is.Name })
	if err != nil {
		s.fail(w, r, err)
		return
	}
	is := IssuerFromAPI(in)
	if dry {
		if err := registry.ValidateIssuer(is); err != nil {
			s.fail(w, r, err)
			return
		}
		outcome := registry.Created
		if old, ok := s.Registry.Issuer(name); ok {
			outcome = registry.Updated
			if sameJSON(old, is) {
				outcome = registry.Unchanged
			}
		}
		s.writeJSON(w, http.StatusOK, api.WriteResult[api.Issuer]{Outcome: string(outcome), Object: IssuerToAPI(is)})
		return
	}
	out, err := s.Registry.PutIssuer(r.Context(), is, origin(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	stored, ok := s.Registry.Issuer(name)
	if !ok {
		s.fail(w, r, fault.Newf(fault.Conflict, "conflict", "issuer %q was written, then deleted by another request before it could be shown", name))
		return
	}
	s.writeJSON(w, http.StatusOK, api.WriteResult[api.Issuer]{Outcome: string(out), Object: IssuerToAPI(stored)})
}

func (s *server) deleteIssuer(w http.ResponseWriter, r *http.Request) {
	name, err := pathName(r, "name")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.Registry.DeleteIssuer(r.Context(), name, origin(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, api.Deleted{Deleted: name})
}

func (s *server) listLeases(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "role", "project", "pipeline", "state", "after", "limit", "access_key_id":
		default:
			s.fail(w, r, fault.Newf(fault.Invalid, "invalid_request", "unknown query parameter %q (known: role, project, pipeline, state, access_key_id, after, limit)", k))
			return
		}
	}
	if akid := q.Get("access_key_id"); akid != "" {
		// The leak runbook's first question: which lease had this key?
		ls, err := s.Leases.FindByKey(r.Context(), akid)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.writeJSON(w, http.StatusOK, api.LeaseList{Leases: leasesToAPI(ls, s.Now()), Next: ""})
		return
	}
	f := lease.Filter{Role: q.Get("role"), Project: q.Get("project"), Pipeline: q.Get("pipeline"), After: q.Get("after")}
	if st := q.Get("state"); st != "" {
		if !lease.ValidState(st) {
			s.fail(w, r, fault.New(fault.Invalid, "invalid_request", "state must be one of pending, active, revoking, revoked, irrevocable, expired"))
			return
		}
		f.State = lease.State(strings.ToLower(st))
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			s.fail(w, r, fault.New(fault.Invalid, "invalid_request", "limit must be 1-1000"))
			return
		}
		f.Limit = n
	}
	ls, next, err := s.Leases.List(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, api.LeaseList{Leases: leasesToAPI(ls, s.Now()), Next: next})
}

func (s *server) getLease(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !leaseIDRE.MatchString(id) {
		s.fail(w, r, fault.New(fault.Invalid, "invalid_name", "a lease id is 26 characters of Crockford base32"))
		return
	}
	l, err := s.Leases.Get(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, leaseToAPI(*l, s.Now()))
}

func (s *server) revokeLease(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !leaseIDRE.MatchString(id) {
		s.fail(w, r, fault.New(fault.Invalid, "invalid_name", "a lease id is 26 characters of Crockford base32"))
		return
	}
	var req api.RevokeRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			s.fail(w, r, err)
			return
		}
		if len(req.Reason) > maxReasonLen {
			s.fail(w, r, errReasonTooLong)
			return
		}
	}
	wait := false
	if v := r.URL.Query().Get("wait"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.fail(w, r, fault.New(fault.Invalid, "invalid_request", "wait must be true or false"))
			return
		}
		wait = b
	}
	ctx := r.Context()
	if wait {
		var cancel context.CancelFunc
		// Shorter than the client's 30 s request timeout, so that a slow
		// deletion answers "revoking" instead of a client-side timeout.
		ctx, cancel = context.WithTimeout(ctx, 25*time.Second)
		defer cancel()
	}
	o := origin(r)
	o.Reason = req.Reason
	l, err := s.Leases.Revoke(ctx, id, o, wait)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, leaseToAPI(*l, s.Now()))
}

// bulkRevoke is the break-glass endpoint: revoke every live lease of a
// role, project, pipeline, subject or access key.
func (s *server) bulkRevoke(w http.ResponseWriter, r *http.Request) {
	var req api.BulkRevokeRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(req.Reason) > maxReasonLen {
		s.fail(w, r, errReasonTooLong)
		return
	}
	sel := lease.Selector{Role: req.Role, Project: req.Project, Pipeline: req.Pipeline, Subject: req.Subject, AccessKeyID: req.AccessKeyID}
	var (
		ls  []lease.Lease
		err error
	)
	if req.DryRun {
		ls, err = s.Leases.Select(r.Context(), sel)
	} else {
		o := origin(r)
		o.Reason = req.Reason
		ls, err = s.Leases.RevokeMatching(r.Context(), sel, o)
	}
	if err != nil && ls == nil {
		s.fail(w, r, err)
		return
	}
	out := api.BulkRevokeResult{Count: len(ls), DryRun: req.DryRun, Leases: leasesToAPI(ls, s.Now())}
	if err != nil {
		out.Error = toFault(err).Message
	}
	s.log.Warn("bulk revoke", "request_id", RequestID(r.Context()), "actor", actor(r), "dry_run", req.DryRun, "count", out.Count,
		"role", req.Role, "project", req.Project, "pipeline", req.Pipeline, "sub", req.Subject, "access_key_id", req.AccessKeyID)
	s.writeJSON(w, http.StatusOK, out)
}

func (s *server) leaseAction(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !leaseIDRE.MatchString(id) {
		s.fail(w, r, fault.New(fault.Invalid, "invalid_name", "a lease id is 26 characters of Crockford base32"))
		return
	}
	var (
		l   *lease.Lease
		err error
	)
	o := origin(r)
	switch r.PathValue("action") {
	case "retry":
		l, err = s.Leases.Retry(r.Context(), id, o)
	case "forget":
		var req api.RevokeRequest
		if err := decode(r, &req); err != nil {
			s.fail(w, r, err)
			return
		}
		if len(req.Reason) > maxReasonLen {
			s.fail(w, r, errReasonTooLong)
			return
		}
		o.Reason = req.Reason
		l, err = s.Leases.Forget(r.Context(), id, o)
	case "renew":
		var req api.RenewRequest
		if r.ContentLength != 0 {
			if err := decode(r, &req); err != nil {
				s.fail(w, r, err)
				return
			}
		}
		if req.TTLSeconds < 0 {
			s.fail(w, r, fault.New(fault.Invalid, "invalid_request", "ttl_seconds must not be negative"))
			return
		}
		l, err = s.Leases.Renew(r.Context(), id, seconds(req.TTLSeconds), o)
	default:
		s.fail(w, r, fault.New(fault.NotFound, "not_found", "unknown lease action: want revoke, retry, forget or renew"))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, leaseToAPI(*l, s.Now()))
}

// sweepOrphans runs the orphan sweep now (dry_run=true only reports).
func (s *server) sweepOrphans(w http.ResponseWriter, r *http.Request) {
	dry, err := dryRun(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	orphans, effectiveDry, err := s.Leases.SweepOrphansNow(r.Context(), dry)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, api.SweepResult{DryRun: effectiveDry, Orphans: orphansToAPI(orphans)})
}

func (s *server) listTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.Tokens.List(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, api.TokenList{Tokens: tokensToAPI(ts)})
}

func (s *server) createToken(w http.ResponseWriter, r *http.Request) {
	var req api.TokenCreateRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if !nameRE.MatchString(req.Name) {
		s.fail(w, r, fault.Newf(fault.Invalid, "invalid_name", "name must match %s", nameRE))
		return
	}
	tok, t, err := s.Tokens.Create(r.Context(), req.Name, req.Scopes, origin(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusCreated, api.TokenCreateResponse{ID: t.ID, Token: tok, Scopes: t.Scopes})
}

func (s *server) deleteToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.Tokens.Delete(r.Context(), id, origin(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, api.Deleted{Deleted: id})
}

// devToken mints a GitLab-shaped job token from the dev issuer.
func (s *server) devToken(w http.ResponseWriter, r *http.Request) {
	var req api.DevTokenRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.TTLSeconds < 0 || req.TTLSeconds > 86400 {
		s.fail(w, r, fault.New(fault.Invalid, "invalid_request", "ttl_seconds must be 0-86400"))
		return
	}
	o := devissuer.GitLabOptions{
		ProjectPath: req.ProjectPath, ProjectID: req.ProjectID, Ref: req.Ref, RefType: req.RefType,
		PipelineSource: req.PipelineSource, Environment: req.Environment, EnvironmentProtected: req.EnvironmentProtected,
		UserLogin: req.UserLogin, PipelineID: req.PipelineID, JobID: req.JobID, Audience: req.Audience,
		TTL: time.Duration(req.TTLSeconds) * time.Second, Now: s.Now(), Protected: true,
	}
	if req.Protected != nil {
		o.Protected = *req.Protected
	}
	if len(o.Audience) == 0 && s.DevAudience != "" {
		o.Audience = []string{s.DevAudience}
	}
	tok, err := s.Dev.Sign(devissuer.GitLabClaims(s.Dev.URL(), o))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, api.DevTokenResponse{Token: tok, Issuer: s.Dev.URL()})
}
