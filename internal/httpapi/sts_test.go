package httpapi

import (
	"context"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/keyferry/keyferry/internal/admintoken"
	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/lease"
	"github.com/keyferry/keyferry/internal/metrics"
	"github.com/keyferry/keyferry/internal/registry"
	"github.com/keyferry/keyferry/internal/storage/memory"
)

const stsARN = "arn:aws:iam::123456789012:role/deploy"

func stsForm(kv ...string) url.Values {
	f := url.Values{
		"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"}, "RoleArn": {stsARN},
		"RoleSessionName": {"gl-302"}, "WebIdentityToken": {"eyJ.eyJ.sig"},
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "\x00delete" {
			f.Del(kv[i])
			continue
		}
		f.Set(kv[i], kv[i+1])
	}
	return f
}

// TestValidateSTSForm pins the limits of STS's parameter rules that
// validateSTSForm claims to apply, at their boundaries.
func TestValidateSTSForm(t *testing.T) {
	arnOfLen := func(n int) string {
		return "arn:aws:iam::" + strings.Repeat("1", 12) + ":role/" + strings.Repeat("r", n-31)
	}
	tests := []struct {
		name     string
		form     url.Values
		wantCode string // "" accepted
	}{
		{"minimal", stsForm("Version", "\x00delete"), ""},
		{"all parameters", stsForm("DurationSeconds", "3600", "ProviderId", "x"), ""},
		{"role arn missing", stsForm("RoleArn", "\x00delete"), "ValidationError"},
		{"role arn of 2048", stsForm("RoleArn", arnOfLen(2048)), ""},
		{"role arn of 2049", stsForm("RoleArn", arnOfLen(2049)), "ValidationError"},
		{"role arn without account", stsForm("RoleArn", "arn:aws:iam:::role/deploy"), ""},
		{"role arn with path", stsForm("RoleArn", "arn:aws:iam::123456789012:role/ci/deploy"), ""},
		{"role arn in another partition", stsForm("RoleArn", "arn:aws-cn:iam::123456789012:role/deploy"), ""},
		{"user arn", stsForm("RoleArn", "arn:aws:iam::123456789012:user/deploy"), "ValidationError"},
		{"role arn with short account", stsForm("RoleArn", "arn:aws:iam::12345678901:role/deploy"), "ValidationError"},
		{"role arn with newline", stsForm("RoleArn", stsARN+"\n"), "ValidationError"},
		{"session name of 1", stsForm("RoleSessionName", "a"), "ValidationError"},
		{"session name of 2", stsForm("RoleSessionName", "ab"), ""},
		{"session name of 64", stsForm("RoleSessionName", strings.Repeat("a", 64)), ""},
		{"session name of 65", stsForm("RoleSessionName", strings.Repeat("a", 65)), "ValidationError"},
		{"session name with every allowed symbol", stsForm("RoleSessionName", "a_+=,.@-Z9"), ""},
		{"session name with a space", stsForm("RoleSessionName", "gl 302"), "ValidationError"},
		{"session name with a non-ASCII letter", stsForm("RoleSessionName", "glé"), "ValidationError"},
		{"session name missing", stsForm("RoleSessionName", "\x00delete"), "ValidationError"},
		{"token of 3", stsForm("WebIdentityToken", "abc"), "ValidationError"},
		{"token of 4", stsForm("WebIdentityToken", "abcd"), ""},
		{"token at the limit", stsForm("WebIdentityToken", strings.Repeat("a", identity.MaxTokenLen)), ""},
		{"token over the limit", stsForm("WebIdentityToken", strings.Repeat("a", identity.MaxTokenLen+1)), "ValidationError"},
		{"duration 899", stsForm("DurationSeconds", "899"), "ValidationError"},
		{"duration 900", stsForm("DurationSeconds", "900"), ""},
		{"duration 43200", stsForm("DurationSeconds", "43200"), ""},
		{"duration 43201", stsForm("DurationSeconds", "43201"), "ValidationError"},
		{"duration not a number", stsForm("DurationSeconds", "1h"), "ValidationError"},
		{"duration overflowing", stsForm("DurationSeconds", "99999999999999999999"), "ValidationError"},
		{"session policy", stsForm("Policy", "{}"), "ValidationError"},
		{"managed policy", stsForm("PolicyArns.member.1.arn", "arn:aws:iam::aws:policy/ReadOnlyAccess"), "ValidationError"},
		{"unknown parameter", stsForm("Tags.member.1.Key", "x"), "InvalidParameterValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validateSTSForm(tt.form)
			got := ""
			if e != nil {
				got = e.code
				if e.status != http.StatusBadRequest || e.message == "" {
					t.Errorf("got status %d and message %q, want 400 and a message", e.status, e.message)
				}
				if tok := tt.form.Get("WebIdentityToken"); len(tok) >= 3 && strings.Contains(e.message, tok) {
					t.Errorf("the message %q echoes the token", e.message)
				}
			}
			if got != tt.wantCode {
				t.Fatalf("got code %q (%+v), want %q", got, e, tt.wantCode)
			}
		})
	}
}

// rejectingVerifier records the tokens the broker asked it to verify,
// and rejects them all.
type rejectingVerifier struct {
	mu     sync.Mutex
	tokens []string
}

func (v *rejectingVerifier) Verify(_ context.Context, raw string) (*identity.Identity, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.tokens = append(v.tokens, raw)
	return nil, &identity.Error{Code: identity.CodeUnknownIssuer, Message: "the token's issuer is not trusted"}
}

func (v *rejectingVerifier) take() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	t := v.tokens
	v.tokens = nil
	return t
}

// discardAudit accepts and drops every event (a fuzz run writes one per
// refused request).
type discardAudit struct{}

func (discardAudit) Write(context.Context, *audit.Event) error { return nil }

// stsServer returns the API handler with real lease and registry
// components (no roles) in front of a verifier that rejects every token.
func stsServer(t testing.TB) (http.Handler, *rejectingVerifier) {
	t.Helper()
	st := memory.New()
	reg := registry.New(registry.Config{Store: st, Audit: discardAudit{}})
	v := &rejectingVerifier{}
	issuer := lease.NewIssuer(lease.IssuerConfig{Store: st, Audit: discardAudit{}, Verifier: v, Roles: reg})
	leases := lease.NewLifecycle(lease.LifecycleConfig{Store: st, Audit: discardAudit{}, Roles: reg})
	tokens := admintoken.New(admintoken.Config{Store: st, Audit: discardAudit{}})
	return New(Config{Issuer: issuer, Leases: leases, Registry: reg, Verifier: v, Tokens: tokens, Metrics: metrics.New(), MaxBodyBytes: 64 << 10}), v
}

// stsParams are the parameters of AssumeRoleWithWebIdentity keyferry
// accepts.
var stsParams = map[string]bool{"Action": true, "Version": true, "RoleArn": true, "RoleSessionName": true,
	"WebIdentityToken": true, "DurationSeconds": true, "ProviderId": true}

// stsWellFormed restates, byte by byte and independently of sts.go's
// regular expressions, the parameter rules of AssumeRoleWithWebIdentity
// that keyferry enforces, and reports the first one f breaks ("" if none).
func stsWellFormed(f url.Values) string {
	for k := range f {
		if !stsParams[k] {
			return "unknown parameter " + k
		}
	}
	if f.Get("Action") != "AssumeRoleWithWebIdentity" {
		return "Action"
	}
	if v := f.Get("Version"); v != "" && v != "2011-06-15" {
		return "Version"
	}
	word := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
	}
	arn := f.Get("RoleArn")
	if len(arn) < 20 || len(arn) > 2048 {
		return "RoleArn length"
	}
	p := strings.SplitN(arn, ":", 6)
	if len(p) != 6 || p[0] != "arn" || !strings.HasPrefix(p[1], "aws") || p[2] != "iam" || p[3] != "" {
		return "RoleArn shape"
	}
	for i := range len(p[1]) {
		if c := p[1][i]; !word(c) && c != '-' {
			return "RoleArn partition"
		}
	}
	if a := p[4]; a != "" {
		if len(a) != 12 {
			return "RoleArn account"
		}
		for i := range len(a) {
			if a[i] < '0' || a[i] > '9' {
				return "RoleArn account"
			}
		}
	}
	name, ok := strings.CutPrefix(p[5], "role/")
	if !ok || name == "" {
		return "RoleArn resource"
	}
	for i := range len(name) {
		if c := name[i]; !word(c) && !strings.ContainsRune("+=,.@/-", rune(c)) {
			return "RoleArn name"
		}
	}
	sn := f.Get("RoleSessionName")
	if len(sn) < 2 || len(sn) > 64 {
		return "RoleSessionName length"
	}
	for i := range len(sn) {
		if c := sn[i]; !word(c) && !strings.ContainsRune("+=,.@-", rune(c)) {
			return "RoleSessionName charset"
		}
	}
	if tok := f.Get("WebIdentityToken"); len(tok) < 4 || len(tok) > identity.MaxTokenLen {
		return "WebIdentityToken length"
	}
	if d := f.Get("DurationSeconds"); d != "" {
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil || n < 900 || n > 43200 {
			return "DurationSeconds"
		}
	}
	return ""
}

type stsErrorDoc struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

// FuzzSTSForm posts arbitrary bodies to the STS-compatible endpoint
// (through the real handler, lease manager and registry; the verifier
// rejects every token). Properties:
//   - nothing panics, and every answer is an STS ErrorResponse with a
//     4xx status, Type Sender, a code and a message;
//   - a form reaches token verification exactly when it satisfies STS's
//     parameter rules as restated in stsWellFormed (known parameters
//     only, RoleArn shape and length, RoleSessionName charset and
//     length, DurationSeconds range, token size), and then the verifier
//     gets the form's WebIdentityToken unchanged;
//   - no answer echoes the token: the same form with the token replaced
//     by a canary of the same length gets an answer that contains the
//     token's text just as often (answers may quote other parameters, so
//     text the token shares with them proves nothing).
func FuzzSTSForm(f *testing.F) {
	h, v := stsServer(f)
	for _, seed := range []url.Values{
		stsForm(), stsForm("Version", "\x00delete"), stsForm("DurationSeconds", "900"), stsForm("DurationSeconds", "+900"),
		stsForm("DurationSeconds", "-1"), stsForm("RoleArn", "arn:aws:iam:::role/a"), stsForm("RoleSessionName", "a"),
		stsForm("Policy", "{}"), stsForm("Action", "GetCallerIdentity"), stsForm("Action", "\x00delete"),
		stsForm("WebIdentityToken", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"), stsForm("Action", "eyJ.eyJ.sig"),
	} {
		f.Add(seed.Encode(), uint8(0))
	}
	f.Add("Action=AssumeRoleWithWebIdentity&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fx&RoleSessionName=ab&WebIdentityToken=abcd&WebIdentityToken=x", uint8(0))
	f.Add("%zz=1", uint8(0))
	f.Add("a=b;c=d", uint8(0))
	f.Add(stsForm().Encode(), uint8(1))
	f.Add(stsForm().Encode(), uint8(2))
	contentTypes := []string{"application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8", "application/json", ""}
	const maxBody = 64 << 10 // stsServer's MaxBodyBytes

	f.Fuzz(func(t *testing.T, body string, ctIndex uint8) {
		ct := contentTypes[int(ctIndex)%len(contentTypes)]
		post := func(body string) (*httptest.ResponseRecorder, []string) {
			r := httptest.NewRequest(http.MethodPost, "/sts", strings.NewReader(body))
			if ct != "" {
				r.Header.Set("Content-Type", ct)
			}
			r.Header.Set("X-Request-Id", "fuzz-request-0001")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w, v.take()
		}
		w, verified := post(body)

		var doc stsErrorDoc
		if err := xml.Unmarshal(w.Body.Bytes(), &doc); err != nil {
			t.Fatalf("status %d, body %q: not an STS ErrorResponse: %v", w.Code, w.Body, err)
		}
		if w.Code < 400 || w.Code >= 500 || doc.Error.Type != "Sender" || doc.Error.Code == "" || doc.Error.Message == "" {
			t.Fatalf("got status %d, type %q, code %q, message %q; want a 4xx Sender error with a code and a message",
				w.Code, doc.Error.Type, doc.Error.Code, doc.Error.Message)
		}
		if got := w.Header().Get("Content-Type"); got != "text/xml" {
			t.Fatalf("got Content-Type %q, want text/xml", got)
		}
		if len(body) > maxBody {
			if w.Code != http.StatusRequestEntityTooLarge || len(verified) != 0 {
				t.Fatalf("a %d-byte body: got status %d and %d verifications, want 413 and none", len(body), w.Code, len(verified))
			}
			return
		}

		form, perr := url.ParseQuery(body)
		problem := "not a form"
		if perr == nil && strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
			problem = stsWellFormed(form)
		}
		switch {
		case problem == "" && len(verified) != 1:
			t.Fatalf("a well-formed form was not verified (%d calls): %q", len(verified), body)
		case problem == "" && verified[0] != form.Get("WebIdentityToken"):
			t.Fatalf("the verifier got %q, want the form's token %q", verified[0], form.Get("WebIdentityToken"))
		case problem != "" && len(verified) != 0:
			t.Fatalf("a form breaking the rules (%s) reached token verification: %q", problem, body)
		}

		tok := form.Get("WebIdentityToken")
		if perr != nil || tok == "" || len(body) > maxBody/2 {
			return
		}
		unknown := 0
		for k := range form {
			if !stsParams[k] {
				unknown++
			}
		}
		if unknown > 1 {
			return // which unknown parameter an answer names depends on map order
		}
		fill := byte('Q')
		if strings.IndexByte(tok, fill) >= 0 {
			fill = '~'
		}
		canaryForm := url.Values{}
		for k, vs := range form {
			canaryForm[k] = append([]string(nil), vs...)
		}
		canaryForm["WebIdentityToken"][0] = strings.Repeat(string(fill), len(tok))
		cw, _ := post(canaryForm.Encode())
		echoed := func(b string) bool { return strings.Contains(b, tok) || strings.Contains(b, xmlEscape(tok)) }
		if echoed(w.Body.String()) && !echoed(cw.Body.String()) {
			t.Fatalf("the answer echoes the token %q: %s", tok, w.Body)
		}
	})
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
