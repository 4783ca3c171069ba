package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyferry/keyferry/internal/admintoken"
	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/fault"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/lease"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
	"github.com/keyferry/keyferry/internal/registry"
)

// routeCase is one request to one route, the answer it must get and the
// calls the fakes must have received (in order; none when nil).
type routeCase struct {
	name string
	// req is sent with the root admin token when the route takes one and
	// req names no token.
	req        request
	setup      func(*fakeAPI)
	wantStatus int
	// wantCode, when set, is the error code of the answer; wantMsg, when
	// set, its message.
	wantCode  string
	wantMsg   string
	wantCalls []call
	check     func(t *testing.T, w *httptest.ResponseRecorder)
}

// TestRoutes runs each route's table of cases. Every endpoint New
// registers must have a table here, and every table a registered route;
// every case must be served by the route its table is for (as the HTTP
// metrics label it).
func TestRoutes(t *testing.T) {
	tables := map[string][]routeCase{
		"GET /healthz":                  healthzCases(),
		"GET /readyz":                   readyzCases(),
		"GET /metrics":                  metricsCases(),
		"POST /v1/creds":                credsCases(),
		"POST /v1/creds/refresh":        refreshCases(),
		"POST /sts":                     stsCases("/sts"),
		"POST /sts/":                    stsCases("/sts/"),
		"GET /v1/roles":                 listRolesCases(),
		"GET /v1/roles/{name}":          getRoleCases(),
		"PUT /v1/roles/{name}":          putRoleCases(),
		"DELETE /v1/roles/{name}":       deleteRoleCases(),
		"POST /v1/roles/{name}/test":    testRoleCases(),
		"GET /v1/issuers":               listIssuersCases(),
		"GET /v1/issuers/{name}":        getIssuerCases(),
		"PUT /v1/issuers/{name}":        putIssuerCases(),
		"DELETE /v1/issuers/{name}":     deleteIssuerCases(),
		"GET /v1/leases":                listLeasesCases(),
		"GET /v1/leases/{id}":           getLeaseCases(),
		"POST /v1/leases/{id}/revoke":   revokeLeaseCases(),
		"POST /v1/leases/{id}/{action}": leaseActionCases(),
		"POST /v1/leases/revoke":        bulkRevokeCases(),
		"POST /v1/orphans/sweep":        sweepCases(),
		"GET /v1/admin-tokens":          listTokensCases(),
		"POST /v1/admin-tokens":         createTokenCases(),
		"DELETE /v1/admin-tokens/{id}":  deleteTokenCases(),
		"POST /v1/dev/token":            devTokenCases(),
		"/dev/oidc/":                    devOIDCCases(),
		"/":                             unmatchedCases(),
	}
	patterns := registered(t)
	for p := range tables {
		if !slices.Contains(patterns, p) {
			t.Errorf("a table tests %q, which New does not register", p)
		}
	}
	scopes := map[string]string{}
	for _, rt := range routes() {
		scopes[rt.pattern] = rt.scope
	}
	for _, p := range patterns {
		cases, ok := tables[p]
		if !ok {
			t.Errorf("route %q has no test table", p)
			continue
		}
		t.Run(p, func(t *testing.T) {
			for _, tt := range cases {
				t.Run(tt.name, func(t *testing.T) {
					runRouteCase(t, p, scopes[p], tt)
				})
			}
		})
	}
}

// registered returns the pattern of every endpoint New registers, dev
// mode on.
func registered(t *testing.T) []string {
	t.Helper()
	a := newFakeAPI(t, nil)
	s := &server{Config: a.cfg, log: slog.New(slog.DiscardHandler)}
	var out []string
	s.register(func(pattern string, _ http.Handler) {
		if slices.Contains(out, pattern) {
			t.Errorf("%q is registered twice", pattern)
		}
		out = append(out, pattern)
	})
	return out
}

// label is the route label the HTTP metrics give the requests pattern
// serves ("" when they are not instrumented).
func label(pattern string) string {
	switch pattern {
	case "/":
		return "unmatched"
	case "GET /metrics", "/dev/oidc/":
		return ""
	}
	return pattern
}

func runRouteCase(t *testing.T, pattern, scope string, tt routeCase) {
	t.Helper()
	a := newFakeAPI(t, tt.setup)
	req := tt.req
	if scope != "" && req.token == "" {
		req.token = rootToken.value
	}
	w := a.do(t, req)
	if w.Code != tt.wantStatus {
		t.Fatalf("got status %d (%s), want %d", w.Code, w.Body, tt.wantStatus)
	}
	if tt.wantCode != "" {
		code, msg := apiErrorOf(t, w)
		if code != tt.wantCode {
			t.Errorf("got code %q (%q), want %q", code, msg, tt.wantCode)
		}
		if tt.wantMsg != "" && msg != tt.wantMsg {
			t.Errorf("got message %q, want %q", msg, tt.wantMsg)
		}
	}
	if diff := cmp.Diff(tt.wantCalls, a.log.take(), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("calls differ (-want +got):\n%s", diff)
	}
	var want []string
	if l := label(pattern); l != "" {
		want = []string{l}
	}
	if got := a.servedBy(t); !slices.Equal(got, want) {
		t.Errorf("served by %q, want %q", got, want)
	}
	if tt.check != nil {
		tt.check(t, w)
	}
}

// wantJSON checks that the answer's body is v as writeJSON renders it.
func wantJSON(v any) func(*testing.T, *httptest.ResponseRecorder) {
	return func(t *testing.T, w *httptest.ResponseRecorder) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := w.Body.String(), string(b)+"\n"; got != want {
			t.Errorf("got body:\n%s\nwant:\n%s", got, want)
		}
		if got := w.Header().Get("Content-Type"); got != "application/json" {
			t.Errorf("got Content-Type %q, want application/json", got)
		}
		if got := w.Header().Get("Cache-Control"); got != "no-store" {
			t.Errorf("got Cache-Control %q, want no-store", got)
		}
	}
}

// wantHeader checks one header of the answer.
func wantHeader(name, value string) func(*testing.T, *httptest.ResponseRecorder) {
	return func(t *testing.T, w *httptest.ResponseRecorder) {
		t.Helper()
		if got := w.Header().Get(name); got != value {
			t.Errorf("got %s %q, want %q", name, got, value)
		}
	}
}

// Errors the fakes answer with.
var (
	errAuditDown = fault.New(fault.Unavailable, fault.CodeAuditUnavailable, "the audit log is unavailable; nothing was done")
	errStoreDown = fault.New(fault.Unavailable, fault.CodeStoreUnavailable, "the store is unavailable")
	// errInternal is not a fault: its text must not reach the caller.
	errInternal = errors.New("dial tcp 10.0.0.7:5432: password authentication failed for user kf")
)

// internalError is the case of a fake failing with errInternal.
func internalError(req request, calls ...call) routeCase {
	return routeCase{name: "internal error", req: req, setup: func(a *fakeAPI) { a.failWith(errInternal) },
		wantStatus: 500, wantCode: "internal_error", wantMsg: "internal error", wantCalls: calls,
		check: func(t *testing.T, w *httptest.ResponseRecorder) {
			if strings.Contains(w.Body.String(), "10.0.0.7") {
				t.Errorf("the answer leaks the internal error: %s", w.Body)
			}
		}}
}

// auditDown is the case of a fake failing for want of the audit log.
func auditDown(req request, calls ...call) routeCase {
	return routeCase{name: "audit unavailable", req: req, setup: func(a *fakeAPI) { a.failWith(errAuditDown) },
		wantStatus: 503, wantCode: "audit_unavailable", wantMsg: "the audit log is unavailable; nothing was done", wantCalls: calls}
}

// failWith makes every fake's domain call fail with err.
func (a *fakeAPI) failWith(err error) {
	a.issuance.err, a.leases.err, a.registry.err, a.tokens.err = err, err, err, err
}

// bodyRefusals are the refusals of a route that reads a JSON body, valid
// being a body it accepts: none reaches a fake.
func bodyRefusals(line, valid string) []routeCase {
	return []routeCase{
		{name: "not JSON", req: request{line: line, body: `{x}`}, wantStatus: 400, wantCode: "invalid_json",
			wantMsg: "request body is not valid JSON (at byte 2)"},
		{name: "cut short", req: request{line: line, body: `{"`}, wantStatus: 400, wantCode: "invalid_json",
			wantMsg: "request body is not a valid JSON object: unexpected EOF"},
		{name: "not an object", req: request{line: line, body: `[]`}, wantStatus: 400, wantCode: "invalid_json"},
		{name: "unknown field", req: request{line: line, body: `{"bogus":1}`}, wantStatus: 400, wantCode: "unknown_field",
			wantMsg: `unknown field "bogus"`},
		{name: "trailing data", req: request{line: line, body: valid + `{}`}, wantStatus: 400, wantCode: "invalid_json",
			wantMsg: "request body has data after the JSON object"},
		{name: "form content type", req: request{line: line, body: valid, ctype: "application/x-www-form-urlencoded"},
			wantStatus: 415, wantCode: "unsupported_media_type", wantMsg: "send the body as application/json"},
		{name: "body too large", req: request{line: line, body: `{"x":"` + strings.Repeat("x", 64<<10) + `"}`},
			wantStatus: 413, wantCode: "body_too_large", wantMsg: "request body exceeds 65536 bytes"},
	}
}

// emptyBodyRefusal is the refusal of a route whose body is required.
func emptyBodyRefusal(line string) routeCase {
	return routeCase{name: "empty body", req: request{line: line}, wantStatus: 400, wantCode: "invalid_json",
		wantMsg: "request body is empty: send a JSON object"}
}

func cases(groups ...[]routeCase) []routeCase { return slices.Concat(groups...) }

const invalidNameMsg = "name must match ^[a-z0-9][a-z0-9._-]{0,62}$"

// badNames are path names every {name} route refuses before any call.
func badNames(method, prefix, suffix, body string) []routeCase {
	var out []routeCase
	for _, n := range []struct{ name, value string }{
		{"upper-case name", "Deploy"},
		{"name starting with a dot", ".deploy"},
		{"name of 64 characters", strings.Repeat("a", 64)},
		{"name with an encoded slash", "a%2Fb"},
		{"name with an encoded space", "a%20b"},
	} {
		out = append(out, routeCase{name: n.name, req: request{line: method + " " + prefix + n.value + suffix, body: body},
			wantStatus: 400, wantCode: "invalid_name", wantMsg: invalidNameMsg})
	}
	return out
}

const (
	leaseID    = "01JNB4Q7YV0000000000000002" // minimalLease's
	leaseIDMsg = "a lease id is 26 characters of Crockford base32"
)

// badLeaseIDs are lease ids every {id} lease route refuses before any
// call.
func badLeaseIDs(method, suffix, body string) []routeCase {
	var out []routeCase
	for _, n := range []struct{ name, value string }{
		{"id of 25 characters", leaseID[:25]},
		{"id of 27 characters", leaseID + "0"},
		{"lower-case id", strings.ToLower(leaseID)},
		{"id with a U", "01JNB4Q7YV000000000000000U"},
		{"id with an I", "01JNB4Q7YV000000000000000I"},
	} {
		out = append(out, routeCase{name: n.name, req: request{line: method + " /v1/leases/" + n.value + suffix, body: body},
			wantStatus: 400, wantCode: "invalid_name", wantMsg: leaseIDMsg})
	}
	return out
}

func healthzCases() []routeCase {
	return []routeCase{
		{name: "ok", req: request{line: "GET /healthz"}, wantStatus: 200, check: wantJSON(api.Status{Status: "ok"})},
		{name: "not ready is still alive", req: request{line: "GET /healthz"}, setup: func(a *fakeAPI) { a.readyErr = errStoreDown },
			wantStatus: 200, check: wantJSON(api.Status{Status: "ok"})},
		{name: "HEAD", req: request{line: "HEAD /healthz"}, wantStatus: 200},
	}
}

func readyzCases() []routeCase {
	return []routeCase{
		{name: "ready", req: request{line: "GET /readyz"}, wantStatus: 200, wantCalls: []call{c("Ready")},
			check: wantJSON(api.Status{Status: "ready"})},
		{name: "not ready", req: request{line: "GET /readyz"}, setup: func(a *fakeAPI) { a.readyErr = errInternal },
			wantStatus: 503, wantCalls: []call{c("Ready")}, check: wantJSON(api.Status{Status: "not ready"})},
		{name: "no readiness check", req: request{line: "GET /readyz"}, setup: func(a *fakeAPI) { a.cfg.Ready = nil },
			wantStatus: 200, check: wantJSON(api.Status{Status: "ready"})},
	}
}

func metricsCases() []routeCase {
	return []routeCase{
		{name: "ok", req: request{line: "GET /metrics"}, wantStatus: 200, check: func(t *testing.T, w *httptest.ResponseRecorder) {
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("got Content-Type %q, want text/plain", ct)
			}
			if !strings.Contains(w.Body.String(), "# TYPE keyferry_") {
				t.Errorf("got no keyferry metric in:\n%s", w.Body)
			}
		}},
	}
}

// issuedFixture is what the fake issues.
func issuedFixture() *lease.Issued {
	l := minimalLease()
	l.SessionName, l.MaxExpiresAt = "gl-302", t0(300)
	l.Identity = identity.Summary{Issuer: "https://gitlab.example.com", Subject: "project_path:group/app:ref_type:branch:ref:main", Project: "group/app", Job: "302"}
	return &lease.Issued{
		Lease:       &l,
		Credentials: awsprov.Credentials{AccessKeyID: "ASIAEXAMPLE000000002", SecretAccessKey: "s3cret", SessionToken: "session", Expiration: t0(60)},
		Region:      "eu-west-1", RefreshHandle: "kfr_first", Audience: []string{"https://keyferry.example.com"},
	}
}

// issuedCredentials are issuedFixture's credentials as the API shows them.
func issuedCredentials() api.Credentials {
	return api.Credentials{AccessKeyID: "ASIAEXAMPLE000000002", SecretAccessKey: "s3cret", SessionToken: "session", Expiration: t0(60)}
}

func issueCall(role, token string, ttl time.Duration) call {
	return c("Issue", lease.IssueRequest{Role: role, Token: token, TTL: ttl, RequestID: testRequestID, SourceAddr: testPeer})
}

func credsCases() []routeCase {
	line := "POST /v1/creds"
	valid := `{"role":"deploy","token":"eyJ.eyJ.sig","ttl_seconds":900}`
	issued := func(a *fakeAPI) { a.issuance.issued = issuedFixture() }
	return cases([]routeCase{
		{name: "issued", req: request{line: line, body: valid}, setup: issued, wantStatus: 200,
			wantCalls: []call{issueCall("deploy", "eyJ.eyJ.sig", 900*time.Second)},
			check: wantJSON(api.CredsResponse{
				LeaseID: leaseID, Role: "deploy", Credentials: issuedCredentials(), Region: "eu-west-1",
				RefreshHandle: "kfr_first", MaxExpiration: t0(300),
			})},
		{name: "no content type", req: request{line: line, body: valid, ctype: "-"}, setup: issued, wantStatus: 200,
			wantCalls: []call{issueCall("deploy", "eyJ.eyJ.sig", 900*time.Second)}},
		{name: "json with charset", req: request{line: line, body: valid, ctype: "application/json; charset=utf-8"}, setup: issued,
			wantStatus: 200, wantCalls: []call{issueCall("deploy", "eyJ.eyJ.sig", 900*time.Second)}},
		{name: "no ttl is the role's", req: request{line: line, body: `{"role":"deploy","token":"t"}`}, setup: issued,
			wantStatus: 200, wantCalls: []call{issueCall("deploy", "t", 0)}},
		{name: "no refresh handle, no max expiration", req: request{line: line, body: valid},
			setup:      func(a *fakeAPI) { a.issuance.issued = issuedFixture(); a.issuance.issued.RefreshHandle = "" },
			wantStatus: 200, wantCalls: []call{issueCall("deploy", "eyJ.eyJ.sig", 900*time.Second)},
			check: func(t *testing.T, w *httptest.ResponseRecorder) {
				if b := w.Body.String(); strings.Contains(b, "refresh_handle") || strings.Contains(b, "max_expiration") {
					t.Errorf("got %s, want neither refresh_handle nor max_expiration", b)
				}
			}},
		// A ttl_seconds too large for a time.Duration reaches the issuer
		// as the longest duration, which refuses it as out of range;
		// it must not wrap around into a negative or short ttl.
		{name: "ttl overflowing a duration", req: request{line: line, body: `{"role":"deploy","token":"t","ttl_seconds":18446744074}`},
			setup: issued, wantStatus: 200, wantCalls: []call{issueCall("deploy", "t", time.Duration(math.MaxInt64))}},
		{name: "no role", req: request{line: line, body: `{"token":"t"}`}, wantStatus: 400, wantCode: "invalid_request", wantMsg: "role is required"},
		{name: "bad role name", req: request{line: line, body: `{"role":"Deploy","token":"t"}`}, wantStatus: 400,
			wantCode: "invalid_name", wantMsg: "role must match ^[a-z0-9][a-z0-9._-]{0,62}$"},
		{name: "negative ttl", req: request{line: line, body: `{"role":"deploy","token":"t","ttl_seconds":-1}`}, wantStatus: 400,
			wantCode: "invalid_request", wantMsg: "ttl_seconds must not be negative"},
		{name: "ttl not an integer", req: request{line: line, body: `{"role":"deploy","ttl_seconds":1.5}`}, wantStatus: 400,
			wantCode: "invalid_json", wantMsg: `field "ttl_seconds" must be int64`},
		{name: "ttl beyond int64", req: request{line: line, body: `{"role":"deploy","ttl_seconds":1e19}`}, wantStatus: 400,
			wantCode: "invalid_json"},
		emptyBodyRefusal(line),
		{name: "refused", req: request{line: line, body: valid},
			setup: func(a *fakeAPI) {
				a.issuance.err = fault.New(fault.Forbidden, lease.CodeNoMatchingRole, `role "deploy" does not accept this token`)
			},
			wantStatus: 403, wantCode: "no_matching_role", wantMsg: `role "deploy" does not accept this token`,
			wantCalls: []call{issueCall("deploy", "eyJ.eyJ.sig", 900*time.Second)}},
		{name: "throttled", req: request{line: line, body: valid},
			setup: func(a *fakeAPI) {
				a.issuance.err = &fault.Error{Kind: fault.Unavailable, Code: "upstream_throttled", Message: "slow down", RetryAfter: 1500 * time.Millisecond}
			},
			wantStatus: 503, wantCode: "upstream_throttled", wantCalls: []call{issueCall("deploy", "eyJ.eyJ.sig", 900*time.Second)},
			check: wantHeader("Retry-After", "2")},
		auditDown(request{line: line, body: valid}, issueCall("deploy", "eyJ.eyJ.sig", 900*time.Second)),
		internalError(request{line: line, body: valid}, issueCall("deploy", "eyJ.eyJ.sig", 900*time.Second)),
	}, bodyRefusals(line, valid))
}

func refreshCall(handle string) call {
	return c("Refresh", lease.RefreshRequest{Handle: handle, RequestID: testRequestID, SourceAddr: testPeer})
}

func refreshCases() []routeCase {
	line := "POST /v1/creds/refresh"
	valid := `{"refresh_handle":"kfr_first"}`
	refreshed := func(a *fakeAPI) {
		a.issuance.refreshed = &lease.Refreshed{Issued: *issuedFixture(), Handle: "kfr_second"}
	}
	return cases([]routeCase{
		{name: "refreshed", req: request{line: line, body: valid}, setup: refreshed, wantStatus: 200,
			wantCalls: []call{refreshCall("kfr_first")},
			check: wantJSON(api.CredsResponse{
				LeaseID: leaseID, Role: "deploy", Credentials: issuedCredentials(), Region: "eu-west-1",
				RefreshHandle: "kfr_second", MaxExpiration: t0(300),
			})},
		// The issuer refuses an empty handle; the handler passes it on.
		{name: "empty handle", req: request{line: line, body: `{}`},
			setup: func(a *fakeAPI) {
				a.issuance.err = fault.New(fault.Unauthenticated, lease.CodeInvalidRefreshHandle, "the refresh handle is not valid")
			},
			wantStatus: 401, wantCode: "invalid_refresh_handle", wantCalls: []call{refreshCall("")}},
		{name: "handle reused", req: request{line: line, body: valid},
			setup: func(a *fakeAPI) {
				a.issuance.err = fault.New(fault.Forbidden, lease.CodeRefreshHandleReused, "the refresh handle was already used: the lease is revoked")
			},
			wantStatus: 403, wantCode: "refresh_handle_reused", wantMsg: "the refresh handle was already used: the lease is revoked",
			wantCalls: []call{refreshCall("kfr_first")}},
		{name: "handle not a string", req: request{line: line, body: `{"refresh_handle":1}`}, wantStatus: 400, wantCode: "invalid_json"},
		emptyBodyRefusal(line),
		auditDown(request{line: line, body: valid}, refreshCall("kfr_first")),
		internalError(request{line: line, body: valid}, refreshCall("kfr_first")),
	}, bodyRefusals(line, valid))
}

// stsRoles gives the fake registry the roles deploy (named like stsARN's
// role) and deploy-b (with stsARN as role_arn), both assume_role, and
// deploy-users, an iam_user role, which the STS endpoint never uses.
func stsRoles(a *fakeAPI) {
	withRegistry(a)
	users := namedRole("deploy-users")
	users.AWS = policy.AWS{Type: policy.TypeIAMUser, Groups: []string{"ci"}}
	a.addRoles(namedRole("deploy-b"), users)
}

func stsIssueCall(ttl time.Duration) call {
	return c("Issue", lease.IssueRequest{Candidates: []string{"deploy", "deploy-b"}, Token: "eyJ.eyJ.sig", TTL: ttl,
		RequestID: testRequestID, SourceAddr: testPeer})
}

func stsCases(path string) []routeCase {
	line := "POST " + path
	form := "application/x-www-form-urlencoded"
	lookups := []call{c("Role", "deploy"), c("Roles")}
	return []routeCase{
		{name: "issued", req: request{line: line, body: stsForm("DurationSeconds", "3600").Encode(), ctype: form},
			setup: func(a *fakeAPI) { stsRoles(a); a.issuance.issued = issuedFixture() }, wantStatus: 200,
			wantCalls: append(lookups, stsIssueCall(time.Hour)),
			check: func(t *testing.T, w *httptest.ResponseRecorder) {
				var got stsResponse
				if err := xml.Unmarshal(w.Body.Bytes(), &got); err != nil {
					t.Fatalf("body %q: %v", w.Body, err)
				}
				want := stsResponse{XMLName: got.XMLName, XMLNS: stsXMLNS, Meta: stsMeta{RequestID: testRequestID}, Result: stsResult{
					Subject: "project_path:group/app:ref_type:branch:ref:main", Audience: "https://keyferry.example.com",
					User:     stsUser{ARN: "arn:aws:sts::123456789012:assumed-role/deploy/gl-302", ID: "AROAKEYFERRY:gl-302"},
					Provider: "https://gitlab.example.com",
					Credentials: stsCreds{AccessKeyID: "ASIAEXAMPLE000000002", SecretAccessKey: "s3cret", SessionToken: "session",
						Expiration: "2025-03-01T13:00:00Z"},
				}}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("response differs (-want +got):\n%s", diff)
				}
				if ct := w.Header().Get("Content-Type"); ct != "text/xml" {
					t.Errorf("got Content-Type %q, want text/xml", ct)
				}
			}},
		{name: "no duration is the role's", req: request{line: line, body: stsForm().Encode(), ctype: form},
			setup: func(a *fakeAPI) { stsRoles(a); a.issuance.issued = issuedFixture() }, wantStatus: 200,
			wantCalls: append(lookups, stsIssueCall(0))},
		// An unknown RoleArn still has its token verified (and the denial
		// audited): the issuer gets no candidate.
		{name: "unknown role arn", req: request{line: line, body: stsForm("RoleArn", "arn:aws:iam::123456789012:role/other").Encode(), ctype: form},
			setup: func(a *fakeAPI) {
				a.issuance.err = fault.New(fault.Forbidden, lease.CodeNoMatchingRole, "no role accepts this token")
			},
			wantStatus: 403, wantCode: "AccessDenied",
			wantMsg: "Not authorized to perform sts:AssumeRoleWithWebIdentity: no role accepts this token",
			wantCalls: []call{c("Role", "other"), c("Roles"),
				c("Issue", lease.IssueRequest{Token: "eyJ.eyJ.sig", RequestID: testRequestID, SourceAddr: testPeer})}},
		{name: "iam_user role named like the role arn", req: request{line: line,
			body: stsForm("RoleArn", "arn:aws:iam::123456789012:role/deploy-users").Encode(), ctype: form},
			setup: func(a *fakeAPI) {
				stsRoles(a)
				a.issuance.err = fault.New(fault.Forbidden, lease.CodeNoMatchingRole, "no role accepts this token")
			},
			wantStatus: 403, wantCode: "AccessDenied", wantCalls: []call{c("Role", "deploy-users"), c("Roles"),
				c("Issue", lease.IssueRequest{Token: "eyJ.eyJ.sig", RequestID: testRequestID, SourceAddr: testPeer})}},
		{name: "json content type", req: request{line: line, body: `{}`}, wantStatus: 400, wantCode: "InvalidParameterValue",
			wantMsg: "send the request form-encoded (application/x-www-form-urlencoded)"},
		{name: "no action", req: request{line: line, body: stsForm("Action", "\x00delete").Encode(), ctype: form},
			wantStatus: 400, wantCode: "MissingAction"},
		{name: "other action", req: request{line: line, body: stsForm("Action", "AssumeRole").Encode(), ctype: form},
			wantStatus: 400, wantCode: "InvalidAction"},
		{name: "other version", req: request{line: line, body: stsForm("Version", "2010-01-01").Encode(), ctype: form},
			wantStatus: 400, wantCode: "InvalidParameterValue", wantMsg: "Version must be 2011-06-15"},
		{name: "duration out of range", req: request{line: line, body: stsForm("DurationSeconds", "43201").Encode(), ctype: form},
			wantStatus: 400, wantCode: "ValidationError", wantMsg: "DurationSeconds must be an integer from 900 to 43200"},
		{name: "not a form", req: request{line: line, body: "a=%zz", ctype: form}, wantStatus: 400, wantCode: "MalformedQueryString"},
		{name: "body too large", req: request{line: line, body: stsForm("ProviderId", strings.Repeat("x", 64<<10)).Encode(), ctype: form},
			wantStatus: 413, wantCode: "RequestEntityTooLarge"},
		{name: "audit unavailable", req: request{line: line, body: stsForm().Encode(), ctype: form},
			setup:      func(a *fakeAPI) { stsRoles(a); a.failWith(errAuditDown) },
			wantStatus: 503, wantCode: "ServiceUnavailable", wantCalls: append(lookups, stsIssueCall(0))},
		{name: "internal error", req: request{line: line, body: stsForm().Encode(), ctype: form},
			setup:      func(a *fakeAPI) { stsRoles(a); a.failWith(errInternal) },
			wantStatus: 500, wantCode: "InternalFailure", wantMsg: "internal error", wantCalls: append(lookups, stsIssueCall(0))},
	}
}

// matchRole is the role "deploy" of the fake registry's default roles: a
// GitLab role for one project.
func matchRole() policy.Role {
	r := minimalRole()
	r.Match = map[string]policy.Values{"project_path": {"group/app"}}
	return r
}

// addRoles compiles roles into the fake registry, as its issuers'
// kinds allow.
func (a *fakeAPI) addRoles(roles ...policy.Role) {
	a.t.Helper()
	for _, ro := range roles {
		c, err := a.registry.compile(ro)
		if err != nil {
			a.t.Fatalf("compile role %s: %v", ro.Name, err)
		}
		a.registry.roles[ro.Name] = c
	}
}

// withRegistry gives the fake registry the gitlab and dev issuers, and
// the role "deploy" (matchRole).
func withRegistry(a *fakeAPI) {
	a.registry.issuers["gitlab"] = fullIssuer()
	a.registry.issuers["dev"] = minimalIssuer()
	a.addRoles(matchRole())
}

// compiled returns ro as the registry stores it.
func compiled(t *testing.T, ro policy.Role) policy.Role {
	t.Helper()
	c, err := policy.Compile(ro, identity.KindGitLab)
	if err != nil {
		t.Fatal(err)
	}
	return c.Role()
}

func listRolesCases() []routeCase {
	return []routeCase{
		{name: "roles", req: request{line: "GET /v1/roles"}, setup: stsRoles,
			wantStatus: 200, wantCalls: []call{c("Roles")},
			check: func(t *testing.T, w *httptest.ResponseRecorder) {
				var got api.RoleList
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, r := range got.Roles {
					names = append(names, r.Name)
				}
				if want := []string{"deploy", "deploy-b", "deploy-users"}; !slices.Equal(names, want) {
					t.Errorf("got roles %q, want %q", names, want)
				}
			}},
		{name: "none", req: request{line: "GET /v1/roles"}, wantStatus: 200, wantCalls: []call{c("Roles")},
			check: wantJSON(api.RoleList{Roles: []api.Role{}})},
	}
}

func getRoleCases() []routeCase {
	return cases([]routeCase{
		{name: "found", req: request{line: "GET /v1/roles/deploy"}, setup: withRegistry, wantStatus: 200,
			wantCalls: []call{c("Role", "deploy")},
			check:     func(t *testing.T, w *httptest.ResponseRecorder) { wantJSON(RoleToAPI(compiled(t, matchRole())))(t, w) }},
		{name: "not found", req: request{line: "GET /v1/roles/nope"}, setup: withRegistry, wantStatus: 404,
			wantCode: "not_found", wantMsg: `role "nope" not found`, wantCalls: []call{c("Role", "nope")}},
	}, badNames("GET", "/v1/roles/", "", ""))
}

// roleBody is the body of a role write: matchRole without its name.
const roleBody = `{"issuer":"gitlab","match":{"project_path":["group/app"]},"aws":{"type":"assume_role","role_arn":"arn:aws:iam::123456789012:role/deploy"}}`

func namedRole(name string) policy.Role {
	r := matchRole()
	r.Name = name
	return r
}

func putRoleCases() []routeCase {
	writeResult := func(outcome string, ro policy.Role) func(*testing.T, *httptest.ResponseRecorder) {
		return func(t *testing.T, w *httptest.ResponseRecorder) {
			wantJSON(api.WriteResult[api.Role]{Outcome: outcome, Object: RoleToAPI(compiled(t, ro))})(t, w)
		}
	}
	created := func(a *fakeAPI) { withRegistry(a); a.registry.outcome = registry.Created }
	changed := namedRole("deploy")
	changed.Description = "changed"
	changedBody := strings.Replace(roleBody, `{"issuer"`, `{"description":"changed","issuer"`, 1)
	line := "PUT /v1/roles/new"
	return cases([]routeCase{
		{name: "created", req: request{line: line, body: roleBody}, setup: created, wantStatus: 200,
			wantCalls: []call{c("PutRole", namedRole("new"), rootOrigin("")), c("Role", "new")},
			check:     writeResult("created", namedRole("new"))},
		{name: "name in the body", req: request{line: line, body: `{"name":"new",` + roleBody[1:]}, setup: created, wantStatus: 200,
			wantCalls: []call{c("PutRole", namedRole("new"), rootOrigin("")), c("Role", "new")}},
		{name: "updated", req: request{line: "PUT /v1/roles/deploy", body: changedBody},
			setup: func(a *fakeAPI) { withRegistry(a); a.registry.outcome = registry.Updated }, wantStatus: 200,
			wantCalls: []call{c("PutRole", changed, rootOrigin("")), c("Role", "deploy")},
			check:     writeResult("updated", changed)},
		{name: "dry run of a new role", req: request{line: line + "?dry_run=true", body: roleBody}, setup: withRegistry,
			wantStatus: 200, wantCalls: []call{c("CompileRole", namedRole("new")), c("Role", "new")},
			check: writeResult("created", namedRole("new"))},
		{name: "dry run of the same role", req: request{line: "PUT /v1/roles/deploy?dry_run=1", body: roleBody}, setup: withRegistry,
			wantStatus: 200, wantCalls: []call{c("CompileRole", namedRole("deploy")), c("Role", "deploy")},
			check: writeResult("unchanged", namedRole("deploy"))},
		{name: "dry run of a change", req: request{line: "PUT /v1/roles/deploy?dry_run=true", body: changedBody}, setup: withRegistry,
			wantStatus: 200, wantCalls: []call{c("CompileRole", changed), c("Role", "deploy")},
			check: writeResult("updated", changed)},
		{name: "deleted by another request before it is shown", req: request{line: line, body: roleBody},
			setup:      func(a *fakeAPI) { created(a); a.registry.vanish = true },
			wantStatus: 409, wantCode: "conflict", wantMsg: `role "new" was written, then deleted by another request before it could be shown`,
			wantCalls: []call{c("PutRole", namedRole("new"), rootOrigin("")), c("Role", "new")}},
		{name: "dry_run=false writes", req: request{line: line + "?dry_run=false", body: roleBody}, setup: created, wantStatus: 200,
			wantCalls: []call{c("PutRole", namedRole("new"), rootOrigin("")), c("Role", "new")}},
		{name: "dry run refused", req: request{line: line + "?dry_run=true", body: roleBody},
			setup: func(a *fakeAPI) {
				withRegistry(a)
				a.registry.compileErr = &fault.Error{Kind: fault.Unprocessable, Code: registry.CodeInvalidObject, Message: `role "new" is invalid`,
					Details: []string{"aws.role_arn: required"}}
			},
			wantStatus: 422, wantCode: "invalid_object", wantMsg: `role "new" is invalid`, wantCalls: []call{c("CompileRole", namedRole("new"))},
			check: func(t *testing.T, w *httptest.ResponseRecorder) {
				var got api.ErrorResponse
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || !slices.Equal(got.Error.Details, []string{"aws.role_arn: required"}) {
					t.Errorf("got details %q (%v), want the fault's", got.Error.Details, err)
				}
			}},
		{name: "bad dry_run", req: request{line: line + "?dry_run=maybe", body: roleBody}, wantStatus: 400,
			wantCode: "invalid_request", wantMsg: "dry_run must be true or false"},
		{name: "body names another role", req: request{line: line, body: `{"name":"other",` + roleBody[1:]}, wantStatus: 400,
			wantCode: "invalid_request", wantMsg: `body names role "other" but the path names "new"`},
		{name: "refused", req: request{line: line, body: roleBody},
			setup: func(a *fakeAPI) {
				a.registry.err = &fault.Error{Kind: fault.Unprocessable, Code: registry.CodeInvalidObject, Message: `role "new" is invalid`}
			},
			wantStatus: 422, wantCode: "invalid_object", wantCalls: []call{c("PutRole", namedRole("new"), rootOrigin(""))}},
		emptyBodyRefusal(line),
		auditDown(request{line: line, body: roleBody}, c("PutRole", namedRole("new"), rootOrigin(""))),
		internalError(request{line: line, body: roleBody}, c("PutRole", namedRole("new"), rootOrigin(""))),
	}, bodyRefusals(line, roleBody), badNames("PUT", "/v1/roles/", "", roleBody))
}

func deleteRoleCases() []routeCase {
	line := "DELETE /v1/roles/deploy"
	deleteCall := c("DeleteRole", "deploy", rootOrigin(""))
	return cases([]routeCase{
		{name: "deleted", req: request{line: line}, wantStatus: 200, wantCalls: []call{deleteCall}, check: wantJSON(api.Deleted{Deleted: "deploy"})},
		{name: "not found", req: request{line: line}, setup: func(a *fakeAPI) {
			a.registry.err = fault.New(fault.NotFound, registry.CodeNotFound, `role "deploy" not found`)
		}, wantStatus: 404, wantCode: "not_found", wantMsg: `role "deploy" not found`, wantCalls: []call{deleteCall}},
		auditDown(request{line: line}, deleteCall),
		internalError(request{line: line}, deleteCall),
	}, badNames("DELETE", "/v1/roles/", "", ""))
}

func testRoleCases() []routeCase {
	line := "POST /v1/roles/deploy/test"
	gitlabID := &identity.Identity{Issuer: "gitlab", IssuerURL: "https://gitlab.example.com", Kind: identity.KindGitLab,
		Subject: "project_path:group/app:ref_type:branch:ref:main", Claims: map[string]any{"project_path": "group/app"}}
	otherID := &identity.Identity{Issuer: "dev", Kind: identity.KindGitLab, Claims: map[string]any{"project_path": "group/app"}}
	verified := func(a *fakeAPI) {
		withRegistry(a)
		a.verifier.ids = map[string]*identity.Identity{"good": gitlabID, "other": otherID}
	}
	decoded := func(check func(*testing.T, api.RoleTestResponse)) func(*testing.T, *httptest.ResponseRecorder) {
		return func(t *testing.T, w *httptest.ResponseRecorder) {
			var got api.RoleTestResponse
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Role != "deploy" {
				t.Errorf("got role %q, want deploy", got.Role)
			}
			check(t, got)
		}
	}
	wantChecks := func(allowed bool, checks ...api.RoleCheck) func(*testing.T, api.RoleTestResponse) {
		return func(t *testing.T, got api.RoleTestResponse) {
			if got.Allowed != allowed {
				t.Errorf("got allowed %v, want %v", got.Allowed, allowed)
			}
			if diff := cmp.Diff(checks, got.Checks, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(api.RoleCheck{}, "Detail")); diff != "" {
				t.Errorf("checks differ (-want +got):\n%s", diff)
			}
		}
	}
	return cases([]routeCase{
		{name: "claims allowed", req: request{line: line, body: `{"claims":{"project_path":"group/app"}}`}, setup: withRegistry,
			wantStatus: 200, wantCalls: []call{c("Role", "deploy")},
			check: decoded(wantChecks(true, api.RoleCheck{Name: "project_path", OK: true}))},
		{name: "claims refused", req: request{line: line, body: `{"claims":{"project_path":"group/other"}}`}, setup: withRegistry,
			wantStatus: 200, wantCalls: []call{c("Role", "deploy")},
			check: decoded(wantChecks(false, api.RoleCheck{Name: "project_path"}))},
		{name: "token allowed", req: request{line: line, body: `{"token":"good"}`}, setup: verified, wantStatus: 200,
			wantCalls: []call{c("Role", "deploy"), c("Verify", "good")},
			check: decoded(func(t *testing.T, got api.RoleTestResponse) {
				wantChecks(true, api.RoleCheck{Name: "project_path", OK: true})(t, got)
				if got.Identity == nil || got.Identity.Subject != gitlabID.Subject {
					t.Errorf("got identity %+v, want the token's", got.Identity)
				}
			})},
		{name: "token of another issuer", req: request{line: line, body: `{"token":"other"}`}, setup: verified, wantStatus: 200,
			wantCalls: []call{c("Role", "deploy"), c("Verify", "other")},
			check:     decoded(wantChecks(false, api.RoleCheck{Name: "issuer"}, api.RoleCheck{Name: "project_path", OK: true}))},
		{name: "token not verified", req: request{line: line, body: `{"token":"bad"}`}, setup: verified, wantStatus: 200,
			wantCalls: []call{c("Role", "deploy"), c("Verify", "bad")},
			check: decoded(func(t *testing.T, got api.RoleTestResponse) {
				want := &api.Error{Code: "unknown_issuer", Message: "the token's issuer is not trusted"}
				if diff := cmp.Diff(want, got.TokenError); diff != "" || got.Allowed {
					t.Errorf("got allowed %v, token error differs (-want +got):\n%s", got.Allowed, diff)
				}
			})},
		{name: "verifier failed", req: request{line: line, body: `{"token":"bad"}`},
			setup: func(a *fakeAPI) { withRegistry(a); a.verifier.err = errInternal }, wantStatus: 200,
			wantCalls: []call{c("Role", "deploy"), c("Verify", "bad")},
			check: decoded(func(t *testing.T, got api.RoleTestResponse) {
				want := &api.Error{Code: "internal_error", Message: "token verification failed"}
				if diff := cmp.Diff(want, got.TokenError); diff != "" {
					t.Errorf("token error differs (-want +got):\n%s", diff)
				}
			})},
		{name: "both token and claims", req: request{line: line, body: `{"token":"good","claims":{}}`}, wantStatus: 400,
			wantCode: "invalid_request", wantMsg: "give exactly one of token and claims"},
		{name: "neither token nor claims", req: request{line: line, body: `{}`}, wantStatus: 400,
			wantCode: "invalid_request", wantMsg: "give exactly one of token and claims"},
		{name: "role not found", req: request{line: "POST /v1/roles/nope/test", body: `{"claims":{}}`}, setup: withRegistry,
			wantStatus: 404, wantCode: "not_found", wantMsg: `role "nope" not found`, wantCalls: []call{c("Role", "nope")}},
		emptyBodyRefusal(line),
	}, bodyRefusals(line, `{"token":"good"}`), badNames("POST", "/v1/roles/", "/test", `{"token":"good"}`))
}

func listIssuersCases() []routeCase {
	return []routeCase{
		{name: "issuers", req: request{line: "GET /v1/issuers"}, setup: withRegistry, wantStatus: 200, wantCalls: []call{c("Issuers")},
			check: wantJSON(api.IssuerList{Issuers: issuersToAPI([]identity.Issuer{minimalIssuer(), fullIssuer()})})},
		{name: "none", req: request{line: "GET /v1/issuers"}, wantStatus: 200, wantCalls: []call{c("Issuers")},
			check: wantJSON(api.IssuerList{Issuers: []api.Issuer{}})},
	}
}

func getIssuerCases() []routeCase {
	return cases([]routeCase{
		{name: "found", req: request{line: "GET /v1/issuers/gitlab"}, setup: withRegistry, wantStatus: 200,
			wantCalls: []call{c("Issuer", "gitlab")}, check: wantJSON(IssuerToAPI(fullIssuer()))},
		{name: "not found", req: request{line: "GET /v1/issuers/nope"}, setup: withRegistry, wantStatus: 404,
			wantCode: "not_found", wantMsg: `issuer "nope" not found`, wantCalls: []call{c("Issuer", "nope")}},
	}, badNames("GET", "/v1/issuers/", "", ""))
}

// validIssuer is an issuer the registry's validation accepts.
func validIssuer() identity.Issuer {
	return identity.Issuer{Name: "gitlab", Kind: identity.KindGitLab, URL: "https://gitlab.example.com",
		Audiences: []string{"https://keyferry.example.com"}}
}

// golden returns a golden file, for a request body.
func golden(name string) string {
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		panic(err)
	}
	return string(bytes.TrimSpace(b))
}

func putIssuerCases() []routeCase {
	full := golden("issuer_full")
	unnamed := strings.Replace(full, `"name":"gitlab",`, "", 1)
	if unnamed == full {
		panic("issuer_full.json has no name to remove")
	}
	changed := validIssuer()
	changed.ReplayMaxUses = 2
	writeResult := func(outcome string, is identity.Issuer) func(*testing.T, *httptest.ResponseRecorder) {
		return wantJSON(api.WriteResult[api.Issuer]{Outcome: outcome, Object: IssuerToAPI(is)})
	}
	valid := validIssuer()
	validBody, err := json.Marshal(IssuerToAPI(valid))
	if err != nil {
		panic(err)
	}
	withValid := func(a *fakeAPI) { a.registry.issuers["gitlab"] = valid }
	line := "PUT /v1/issuers/gitlab"
	return cases([]routeCase{
		{name: "created", req: request{line: line, body: full}, setup: func(a *fakeAPI) { a.registry.outcome = registry.Created },
			wantStatus: 200, wantCalls: []call{c("PutIssuer", fullIssuer(), rootOrigin("")), c("Issuer", "gitlab")},
			check: writeResult("created", fullIssuer())},
		{name: "name from the path", req: request{line: line, body: unnamed}, setup: func(a *fakeAPI) { a.registry.outcome = registry.Created },
			wantStatus: 200, wantCalls: []call{c("PutIssuer", fullIssuer(), rootOrigin("")), c("Issuer", "gitlab")}},
		{name: "dry run of a new issuer", req: request{line: line + "?dry_run=true", body: string(validBody)}, wantStatus: 200,
			wantCalls: []call{c("Issuer", "gitlab")}, check: writeResult("created", valid)},
		{name: "dry run of the same issuer", req: request{line: line + "?dry_run=true", body: string(validBody)}, setup: withValid,
			wantStatus: 200, wantCalls: []call{c("Issuer", "gitlab")}, check: writeResult("unchanged", valid)},
		{name: "dry run of a change", req: request{line: line + "?dry_run=true", body: string(validBody)},
			setup: func(a *fakeAPI) { withValid(a); a.registry.issuers["gitlab"] = changed }, wantStatus: 200,
			wantCalls: []call{c("Issuer", "gitlab")}, check: writeResult("updated", valid)},
		{name: "dry run of an issuer with problems", req: request{line: line + "?dry_run=true", body: full}, wantStatus: 422,
			wantCode: "invalid_object", wantMsg: `issuer "gitlab" is invalid`,
			check: func(t *testing.T, w *httptest.ResponseRecorder) {
				var got api.ErrorResponse
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || len(got.Error.Details) != 3 {
					t.Errorf("got details %q (%v), want every problem of the issuer", got.Error.Details, err)
				}
			}},
		{name: "dry run of an invalid issuer", req: request{line: line + "?dry_run=true", body: `{"kind":"gitlab"}`},
			wantStatus: 422, wantCode: "invalid_object"},
		{name: "bad dry_run", req: request{line: line + "?dry_run=yes", body: full}, wantStatus: 400,
			wantCode: "invalid_request", wantMsg: "dry_run must be true or false"},
		{name: "body names another issuer", req: request{line: "PUT /v1/issuers/other", body: full}, wantStatus: 400,
			wantCode: "invalid_request", wantMsg: `body names issuer "gitlab" but the path names "other"`},
		{name: "in use", req: request{line: line, body: full},
			setup: func(a *fakeAPI) {
				a.registry.err = fault.New(fault.Conflict, registry.CodeInUse, `issuer "gitlab" is in use`)
			},
			wantStatus: 409, wantCode: "in_use", wantCalls: []call{c("PutIssuer", fullIssuer(), rootOrigin(""))}},
		emptyBodyRefusal(line),
		auditDown(request{line: line, body: full}, c("PutIssuer", fullIssuer(), rootOrigin(""))),
		internalError(request{line: line, body: full}, c("PutIssuer", fullIssuer(), rootOrigin(""))),
	}, bodyRefusals(line, full), badNames("PUT", "/v1/issuers/", "", full))
}

func deleteIssuerCases() []routeCase {
	line := "DELETE /v1/issuers/gitlab"
	deleteCall := c("DeleteIssuer", "gitlab", rootOrigin(""))
	return cases([]routeCase{
		{name: "deleted", req: request{line: line}, wantStatus: 200, wantCalls: []call{deleteCall}, check: wantJSON(api.Deleted{Deleted: "gitlab"})},
		{name: "in use", req: request{line: line},
			setup: func(a *fakeAPI) {
				a.registry.err = fault.New(fault.Conflict, registry.CodeInUse, `issuer "gitlab" is used by role "deploy"`)
			},
			wantStatus: 409, wantCode: "in_use", wantMsg: `issuer "gitlab" is used by role "deploy"`, wantCalls: []call{deleteCall}},
		{name: "not found", req: request{line: line},
			setup: func(a *fakeAPI) {
				a.registry.err = fault.New(fault.NotFound, registry.CodeNotFound, `issuer "gitlab" not found`)
			},
			wantStatus: 404, wantCode: "not_found", wantCalls: []call{deleteCall}},
		auditDown(request{line: line}, deleteCall),
		internalError(request{line: line}, deleteCall),
	}, badNames("DELETE", "/v1/issuers/", "", ""))
}

// withLeases makes the fake lease manager answer fullLease and
// minimalLease, and a next page.
func withLeases(a *fakeAPI) {
	l := minimalLease()
	a.leases.lease, a.leases.leases, a.leases.next = &l, []lease.Lease{fullLease(), minimalLease()}, "01JNB4Q7YV0000000000000003"
}

func listLeasesCases() []routeCase {
	list := func(f lease.Filter) []call { return []call{c("List", f)} }
	listed := wantJSON(api.LeaseList{Leases: leasesToAPI([]lease.Lease{fullLease(), minimalLease()}, fixtureNow), Next: "01JNB4Q7YV0000000000000003"})
	limitMsg := "limit must be 1-1000"
	return []routeCase{
		{name: "all", req: request{line: "GET /v1/leases"}, setup: withLeases, wantStatus: 200, wantCalls: list(lease.Filter{}), check: listed},
		{name: "filtered", req: request{line: "GET /v1/leases?role=deploy&project=group%2Fapp&pipeline=574&state=Active&after=" + leaseID + "&limit=1000"},
			setup: withLeases, wantStatus: 200,
			wantCalls: list(lease.Filter{Role: "deploy", Project: "group/app", Pipeline: "574", State: lease.StateActive, After: leaseID, Limit: 1000})},
		{name: "limit 1", req: request{line: "GET /v1/leases?limit=1"}, setup: withLeases, wantStatus: 200, wantCalls: list(lease.Filter{Limit: 1})},
		{name: "none", req: request{line: "GET /v1/leases"}, wantStatus: 200, wantCalls: list(lease.Filter{}),
			check: wantJSON(api.LeaseList{Leases: []api.Lease{}})},
		{name: "by access key", req: request{line: "GET /v1/leases?access_key_id=AKIAEXAMPLE000000001"}, setup: withLeases,
			wantStatus: 200, wantCalls: []call{c("FindByKey", "AKIAEXAMPLE000000001")},
			check: wantJSON(api.LeaseList{Leases: leasesToAPI([]lease.Lease{fullLease(), minimalLease()}, fixtureNow)})},
		{name: "unknown parameter", req: request{line: "GET /v1/leases?sub=x"}, wantStatus: 400, wantCode: "invalid_request",
			wantMsg: `unknown query parameter "sub" (known: role, project, pipeline, state, access_key_id, after, limit)`},
		{name: "unknown state", req: request{line: "GET /v1/leases?state=gone"}, wantStatus: 400, wantCode: "invalid_request",
			wantMsg: "state must be one of pending, active, revoking, revoked, irrevocable, expired"},
		{name: "limit 0", req: request{line: "GET /v1/leases?limit=0"}, wantStatus: 400, wantCode: "invalid_request", wantMsg: limitMsg},
		{name: "limit 1001", req: request{line: "GET /v1/leases?limit=1001"}, wantStatus: 400, wantCode: "invalid_request", wantMsg: limitMsg},
		{name: "limit not a number", req: request{line: "GET /v1/leases?limit=ten"}, wantStatus: 400, wantCode: "invalid_request", wantMsg: limitMsg},
		{name: "store unavailable", req: request{line: "GET /v1/leases"}, setup: func(a *fakeAPI) { a.failWith(errStoreDown) },
			wantStatus: 503, wantCode: "store_unavailable", wantCalls: list(lease.Filter{})},
		{name: "store unavailable by access key", req: request{line: "GET /v1/leases?access_key_id=AKIA1"}, setup: func(a *fakeAPI) { a.failWith(errStoreDown) },
			wantStatus: 503, wantCode: "store_unavailable", wantCalls: []call{c("FindByKey", "AKIA1")}},
		internalError(request{line: "GET /v1/leases"}, list(lease.Filter{})...),
	}
}

var errLeaseNotFound = fault.New(fault.NotFound, lease.CodeNotFound, "lease "+leaseID+" not found")

func leaseNotFound(req request, calls ...call) routeCase {
	return routeCase{name: "not found", req: req, setup: func(a *fakeAPI) { a.failWith(errLeaseNotFound) },
		wantStatus: 404, wantCode: "not_found", wantMsg: "lease " + leaseID + " not found", wantCalls: calls}
}

func getLeaseCases() []routeCase {
	line := "GET /v1/leases/" + leaseID
	return cases([]routeCase{
		{name: "found", req: request{line: line}, setup: withLeases, wantStatus: 200, wantCalls: []call{c("Get", leaseID)},
			check: wantJSON(leaseToAPI(minimalLease(), fixtureNow))},
		leaseNotFound(request{line: line}, c("Get", leaseID)),
		internalError(request{line: line}, c("Get", leaseID)),
	}, badLeaseIDs("GET", "", ""))
}

func revokeCall(reason string, wait bool) call {
	return c("Revoke", leaseID, rootOrigin(reason), wait, hasDeadline(wait))
}

func revokeLeaseCases() []routeCase {
	line := "POST /v1/leases/" + leaseID + "/revoke"
	return cases([]routeCase{
		{name: "no body", req: request{line: line}, setup: withLeases, wantStatus: 200, wantCalls: []call{revokeCall("", false)},
			check: wantJSON(leaseToAPI(minimalLease(), fixtureNow))},
		{name: "reason", req: request{line: line, body: `{"reason":"key in job log #1234"}`}, setup: withLeases, wantStatus: 200,
			wantCalls: []call{revokeCall("key in job log #1234", false)}},
		{name: "empty object", req: request{line: line, body: `{}`}, setup: withLeases, wantStatus: 200, wantCalls: []call{revokeCall("", false)}},
		{name: "reason of 512", req: request{line: line, body: `{"reason":"` + strings.Repeat("r", 512) + `"}`}, setup: withLeases,
			wantStatus: 200, wantCalls: []call{revokeCall(strings.Repeat("r", 512), false)}},
		{name: "wait", req: request{line: line + "?wait=true"}, setup: withLeases, wantStatus: 200, wantCalls: []call{revokeCall("", true)}},
		{name: "wait=1", req: request{line: line + "?wait=1"}, setup: withLeases, wantStatus: 200, wantCalls: []call{revokeCall("", true)}},
		{name: "wait=false", req: request{line: line + "?wait=false"}, setup: withLeases, wantStatus: 200, wantCalls: []call{revokeCall("", false)}},
		{name: "bad wait", req: request{line: line + "?wait=soon"}, wantStatus: 400, wantCode: "invalid_request", wantMsg: "wait must be true or false"},
		{name: "reason of 513", req: request{line: line, body: `{"reason":"` + strings.Repeat("r", 513) + `"}`}, wantStatus: 400,
			wantCode: "invalid_request", wantMsg: "reason must be at most 512 characters"},
		leaseNotFound(request{line: line}, revokeCall("", false)),
		auditDown(request{line: line}, revokeCall("", false)),
		internalError(request{line: line}, revokeCall("", false)),
	}, bodyRefusals(line, `{"reason":"x"}`), badLeaseIDs("POST", "/revoke", ""))
}

func leaseActionCases() []routeCase {
	base := "POST /v1/leases/" + leaseID
	retry := c("Retry", leaseID, rootOrigin(""))
	forget := c("Forget", leaseID, rootOrigin("deleted by hand"))
	renew := func(ttl time.Duration) call { return c("Renew", leaseID, ttl, rootOrigin("")) }
	return cases([]routeCase{
		{name: "retry", req: request{line: base + "/retry"}, setup: withLeases, wantStatus: 200, wantCalls: []call{retry},
			check: wantJSON(leaseToAPI(minimalLease(), fixtureNow))},
		{name: "retry of a lease that is not irrevocable", req: request{line: base + "/retry"},
			setup:      func(a *fakeAPI) { a.failWith(fault.New(fault.Conflict, lease.CodeNotIrrevocable, "lease is active")) },
			wantStatus: 409, wantCode: "not_irrevocable", wantCalls: []call{retry}},
		{name: "forget", req: request{line: base + "/forget", body: `{"reason":"deleted by hand"}`}, setup: withLeases,
			wantStatus: 200, wantCalls: []call{forget}, check: wantJSON(leaseToAPI(minimalLease(), fixtureNow))},
		{name: "forget without reason", req: request{line: base + "/forget", body: `{}`},
			setup: func(a *fakeAPI) {
				a.failWith(fault.New(fault.Invalid, lease.CodeInvalidRequest, "forgetting a lease needs a reason: it skips upstream cleanup"))
			},
			wantStatus: 400, wantCode: "invalid_request", wantMsg: "forgetting a lease needs a reason: it skips upstream cleanup",
			wantCalls: []call{c("Forget", leaseID, rootOrigin(""))}},
		{name: "forget without body", req: request{line: base + "/forget"}, wantStatus: 400, wantCode: "invalid_json",
			wantMsg: "request body is empty: send a JSON object"},
		{name: "forget with a reason of 513", req: request{line: base + "/forget", body: `{"reason":"` + strings.Repeat("r", 513) + `"}`},
			wantStatus: 400, wantCode: "invalid_request", wantMsg: "reason must be at most 512 characters"},
		{name: "forget with an unknown field", req: request{line: base + "/forget", body: `{"reason":"x","why":"y"}`},
			wantStatus: 400, wantCode: "unknown_field"},
		{name: "forget with a form", req: request{line: base + "/forget", body: `{"reason":"x"}`, ctype: "application/x-www-form-urlencoded"},
			wantStatus: 415, wantCode: "unsupported_media_type"},
		auditDown(request{line: base + "/forget", body: `{"reason":"deleted by hand"}`}, forget),
		{name: "renew", req: request{line: base + "/renew"}, setup: withLeases, wantStatus: 200, wantCalls: []call{renew(0)},
			check: wantJSON(leaseToAPI(minimalLease(), fixtureNow))},
		{name: "renew with ttl", req: request{line: base + "/renew", body: `{"ttl_seconds":3600}`}, setup: withLeases,
			wantStatus: 200, wantCalls: []call{renew(time.Hour)}},
		{name: "renew with a ttl overflowing a duration", req: request{line: base + "/renew", body: `{"ttl_seconds":18446744074}`},
			setup: withLeases, wantStatus: 200, wantCalls: []call{renew(time.Duration(math.MaxInt64))}},
		{name: "renew with negative ttl", req: request{line: base + "/renew", body: `{"ttl_seconds":-1}`}, wantStatus: 400,
			wantCode: "invalid_request", wantMsg: "ttl_seconds must not be negative"},
		{name: "renew with an unknown field", req: request{line: base + "/renew", body: `{"ttl":1}`}, wantStatus: 400, wantCode: "unknown_field"},
		{name: "renew with a form", req: request{line: base + "/renew", body: `ttl_seconds=1`, ctype: "application/x-www-form-urlencoded"},
			wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "renew of an STS lease", req: request{line: base + "/renew"},
			setup: func(a *fakeAPI) {
				a.failWith(fault.New(fault.Conflict, lease.CodeNotRenewable, "STS sessions cannot be extended"))
			},
			wantStatus: 409, wantCode: "not_renewable", wantCalls: []call{renew(0)}},
		leaseNotFound(request{line: base + "/renew"}, renew(0)),
		internalError(request{line: base + "/retry"}, retry),
		{name: "unknown action", req: request{line: base + "/frobnicate"}, wantStatus: 404, wantCode: "not_found",
			wantMsg: "unknown lease action: want revoke, retry, forget or renew"},
	}, badLeaseIDs("POST", "/retry", ""), badLeaseIDs("POST", "/frobnicate", ""))
}

func bulkRevokeCases() []routeCase {
	line := "POST /v1/leases/revoke"
	sel := lease.Selector{Role: "deploy", Project: "group/app", Pipeline: "574", Subject: "sub", AccessKeyID: "AKIA1"}
	body := `{"role":"deploy","project":"group/app","pipeline":"574","sub":"sub","access_key_id":"AKIA1","reason":"runner compromise"}`
	matching := c("RevokeMatching", sel, rootOrigin("runner compromise"))
	two := []lease.Lease{fullLease(), minimalLease()}
	return cases([]routeCase{
		{name: "revoked", req: request{line: line, body: body}, setup: withLeases, wantStatus: 200, wantCalls: []call{matching},
			check: wantJSON(api.BulkRevokeResult{Count: 2, Leases: leasesToAPI(two, fixtureNow)})},
		{name: "dry run", req: request{line: line, body: `{"project":"group/app","dry_run":true}`}, setup: withLeases,
			wantStatus: 200, wantCalls: []call{c("Select", lease.Selector{Project: "group/app"})},
			check: wantJSON(api.BulkRevokeResult{Count: 2, DryRun: true, Leases: leasesToAPI(two, fixtureNow)})},
		{name: "none matched", req: request{line: line, body: `{"role":"deploy"}`}, wantStatus: 200,
			wantCalls: []call{c("RevokeMatching", lease.Selector{Role: "deploy"}, rootOrigin(""))},
			check:     wantJSON(api.BulkRevokeResult{Leases: []api.Lease{}})},
		{name: "partly failed", req: request{line: line, body: body}, setup: func(a *fakeAPI) { withLeases(a); a.leases.err = errAuditDown },
			wantStatus: 200, wantCalls: []call{matching},
			check: wantJSON(api.BulkRevokeResult{Count: 2, Leases: leasesToAPI(two, fixtureNow), Error: "the audit log is unavailable; nothing was done"})},
		{name: "partly failed internally", req: request{line: line, body: body}, setup: func(a *fakeAPI) { withLeases(a); a.leases.err = errInternal },
			wantStatus: 200, wantCalls: []call{matching},
			check: wantJSON(api.BulkRevokeResult{Count: 2, Leases: leasesToAPI(two, fixtureNow), Error: "internal error"})},
		{name: "empty selector", req: request{line: line, body: `{}`},
			setup: func(a *fakeAPI) {
				a.failWith(fault.New(fault.Invalid, lease.CodeInvalidRequest, "give at least one of role, project, pipeline, sub, access_key_id"))
			},
			wantStatus: 400, wantCode: "invalid_request", wantMsg: "give at least one of role, project, pipeline, sub, access_key_id",
			wantCalls: []call{c("RevokeMatching", lease.Selector{}, rootOrigin(""))}},
		{name: "reason of 513", req: request{line: line, body: `{"role":"deploy","reason":"` + strings.Repeat("r", 513) + `"}`},
			wantStatus: 400, wantCode: "invalid_request", wantMsg: "reason must be at most 512 characters"},
		{name: "dry_run not a bool", req: request{line: line, body: `{"role":"deploy","dry_run":"yes"}`}, wantStatus: 400, wantCode: "invalid_json"},
		emptyBodyRefusal(line),
		auditDown(request{line: line, body: body}, matching),
		internalError(request{line: line, body: body}, matching),
	}, bodyRefusals(line, body))
}

func sweepCases() []routeCase {
	line := "POST /v1/orphans/sweep"
	orphans := func(a *fakeAPI) { a.leases.orphans = fixtureOrphans() }
	return []routeCase{
		{name: "swept", req: request{line: line}, setup: orphans, wantStatus: 200, wantCalls: []call{c("SweepOrphansNow", false)},
			check: wantJSON(api.SweepResult{Orphans: orphansToAPI(fixtureOrphans())})},
		{name: "dry run", req: request{line: line + "?dry_run=true"}, setup: orphans, wantStatus: 200,
			wantCalls: []call{c("SweepOrphansNow", true)}, check: wantJSON(api.SweepResult{DryRun: true, Orphans: orphansToAPI(fixtureOrphans())})},
		{name: "dry run forced by the server", req: request{line: line}, setup: func(a *fakeAPI) { orphans(a); a.leases.forcedDry = true },
			wantStatus: 200, wantCalls: []call{c("SweepOrphansNow", false)},
			check: wantJSON(api.SweepResult{DryRun: true, Orphans: orphansToAPI(fixtureOrphans())})},
		{name: "nothing found", req: request{line: line}, wantStatus: 200, wantCalls: []call{c("SweepOrphansNow", false)},
			check: wantJSON(api.SweepResult{Orphans: orphansToAPI(nil)})},
		{name: "bad dry_run", req: request{line: line + "?dry_run=perhaps"}, wantStatus: 400, wantCode: "invalid_request",
			wantMsg: "dry_run must be true or false"},
		{name: "no IAM", req: request{line: line}, setup: func(a *fakeAPI) {
			a.failWith(fault.New(fault.Conflict, lease.CodeNoIAM, "the server has no IAM access"))
		}, wantStatus: 409, wantCode: "no_iam", wantCalls: []call{c("SweepOrphansNow", false)}},
		auditDown(request{line: line}, c("SweepOrphansNow", false)),
		internalError(request{line: line}, c("SweepOrphansNow", false)),
	}
}

func listTokensCases() []routeCase {
	line := "GET /v1/admin-tokens"
	return []routeCase{
		{name: "tokens", req: request{line: line}, setup: func(a *fakeAPI) { a.tokens.list = []admintoken.Token{fixtureToken()} },
			wantStatus: 200, wantCalls: []call{c("Tokens.List")},
			check: func(t *testing.T, w *httptest.ResponseRecorder) {
				wantJSON(api.TokenList{Tokens: tokensToAPI([]admintoken.Token{fixtureToken()})})(t, w)
				if strings.Contains(w.Body.String(), fixtureToken().Hash) {
					t.Errorf("the answer shows a token's hash: %s", w.Body)
				}
			}},
		{name: "none", req: request{line: line}, wantStatus: 200, wantCalls: []call{c("Tokens.List")}, check: wantJSON(api.TokenList{})},
		{name: "store unavailable", req: request{line: line}, setup: func(a *fakeAPI) { a.failWith(errStoreDown) },
			wantStatus: 503, wantCode: "store_unavailable", wantCalls: []call{c("Tokens.List")}},
		internalError(request{line: line}, c("Tokens.List")),
	}
}

func createTokenCases() []routeCase {
	line := "POST /v1/admin-tokens"
	body := `{"name":"oncall","scopes":["leases:read","leases:revoke"]}`
	scopes := []string{"leases:read", "leases:revoke"}
	create := c("Tokens.Create", "oncall", scopes, rootOrigin(""))
	value := "kfa_0123456789abcdef_" + strings.Repeat("x", 43)
	created := func(a *fakeAPI) {
		a.tokens.created = &admintoken.Token{ID: "0123456789abcdef", Name: "oncall", Scopes: scopes, CreatedAt: fixtureNow}
		a.tokens.createAs = value
	}
	return cases([]routeCase{
		{name: "created", req: request{line: line, body: body}, setup: created, wantStatus: 201, wantCalls: []call{create},
			check: wantJSON(api.TokenCreateResponse{ID: "0123456789abcdef", Token: value, Scopes: scopes})},
		{name: "no scopes", req: request{line: line, body: `{"name":"oncall"}`},
			setup: func(a *fakeAPI) {
				a.failWith(fault.New(fault.Invalid, fault.CodeInvalidRequest, "at least one scope is required"))
			},
			wantStatus: 400, wantCode: "invalid_request", wantMsg: "at least one scope is required",
			wantCalls: []call{c("Tokens.Create", "oncall", []string(nil), rootOrigin(""))}},
		{name: "bad name", req: request{line: line, body: `{"name":"On Call","scopes":["*"]}`}, wantStatus: 400,
			wantCode: "invalid_name", wantMsg: invalidNameMsg},
		{name: "no name", req: request{line: line, body: `{"scopes":["*"]}`}, wantStatus: 400, wantCode: "invalid_name", wantMsg: invalidNameMsg},
		{name: "scopes not a list", req: request{line: line, body: `{"name":"oncall","scopes":"*"}`}, wantStatus: 400, wantCode: "invalid_json"},
		emptyBodyRefusal(line),
		auditDown(request{line: line, body: body}, create),
		internalError(request{line: line, body: body}, create),
	}, bodyRefusals(line, body))
}

func deleteTokenCases() []routeCase {
	line := "DELETE /v1/admin-tokens/0123456789abcdef"
	del := c("Tokens.Delete", "0123456789abcdef", rootOrigin(""))
	return []routeCase{
		{name: "deleted", req: request{line: line}, wantStatus: 200, wantCalls: []call{del}, check: wantJSON(api.Deleted{Deleted: "0123456789abcdef"})},
		// The service, not the handler, judges ids: a malformed one is
		// not found.
		{name: "malformed id", req: request{line: "DELETE /v1/admin-tokens/not-an-id"},
			setup: func(a *fakeAPI) {
				a.failWith(fault.New(fault.NotFound, fault.CodeNotFound, `admin token "not-an-id" not found`))
			},
			wantStatus: 404, wantCode: "not_found", wantMsg: `admin token "not-an-id" not found`,
			wantCalls: []call{c("Tokens.Delete", "not-an-id", rootOrigin(""))}},
		auditDown(request{line: line}, del),
		internalError(request{line: line}, del),
	}
}

// jwtClaims returns the claims of a compact JWS, unverified.
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("got token %q, want a compact JWS", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func devTokenCases() []routeCase {
	line := "POST /v1/dev/token"
	wantToken := func(want map[string]any) func(*testing.T, *httptest.ResponseRecorder) {
		return func(t *testing.T, w *httptest.ResponseRecorder) {
			var got api.DevTokenResponse
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Issuer != devIssuer().URL() {
				t.Errorf("got issuer %q, want %q", got.Issuer, devIssuer().URL())
			}
			claims := jwtClaims(t, got.Token)
			for k, v := range want {
				if !cmp.Equal(claims[k], v) {
					t.Errorf("got claim %s = %#v, want %#v", k, claims[k], v)
				}
			}
		}
	}
	iat := float64(fixtureNow.Unix())
	return cases([]routeCase{
		{name: "defaults", req: request{line: line, body: `{}`}, wantStatus: 200,
			check: wantToken(map[string]any{"iss": devIssuer().URL(), "aud": "http://127.0.0.1:8200", "iat": iat, "exp": iat + 3600,
				"ref_protected": "true"})},
		{name: "options", req: request{line: line, body: `{"project_path":"group/app","ref":"feature","protected":false,` +
			`"audience":["a","b"],"ttl_seconds":86400,"job_id":"302"}`}, wantStatus: 200,
			check: wantToken(map[string]any{"project_path": "group/app", "ref": "feature", "ref_protected": "false",
				"aud": []any{"a", "b"}, "exp": iat + 86400, "job_id": "302"})},
		{name: "ttl of 86401", req: request{line: line, body: `{"ttl_seconds":86401}`}, wantStatus: 400,
			wantCode: "invalid_request", wantMsg: "ttl_seconds must be 0-86400"},
		{name: "negative ttl", req: request{line: line, body: `{"ttl_seconds":-1}`}, wantStatus: 400,
			wantCode: "invalid_request", wantMsg: "ttl_seconds must be 0-86400"},
		emptyBodyRefusal(line),
	}, bodyRefusals(line, `{}`))
}

func devOIDCCases() []routeCase {
	return []routeCase{
		{name: "discovery", req: request{line: "GET /dev/oidc/.well-known/openid-configuration"}, wantStatus: 200,
			check: func(t *testing.T, w *httptest.ResponseRecorder) {
				var got struct {
					Issuer  string `json:"issuer"`
					JWKSURI string `json:"jwks_uri"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.Issuer != devIssuer().URL() ||
					got.JWKSURI != devIssuer().URL()+"/jwks" {
					t.Errorf("got %s (%v), want the dev issuer's discovery document", w.Body, err)
				}
			}},
		{name: "keys", req: request{line: "GET /dev/oidc/jwks"}, wantStatus: 200, check: func(t *testing.T, w *httptest.ResponseRecorder) {
			if !bytes.Equal(w.Body.Bytes(), devIssuer().JWKS()) {
				t.Errorf("got %s, want the dev issuer's JWKS", w.Body)
			}
		}},
		{name: "elsewhere", req: request{line: "GET /dev/oidc/nope"}, wantStatus: 404},
	}
}

func unmatchedCases() []routeCase {
	return []routeCase{
		{name: "unknown path", req: request{line: "GET /nope"}, wantStatus: 404, wantCode: "not_found", wantMsg: "no such endpoint: GET /nope"},
		{name: "root", req: request{line: "GET /"}, wantStatus: 404, wantCode: "not_found", wantMsg: "no such endpoint: GET /"},
		{name: "wrong method", req: request{line: "GET /v1/creds"}, wantStatus: 404, wantCode: "not_found", wantMsg: "no such endpoint: GET /v1/creds"},
		{name: "POST to a collection", req: request{line: "POST /v1/roles", body: `{}`}, wantStatus: 404, wantCode: "not_found",
			wantMsg: "no such endpoint: POST /v1/roles"},
		{name: "trailing slash", req: request{line: "GET /v1/leases/"}, wantStatus: 404, wantCode: "not_found"},
		{name: "too deep", req: request{line: "GET /v1/roles/deploy/more"}, wantStatus: 404, wantCode: "not_found"},
		{name: "dev token without dev mode", req: request{line: "POST /v1/dev/token", body: `{}`, token: rootToken.value},
			setup: func(a *fakeAPI) { a.cfg.Dev = nil }, wantStatus: 404, wantCode: "not_found", wantMsg: "no such endpoint: POST /v1/dev/token"},
		{name: "dev issuer without dev mode", req: request{line: "GET /dev/oidc/jwks"},
			setup: func(a *fakeAPI) { a.cfg.Dev = nil }, wantStatus: 404, wantCode: "not_found", wantMsg: "no such endpoint: GET /dev/oidc/jwks"},
	}
}
