package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/keyferry/keyferry/internal/identity"
)

// A tenant binding is a match key that pins a role to one project, group,
// repository, owner or namespace. A role without one (and without
// allow_unbound) would accept tokens from every tenant of a shared issuer:
// see the reference's §5 (OIDC-001/002).

// bindingRule says whether one match value of a binding key names a
// tenant; it returns "" when it does, else why not.
type bindingRule func(g *glob) string

// exactOnly accepts only values without wildcards (IDs, owner names,
// namespaces): "4*" matches project 42 and project 4711.
func exactOnly(g *glob) string {
	if g.exact {
		return ""
	}
	return "a wildcard in an ID or owner matches other tenants"
}

// boundPath accepts exact values and globs whose literal part, after the
// given prefix, holds a complete first segment ending in sep:
// "group/*" is bound to a group; "acme*" also matches "acme-evil/x".
func boundPath(prefix string, sep byte) bindingRule {
	return func(g *glob) string {
		if g.exact {
			return ""
		}
		if !strings.HasPrefix(g.prefix, prefix) {
			if prefix == "" {
				return "a wildcard in the top-level segment matches other tenants"
			}
			return "a wildcard before the " + prefix + " part matches other tenants"
		}
		if i := strings.IndexByte(g.prefix[len(prefix):], sep); i <= 0 {
			return "a wildcard in the top-level segment matches other tenants"
		}
		return ""
	}
}

// literalPrefix accepts globs that start with at least one literal
// character (generic issuers: the sub grammar is unknown).
func literalPrefix(g *glob) string {
	if g.exact || g.prefix != "" {
		return ""
	}
	return "a leading wildcard matches every subject"
}

// tenantBindings returns the binding keys of a kind, in the order they are
// suggested, with the rule for their values.
func tenantBindings(kind identity.Kind) ([]string, map[string]bindingRule, string) {
	switch kind {
	case identity.KindGitLab:
		path := boundPath("", '/')
		return []string{"project_id", "project_path", "namespace_id", "namespace_path", "job_project_id", "job_project_path", "sub"},
			map[string]bindingRule{
				"project_id": exactOnly, "namespace_id": exactOnly, "job_project_id": exactOnly,
				"project_path": path, "namespace_path": path, "job_project_path": path,
				"sub": func(g *glob) string {
					if strings.HasPrefix(g.prefix, "job_project_path:") {
						return boundPath("job_project_path:", '/')(g)
					}
					return boundPath("project_path:", '/')(g)
				},
			},
			"not *, project_path:* or a wildcard in the top-level group such as acme*; group/* is fine"
	case identity.KindGitHub:
		return []string{"repository", "repository_id", "repository_owner", "repository_owner_id", "sub"},
			map[string]bindingRule{
				"repository_id": exactOnly, "repository_owner": exactOnly, "repository_owner_id": exactOnly,
				"repository": boundPath("", '/'),
				"sub":        boundPath("repo:", '/'),
			},
			"not repo:* or a wildcard in the owner such as acme*; acme/* is fine"
	case identity.KindKubernetes:
		return []string{"/kubernetes.io/namespace", "sub"},
			map[string]bindingRule{
				"/kubernetes.io/namespace": exactOnly,
				"sub":                      boundPath("system:serviceaccount:", ':'),
			},
			"a literal namespace: system:serviceaccount:NS:* is fine, system:serviceaccount:* is not"
	}
	return []string{"sub"}, map[string]bindingRule{"sub": literalPrefix}, "not * or a value starting with a wildcard"
}

// unboundProblem returns "" when some binding key of the kind is matched
// and every one of its values names a tenant (values are OR'ed, so one
// unbounded value unbinds the key); otherwise it explains what to bind.
func unboundProblem(kind identity.Kind, matchers []matcher) string {
	keys, rules, hint := tenantBindings(kind)
	var why []string
	for i := range matchers {
		m := &matchers[i]
		key := canonicalKey(m.path)
		rule, ok := rules[key]
		if !ok {
			continue
		}
		bound := true
		for j := range m.globs {
			if w := rule(&m.globs[j]); w != "" {
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
		kind, orList(keys), hint)
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
