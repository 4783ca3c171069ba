package delivery

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// Each attack on the local endpoints has its own named test; both
// endpoints are attacked through the one guarded handler LocalServer runs.

// endpointRequests are legitimate requests for each endpoint, to which the
// attacks add their twist.
func endpointRequests(t *testing.T, s *LocalServer) map[string][]func(*http.Request) {
	t.Helper()
	tok := imdsToken(t, s.Handler(), "60")
	return map[string][]func(*http.Request){
		"container": {withHeader("Authorization", fixToken)},
		"imds":      {withHeader("X-aws-ec2-metadata-token", tok)},
	}
}

func endpointPath(name string) string {
	if name == "container" {
		return DefaultContainerPath
	}
	return IMDSRoleListPath + DefaultIMDSRole
}

func TestAttackNonLoopbackCallerIsRefused(t *testing.T) {
	s := newTestLocal(t, LocalConfig{})
	for name, opts := range endpointRequests(t, s) {
		for _, remote := range []string{"192.0.2.10:5000", "10.0.0.5:1234", "[2001:db8::1]:443", "169.254.169.254:80", "[fe80::1%eth0]:80"} {
			t.Run(name+"/"+remote, func(t *testing.T) {
				w := serve(s.Handler(), req(http.MethodGet, endpointPath(name), append(opts, withRemote(remote))...))
				wantAPIError(t, w, http.StatusForbidden, "forbidden_peer")
				assertNoSecrets(t, "body", w.Body.String())
			})
		}
	}
}

func TestAttackUnparsableRemoteAddrIsRefused(t *testing.T) {
	s := newTestLocal(t, LocalConfig{})
	for _, remote := range []string{"", "@", "localhost:80", "127.0.0.1"} {
		w := serve(s.Handler(), req(http.MethodGet, DefaultContainerPath, withHeader("Authorization", fixToken), withRemote(remote)))
		if w.Code != http.StatusForbidden {
			t.Errorf("RemoteAddr %q: got %d, want 403", remote, w.Code)
		}
	}
}

func TestLoopbackCallersAreAccepted(t *testing.T) {
	s := newTestLocal(t, LocalConfig{})
	for _, remote := range []string{"127.0.0.1:1", "127.8.9.10:2", "[::1]:3", "[::ffff:127.0.0.1]:4"} {
		w := serve(s.Handler(), req(http.MethodGet, DefaultContainerPath, withHeader("Authorization", fixToken), withRemote(remote)))
		if w.Code != http.StatusOK {
			t.Errorf("RemoteAddr %q: got %d %s, want 200", remote, w.Code, w.Body)
		}
	}
}

func TestAllowedCIDRAdmitsOnlyItsNetwork(t *testing.T) {
	s := newTestLocal(t, LocalConfig{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}})
	for _, tc := range []struct {
		remote string
		want   int
	}{
		{"10.1.2.3:5000", http.StatusOK},
		{"10.2.0.1:5000", http.StatusForbidden},
		{"[::ffff:10.1.0.9]:5000", http.StatusOK},
	} {
		w := serve(s.Handler(), req(http.MethodGet, DefaultContainerPath, withHeader("Authorization", fixToken), withRemote(tc.remote)))
		if w.Code != tc.want {
			t.Errorf("RemoteAddr %s: got %d, want %d", tc.remote, w.Code, tc.want)
		}
	}
}

func TestAttackForeignHostHeaderIsRefused(t *testing.T) {
	// DNS rebinding: the attacker's name resolves to 127.0.0.1, but the
	// browser still sends the attacker's name as Host.
	s := newTestLocal(t, LocalConfig{})
	hosts := []string{
		"evil.example.com", "evil.example.com:8080", "127.0.0.1.nip.io", "127.0.0.1.nip.io:8080",
		"localhost.evil.example", "127.0.0.2", "169.254.169.254", "169.254.170.2", "0.0.0.0",
		"", "[::1", "127.0.0.1:80:80", "LOCALHOST.", strings.Repeat("a", 300),
	}
	for name, opts := range endpointRequests(t, s) {
		for _, host := range hosts {
			t.Run(name+"/"+host, func(t *testing.T) {
				w := serve(s.Handler(), req(http.MethodGet, endpointPath(name), append(opts, withHost(host))...))
				wantAPIError(t, w, http.StatusForbidden, "forbidden_host")
			})
		}
	}
}

func TestLocalHostHeadersAreAccepted(t *testing.T) {
	s := newTestLocal(t, LocalConfig{Hosts: []string{"169.254.169.254", "169.254.170.2"}})
	for _, host := range []string{"127.0.0.1", "127.0.0.1:9911", "localhost", "LocalHost:1", "[::1]:80", "[::1]", "169.254.169.254", "169.254.170.2:80"} {
		w := serve(s.Handler(), req(http.MethodGet, DefaultContainerPath, withHeader("Authorization", fixToken), withHost(host)))
		if w.Code != http.StatusOK {
			t.Errorf("Host %q: got %d %s, want 200", host, w.Code, w.Body)
		}
	}
}

func TestAttackOversizedBodyIsRefused(t *testing.T) {
	s := newTestLocal(t, LocalConfig{})
	r := req(http.MethodGet, DefaultContainerPath, withHeader("Authorization", fixToken))
	r.Body = http.NoBody
	r.ContentLength = MaxRequestBody + 1
	wantAPIError(t, serve(s.Handler(), r), http.StatusRequestEntityTooLarge, "body_too_large")
}

func TestUnknownPathIs404(t *testing.T) {
	s := newTestLocal(t, LocalConfig{Endpoints: EndpointContainer})
	for _, p := range []string{"/", "/creds/", "/credsx", IMDSRoleListPath, "/latest/api/token"} {
		w := getWithToken(s.Handler(), p)
		wantAPIError(t, w, http.StatusNotFound, "not_found")
	}
}

func TestRefusalsAreLoggedWithoutSecrets(t *testing.T) {
	var logs logBuffer
	s := newTestLocal(t, LocalConfig{Logger: logs.logger()})
	tok := imdsToken(t, s.Handler(), "60")
	for _, r := range []*http.Request{
		req(http.MethodGet, DefaultContainerPath, withHeader("Authorization", fixToken), withRemote("192.0.2.1:1")),
		req(http.MethodGet, DefaultContainerPath, withHeader("Authorization", fixToken), withHost("evil.example.com")),
		req(http.MethodGet, DefaultContainerPath, withHeader("Authorization", fixToken+"x")),
		req(http.MethodGet, DefaultContainerPath, withHeader("Authorization", fixToken)),
		req(http.MethodGet, IMDSRoleListPath+DefaultIMDSRole, withHeader("X-aws-ec2-metadata-token", tok)),
	} {
		serve(s.Handler(), r)
	}
	out := logs.String()
	assertNoSecrets(t, "log", out, fixToken, tok)
	for _, want := range []string{"peer not allowed", "host not allowed", fixKeyID} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func FuzzHostName(f *testing.F) {
	for _, s := range []string{"127.0.0.1:80", "[::1]:80", "[::1]", "localhost", "a:b:c", "[", "]"} {
		f.Add(s)
	}
	g := Guard(GuardConfig{}, nil).(*guard)
	f.Fuzz(func(t *testing.T, host string) {
		h := hostName(host)
		if strings.ContainsAny(h, "[]") && h != "" {
			t.Errorf("hostName(%q) = %q still has brackets", host, h)
		}
		if g.hostAllowed(host) && h != "127.0.0.1" && !strings.EqualFold(h, "localhost") && h != "::1" {
			t.Errorf("Host %q accepted as %q", host, h)
		}
	})
}
