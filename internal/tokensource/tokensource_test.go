package tokensource

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyferry/keyferry/internal/testutil"
)

func TestAutoOrder(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		want string // String() of the chosen source
	}{
		{name: "env wins", env: map[string]string{EnvToken: "x", EnvTokenFile: file, EnvGitHubURL: "https://gh", EnvGitHubReqToken: "r"}, want: "env KEYFERRY_ID_TOKEN"},
		{name: "file next", env: map[string]string{EnvTokenFile: file, EnvGitHubURL: "https://gh", EnvGitHubReqToken: "r"}, want: "file " + file},
		{name: "github last", env: map[string]string{EnvGitHubURL: "https://gh", EnvGitHubReqToken: "r"}, want: "GitHub Actions OIDC (ACTIONS_ID_TOKEN_REQUEST_URL)"},
		{name: "blank env skipped", env: map[string]string{EnvToken: "  ", EnvTokenFile: file}, want: "file " + file},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Options{Getenv: testutil.Env(tt.env)})
			if err != nil {
				t.Fatal(err)
			}
			if s.String() != tt.want {
				t.Fatalf("got %s, want %s", s, tt.want)
			}
		})
	}
}

func TestAutoNothingFound(t *testing.T) {
	_, err := New(Options{Getenv: testutil.Env(nil)})
	if err == nil {
		t.Fatal("got nil, want an error")
	}
	for _, want := range []string{EnvToken, EnvTokenFile, EnvGitHubURL, "id-token: write"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestFileTrimsAndRereads(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token")
	s := File{Path: p}
	if _, err := s.Token(context.Background()); err == nil {
		t.Error("missing file: got nil error")
	}
	_ = os.WriteFile(p, []byte("one\n"), 0o600)
	if got, _ := s.Token(context.Background()); got != "one" {
		t.Errorf("got %q, want one", got)
	}
	_ = os.WriteFile(p, []byte("two"), 0o600) // the kubelet rotated it
	if got, _ := s.Token(context.Background()); got != "two" {
		t.Errorf("got %q, want two after rotation", got)
	}
	_ = os.WriteFile(p, []byte("\n"), 0o600)
	if _, err := s.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("got %v, want an empty-file error", err)
	}
	_ = os.WriteFile(p, []byte(strings.Repeat("a", maxTokenFileLength+1)), 0o600)
	if _, err := s.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Errorf("got %v, want a size error", err)
	}
}

func TestGitHubActions(t *testing.T) {
	var gotAuth, gotAud, gotAPI string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		gotAud = r.URL.Query().Get("audience")
		gotAPI = r.URL.Query().Get("api-version")
		if gotAuth != "bearer reqtok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"count":1,"value":"gh.jwt.value"}`))
	}))
	defer srv.Close()
	env := map[string]string{EnvGitHubURL: srv.URL + "/token?api-version=2.0", EnvGitHubReqToken: "reqtok"}
	s, err := New(Options{Kind: "github", Getenv: testutil.Env(env), BrokerAddr: "https://keyferry.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tok != "gh.jwt.value" || gotAud != "https://keyferry.example.com" || gotAPI != "2.0" {
		t.Errorf("got token %q audience %q api-version %q", tok, gotAud, gotAPI)
	}
	env[EnvAudience] = "custom-aud"
	s, _ = New(Options{Kind: "github", Getenv: testutil.Env(env), BrokerAddr: "https://keyferry.example.com"})
	if _, err := s.Token(context.Background()); err != nil || gotAud != "custom-aud" {
		t.Errorf("KEYFERRY_AUDIENCE: got %q (%v)", gotAud, err)
	}
	env[EnvGitHubReqToken] = "wrong"
	s, _ = New(Options{Kind: "github", Getenv: testutil.Env(env)})
	_, err = s.Token(context.Background())
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("got %v, want a 401 error without the request token", err)
	}
}

func TestUnknownKind(t *testing.T) {
	if _, err := New(Options{Kind: "vault", Getenv: testutil.Env(nil)}); err == nil || !strings.Contains(err.Error(), "github") {
		t.Errorf("got %v, want an error listing the kinds", err)
	}
}
