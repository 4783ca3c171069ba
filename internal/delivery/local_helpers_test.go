package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/testutil"
)

// Fixtures. The key ID and secret carry TEST so the repo's credential
// scanner knows they are not real.
const (
	fixKeyID   = "ASIATESTKEYFERRY0001"
	fixSecret  = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYTESTSECRET1"
	fixSession = "IQoJb3JpZ2luX2VjEJr//////////wEaCXRlc3QtdG9rZW4TESTSESSION+/="
	fixAccount = "123456789012"
	fixRegion  = "eu-west-3"
	fixToken   = "test-container-token-0123456789abcdefghij"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fixCreds expires 1h30m and a fraction after now; the fraction checks
// that served expirations are truncated to whole seconds.
func fixCreds(now time.Time) *api.CredsResponse {
	return &api.CredsResponse{
		LeaseID: "lease-1", Role: "ci", Region: fixRegion,
		Credentials: api.Credentials{
			AccessKeyID: fixKeyID, SecretAccessKey: fixSecret, SessionToken: fixSession,
			Expiration: now.Add(90*time.Minute + 750*time.Millisecond), AccountID: fixAccount,
		},
	}
}

func staticSource(r *api.CredsResponse) Source {
	return SourceFunc(func(context.Context) (*api.CredsResponse, error) { return r, nil })
}

// failingSource fails with an error that carries secret, as a careless
// upstream might.
func failingSource(secret string) Source {
	return SourceFunc(func(context.Context) (*api.CredsResponse, error) {
		return nil, errors.New("broker said 500: " + secret)
	})
}

// logBuffer collects every log line, to assert that no secret is logged.
type logBuffer struct{ testutil.SyncBuffer }

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// assertNoSecrets fails if s contains a secret of the fixture credentials
// or one of the given tokens.
func assertNoSecrets(t *testing.T, what, s string, tokens ...string) {
	t.Helper()
	for _, secret := range append([]string{fixSecret, fixSession}, tokens...) {
		if secret != "" && strings.Contains(s, secret) {
			t.Errorf("%s contains a secret (%.8s…):\n%s", what, secret, s)
		}
	}
}

// newTestContainer is a container handler on src with the fixture token,
// logging to log (nil: nowhere), and the clock it reads, at t0.
func newTestContainer(t *testing.T, src Source, log *slog.Logger) (*ContainerHandler, *testutil.Clock) {
	t.Helper()
	clk := testutil.NewClock(t0)
	h, err := NewContainerHandler(ContainerConfig{Source: src, Token: fixToken, Now: clk.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return h, clk
}

// newTestLocal builds a LocalServer for in-process requests through
// Handler(); it is closed when the test ends.
func newTestLocal(t *testing.T, cfg LocalConfig) *LocalServer {
	t.Helper()
	if cfg.Endpoints == 0 {
		cfg.Endpoints = EndpointBoth
	}
	if cfg.ContainerToken == "" {
		cfg.ContainerToken = fixToken
	}
	if cfg.Source == nil {
		now := time.Now
		if cfg.Now != nil {
			now = cfg.Now
		}
		cfg.Source = staticSource(fixCreds(now()))
	}
	s, err := NewLocalServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// req builds a request as a local client would send it: from loopback,
// with Host 127.0.0.1. Options adjust it.
func req(method, target string, opts ...func(*http.Request)) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Host = "127.0.0.1:8080"
	for _, o := range opts {
		o(r)
	}
	return r
}

func withHeader(k, v string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Add(k, v) }
}

func withRemote(addr string) func(*http.Request) {
	return func(r *http.Request) { r.RemoteAddr = addr }
}

func withHost(h string) func(*http.Request) {
	return func(r *http.Request) { r.Host = h }
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// getWithToken serves h a GET of path carrying the fixture container
// token.
func getWithToken(h http.Handler, path string) *httptest.ResponseRecorder {
	return serve(h, req(http.MethodGet, path, withHeader("Authorization", fixToken)))
}

// imdsToken gets an IMDSv2 token through h.
func imdsToken(t *testing.T, h http.Handler, ttl string) string {
	t.Helper()
	w := serve(h, req(http.MethodPut, IMDSTokenPath, withHeader("X-aws-ec2-metadata-token-ttl-seconds", ttl)))
	if w.Code != http.StatusOK {
		t.Fatalf("PUT token: got %d %s, want 200", w.Code, w.Body)
	}
	return w.Body.String()
}

// wantAPIError checks status, the exact JSON content type the Go SDK
// needs to parse the body, and the code.
func wantAPIError(t *testing.T, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("got status %d (%s), want %d", w.Code, w.Body, status)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("got Content-Type %q, want exactly application/json", ct)
	}
	var e apiError
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q is not {code,message}: %v", w.Body, err)
	}
	if e.Code != code || e.Message == "" {
		t.Errorf("got code %q message %q, want code %q and a message", e.Code, e.Message, code)
	}
}
