package rules

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// auditNames are the only names an audit writer may have outside package
// audit. The rule below is syntactic (it needs no type checking), so it
// rests on this convention, which checkAuditNames enforces: every field,
// parameter or variable typed audit.Writer, *audit.FileSink or
// *audit.Memory, and every variable that receives audit.OpenFile or
// audit.NewMemory, is called one of these.
var auditNames = []string{"audit", "sink", "Audit"}

// TestAuditErrorsAreNeverIgnored: "no audit record, no action" only holds
// if every audit write's error is looked at. Outside tests, no call of
// Write or Close on an audit writer may drop its error: not through
// `_ =`, not as a bare statement, not in a defer or go statement.
func TestAuditErrorsAreNeverIgnored(t *testing.T) {
	var problems []string
	for _, f := range goSources(t) {
		fset := token.NewFileSet()
		file, err := parser.ParseFile(fset, filepath.Join("../..", f), nil, 0)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if file.Name.Name == "audit" {
			continue // the implementation itself
		}
		problems = append(problems, checkAuditNames(fset, file)...)
		problems = append(problems, droppedAuditErrors(fset, file)...)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// goSources lists the repository's Go files, tests excluded.
func goSources(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, f := range repoFiles(t) {
		if strings.HasSuffix(f, ".go") && !strings.HasSuffix(f, "_test.go") && !strings.Contains(f, "testdata/") {
			out = append(out, f)
		}
	}
	return out
}

// auditCall reports whether call is recv.Write(…) or recv.Close() on a
// receiver named like an audit writer.
func auditCall(e ast.Expr) (string, bool) {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return "", false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || (sel.Sel.Name != "Write" && sel.Sel.Name != "Close") {
		return "", false
	}
	var name string
	switch r := sel.X.(type) {
	case *ast.Ident:
		name = r.Name
	case *ast.SelectorExpr:
		name = r.Sel.Name
	default:
		return "", false
	}
	return name + "." + sel.Sel.Name, slices.Contains(auditNames, name)
}

func droppedAuditErrors(fset *token.FileSet, file *ast.File) []string {
	var out []string
	report := func(n ast.Node, what, how string) {
		out = append(out, fmt.Sprintf("%s: the error of %s is %s: an audit failure must stop the action", fset.Position(n.Pos()), what, how))
	}
	ast.Inspect(file, func(n ast.Node) bool {
		switch s := n.(type) {
		case *ast.AssignStmt:
			for _, rhs := range s.Rhs {
				if what, ok := auditCall(rhs); ok && allBlank(s.Lhs) {
					report(s, what, "assigned to _")
				}
			}
		case *ast.ExprStmt:
			if what, ok := auditCall(s.X); ok {
				report(s, what, "dropped")
			}
		case *ast.DeferStmt:
			if what, ok := auditCall(s.Call); ok {
				report(s, what, "dropped by defer")
			}
		case *ast.GoStmt:
			if what, ok := auditCall(s.Call); ok {
				report(s, what, "dropped by go")
			}
		}
		return true
	})
	return out
}

func allBlank(lhs []ast.Expr) bool {
	for _, e := range lhs {
		if id, ok := e.(*ast.Ident); !ok || id.Name != "_" {
			return false
		}
	}
	return true
}

// isAuditType reports whether e is audit.Writer, *audit.FileSink or
// *audit.Memory.
func isAuditType(e ast.Expr) bool {
	if st, ok := e.(*ast.StarExpr); ok {
		e = st.X
	}
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "audit" && (sel.Sel.Name == "Writer" || sel.Sel.Name == "FileSink" || sel.Sel.Name == "Memory")
}

// isAuditConstructor reports whether e calls audit.OpenFile or
// audit.NewMemory.
func isAuditConstructor(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "audit" && (sel.Sel.Name == "OpenFile" || sel.Sel.Name == "NewMemory")
}

func checkAuditNames(fset *token.FileSet, file *ast.File) []string {
	var out []string
	check := func(id *ast.Ident) {
		if id.Name != "_" && !slices.Contains(auditNames, id.Name) {
			out = append(out, fmt.Sprintf("%s: an audit writer is called %q; call it one of %q so that the audit rules can see it", fset.Position(id.Pos()), id.Name, auditNames))
		}
	}
	ast.Inspect(file, func(n ast.Node) bool {
		switch s := n.(type) {
		case *ast.Field:
			if isAuditType(s.Type) {
				for _, id := range s.Names {
					check(id)
				}
			}
		case *ast.ValueSpec:
			if s.Type != nil && isAuditType(s.Type) {
				for _, id := range s.Names {
					check(id)
				}
			}
			for i, v := range s.Values {
				if isAuditConstructor(v) && i < len(s.Names) {
					check(s.Names[i])
				}
			}
		case *ast.AssignStmt:
			if len(s.Rhs) == 1 && isAuditConstructor(s.Rhs[0]) && len(s.Lhs) > 0 {
				if id, ok := s.Lhs[0].(*ast.Ident); ok {
					check(id)
				}
			}
		}
		return true
	})
	return out
}

// TestAuditRuleSeesViolations runs the rule on a file with one violation
// of each kind, so that a rule that stopped seeing them fails.
func TestAuditRuleSeesViolations(t *testing.T) {
	const src = `package x

type server struct {
	audit audit.Writer
	log   audit.Writer
}

func f(s *server, sink *audit.FileSink) {
	_ = s.audit.Write(ctx, ev)
	s.audit.Write(ctx, ev)
	defer sink.Close()
	go sink.Write(ctx, ev)
	w, _ := audit.OpenFile("p", audit.Options{})
	_, _ = w.Write(b) // an http.ResponseWriter by the naming rule: allowed
	if err := s.audit.Write(ctx, ev); err != nil {
		return
	}
}
`
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "x.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	dropped := droppedAuditErrors(fset, file)
	names := checkAuditNames(fset, file)
	if len(dropped) != 4 {
		t.Errorf("dropped errors found: %d %q, want 4 (_ =, bare, defer, go)", len(dropped), dropped)
	}
	if len(names) != 2 || !strings.Contains(names[0], `"log"`) || !strings.Contains(names[1], `"w"`) {
		t.Errorf("naming problems found: %q, want the field log and the variable w", names)
	}
}
