package admintoken

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/storage/memory"
)

func TestParse(t *testing.T) {
	const id, secret = "0123456789abcdef", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_01234"
	tests := []struct {
		name   string
		in     string
		wantOK bool
	}{
		{"valid", "kfa_" + id + "_" + secret, true},
		{"secret of dashes and underscores", "kfa_" + id + "_" + strings.Repeat("_", 42) + "-", true},
		{"secret starting with underscore", "kfa_" + id + "__" + secret[1:], true},
		{"empty", "", false},
		{"wrong prefix", "kfb_" + id + "_" + secret, false},
		{"id 15", "kfa_" + id[1:] + "_" + secret, false},
		{"id 17", "kfa_" + id + "0_" + secret[1:], false},
		{"secret 42", "kfa_" + id + "_" + secret[1:], false},
		{"secret 44", "kfa_" + id + "_" + secret + "0", false},
		{"newline after", "kfa_" + id + "_" + secret + "\n", false},
		{"newline before", "\nkfa_" + id + "_" + secret, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotID, gotSecret, ok := parse(tt.in)
			if ok != tt.wantOK {
				t.Fatalf("got ok=%v, want %v", ok, tt.wantOK)
			}
			if ok && format(gotID, gotSecret) != tt.in {
				t.Errorf("got id %q and secret %q, which format to something else than the input", gotID, gotSecret)
			}
			if !ok && (gotID != "" || gotSecret != "") {
				t.Errorf("got id %q and secret %q for a rejected token, want empty", gotID, gotSecret)
			}
		})
	}
}

// TestNewTokensParse: every token Create makes parses back to its parts.
func TestNewTokensParse(t *testing.T) {
	for range 100 {
		secret, tok, err := newToken("a", []string{ScopeAll}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		id, s, ok := parse(format(tok.ID, secret))
		if !ok || id != tok.ID || s != secret {
			t.Fatalf("got %q, %q, %v, want %q, %q, true", id, s, ok, tok.ID, secret)
		}
	}
}

// wellFormed is a byte-by-byte restatement of the token format, to check
// parse against.
func wellFormed(s string) bool {
	if len(s) != 64 || s[:4] != "kfa_" || s[20] != '_' {
		return false
	}
	for i := 4; i < 20; i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	for i := 21; i < 64; i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// FuzzParse feeds arbitrary strings to the admin-token parser and to
// Authenticate. Properties:
//   - nothing panics;
//   - parse accepts exactly the strings of the documented format (checked
//     against a byte-by-byte restatement of it);
//   - anything accepted splits into a 16-hex id and a 43-character
//     secret that format back to the input, byte for byte;
//   - against a store holding one token, only that token's exact string
//     authenticates; everything else is ErrInvalid, the same error.
func FuzzParse(f *testing.F) {
	st := memory.New()
	ctx := context.Background()
	valid, rec, err := Create(ctx, st, "fuzz", []string{ScopeAll}, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		valid, valid + "\n", " " + valid, valid[:len(valid)-1], valid + "A", strings.ToUpper(valid),
		"kfa_" + rec.ID + "_" + strings.Repeat("A", 43), "kfa_ffffffffffffffff" + valid[20:],
		"", "kfa_", "kfa__", "kfa_0123456789abcdef_", "kfa_０123456789abcdef_" + strings.Repeat("A", 43),
		valid[:30] + "\x00" + valid[31:], valid[:63] + "=",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		id, secret, ok := parse(in)
		if ok != wellFormed(in) {
			t.Fatalf("parse(%q) ok=%v, but the format says %v", in, ok, wellFormed(in))
		}
		if ok {
			if len(id) != 16 || len(secret) != 43 || format(id, secret) != in {
				t.Fatalf("parse(%q) = %q, %q: does not format back to the input", in, id, secret)
			}
		} else if id != "" || secret != "" {
			t.Fatalf("parse(%q) rejected the input but returned %q, %q", in, id, secret)
		}
		got, err := Authenticate(ctx, st, in)
		if in == valid {
			if err != nil || got == nil || got.ID != rec.ID {
				t.Fatalf("the valid token: got %+v, %v", got, err)
			}
			return
		}
		if got != nil || !errors.Is(err, ErrInvalid) || err != ErrInvalid {
			t.Fatalf("Authenticate(%q) = %+v, %v; want nil, ErrInvalid", in, got, err)
		}
	})
}
