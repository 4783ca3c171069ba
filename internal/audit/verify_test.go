package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// join concatenates lines.
func join(lines [][]byte) []byte { return bytes.Join(lines, nil) }

// edit returns a copy of lines with line i (1-based) replaced by f(line).
func edit(lines [][]byte, i int, f func([]byte) []byte) [][]byte {
	out := append([][]byte(nil), lines...)
	out[i-1] = f(bytes.Clone(lines[i-1]))
	return out
}

// rehash recomputes the hash of a line (newline included) for its
// prev_hash, as a forger who edits one line would.
func rehash(t *testing.T, line []byte) []byte {
	t.Helper()
	line = bytes.TrimSuffix(line, []byte("\n"))
	var v struct {
		PrevHash string `json:"prev_hash"`
	}
	if err := json.Unmarshal(line, &v); err != nil {
		t.Fatal(err)
	}
	head := line[:len(line)-len(lineTrailer)-hashHexLen]
	out := append(bytes.Clone(head), chainHash(v.PrevHash, head)...)
	return append(append(out, lineTrailer...), '\n')
}

func TestVerify(t *testing.T) {
	lines := chainLines(t, 20, 1, "")
	hashOf := func(i int) string {
		l, err := parseLine(bytes.TrimSuffix(lines[i-1], []byte("\n")))
		if err != nil {
			t.Fatal(err)
		}
		return l.Hash
	}
	replace := func(old, new string) func([]byte) []byte {
		return func(b []byte) []byte { return bytes.Replace(b, []byte(old), []byte(new), 1) }
	}
	// A line from the documented rule with a field this version lacks.
	future := func() []byte {
		head := `{"seq":1,"time":"2025-11-26T01:02:03Z","type":"issue","zz_new_field":{"a":[1,2]},"prev_hash":"","hash":"`
		sum := sha256.Sum256([]byte("\n" + head + `"}`))
		return []byte(head + hex.EncodeToString(sum[:]) + `"}` + "\n")
	}()

	for _, tc := range []struct {
		name     string
		in       []byte
		want     Report
		wantLine int
		wantErr  string
	}{
		{
			name: "chain",
			in:   join(lines),
			want: Report{Events: 20, First: 1, Last: 20, LastHash: hashOf(20)},
		},
		{
			name: "empty",
			in:   nil,
			want: Report{},
		},
		{
			name: "starts mid-chain after rotation",
			in:   join(lines[10:]),
			want: Report{Events: 10, First: 11, Last: 20, FirstPrevHash: hashOf(10), LastHash: hashOf(20)},
		},
		{
			name: "unknown future field",
			in:   future,
			want: Report{Events: 1, First: 1, Last: 1, LastHash: string(future[len(future)-67 : len(future)-3])},
		},
		{
			name:     "modified field",
			in:       join(edit(lines, 17, replace(`"role":"deploy"`, `"role":"admin!"`))),
			wantLine: 17,
			wantErr:  "hash mismatch (event modified)",
		},
		{
			name:     "modified field, line rehashed",
			in:       join(edit(lines, 5, func(b []byte) []byte { return rehash(t, replace(`"role":"deploy"`, `"role":"admin!"`)(b)) })),
			wantLine: 6,
			wantErr:  "prev_hash does not match line 5 (chain broken)",
		},
		{
			name:     "deleted line",
			in:       join(append(append([][]byte(nil), lines[:17]...), lines[18:]...)),
			wantLine: 18,
			wantErr:  "seq 19 follows 17 (events missing)",
		},
		{
			name:     "reordered lines",
			in:       join(append(append(append([][]byte(nil), lines[:4]...), lines[5], lines[4]), lines[6:]...)),
			wantLine: 5,
			wantErr:  "seq 6 follows 4 (events missing)",
		},
		{
			name:     "repeated line",
			in:       join(append(append([][]byte(nil), lines[:5]...), lines[4:]...)),
			wantLine: 6,
			wantErr:  "seq 5 follows 5 (events reordered or repeated)",
		},
		{
			name:     "inserted line from another chain",
			in:       join(append(append(append([][]byte(nil), lines[:2]...), chainLines(t, 1, 3, "")[0]), lines[3:]...)),
			wantLine: 3,
			wantErr:  "prev_hash does not match line 2 (chain broken)",
		},
		{
			name:     "genesis without seq 1",
			in:       join(chainLines(t, 2, 5, "")),
			wantLine: 1,
			wantErr:  "genesis event (empty prev_hash) has seq 5, want 1",
		},
		{
			name:     "seq 0",
			in:       join(chainLines(t, 1, 0, "")),
			wantLine: 1,
			wantErr:  "seq 0 (seq starts at 1)",
		},
		{
			name:     "no newline at end",
			in:       bytes.TrimSuffix(join(lines[:3]), []byte("\n")),
			wantLine: 3,
			wantErr:  "no newline at end of file (incomplete write)",
		},
		{
			name:     "truncated last line",
			in:       join(lines)[:len(join(lines))-40],
			wantLine: 20,
			wantErr:  "no newline at end of file",
		},
		{
			name:     "empty line",
			in:       append(append(bytes.Clone(lines[0]), '\n'), lines[1]...),
			wantLine: 2,
			wantErr:  "empty line",
		},
		{
			name:     "not an audit line",
			in:       []byte("hello world\n"),
			wantLine: 1,
			wantErr:  `does not end with a "hash" field`,
		},
		{
			name:     "hash field with valid trailer but invalid JSON",
			in:       []byte(`{"seq":1,,"prev_hash":"","hash":"` + strings.Repeat("a", 64) + "\"}\n"),
			wantLine: 1,
			wantErr:  "invalid JSON",
		},
		{
			name: "upper-case hash",
			in: edit(lines, 1, func(b []byte) []byte {
				sum := b[len(b)-3-hashHexLen : len(b)-3]
				copy(sum, bytes.ToUpper(sum))
				return b
			})[0],
			wantLine: 1,
			wantErr:  "hash is not 64 lower-case hex digits",
		},
		{
			name:     "no seq",
			in:       []byte(`{"prev_hash":"","hash":"` + strings.Repeat("a", 64) + "\"}\n"),
			wantLine: 1,
			wantErr:  "no seq",
		},
		{
			name:     "no prev_hash",
			in:       []byte(`{"seq":1,"hash":"` + strings.Repeat("a", 64) + "\"}\n"),
			wantLine: 1,
			wantErr:  "no prev_hash",
		},
		{
			name:     "line too long",
			in:       append(append(bytes.Clone(lines[0]), bytes.Repeat([]byte("x"), MaxLineBytes+1)...), '\n'),
			wantLine: 2,
			wantErr:  "longer than 1048576 bytes",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Verify(bytes.NewReader(tc.in))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("report (-want +got):\n%s", diff)
				}
				return
			}
			var verr *VerifyError
			if !errors.As(err, &verr) {
				t.Fatalf("got error %v, want a *VerifyError", err)
			}
			if verr.Line != tc.wantLine || !strings.Contains(verr.Problem, tc.wantErr) {
				t.Errorf("got line %d: %q, want line %d: %q", verr.Line, verr.Problem, tc.wantLine, tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "audit: line ") {
				t.Errorf("got error %q, want it to start %q", err, "audit: line ")
			}
			if got != (Report{}) {
				t.Errorf("got report %+v with an error, want the zero Report", got)
			}
		})
	}
}

func TestVerifyReadError(t *testing.T) {
	r := io.MultiReader(bytes.NewReader(join(chainLines(t, 2, 1, ""))), iotest.ErrReader(errInjected))
	_, err := Verify(r)
	if !errors.Is(err, errInjected) {
		t.Fatalf("got error %v, want it to wrap %v", err, errInjected)
	}
	if want := "audit: read line 3: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got error %q, want it to start %q", err, want)
	}
}

func FuzzVerify(f *testing.F) {
	lines := chainLines(f, 3, 1, "")
	f.Add(join(lines))
	f.Add(join(lines[1:]))
	f.Add(lines[0][:50])
	f.Add([]byte{})
	f.Add([]byte("\n"))
	f.Add([]byte(`{"seq":1,"prev_hash":"","hash":"` + strings.Repeat("a", 64) + "\"}\n"))
	f.Add(bytes.Replace(join(lines), []byte("deploy"), []byte("deplo\\u0079"), 1))
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := Verify(bytes.NewReader(in))
		if err != nil {
			var verr *VerifyError
			if !errors.As(err, &verr) || verr.Line < 1 {
				t.Fatalf("got error %v, want a *VerifyError with a line number", err)
			}
			if rep != (Report{}) {
				t.Fatalf("got report %+v with an error, want the zero Report", rep)
			}
			return
		}
		if got, want := rep.Events, bytes.Count(in, []byte("\n")); got != want {
			t.Fatalf("got %d events, want one per line (%d)", got, want)
		}
		if len(in) > 0 && in[len(in)-1] != '\n' {
			t.Fatal("input without a final newline verified")
		}
		if rep.Events > 0 && rep.Last-rep.First != uint64(rep.Events-1) {
			t.Fatalf("got seq %d..%d for %d events", rep.First, rep.Last, rep.Events)
		}
	})
}

// lineOfSize returns a valid line (newline included) at seq after prev, of
// exactly size bytes before its newline. It bypasses the sink's own,
// stricter limit.
func lineOfSize(t *testing.T, size int, seq uint64, prev string) []byte {
	t.Helper()
	encode := func(msg string) []byte {
		b, err := json.Marshal(Event{Type: TypeDeny, Time: testTime, Message: msg})
		if err != nil {
			t.Fatal(err)
		}
		line, _ := appendLine(nil, seq, prev, b[len(bodyPrefix):len(b)-len(bodySuffix)])
		return line
	}
	short := encode("m")
	line := encode(strings.Repeat("m", 1+size-(len(short)-1)))
	if len(line)-1 != size {
		t.Fatalf("built a %d-byte line, want %d", len(line)-1, size)
	}
	return line
}

func TestVerifyLineLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int
		wantErr string
	}{
		{"short", 200, ""},
		{"spans bufio's buffer", 200 << 10, ""},
		{"longest allowed", MaxLineBytes, ""},
		{"one byte too long", MaxLineBytes + 1, "line 1: longer than 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := lineOfSize(t, tc.size, 1, "")
			in = append(in, in...) // a second copy: "seq 1 follows 1" if read
			_, err := Verify(bytes.NewReader(in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got error %v, want %q", err, tc.wantErr)
				}
				return
			}
			want := "line 2: seq 1 follows 1"
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("got error %v, want %q (line 1 read whole, line 2 found)", err, want)
			}
			if _, err := Verify(bytes.NewReader(in[:len(in)/2])); err != nil {
				t.Errorf("one line: got error %v, want none", err)
			}
		})
	}
}
