package policy

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A glob is a compiled match value: "*" matches any run of characters
// (including "/" and ":"), "?" exactly one character, and "\" makes the
// next character literal. A value without any of the three is compared
// exactly. Globs are immutable and safe for concurrent use.
type glob struct {
	src    string
	quoted string // strconv.Quote(src), for check details
	// exact is set when the pattern has no wildcard; lit then holds the
	// (unescaped) value.
	exact bool
	lit   string
	toks  []globTok
	// prefix is the literal text before the first wildcard; the unbound
	// check inspects it.
	prefix string
}

type globTokKind uint8

const (
	tokLit globTokKind = iota
	tokOne
	tokStar
)

type globTok struct {
	kind globTokKind
	lit  string
}

// hasGlobMeta reports whether s contains a character with glob meaning.
func hasGlobMeta(s string) bool { return strings.ContainsAny(s, `*?\`) }

// escapeGlob returns a pattern that matches exactly s.
func escapeGlob(s string) string {
	if !hasGlobMeta(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '*' || c == '?' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func compileGlob(p string) (glob, error) {
	g := glob{src: p, quoted: strconv.Quote(p)}
	if !hasGlobMeta(p) {
		g.exact, g.lit, g.prefix = true, p, p
		return g, nil
	}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			g.toks = append(g.toks, globTok{kind: tokLit, lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '\\':
			if i+1 == len(p) {
				return glob{}, errors.New(`ends with a lone \ (write \\ for a literal backslash)`)
			}
			i++
			lit.WriteByte(p[i])
		case '*':
			flush()
			if n := len(g.toks); n == 0 || g.toks[n-1].kind != tokStar {
				g.toks = append(g.toks, globTok{kind: tokStar})
			}
		case '?':
			flush()
			g.toks = append(g.toks, globTok{kind: tokOne})
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	wild := false
	for _, t := range g.toks {
		if t.kind != tokLit {
			wild = true
			break
		}
		g.prefix += t.lit
	}
	if !wild {
		// Only escapes: still an exact comparison.
		g.exact, g.lit = true, g.prefix
		g.toks = nil
	}
	return g, nil
}

// match reports whether s matches the glob. It runs in O(len(s)·tokens)
// without allocating: on a mismatch it retries from the last "*", one
// character further on.
func (g *glob) match(s string) bool {
	if g.exact {
		return s == g.lit
	}
	toks := g.toks
	p, i := 0, 0
	starP, starI := -1, 0
	for {
		if p < len(toks) {
			switch t := toks[p]; t.kind {
			case tokStar:
				p++
				starP, starI = p, i
				continue
			case tokOne:
				if i < len(s) {
					_, n := utf8.DecodeRuneInString(s[i:])
					i += n
					p++
					continue
				}
			case tokLit:
				if strings.HasPrefix(s[i:], t.lit) {
					i += len(t.lit)
					p++
					continue
				}
			}
		} else if i == len(s) {
			return true
		}
		if starP < 0 || starI >= len(s) {
			return false
		}
		_, n := utf8.DecodeRuneInString(s[starI:])
		starI += n
		p, i = starP, starI
	}
}
