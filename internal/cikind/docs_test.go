package cikind

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the generated parts of docs/ from the kind files")

// The docs hold tables with one or more rows per kind. They are rendered
// here from the kinds and compared with the files: a section between
// "<!-- kinds:NAME begin … -->" and "<!-- kinds:NAME end -->" lines, or a
// whole table row found by its first cell. `go test ./internal/cikind
// -update` rewrites them.

// docSection is a generated part of a docs file.
type docSection struct {
	file string // relative to the repository root
	// marker names a section between marker comments; row, when set
	// instead, is the first cell of a table row that is replaced whole.
	marker, row string
	render      func() string
}

var docSections = []docSection{
	{file: "docs/roles.md", marker: "claims", render: claimsTable},
	{file: "docs/roles.md", marker: "session-names", render: sessionNameTable},
	{file: "docs/roles.md", marker: "bindings", render: bindingTable},
	{file: "docs/configuration.md", row: "`kind`", render: kindRow},
	{file: "docs/configuration.md", row: "`max_token_age`", render: maxTokenAgeRow},
}

func code(s string) string { return "`" + s + "`" }

// claimsTable lists the claims roles may name, per kind.
func claimsTable() string {
	var b strings.Builder
	b.WriteString("| kind | claims roles may use |\n|---|---|\n")
	for _, k := range kinds {
		cell := k.claimsDoc
		if k.claims != nil {
			cell = strings.TrimSpace(code(strings.Join(k.claims, " ")) + " " + k.claimsDoc)
		}
		fmt.Fprintf(&b, "| %s | %s |\n", code(k.name), cell)
	}
	return b.String()
}

// sessionNameTable lists the default session name of each kind.
func sessionNameTable() string {
	var b strings.Builder
	b.WriteString("| issuer kind | default `session_name` |\n|---|---|\n")
	for _, k := range kinds {
		fmt.Fprintf(&b, "| %s | %s |\n", code(k.name), code(k.sessionName))
	}
	return b.String()
}

// bindingTable lists each kind's binding keys, one row per distinct Doc,
// rows in the order their first key is suggested.
func bindingTable() string {
	var b strings.Builder
	b.WriteString("| kind | binding keys | a value names a tenant when |\n|---|---|---|\n")
	for _, k := range kinds {
		var docs []string
		keys := map[string][]string{}
		for _, bd := range k.bindings {
			if _, ok := keys[bd.Doc]; !ok {
				docs = append(docs, bd.Doc)
			}
			keys[bd.Doc] = append(keys[bd.Doc], code(bd.Key))
		}
		for i, d := range docs {
			name := "| |"
			if i == 0 {
				name = "| " + code(k.name) + " |"
			}
			fmt.Fprintf(&b, "%s %s | %s |\n", name, strings.Join(keys[d], ", "), d)
		}
	}
	return b.String()
}

// kindRow is the kind row of the issuer fields table.
func kindRow() string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = code(k.name)
	}
	return "| `kind` | required | " + englishList(names) +
		". Selects the CI-shape check, the claims roles may use, the default session name and the default `max_token_age`. |"
}

// maxTokenAgeRow is the max_token_age row of the issuer fields table.
func maxTokenAgeRow() string {
	var ages, noIAT []string
	for _, k := range kinds {
		ages = append(ages, code(k.name)+" "+shortDuration(k.maxTokenAge))
		if k.iatOptional {
			noIAT = append(noIAT, code(k.name))
		}
	}
	row := "| `max_token_age` | " + strings.Join(ages, ", ") + " | reject tokens whose `iat` is older."
	if len(noIAT) > 0 {
		row += " A " + englishList(noIAT) + " token without `iat` is instead rejected when it stays valid for longer than this."
	}
	return row + " `0` means the default. |"
}

func englishList(items []string) string {
	if len(items) == 1 {
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// shortDuration prints whole hours as "24h" and whole minutes as "5m".
func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// splice returns doc with the section replaced by want, and the section's
// current text. A row is one line without its newline; a marked section
// is a table set off by blank lines.
func (s docSection) splice(doc, want string) (string, string, error) {
	if s.row != "" {
		prefix := "| " + s.row + " |"
		lines := strings.SplitAfter(doc, "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				got := strings.TrimSuffix(l, "\n")
				lines[i] = want + "\n"
				return strings.Join(lines, ""), got, nil
			}
		}
		return "", "", fmt.Errorf("no table row starting with %q", prefix)
	}
	begin := "<!-- kinds:" + s.marker + " begin"
	end := "<!-- kinds:" + s.marker + " end -->"
	i := strings.Index(doc, begin)
	if i < 0 {
		return "", "", fmt.Errorf("no %q marker", begin)
	}
	i += strings.IndexByte(doc[i:], '\n') + 1
	j := strings.Index(doc[i:], end)
	if j < 0 {
		return "", "", fmt.Errorf("no %q marker", end)
	}
	j += i
	return doc[:i] + want + doc[j:], doc[i:j], nil
}

func TestDocsTables(t *testing.T) {
	files := map[string]string{}
	for _, s := range docSections {
		name := s.file + " " + s.marker + s.row
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("..", "..", s.file)
			doc, ok := files[path]
			if !ok {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				doc = string(b)
			}
			want := s.render()
			if s.row == "" {
				want = "\n" + want + "\n"
			}
			next, got, err := s.splice(doc, want)
			if err != nil {
				t.Fatalf("%s: %v", s.file, err)
			}
			files[path] = next
			if got != want && !*update {
				t.Errorf("%s is out of date (run go test ./internal/cikind -update):\ngot:\n%s\nwant:\n%s", s.file, got, want)
			}
		})
	}
	if *update {
		for path, doc := range files {
			if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
