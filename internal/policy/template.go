package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Template variables that are not claims.
const (
	VarRole    = "role"
	VarLeaseID = "lease_id"
)

// A template is a parsed session-name, tag-value or source-identity
// template: literal text, {claim}, {/json/pointer}, {role} and {lease_id}.
// "{{" and "}}" stand for literal braces.
type template struct {
	src   string
	parts []tplPart
}

type tplPartKind uint8

const (
	partLit tplPartKind = iota
	partClaim
	partVar
)

type tplPart struct {
	kind tplPartKind
	// text is the literal text, the variable name, or the placeholder as
	// written ("project_path", "/kubernetes.io/namespace").
	text string
	path []string
}

// parseTemplate parses src, checking claim placeholders against known
// (nil accepts any claim). It returns every unknown claim as a problem, but
// stops at the first syntax error.
func parseTemplate(src string, known map[string]bool) (template, []string) {
	t := template{src: src}
	var problems []string
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, tplPart{kind: partLit, text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '{' && strings.HasPrefix(src[i:], "{{"):
			lit.WriteByte('{')
			i += 2
		case c == '}' && strings.HasPrefix(src[i:], "}}"):
			lit.WriteByte('}')
			i += 2
		case c == '}':
			return t, append(problems, fmt.Sprintf("unmatched } at offset %d (write }} for a literal brace)", i))
		case c == '{':
			end := strings.IndexAny(src[i+1:], "{}")
			if end < 0 || src[i+1+end] == '{' {
				return t, append(problems, fmt.Sprintf("unclosed { at offset %d (write {{ for a literal brace)", i))
			}
			name := src[i+1 : i+1+end]
			i += end + 2
			if name == "" {
				return t, append(problems, fmt.Sprintf("empty placeholder {} at offset %d", i-2))
			}
			flush()
			if name == VarRole || name == VarLeaseID {
				t.parts = append(t.parts, tplPart{kind: partVar, text: name})
				continue
			}
			path, err := parseClaimPath(name)
			if err != nil {
				problems = append(problems, fmt.Sprintf("{%s}: %v", name, err))
				continue
			}
			if p := checkClaimName(path, known); p != "" {
				problems = append(problems, fmt.Sprintf("{%s}: %s", name, p))
				continue
			}
			t.parts = append(t.parts, tplPart{kind: partClaim, text: name, path: path})
		default:
			lit.WriteByte(c)
			i++
		}
	}
	flush()
	return t, problems
}

// uses reports whether the template has the placeholder name ("job_id",
// "/kubernetes.io/pod/uid", "lease_id").
func (t *template) uses(name string) bool {
	for _, p := range t.parts {
		if p.kind != partLit && p.text == name {
			return true
		}
	}
	return false
}

// literalPrefix returns the literal text before the first placeholder.
func (t *template) literalPrefix() string {
	if len(t.parts) > 0 && t.parts[0].kind == partLit {
		return t.parts[0].text
	}
	return ""
}

// render expands the template. Missing claims and variables render as "".
func (t *template) render(claims map[string]any, vars func(string) string) string {
	if len(t.parts) == 1 && t.parts[0].kind == partLit {
		return t.parts[0].text
	}
	var b strings.Builder
	for _, p := range t.parts {
		switch p.kind {
		case partLit:
			b.WriteString(p.text)
		case partVar:
			b.WriteString(vars(p.text))
		case partClaim:
			if v, ok := lookup(claims, p.path); ok {
				b.WriteString(claimText(v))
			}
		}
	}
	return b.String()
}

// STS name limits (RoleSessionName, SourceIdentity).
const (
	minSTSName = 2
	maxSTSName = 64
	// stsHashKeep is how much of an over-long name is kept before
	// "-" and 8 hex characters of its SHA-256.
	stsHashKeep = maxSTSName - 1 - 8
)

func stsNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("_+=,.@-", c) >= 0
}

// sanitizeSTSName maps s onto [\w+=,.@-]{2,64}: every other character
// becomes "-", and a name longer than 64 keeps its first 55 characters plus
// "-" and the first 8 hex characters of the SHA-256 of the whole sanitised
// name, so names that differ only past the cut stay distinct. what names
// the value in the error for names shorter than 2.
func sanitizeSTSName(s, what string) (string, error) {
	clean := true
	for i := 0; i < len(s); i++ {
		if !stsNameByte(s[i]) {
			clean = false
			break
		}
	}
	if !clean {
		var b strings.Builder
		b.Grow(len(s))
		for _, r := range s {
			if r < utf8.RuneSelf && stsNameByte(byte(r)) {
				b.WriteByte(byte(r))
			} else {
				b.WriteByte('-')
			}
		}
		s = b.String()
	}
	if len(s) > maxSTSName {
		sum := sha256.Sum256([]byte(s))
		s = s[:stsHashKeep] + "-" + hex.EncodeToString(sum[:4])
	}
	if len(s) < minSTSName {
		return "", fmt.Errorf("policy: %s %q is shorter than %d characters", what, s, minSTSName)
	}
	return s, nil
}

// tagRune reports whether r may appear in a session tag key or value:
// [\p{L}\p{Z}\p{N}_.:/=+\-@].
func tagRune(r rune) bool {
	if r < utf8.RuneSelf {
		c := byte(r)
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == ' ' || strings.IndexByte("_.:/=+-@", c) >= 0
	}
	return r != utf8.RuneError && (unicode.IsLetter(r) || unicode.Is(unicode.Z, r) || unicode.IsNumber(r))
}

// Session tag limits.
const (
	maxTagKey   = 128
	maxTagValue = 256
	maxTags     = 50
)

// sanitizeTagValue replaces characters outside the tag charset with "_" and
// keeps at most 256 characters.
func sanitizeTagValue(s string) string {
	n := 0
	clean := true
	for _, r := range s {
		n++
		if !tagRune(r) {
			clean = false
		}
	}
	if clean && n <= maxTagValue {
		return s
	}
	var b strings.Builder
	n = 0
	for _, r := range s {
		if n == maxTagValue {
			break
		}
		n++
		if tagRune(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
