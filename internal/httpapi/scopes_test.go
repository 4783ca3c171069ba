package httpapi

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyferry/keyferry/internal/admintoken"
)

// wildcardValues fill the wildcards of a route pattern to make a request
// it serves.
var wildcardValues = map[string]string{"name": "deploy", "id": leaseID, "action": "retry"}

var wildcardRE = regexp.MustCompile(`\{([a-z]+)\}`)

// sampleRequest is a request the route of pattern serves: its wildcards
// filled in, and an empty JSON object as the body of a POST or a PUT.
func sampleRequest(t *testing.T, pattern string) request {
	t.Helper()
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		t.Fatalf("route %q has no method", pattern)
	}
	path = wildcardRE.ReplaceAllStringFunc(path, func(w string) string {
		v, ok := wildcardValues[w[1:len(w)-1]]
		if !ok {
			t.Fatalf("route %q: no sample value for %s in wildcardValues", pattern, w)
		}
		return v
	})
	req := request{line: method + " " + path}
	if method == http.MethodPost || method == http.MethodPut {
		req.body = "{}"
	}
	return req
}

// wantScopes is the scope each admin route needs (docs/api.md lists
// them too). It restates the route table on purpose: a scope changed in
// the table fails the matrix, and so does a route added to it without a
// line here.
var wantScopes = map[string]string{
	"GET /v1/roles":                 admintoken.ScopeRolesRead,
	"GET /v1/roles/{name}":          admintoken.ScopeRolesRead,
	"PUT /v1/roles/{name}":          admintoken.ScopeRolesWrite,
	"DELETE /v1/roles/{name}":       admintoken.ScopeRolesWrite,
	"POST /v1/roles/{name}/test":    admintoken.ScopeRolesRead,
	"GET /v1/issuers":               admintoken.ScopeIssuersRead,
	"GET /v1/issuers/{name}":        admintoken.ScopeIssuersRead,
	"PUT /v1/issuers/{name}":        admintoken.ScopeIssuersWrite,
	"DELETE /v1/issuers/{name}":     admintoken.ScopeIssuersWrite,
	"GET /v1/leases":                admintoken.ScopeLeasesRead,
	"GET /v1/leases/{id}":           admintoken.ScopeLeasesRead,
	"POST /v1/leases/{id}/revoke":   admintoken.ScopeLeasesRevoke,
	"POST /v1/leases/{id}/{action}": admintoken.ScopeLeasesRevoke,
	"POST /v1/leases/revoke":        admintoken.ScopeLeasesRevoke,
	"POST /v1/orphans/sweep":        admintoken.ScopeLeasesRevoke,
	"GET /v1/admin-tokens":          admintoken.ScopeTokensWrite,
	"POST /v1/admin-tokens":         admintoken.ScopeTokensWrite,
	"DELETE /v1/admin-tokens/{id}":  admintoken.ScopeTokensWrite,
	"POST /v1/dev/token":            admintoken.ScopeDev,
}

// TestScopeMatrix sends each admin route of the route table a request
// with a token of each scope: the route's own scope (per wantScopes) and
// "*" get through (whatever the handler then answers, it is not 401 or
// 403); every other scope gets 403 forbidden before any call reaches a
// fake. Requests without a valid token get 401 and a WWW-Authenticate
// challenge, and no call either.
func TestScopeMatrix(t *testing.T) {
	type adminRoute struct{ pattern, scope string }
	var admin []adminRoute
	inTable := map[string]bool{}
	for _, rt := range routes() {
		inTable[rt.pattern] = true
		want, ok := wantScopes[rt.pattern]
		switch {
		case !ok && rt.scope != "":
			t.Errorf("route %q needs scope %q: add the scope it should need to wantScopes", rt.pattern, rt.scope)
			continue
		case !ok:
			continue // a public route: TestPublicRoutesTakeNoToken
		case rt.scope != want:
			t.Errorf("route %q needs scope %q, want %q", rt.pattern, rt.scope, want)
		}
		if want == admintoken.ScopeAll || !slices.Contains(admintoken.AllScopes, want) {
			t.Errorf("wantScopes gives %q scope %q, which is not a single known scope", rt.pattern, want)
		}
		admin = append(admin, adminRoute{rt.pattern, want})
	}
	for p := range wantScopes {
		if !inTable[p] {
			t.Errorf("wantScopes names %q, which is not in the route table", p)
		}
	}
	if len(admin) == 0 {
		t.Fatal("the route table has no admin route")
	}
	unknown := "kfa_00000000000000ff_" + strings.Repeat("z", 43)
	type authCase struct {
		name          string
		authorization string // the Authorization header; "" sends none
		setup         func(*fakeAPI)
		wantStatus    int
		wantCode      string
		wantMsg       string
		wantChallenge string // WWW-Authenticate
		wantAuth      []call // the calls of Authenticate
	}
	required := "an admin token is required (Authorization: Bearer kfa_…)"
	invalid := "the admin token is not valid"
	authCases := []authCase{
		{name: "no token", wantStatus: 401, wantCode: "unauthenticated", wantMsg: required, wantChallenge: `Bearer realm="keyferry"`},
		{name: "empty bearer", authorization: "Bearer ", wantStatus: 401, wantCode: "unauthenticated", wantMsg: required,
			wantChallenge: `Bearer realm="keyferry"`},
		{name: "basic credentials", authorization: "Basic " + rootToken.value, wantStatus: 401, wantCode: "unauthenticated",
			wantMsg: required, wantChallenge: `Bearer realm="keyferry"`},
		{name: "malformed token", authorization: "Bearer not-a-token", wantStatus: 401, wantCode: "unauthenticated", wantMsg: invalid,
			wantChallenge: `Bearer realm="keyferry", error="invalid_token"`, wantAuth: []call{c("Authenticate", "not-a-token")}},
		{name: "unknown token", authorization: "Bearer " + unknown, wantStatus: 401, wantCode: "unauthenticated", wantMsg: invalid,
			wantChallenge: `Bearer realm="keyferry", error="invalid_token"`, wantAuth: []call{c("Authenticate", unknown)}},
		{name: "token store unavailable", authorization: "Bearer " + rootToken.value, setup: func(a *fakeAPI) { a.tokens.authErr = errStoreDown },
			wantStatus: 503, wantCode: "store_unavailable", wantAuth: []call{c("Authenticate", rootToken.value)}},
	}

	cells := 0
	for _, rt := range admin {
		sample := sampleRequest(t, rt.pattern)
		t.Run(rt.pattern, func(t *testing.T) {
			for _, scope := range admintoken.AllScopes {
				cells++
				t.Run(scope, func(t *testing.T) {
					a := newFakeAPI(t, func(a *fakeAPI) { withRegistry(a); withLeases(a) })
					tok := tokenFor(scope)
					req := sample
					req.token = tok.value
					w := a.do(t, req)
					calls := a.log.take()
					if got, want := a.tokens.authLog.take(), []call{c("Authenticate", tok.value)}; !cmp.Equal(got, want) {
						t.Errorf("got authentications %v, want %v", got, want)
					}
					if got := a.servedBy(t); !slices.Equal(got, []string{rt.pattern}) {
						t.Fatalf("%s was served by %q, want %q", req.line, got, rt.pattern)
					}
					if scope == rt.scope || scope == admintoken.ScopeAll {
						if w.Code == http.StatusUnauthorized || w.Code == http.StatusForbidden {
							t.Fatalf("a %s token: got %d (%s), want the request let through", scope, w.Code, w.Body)
						}
						return
					}
					if w.Code != http.StatusForbidden {
						t.Fatalf("a %s token: got %d (%s), want 403", scope, w.Code, w.Body)
					}
					code, msg := apiErrorOf(t, w)
					if want := `the admin token lacks scope "` + rt.scope + `"`; code != "forbidden" || msg != want {
						t.Errorf("got %s %q, want forbidden %q", code, msg, want)
					}
					if len(calls) != 0 {
						t.Errorf("a refused request made calls %v, want none", calls)
					}
				})
			}
			for _, ac := range authCases {
				cells++
				t.Run(ac.name, func(t *testing.T) {
					a := newFakeAPI(t, ac.setup)
					req := sample
					if ac.authorization != "" {
						req.header = map[string]string{"Authorization": ac.authorization}
					}
					w := a.do(t, req)
					if w.Code != ac.wantStatus {
						t.Fatalf("got %d (%s), want %d", w.Code, w.Body, ac.wantStatus)
					}
					code, msg := apiErrorOf(t, w)
					if code != ac.wantCode || (ac.wantMsg != "" && msg != ac.wantMsg) {
						t.Errorf("got %s %q, want %s %q", code, msg, ac.wantCode, ac.wantMsg)
					}
					if got := w.Header().Get("WWW-Authenticate"); got != ac.wantChallenge {
						t.Errorf("got WWW-Authenticate %q, want %q", got, ac.wantChallenge)
					}
					if diff := cmp.Diff(ac.wantAuth, a.tokens.authLog.take(), cmpopts.EquateEmpty()); diff != "" {
						t.Errorf("authentications differ (-want +got):\n%s", diff)
					}
					if calls := a.log.take(); len(calls) != 0 {
						t.Errorf("a refused request made calls %v, want none", calls)
					}
				})
			}
		})
	}
	t.Logf("%d admin routes, %d cells", len(admin), cells)
}

// TestAdminTokenIsTrimmed: the presented token is authenticated without
// the blanks around it.
func TestAdminTokenIsTrimmed(t *testing.T) {
	a := newFakeAPI(t, withLeases)
	w := a.do(t, request{line: "GET /v1/leases", header: map[string]string{"Authorization": "Bearer  " + rootToken.value + " "}})
	if w.Code != http.StatusOK {
		t.Fatalf("got %d (%s), want 200", w.Code, w.Body)
	}
	if got, want := a.tokens.authLog.take(), []call{c("Authenticate", rootToken.value)}; !cmp.Equal(got, want) {
		t.Errorf("got authentications %v, want %v", got, want)
	}
}

// publicRoutes are the routes of the table that take no admin token. A
// route leaves the scope matrix when it loses its scope, so this list
// pins which routes may: a new one is a decision to review.
var publicRoutes = []string{"GET /healthz", "GET /readyz", "POST /v1/creds", "POST /v1/creds/refresh", "POST /sts", "POST /sts/"}

// TestPublicRoutesTakeNoToken: the routes without a scope are the public
// ones, and never consult the admin tokens, even when the request
// carries one.
func TestPublicRoutesTakeNoToken(t *testing.T) {
	for _, rt := range routes() {
		if rt.scope != "" {
			continue
		}
		t.Run(rt.pattern, func(t *testing.T) {
			if !slices.Contains(publicRoutes, rt.pattern) {
				t.Fatalf("route %q takes no admin token, and is not one of the public routes %q", rt.pattern, publicRoutes)
			}
			a := newFakeAPI(t, nil)
			req := sampleRequest(t, rt.pattern)
			req.token = rootToken.value
			a.do(t, req)
			if got := a.tokens.authLog.take(); len(got) != 0 {
				t.Errorf("got authentications %v, want none", got)
			}
		})
	}
}

// TestBearerSchemeIsCaseInsensitive: HTTP auth schemes are
// case-insensitive, so "bearer" and "BEARER" work like "Bearer"; another
// scheme does not.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	for _, tt := range []struct {
		scheme string
		want   int
	}{{"bearer", http.StatusOK}, {"BEARER", http.StatusOK}, {"Bearer", http.StatusOK}, {"Token", http.StatusUnauthorized}} {
		a := newFakeAPI(t, withLeases)
		w := a.do(t, request{line: "GET /v1/leases", header: map[string]string{"Authorization": tt.scheme + " " + rootToken.value}})
		if w.Code != tt.want {
			t.Errorf("scheme %q: got %d (%s), want %d", tt.scheme, w.Code, w.Body, tt.want)
		}
	}
}
