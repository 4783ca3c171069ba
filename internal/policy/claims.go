package policy

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/cikind"
	"github.com/keyferry/keyferry/internal/identity"
)

// KnownClaims returns the claim names tokens of the given kind carry, as a
// fresh set. It returns nil for generic issuers (and unknown kinds): any
// claim name is then accepted. Nested Kubernetes claims are addressed with
// JSON pointers whose first segment is in the set ("/kubernetes.io/namespace").
func KnownClaims(kind identity.Kind) map[string]bool {
	return cikind.Of(string(kind)).KnownClaims()
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
		return api.FloatString(t), true
	case json.Number:
		if s, err := api.NumberString(t); err == nil {
			return s, true
		}
		return t.String(), true
	}
	return "", false
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
