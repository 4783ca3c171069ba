package cikind_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"
)

var (
	uuidRE  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	sha40RE = regexp.MustCompile(`^[0-9a-f]{40}$`)
	digitRE = regexp.MustCompile(`^[1-9][0-9]*$`)
)

// roundTrip returns claims as a verifier sees them: through JSON, with
// numbers kept as json.Number so that int and float can be told apart.
func roundTrip(t *testing.T, claims map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// jsonType names the JSON type of a decoded value.
func jsonType(v any) string {
	switch n := v.(type) {
	case string:
		return "string"
	case bool:
		return "bool"
	case json.Number:
		if _, err := n.Int64(); err == nil {
			return "int"
		}
		return "float"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case nil:
		return "null"
	}
	return "?"
}
