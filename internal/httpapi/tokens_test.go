package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/admintoken"
	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/lease"
	"github.com/keyferry/keyferry/internal/metrics"
	"github.com/keyferry/keyferry/internal/registry"
	"github.com/keyferry/keyferry/internal/storage/memory"
)

// tokenAPI is the API handler over a memory store and an audit.Memory,
// with one all-powerful admin token (created without an audit record).
type tokenAPI struct {
	h     http.Handler
	aw    *audit.Memory
	root  string
	store *memory.Store
}

func newTokenAPI(t *testing.T) *tokenAPI {
	t.Helper()
	st := memory.New()
	aw := audit.NewMemory()
	root, _, err := admintoken.Create(context.Background(), st, "root", []string{admintoken.ScopeAll}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(registry.Config{Store: st, Audit: aw})
	issuer := lease.NewIssuer(lease.IssuerConfig{Store: st, Audit: aw, Verifier: &rejectingVerifier{}, Roles: reg})
	leases := lease.NewLifecycle(lease.LifecycleConfig{Store: st, Audit: aw, Roles: reg})
	tokens := admintoken.New(admintoken.Config{Store: st, Audit: aw})
	h := New(Config{Issuer: issuer, Leases: leases, Registry: reg, Tokens: tokens, Metrics: metrics.New()})
	return &tokenAPI{h: h, aw: aw, root: root, store: st}
}

// do sends a request as token and decodes the JSON answer.
func (a *tokenAPI) do(t *testing.T, token, method, path, body string) (int, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, r)
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: status %d, body %q is not JSON: %v", method, path, w.Code, w.Body, err)
	}
	return w.Code, out
}

// wantError checks an error answer's status, code and message.
func wantError(t *testing.T, status int, body map[string]any, wantStatus int, wantCode, wantMsg string) {
	t.Helper()
	e, _ := body["error"].(map[string]any)
	if status != wantStatus || e["code"] != wantCode || e["message"] != wantMsg {
		t.Fatalf("got %d %v %q, want %d %s %q", status, e["code"], e["message"], wantStatus, wantCode, wantMsg)
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestCreateTokenEndpoint(t *testing.T) {
	a := newTokenAPI(t)
	status, body := a.do(t, a.root, "POST", "/v1/admin-tokens", `{"name":"oncall","scopes":["leases:read","leases:revoke"]}`)
	if status != http.StatusCreated || !slices.Equal(keys(body), []string{"id", "scopes", "token"}) {
		t.Fatalf("got %d %v, want 201 with id, token and scopes", status, body)
	}
	tok, _ := body["token"].(string)
	id, _ := body["id"].(string)
	if !strings.HasPrefix(tok, "kfa_"+id+"_") || len(tok) != 64 {
		t.Errorf("got token %q for id %q", tok, id)
	}
	evs := a.aw.Events()
	if len(evs) != 1 || evs[0].Type != audit.TypeTokenCreate || evs[0].Object != id || !strings.HasPrefix(evs[0].Actor, "admin_token:") ||
		evs[0].Message != "name oncall, scopes leases:read,leases:revoke" || evs[0].RequestID == "" {
		t.Fatalf("got events %+v, want one admin_token.create of %s by the root token", evs, id)
	}
	// The new token works, within its scopes.
	if status, _ := a.do(t, tok, "GET", "/v1/leases", ""); status != http.StatusOK {
		t.Errorf("new token on GET /v1/leases: got %d, want 200", status)
	}
	status, body = a.do(t, tok, "GET", "/v1/admin-tokens", "")
	wantError(t, status, body, http.StatusForbidden, "forbidden", `the admin token lacks scope "tokens:write"`)
}

func TestCreateTokenEndpointRefusals(t *testing.T) {
	known := "*, roles:read, roles:write, issuers:read, issuers:write, leases:read, leases:revoke, tokens:write, dev"
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{"unknown scope", `{"name":"x","scopes":["roles:admin"]}`, 400, "invalid_request", `unknown scope "roles:admin" (known: ` + known + `)`},
		{"no scopes", `{"name":"x","scopes":[]}`, 400, "invalid_request", "at least one scope is required"},
		{"missing scopes", `{"name":"x"}`, 400, "invalid_request", "at least one scope is required"},
		{"bad name", `{"name":"X Y","scopes":["*"]}`, 400, "invalid_name", "name must match ^[a-z0-9][a-z0-9._-]{0,62}$"},
		{"unknown field", `{"name":"x","scopes":["*"],"hash":"00"}`, 400, "unknown_field", `unknown field "hash"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTokenAPI(t)
			status, body := a.do(t, a.root, "POST", "/v1/admin-tokens", tt.body)
			wantError(t, status, body, tt.wantStatus, tt.wantCode, tt.wantMsg)
			if n := len(a.aw.Events()); n != 0 {
				t.Errorf("got %d audit events for a refused request, want none", n)
			}
		})
	}
}

// TestCreateTokenEndpointAuditDown: 503 and no token.
func TestCreateTokenEndpointAuditDown(t *testing.T) {
	a := newTokenAPI(t)
	a.aw.SetErr(errors.New("disk full"))
	status, body := a.do(t, a.root, "POST", "/v1/admin-tokens", `{"name":"oncall","scopes":["*"]}`)
	wantError(t, status, body, http.StatusServiceUnavailable, "audit_unavailable", "the audit log is unavailable; no token was created")
	ts, err := admintoken.List(context.Background(), a.store)
	if err != nil || len(ts) != 1 || ts[0].Name != "root" {
		t.Fatalf("got tokens %+v (%v), want only root", ts, err)
	}
}

func TestDeleteTokenEndpoint(t *testing.T) {
	a := newTokenAPI(t)
	_, body := a.do(t, a.root, "POST", "/v1/admin-tokens", `{"name":"oncall","scopes":["*"]}`)
	id, tok := body["id"].(string), body["token"].(string)

	status, body := a.do(t, a.root, "DELETE", "/v1/admin-tokens/"+id, "")
	if status != http.StatusOK || len(body) != 1 || body["deleted"] != id {
		t.Fatalf("got %d %v, want 200 {\"deleted\": %q}", status, body, id)
	}
	if evs := a.aw.Events(); len(evs) != 2 || evs[1].Type != audit.TypeTokenRevoke || evs[1].Object != id || evs[1].Message != "name oncall" {
		t.Fatalf("got events %+v, want the creation and the revocation of %s", evs, id)
	}
	status, body = a.do(t, tok, "GET", "/v1/roles", "")
	wantError(t, status, body, http.StatusUnauthorized, "unauthenticated", "the admin token is not valid")
}

// TestDeleteTokenEndpointMissing: 404, and no audit record.
func TestDeleteTokenEndpointMissing(t *testing.T) {
	for _, id := range []string{"0123456789abcdef", "not-an-id"} {
		t.Run(id, func(t *testing.T) {
			a := newTokenAPI(t)
			status, body := a.do(t, a.root, "DELETE", "/v1/admin-tokens/"+id, "")
			wantError(t, status, body, http.StatusNotFound, "not_found", `admin token "`+id+`" not found`)
			if n := len(a.aw.Events()); n != 0 {
				t.Errorf("got %d audit events, want none", n)
			}
		})
	}
}

// TestDeleteTokenEndpointAuditDown: 503, and the token still works.
func TestDeleteTokenEndpointAuditDown(t *testing.T) {
	a := newTokenAPI(t)
	_, body := a.do(t, a.root, "POST", "/v1/admin-tokens", `{"name":"oncall","scopes":["*"]}`)
	id, tok := body["id"].(string), body["token"].(string)
	a.aw.SetErr(errors.New("disk full"))
	status, body := a.do(t, a.root, "DELETE", "/v1/admin-tokens/"+id, "")
	wantError(t, status, body, http.StatusServiceUnavailable, "audit_unavailable", "the audit log is unavailable; the token was not deleted")
	if status, _ := a.do(t, tok, "GET", "/v1/roles", ""); status != http.StatusOK {
		t.Errorf("the token stopped working: got %d, want 200", status)
	}
}

func TestListTokensEndpoint(t *testing.T) {
	a := newTokenAPI(t)
	a.do(t, a.root, "POST", "/v1/admin-tokens", `{"name":"oncall","scopes":["leases:read"]}`)
	status, body := a.do(t, a.root, "GET", "/v1/admin-tokens", "")
	ts, _ := body["tokens"].([]any)
	if status != http.StatusOK || len(ts) != 2 {
		t.Fatalf("got %d %v, want 200 with 2 tokens", status, body)
	}
	for _, x := range ts {
		tk, _ := x.(map[string]any)
		if !slices.Equal(keys(tk), []string{"created_at", "id", "name", "scopes"}) {
			t.Errorf("got token fields %v, want id, name, scopes, created_at (no hash)", keys(tk))
		}
	}
}
