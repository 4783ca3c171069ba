package proccache

import (
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keyferry/keyferry/internal/testutil"
)

// jwt builds an unsigned-but-shaped token: the signature is a fixed marker
// so tests can check it never leaks.
func jwt(t testing.TB, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return seg(`{"alg":"RS256","kid":"k1"}`) + "." + base64.RawURLEncoding.EncodeToString(b) + "." + sigMarker
}

const sigMarker = "c2lnbmF0dXJlLW1hcmtlcg"

func seg(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestTokenIdentity(t *testing.T) {
	gitlab := map[string]any{
		"iss": "https://gitlab.example.com", "sub": "project_path:g/p:ref_type:branch:ref:main",
		"aud": "keyferry", "project_path": "g/p", "project_id": "42", "pipeline_id": "1001", "job_id": "31337",
		"iat": 1700000000, "exp": 1700003600, "jti": "0e6d1c56-0000",
	}
	github := map[string]any{
		"iss": "https://token.actions.githubusercontent.com", "sub": "repo:o/r:ref:refs/heads/main",
		"repository": "o/r", "run_id": "9876543210", "run_attempt": "2", "jti": "per-request", "iat": 1700000000,
	}
	k8s := map[string]any{
		"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:ci:runner",
		"kubernetes.io": map[string]any{
			"namespace":      "ci",
			"pod":            map[string]any{"name": "runner-abc", "uid": "5f1e-pod-uid"},
			"serviceaccount": map[string]any{"name": "runner", "uid": "sa-uid"},
		},
		"jti": "k8s-jti",
	}
	with := func(m map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return out
	}
	tests := []struct {
		name  string
		token string
		want  string
	}{
		{"gitlab", jwt(t, gitlab), "https://gitlab.example.com|project_path:g/p:ref_type:branch:ref:main|job:31337"},
		{"gitlab numeric job_id", jwt(t, with(gitlab, "job_id", 31337)), "https://gitlab.example.com|project_path:g/p:ref_type:branch:ref:main|job:31337"},
		{"github", jwt(t, github), "https://token.actions.githubusercontent.com|repo:o/r:ref:refs/heads/main|run:9876543210:2"},
		{"github without run_attempt", jwt(t, with(github, "run_attempt", nil)), "https://token.actions.githubusercontent.com|repo:o/r:ref:refs/heads/main|run:9876543210"},
		{"kubernetes pod-bound", jwt(t, k8s), "https://kubernetes.default.svc|system:serviceaccount:ci:runner|pod:5f1e-pod-uid"},
		{"kubernetes pod name only", jwt(t, with(k8s, "kubernetes.io", map[string]any{"pod": map[string]any{"name": "runner-abc"}})), "https://kubernetes.default.svc|system:serviceaccount:ci:runner|pod:runner-abc"},
		{"kubernetes not pod-bound: jti", jwt(t, with(k8s, "kubernetes.io", map[string]any{"namespace": "ci"})), "https://kubernetes.default.svc|system:serviceaccount:ci:runner|jti:k8s-jti"},
		{"generic: iat", jwt(t, map[string]any{"iss": "https://idp", "sub": "x", "iat": 1700000000}), "https://idp|x|iat:1700000000"},
		{"separator and controls escaped", jwt(t, map[string]any{"iss": "https://a|b", "sub": "c%d\x1b[31m", "job_id": "1|2"}), "https://a%7Cb|c%25d%1B[31m|job:1%7C2"},
		{"padded payload", seg(`{}`) + "." + base64.URLEncoding.EncodeToString([]byte(`{"iss":"i","sub":"s","job_id":"7"}`)) + "." + sigMarker, "i|s|job:7"},
		{"surrounding whitespace", " " + jwt(t, gitlab) + "\n", "https://gitlab.example.com|project_path:g/p:ref_type:branch:ref:main|job:31337"},
		{"odd claim types ignored", jwt(t, with(gitlab, "job_id", map[string]any{"x": 1}, "jti", true)), "https://gitlab.example.com|project_path:g/p:ref_type:branch:ref:main|iat:1700000000"},

		{"no job claim at all", jwt(t, map[string]any{"iss": "https://idp", "sub": "x"}), ""},
		{"no iss", jwt(t, with(gitlab, "iss", nil)), ""},
		{"no sub", jwt(t, with(gitlab, "sub", nil)), ""},
		{"numeric sub", jwt(t, with(gitlab, "sub", 5)), "https://gitlab.example.com|5|job:31337"},
		{"empty", "", ""},
		{"garbage", "not a token", ""},
		{"two segments", seg(`{}`) + "." + seg(`{"iss":"a","sub":"b","jti":"c"}`), ""},
		{"four segments", jwt(t, gitlab) + ".x", ""},
		{"payload not base64", seg(`{}`) + ".!!!." + sigMarker, ""},
		{"payload not JSON", seg(`{}`) + "." + seg("iss=a") + "." + sigMarker, ""},
		{"payload an array", seg(`{}`) + "." + seg(`[{"iss":"a"}]`) + "." + sigMarker, ""},
		{"payload a string", seg(`{}`) + "." + seg(`"x"`) + "." + sigMarker, ""},
		{"too large", jwt(t, with(gitlab, "pad", strings.Repeat("x", 70000))), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := TokenIdentity(tt.token)
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if strings.Contains(got, sigMarker) || (tt.token != "" && strings.Contains(got, tt.token)) {
				t.Errorf("got %q, which holds the token or its signature", got)
			}
		})
	}
}

func TestTokenIdentitySeparatesJobs(t *testing.T) {
	base := map[string]any{"iss": "https://gitlab.example.com", "sub": "project_path:g/p:ref_type:branch:ref:main", "job_id": "1"}
	a := TokenIdentity(jwt(t, base))
	base["job_id"] = "2"
	b := TokenIdentity(jwt(t, base))
	if a == b || Key("broker", "role", a) == Key("broker", "role", b) {
		t.Errorf("jobs 1 and 2 share %q, want distinct identities and keys", a)
	}
}

func FuzzTokenIdentity(f *testing.F) {
	f.Add(jwt(f, map[string]any{"iss": "https://gitlab.example.com", "sub": "project_path:g/p", "job_id": "1"}))
	f.Add(jwt(f, map[string]any{"iss": "i", "sub": "s", "kubernetes.io": map[string]any{"pod": map[string]any{"uid": "u"}}}))
	f.Add("a.b.c")
	f.Add("..")
	f.Fuzz(func(t *testing.T, token string) {
		got := TokenIdentity(token)
		if got == "" {
			return
		}
		if strings.Count(got, "|") != 2 {
			t.Fatalf("got %q, want exactly two separators", got)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("got %q, which holds a control character", got)
			}
		}
		if sig := strings.Split(strings.TrimSpace(token), ".")[2]; len(sig) >= 16 && strings.Contains(got, sig) {
			t.Fatalf("got %q, which holds the signature", got)
		}
	})
}

func TestKey(t *testing.T) {
	k := Key("https://broker.example", "deploy", "id")
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(k) {
		t.Fatalf("got %q, want 64 hex digits", k)
	}
	if err := checkKey(k); err != nil {
		t.Errorf("Key's output is not a valid key: %v", err)
	}
	if k != Key("https://broker.example", "deploy", "id") {
		t.Error("got different keys for the same parts")
	}
	distinct := [][]string{{"ab", "c"}, {"a", "bc"}, {"abc"}, {"abc", ""}, {}, {""}}
	seen := map[string]int{}
	for i, parts := range distinct {
		if j, dup := seen[Key(parts...)]; dup {
			t.Errorf("Key(%q) == Key(%q), want distinct", parts, distinct[j])
		}
		seen[Key(parts...)] = i
	}
}

func TestDefaultDir(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr bool
	}{
		{"explicit", map[string]string{"KEYFERRY_CACHE_DIR": "/run/kf/", "XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/run/kf", false},
		{"explicit relative", map[string]string{"KEYFERRY_CACHE_DIR": "cache", "HOME": "/h"}, "", true},
		{"xdg", map[string]string{"XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/x/keyferry/creds", false},
		{"xdg relative is ignored", map[string]string{"XDG_CACHE_HOME": "x", "HOME": "/h"}, "/h/.cache/keyferry/creds", false},
		{"home", map[string]string{"HOME": "/h"}, "/h/.cache/keyferry/creds", false},
		{"nothing", map[string]string{}, "", true},
		{"relative home", map[string]string{"HOME": "h"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DefaultDir(testutil.Env(tt.env))
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error=%v", err, tt.wantErr)
			}
			if got != filepath.FromSlash(tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
