package httpapi

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keyferry/keyferry/internal/admintoken"
	"github.com/keyferry/keyferry/internal/fault"
)

// route is one endpoint the server's handlers serve.
type route struct {
	// pattern is the method and path, as http.ServeMux reads them; it is
	// also the route's label in the HTTP metrics.
	pattern string
	// scope is the admin-token scope the route needs; "" for a route
	// that takes no admin token.
	scope string
	// dev marks a route served only in dev mode (Config.Dev set).
	dev   bool
	serve func(s *server, w http.ResponseWriter, r *http.Request)
}

// routes is the route table: register serves it, and the tests walk it
// (every admin route refuses every scope but its own).
func routes() []route {
	return []route{
		{pattern: "GET /healthz", serve: (*server).healthz},
		{pattern: "GET /readyz", serve: (*server).readyz},

		{pattern: "POST /v1/creds", serve: (*server).creds},
		{pattern: "POST /v1/creds/refresh", serve: (*server).refresh},
		{pattern: "POST /sts", serve: (*server).sts},
		{pattern: "POST /sts/", serve: (*server).sts},

		{pattern: "GET /v1/roles", scope: admintoken.ScopeRolesRead, serve: (*server).listRoles},
		{pattern: "GET /v1/roles/{name}", scope: admintoken.ScopeRolesRead, serve: (*server).getRole},
		{pattern: "PUT /v1/roles/{name}", scope: admintoken.ScopeRolesWrite, serve: (*server).putRole},
		{pattern: "DELETE /v1/roles/{name}", scope: admintoken.ScopeRolesWrite, serve: (*server).deleteRole},
		{pattern: "POST /v1/roles/{name}/test", scope: admintoken.ScopeRolesRead, serve: (*server).testRole},

		{pattern: "GET /v1/issuers", scope: admintoken.ScopeIssuersRead, serve: (*server).listIssuers},
		{pattern: "GET /v1/issuers/{name}", scope: admintoken.ScopeIssuersRead, serve: (*server).getIssuer},
		{pattern: "PUT /v1/issuers/{name}", scope: admintoken.ScopeIssuersWrite, serve: (*server).putIssuer},
		{pattern: "DELETE /v1/issuers/{name}", scope: admintoken.ScopeIssuersWrite, serve: (*server).deleteIssuer},

		{pattern: "GET /v1/leases", scope: admintoken.ScopeLeasesRead, serve: (*server).listLeases},
		{pattern: "GET /v1/leases/{id}", scope: admintoken.ScopeLeasesRead, serve: (*server).getLease},
		{pattern: "POST /v1/leases/{id}/revoke", scope: admintoken.ScopeLeasesRevoke, serve: (*server).revokeLease},
		{pattern: "POST /v1/leases/{id}/{action}", scope: admintoken.ScopeLeasesRevoke, serve: (*server).leaseAction},
		{pattern: "POST /v1/leases/revoke", scope: admintoken.ScopeLeasesRevoke, serve: (*server).bulkRevoke},
		{pattern: "POST /v1/orphans/sweep", scope: admintoken.ScopeLeasesRevoke, serve: (*server).sweepOrphans},

		{pattern: "GET /v1/admin-tokens", scope: admintoken.ScopeTokensWrite, serve: (*server).listTokens},
		{pattern: "POST /v1/admin-tokens", scope: admintoken.ScopeTokensWrite, serve: (*server).createToken},
		{pattern: "DELETE /v1/admin-tokens/{id}", scope: admintoken.ScopeTokensWrite, serve: (*server).deleteToken},

		{pattern: "POST /v1/dev/token", scope: admintoken.ScopeDev, dev: true, serve: (*server).devToken},
	}
}

// register hands every endpoint to handle: the route table, each route
// instrumented and, when it has a scope, behind the admin check; then
// the endpoints served by other packages' handlers, and the catch-all.
func (s *server) register(handle func(pattern string, h http.Handler)) {
	for _, rt := range routes() {
		if rt.dev && s.Dev == nil {
			continue
		}
		h := func(w http.ResponseWriter, r *http.Request) { rt.serve(s, w, r) }
		if rt.scope != "" {
			h = s.admin(rt.scope, h)
		}
		handle(rt.pattern, s.instrument(rt.pattern, h))
	}
	handle("GET /metrics", promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{}))
	if s.Dev != nil {
		handle("/dev/oidc/", http.StripPrefix("/dev/oidc", s.Dev.Handler()))
	}
	handle("/", s.instrument("unmatched", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, fault.Newf(fault.NotFound, "not_found", "no such endpoint: %s %s", r.Method, r.URL.Path))
	}))
}
