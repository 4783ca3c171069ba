package lease

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/fault"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
	"github.com/keyferry/keyferry/internal/storage"
	"github.com/keyferry/keyferry/internal/storage/memory"
)

type fakeVerifier struct {
	id  *identity.Identity
	err error
}

func (f fakeVerifier) Verify(context.Context, string) (*identity.Identity, error) { return f.id, f.err }

type roleMap map[string]*policy.Compiled

func (m roleMap) Role(n string) (*policy.Compiled, bool) { c, ok := m[n]; return c, ok }

type fakeMinter struct {
	calls atomic.Int32
	err   error
	last  awsprov.Request
	now   func() time.Time
}

func (f *fakeMinter) AssumeRole(_ context.Context, r awsprov.Request) (*awsprov.Credentials, error) {
	n := f.calls.Add(1)
	f.last = r
	if f.err != nil {
		return nil, f.err
	}
	now := time.Now
	if f.now != nil {
		now = f.now
	}
	return &awsprov.Credentials{AccessKeyID: fmt.Sprintf("ASIATEST%012d", n), SecretAccessKey: "secret", SessionToken: "session", Expiration: now().Add(r.Duration)}, nil
}

func (f *fakeMinter) AssumeRoleWithWebIdentity(ctx context.Context, r awsprov.Request) (*awsprov.Credentials, error) {
	return f.AssumeRole(ctx, r)
}

func gitlabIdentity(project string) *identity.Identity {
	return &identity.Identity{
		Issuer: "gitlab", IssuerURL: "https://gitlab.example.com", Kind: identity.KindGitLab,
		Subject: "project_path:" + project + ":ref_type:branch:ref:main",
		Claims: map[string]any{
			"project_path": project, "project_id": "1", "ref": "main", "ref_protected": "true",
			"pipeline_id": "10", "job_id": "20", "user_login": "alice",
		},
	}
}

func newTestManager(t *testing.T, v Verifier, m Minter, aw audit.Writer) (*testLeases, storage.Store) {
	t.Helper()
	c, err := policy.Compile(policy.Role{
		Name: "deploy", Issuer: "gitlab", Match: map[string]policy.Values{"project_path": {"group/app"}},
		AWS: policy.AWS{Type: policy.TypeAssumeRole, RoleARN: "arn:aws:iam::123456789012:role/deploy"},
	}, identity.KindGitLab)
	if err != nil {
		t.Fatal(err)
	}
	st := memory.New()
	return newTestLeases(testConfig{Store: st, Audit: aw, Verifier: v, Roles: roleMap{"deploy": c}, Minter: m, DefaultRegion: "us-east-1"}), st
}

func countLeases(t *testing.T, st storage.Store) int {
	t.Helper()
	n := 0
	err := storage.Scan(context.Background(), st, storage.Range{Prefix: leasePrefix, KeysOnly: true}, func(storage.KV) (bool, error) { n++; return true, nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestIssueFailsClosedWhenAuditFails(t *testing.T) {
	aw := audit.NewMemory()
	mint := &fakeMinter{}
	m, st := newTestManager(t, fakeVerifier{id: gitlabIdentity("group/app")}, mint, aw)
	aw.SetErr(errors.New("disk full"))
	out, err := m.Issue(context.Background(), IssueRequest{Role: "deploy", Token: "t", RequestID: "r1"})
	le, ok := fault.As(err)
	if !ok || le.Code != CodeAuditUnavailable || le.Kind != fault.Unavailable {
		t.Fatalf("got %v, want unavailable audit_unavailable", err)
	}
	if out != nil {
		t.Fatal("credentials returned although the audit event was not written")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error leaks the secret: %v", err)
	}
	// The lease exists (the STS session was minted) but is marked revoked.
	ls, _, err := m.List(context.Background(), Filter{})
	if err != nil || len(ls) != 1 {
		t.Fatalf("got %d leases (%v), want 1", len(ls), err)
	}
	if ls[0].State != StateRevoked || !strings.Contains(ls[0].RevokeNote, "audit") {
		t.Errorf("lease %+v, want revoked with an audit note", ls[0])
	}
	_ = st
}

func TestDenialFailsClosedWhenAuditFails(t *testing.T) {
	aw := audit.NewMemory()
	aw.SetErr(errors.New("disk full"))
	m, _ := newTestManager(t, fakeVerifier{err: &identity.Error{Code: identity.CodeTokenExpired, Message: "expired"}}, &fakeMinter{}, aw)
	_, err := m.Issue(context.Background(), IssueRequest{Role: "deploy", Token: "t"})
	if le, ok := fault.As(err); !ok || le.Code != CodeAuditUnavailable {
		t.Fatalf("got %v, want audit_unavailable", err)
	}
}

func TestIssueRefusals(t *testing.T) {
	tests := []struct {
		name     string
		v        fakeVerifier
		role     string
		ttl      time.Duration
		mintErr  error
		wantKind fault.Kind
		wantCode string
	}{
		{name: "bad token", v: fakeVerifier{err: &identity.Error{Code: identity.CodeSignatureInvalid, Message: "bad"}}, role: "deploy", wantKind: fault.Unauthenticated, wantCode: identity.CodeSignatureInvalid},
		{name: "issuer down", v: fakeVerifier{err: &identity.Error{Code: identity.CodeIssuerUnavailable, Message: "down"}}, role: "deploy", wantKind: fault.Unavailable, wantCode: identity.CodeIssuerUnavailable},
		{name: "replay cache full", v: fakeVerifier{err: &identity.Error{Code: identity.CodeReplayCacheFull, Message: "full"}}, role: "deploy", wantKind: fault.Unavailable, wantCode: identity.CodeReplayCacheFull},
		{name: "unknown role", v: fakeVerifier{id: gitlabIdentity("group/app")}, role: "nope", wantKind: fault.Forbidden, wantCode: CodeNoMatchingRole},
		{name: "other project", v: fakeVerifier{id: gitlabIdentity("evil/app")}, role: "deploy", wantKind: fault.Forbidden, wantCode: CodeNoMatchingRole},
		{name: "other issuer", v: fakeVerifier{id: func() *identity.Identity { i := gitlabIdentity("group/app"); i.Issuer = "other"; return i }()}, role: "deploy", wantKind: fault.Forbidden, wantCode: CodeNoMatchingRole},
		{name: "ttl too short", v: fakeVerifier{id: gitlabIdentity("group/app")}, role: "deploy", ttl: time.Minute, wantKind: fault.Invalid, wantCode: CodeInvalidRequest},
		{name: "ttl too long", v: fakeVerifier{id: gitlabIdentity("group/app")}, role: "deploy", ttl: 2 * time.Hour, wantKind: fault.Invalid, wantCode: CodeInvalidRequest},
		{name: "throttled", v: fakeVerifier{id: gitlabIdentity("group/app")}, role: "deploy", mintErr: &awsprov.Error{Code: awsprov.CodeThrottled, Message: "slow down"}, wantKind: fault.Unavailable, wantCode: awsprov.CodeThrottled},
		{name: "denied upstream", v: fakeVerifier{id: gitlabIdentity("group/app")}, role: "deploy", mintErr: &awsprov.Error{Code: awsprov.CodeAccessDenied, Message: "no"}, wantKind: fault.Forbidden, wantCode: awsprov.CodeAccessDenied},
		{name: "upstream timeout", v: fakeVerifier{id: gitlabIdentity("group/app")}, role: "deploy", mintErr: &awsprov.Error{Code: awsprov.CodeTimeout, Message: "slow"}, wantKind: fault.Timeout, wantCode: awsprov.CodeTimeout},
		{name: "caller gone", v: fakeVerifier{id: gitlabIdentity("group/app")}, role: "deploy", mintErr: context.Canceled, wantKind: fault.Cancelled, wantCode: "request_cancelled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aw := audit.NewMemory()
			mint := &fakeMinter{err: tt.mintErr}
			m, st := newTestManager(t, tt.v, mint, aw)
			_, err := m.Issue(context.Background(), IssueRequest{Role: tt.role, Token: "t", TTL: tt.ttl})
			le, ok := fault.As(err)
			if !ok {
				t.Fatalf("got %v, want *fault.Error", err)
			}
			if le.Kind != tt.wantKind || le.Code != tt.wantCode {
				t.Fatalf("got %s %s, want %s %s", le.Kind, le.Code, tt.wantKind, tt.wantCode)
			}
			if n := countLeases(t, st); n != 0 {
				t.Errorf("got %d leases, want 0", n)
			}
			evs := aw.Events()
			if len(evs) != 1 || evs[0].Type != audit.TypeDeny || evs[0].Reason != tt.wantCode {
				t.Errorf("audit %+v, want one deny event with reason %s", evs, tt.wantCode)
			}
			if tt.mintErr == nil && tt.wantCode != awsprov.CodeThrottled && mint.calls.Load() != 0 {
				t.Errorf("STS called %d times for a refused request", mint.calls.Load())
			}
		})
	}
}

func TestIssueHonoursShorterTTL(t *testing.T) {
	mint := &fakeMinter{}
	m, _ := newTestManager(t, fakeVerifier{id: gitlabIdentity("group/app")}, mint, audit.NewMemory())
	out, err := m.Issue(context.Background(), IssueRequest{Role: "deploy", Token: "t", TTL: 20 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if mint.last.Duration != 20*time.Minute || mint.last.SessionName != "gl-20-group-app" || mint.last.Region != "us-east-1" {
		t.Errorf("minted with %+v", mint.last)
	}
	if out.Lease.Identity.Job != "20" || out.Lease.State != StateActive {
		t.Errorf("lease %+v", out.Lease)
	}
}

func TestNewIDOrderedAndUnique(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	base := time.Now()
	for i := 0; i < 2000; i++ {
		id := NewID(base.Add(time.Duration(i) * time.Millisecond))
		if len(id) != 26 || seen[id] {
			t.Fatalf("id %q: length %d, duplicate %v", id, len(id), seen[id])
		}
		if id <= prev {
			t.Fatalf("id %q does not sort after %q", id, prev)
		}
		seen[id], prev = true, id
	}
}

func TestEffectiveState(t *testing.T) {
	now := time.Now()
	l := Lease{State: StateActive, ExpiresAt: now}
	if got := l.EffectiveState(now); got != StateExpired {
		t.Errorf("at expiry: got %s, want expired", got)
	}
	if got := l.EffectiveState(now.Add(-time.Second)); got != StateActive {
		t.Errorf("before expiry: got %s, want active", got)
	}
	l.State = StateRevoked
	if got := l.EffectiveState(now.Add(time.Hour)); got != StateRevoked {
		t.Errorf("revoked: got %s", got)
	}
}
