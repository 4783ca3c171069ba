package policy

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/keyferry/keyferry/internal/identity"
)

// Claim names per issuer kind, from the claim tables of
// shared/reference/identity-tokens-and-trust-policies.md (§1.2, §1.3, §2, §3).
var (
	gitlabClaimNames = []string{
		"iss", "sub", "aud", "exp", "nbf", "iat", "jti",
		"namespace_id", "namespace_path", "project_id", "project_path",
		"job_project_id", "job_project_path", "job_namespace_id", "job_namespace_path",
		"source_project_id", "source_project_path",
		"user_id", "user_login", "user_email", "user_access_level", "user_identities",
		"pipeline_id", "job_id", "pipeline_source",
		"ref", "ref_type", "ref_path", "ref_protected",
		"groups_direct",
		"environment", "environment_protected", "deployment_tier", "environment_action",
		"runner_id", "runner_environment", "sha",
		"ci_config_ref_uri", "ci_config_sha", "project_visibility",
		"job_source", "job_config",
	}
	githubClaimNames = []string{
		"aud", "iss", "sub", "exp", "iat", "jti", "nbf",
		"actor", "actor_id", "base_ref", "head_ref", "enterprise", "enterprise_id",
		"environment", "event_name", "job_workflow_ref", "job_workflow_sha",
		"ref", "ref_type", "repository", "repository_id", "repository_owner",
		"repository_owner_id", "repository_visibility", "run_id", "run_number",
		"run_attempt", "runner_environment", "sha", "workflow", "workflow_ref",
		"workflow_sha",
	}
	kubernetesClaimNames = []string{
		"aud", "exp", "iat", "nbf", "iss", "jti", "sub", "kubernetes.io",
	}
)

// objectClaims are claims whose value is an object (or a list of objects):
// a match on them never succeeds, so a role must point into them instead.
var objectClaims = map[identity.Kind][]string{
	identity.KindGitLab:     {"user_identities", "job_config"},
	identity.KindKubernetes: {"kubernetes.io"},
}

// KnownClaims returns the claim names tokens of the given kind carry, as a
// fresh set. It returns nil for generic issuers (and unknown kinds): any
// claim name is then accepted. Nested Kubernetes claims are addressed with
// JSON pointers whose first segment is in the set ("/kubernetes.io/namespace").
func KnownClaims(kind identity.Kind) map[string]bool {
	var names []string
	switch kind {
	case identity.KindGitLab:
		names = gitlabClaimNames
	case identity.KindGitHub:
		names = githubClaimNames
	case identity.KindKubernetes:
		names = kubernetesClaimNames
	default:
		return nil
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return set
}

func isObjectClaim(kind identity.Kind, name string) bool {
	for _, n := range objectClaims[kind] {
		if n == name {
			return true
		}
	}
	return false
}

// parseClaimPath turns a match key or a template placeholder into a path of
// object keys: "ref" → [ref]; "/kubernetes.io/pod/name" → [kubernetes.io pod
// name] (RFC 6901: ~1 is "/", ~0 is "~").
func parseClaimPath(s string) ([]string, error) {
	if s == "" {
		return nil, errors.New("empty claim name")
	}
	if s[0] != '/' {
		return []string{s}, nil
	}
	segs := strings.Split(s[1:], "/")
	for i, seg := range segs {
		if !strings.Contains(seg, "~") {
			continue
		}
		var b strings.Builder
		for j := 0; j < len(seg); j++ {
			if seg[j] != '~' {
				b.WriteByte(seg[j])
				continue
			}
			if j+1 < len(seg) && seg[j+1] == '0' {
				b.WriteByte('~')
			} else if j+1 < len(seg) && seg[j+1] == '1' {
				b.WriteByte('/')
			} else {
				return nil, errors.New("bad JSON pointer escape (use ~0 for ~ and ~1 for /)")
			}
			j++
		}
		segs[i] = b.String()
	}
	if segs[0] == "" {
		return nil, errors.New("JSON pointer has an empty first segment")
	}
	return segs, nil
}

// canonicalKey renders a path the way a role author would write it for a
// top-level claim ("sub") or a nested one ("/kubernetes.io/namespace").
func canonicalKey(path []string) string {
	if len(path) == 1 {
		return path[0]
	}
	var b strings.Builder
	for _, seg := range path {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(seg, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// checkClaimName reports a problem with a claim reference, or "" if the
// path's first segment is known for the kind (known == nil accepts all).
func checkClaimName(path []string, known map[string]bool) string {
	if known == nil || known[path[0]] {
		return ""
	}
	if len(path) > 1 {
		return "JSON pointer starts with " + strconv.Quote(path[0]) + ", which is not a known claim"
	}
	return strconv.Quote(path[0]) + " is not a known claim"
}

// lookup resolves a claim path in decoded token claims.
func lookup(claims map[string]any, path []string) (any, bool) {
	v, ok := claims[path[0]]
	if !ok {
		return nil, false
	}
	for _, seg := range path[1:] {
		switch t := v.(type) {
		case map[string]any:
			if v, ok = t[seg]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(t) || (len(seg) > 1 && seg[0] == '0') {
				return nil, false
			}
			v = t[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// scalarString is the string a claim value is compared as: strings as is,
// booleans "true"/"false", integers (int64 or integral float64) in decimal.
// It reports false for null, lists and objects.
func scalarString(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case bool:
		if t {
			return "true", true
		}
		return "false", true
	case int64:
		return strconv.FormatInt(t, 10), true
	case int:
		return strconv.Itoa(t), true
	case int32:
		return strconv.FormatInt(int64(t), 10), true
	case uint64:
		return strconv.FormatUint(t, 10), true
	case float64:
		return floatString(t), true
	case json.Number:
		if s, err := numberString(t); err == nil {
			return s, true
		}
		return t.String(), true
	}
	return "", false
}

// floatString prints integral floats without a fraction or exponent ("42")
// and others in their shortest exact form ("1.5").
func floatString(f float64) string {
	if f == 0 {
		return "0" // also for -0
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// claimText is what a template placeholder renders for a claim value:
// scalars as scalarString, lists as their scalar items joined with ",",
// anything else as "".
func claimText(v any) string {
	if s, ok := scalarString(v); ok {
		return s
	}
	var items []string
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			if s, ok := scalarString(e); ok {
				items = append(items, s)
			}
		}
	case []string:
		items = t
	}
	return strings.Join(items, ",")
}
