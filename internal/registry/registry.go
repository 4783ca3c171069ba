// Package registry keeps keyferry's roles and issuers: it validates and
// persists them in the store, audits every change, compiles roles once, and
// serves the compiled set to the issuance path from an immutable snapshot
// (an atomic pointer swap per change, no lock on the read path).
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/fault"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/policy"
	"github.com/keyferry/keyferry/internal/storage"
)

const (
	rolePrefix   = "roles/"
	issuerPrefix = "issuers/"
)

// Codes of the registry's refusals (*fault.Error). They are part of the
// API: never rename one.
const (
	CodeInvalidObject    = "invalid_object"
	CodeInUse            = "in_use"
	CodeNotFound         = fault.CodeNotFound
	CodeAuditUnavailable = fault.CodeAuditUnavailable
	CodeStoreUnavailable = fault.CodeStoreUnavailable
)

// invalid is the refusal of a role or issuer with problems, every one
// of them user-facing.
func invalid(object string, problems []string) *fault.Error {
	return &fault.Error{Kind: fault.Unprocessable, Code: CodeInvalidObject, Message: object + " is invalid", Details: problems}
}

// describe is a refusal as one text, its problems listed below it.
func describe(err error) string {
	e, ok := fault.As(err)
	if !ok {
		return err.Error()
	}
	s := e.Message
	if len(e.Details) > 0 {
		s += ":"
	}
	for _, p := range e.Details {
		s += "\n  - " + p
	}
	return s
}

// ValidateIssuer checks an issuer on its own (a dry run), with the same
// refusal PutIssuer gives.
func ValidateIssuer(is identity.Issuer) error {
	if err := identity.ValidateIssuer(is); err != nil {
		return invalid("issuer "+quoteName(is.Name), splitJoined(err))
	}
	return nil
}

// IssuerSink receives the issuer set whenever it changes (the verifier).
type IssuerSink interface {
	SetIssuers([]identity.Issuer) error
}

// Config wires a Registry.
type Config struct {
	Store   storage.Store
	Audit   audit.Writer
	Issuers IssuerSink
}

// Registry is safe for concurrent use.
type Registry struct {
	store storage.Store
	audit audit.Writer
	sink  IssuerSink

	mu   sync.Mutex // serialises writers
	snap atomic.Pointer[snapshot]
}

type snapshot struct {
	roles   map[string]*policy.Compiled
	issuers map[string]identity.Issuer
}

// New returns an empty registry; call Load before serving.
func New(cfg Config) *Registry {
	r := &Registry{store: cfg.Store, audit: cfg.Audit, sink: cfg.Issuers}
	r.snap.Store(&snapshot{roles: map[string]*policy.Compiled{}, issuers: map[string]identity.Issuer{}})
	return r
}

// Load reads every role and issuer from the store and compiles them. A role
// that no longer compiles (e.g. after an upgrade tightened validation) is
// reported, and left out of service, but does not stop the server.
func (r *Registry) Load(ctx context.Context) (problems []error, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var roles []policy.Role
	issuers := map[string]identity.Issuer{}
	err = storage.Scan(ctx, r.store, storage.Range{Prefix: issuerPrefix}, func(kv storage.KV) (bool, error) {
		var is identity.Issuer
		if err := json.Unmarshal(kv.Value, &is); err != nil {
			return false, fmt.Errorf("registry: decode %s: %w", kv.Key, err)
		}
		issuers[is.Name] = is
		return true, nil
	})
	if err == nil {
		err = storage.Scan(ctx, r.store, storage.Range{Prefix: rolePrefix}, func(kv storage.KV) (bool, error) {
			var ro policy.Role
			if err := json.Unmarshal(kv.Value, &ro); err != nil {
				return false, fmt.Errorf("registry: decode %s: %w", kv.Key, err)
			}
			roles = append(roles, ro)
			return true, nil
		})
	}
	if err != nil {
		return nil, err
	}
	compiled := map[string]*policy.Compiled{}
	for _, ro := range roles {
		is, ok := issuers[ro.Issuer]
		if !ok {
			problems = append(problems, fmt.Errorf("role %s: issuer %q does not exist", ro.Name, ro.Issuer))
			continue
		}
		c, err := policy.Compile(ro, is.Kind)
		if err != nil {
			problems = append(problems, fmt.Errorf("role %s: %w", ro.Name, err))
			continue
		}
		compiled[ro.Name] = c
	}
	if r.sink != nil {
		if err := r.sink.SetIssuers(mapValues(issuers)); err != nil {
			return problems, fmt.Errorf("registry: issuers: %w", err)
		}
	}
	r.snap.Store(&snapshot{roles: compiled, issuers: issuers})
	return problems, nil
}

// Role returns the compiled role called name.
func (r *Registry) Role(name string) (*policy.Compiled, bool) {
	c, ok := r.snap.Load().roles[name]
	return c, ok
}

// Issuer returns the issuer called name.
func (r *Registry) Issuer(name string) (identity.Issuer, bool) {
	is, ok := r.snap.Load().issuers[name]
	return is, ok
}

// Roles returns every role, sorted by name.
func (r *Registry) Roles() []policy.Role {
	s := r.snap.Load()
	out := make([]policy.Role, 0, len(s.roles))
	for _, c := range s.roles {
		out = append(out, c.Role())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Issuers returns every issuer, sorted by name.
func (r *Registry) Issuers() []identity.Issuer {
	return mapValues(r.snap.Load().issuers)
}

func mapValues(m map[string]identity.Issuer) []identity.Issuer {
	out := make([]identity.Issuer, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Outcome says what a write did.
type Outcome string

// Outcomes of a write.
const (
	Created   Outcome = "created"
	Updated   Outcome = "updated"
	Unchanged Outcome = "unchanged"
)

// CompileRole validates ro against the current issuers without storing it.
func (r *Registry) CompileRole(ro policy.Role) (*policy.Compiled, error) {
	return compileRole(ro, r.snap.Load().issuers)
}

func compileRole(ro policy.Role, issuers map[string]identity.Issuer) (*policy.Compiled, error) {
	is, ok := issuers[ro.Issuer]
	if !ok {
		msg := fmt.Sprintf("issuer: %q does not exist (create it first with `keyferry issuer write`)", ro.Issuer)
		if ro.Issuer == "" {
			msg = "issuer: required"
		}
		// Compile anyway to report the role's other problems too.
		_, err := policy.Compile(ro, identity.KindGeneric)
		probs := []string{msg}
		var ve *policy.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				if !slices.Contains(probs, p) && !isIssuerProblem(p) {
					probs = append(probs, p)
				}
			}
		}
		return nil, invalid("role "+quoteName(ro.Name), probs)
	}
	c, err := policy.Compile(ro, is.Kind)
	if err != nil {
		var ve *policy.ValidationError
		if errors.As(err, &ve) {
			return nil, invalid("role "+quoteName(ro.Name), ve.Problems)
		}
		return nil, err
	}
	return c, nil
}

func isIssuerProblem(p string) bool { return len(p) >= 7 && p[:7] == "issuer:" }

func quoteName(n string) string {
	if n == "" {
		return "(unnamed)"
	}
	return fmt.Sprintf("%q", n)
}

// PutRole validates, stores and audits a role. Writing an identical role is
// a no-op reported as Unchanged (so `keyferry apply` is idempotent).
func (r *Registry) PutRole(ctx context.Context, ro policy.Role, o audit.Origin) (Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.snap.Load()
	c, err := compileRole(ro, cur.issuers)
	if err != nil {
		return "", err
	}
	norm := c.Role()
	val, err := json.Marshal(norm)
	if err != nil {
		return "", fmt.Errorf("registry: encode role: %w", err)
	}
	var old any
	if c, ok := cur.roles[norm.Name]; ok {
		old = c.Role()
	}
	out := outcomeOf(old, val)
	if out == Unchanged {
		return Unchanged, nil
	}
	if err := r.write(ctx, rolePrefix+norm.Name, val, o, &audit.Event{
		Type: audit.TypeRoleWrite, Object: norm.Name, Role: norm.Name, Message: string(out),
	}); err != nil {
		return "", err
	}
	next := cur.clone()
	next.roles[norm.Name] = c
	r.snap.Store(next)
	return out, nil
}

// mustExist answers NotFound unless m holds the kind of object named name.
func mustExist[V any](m map[string]V, kind, name string) error {
	if _, ok := m[name]; !ok {
		return fault.Newf(fault.NotFound, CodeNotFound, "%s %q not found", kind, name)
	}
	return nil
}

// outcomeOf is what writing val over old (nil: none) does.
func outcomeOf(old any, val []byte) Outcome {
	if old == nil {
		return Created
	}
	if ob, _ := json.Marshal(old); string(ob) == string(val) {
		return Unchanged
	}
	return Updated
}

// DeleteRole removes a role. Existing leases stay valid until they expire
// or are revoked.
func (r *Registry) DeleteRole(ctx context.Context, name string, o audit.Origin) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.snap.Load()
	if err := mustExist(cur.roles, "role", name); err != nil {
		return err
	}
	if err := r.write(ctx, rolePrefix+name, nil, o, &audit.Event{
		Type: audit.TypeRoleDelete, Object: name, Role: name,
	}); err != nil {
		return err
	}
	next := cur.clone()
	delete(next.roles, name)
	r.snap.Store(next)
	return nil
}

// PutIssuer validates, stores and audits an issuer. Roles that use it are
// recompiled against the new kind; if one would no longer compile, the
// write is refused.
func (r *Registry) PutIssuer(ctx context.Context, is identity.Issuer, o audit.Origin) (Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := identity.ValidateIssuer(is); err != nil {
		return "", invalid("issuer "+quoteName(is.Name), splitJoined(err))
	}
	cur := r.snap.Load()
	val, err := json.Marshal(is)
	if err != nil {
		return "", fmt.Errorf("registry: encode issuer: %w", err)
	}
	var old any
	if prev, ok := cur.issuers[is.Name]; ok {
		old = prev
	}
	out := outcomeOf(old, val)
	if out == Unchanged {
		return Unchanged, nil
	}
	next := cur.clone()
	next.issuers[is.Name] = is
	var probs []string
	for name, c := range cur.roles {
		if c.Role().Issuer != is.Name {
			continue
		}
		nc, err := compileRole(c.Role(), next.issuers)
		if err != nil {
			probs = append(probs, fmt.Sprintf("role %s would become invalid: %s", name, describe(err)))
			continue
		}
		next.roles[name] = nc
	}
	if len(probs) > 0 {
		sort.Strings(probs)
		return "", invalid("issuer "+quoteName(is.Name), probs)
	}
	if r.sink != nil {
		if err := r.sink.SetIssuers(mapValues(next.issuers)); err != nil {
			return "", invalid("issuer "+quoteName(is.Name), splitJoined(err))
		}
	}
	if err := r.write(ctx, issuerPrefix+is.Name, val, o, &audit.Event{
		Type: audit.TypeIssuerWrite, Object: is.Name, Message: string(out),
	}); err != nil {
		if r.sink != nil {
			_ = r.sink.SetIssuers(mapValues(cur.issuers)) // restore the verifier's view
		}
		return "", err
	}
	r.snap.Store(next)
	return out, nil
}

// DeleteIssuer removes an issuer that no role uses.
func (r *Registry) DeleteIssuer(ctx context.Context, name string, o audit.Origin) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.snap.Load()
	if err := mustExist(cur.issuers, "issuer", name); err != nil {
		return err
	}
	var users []string
	for rn, c := range cur.roles {
		if c.Role().Issuer == name {
			users = append(users, rn)
		}
	}
	if len(users) > 0 {
		sort.Strings(users)
		return fault.Newf(fault.Conflict, CodeInUse, "issuer %q is used by roles %v: delete or change them first", name, users)
	}
	next := cur.clone()
	delete(next.issuers, name)
	if r.sink != nil {
		if err := r.sink.SetIssuers(mapValues(next.issuers)); err != nil {
			return err
		}
	}
	if err := r.write(ctx, issuerPrefix+name, nil, o, &audit.Event{
		Type: audit.TypeIssuerDelete, Object: name,
	}); err != nil {
		if r.sink != nil {
			_ = r.sink.SetIssuers(mapValues(cur.issuers))
		}
		return err
	}
	r.snap.Store(next)
	return nil
}

// write records ev and then persists (val nil = delete): the record of a
// change comes before the change, so that no change is ever in effect
// without its record, and if the audit log refuses it nothing changes.
// If the store then fails, a second record (audit.NotApplied, reason
// store_error) says the change did not happen. The record is ev, made by
// the caller o.
func (r *Registry) write(ctx context.Context, key string, val []byte, o audit.Origin, ev *audit.Event) error {
	ev.Actor, ev.RequestID, ev.SourceAddr = o.Actor, o.RequestID, o.SourceAddr
	if err := r.audit.Write(ctx, ev); err != nil {
		return fault.Wrap(err, fault.Unavailable, CodeAuditUnavailable, "the audit log is unavailable; the change was not made")
	}
	op := storage.Put(key, val)
	if val == nil {
		op = storage.Del(key)
	}
	if err := r.store.Commit(ctx, nil, []storage.Op{op}); err != nil {
		cause := fmt.Errorf("registry: store %s: %w", key, err)
		if aerr := r.audit.Write(context.WithoutCancel(ctx), audit.NotApplied(ev, audit.ReasonStoreError, "not applied: the store write failed")); aerr != nil {
			cause = errors.Join(cause, fmt.Errorf("registry: record the failure: %w", aerr))
		}
		return fault.Wrap(cause, fault.Unavailable, CodeStoreUnavailable, "the store is unavailable; the change was not made")
	}
	return nil
}

func (s *snapshot) clone() *snapshot {
	n := &snapshot{roles: make(map[string]*policy.Compiled, len(s.roles)), issuers: make(map[string]identity.Issuer, len(s.issuers))}
	for k, v := range s.roles {
		n.roles[k] = v
	}
	for k, v := range s.issuers {
		n.issuers[k] = v
	}
	return n
}

// splitJoined turns an errors.Join result into one string per error.
func splitJoined(err error) []string {
	var u interface{ Unwrap() []error }
	if errors.As(err, &u) {
		var out []string
		for _, e := range u.Unwrap() {
			out = append(out, splitJoined(e)...)
		}
		return out
	}
	return []string{err.Error()}
}
