package registry

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/fault"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/policy"
	"github.com/keyferry/keyferry/internal/storage"
	"github.com/keyferry/keyferry/internal/storage/memory"
)

type sink struct{ sets int }

func (s *sink) SetIssuers([]identity.Issuer) error { s.sets++; return nil }

func newReg(t *testing.T) (*Registry, *audit.Memory, storage.Store) {
	t.Helper()
	st, aw := memory.New(), audit.NewMemory()
	r := New(Config{Store: st, Audit: aw, Issuers: &sink{}})
	if _, err := r.PutIssuer(context.Background(), gitlabIssuer(), audit.Origin{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	return r, aw, st
}

func gitlabIssuer() identity.Issuer {
	return identity.Issuer{Name: "gitlab", Kind: identity.KindGitLab, URL: "https://gitlab.example.com", Audiences: []string{"https://kf.example.com"}}
}

func role() policy.Role {
	return policy.Role{Name: "deploy", Issuer: "gitlab", Match: map[string]policy.Values{"project_id": {"42"}},
		AWS: policy.AWS{Type: policy.TypeAssumeRole, RoleARN: "arn:aws:iam::123456789012:role/deploy"}}
}

// putRole stores role() or fails the test.
func putRole(t *testing.T, r *Registry) {
	t.Helper()
	if _, err := r.PutRole(context.Background(), role(), audit.Origin{}); err != nil {
		t.Fatal(err)
	}
}

func TestPutRoleOutcomesAndAudit(t *testing.T) {
	r, aw, _ := newReg(t)
	ctx := context.Background()
	for i, want := range []Outcome{Created, Unchanged} {
		out, err := r.PutRole(ctx, role(), audit.Origin{Actor: "alice"})
		if err != nil || out != want {
			t.Fatalf("write %d: got %v %v, want %v", i, out, err, want)
		}
	}
	changed := role()
	changed.Match["ref_protected"] = policy.Values{"true"}
	if out, err := r.PutRole(ctx, changed, audit.Origin{Actor: "alice"}); err != nil || out != Updated {
		t.Fatalf("got %v %v, want updated", out, err)
	}
	writes := 0
	for _, ev := range aw.Events() {
		if ev.Type == audit.TypeRoleWrite {
			writes++
			if ev.Actor != "alice" || ev.Object != "deploy" {
				t.Errorf("event %+v", ev)
			}
		}
	}
	if writes != 2 {
		t.Errorf("got %d role.write events, want 2 (an unchanged write is not audited)", writes)
	}
}

func TestRoleNeedsExistingIssuer(t *testing.T) {
	r, _, _ := newReg(t)
	ro := role()
	ro.Issuer = "github"
	ro.AWS.RoleARN = "bad"
	_, err := r.PutRole(context.Background(), ro, audit.Origin{})
	ie, ok := fault.As(err)
	if !ok || ie.Code != CodeInvalidObject || ie.Kind != fault.Unprocessable || len(ie.Details) < 2 || !strings.Contains(ie.Details[0], `"github" does not exist`) {
		t.Fatalf("got %v, want the missing issuer and the bad ARN reported", err)
	}
}

// TestAuditFailureChangesNothing: no change takes effect without its
// audit record, which is written first.
func TestAuditFailureChangesNothing(t *testing.T) {
	r, aw, st := newReg(t)
	ctx := context.Background()
	aw.SetErr(errors.New("disk full"))
	_, err := r.PutRole(ctx, role(), audit.Origin{})
	if fault.CodeOf(err) != CodeAuditUnavailable {
		t.Fatalf("got %v, want audit_unavailable", err)
	}
	if _, ok := r.Role("deploy"); ok {
		t.Error("the role is in service although its audit record failed")
	}
	if _, err := st.Get(ctx, "roles/deploy"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the role is in the store: %v", err)
	}
	aw.SetErr(nil)
	putRole(t, r)
	aw.SetErr(errors.New("disk full"))
	if err := r.DeleteRole(ctx, "deploy", audit.Origin{}); fault.CodeOf(err) != CodeAuditUnavailable {
		t.Fatalf("delete: got %v", err)
	}
	if _, err := st.Get(ctx, "roles/deploy"); err != nil {
		t.Errorf("a failed delete removed the role from the store: %v", err)
	}
}

func TestIssuerChangesAreCheckedAgainstRoles(t *testing.T) {
	r, _, _ := newReg(t)
	ctx := context.Background()
	putRole(t, r)
	// Turning the issuer into a GitHub issuer would strand a role that
	// binds GitLab's project_id.
	gh := gitlabIssuer()
	gh.Kind = identity.KindGitHub
	_, err := r.PutIssuer(ctx, gh, audit.Origin{})
	if ie, ok := fault.As(err); !ok || ie.Code != CodeInvalidObject || !strings.Contains(strings.Join(ie.Details, "\n"), "role deploy would become invalid") {
		t.Fatalf("got %v, want the role named", err)
	}
	if is, _ := r.Issuer("gitlab"); is.Kind != identity.KindGitLab {
		t.Error("the refused change took effect")
	}
	if err := r.DeleteIssuer(ctx, "gitlab", audit.Origin{}); fault.CodeOf(err) != CodeInUse {
		t.Errorf("delete in use: got %v", err)
	}
}

func TestLoadSkipsRolesThatNoLongerCompile(t *testing.T) {
	r, _, st := newReg(t)
	ctx := context.Background()
	putRole(t, r)
	if err := st.Commit(ctx, nil, []storage.Op{storage.Put("roles/broken", []byte(`{"name":"broken","issuer":"gitlab","aws":{"type":"assume_role","role_arn":"nope"}}`))}); err != nil {
		t.Fatal(err)
	}
	fresh := New(Config{Store: st, Audit: audit.NewMemory(), Issuers: &sink{}})
	problems, err := fresh.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || !strings.Contains(problems[0].Error(), "broken") {
		t.Errorf("problems %v, want the broken role reported", problems)
	}
	if _, ok := fresh.Role("deploy"); !ok {
		t.Error("the good role was not loaded")
	}
	if _, ok := fresh.Role("broken"); ok {
		t.Error("the broken role is in service")
	}
}

// brokenStore fails every commit.
type brokenStore struct{ storage.Store }

func (brokenStore) Commit(context.Context, []storage.Cond, []storage.Op) error {
	return errors.New("disk on fire")
}

// TestStoreFailureAfterTheRecordIsRecorded: the record of a change comes
// first; when the store then fails, a second record says the change did
// not happen, and the role stays out of service.
func TestStoreFailureAfterTheRecordIsRecorded(t *testing.T) {
	r, aw, st := newReg(t)
	ctx := context.Background()
	r.store = brokenStore{st}
	if _, err := r.PutRole(ctx, role(), audit.Origin{Actor: "alice"}); err == nil || fault.CodeOf(err) == CodeAuditUnavailable {
		t.Fatalf("PutRole on a failing store = %v, want the store's error", err)
	}
	if _, ok := r.Role("deploy"); ok {
		t.Error("the role is in service although the store refused it")
	}
	evs := aw.Events()
	last, prev := evs[len(evs)-1], evs[len(evs)-2]
	if prev.Type != audit.TypeRoleWrite || prev.Decision != "" || last.Type != audit.TypeRoleWrite ||
		last.Decision != audit.DecisionDeny || last.Reason != audit.ReasonStoreError || last.Object != "deploy" || last.Actor != "alice" {
		t.Errorf("last two events = %+v, %+v; want the write's record, then its store_error record", prev, last)
	}
}
