package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/keyferry/keyferry/internal/cikind"
	"github.com/keyferry/keyferry/internal/identity"
)

// A tenant binding is a match key that pins a role to one project, group,
// repository, owner or namespace. A role without one (and without
// allow_unbound) would accept tokens from every tenant of a shared issuer:
// an aud-only or "project_path:*" trust is the classic misconfiguration
// of CI OIDC trust. Each kind declares its binding keys and their rules
// (internal/cikind); this file interprets the rules on compiled globs.

// ruleProblem returns "" when the match value g names a tenant under
// rule, else why not.
func ruleProblem(rule cikind.Rule, g *glob) string {
	if g.exact {
		return ""
	}
	switch rule.Form {
	case cikind.Exact:
		return "a wildcard in an ID or owner matches other tenants"
	case cikind.Path:
		return pathProblem(rule, g.prefix)
	case cikind.LiteralPrefix:
		if g.prefix != "" {
			return ""
		}
		return "a leading wildcard matches every subject"
	}
	return "a wildcard matches other tenants" // an unknown form binds nothing
}

// pathProblem applies a Path rule to the literal text before a glob's
// first wildcard: after one of the rule's prefixes it must hold the
// rule's number of complete segments. "group/*" is bound to a group;
// "acme*" also matches "acme-evil/x".
func pathProblem(rule cikind.Rule, lit string) string {
	prefix := ""
	if len(rule.Prefixes) > 0 {
		i := slices.IndexFunc(rule.Prefixes, func(p string) bool { return strings.HasPrefix(lit, p) })
		if i < 0 {
			return "a wildcard before the " + rule.Prefixes[0] + " part matches other tenants"
		}
		prefix = rule.Prefixes[i]
	}
	rest := lit[len(prefix):]
	for range max(rule.Segments, 1) {
		i := strings.IndexByte(rest, rule.Sep)
		if i <= 0 {
			if rule.Segments > 1 {
				return fmt.Sprintf("a wildcard in the first %d segments matches other tenants", rule.Segments)
			}
			return "a wildcard in the top-level segment matches other tenants"
		}
		rest = rest[i+1:]
	}
	return ""
}

// unboundProblem returns "" when some binding key of the kind is matched
// and every one of its values names a tenant (values are OR'ed, so one
// unbounded value unbinds the key); otherwise it explains what to bind.
func unboundProblem(kind identity.Kind, matchers []matcher) string {
	k := cikind.Of(string(kind))
	var why []string
	for i := range matchers {
		m := &matchers[i]
		key := canonicalKey(m.path)
		rule, ok := k.Binding(key)
		if !ok {
			continue
		}
		bound := true
		for j := range m.globs {
			if w := ruleProblem(rule, &m.globs[j]); w != "" {
				why = append(why, fmt.Sprintf("%s %q: %s", key, m.globs[j].src, w))
				bound = false
			}
		}
		if bound {
			return ""
		}
	}
	slices.Sort(why)
	msg := fmt.Sprintf("the role binds no tenant, so any %s token of this issuer could use it; match %s with values that name a tenant (%s), or set allow_unbound: true",
		kind, orList(k.BindingKeys()), k.BindingHint())
	if len(why) > 0 {
		msg += " [" + strings.Join(why, "; ") + "]"
	}
	return msg
}

func orList(keys []string) string {
	if len(keys) == 1 {
		return keys[0]
	}
	return "one of " + strings.Join(keys[:len(keys)-1], ", ") + " or " + keys[len(keys)-1]
}
