package httpapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keyferry/keyferry/internal/api"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		ctype    string
		wantCode string
	}{
		{name: "ok", body: `{"role":"r","token":"t"}`},
		{name: "charset", body: `{"role":"r"}`, ctype: "application/json; charset=utf-8"},
		{name: "empty", body: ``, wantCode: "invalid_json"},
		{name: "syntax", body: `{"role":`, wantCode: "invalid_json"},
		{name: "type", body: `{"role":1}`, wantCode: "invalid_json"},
		{name: "unknown", body: `{"rolez":"r"}`, wantCode: "unknown_field"},
		{name: "two objects", body: `{}{}`, wantCode: "invalid_json"},
		{name: "form", body: `role=r`, ctype: "application/x-www-form-urlencoded", wantCode: "unsupported_media_type"},
		{name: "too large", body: `{"token":"` + strings.Repeat("x", 200) + `"}`, wantCode: "body_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/creds", strings.NewReader(tt.body))
			r.Header.Set("Content-Type", "application/json")
			if tt.ctype != "" {
				r.Header.Set("Content-Type", tt.ctype)
			}
			r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 100)
			var req api.CredsRequest
			err := decode(r, &req)
			got := ""
			if err != nil {
				got = toFault(err).Code
			}
			if got != tt.wantCode {
				t.Fatalf("got code %q (%v), want %q", got, err, tt.wantCode)
			}
		})
	}
}

// FuzzDecode: no request body panics the decoder, every failure maps to a
// 4xx API error, and the message never echoes more than the decoder's own
// bounded text.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"role":"r","token":"t"}`, `{"ttl_seconds":1e99}`, `[`, `{"role":"\u0000"}`, `null`, `{"token":{"a":1}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := httptest.NewRequest("POST", "/v1/creds", strings.NewReader(string(b)))
		r.Header.Set("Content-Type", "application/json")
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 4096)
		var req api.CredsRequest
		err := decode(r, &req)
		if err == nil {
			return
		}
		e := toFault(err)
		var me *http.MaxBytesError
		if st := status(e.Kind); st < 400 || st >= 500 {
			if !errors.As(err, &me) {
				t.Fatalf("status %d for %q", st, b)
			}
		}
		if len(e.Message) > 300 {
			t.Fatalf("message too long: %d", len(e.Message))
		}
	})
}
