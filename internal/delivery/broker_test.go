package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/client"
	"github.com/keyferry/keyferry/internal/tokensource"
)

// fakeBroker answers /v1/creds and /v1/creds/refresh like the real API.
type fakeBroker struct {
	mu           sync.Mutex
	creds        int
	refreshes    int
	refreshFails int // status to answer refreshes with; 0 = success
	n            int
}

func (f *fakeBroker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1/creds":
		var req api.CredsRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Token != "job-token" {
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"error":{"code":"token_malformed","message":"bad"}}`))
			return
		}
		f.creds++
	case "/v1/creds/refresh":
		var req api.RefreshRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if f.refreshFails != 0 {
			w.WriteHeader(f.refreshFails)
			_, _ = fmt.Fprintf(w, `{"error":{"code":"%s","message":"no"}}`, map[int]string{401: "lease_revoked", 503: "upstream_throttled"}[f.refreshFails])
			return
		}
		if req.RefreshHandle != fmt.Sprintf("handle-%d", f.n-1) {
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"error":{"code":"refresh_handle_reused","message":"reused"}}`))
			return
		}
		f.refreshes++
	}
	_ = json.NewEncoder(w).Encode(api.CredsResponse{
		LeaseID: "L", Role: "deploy", RefreshHandle: fmt.Sprintf("handle-%d", f.n),
		Credentials: api.Credentials{AccessKeyID: fmt.Sprintf("ASIA%d", f.n), SecretAccessKey: "s", SessionToken: "t", Expiration: time.Now().Add(time.Hour)},
	})
}

func TestBrokerSourceUsesRefreshHandles(t *testing.T) {
	fb := &fakeBroker{}
	srv := httptest.NewServer(fb)
	defer srv.Close()
	c, _ := client.New(srv.URL, client.Options{})
	b := &Broker{Client: c, Role: "deploy", Tokens: tokensource.Env{Name: "T", Getenv: func(string) string { return "job-token" }}}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := b.Credentials(ctx); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if fb.creds != 1 || fb.refreshes != 2 {
		t.Fatalf("got %d token exchanges and %d refreshes, want 1 and 2", fb.creds, fb.refreshes)
	}

	// A transient failure keeps the handle (retrying it is not reuse).
	fb.refreshFails = 503
	before := b.Handle()
	if _, err := b.Credentials(ctx); err == nil {
		t.Fatal("got nil error on a 503")
	}
	if b.Handle() != before {
		t.Error("handle dropped after a transient failure")
	}
	// A refusal (revoked) falls back to the job token.
	fb.refreshFails = 401
	var heard error
	b.OnRefreshError = func(err error) { heard = err }
	if _, err := b.Credentials(ctx); err != nil {
		t.Fatal(err)
	}
	if fb.creds != 2 || heard == nil {
		t.Errorf("got %d token exchanges (want 2), refresh error reported: %v", fb.creds, heard)
	}
}
