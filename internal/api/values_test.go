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
		{name: "boolean", in: `true`, want: Values{"true"}},
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
