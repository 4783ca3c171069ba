package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/dur"
	"github.com/keyferry/keyferry/internal/fault"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
	"github.com/keyferry/keyferry/internal/storage/memory"
)

type refreshFixture struct {
	m    *testLeases
	now  time.Time
	mint *fakeMinter
	aw   *audit.Memory
}

func newRefreshFixture(t *testing.T, typ string) *refreshFixture {
	t.Helper()
	f := &refreshFixture{now: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC), mint: &fakeMinter{}, aw: audit.NewMemory()}
	f.mint.now = func() time.Time { return f.now }
	role := policy.Role{
		Name: "deploy", Issuer: "gitlab", Match: map[string]policy.Values{"project_path": {"group/app"}},
		AWS: policy.AWS{Type: typ, RoleARN: "arn:aws:iam::123456789012:role/deploy", TTL: dur.Duration(time.Hour), MaxTTL: dur.Duration(3 * time.Hour)},
	}
	if typ == policy.TypeAssumeRole {
		role.AWS.Tags = map[string]string{"project": "{project_path}"}
	}
	c, err := policy.Compile(role, identity.KindGitLab)
	if err != nil {
		t.Fatal(err)
	}
	f.m = newTestLeases(testConfig{Store: memory.New(), Audit: f.aw, Verifier: fakeVerifier{id: gitlabIdentity("group/app")},
		Roles: roleMap{"deploy": c}, Minter: f.mint, DefaultRegion: "us-east-1", Now: func() time.Time { return f.now }})
	return f
}

func codeOf(err error) string {
	return fault.CodeOf(err)
}

func TestRefreshRotatesAndKeepsSession(t *testing.T) {
	f := newRefreshFixture(t, policy.TypeAssumeRole)
	ctx := context.Background()
	iss, err := f.m.Issue(ctx, IssueRequest{Role: "deploy", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if iss.RefreshHandle == "" {
		t.Fatal("no refresh handle issued for an assume_role lease")
	}
	// The job token expires; an hour later the job refreshes.
	f.now = f.now.Add(50 * time.Minute)
	r1, err := f.m.Refresh(ctx, RefreshRequest{Handle: iss.RefreshHandle})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Handle == iss.RefreshHandle || r1.Credentials.AccessKeyID == iss.Credentials.AccessKeyID {
		t.Fatal("refresh returned the same handle or credentials")
	}
	if f.mint.last.SessionName != iss.Lease.SessionName || len(f.mint.last.Tags) != 1 || f.mint.last.Tags[0].Value != "group/app" {
		t.Errorf("refresh minted %+v, want the issuance's session name and tags", f.mint.last)
	}
	l, _ := f.m.Get(ctx, iss.Lease.ID)
	if l.AccessKeyID != r1.Credentials.AccessKeyID || l.Refreshes != 1 || !l.ExpiresAt.Equal(r1.Credentials.Expiration) {
		t.Errorf("lease after refresh: %+v", l)
	}
	// Near max_ttl the session is shortened to fit.
	f.now = iss.Lease.IssuedAt.Add(2*time.Hour + 30*time.Minute)
	r2, err := f.m.Refresh(ctx, RefreshRequest{Handle: r1.Handle})
	if err != nil {
		t.Fatal(err)
	}
	if f.mint.last.Duration != 30*time.Minute {
		t.Errorf("session duration %v, want the 30m left before max_ttl", f.mint.last.Duration)
	}
	f.now = iss.Lease.IssuedAt.Add(3*time.Hour - 10*time.Minute)
	_, err = f.m.Refresh(ctx, RefreshRequest{Handle: r2.Handle})
	if codeOf(err) != CodeMaxTTLReached {
		t.Errorf("got %v, want max_ttl_reached", err)
	}
	refreshes := 0
	for _, ev := range f.aw.Events() {
		if ev.Type == audit.TypeRefresh && ev.Decision == audit.DecisionAllow {
			refreshes++
			if ev.AccessKeyID == "" || ev.LeaseID != iss.Lease.ID {
				t.Errorf("refresh event %+v", ev)
			}
		}
	}
	if refreshes != 2 {
		t.Errorf("got %d refresh audit events, want 2", refreshes)
	}
}

// TestRefreshHandleReuseRevokes is the stolen-handle attack: a spent handle
// presented again revokes the lease, and the thief's and the owner's
// handles stop working.
func TestRefreshHandleReuseRevokes(t *testing.T) {
	f := newRefreshFixture(t, policy.TypeAssumeRole)
	ctx := context.Background()
	iss, err := f.m.Issue(ctx, IssueRequest{Role: "deploy", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	r1, err := f.m.Refresh(ctx, RefreshRequest{Handle: iss.RefreshHandle})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.m.Refresh(ctx, RefreshRequest{Handle: iss.RefreshHandle}) // the copy
	if codeOf(err) != CodeRefreshHandleReused {
		t.Fatalf("got %v, want refresh_handle_reused", err)
	}
	l, _ := f.m.Get(ctx, iss.Lease.ID)
	if l.State != StateRevoked {
		t.Errorf("lease state %s, want revoked", l.State)
	}
	if _, err := f.m.Refresh(ctx, RefreshRequest{Handle: r1.Handle}); err == nil {
		t.Error("the current handle still works after reuse was detected")
	}
	var revoked bool
	for _, ev := range f.aw.Events() {
		if ev.Type == audit.TypeRevoke && ev.Reason == CodeRefreshHandleReused {
			revoked = true
		}
	}
	if !revoked {
		t.Error("no audit event for the reuse")
	}
}

func TestRefreshRefusals(t *testing.T) {
	ctx := context.Background()
	t.Run("garbage handle", func(t *testing.T) {
		f := newRefreshFixture(t, policy.TypeAssumeRole)
		for _, h := range []string{"", "kfr_x", "kfr_01ARZ3NDEKTSV4RRFFQ69G5FAV_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
			if _, err := f.m.Refresh(ctx, RefreshRequest{Handle: h}); codeOf(err) != CodeInvalidRefreshHandle {
				t.Errorf("handle %q: got %v, want invalid_refresh_handle", h, err)
			}
		}
	})
	t.Run("revoked lease", func(t *testing.T) {
		f := newRefreshFixture(t, policy.TypeAssumeRole)
		iss, _ := f.m.Issue(ctx, IssueRequest{Role: "deploy", Token: "t"})
		if _, err := f.m.Revoke(ctx, iss.Lease.ID, audit.Origin{Actor: "op"}, false); err != nil {
			t.Fatal(err)
		}
		if _, err := f.m.Refresh(ctx, RefreshRequest{Handle: iss.RefreshHandle}); codeOf(err) != CodeLeaseRevoked {
			t.Errorf("got %v, want lease_revoked", err)
		}
	})
	t.Run("upstream failure keeps the handle valid", func(t *testing.T) {
		f := newRefreshFixture(t, policy.TypeAssumeRole)
		iss, _ := f.m.Issue(ctx, IssueRequest{Role: "deploy", Token: "t"})
		f.mint.err = &awsprov.Error{Code: awsprov.CodeThrottled, Message: "slow down"}
		if _, err := f.m.Refresh(ctx, RefreshRequest{Handle: iss.RefreshHandle}); codeOf(err) != awsprov.CodeThrottled {
			t.Fatalf("got %v, want upstream_throttled", err)
		}
		f.mint.err = nil
		if _, err := f.m.Refresh(ctx, RefreshRequest{Handle: iss.RefreshHandle}); err != nil {
			t.Errorf("retry with the same handle: %v", err)
		}
	})
	t.Run("audit failure keeps the handle valid", func(t *testing.T) {
		f := newRefreshFixture(t, policy.TypeAssumeRole)
		iss, _ := f.m.Issue(ctx, IssueRequest{Role: "deploy", Token: "t"})
		f.aw.SetErr(errors.New("disk full"))
		if _, err := f.m.Refresh(ctx, RefreshRequest{Handle: iss.RefreshHandle}); codeOf(err) != CodeAuditUnavailable {
			t.Fatalf("got %v, want audit_unavailable", err)
		}
		f.aw.SetErr(nil)
		if _, err := f.m.Refresh(ctx, RefreshRequest{Handle: iss.RefreshHandle}); err != nil {
			t.Errorf("retry with the same handle: %v", err)
		}
	})
	t.Run("web identity has no handle", func(t *testing.T) {
		f := newRefreshFixture(t, policy.TypeWebIdentity)
		iss, err := f.m.Issue(ctx, IssueRequest{Role: "deploy", Token: "t"})
		if err != nil {
			t.Fatal(err)
		}
		if iss.RefreshHandle != "" {
			t.Error("web_identity lease got a refresh handle")
		}
	})
}

// TestRefreshReauthorises: tightening a role stops existing refresh chains.
func TestRefreshReauthorises(t *testing.T) {
	f := newRefreshFixture(t, policy.TypeAssumeRole)
	ctx := context.Background()
	iss, err := f.m.Issue(ctx, IssueRequest{Role: "deploy", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	tight, err := policy.Compile(policy.Role{
		Name: "deploy", Issuer: "gitlab", Match: map[string]policy.Values{"project_path": {"group/app"}, "ref": {"release/*"}},
		AWS: policy.AWS{Type: policy.TypeAssumeRole, RoleARN: "arn:aws:iam::123456789012:role/deploy", MaxTTL: dur.Duration(3 * time.Hour)},
	}, identity.KindGitLab)
	if err != nil {
		t.Fatal(err)
	}
	f.m.Issuer.roles = roleMap{"deploy": tight}
	f.m.Lifecycle.roles = f.m.Issuer.roles
	_, err = f.m.Refresh(ctx, RefreshRequest{Handle: iss.RefreshHandle})
	if codeOf(err) != CodeNoMatchingRole {
		t.Fatalf("got %v, want no_matching_role after the role was tightened", err)
	}
}
