package delivery

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Log attribute keys used by the local endpoints and exec. Values logged
// under them are never secrets: at most an AccessKeyId.
const (
	logKeyReason      = "reason"
	logKeyRemote      = "remote"
	logKeyHost        = "host"
	logKeyPath        = "path"
	logKeyMethod      = "method"
	logKeyAccessKeyID = "access_key_id"
	logKeyExpiration  = "expiration"
	logKeyErr         = "err"
	logKeyAddr        = "addr"
	logKeyURL         = "url"
	logKeyPID         = "pid"
	logKeySignal      = "signal"
	logKeyExitCode    = "exit_code"
)

// MaxRequestBody is the largest request body the local endpoints accept.
// No endpoint reads a body (the clients send none); the cap only stops a
// caller from making the server drain one.
const MaxRequestBody = 1 << 10

// GuardConfig configures Guard.
type GuardConfig struct {
	// AllowedCIDRs are peer networks accepted in addition to loopback,
	// e.g. a sidecar's pod network. Empty means loopback callers only.
	AllowedCIDRs []netip.Prefix
	// Hosts are the accepted Host header names (no port), compared
	// case-insensitively. Empty means 127.0.0.1, localhost and ::1.
	Hosts []string
	// Logger receives one Warn line per refused request (never a secret).
	Logger *slog.Logger
}

// defaultHosts are the Host header names every local endpoint accepts.
func defaultHosts() []string { return []string{"127.0.0.1", "localhost", "::1"} }

// Guard wraps next with the checks every local credential endpoint needs,
// in this order:
//
//   - the peer (RemoteAddr) must be a loopback address or inside one of
//     AllowedCIDRs, else 403;
//   - the Host header, without its port, must be one of Hosts, else 403.
//     This defeats DNS rebinding: a web page whose name resolves to
//     127.0.0.1 still sends its own name as Host;
//   - a declared body larger than MaxRequestBody gets 413, and reads past
//     it fail.
//
// Refusals carry the {"code","message"} JSON body the SDKs parse.
func Guard(cfg GuardConfig, next http.Handler) http.Handler {
	hosts := cfg.Hosts
	if len(hosts) == 0 {
		hosts = defaultHosts()
	}
	g := &guard{allowed: cfg.AllowedCIDRs, log: cfg.Logger, next: next}
	for _, h := range hosts {
		g.hosts = append(g.hosts, strings.ToLower(strings.Trim(h, "[]")))
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	return g
}

type guard struct {
	allowed []netip.Prefix
	hosts   []string
	log     *slog.Logger
	next    http.Handler
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.peerAllowed(r.RemoteAddr) {
		g.refuse(w, r, http.StatusForbidden, "forbidden_peer", "only local callers may use this endpoint", "peer not allowed")
		return
	}
	if !g.hostAllowed(r.Host) {
		g.refuse(w, r, http.StatusForbidden, "forbidden_host", "the Host header does not name this endpoint", "host not allowed")
		return
	}
	if r.ContentLength > MaxRequestBody {
		g.refuse(w, r, http.StatusRequestEntityTooLarge, "body_too_large", "request bodies are not accepted here", "body too large")
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBody)
	}
	g.next.ServeHTTP(w, r)
}

func (g *guard) peerAllowed(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	if a.IsLoopback() {
		return true
	}
	for _, p := range g.allowed {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (g *guard) hostAllowed(hostport string) bool {
	h := hostName(hostport)
	if h == "" {
		return false
	}
	for _, want := range g.hosts {
		if len(h) == len(want) && strings.EqualFold(h, want) {
			return true
		}
	}
	return false
}

// hostName strips the port and IPv6 brackets from a Host header value. It
// returns "" for values no legitimate client sends.
func hostName(hostport string) string {
	if hostport == "" || len(hostport) > 255 {
		return ""
	}
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		return hostport[1 : len(hostport)-1]
	}
	if strings.ContainsAny(hostport, "[]") {
		return ""
	}
	return hostport
}

func (g *guard) refuse(w http.ResponseWriter, r *http.Request, status int, code, msg, reason string) {
	g.log.Warn("delivery: request refused",
		slog.String(logKeyReason, reason),
		slog.String(logKeyRemote, r.RemoteAddr),
		slog.String(logKeyHost, truncate(r.Host, 100)),
		slog.String(logKeyMethod, truncate(r.Method, 16)),
		slog.String(logKeyPath, truncate(r.URL.Path, 100)))
	writeError(w, status, code, msg)
}

// apiError is the error body both the Go SDK and botocore understand. Go
// parses it only when Content-Type is exactly application/json.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

var (
	hdrJSON    = []string{"application/json"}
	hdrText    = []string{"text/plain"}
	hdrNoStore = []string{"no-store"}
	hdrNoSniff = []string{"nosniff"}
)

// writeError writes {"code","message"} with Content-Type application/json.
// msg must be safe to show to any caller: never a secret or a raw cause.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(apiError{Code: code, Message: msg}) // cannot fail: two strings
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrNoStore
	h["X-Content-Type-Options"] = hdrNoSniff
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
