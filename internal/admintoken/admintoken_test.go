package admintoken_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/admintoken"
	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/fault"
	"github.com/keyferry/keyferry/internal/storage"
	"github.com/keyferry/keyferry/internal/storage/memory"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))

var tokenRE = regexp.MustCompile(`^kfa_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$`)

var errDisk = errors.New("disk full")

// faultyStore wraps a real store and fails what the test asks it to.
type faultyStore struct {
	storage.Store
	mu        sync.Mutex
	updateErr error  // returned by Commit instead of committing
	viewErr   error  // returned by Get and List instead of reading
	onUpdate  func() // runs before each Commit (e.g. a concurrent change)
	views     int
}

func (f *faultyStore) Commit(ctx context.Context, conds []storage.Cond, ops []storage.Op) error {
	f.mu.Lock()
	err, hook := f.updateErr, f.onUpdate
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	if err != nil {
		return err
	}
	return f.Store.Commit(ctx, conds, ops)
}

func (f *faultyStore) read() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.views++
	return f.viewErr
}

func (f *faultyStore) Get(ctx context.Context, key string) (storage.KV, error) {
	if err := f.read(); err != nil {
		return storage.KV{}, err
	}
	return f.Store.Get(ctx, key)
}

func (f *faultyStore) List(ctx context.Context, r storage.Range) (storage.Page, error) {
	if err := f.read(); err != nil {
		return storage.Page{}, err
	}
	return f.Store.List(ctx, r)
}

func (f *faultyStore) viewCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.views
}

// failAfter is an audit writer that accepts n events, then fails.
type failAfter struct {
	*audit.Memory
	mu sync.Mutex
	n  int
}

func (w *failAfter) Write(ctx context.Context, ev *audit.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == 0 {
		return errDisk
	}
	w.n--
	return w.Memory.Write(ctx, ev)
}

type fixture struct {
	svc   *admintoken.Service
	store *faultyStore
	aw    *audit.Memory
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{store: &faultyStore{Store: memory.New()}, aw: audit.NewMemory()}
	f.svc = admintoken.New(admintoken.Config{Store: f.store, Audit: f.aw, Now: func() time.Time { return t0 }})
	return f
}

var change = audit.Origin{Actor: "admin_token:0123456789abcdef(root)", RequestID: "req-1", SourceAddr: "10.0.0.5"}

func (f *fixture) create(t *testing.T, name string, scopes ...string) (string, *admintoken.Token) {
	t.Helper()
	tok, rec, err := f.svc.Create(context.Background(), name, scopes, change)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return tok, rec
}

// exists reports whether a token with id is stored.
func (f *fixture) exists(t *testing.T, id string) bool {
	t.Helper()
	_, err := f.store.Store.Get(context.Background(), "admin_tokens/"+id)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func TestCreate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok, rec, err := f.svc.Create(ctx, "oncall", []string{admintoken.ScopeLeasesRead, admintoken.ScopeLeasesRevoke}, change)
	if err != nil {
		t.Fatal(err)
	}
	m := tokenRE.FindStringSubmatch(tok)
	if m == nil {
		t.Fatalf("got token %q, want kfa_<16 hex>_<43 base64url>", tok)
	}
	if rec.ID != m[1] || rec.Name != "oncall" || !slices.Equal(rec.Scopes, []string{"leases:read", "leases:revoke"}) {
		t.Errorf("got record %+v, want id %s, name oncall, the two scopes", rec, m[1])
	}
	if rec.Hash != "" {
		t.Errorf("got hash %q in the returned record, want none", rec.Hash)
	}
	if want := t0.UTC(); !rec.CreatedAt.Equal(want) || rec.CreatedAt.Location() != time.UTC {
		t.Errorf("got created_at %v, want %v in UTC", rec.CreatedAt, want)
	}
	got, err := f.svc.Authenticate(ctx, tok)
	if err != nil {
		t.Fatalf("authenticate the new token: %v", err)
	}
	if got.ID != rec.ID || got.Name != "oncall" {
		t.Errorf("authenticated as %+v, want the new token", got)
	}
	// Only the hash of the secret is stored, never the secret.
	rawKV, err := f.store.Store.Get(ctx, "admin_tokens/"+rec.ID)
	raw := rawKV.Value
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(m[2]))
	if !strings.Contains(string(raw), hex.EncodeToString(sum[:])) || strings.Contains(string(raw), m[2]) {
		t.Errorf("stored record %s: want the secret's SHA-256 and not the secret", raw)
	}

	evs := f.aw.Events()
	if len(evs) != 1 {
		t.Fatalf("got %d audit events, want 1", len(evs))
	}
	ev := evs[0]
	want := audit.Event{Type: audit.TypeTokenCreate, Actor: change.Actor, Object: rec.ID, Message: "name oncall, scopes leases:read,leases:revoke",
		RequestID: change.RequestID, SourceAddr: change.SourceAddr}
	if ev.Type != want.Type || ev.Actor != want.Actor || ev.Object != want.Object || ev.Message != want.Message ||
		ev.RequestID != want.RequestID || ev.SourceAddr != want.SourceAddr || ev.Decision != "" || ev.Reason != "" {
		t.Errorf("got event %+v, want %+v", ev, want)
	}
	line, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(line), m[2]) || strings.Contains(string(line), hex.EncodeToString(sum[:])) {
		t.Errorf("audit event %s carries the secret or its hash", line)
	}

	tok2, rec2 := f.create(t, "oncall", admintoken.ScopeLeasesRead)
	if tok2 == tok || rec2.ID == rec.ID {
		t.Errorf("two creations gave the same token or id (%s)", rec.ID)
	}
}

// TestCreateRefusesBadRequests: a bad name or scope is an invalid_request refusal
// whose message the API shows; nothing is stored and nothing audited.
func TestCreateRefusesBadRequests(t *testing.T) {
	tests := []struct {
		name    string
		tokName string
		scopes  []string
		wantMsg string
	}{
		{"unknown scope", "ci", []string{"roles:read", "roles:admin"}, `unknown scope "roles:admin" (known: *, roles:read, roles:write, issuers:read, issuers:write, leases:read, leases:revoke, tokens:write, dev)`},
		{"scope in another case", "ci", []string{"Roles:Read"}, `unknown scope "Roles:Read" (known: *, roles:read, roles:write, issuers:read, issuers:write, leases:read, leases:revoke, tokens:write, dev)`},
		{"empty scope", "ci", []string{""}, `unknown scope "" (known: *, roles:read, roles:write, issuers:read, issuers:write, leases:read, leases:revoke, tokens:write, dev)`},
		{"no scopes", "ci", []string{}, "at least one scope is required"},
		{"nil scopes", "ci", nil, "at least one scope is required"},
		{"empty name", "", []string{"*"}, "name must match ^[a-z0-9][a-z0-9._-]{0,62}$"},
		{"name that reads like more of the audit message", "x, scopes *", []string{"roles:read"}, "name must match ^[a-z0-9][a-z0-9._-]{0,62}$"},
		{"upper-case name", "Oncall", []string{"*"}, "name must match ^[a-z0-9][a-z0-9._-]{0,62}$"},
		{"name too long", strings.Repeat("a", 64), []string{"*"}, "name must match ^[a-z0-9][a-z0-9._-]{0,62}$"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tok, rec, err := f.svc.Create(context.Background(), tt.tokName, tt.scopes, change)
			ie, ok := fault.As(err)
			if !ok || ie.Kind != fault.Invalid || ie.Code != fault.CodeInvalidRequest {
				t.Fatalf("got %v (%T), want an invalid_request refusal", err, err)
			}
			if ie.Message != tt.wantMsg {
				t.Errorf("got message %q, want %q", ie.Message, tt.wantMsg)
			}
			if tok != "" || rec != nil {
				t.Errorf("got token %q and record %+v with the error, want neither", tok, rec)
			}
			if n := len(f.aw.Events()); n != 0 {
				t.Errorf("got %d audit events, want none", n)
			}
			if ok, err := admintoken.Any(context.Background(), f.store); err != nil || ok {
				t.Errorf("a token exists after a refused creation (%v)", err)
			}
		})
	}
}

// TestCreateAuditFailureCreatesNothing: no token exists without its
// record.
func TestCreateAuditFailureCreatesNothing(t *testing.T) {
	f := newFixture(t)
	f.aw.SetErr(errDisk)
	tok, rec, err := f.svc.Create(context.Background(), "oncall", []string{"*"}, change)
	if !errors.Is(err, admintoken.ErrAuditUnavailable) || !errors.Is(err, errDisk) {
		t.Fatalf("got %v, want ErrAuditUnavailable wrapping the writer's error", err)
	}
	if tok != "" || rec != nil {
		t.Errorf("got token %q and record %+v, want neither", tok, rec)
	}
	if ok, err := admintoken.Any(context.Background(), f.store); err != nil || ok {
		t.Errorf("a token was stored although its audit record failed (%v)", err)
	}
}

// TestCreateStoreFailureIsRecorded: when the store write fails after the
// record, a second record says the token was not created, and the store's
// error is returned.
func TestCreateStoreFailureIsRecorded(t *testing.T) {
	f := newFixture(t)
	f.store.updateErr = errDisk
	_, _, err := f.svc.Create(context.Background(), "oncall", []string{"*"}, change)
	if !errors.Is(err, errDisk) || errors.Is(err, admintoken.ErrAuditUnavailable) {
		t.Fatalf("got %v, want the store's error (not ErrAuditUnavailable)", err)
	}
	evs := f.aw.Events()
	if len(evs) != 2 {
		t.Fatalf("got %d audit events, want the creation and its failure", len(evs))
	}
	first, second := evs[0], evs[1]
	if first.Type != audit.TypeTokenCreate || first.Decision != "" {
		t.Errorf("first event: got %+v, want admin_token.create", first)
	}
	if second.Type != audit.TypeTokenCreate || second.Decision != audit.DecisionDeny || second.Reason != "store_error" ||
		second.Object != first.Object || second.Actor != change.Actor || second.RequestID != change.RequestID ||
		second.Message != "the token was not created: the store write failed" {
		t.Errorf("second event: got %+v, want a deny of the same object with reason store_error", second)
	}
	if strings.Contains(second.Message, errDisk.Error()) {
		t.Errorf("the failure record carries the store's error text: %q", second.Message)
	}
	f.store.updateErr = nil
	if ok, err := admintoken.Any(context.Background(), f.store); err != nil || ok {
		t.Errorf("a token exists after a failed store write (%v)", err)
	}
}

// TestCreateStoreAndAuditFailure: if the failure cannot be recorded
// either, both errors are returned; the store's is still recognisable.
func TestCreateStoreAndAuditFailure(t *testing.T) {
	st := &faultyStore{Store: memory.New(), updateErr: storage.ErrClosed}
	aw := &failAfter{Memory: audit.NewMemory(), n: 1}
	svc := admintoken.New(admintoken.Config{Store: st, Audit: aw})
	_, _, err := svc.Create(context.Background(), "oncall", []string{"*"}, change)
	if !errors.Is(err, storage.ErrClosed) || !errors.Is(err, errDisk) {
		t.Fatalf("got %v, want the store's and the audit writer's errors", err)
	}
	if errors.Is(err, admintoken.ErrAuditUnavailable) {
		t.Errorf("got ErrAuditUnavailable, want it only when nothing was attempted: %v", err)
	}
	if n := len(aw.Events()); n != 1 {
		t.Errorf("got %d events, want the creation's record only", n)
	}
}

// TestCreateFailureRecordSurvivesCancellation: a request cancelled after
// its record still gets the failure record.
func TestCreateFailureRecordSurvivesCancellation(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	f.store.onUpdate = cancel
	f.store.updateErr = context.Canceled
	_, _, err := f.svc.Create(ctx, "oncall", []string{"*"}, change)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if evs := f.aw.Events(); len(evs) != 2 || evs[1].Decision != audit.DecisionDeny {
		t.Fatalf("got events %+v, want the creation and its failure", evs)
	}
}

func TestDelete(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok, rec := f.create(t, "oncall", "*")
	keep, _ := f.create(t, "ci", admintoken.ScopeRolesRead)
	by := audit.Origin{Actor: "admin_token:" + rec.ID + "(oncall)", RequestID: "req-2", SourceAddr: "10.0.0.6"}
	if err := f.svc.Delete(ctx, rec.ID, by); err != nil {
		t.Fatal(err)
	}
	if f.exists(t, rec.ID) {
		t.Error("the token is still stored")
	}
	if _, err := f.svc.Authenticate(ctx, tok); !errors.Is(err, admintoken.ErrInvalid) {
		t.Errorf("a deleted token authenticates: got %v, want ErrInvalid", err)
	}
	if _, err := f.svc.Authenticate(ctx, keep); err != nil {
		t.Errorf("another token stopped working: %v", err)
	}
	evs := f.aw.Events()
	if len(evs) != 3 {
		t.Fatalf("got %d events, want 2 creations and 1 revocation", len(evs))
	}
	ev := evs[2]
	if ev.Type != audit.TypeTokenRevoke || ev.Object != rec.ID || ev.Message != "name oncall" || ev.Actor != by.Actor ||
		ev.RequestID != by.RequestID || ev.SourceAddr != by.SourceAddr || ev.Decision != "" {
		t.Errorf("got event %+v, want admin_token.revoke of %s by %s", ev, rec.ID, by.Actor)
	}
}

// TestDeleteMissingToken: deleting a token that does not exist is
// ErrNotFound and writes no record (nothing was revoked), whatever the id
// looks like; malformed ids never reach the store.
func TestDeleteMissingToken(t *testing.T) {
	for _, id := range []string{"0123456789abcdef", "", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", "../admin_tokens/x", "0123456789abcdef/x"} {
		t.Run(id, func(t *testing.T) {
			f := newFixture(t)
			_, rec := f.create(t, "oncall", "*")
			views := f.store.viewCount()
			err := f.svc.Delete(context.Background(), id, change)
			if !errors.Is(err, admintoken.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
			if n := len(f.aw.Events()); n != 1 {
				t.Errorf("got %d events, want only the creation", n)
			}
			if !f.exists(t, rec.ID) {
				t.Error("the existing token was deleted")
			}
			if id != "0123456789abcdef" && f.store.viewCount() != views {
				t.Errorf("a malformed id was looked up in the store")
			}
		})
	}
}

// TestDeleteAuditFailureDeletesNothing: no revocation without its record
// either; the token keeps working and the caller is told.
func TestDeleteAuditFailureDeletesNothing(t *testing.T) {
	f := newFixture(t)
	tok, rec := f.create(t, "oncall", "*")
	f.aw.SetErr(errDisk)
	err := f.svc.Delete(context.Background(), rec.ID, change)
	if !errors.Is(err, admintoken.ErrAuditUnavailable) || !errors.Is(err, errDisk) {
		t.Fatalf("got %v, want ErrAuditUnavailable wrapping the writer's error", err)
	}
	if _, err := f.svc.Authenticate(context.Background(), tok); err != nil {
		t.Errorf("the token stopped working although its deletion was refused: %v", err)
	}
}

// TestDeleteStoreFailureIsRecorded: the revocation's record is followed by
// one saying it did not happen; the store's error is returned.
func TestDeleteStoreFailureIsRecorded(t *testing.T) {
	f := newFixture(t)
	tok, rec := f.create(t, "oncall", "*")
	f.store.updateErr = errDisk
	err := f.svc.Delete(context.Background(), rec.ID, change)
	if !errors.Is(err, errDisk) || errors.Is(err, admintoken.ErrAuditUnavailable) || errors.Is(err, admintoken.ErrNotFound) {
		t.Fatalf("got %v, want the store's error only", err)
	}
	evs := f.aw.Events()
	if len(evs) != 3 {
		t.Fatalf("got %d events, want creation, revocation, failure", len(evs))
	}
	if ev := evs[2]; ev.Type != audit.TypeTokenRevoke || ev.Decision != audit.DecisionDeny || ev.Reason != "store_error" ||
		ev.Object != rec.ID || ev.Message != "the token was not deleted: the store write failed" {
		t.Errorf("got failure event %+v, want a deny of %s with reason store_error", ev, rec.ID)
	}
	f.store.updateErr = nil
	if _, err := f.svc.Authenticate(context.Background(), tok); err != nil {
		t.Errorf("the token stopped working although the deletion failed: %v", err)
	}
}

// TestDeleteRace: the token disappears between the record and the
// deletion (another operator deleted it): ErrNotFound, and a second record
// says this deletion did not happen.
func TestDeleteRace(t *testing.T) {
	f := newFixture(t)
	_, rec := f.create(t, "oncall", "*")
	f.store.onUpdate = func() {
		if err := storage.Delete(context.Background(), f.store.Store, "admin_tokens/"+rec.ID); err != nil {
			t.Error(err)
		}
	}
	err := f.svc.Delete(context.Background(), rec.ID, change)
	if !errors.Is(err, admintoken.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	evs := f.aw.Events()
	if len(evs) != 3 || evs[1].Type != audit.TypeTokenRevoke || evs[2].Reason != "not_found" || evs[2].Decision != audit.DecisionDeny {
		t.Fatalf("got events %+v, want creation, revocation, and a deny with reason not_found", evs)
	}
}

// TestDeleteUndecodableRecord: a record that no longer decodes can still
// be deleted (it cannot authenticate anyone, and it breaks List).
func TestDeleteUndecodableRecord(t *testing.T) {
	f := newFixture(t)
	const id = "00112233445566ff"
	putRaw(t, f.store.Store, id, "{not json")
	if err := f.svc.Delete(context.Background(), id, change); err != nil {
		t.Fatal(err)
	}
	if f.exists(t, id) {
		t.Error("the record is still stored")
	}
	if evs := f.aw.Events(); len(evs) != 1 || evs[0].Message != "undecodable record" {
		t.Errorf("got events %+v, want one revocation noting an undecodable record", evs)
	}
}

func putRaw(t *testing.T, s storage.Store, id, val string) {
	t.Helper()
	if err := s.Commit(context.Background(), nil, []storage.Op{storage.Put("admin_tokens/"+id, []byte(val))}); err != nil {
		t.Fatal(err)
	}
}

// TestAuthenticateMissingIDAndWrongSecretAreTheSameError: the caller
// cannot tell an unknown id from a known id with a wrong secret.
func TestAuthenticateMissingIDAndWrongSecretAreTheSameError(t *testing.T) {
	f := newFixture(t)
	tok, rec := f.create(t, "oncall", "*")
	secret := tok[len("kfa_0123456789abcdef_"):]
	other := strings.Repeat("A", 43)
	if secret == other {
		t.Fatal("unlucky secret")
	}
	_, errMissing := f.svc.Authenticate(context.Background(), "kfa_ffffffffffffffff_"+secret)
	_, errWrong := f.svc.Authenticate(context.Background(), "kfa_"+rec.ID+"_"+other)
	if errMissing != admintoken.ErrInvalid || errWrong != admintoken.ErrInvalid {
		t.Fatalf("got %v for a missing id and %v for a wrong secret, want ErrInvalid itself for both", errMissing, errWrong)
	}
}

// TestAuthenticateRejectsMalformedTokens: every token that is not exactly
// kfa_<16 lower-case hex>_<43 base64url> is ErrInvalid, before any store
// access.
func TestAuthenticateRejectsMalformedTokens(t *testing.T) {
	f := newFixture(t)
	tok, _ := f.create(t, "oncall", "*")
	id, secret := tok[4:20], tok[21:]
	tests := []struct{ name, token string }{
		{"empty", ""},
		{"prefix only", "kfa_"},
		{"no prefix", id + "_" + secret},
		{"upper-case prefix", "KFA_" + id + "_" + secret},
		{"other prefix", "kfb_" + id + "_" + secret},
		{"dash for underscore after prefix", "kfa-" + id + "_" + secret},
		{"dash for underscore after id", "kfa_" + id + "-" + secret},
		{"id one short", "kfa_" + id[1:] + "_" + secret},
		{"id one long", "kfa_" + id + "0_" + secret},
		{"id upper-case hex", "kfa_" + strings.ToUpper(id) + "_" + secret},
		{"id not hex", "kfa_" + "g" + id[1:] + "_" + secret},
		{"secret one short", "kfa_" + id + "_" + secret[1:]},
		{"secret one long", "kfa_" + id + "_" + secret + "A"},
		{"secret with padding", "kfa_" + id + "_" + secret + "="},
		{"secret in standard base64", "kfa_" + id + "_" + "+" + secret[1:]},
		{"secret with slash", "kfa_" + id + "_" + "/" + secret[1:]},
		{"trailing data", tok + "x"},
		{"token twice", tok + tok},
		{"trailing newline", tok + "\n"},
		{"leading space", " " + tok},
		{"trailing space", tok + " "},
		{"inner space", "kfa_" + id + "_" + secret[:20] + " " + secret[21:]},
		{"trailing NUL", tok + "\x00"},
		{"NUL for a secret character", tok[:len(tok)-1] + "\x00"},
		{"bearer scheme included", "Bearer " + tok},
		{"fullwidth digit in id", "kfa_" + "０" + id[1:] + "_" + secret},
		{"cyrillic letter in secret", "kfa_" + id + "_" + "а" + secret[1:]},
		{"combining mark after token", tok + "\u0301"},
		{"invalid UTF-8", tok[:len(tok)-1] + "\xff"},
		{"zero-width space", tok + "\u200b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			views := f.store.viewCount()
			got, err := f.svc.Authenticate(context.Background(), tt.token)
			if err != admintoken.ErrInvalid || got != nil {
				t.Fatalf("got %+v, %v, want nil, ErrInvalid", got, err)
			}
			if f.store.viewCount() != views {
				t.Errorf("a malformed token was looked up in the store")
			}
		})
	}
}

// TestAuthenticateRejectsAnotherTokensSecret: an id only works with its
// own secret.
func TestAuthenticateRejectsAnotherTokensSecret(t *testing.T) {
	f := newFixture(t)
	a, _ := f.create(t, "a", "*")
	b, _ := f.create(t, "b", "*")
	if _, err := f.svc.Authenticate(context.Background(), a[:21]+b[21:]); err != admintoken.ErrInvalid {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
}

// TestAuthenticateIsCaseSensitive: the secret is compared exactly.
func TestAuthenticateIsCaseSensitive(t *testing.T) {
	f := newFixture(t)
	tok, _ := f.create(t, "a", "*")
	flipped := tok[:21] + strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return r
	}, tok[21:])
	if flipped == tok {
		t.Skip("secret without letters")
	}
	if _, err := f.svc.Authenticate(context.Background(), flipped); err != admintoken.ErrInvalid {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
}

// TestAuthenticateRecordWithoutHash: a record whose hash is empty (e.g. a
// List result written back) authenticates nobody.
func TestAuthenticateRecordWithoutHash(t *testing.T) {
	f := newFixture(t)
	const id = "00112233445566ff"
	putRaw(t, f.store.Store, id, `{"id":"`+id+`","name":"x","scopes":["*"],"created_at":"2026-03-01T12:00:00Z"}`)
	for _, secret := range []string{strings.Repeat("A", 43), strings.Repeat("0", 43)} {
		if _, err := f.svc.Authenticate(context.Background(), "kfa_"+id+"_"+secret); err != admintoken.ErrInvalid {
			t.Errorf("secret %s: got %v, want ErrInvalid", secret, err)
		}
	}
}

// TestAuthenticateUndecodableRecord: a stored record that fails to decode
// is an error (not ErrInvalid, not a token): the server fails closed and
// the operator sees why.
func TestAuthenticateUndecodableRecord(t *testing.T) {
	f := newFixture(t)
	const id = "00112233445566ff"
	putRaw(t, f.store.Store, id, "{not json")
	got, err := f.svc.Authenticate(context.Background(), "kfa_"+id+"_"+strings.Repeat("A", 43))
	var se *json.SyntaxError
	if got != nil || err == nil || errors.Is(err, admintoken.ErrInvalid) || !errors.As(err, &se) || !strings.HasPrefix(err.Error(), "admintoken: decode: ") {
		t.Fatalf("got %+v, %v, want nil and an admintoken: decode error", got, err)
	}
}

// TestAuthenticateStoreError: a store failure is an error, never a token.
func TestAuthenticateStoreError(t *testing.T) {
	f := newFixture(t)
	tok, _ := f.create(t, "a", "*")
	f.store.viewErr = errDisk
	got, err := f.svc.Authenticate(context.Background(), tok)
	if got != nil || !errors.Is(err, errDisk) || errors.Is(err, admintoken.ErrInvalid) {
		t.Fatalf("got %+v, %v, want nil and the store's error", got, err)
	}
}

func TestAllows(t *testing.T) {
	tests := []struct {
		name   string
		scopes []string
		scope  string
		want   bool
	}{
		{"star allows a scope", []string{"*"}, admintoken.ScopeTokensWrite, true},
		{"star allows dev", []string{"*"}, admintoken.ScopeDev, true},
		{"star among others", []string{"roles:read", "*"}, admintoken.ScopeLeasesRevoke, true},
		{"own scope", []string{"leases:read", "leases:revoke"}, admintoken.ScopeLeasesRevoke, true},
		{"read does not imply write", []string{"roles:read"}, admintoken.ScopeRolesWrite, false},
		{"write does not imply read", []string{"roles:write"}, admintoken.ScopeRolesRead, false},
		{"tokens:write is not everything", []string{"tokens:write"}, admintoken.ScopeLeasesRevoke, false},
		{"no scopes", nil, admintoken.ScopeRolesRead, false},
		{"case matters", []string{"Roles:Read"}, admintoken.ScopeRolesRead, false},
		{"prefix is not a scope", []string{"roles"}, admintoken.ScopeRolesRead, false},
		{"asking for star needs star", []string{"roles:read"}, admintoken.ScopeAll, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := admintoken.Token{Scopes: tt.scopes}
			if got := tok.Allows(tt.scope); got != tt.want {
				t.Errorf("got Allows(%q) = %v with scopes %v, want %v", tt.scope, got, tt.scopes, tt.want)
			}
		})
	}
}

// TestListNeverReturnsHashes: List blanks every hash, so the API can
// render its result as it is.
func TestListNeverReturnsHashes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if ts, err := f.svc.List(ctx); err != nil || len(ts) != 0 {
		t.Fatalf("empty store: got %v, %v, want nothing", ts, err)
	}
	a, _ := f.create(t, "a", "*")
	b, _ := f.create(t, "b", admintoken.ScopeRolesRead)
	ts, err := f.svc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 {
		t.Fatalf("got %d tokens, want 2", len(ts))
	}
	names := []string{ts[0].Name, ts[1].Name}
	slices.Sort(names)
	if !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("got names %v, want a and b", names)
	}
	out, err := json.Marshal(ts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{a, b} {
		sum := sha256.Sum256([]byte(tok[21:]))
		if strings.Contains(string(out), hex.EncodeToString(sum[:])) || strings.Contains(string(out), tok[21:]) {
			t.Errorf("List output %s carries a hash or a secret", out)
		}
	}
	for _, tk := range ts {
		if tk.Hash != "" {
			t.Errorf("token %s: got hash %q, want none", tk.ID, tk.Hash)
		}
	}
}

// TestListUndecodableRecord: one bad record fails the listing, naming it.
func TestListUndecodableRecord(t *testing.T) {
	f := newFixture(t)
	f.create(t, "a", "*")
	putRaw(t, f.store.Store, "00112233445566ff", "{not json")
	ts, err := f.svc.List(context.Background())
	if err == nil || !strings.Contains(err.Error(), "admin_tokens/00112233445566ff") {
		t.Fatalf("got %v, %v, want an error naming the bad record", ts, err)
	}
}

func TestAny(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if ok, err := admintoken.Any(ctx, f.store); err != nil || ok {
		t.Fatalf("empty store: got %v, %v, want false", ok, err)
	}
	_, rec := f.create(t, "a", "*")
	if ok, err := admintoken.Any(ctx, f.store); err != nil || !ok {
		t.Fatalf("after create: got %v, %v, want true", ok, err)
	}
	if err := f.svc.Delete(ctx, rec.ID, change); err != nil {
		t.Fatal(err)
	}
	if ok, err := admintoken.Any(ctx, f.store); err != nil || ok {
		t.Fatalf("after delete: got %v, %v, want false", ok, err)
	}
	f.store.viewErr = errDisk
	if _, err := admintoken.Any(ctx, f.store); !errors.Is(err, errDisk) {
		t.Fatalf("store error: got %v, want it returned", err)
	}
}

// TestPackageCreate: the unaudited Create (dev mode's) makes a working
// token and validates like the Service.
func TestPackageCreate(t *testing.T) {
	st := memory.New()
	ctx := context.Background()
	tok, rec, err := admintoken.Create(ctx, st, "dev-root", []string{"*"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !tokenRE.MatchString(tok) || rec.ID != tok[4:20] {
		t.Fatalf("got token %q for id %s", tok, rec.ID)
	}
	if _, err := admintoken.Authenticate(ctx, st, tok); err != nil {
		t.Errorf("authenticate: %v", err)
	}
	if _, _, err := admintoken.Create(ctx, st, "dev-root", []string{"nope"}, t0); fault.CodeOf(err) != fault.CodeInvalidRequest {
		t.Errorf("unknown scope: got %v, want invalid_request", err)
	}
}

func TestCreateWithValue(t *testing.T) {
	const value = "kfa_0e2e0e2e0e2e0e2e_e2eAdminTokenForKeyferryEndToEndTests000000"
	tests := []struct {
		name    string
		value   string
		scopes  []string
		wantErr bool
	}{
		{name: "valid", value: value, scopes: []string{"*"}},
		{name: "not a token", value: "hunter2", scopes: []string{"*"}, wantErr: true},
		{name: "trailing newline", value: value + "\n", scopes: []string{"*"}, wantErr: true},
		{name: "upper-case id", value: value[:4] + strings.ToUpper(value[4:20]) + value[20:], scopes: []string{"*"}, wantErr: true},
		{name: "unknown scope", value: value, scopes: []string{"root"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := memory.New()
			ctx := context.Background()
			rec, err := admintoken.CreateWithValue(ctx, st, tt.value, "dev-root", tt.scopes, t0)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got record %+v, want an error", rec)
				}
				if ok, _ := admintoken.Any(ctx, st); ok {
					t.Error("a token was stored")
				}
				if strings.Contains(err.Error(), tt.value) {
					t.Errorf("the error %q echoes the value", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := admintoken.Authenticate(ctx, st, tt.value)
			if err != nil || got.ID != "0e2e0e2e0e2e0e2e" {
				t.Fatalf("authenticate: got %+v, %v", got, err)
			}
			// A restarted dev server stores the same value again.
			if _, err := admintoken.CreateWithValue(ctx, st, tt.value, "dev-root", tt.scopes, t0); err != nil {
				t.Errorf("second CreateWithValue: %v", err)
			}
		})
	}
}
