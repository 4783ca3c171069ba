package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/keyferry/keyferry/internal/api"
)

// TestEventFieldOrder guards the encoding the chain relies on: "seq" first,
// "prev_hash" and "hash" last, and nothing that changes encoding/json's
// field order.
func TestEventFieldOrder(t *testing.T) {
	typ := reflect.TypeFor[Event]()
	tag := func(i int) string { return strings.Split(typ.Field(i).Tag.Get("json"), ",")[0] }
	n := typ.NumField()
	for _, tc := range []struct {
		name  string
		index int
		want  string
	}{
		{"first", 0, "seq"},
		{"second to last", n - 2, "prev_hash"},
		{"last", n - 1, "hash"},
	} {
		if got := tag(tc.index); got != tc.want {
			t.Errorf("%s field of Event has JSON key %q, want %q: add new fields before PrevHash", tc.name, got, tc.want)
		}
	}
	for i := range n {
		if typ.Field(i).Anonymous {
			t.Errorf("Event embeds %s: embedded fields reorder the JSON keys", typ.Field(i).Name)
		}
	}
	marshaler := reflect.TypeFor[json.Marshaler]()
	if typ.Implements(marshaler) || reflect.PointerTo(typ).Implements(marshaler) {
		t.Error("Event implements json.Marshaler: the chain needs encoding/json's struct encoding")
	}
	full := filledEvent(t)
	b, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	if want := `,"hash":"x-Event.Hash"}`; !bytes.HasSuffix(b, []byte(want)) {
		t.Errorf("encoded Event ends %q, want it to end with %q", b[max(0, len(b)-40):], want)
	}
}

// TestLineIsEventJSON checks that the lines the sink builds are exactly
// json.Marshal of the full Event.
func TestLineIsEventJSON(t *testing.T) {
	full := filledEvent(t)
	for _, tc := range []struct {
		name string
		ev   Event
		seq  uint64
		prev string
	}{
		{"every field set", full, 12345, strings.Repeat("ab", 32)},
		{"genesis", *testEvent(1), 1, ""},
		{"minimal", Event{Type: TypeServerStart, Time: testTime}, 18446744073709551615, strings.Repeat("0", 64)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := encodeBody(&tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			line, sum := appendLine(nil, tc.seq, tc.prev, body)
			ev := tc.ev
			ev.Seq, ev.PrevHash, ev.Hash = tc.seq, tc.prev, sum
			want, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(line); got != string(want)+"\n" {
				t.Errorf("got line\n%s\nwant json.Marshal\n%s", got, want)
			}
		})
	}
}

// TestHashMatchesSpec checks the chain with a verifier written from the
// documented rule alone, without the package's parsing.
func TestHashMatchesSpec(t *testing.T) {
	trailer := regexp.MustCompile(`"hash":"[0-9a-f]{64}"\}$`)
	prev := ""
	for i, line := range chainLines(t, 5, 1, "") {
		line = bytes.TrimSuffix(line, []byte("\n"))
		var ev struct {
			PrevHash string `json:"prev_hash"`
			Hash     string `json:"hash"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.PrevHash != prev {
			t.Errorf("line %d: got prev_hash %q, want %q", i+1, ev.PrevHash, prev)
		}
		blank := trailer.ReplaceAll(line, []byte(`"hash":""}`))
		sum := sha256.Sum256([]byte(prev + "\n" + string(blank)))
		if got, want := ev.Hash, hex.EncodeToString(sum[:]); got != want {
			t.Errorf("line %d: got hash %s, want %s", i+1, got, want)
		}
		prev = ev.Hash
	}
}

// TestNoSecretKeys is a tripwire: no key of an encoded Event, at any depth,
// may name a secret.
func TestNoSecretKeys(t *testing.T) {
	ev := filledEvent(t)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if got, want := len(m), reflect.TypeFor[Event]().NumField(); got != want {
		t.Errorf("got %d keys in %s, want one per Event field (%d)", got, b, want)
	}
	var keys []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if obj, ok := v.(map[string]any); ok {
			for k, v := range obj {
				keys = append(keys, prefix+k)
				walk(prefix+k+".", v)
			}
		}
	}
	walk("", m)
	if len(keys) <= len(m) {
		t.Fatalf("got keys %v, want the nested identity keys too", keys)
	}
	for _, k := range keys {
		for _, bad := range []string{"secret", "session_token", "password"} {
			if strings.Contains(strings.ToLower(k), bad) {
				t.Errorf("audit event key %q contains %q: audit events must never carry secrets", k, bad)
			}
		}
	}
}

// TestCloneEventIsDeep fails when Event or api.Identity gains a field that
// cloneEvent would share between copies.
func TestCloneEventIsDeep(t *testing.T) {
	for i, f := range reflect.VisibleFields(reflect.TypeFor[Event]()) {
		switch f.Type.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface, reflect.Chan, reflect.Func:
			if f.Name != "Identity" {
				t.Errorf("Event field %d (%s) is a %s: make cloneEvent copy it, then update this test", i, f.Name, f.Type.Kind())
			}
		}
	}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[api.Identity]()) {
		if f.Type.Kind() != reflect.String {
			t.Errorf("api.Identity field %s is a %s, want string: cloneEvent copies Identity shallowly", f.Name, f.Type.Kind())
		}
	}
	ev := filledEvent(t)
	c := cloneEvent(ev)
	c.Identity.Project = "changed"
	if ev.Identity.Project == "changed" {
		t.Error("cloneEvent shares Identity with the original")
	}
}

func TestEncodeBodyTooLarge(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int
		wantErr bool
	}{
		{"fits", MaxLineBytes - 2000, false},
		{"too large", MaxLineBytes, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := encodeBody(&Event{Type: TypeDeny, Message: strings.Repeat("m", tc.size)})
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Fatalf("got error %v, want error: %t", err, tc.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "audit: ") {
				t.Errorf("got error %q, want it prefixed %q", err, "audit: ")
			}
		})
	}
}
