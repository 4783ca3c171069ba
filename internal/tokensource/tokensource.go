// Package tokensource finds the CI job's identity token on the runner side:
// an environment variable (GitLab id_tokens), a file (a Kubernetes projected
// service-account token), or the GitHub Actions OIDC request flow. Auto
// tries them in that order. Errors name what was looked for and never
// contain a token.
package tokensource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Environment variables read by the sources.
const (
	EnvToken           = "KEYFERRY_ID_TOKEN"
	EnvTokenFile       = "KEYFERRY_ID_TOKEN_FILE"
	EnvAudience        = "KEYFERRY_AUDIENCE"
	EnvGitHubURL       = "ACTIONS_ID_TOKEN_REQUEST_URL"
	EnvGitHubReqToken  = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
	maxTokenFileLength = 64 << 10
)

// Source yields the job's identity token.
type Source interface {
	// Token returns the current token. Sources re-read on every call, so
	// a rotated file or a fresh GitHub token is picked up.
	Token(ctx context.Context) (string, error)
	// String names the source for messages ("env KEYFERRY_ID_TOKEN").
	String() string
}

// Env reads a token from an environment variable.
type Env struct {
	Name   string
	Getenv func(string) string
}

// Token implements Source.
func (e Env) Token(context.Context) (string, error) {
	tok := strings.TrimSpace(e.Getenv(e.Name))
	if tok == "" {
		return "", fmt.Errorf("environment variable %s is empty or unset", e.Name)
	}
	return tok, nil
}

func (e Env) String() string { return "env " + e.Name }

// File reads a token from a file, e.g. a projected service-account token
// that the kubelet rotates.
type File struct{ Path string }

// Token implements Source.
func (f File) Token(context.Context) (string, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return "", fmt.Errorf("read job token file: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxTokenFileLength+1))
	if err != nil {
		return "", fmt.Errorf("read job token file %s: %w", f.Path, err)
	}
	if len(b) > maxTokenFileLength {
		return "", fmt.Errorf("job token file %s is larger than %d bytes", f.Path, maxTokenFileLength)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("job token file %s is empty", f.Path)
	}
	return tok, nil
}

func (f File) String() string { return "file " + f.Path }

// GitHubActions requests an OIDC token from the Actions runtime
// (`permissions: id-token: write` in the workflow).
type GitHubActions struct {
	RequestURL   string
	RequestToken string
	Audience     string
	HTTPClient   *http.Client
}

// Token implements Source.
func (g GitHubActions) Token(ctx context.Context) (string, error) {
	if g.RequestURL == "" || g.RequestToken == "" {
		return "", fmt.Errorf("%s / %s are not set (does the workflow grant `permissions: id-token: write`?)", EnvGitHubURL, EnvGitHubReqToken)
	}
	u, err := url.Parse(g.RequestURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("%s is not a URL", EnvGitHubURL)
	}
	if g.Audience != "" {
		q := u.Query()
		q.Set("audience", g.Audience)
		u.RawQuery = q.Encode()
	}
	hc := g.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "bearer "+g.RequestToken)
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("request a GitHub Actions OIDC token: %w", redactURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenFileLength))
	if err != nil {
		return "", fmt.Errorf("read the GitHub Actions OIDC token: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the GitHub Actions token service answered %d", resp.StatusCode)
	}
	var out struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Value == "" {
		return "", errors.New("the GitHub Actions token service answered without a token")
	}
	return out.Value, nil
}

func (g GitHubActions) String() string { return "GitHub Actions OIDC (" + EnvGitHubURL + ")" }

// redactURLError drops the request URL (it may carry a signed query) from
// transport errors.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// Options choose a source.
type Options struct {
	// Kind is auto, env, file or github.
	Kind string
	// EnvName overrides KEYFERRY_ID_TOKEN for the env source.
	EnvName string
	// File overrides KEYFERRY_ID_TOKEN_FILE for the file source.
	File string
	// Audience is requested from GitHub (default KEYFERRY_AUDIENCE, then
	// the broker address).
	Audience string
	// BrokerAddr is the broker URL, the last-resort GitHub audience.
	BrokerAddr string
	Getenv     func(string) string
	HTTPClient *http.Client
}

// Kinds lists the accepted Options.Kind values.
var Kinds = []string{"auto", "env", "file", "github"}

// New returns the source o describes. With Kind auto it picks the first
// source whose inputs are present: the env variable, then the file, then
// GitHub Actions; if none is, the error lists what was looked for.
func New(o Options) (Source, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	envName := o.EnvName
	if envName == "" {
		envName = EnvToken
	}
	file := o.File
	if file == "" {
		file = getenv(EnvTokenFile)
	}
	aud := o.Audience
	if aud == "" {
		aud = getenv(EnvAudience)
	}
	if aud == "" {
		aud = o.BrokerAddr
	}
	gh := GitHubActions{RequestURL: getenv(EnvGitHubURL), RequestToken: getenv(EnvGitHubReqToken), Audience: aud, HTTPClient: o.HTTPClient}
	switch o.Kind {
	case "env":
		return Env{Name: envName, Getenv: getenv}, nil
	case "file":
		if file == "" {
			return nil, fmt.Errorf("no token file: give --token-file or set %s", EnvTokenFile)
		}
		return File{Path: file}, nil
	case "github":
		return gh, nil
	case "", "auto":
		switch {
		case strings.TrimSpace(getenv(envName)) != "":
			return Env{Name: envName, Getenv: getenv}, nil
		case file != "":
			return File{Path: file}, nil
		case gh.RequestURL != "" && gh.RequestToken != "":
			return gh, nil
		}
		return nil, fmt.Errorf("no job token found: looked for the environment variable %s (GitLab: declare it under id_tokens:), "+
			"a token file (--token-file or %s, e.g. a Kubernetes projected token), and the GitHub Actions variables %s/%s "+
			"(needs `permissions: id-token: write`)", envName, EnvTokenFile, EnvGitHubURL, EnvGitHubReqToken)
	}
	return nil, fmt.Errorf("unknown token source %q (want one of %s)", o.Kind, strings.Join(Kinds, ", "))
}
