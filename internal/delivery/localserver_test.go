package delivery

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startLocal runs a LocalServer over real loopback HTTP until the test
// ends, and checks that Run returns nil after the graceful stop.
func startLocal(t testing.TB, cfg LocalConfig) *LocalServer {
	t.Helper()
	if cfg.Endpoints == 0 {
		cfg.Endpoints = EndpointBoth
	}
	if cfg.Source == nil {
		cfg.Source = staticSource(fixCreds(time.Now()))
	}
	s, err := NewLocalServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v, want nil after a graceful stop", err)
		}
	})
	return s
}

func TestLocalServerServesBothEndpointsOnOneListener(t *testing.T) {
	s := startLocal(t, LocalConfig{})
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || strings.HasSuffix(s.Addr(), ":0") {
		t.Fatalf("got Addr %q, want 127.0.0.1 and a real port", s.Addr())
	}
	if want := "http://" + s.Addr() + "/creds"; s.ContainerURL() != want {
		t.Errorf("got ContainerURL %q, want %q", s.ContainerURL(), want)
	}
	if want := "http://" + s.Addr() + "/"; s.IMDSEndpoint() != want {
		t.Errorf("got IMDSEndpoint %q, want %q", s.IMDSEndpoint(), want)
	}
	if tok := s.ContainerToken(); len(tok) != 43 || strings.ContainsAny(tok, "+/=\n") {
		t.Errorf("got generated token %q, want 43 base64url characters", tok)
	}

	do := func(method, url string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		r, _ := http.NewRequest(method, url, nil)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := do(http.MethodGet, s.ContainerURL(), map[string]string{"Authorization": s.ContainerToken()})
	if resp.StatusCode != 200 || !strings.Contains(body, fixKeyID) {
		t.Errorf("container: got %d %s", resp.StatusCode, body)
	}
	resp, tok := do(http.MethodPut, s.IMDSEndpoint()+"latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"})
	if resp.StatusCode != 200 || resp.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") != "60" {
		t.Fatalf("imds token: got %d %v", resp.StatusCode, resp.Header)
	}
	resp, body = do(http.MethodGet, s.IMDSEndpoint()+"latest/meta-data/iam/security-credentials/keyferry", map[string]string{"X-aws-ec2-metadata-token": tok})
	if resp.StatusCode != 200 || !strings.Contains(body, `"Code":"Success"`) {
		t.Errorf("imds credentials: got %d %s", resp.StatusCode, body)
	}
	// A real rebinding attempt over the wire: the Host header names
	// another site.
	r, _ := http.NewRequest(http.MethodGet, s.ContainerURL(), nil)
	r.Host = "rebind.evil.example"
	r.Header.Set("Authorization", s.ContainerToken())
	rr, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	rr.Body.Close()
	if rr.StatusCode != http.StatusForbidden {
		t.Errorf("rebinding Host over the wire: got %d, want 403", rr.StatusCode)
	}
}

func TestLocalServerRunStopsWhenContextEnds(t *testing.T) {
	s, err := NewLocalServer(LocalConfig{Endpoints: EndpointContainer, Source: staticSource(fixCreds(time.Now()))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if err := s.Run(context.Background()); err == nil {
		t.Error("a second Run: got nil, want an error")
	}
	if _, err := http.Get(s.ContainerURL()); err == nil {
		t.Error("the server still answers after Run returned")
	}
}

func TestNewLocalServerReportsEveryProblem(t *testing.T) {
	_, err := NewLocalServer(LocalConfig{ContainerPath: "/latest/creds", Addr: "nonsense"})
	if err == nil {
		t.Fatal("got no error")
	}
	for _, want := range []string{"choose the endpoints", "no credential source", "container path", "listen address"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %q, want it to mention %q", err, want)
		}
	}
}

func TestLocalServerHostsIncludeBindAddress(t *testing.T) {
	s := newTestLocal(t, LocalConfig{Addr: "127.0.0.3:0"})
	if w := serve(s.Handler(), req(http.MethodGet, DefaultContainerPath, withHeader("Authorization", fixToken), withHost("127.0.0.3:1"))); w.Code != http.StatusOK {
		t.Errorf("Host = bind address: got %d, want 200", w.Code)
	}
	if got := s.ContainerURL(); !strings.HasPrefix(got, "http://127.0.0.3:") {
		t.Errorf("got ContainerURL %q, want the bind address", got)
	}
}

func TestParseEndpoints(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Endpoints
	}{{"container", EndpointContainer}, {"imds", EndpointIMDS}, {"both", EndpointBoth}} {
		got, err := ParseEndpoints(tc.in)
		if err != nil || got != tc.want || got.String() != tc.in {
			t.Errorf("ParseEndpoints(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if _, err := ParseEndpoints("all"); err == nil {
		t.Error(`ParseEndpoints("all"): got no error`)
	}
}
