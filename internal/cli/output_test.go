package cli_test

import (
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/output/*.txt from the current output")

// wire reads a response body from the server's golden files, so that the
// commands below print what they print for the server's real responses.
func wire(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "httpapi", "testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOutput pins what the admin commands print (stdout, stderr, exit
// code) for fixed server responses. Run with -update to rewrite.
func TestOutput(t *testing.T) {
	// Tables print times in the local zone.
	local := time.Local
	time.Local = time.UTC
	t.Cleanup(func() { time.Local = local })

	const leaseID = "01JNB4Q7YV0000000000000001"
	routes := map[string]string{
		"GET /v1/leases/" + leaseID:                         wire(t, "lease_full"),
		"GET /v1/leases?limit=100":                          wire(t, "lease_list"),
		"GET /v1/leases?access_key_id=AKIAEXAMPLE000000001": wire(t, "lease_list_empty"),
		"POST /v1/leases/" + leaseID + "/revoke":            wire(t, "lease_full"),
		"POST /v1/leases/" + leaseID + "/forget":            wire(t, "lease_full"),
		"POST /v1/leases/" + leaseID + "/renew":             wire(t, "lease_minimal"),
		"POST /v1/leases/revoke":                            wire(t, "bulk_revoke"),
		"POST /v1/orphans/sweep?dry_run=true":               wire(t, "sweep"),
		"GET /v1/roles":                                     wire(t, "role_list"),
		"GET /v1/roles/deploy-users":                        wire(t, "role_full"),
		"PUT /v1/roles/deploy-users":                        wire(t, "role_write"),
		"PUT /v1/roles/deploy-users?dry_run=true":           `{"outcome":"updated","object":{"name":"deploy-users","issuer":"gitlab","match":{"project_path":"group/app"},"aws":{"type":"iam_user","role_arn":"arn:aws:iam::123456789012:role/deploy","ttl":"2h0m0s"}}}`,
		"GET /v1/issuers":                                   wire(t, "issuer_list"),
		"GET /v1/issuers/gitlab":                            wire(t, "issuer_full"),
		"PUT /v1/issuers/dev?dry_run=true":                  wire(t, "issuer_write"),
		"GET /v1/admin-tokens":                              wire(t, "token_list"),
		"DELETE /v1/roles/deploy":                           wire(t, "deleted"),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Method + " " + r.URL.Path
		if r.URL.RawQuery != "" {
			key += "?" + r.URL.RawQuery
		}
		body, ok := routes[key]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":{"code":"not_found","message":"no route %s in the test"}}`, key)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	env := map[string]string{"KEYFERRY_ADDR": srv.URL, "KEYFERRY_TOKEN": "kfa_test", "HOME": t.TempDir()}

	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	manifest := file("manifest.yaml", `issuers:
  - name: dev
    kind: generic
    url: http://127.0.0.1:8200/dev/oidc
    audiences: [keyferry]
roles:
  - name: deploy-users
    issuer: gitlab
    match: { project_path: group/app }
    aws: { type: iam_user, role_arn: "arn:aws:iam::123456789012:role/deploy", ttl: 2h }
  - name: dev-deploy
    issuer: dev
    match: { project_path: group/app, runner_id: 42, protected: true }
    allow_unbound: true
    aws: { type: assume_role, role_arn: "arn:aws:iam::123456789012:role/deploy" }
`)
	unbound, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	file("unbound.yaml", strings.Replace(string(unbound), "    allow_unbound: true\n", "", 1))
	role := file("role.yaml", "issuer: gitlab\nmatch: { project_path: group/app }\naws: { type: iam_user, role_arn: \"arn:aws:iam::123456789012:role/deploy\" }\n")

	tests := []struct {
		name string
		args []string
	}{
		{name: "lease_get", args: []string{"lease", "get", leaseID}},
		{name: "lease_list", args: []string{"lease", "list"}},
		{name: "lease_list_json", args: []string{"lease", "list", "--json"}},
		{name: "lease_list_by_key", args: []string{"lease", "list", "--json", "--access-key-id", "AKIAEXAMPLE000000001"}},
		{name: "lease_revoke", args: []string{"lease", "revoke", leaseID}},
		{name: "lease_forget", args: []string{"lease", "forget", leaseID, "--reason", "gone"}},
		{name: "lease_renew", args: []string{"lease", "renew", leaseID}},
		{name: "lease_revoke_bulk_dry_run", args: []string{"lease", "revoke", "--project", "group/app", "--dry-run"}},
		{name: "lease_revoke_bulk", args: []string{"lease", "revoke", "--project", "group/app", "--yes"}},
		{name: "sweep_orphans", args: []string{"lease", "sweep-orphans", "--dry-run"}},
		{name: "role_list", args: []string{"role", "list"}},
		{name: "role_list_json", args: []string{"role", "list", "--json"}},
		{name: "role_read", args: []string{"role", "read", "deploy-users"}},
		{name: "role_write", args: []string{"role", "write", "deploy-users", "-f", role}},
		{name: "role_delete", args: []string{"role", "delete", "deploy"}},
		{name: "issuer_list", args: []string{"issuer", "list"}},
		{name: "issuer_list_json", args: []string{"issuer", "list", "--json"}},
		{name: "issuer_read", args: []string{"issuer", "read", "gitlab"}},
		{name: "admin_token_list", args: []string{"admin-token", "list"}},
		{name: "apply_dry_run", args: []string{"apply", "-f", manifest, "--dry-run"}},
		{name: "apply_invalid_local", args: []string{"apply", "-f", strings.Replace(manifest, "manifest", "unbound", 1)}},
		{name: "apply_unknown_field", args: []string{"apply", "-f", file("unknown.yaml", "roles:\n  - name: x\n    issuer: dev\n    aws: { type: assume_role, colour: blue }\n")}},
		{name: "apply_bad_match", args: []string{"apply", "-f", file("badmatch.yaml", "roles:\n  - name: x\n    issuer: dev\n    match: { ref: [] }\n")}},
		{name: "apply_bad_duration", args: []string{"apply", "-f", file("badttl.yaml", "roles:\n  - name: x\n    issuer: dev\n    aws: { ttl: soon }\n")}},
		{name: "role_write_wrong_type", args: []string{"role", "write", "x", "-f", file("wrongtype.yaml", "issuer: dev\naws: 5\n")}},
		{name: "issuer_write_unknown_field", args: []string{"issuer", "write", "x", "-f", file("issuer.yaml", "url: https://x\naudience: [a]\n")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(env, tt.args...)
			got := fmt.Sprintf("$ keyferry %s\n--- exit %d\n--- stdout\n%s--- stderr\n%s", strings.Join(tt.args, " "), r.code, r.stdout, r.stderr)
			got = strings.ReplaceAll(got, dir+string(filepath.Separator), "")
			path := filepath.Join("testdata", "output", tt.name+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output changed:\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
