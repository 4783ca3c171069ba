package policy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValuesUnmarshal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Values
		wantErr string
	}{
		{name: "string", in: `"main"`, want: Values{"main"}},
		{name: "true", in: `true`, want: Values{"true"}},
		{name: "false", in: `false`, want: Values{"false"}},
		{name: "integer", in: `42`, want: Values{"42"}},
		{name: "integral float", in: `42.0`, want: Values{"42"}},
		{name: "exponent", in: `1e3`, want: Values{"1000"}},
		{name: "fraction", in: `1.5`, want: Values{"1.5"}},
		{name: "list of mixed scalars", in: `["main", true, 7]`, want: Values{"main", "true", "7"}},
		{name: "empty string is kept for Compile to reject", in: `""`, want: Values{""}},
		{name: "object", in: `{"a":1}`, wantErr: "an object is not a value"},
		{name: "null", in: `null`, wantErr: "null is not a value"},
		{name: "empty list", in: `[]`, wantErr: "empty list"},
		{name: "nested list", in: `["a", ["b"]]`, wantErr: "lists cannot be nested"},
		{name: "object in list", in: `["a", {}]`, wantErr: "item 1: invalid match value: an object"},
		{name: "null in list", in: `[null]`, wantErr: "item 0: invalid match value: null"},
		{name: "huge number", in: `1e400`, wantErr: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Values
			err := json.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("values mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

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

func TestValuesMarshal(t *testing.T) {
	tests := []struct {
		name string
		in   Values
		want string
	}{
		{name: "single value is a scalar", in: Values{"main"}, want: `"main"`},
		{name: "several values are a list", in: Values{"main", "release/*"}, want: `["main","release/*"]`},
		{name: "nil is an empty list", in: nil, want: `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if got := string(b); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func FuzzValues(f *testing.F) {
	for _, s := range []string{`"a"`, `true`, `42`, `4.2e1`, `["a",1,false]`, `[]`, `{}`, `null`, `[[1]]`, `"\u00e9"`, `-0`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v Values
		if err := json.Unmarshal(data, &v); err != nil {
			return
		}
		if len(v) == 0 {
			t.Fatalf("decoded %q into no values without an error", data)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal %q: %v", v, err)
		}
		var back Values
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		if diff := cmp.Diff(v, back); diff != "" {
			t.Fatalf("round trip of %q changed the values (-first +second):\n%s", data, diff)
		}
	})
}
