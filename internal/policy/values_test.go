package policy

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValuesInRole(t *testing.T) {
	var r Role
	err := json.Unmarshal([]byte(`{"name":"x","match":{"project_id":42,"ref_protected":true,"ref":["main","release/*"]}}`), &r)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	want := map[string]Values{"project_id": {"42"}, "ref_protected": {"true"}, "ref": {"main", "release/*"}}
	if diff := cmp.Diff(want, r.Match); diff != "" {
		t.Errorf("match mismatch (-want +got):\n%s", diff)
	}
}
