package rules

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/keyferry/keyferry"

// runnerSide are the packages that run inside CI jobs and on runner hosts
// (keyferry creds, exec, credential-process, serve). They speak to the
// broker through internal/api's wire types only, so that a build of them
// links none of the broker's machinery.
var runnerSide = []string{
	module + "/internal/client",
	module + "/internal/delivery",
	module + "/internal/delivery/proccache",
	module + "/internal/tokensource",
}

// serverOnly are import-path prefixes the runner side must not depend on:
// the broker's own packages, and the heavy libraries only the broker uses
// (CEL, JOSE, bbolt and etcd, metrics).
var serverOnly = []string{
	module + "/internal/lease",
	module + "/internal/policy",
	module + "/internal/identity",
	module + "/internal/registry",
	module + "/internal/storage",
	module + "/internal/audit",
	module + "/internal/httpapi",
	module + "/internal/server",
	module + "/internal/provider",
	module + "/internal/admintoken",
	module + "/internal/metrics",
	module + "/internal/devissuer",
	module + "/internal/config",
	module + "/internal/cli",
	"cel.dev", // cel-go and its expression protos
	"github.com/go-jose/go-jose",
	"go.etcd.io", // bbolt and the etcd client
	"github.com/prometheus",
}

// TestRunnerSideDoesNotDependOnTheServer fails when a runner-side package
// depends on a server package or a server-only library, naming the nearest
// offending import path and the chain of imports that pulls it in.
func TestRunnerSideDoesNotDependOnTheServer(t *testing.T) {
	for _, root := range runnerSide {
		t.Run(strings.TrimPrefix(root, module+"/"), func(t *testing.T) {
			graph := importGraph(t, root)
			if _, ok := graph[root]; !ok {
				t.Fatalf("go list -deps %s did not list %s itself", root, root)
			}
			order, prev := walk(graph, root)
			count := map[string]int{}
			var first []string
			for _, p := range order {
				if bad := forbidden(p); bad != "" {
					if count[bad] == 0 {
						first = append(first, p)
					}
					count[bad]++
				}
			}
			for _, p := range first {
				more := ""
				if n := count[forbidden(p)] - 1; n > 0 {
					more = fmt.Sprintf(" (and %d more under %s)", n, forbidden(p))
				}
				t.Errorf("%s depends on server-only %s%s: %s", strings.TrimPrefix(root, module+"/"), p, more, strings.Join(chain(prev, p), " → "))
			}
		})
	}
}

func TestForbidden(t *testing.T) {
	tests := []struct {
		name, path, want string
	}{
		{name: "server package", path: module + "/internal/lease", want: module + "/internal/lease"},
		{name: "server subpackage", path: module + "/internal/storage/bolt", want: module + "/internal/storage"},
		{name: "library subpackage", path: "cel.dev/cel-go/cel", want: "cel.dev"},
		{name: "bbolt", path: "go.etcd.io/bbolt", want: "go.etcd.io"},
		{name: "versioned module", path: "github.com/go-jose/go-jose/v4", want: "github.com/go-jose/go-jose"},
		{name: "wire types", path: module + "/internal/api"},
		{name: "same prefix, other package", path: module + "/internal/leases"},
		{name: "standard library", path: "net/http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := forbidden(tt.path); got != tt.want {
				t.Errorf("forbidden(%q): got %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

// forbidden returns the serverOnly prefix that path falls under, or "".
func forbidden(path string) string {
	for _, p := range serverOnly {
		if path == p || strings.HasPrefix(path, p+"/") {
			return p
		}
	}
	return ""
}

// importGraph returns every package root depends on (root included),
// mapped to its direct imports, as go list sees them for this platform.
func importGraph(t *testing.T, root string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, root)
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", root, err, stderr.String())
	}
	graph := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			graph[f[0]] = f[1:]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read go list output: %v", err)
	}
	return graph
}

// walk visits graph breadth-first from root: order lists the packages
// nearest first, prev maps each to the package that first imported it.
func walk(graph map[string][]string, root string) (order []string, prev map[string]string) {
	prev = map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		order = append(order, p)
		for _, q := range graph[p] {
			if _, seen := prev[q]; !seen {
				prev[q] = p
				queue = append(queue, q)
			}
		}
	}
	return order, prev
}

// chain returns the imports leading to p, module prefix trimmed.
func chain(prev map[string]string, p string) []string {
	var out []string
	for ; p != ""; p = prev[p] {
		out = append([]string{strings.TrimPrefix(p, module+"/")}, out...)
	}
	return out
}

// TestAPIIsALeaf: the wire types import only the standard library and
// internal/dur, so that depending on them costs the runner side nothing.
func TestAPIIsALeaf(t *testing.T) {
	allowed := map[string]bool{module + "/internal/api": true, module + "/internal/dur": true}
	cmd := exec.Command("go", "list", "-deps", "-f", `{{if not .Standard}}{{.ImportPath}}{{end}}`, module+"/internal/api")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps internal/api: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("internal/api depends on %s; it may import only the standard library and internal/dur", p)
		}
	}
}
