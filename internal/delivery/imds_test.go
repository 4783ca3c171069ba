package delivery

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/testutil"
)

func imdsGet(h http.Handler, path, token string) *httptest.ResponseRecorder {
	return serve(h, req(http.MethodGet, path, withHeader("X-aws-ec2-metadata-token", token)))
}

func TestIMDSFlowAndDocumentsAreExact(t *testing.T) {
	clk := testutil.NewClock(t0)
	s := newTestLocal(t, LocalConfig{Endpoints: EndpointIMDS, RoleName: "ci-role", Now: clk.Now})
	h := s.Handler()

	w := serve(h, req(http.MethodPut, IMDSTokenPath, withHeader("X-aws-ec2-metadata-token-ttl-seconds", "21600")))
	if w.Code != http.StatusOK {
		t.Fatalf("PUT: got %d %s", w.Code, w.Body)
	}
	if got := w.Header().Get("X-aws-ec2-metadata-token-ttl-seconds"); got != "21600" {
		t.Errorf("PUT: got TTL header %q, want 21600 (the Go SDK needs the echo)", got)
	}
	tok := w.Body.String()
	if strings.ContainsAny(tok, "\r\n =") || len(tok) < 40 {
		t.Errorf("token %q is not a bare header-safe value", tok)
	}

	for _, p := range []string{IMDSRoleListPath, strings.TrimSuffix(IMDSRoleListPath, "/")} {
		w = imdsGet(h, p, tok)
		if w.Code != http.StatusOK || w.Body.String() != "ci-role" {
			t.Errorf("GET %s: got %d %q, want 200 %q with no newline", p, w.Code, w.Body, "ci-role")
		}
	}

	w = imdsGet(h, IMDSRoleListPath+"ci-role", tok)
	want := `{"Code":"Success","LastUpdated":"2030-01-02T03:04:05Z","Type":"AWS-HMAC","AccessKeyId":"` + fixKeyID +
		`","SecretAccessKey":"` + fixSecret + `","Token":"` + fixSession + `","Expiration":"2030-01-02T04:34:05Z"}`
	if w.Code != http.StatusOK || w.Body.String() != want {
		t.Errorf("GET credentials: got %d\n%s\nwant\n%s", w.Code, w.Body, want)
	}

	w = imdsGet(h, IMDSIAMInfoPath, tok)
	var info map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &info); err != nil || w.Code != http.StatusOK {
		t.Fatalf("GET info: got %d %s (%v)", w.Code, w.Body, err)
	}
	if info["Code"] != "Success" || info["LastUpdated"] != "2030-01-02T03:04:05Z" ||
		info["InstanceProfileArn"] != "arn:aws:iam::123456789012:instance-profile/ci-role" ||
		!strings.HasPrefix(info["InstanceProfileId"], "AIPA") || len(info["InstanceProfileId"]) != 21 || len(info) != 4 {
		t.Errorf("GET info: got %v", info)
	}
}

func TestAttackIMDSGetWithoutTokenIsRefused(t *testing.T) {
	// IMDSv2 only: there is no v1 fallback for a caller that skips the PUT.
	s := newTestLocal(t, LocalConfig{Endpoints: EndpointIMDS})
	for _, p := range []string{IMDSRoleListPath, IMDSRoleListPath + DefaultIMDSRole, IMDSIAMInfoPath, "/latest/meta-data/"} {
		w := serve(s.Handler(), req(http.MethodGet, p))
		wantAPIError(t, w, http.StatusUnauthorized, "unauthorized")
		assertNoSecrets(t, "body", w.Body.String())
	}
}

func TestAttackForgedIMDSTokenIsRefused(t *testing.T) {
	s := newTestLocal(t, LocalConfig{Endpoints: EndpointIMDS})
	other := newTestLocal(t, LocalConfig{Endpoints: EndpointIMDS})
	good := imdsToken(t, s.Handler(), "60")
	raw, err := tokenEncoding.DecodeString(good)
	if err != nil {
		t.Fatal(err)
	}
	tamper := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x80
		return tokenEncoding.EncodeToString(b)
	}
	// The last character carries 2 data bits and 4 zero padding bits; a
	// lenient decoder would accept it with a padding bit set.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	lastChar := good[:len(good)-1] + string(alphabet[strings.IndexByte(alphabet, good[len(good)-1])^1])
	for _, tc := range []struct{ name, token string }{
		{"random", NewToken()},
		{"other server's token", imdsToken(t, other.Handler(), "60")},
		{"later expiry", tamper(0)},
		{"changed nonce", tamper(tokenExpiryLen)},
		{"changed mac", tamper(tokenRawLen - 1)},
		{"truncated", good[:len(good)-1]},
		{"extended", good + "A"},
		{"padded", base64.URLEncoding.EncodeToString(raw)},
		{"non-canonical last char", lastChar},
		{"container token", fixToken},
		{"two tokens", good + "," + good},
		{"empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.token == good {
				t.Fatal("the forged token equals the good one")
			}
			wantAPIError(t, imdsGet(s.Handler(), IMDSRoleListPath+DefaultIMDSRole, tc.token), http.StatusUnauthorized, "unauthorized")
		})
	}
	if w := imdsGet(s.Handler(), IMDSRoleListPath+DefaultIMDSRole, good); w.Code != http.StatusOK {
		t.Errorf("the good token: got %d, want 200", w.Code)
	}
}

func TestAttackExpiredIMDSTokenIsRefused(t *testing.T) {
	clk := testutil.NewClock(t0)
	s := newTestLocal(t, LocalConfig{Endpoints: EndpointIMDS, Now: clk.Now})
	tok := imdsToken(t, s.Handler(), "5")
	clk.Advance(5*time.Second - time.Nanosecond)
	if w := imdsGet(s.Handler(), IMDSRoleListPath, tok); w.Code != http.StatusOK {
		t.Fatalf("1ns before expiry: got %d, want 200", w.Code)
	}
	clk.Advance(time.Nanosecond)
	wantAPIError(t, imdsGet(s.Handler(), IMDSRoleListPath, tok), http.StatusUnauthorized, "unauthorized")
}

func TestAttackIMDSTokenTTLOutOfRangeIsRefused(t *testing.T) {
	s := newTestLocal(t, LocalConfig{Endpoints: EndpointIMDS})
	for _, tc := range []struct {
		name string
		ttl  []string
	}{
		{"missing", nil}, {"empty", []string{""}}, {"zero", []string{"0"}}, {"21601", []string{"21601"}},
		{"abc", []string{"abc"}}, {"negative", []string{"-1"}}, {"plus sign", []string{"+5"}},
		{"space", []string{" 5"}}, {"exponent", []string{"1e3"}}, {"huge", []string{"99999999999999999999"}},
		{"fraction", []string{"1.5"}}, {"two headers", []string{"5", "5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := req(http.MethodPut, IMDSTokenPath)
			for _, v := range tc.ttl {
				r.Header.Add("X-aws-ec2-metadata-token-ttl-seconds", v)
			}
			w := serve(s.Handler(), r)
			wantAPIError(t, w, http.StatusBadRequest, "invalid_ttl")
			if w.Header().Get("X-aws-ec2-metadata-token-ttl-seconds") != "" {
				t.Error("a refused PUT echoed a TTL")
			}
		})
	}
	for _, ttl := range []string{"1", "300", "21600", "00060"} {
		w := serve(s.Handler(), req(http.MethodPut, IMDSTokenPath, withHeader("X-aws-ec2-metadata-token-ttl-seconds", ttl)))
		if w.Code != http.StatusOK {
			t.Errorf("TTL %q: got %d, want 200", ttl, w.Code)
		}
	}
}

func TestAttackIMDSTokenPutWithXForwardedForIsRefused(t *testing.T) {
	s := newTestLocal(t, LocalConfig{Endpoints: EndpointIMDS})
	for _, v := range []string{"203.0.113.9", "127.0.0.1", ""} {
		r := req(http.MethodPut, IMDSTokenPath, withHeader("X-aws-ec2-metadata-token-ttl-seconds", "60"))
		r.Header["X-Forwarded-For"] = []string{v}
		wantAPIError(t, serve(s.Handler(), r), http.StatusBadRequest, "forwarded_request")
	}
}

func TestIMDSMethodsAndUnknownPaths(t *testing.T) {
	s := newTestLocal(t, LocalConfig{Endpoints: EndpointIMDS})
	tok := imdsToken(t, s.Handler(), "60")
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, IMDSTokenPath, http.StatusMethodNotAllowed},
		{http.MethodDelete, IMDSRoleListPath, http.StatusMethodNotAllowed},
		{http.MethodHead, IMDSRoleListPath, http.StatusMethodNotAllowed},
		{http.MethodGet, IMDSTokenPath, http.StatusMethodNotAllowed},
		{http.MethodPut, IMDSRoleListPath, http.StatusMethodNotAllowed},
		{http.MethodGet, IMDSRoleListPath + "other-role", http.StatusNotFound},
		{http.MethodGet, IMDSRoleListPath + DefaultIMDSRole + "/", http.StatusNotFound},
		{http.MethodGet, "/latest/meta-data/placement/region", http.StatusNotFound},
		{http.MethodGet, "/latest/user-data", http.StatusNotFound},
		{http.MethodGet, "/latest/", http.StatusNotFound},
		{http.MethodGet, "/creds", http.StatusNotFound}, // container endpoint not served
	} {
		r := req(tc.method, tc.path, withHeader("X-aws-ec2-metadata-token", tok), withHeader("X-aws-ec2-metadata-token-ttl-seconds", "60"))
		if w := serve(s.Handler(), r); w.Code != tc.status {
			t.Errorf("%s %s: got %d %s, want %d", tc.method, tc.path, w.Code, w.Body, tc.status)
		}
	}
}

func TestIMDSSourceErrorIsCallerSafe(t *testing.T) {
	s := newTestLocal(t, LocalConfig{Endpoints: EndpointIMDS, Source: failingSource(fixSession)})
	tok := imdsToken(t, s.Handler(), "60")
	w := imdsGet(s.Handler(), IMDSRoleListPath+DefaultIMDSRole, tok)
	wantAPIError(t, w, http.StatusBadGateway, "credentials_unavailable")
	assertNoSecrets(t, "body", w.Body.String())
}

func TestNewIMDSHandlerValidatesRoleName(t *testing.T) {
	for _, role := range []string{"a/b", "a b", strings.Repeat("r", 65), "role\n"} {
		if _, err := NewIMDSHandler(IMDSConfig{Source: staticSource(nil), RoleName: role}); err == nil {
			t.Errorf("role %q: got no error", role)
		}
	}
}

func FuzzIMDSToken(f *testing.F) {
	h, err := NewIMDSHandler(IMDSConfig{Source: staticSource(nil), Now: func() time.Time { return t0 }})
	if err != nil {
		f.Fatal(err)
	}
	good := h.mintToken(t0.Add(time.Hour))
	f.Add(good)
	f.Add(good[:10])
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		if h.validToken(tok) && tok != good {
			t.Errorf("forged token %q accepted", tok)
		}
	})
}

func FuzzParseTTL(f *testing.F) {
	for _, s := range []string{"1", "21600", "0", "abc", "+5", "007"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := parseTTL(s)
		if ok && (n < 1 || n > imdsMaxTTLSeconds || strings.TrimLeft(s, "0123456789") != "") {
			t.Errorf("parseTTL(%q) = %d, true", s, n)
		}
	})
}

func TestIMDSHeaderKeysAreCanonical(t *testing.T) {
	for _, k := range []string{hdrIMDSTTL, hdrIMDSToken} {
		if c := http.CanonicalHeaderKey(k); c != k {
			t.Errorf("got %q, want %q", k, c)
		}
	}
}
