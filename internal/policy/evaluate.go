package policy

import (
	"strconv"
	"strings"
)

// Result is the outcome of evaluating a role against a token's claims.
type Result struct {
	Allowed bool
	// Checks holds one entry per match key (sorted by key), then one named
	// "condition" if the role has a condition.
	Checks []Check
}

// Check is the outcome of one match key or of the condition. Detail may
// show expected and actual values: it is for administrators (role test)
// and logs, never for the caller; see Result.Denial.
type Check struct {
	// Name is the match key ("ref", "/kubernetes.io/namespace") or
	// "condition".
	Name   string
	OK     bool
	Detail string
}

// Check names and details that callers may branch on.
const (
	// CheckCondition is the Name of the condition's check.
	CheckCondition = "condition"
	// DetailClaimMissing is the Detail of a match check whose claim is
	// absent from the token.
	DetailClaimMissing = "claim missing"
)

// Evaluate checks claims against the role: every match key must match
// (AND), a key matches when the claim, compared as a string, matches any
// of its values (OR), and the condition, if any, must be true. All checks
// are run, so the result explains every failure. Evaluate is safe for
// concurrent use.
func (c *Compiled) Evaluate(claims map[string]any) Result {
	checks := make([]Check, 0, len(c.matchers)+1)
	allowed := true
	for i := range c.matchers {
		ch := c.matchers[i].check(claims)
		allowed = allowed && ch.OK
		checks = append(checks, ch)
	}
	if c.cond != nil {
		ok, detail := c.cond.eval(claims)
		allowed = allowed && ok
		checks = append(checks, Check{Name: CheckCondition, OK: ok, Detail: detail})
	}
	return Result{Allowed: allowed, Checks: checks}
}

func (m *matcher) check(claims map[string]any) Check {
	v, ok := lookup(claims, m.path)
	if !ok {
		return Check{Name: m.key, Detail: DetailClaimMissing}
	}
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			if s, ok := scalarString(e); ok {
				if g := m.find(s); g != nil {
					return m.ok(s, g)
				}
			}
		}
		return Check{Name: m.key, Detail: "no item of " + listText(t) + " matches " + m.want}
	case []string:
		for _, s := range t {
			if g := m.find(s); g != nil {
				return m.ok(s, g)
			}
		}
		return Check{Name: m.key, Detail: "no item of " + listText(t) + " matches " + m.want}
	case map[string]any:
		return Check{Name: m.key, Detail: "claim is an object, which never matches"}
	case nil:
		return Check{Name: m.key, Detail: "claim is null, which never matches"}
	}
	s, ok := scalarString(v)
	if !ok {
		return Check{Name: m.key, Detail: "claim has an unsupported type"}
	}
	if g := m.find(s); g != nil {
		return m.ok(s, g)
	}
	return Check{Name: m.key, Detail: "got " + strconv.Quote(s) + ", want " + m.want}
}

func (m *matcher) find(s string) *glob {
	for i := range m.globs {
		if m.globs[i].match(s) {
			return &m.globs[i]
		}
	}
	return nil
}

func (m *matcher) ok(s string, g *glob) Check {
	return Check{Name: m.key, OK: true, Detail: strconv.Quote(s) + " matches " + g.quoted}
}

func listText[T any](items []T) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, e := range items {
		if i > 0 {
			b.WriteString(", ")
		}
		if s, ok := scalarString(e); ok {
			b.WriteString(strconv.Quote(s))
		} else {
			b.WriteString("…")
		}
	}
	b.WriteByte(']')
	return b.String()
}

// Denial returns a message that may be sent to the caller when the role
// refuses them: it names the first failing claim (or the condition) but
// never the accepted values. It returns "" when the result is allowed.
func (r Result) Denial() string {
	if r.Allowed {
		return ""
	}
	for _, ch := range r.Checks {
		switch {
		case ch.OK:
		case ch.Name == CheckCondition:
			return "the token does not satisfy the role's condition"
		case ch.Detail == DetailClaimMissing:
			return "the token has no " + strconv.Quote(ch.Name) + " claim, which the role requires"
		default:
			return "the token's " + strconv.Quote(ch.Name) + " claim does not match the role"
		}
	}
	return "the role does not allow this token"
}
