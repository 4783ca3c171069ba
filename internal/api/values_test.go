package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
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
		{name: "empty string is kept for the role's validation to reject", in: `""`, want: Values{""}},
		{name: "object in list", in: `["a", {}]`, wantErr: "item 1: invalid match value: an object"},
		{name: "integer", in: `42`, want: Values{"42"}},
		{name: "integral float", in: `42.0`, want: Values{"42"}},
		{name: "exponent", in: `1e3`, want: Values{"1000"}},
		{name: "fraction", in: `1.5`, want: Values{"1.5"}},
		{name: "negative zero", in: `-0.0`, want: Values{"0"}},
		{name: "list of mixed scalars", in: `["main", true, 7]`, want: Values{"main", "true", "7"}},
		{name: "object", in: `{"a":1}`, wantErr: "invalid match value: an object is not a value"},
		{name: "null", in: `null`, wantErr: "invalid match value: null is not a value"},
		{name: "empty list", in: `[]`, wantErr: "invalid match value: empty list"},
		{name: "nested list", in: `["a", ["b"]]`, wantErr: "item 1 is a list; lists cannot be nested"},
		{name: "null in list", in: `[null]`, wantErr: "item 0: invalid match value: null"},
		{name: "huge number", in: `1e400`, wantErr: "number 1e400 is out of range"},
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
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValuesMarshal(t *testing.T) {
	tests := []struct {
		name string
		in   Values
		want string
	}{
		{name: "one value is a string", in: Values{"main"}, want: `"main"`},
		{name: "several are a list", in: Values{"main", "dev"}, want: `["main","dev"]`},
		{name: "none is an empty list", in: nil, want: `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.in)
			if err != nil || string(got) != tt.want {
				t.Errorf("got %s (%v), want %s", got, err, tt.want)
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
		if diff := slices.Equal(v, back); !diff {
			t.Fatalf("round trip of %q changed the values: %q, then %q", data, v, back)
		}
	})
}
