package policy

import (
	"strings"
	"testing"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		in      string
		want    bool
	}{
		{name: "exact", pattern: "main", in: "main", want: true},
		{name: "exact is not a prefix", pattern: "main", in: "main2", want: false},
		{name: "exact is case-sensitive", pattern: "main", in: "Main", want: false},
		{name: "star spans slashes", pattern: "release/*", in: "release/2024/q1", want: true},
		{name: "star matches empty", pattern: "release/*", in: "release/", want: true},
		{name: "star needs the literal", pattern: "release/*", in: "releases/1", want: false},
		{name: "star in the middle", pattern: "acme/*/infra", in: "acme/a/b/infra", want: true},
		{name: "star in the middle needs suffix", pattern: "acme/*/infra", in: "acme/a/b/infra2", want: false},
		{name: "backtracking", pattern: "*ab*ab", in: "xxabyyabab", want: true},
		{name: "star colon", pattern: "project_path:g/p:ref_type:branch:ref:*", in: "project_path:g/p:ref_type:branch:ref:x:y", want: true},
		{name: "question mark is one character", pattern: "v?", in: "v1", want: true},
		{name: "question mark is exactly one", pattern: "v?", in: "v12", want: false},
		{name: "question mark is one rune", pattern: "caf?", in: "café", want: true},
		{name: "question mark needs a character", pattern: "v?", in: "v", want: false},
		{name: "escaped star is literal", pattern: `a\*`, in: "a*", want: true},
		{name: "escaped star does not glob", pattern: `a\*`, in: "ab", want: false},
		{name: "escaped backslash", pattern: `a\\b`, in: `a\b`, want: true},
		{name: "double star is one star", pattern: "a**b", in: "axyzb", want: true},
		{name: "only star", pattern: "*", in: "", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := compileGlob(tt.pattern)
			if err != nil {
				t.Fatalf("compileGlob(%q): got error %v, want none", tt.pattern, err)
			}
			if got := g.match(tt.in); got != tt.want {
				t.Errorf("%q matching %q: got %v, want %v", tt.pattern, tt.in, got, tt.want)
			}
		})
	}
}

func TestGlobErrors(t *testing.T) {
	if _, err := compileGlob(`abc\`); err == nil || !strings.Contains(err.Error(), `lone \`) {
		t.Errorf(`compileGlob("abc\\"): got %v, want a lone-backslash error`, err)
	}
}

func TestGlobPrefix(t *testing.T) {
	tests := []struct{ pattern, want string }{
		{"group/*", "group/"},
		{"acme*", "acme"},
		{`a\*b*`, "a*b"},
		{"*", ""},
		{"exact", "exact"},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			g, err := compileGlob(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if g.prefix != tt.want {
				t.Errorf("got prefix %q, want %q", g.prefix, tt.want)
			}
		})
	}
}

func FuzzGlob(f *testing.F) {
	for _, s := range [][2]string{{"release/*", "release/1"}, {"a?c", "abc"}, {`a\*`, "a*"}, {"*a*b*", "xaxbx"}, {"caf?", "café"}, {"\xff*", "\xff\xfe"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		g, err := compileGlob(pattern)
		if err == nil {
			g.match(s) // must not panic
		}
		if !hasGlobMeta(pattern) {
			if err != nil {
				t.Fatalf("compileGlob(%q): got error %v, want none for a pattern without metacharacters", pattern, err)
			}
			if !g.match(pattern) {
				t.Fatalf("%q does not match itself", pattern)
			}
			if g.match(s) != (s == pattern) {
				t.Fatalf("%q matching %q: got %v, want %v", pattern, s, g.match(s), s == pattern)
			}
		}
		// Escaping any string yields a pattern that matches exactly it.
		e, err := compileGlob(escapeGlob(s))
		if err != nil {
			t.Fatalf("compileGlob(escapeGlob(%q)): %v", s, err)
		}
		if !e.match(s) || e.match(s+"x") {
			t.Fatalf("escaped %q does not match exactly itself", s)
		}
		// A trailing star after the escaped string is a prefix match.
		p, err := compileGlob(escapeGlob(s) + "*")
		if err != nil || !p.match(s+pattern) {
			t.Fatalf("%q* does not match %q", s, s+pattern)
		}
	})
}
