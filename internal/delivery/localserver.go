package delivery

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"
)

// Endpoints selects what a LocalServer serves.
type Endpoints uint8

const (
	// EndpointContainer is the container credential provider endpoint
	// (AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN).
	EndpointContainer Endpoints = 1 << iota
	// EndpointIMDS is the IMDSv2 emulation (AWS_EC2_METADATA_SERVICE_ENDPOINT).
	EndpointIMDS
	// EndpointBoth serves both on one listener.
	EndpointBoth = EndpointContainer | EndpointIMDS
)

// ParseEndpoints parses "container", "imds" or "both".
func ParseEndpoints(s string) (Endpoints, error) {
	switch s {
	case "container":
		return EndpointContainer, nil
	case "imds":
		return EndpointIMDS, nil
	case "both":
		return EndpointBoth, nil
	}
	return 0, fmt.Errorf("delivery: unknown endpoints %q (want container, imds or both)", s)
}

func (e Endpoints) String() string {
	switch e {
	case EndpointContainer:
		return "container"
	case EndpointIMDS:
		return "imds"
	case EndpointBoth:
		return "both"
	}
	return fmt.Sprintf("Endpoints(%d)", uint8(e))
}

// DefaultLocalAddr binds loopback on a random port.
const DefaultLocalAddr = "127.0.0.1:0"

// LocalConfig configures a LocalServer.
type LocalConfig struct {
	// Addr is the listen address; default DefaultLocalAddr. Binding a
	// non-loopback address also needs AllowedCIDRs for the callers.
	Addr string
	// Endpoints to serve. Required.
	Endpoints Endpoints
	// ContainerPath is the container endpoint's path; default
	// DefaultContainerPath. It may not be under /latest/.
	ContainerPath string
	// ContainerToken is the Authorization value the container endpoint
	// requires; empty means a new random one (see ContainerToken()).
	ContainerToken string
	// RoleARN, when set, is served as the container document's RoleArn.
	RoleARN string
	// RoleName is the role the IMDS endpoint lists; default
	// DefaultIMDSRole.
	RoleName string
	// AllowedCIDRs are accepted peer networks besides loopback.
	AllowedCIDRs []netip.Prefix
	// Hosts are extra accepted Host header names, e.g. "169.254.169.254"
	// or "169.254.170.2" when those addresses are routed to this server.
	// 127.0.0.1, localhost, ::1 and the bind address are always accepted.
	Hosts []string
	// Source yields the credentials. Required; a Source that is not a
	// *Cached is wrapped in one.
	Source Source
	Logger *slog.Logger
	Now    func() time.Time
}

// LocalServer serves the container and/or IMDS endpoints on one listener,
// behind Guard. NewLocalServer binds the port, so Addr and the URLs are
// known before Run.
type LocalServer struct {
	ln        net.Listener
	srv       *http.Server
	handler   http.Handler
	endpoints Endpoints
	path      string
	token     string
	log       *slog.Logger
	started   atomic.Bool
}

// NewLocalServer validates cfg, reporting every problem at once, and binds
// the listener.
func NewLocalServer(cfg LocalConfig) (*LocalServer, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultLocalAddr
	}
	if cfg.ContainerPath == "" {
		cfg.ContainerPath = DefaultContainerPath
	}
	log := orDiscard(cfg.Logger)
	var errs []error
	if cfg.Endpoints&EndpointBoth == 0 || cfg.Endpoints&^EndpointBoth != 0 {
		errs = append(errs, errors.New("delivery: local server: choose the endpoints to serve (container, imds or both)"))
	}
	if cfg.Source == nil {
		errs = append(errs, errors.New("delivery: local server: no credential source"))
	}
	p := cfg.ContainerPath
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?# ") || strings.HasPrefix(p, "/latest/") || p == "/latest" {
		errs = append(errs, fmt.Errorf("delivery: local server: container path %q must start with / and not be under /latest/", p))
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		errs = append(errs, fmt.Errorf("delivery: local server: listen address %q: %w", cfg.Addr, err))
	}
	if cfg.ContainerToken == "" {
		cfg.ContainerToken = NewToken()
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	src := cacheSource(cfg.Source, cfg.Now)

	s := &LocalServer{endpoints: cfg.Endpoints, path: p, token: cfg.ContainerToken, log: log}
	var container, imds http.Handler
	if cfg.Endpoints&EndpointContainer != 0 {
		h, err := NewContainerHandler(ContainerConfig{Source: src, Token: cfg.ContainerToken, RoleARN: cfg.RoleARN, Logger: log, Now: cfg.Now})
		if err != nil {
			return nil, err
		}
		container = h
	}
	if cfg.Endpoints&EndpointIMDS != 0 {
		h, err := NewIMDSHandler(IMDSConfig{Source: src, RoleName: cfg.RoleName, Logger: log, Now: cfg.Now})
		if err != nil {
			return nil, err
		}
		imds = h
	}
	hosts := append(defaultHosts(), cfg.Hosts...)
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); (err == nil && !a.IsUnspecified()) || (err != nil && host != "") {
		hosts = append(hosts, host)
	}
	s.handler = Guard(GuardConfig{AllowedCIDRs: cfg.AllowedCIDRs, Hosts: hosts, Logger: log},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case container != nil && r.URL.Path == p:
				container.ServeHTTP(w, r)
			case imds != nil && strings.HasPrefix(r.URL.Path, "/latest/"):
				imds.ServeHTTP(w, r)
			default:
				writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
			}
		}))

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("delivery: local server: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// A first fetch or a refresh can wait on the broker.
		WriteTimeout:   60 * time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// NewToken returns 32 random bytes, base64url without padding: 43
// characters that are legal in a header and in a file without quoting.
func NewToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// cacheSource wraps src in a Cached unless it already is one, so that
// tool requests are answered from memory.
func cacheSource(src Source, now func() time.Time) Source {
	if _, ok := src.(*Cached); ok {
		return src
	}
	return &Cached{Source: src, Now: now}
}

// Run serves until ctx is done, then shuts down gracefully (in-flight
// requests get up to 5 seconds). It returns nil after a graceful stop.
// Run may be called once.
func (s *LocalServer) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("delivery: local server: Run called twice")
	}
	s.log.Info("delivery: local credential endpoint listening",
		slog.String(logKeyAddr, s.Addr()), slog.String("endpoints", s.endpoints.String()))
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("delivery: local server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	<-errc
	if err != nil {
		_ = s.srv.Close()
		return fmt.Errorf("delivery: local server: shutdown: %w", err)
	}
	return nil
}

// Close stops the server at once; use it when Run is never called.
func (s *LocalServer) Close() error {
	err := s.srv.Close()
	if cerr := s.ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
		err = cerr
	}
	return err
}

// Addr is the bound address, host:port.
func (s *LocalServer) Addr() string { return s.ln.Addr().String() }

// Handler is the guarded handler the server runs, for in-process tests.
func (s *LocalServer) Handler() http.Handler { return s.handler }

// ContainerToken is the Authorization value of the container endpoint.
// It is a secret: hand it to the child, never log it.
func (s *LocalServer) ContainerToken() string { return s.token }

// ContainerURL is the AWS_CONTAINER_CREDENTIALS_FULL_URI value, or "" when
// the container endpoint is not served. The host is the bind address, or
// 127.0.0.1 for an unspecified one. Note that aws-cli v2 accepts only
// 127.0.0.1, localhost and 169.254.170.2.
func (s *LocalServer) ContainerURL() string {
	if s.endpoints&EndpointContainer == 0 {
		return ""
	}
	return "http://" + s.clientHostPort() + s.path
}

// IMDSEndpoint is the AWS_EC2_METADATA_SERVICE_ENDPOINT value, or "" when
// the IMDS endpoint is not served.
func (s *LocalServer) IMDSEndpoint() string {
	if s.endpoints&EndpointIMDS == 0 {
		return ""
	}
	return "http://" + s.clientHostPort() + "/"
}

func (s *LocalServer) clientHostPort() string {
	ap, err := netip.ParseAddrPort(s.Addr())
	if err != nil {
		return s.Addr()
	}
	a := ap.Addr().Unmap()
	if a.IsUnspecified() {
		a = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return netip.AddrPortFrom(a, ap.Port()).String()
}
