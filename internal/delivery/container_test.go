package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/testutil"
)

func TestContainerDocumentIsExact(t *testing.T) {
	clk := testutil.NewClock(t0)
	for _, tc := range []struct {
		name    string
		roleARN string
		account string
		want    string
	}{
		{"full", "arn:aws:iam::123456789012:role/ci", fixAccount,
			`{"AccessKeyId":"` + fixKeyID + `","SecretAccessKey":"` + fixSecret + `","Token":"` + fixSession +
				`","Expiration":"2030-01-02T04:34:05Z","AccountId":"123456789012","RoleArn":"arn:aws:iam::123456789012:role/ci"}`},
		{"no optional fields", "", "",
			`{"AccessKeyId":"` + fixKeyID + `","SecretAccessKey":"` + fixSecret + `","Token":"` + fixSession +
				`","Expiration":"2030-01-02T04:34:05Z"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := fixCreds(clk.Now())
			r.Credentials.AccountID = tc.account
			s := newTestLocal(t, LocalConfig{Endpoints: EndpointContainer, RoleARN: tc.roleARN, Source: staticSource(r), Now: clk.Now})
			w := getWithToken(s.Handler(), DefaultContainerPath)
			if w.Code != http.StatusOK {
				t.Fatalf("got %d %s, want 200", w.Code, w.Body)
			}
			if got := w.Body.String(); got != tc.want {
				t.Errorf("got body\n%s\nwant\n%s", got, tc.want)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("got Content-Type %q, want application/json", ct)
			}
			if cl := w.Header().Get("Content-Length"); cl != fmt.Sprint(len(tc.want)) {
				t.Errorf("got Content-Length %q, want %d", cl, len(tc.want))
			}
			if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("got Cache-Control %q, want no-store", cc)
			}
		})
	}
}

func TestAttackMissingContainerTokenIsRefused(t *testing.T) {
	s := newTestLocal(t, LocalConfig{})
	for _, name := range []string{"absent", "empty"} {
		t.Run(name, func(t *testing.T) {
			r := req(http.MethodGet, DefaultContainerPath)
			if name == "empty" {
				r.Header["Authorization"] = []string{""}
			}
			w := serve(s.Handler(), r)
			wantAPIError(t, w, http.StatusUnauthorized, "missing_authorization")
			assertNoSecrets(t, "body", w.Body.String(), fixToken)
		})
	}
}

// TestAttackWrongContainerTokenIsRefused covers the near misses a timing
// or guessing attack goes through. The comparison is crypto/subtle's
// ConstantTimeCompare; this test checks the behaviour, not the timing.
func TestAttackWrongContainerTokenIsRefused(t *testing.T) {
	s := newTestLocal(t, LocalConfig{})
	flip := func(i int) string {
		b := []byte(fixToken)
		b[i] ^= 0x01
		return string(b)
	}
	for _, tc := range []struct{ name, value string }{
		{"other token", NewToken()},
		{"first byte differs", flip(0)},
		{"last byte differs", flip(len(fixToken) - 1)},
		{"prefix", fixToken[:len(fixToken)-1]},
		{"extended", fixToken + "x"},
		{"bearer prefix", "Bearer " + fixToken},
		{"upper case", strings.ToUpper(fixToken)},
		{"trailing space", fixToken + " "},
		{"one char", "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := serve(s.Handler(), req(http.MethodGet, DefaultContainerPath, withHeader("Authorization", tc.value)))
			wantAPIError(t, w, http.StatusForbidden, "invalid_authorization")
			assertNoSecrets(t, "body", w.Body.String(), fixToken)
		})
	}
}

func TestAttackDuplicateAuthorizationHeadersAreRefused(t *testing.T) {
	s := newTestLocal(t, LocalConfig{})
	w := serve(s.Handler(), req(http.MethodGet, DefaultContainerPath,
		withHeader("Authorization", "wrong"), withHeader("Authorization", fixToken)))
	wantAPIError(t, w, http.StatusForbidden, "invalid_authorization")
}

func TestContainerOnlyGET(t *testing.T) {
	s := newTestLocal(t, LocalConfig{})
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodHead} {
		w := serve(s.Handler(), req(m, DefaultContainerPath, withHeader("Authorization", fixToken)))
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != http.MethodGet {
			t.Errorf("%s: got %d Allow %q, want 405 Allow GET", m, w.Code, w.Header().Get("Allow"))
		}
	}
}

func TestContainerSourceErrorsAreCallerSafe(t *testing.T) {
	const leaky = "broker said 500: token=" + fixSession
	for _, tc := range []struct {
		name   string
		src    Source
		status int
		code   string
	}{
		{"broker error", SourceFunc(func(context.Context) (*api.CredsResponse, error) { return nil, errors.New(leaky) }),
			http.StatusBadGateway, "credentials_unavailable"},
		{"deadline", SourceFunc(func(context.Context) (*api.CredsResponse, error) {
			return nil, fmt.Errorf("waiting: %w", context.DeadlineExceeded)
		}), http.StatusServiceUnavailable, "credentials_timeout"},
		{"incomplete", staticSource(&api.CredsResponse{Credentials: api.Credentials{AccessKeyID: fixKeyID, Expiration: t0.Add(time.Hour)}}),
			http.StatusBadGateway, "credentials_invalid"},
		{"no expiration", staticSource(&api.CredsResponse{Credentials: api.Credentials{AccessKeyID: fixKeyID, SecretAccessKey: fixSecret}}),
			http.StatusBadGateway, "credentials_invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs logBuffer
			// Not wrapped in Cached: the handler must cope with any Source.
			h, _ := newTestContainer(t, tc.src, logs.logger())
			w := getWithToken(h, DefaultContainerPath)
			wantAPIError(t, w, tc.status, tc.code)
			assertNoSecrets(t, "body", w.Body.String())
			if strings.Contains(w.Body.String(), "broker said") {
				t.Errorf("body %s carries the internal cause", w.Body)
			}
		})
	}
}

func TestContainerRefusesExpiredCredentials(t *testing.T) {
	h, clk := newTestContainer(t, staticSource(fixCreds(t0)), nil)
	if w := getWithToken(h, "/"); w.Code != http.StatusOK {
		t.Fatalf("got %d, want 200", w.Code)
	}
	clk.Advance(2 * time.Hour)
	wantAPIError(t, getWithToken(h, "/"), http.StatusServiceUnavailable, "credentials_expired")
}

func TestContainerRendersOncePerCredentialChange(t *testing.T) {
	var cur atomic.Pointer[api.CredsResponse]
	cur.Store(fixCreds(t0))
	h, _ := newTestContainer(t, SourceFunc(func(context.Context) (*api.CredsResponse, error) {
		c := *cur.Load() // a new pointer every call: equality is by value
		return &c, nil
	}), nil)
	get := func() *document {
		t.Helper()
		if w := getWithToken(h, "/"); w.Code != http.StatusOK {
			t.Fatalf("got %d, want 200", w.Code)
		}
		return h.docs.cur.Load()
	}
	d1 := get()
	if d2 := get(); d2 != d1 {
		t.Error("same credentials were rendered again")
	}
	next := fixCreds(t0)
	next.Credentials.AccessKeyID = "ASIATESTKEYFERRY0002"
	cur.Store(next)
	d3 := get()
	if d3 == d1 || !strings.Contains(string(d3.body), "ASIATESTKEYFERRY0002") {
		t.Errorf("new credentials were not rendered: %s", d3.body)
	}
}

func TestNewContainerHandlerValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  ContainerConfig
		want []string
	}{
		{"nothing", ContainerConfig{}, []string{"no credential source", "at least 16"}},
		{"newline token", ContainerConfig{Source: staticSource(nil), Token: fixToken + "\n"}, []string{"printable ASCII"}},
		{"space token", ContainerConfig{Source: staticSource(nil), Token: "Bearer " + fixToken}, []string{"printable ASCII"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewContainerHandler(tc.cfg)
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to mention %q", err, w)
				}
			}
		})
	}
}
