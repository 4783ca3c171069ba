// Package admintoken manages the bearer tokens that authenticate operators
// to keyferry's admin API. A token reads "kfa_<id>_<secret>": the id selects
// the stored record, and only a SHA-256 of the secret is stored, compared
// in constant time. Tokens carry scopes; "*" grants everything.
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

// ErrInvalid is returned for any token that does not authenticate; the
// caller must not learn which part was wrong.
var ErrInvalid = errors.New("admintoken: invalid token")

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

var tokenRE = regexp.MustCompile(`^kfa_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$`)

// Create makes a token, stores its hash, and returns the token string: the
// only time the secret exists outside the caller's hands.
func Create(ctx context.Context, s storage.Store, name string, scopes []string, now time.Time) (string, *Token, error) {
	for _, sc := range scopes {
		if !slices.Contains(AllScopes, sc) {
			return "", nil, fmt.Errorf("admintoken: unknown scope %q (known: %s)", sc, strings.Join(AllScopes, ", "))
		}
	}
	if len(scopes) == 0 {
		return "", nil, errors.New("admintoken: at least one scope is required")
	}
	var idb [8]byte
	var sec [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", nil, err
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return "", nil, err
	}
	secret := base64.RawURLEncoding.EncodeToString(sec[:])
	t := &Token{ID: hex.EncodeToString(idb[:]), Name: name, Scopes: scopes, Hash: hashSecret(secret), CreatedAt: now.UTC()}
	if err := put(ctx, s, t, true); err != nil {
		return "", nil, err
	}
	return "kfa_" + t.ID + "_" + secret, t, nil
}

// CreateWithValue stores a caller-chosen token value (dev mode's
// --dev-admin-token); the value must have the kfa_ format.
func CreateWithValue(ctx context.Context, s storage.Store, value, name string, scopes []string, now time.Time) (*Token, error) {
	m := tokenRE.FindStringSubmatch(value)
	if m == nil {
		return nil, errors.New("admintoken: a token must look like kfa_<16 hex>_<43 base64url chars>")
	}
	t := &Token{ID: m[1], Name: name, Scopes: scopes, Hash: hashSecret(m[2]), CreatedAt: now.UTC()}
	return t, put(ctx, s, t, false)
}

func put(ctx context.Context, s storage.Store, t *Token, create bool) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if create {
		return storage.Create(ctx, s, prefix+t.ID, b)
	}
	return s.Commit(ctx, nil, []storage.Op{storage.Put(prefix+t.ID, b)})
}

// Authenticate checks a presented token and returns its record.
func Authenticate(ctx context.Context, s storage.Store, presented string) (*Token, error) {
	m := tokenRE.FindStringSubmatch(presented)
	if m == nil {
		return nil, ErrInvalid
	}
	kv, err := s.Get(ctx, prefix+m[1])
	if errors.Is(err, storage.ErrNotFound) {
		// Compare anyway so a missing id costs the same as a bad secret.
		subtle.ConstantTimeCompare([]byte(hashSecret(m[2])), []byte(strings.Repeat("0", 64)))
		return nil, ErrInvalid
	}
	if err != nil {
		return nil, fmt.Errorf("admintoken: %w", err)
	}
	var t Token
	if err := json.Unmarshal(kv.Value, &t); err != nil {
		return nil, fmt.Errorf("admintoken: decode: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(hashSecret(m[2])), []byte(t.Hash)) != 1 {
		return nil, ErrInvalid
	}
	return &t, nil
}

// List returns every token record.
func List(ctx context.Context, s storage.Store) ([]Token, error) {
	var out []Token
	err := storage.Scan(ctx, s, storage.Range{Prefix: prefix}, func(kv storage.KV) (bool, error) {
		var t Token
		if err := json.Unmarshal(kv.Value, &t); err != nil {
			return false, err
		}
		t.Hash = ""
		out = append(out, t)
		return true, nil
	})
	return out, err
}

// Delete removes the token with id.
func Delete(ctx context.Context, s storage.Store, id string) error {
	return storage.Update(ctx, s, prefix+id, func(cur *storage.KV) ([]storage.Op, error) {
		if cur == nil {
			return nil, fmt.Errorf("admintoken: token %q: %w", id, storage.ErrNotFound)
		}
		return []storage.Op{storage.Del(prefix + id)}, nil
	})
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
