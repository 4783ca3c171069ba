// Package admintoken manages the bearer tokens that authenticate operators
// to keyferry's admin API. A token reads "kfa_<id>_<secret>": the id selects
// the stored record, and only a SHA-256 of the secret is stored, compared
// in constant time. Tokens carry scopes; "*" grants everything.
//
// Service is how tokens are granted and revoked: it writes the audit
// record of a creation or deletion before the change, so that no token
// exists, and none disappears, without its record.
package admintoken

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/fault"
	"github.com/keyferry/keyferry/internal/storage"
)

const prefix = "admin_tokens/"

// Scopes an admin token can hold.
const (
	ScopeAll          = "*"
	ScopeRolesRead    = "roles:read"
	ScopeRolesWrite   = "roles:write"
	ScopeIssuersRead  = "issuers:read"
	ScopeIssuersWrite = "issuers:write"
	ScopeLeasesRead   = "leases:read"
	ScopeLeasesRevoke = "leases:revoke"
	ScopeTokensWrite  = "tokens:write"
	ScopeDev          = "dev"
)

// AllScopes lists every scope, for validation and help text.
var AllScopes = []string{ScopeAll, ScopeRolesRead, ScopeRolesWrite, ScopeIssuersRead, ScopeIssuersWrite, ScopeLeasesRead, ScopeLeasesRevoke, ScopeTokensWrite, ScopeDev}

var (
	// ErrInvalid is returned for any token that does not authenticate; the
	// caller must not learn which part was wrong.
	ErrInvalid = errors.New("admintoken: invalid token")
	// ErrNotFound is returned by Service.Delete for a token that does not
	// exist (or an id that cannot name one).
	ErrNotFound = errors.New("admintoken: not found")
	// ErrAuditUnavailable is returned by Service.Create and Service.Delete
	// when the audit record could not be written: nothing was changed.
	ErrAuditUnavailable = errors.New("admintoken: audit log unavailable")
)

// invalid is the refusal of a bad name or scope.
func invalid(format string, args ...any) *fault.Error {
	return fault.Newf(fault.Invalid, fault.CodeInvalidRequest, format, args...)
}

// Token is a stored admin token (without its secret).
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Scopes    []string  `json:"scopes"`
	Hash      string    `json:"hash,omitempty"` // hex sha256 of the secret; never shown by the API
	CreatedAt time.Time `json:"created_at"`
}

// Allows reports whether t holds scope.
func (t *Token) Allows(scope string) bool {
	return slices.Contains(t.Scopes, ScopeAll) || slices.Contains(t.Scopes, scope)
}

var (
	tokenRE = regexp.MustCompile(`^kfa_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$`)
	idRE    = regexp.MustCompile(`^[0-9a-f]{16}$`)
	// nameRE is the rule of every name in the admin API. A name ends up in
	// an audit message, so it must not be able to read like more of it.
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
)

// parse splits a presented token into its id and secret. It accepts
// exactly "kfa_", 16 lower-case hex digits, "_" and 43 base64url
// characters, with nothing before or after (no whitespace either).
func parse(s string) (id, secret string, ok bool) {
	m := tokenRE.FindStringSubmatch(s)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// format is the inverse of parse.
func format(id, secret string) string { return "kfa_" + id + "_" + secret }

// newToken validates name and scopes and makes a token with a random id
// and secret.
func newToken(name string, scopes []string, now time.Time) (secret string, t *Token, err error) {
	if err := validate(name, scopes); err != nil {
		return "", nil, err
	}
	var idb [8]byte
	var sec [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", nil, fmt.Errorf("admintoken: %w", err)
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return "", nil, fmt.Errorf("admintoken: %w", err)
	}
	secret = base64.RawURLEncoding.EncodeToString(sec[:])
	return secret, &Token{ID: hex.EncodeToString(idb[:]), Name: name, Scopes: scopes, Hash: hashSecret(secret), CreatedAt: now.UTC()}, nil
}

func validate(name string, scopes []string) error {
	if !nameRE.MatchString(name) {
		return invalid("name must match %s", nameRE)
	}
	for _, sc := range scopes {
		if !slices.Contains(AllScopes, sc) {
			return invalid("unknown scope %q (known: %s)", sc, strings.Join(AllScopes, ", "))
		}
	}
	if len(scopes) == 0 {
		return invalid("at least one scope is required")
	}
	return nil
}

// Create makes a token, stores its hash, and returns the token string: the
// only time the secret exists outside the caller's hands. It writes no
// audit record: dev mode's token uses it, every other token is made by
// Service.Create.
func Create(ctx context.Context, s storage.Store, name string, scopes []string, now time.Time) (string, *Token, error) {
	secret, t, err := newToken(name, scopes, now)
	if err != nil {
		return "", nil, err
	}
	if err := put(ctx, s, t, true); err != nil {
		return "", nil, err
	}
	return format(t.ID, secret), t, nil
}

// CreateWithValue stores a caller-chosen token value (dev mode's
// --dev-admin-token); the value must have the kfa_ format. Like Create it
// writes no audit record.
func CreateWithValue(ctx context.Context, s storage.Store, value, name string, scopes []string, now time.Time) (*Token, error) {
	id, secret, ok := parse(value)
	if !ok {
		return nil, errors.New("admintoken: a token must look like kfa_<16 hex>_<43 base64url chars>")
	}
	if err := validate(name, scopes); err != nil {
		return nil, err
	}
	t := &Token{ID: id, Name: name, Scopes: scopes, Hash: hashSecret(secret), CreatedAt: now.UTC()}
	return t, put(ctx, s, t, false)
}

func put(ctx context.Context, s storage.Store, t *Token, create bool) error {
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("admintoken: encode: %w", err)
	}
	if create {
		err = storage.Create(ctx, s, prefix+t.ID, b)
	} else {
		err = s.Commit(ctx, nil, []storage.Op{storage.Put(prefix+t.ID, b)})
	}
	if err != nil {
		return fmt.Errorf("admintoken: store: %w", err)
	}
	return nil
}

// Authenticate checks a presented token and returns its record.
func Authenticate(ctx context.Context, s storage.Store, presented string) (*Token, error) {
	id, secret, ok := parse(presented)
	if !ok {
		return nil, ErrInvalid
	}
	kv, err := s.Get(ctx, prefix+id)
	if errors.Is(err, storage.ErrNotFound) {
		// Compare anyway so a missing id costs the same as a bad secret.
		subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(strings.Repeat("0", 64)))
		return nil, ErrInvalid
	}
	if err != nil {
		return nil, fault.Wrap(fmt.Errorf("admintoken: %w", err), fault.Unavailable, fault.CodeStoreUnavailable, "the token store is unavailable")
	}
	var t Token
	if err := json.Unmarshal(kv.Value, &t); err != nil {
		return nil, fmt.Errorf("admintoken: decode: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(t.Hash)) != 1 {
		return nil, ErrInvalid
	}
	return &t, nil
}

// List returns every token record, without hashes.
func List(ctx context.Context, s storage.Store) ([]Token, error) {
	var out []Token
	err := storage.Scan(ctx, s, storage.Range{Prefix: prefix}, func(kv storage.KV) (bool, error) {
		var t Token
		if err := json.Unmarshal(kv.Value, &t); err != nil {
			return false, fmt.Errorf("admintoken: decode %s: %w", kv.Key, err)
		}
		t.Hash = ""
		out = append(out, t)
		return true, nil
	})
	if err != nil && fault.CodeOf(err) == "" && !errors.Is(err, context.Canceled) {
		err = fault.Wrap(err, fault.Unavailable, fault.CodeStoreUnavailable, "the token store is unavailable")
	}
	return out, err
}

// Any reports whether at least one token exists (server init is done).
func Any(ctx context.Context, s storage.Store) (bool, error) {
	page, err := s.List(ctx, storage.Range{Prefix: prefix, Limit: 1, KeysOnly: true})
	return len(page.KVs) > 0, err
}

func hashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// Config wires a Service. Store and Audit are required.
type Config struct {
	Store storage.Store
	Audit audit.Writer
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

// Service creates, deletes, authenticates and lists admin tokens. Create
// and Delete audit first: the record of a grant or a revocation is
// written before the change, and if it cannot be written nothing changes
// (ErrAuditUnavailable). If the store write then fails, a second record
// of the same type with decision "deny" says the change did not happen,
// and the store's error is returned. It is safe for concurrent use.
type Service struct {
	store storage.Store
	audit audit.Writer
	now   func() time.Time
}

// New returns a Service.
func New(cfg Config) *Service {
	s := &Service{store: cfg.Store, audit: cfg.Audit, now: cfg.Now}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Create makes a token with name and scopes, audits its creation, stores
// it, and returns the token string (the only time the secret exists
// outside the caller's hands) and its record, without the hash. A bad
// name or scope is refused (fault.Invalid) and not audited. Every
// refusal is a *fault.Error; one for want of the audit record wraps
// ErrAuditUnavailable.
func (s *Service) Create(ctx context.Context, name string, scopes []string, o audit.Origin) (string, *Token, error) {
	secret, t, err := newToken(name, scopes, s.now())
	if err != nil {
		return "", nil, err
	}
	ev := event(o, audit.TypeTokenCreate, t.ID, "name "+t.Name+", scopes "+strings.Join(t.Scopes, ","))
	if err := s.audit.Write(ctx, ev); err != nil {
		return "", nil, fault.Wrap(fmt.Errorf("%w: %w", ErrAuditUnavailable, err), fault.Unavailable, fault.CodeAuditUnavailable,
			"the audit log is unavailable; no token was created")
	}
	if err := put(ctx, s.store, t, true); err != nil {
		return "", nil, storeFault(s.failed(ctx, o, audit.TypeTokenCreate, t.ID, audit.ReasonStoreError, "the token was not created: the store write failed", err))
	}
	out := *t
	out.Hash = ""
	return format(t.ID, secret), &out, nil
}

// Delete audits the deletion of the token with id, then deletes it. A
// token that does not exist is ErrNotFound, and is not audited: nothing
// was revoked. A token deleted by someone else between the record and
// the deletion gets a second record and ErrNotFound too.
func (s *Service) Delete(ctx context.Context, id string, o audit.Origin) error {
	notFound := fault.Wrap(ErrNotFound, fault.NotFound, fault.CodeNotFound, fmt.Sprintf("admin token %q not found", id))
	if !idRE.MatchString(id) {
		return notFound
	}
	kv, err := s.store.Get(ctx, prefix+id)
	if errors.Is(err, storage.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return fmt.Errorf("admintoken: %w", err)
	}
	msg := "undecodable record"
	var t Token
	if json.Unmarshal(kv.Value, &t) == nil {
		msg = "name " + t.Name // a record that does not decode can still be deleted
	}
	if err := s.audit.Write(ctx, event(o, audit.TypeTokenRevoke, id, msg)); err != nil {
		return fault.Wrap(fmt.Errorf("%w: %w", ErrAuditUnavailable, err), fault.Unavailable, fault.CodeAuditUnavailable,
			"the audit log is unavailable; the token was not deleted")
	}
	// Delete what was read and recorded; if it changed meanwhile, look
	// again: gone is not found, anything else is deleted as it now is.
	err = storage.Update(ctx, s.store, prefix+id, func(cur *storage.KV) ([]storage.Op, error) {
		if cur == nil {
			return nil, storage.ErrNotFound
		}
		return []storage.Op{storage.Del(prefix + id)}, nil
	})
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return s.failed(ctx, o, audit.TypeTokenRevoke, id, audit.ReasonNotFound, "the token was not deleted: it no longer exists", notFound)
	case err != nil:
		return storeFault(s.failed(ctx, o, audit.TypeTokenRevoke, id, audit.ReasonStoreError, "the token was not deleted: the store write failed",
			fmt.Errorf("admintoken: store: %w", err)))
	}
	return nil
}

// storeFault is the refusal when the store failed after the record.
func storeFault(err error) error {
	return fault.Wrap(err, fault.Unavailable, fault.CodeStoreUnavailable, "the store is unavailable; the change was not made")
}

// Authenticate checks a presented token and returns its record; see
// the package-level Authenticate.
func (s *Service) Authenticate(ctx context.Context, presented string) (*Token, error) {
	return Authenticate(ctx, s.store, presented)
}

// List returns every token record, without hashes.
func (s *Service) List(ctx context.Context) ([]Token, error) {
	return List(ctx, s.store)
}

// failed records that a change whose record was written did not happen,
// and returns cause (joined with the audit error if that record failed
// too). The record is written even if ctx was cancelled: the first one
// must not stand alone.
func (s *Service) failed(ctx context.Context, o audit.Origin, typ, id, reason, msg string, cause error) error {
	if err := s.audit.Write(context.WithoutCancel(ctx), audit.NotApplied(event(o, typ, id, ""), reason, msg)); err != nil {
		return errors.Join(cause, fmt.Errorf("admintoken: record the failure: %w", err))
	}
	return cause
}

func event(o audit.Origin, typ, id, msg string) *audit.Event {
	return o.Stamp(&audit.Event{Type: typ, Object: id, Message: msg})
}
