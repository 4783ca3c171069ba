// Package rules holds the repository's rules as tests: every package is
// documented, every Go file is gofmt-formatted, and no file carries what
// looks like a real credential.
package rules

import (
	"bytes"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func repoFiles(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("git", "-C", "../..", "ls-files", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Skipf("git unavailable: %v", err) // not a checkout (e.g. a source tarball)
	}
	var files []string
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join("../..", f)); err == nil {
			files = append(files, f)
		}
	}
	return files
}

func TestEveryPackageHasADocComment(t *testing.T) {
	dirs := map[string]bool{}
	for _, f := range repoFiles(t) {
		if strings.HasSuffix(f, ".go") && !strings.HasSuffix(f, "_test.go") && !strings.Contains(f, "testdata/") {
			dirs[filepath.Dir(f)] = true
		}
	}
	for dir := range dirs {
		fset := token.NewFileSet()
		pkgs, err := parser.ParseDir(fset, filepath.Join("../..", dir), func(fi os.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Errorf("%s: %v", dir, err)
			continue
		}
		for name, p := range pkgs {
			documented := false
			for _, f := range p.Files {
				if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
					documented = true
				}
			}
			if !documented {
				t.Errorf("package %s in %s has no doc comment", name, dir)
			}
		}
	}
}

func TestGofmt(t *testing.T) {
	for _, f := range repoFiles(t) {
		if !strings.HasSuffix(f, ".go") {
			continue
		}
		src, err := os.ReadFile(filepath.Join("../..", f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := format.Source(src)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if !bytes.Equal(got, src) {
			t.Errorf("%s is not gofmt-formatted", f)
		}
	}
}

// TestNoCommittedCredentials looks for AWS secret keys and private keys in
// tracked files. Test fixtures must generate keys at run time.
func TestNoCommittedCredentials(t *testing.T) {
	akid := regexp.MustCompile(`\b(AKIA|ASIA)[A-Z0-9]{16}\b`)
	secretAssign := regexp.MustCompile(`(?i)aws_secret_access_key\s*[=:]\s*["']?[A-Za-z0-9/+=]{40}\b`)
	for _, f := range repoFiles(t) {
		b, err := os.ReadFile(filepath.Join("../..", f))
		if err != nil || bytes.IndexByte(b, 0) >= 0 {
			continue
		}
		s := string(b)
		if strings.Contains(s, "-----BEGIN RSA PRIVATE KEY-----") || strings.Contains(s, "-----BEGIN PRIVATE KEY-----") || strings.Contains(s, "-----BEGIN EC PRIVATE KEY-----") {
			if !strings.HasSuffix(f, "_test.go") && !strings.HasSuffix(f, ".go") {
				t.Errorf("%s holds a private key", f)
			}
		}
		for _, m := range akid.FindAllString(s, -1) {
			if !strings.Contains(m, "EXAMPLE") && !strings.Contains(m, "TEST") && !strings.Contains(m, "0000") {
				t.Errorf("%s: %s looks like a real AWS access key id", f, m)
			}
		}
		if secretAssign.MatchString(s) {
			t.Errorf("%s assigns what looks like a real AWS secret key", f)
		}
	}
}

// TestNoPointersOutsideTheRepository: code, docs and scripts stand alone.
// They may not send a reader to notes kept beside the repository (the
// team's design and style notes, its reference folder), which users and
// contributors do not have: what they need is written into docs/.
func TestNoPointersOutsideTheRepository(t *testing.T) {
	pointer := regexp.MustCompile(`(\.\./)?shared/(reference|STYLE|DESIGN|seed|hooks)|\bDESIGN\.md\b|\bSTYLE\.md\b`)
	for _, f := range repoFiles(t) {
		if f == "test/rules/rules_test.go" {
			continue // this rule names what it looks for
		}
		b, err := os.ReadFile(filepath.Join("../..", f))
		if err != nil || bytes.IndexByte(b, 0) >= 0 {
			continue
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := pointer.FindString(line); m != "" {
				t.Errorf("%s:%d: %q points outside the repository: put the facts in docs/ instead", f, i+1, m)
			}
		}
	}
}

// TestErrorLogKeyIsErr: an error is logged under "err" everywhere, so
// that one query finds every failure in the logs.
func TestErrorLogKeyIsErr(t *testing.T) {
	call := regexp.MustCompile(`\.(Debug|Info|Warn|Error|Log|LogAttrs)\(.*"error",`)
	for _, f := range repoFiles(t) {
		if !strings.HasSuffix(f, ".go") || strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("../..", f))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if call.MatchString(line) {
				t.Errorf(`%s:%d: an error logged under "error": use "err"`, f, i+1)
			}
		}
	}
}
