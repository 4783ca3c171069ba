// Package httpapi serves keyferry's HTTP API: the credential endpoint jobs
// call, the admin API operators call with scoped bearer tokens, health and
// metrics, and (in dev mode) the dev OIDC issuer. Handlers read → validate
// → authorize → act → render; every error leaves as an api.Error with a
// status, a stable code and a safe message, while the cause goes to the log.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/keyferry/keyferry/internal/admintoken"
	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/devissuer"
	"github.com/keyferry/keyferry/internal/fault"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/lease"
	"github.com/keyferry/keyferry/internal/metrics"
	"github.com/keyferry/keyferry/internal/policy"
	"github.com/keyferry/keyferry/internal/registry"
)

// Issuance is what the credential endpoints (POST /v1/creds, POST
// /v1/creds/refresh and POST /sts) need: issue a lease, refresh one.
type Issuance interface {
	Issue(ctx context.Context, req lease.IssueRequest) (*lease.Issued, error)
	Refresh(ctx context.Context, req lease.RefreshRequest) (*lease.Refreshed, error)
}

var _ Issuance = (*lease.Issuer)(nil)

// Leases is what the lease endpoints need: read, find and select leases,
// and act on them on an operator's behalf.
type Leases interface {
	Get(ctx context.Context, id string) (*lease.Lease, error)
	List(ctx context.Context, f lease.Filter) ([]lease.Lease, string, error)
	FindByKey(ctx context.Context, accessKeyID string) ([]lease.Lease, error)
	Select(ctx context.Context, s lease.Selector) ([]lease.Lease, error)
	Revoke(ctx context.Context, id string, o audit.Origin, wait bool) (*lease.Lease, error)
	RevokeMatching(ctx context.Context, s lease.Selector, o audit.Origin) ([]lease.Lease, error)
	Retry(ctx context.Context, id string, o audit.Origin) (*lease.Lease, error)
	Forget(ctx context.Context, id string, o audit.Origin) (*lease.Lease, error)
	Renew(ctx context.Context, id string, ttl time.Duration, o audit.Origin) (*lease.Lease, error)
	SweepOrphansNow(ctx context.Context, dryRun bool) ([]lease.Orphan, bool, error)
}

var _ Leases = (*lease.Lifecycle)(nil)

// Registry is what the role and issuer endpoints (and the STS endpoint's
// RoleArn lookup) need: read roles and issuers, validate a role, write
// and delete both.
type Registry interface {
	Role(name string) (*policy.Compiled, bool)
	Roles() []policy.Role
	CompileRole(ro policy.Role) (*policy.Compiled, error)
	PutRole(ctx context.Context, ro policy.Role, o audit.Origin) (registry.Outcome, error)
	DeleteRole(ctx context.Context, name string, o audit.Origin) error
	Issuer(name string) (identity.Issuer, bool)
	Issuers() []identity.Issuer
	PutIssuer(ctx context.Context, is identity.Issuer, o audit.Origin) (registry.Outcome, error)
	DeleteIssuer(ctx context.Context, name string, o audit.Origin) error
}

var _ Registry = (*registry.Registry)(nil)

// AdminTokens is what the admin middleware and the admin-token endpoints
// need. Authenticate returns an error wrapping admintoken.ErrInvalid for
// a token that does not authenticate; Create and Delete audit the
// change.
type AdminTokens interface {
	Authenticate(ctx context.Context, presented string) (*admintoken.Token, error)
	List(ctx context.Context) ([]admintoken.Token, error)
	Create(ctx context.Context, name string, scopes []string, o audit.Origin) (string, *admintoken.Token, error)
	Delete(ctx context.Context, id string, o audit.Origin) error
}

var _ AdminTokens = (*admintoken.Service)(nil)

// Config wires the API.
type Config struct {
	Issuer   Issuance
	Leases   Leases
	Registry Registry
	Verifier lease.Verifier
	// Tokens authenticates admin requests and serves the admin-token
	// endpoints (an admintoken.Service, which audits the changes).
	Tokens  AdminTokens
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// MaxBodyBytes caps every request body.
	MaxBodyBytes int64
	// Ready reports readiness for /readyz.
	Ready func(ctx context.Context) error
	// Dev, when set, serves the dev OIDC issuer under /dev/oidc and
	// POST /v1/dev/token.
	Dev *devissuer.Issuer
	// DevAudience is the default audience of dev tokens.
	DevAudience string
	Now         func() time.Time
}

type server struct {
	Config
	log *slog.Logger
}

// New returns the API handler.
func New(cfg Config) http.Handler {
	s := &server{Config: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.MaxBodyBytes <= 0 {
		s.MaxBodyBytes = 64 << 10
	}
	mux := http.NewServeMux()
	s.register(mux.Handle)
	return s.requestID(s.recoverPanics(mux))
}

type ctxKey int

const requestIDKey ctxKey = iota

// RequestID returns the request id of ctx ("" outside a request).
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{8,64}$`)

func (s *server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !requestIDRE.MatchString(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic in handler", "request_id", RequestID(r.Context()), "path", r.URL.Path, "panic", fmt.Sprint(v))
				s.fail(w, r, errors.New("panic in handler"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *server) instrument(route string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.Now()
		sw := &statusWriter{ResponseWriter: w}
		r.Body = http.MaxBytesReader(sw, r.Body, s.MaxBodyBytes)
		h(sw, r)
		took := s.Now().Sub(start)
		s.Metrics.HTTP(route, strconv.Itoa(sw.status), took)
		s.log.Debug("http", "request_id", RequestID(r.Context()), "method", r.Method, "route", route,
			"status", sw.status, "took_ms", float64(took.Microseconds())/1000, "remote", remoteHost(r))
	})
}

func (s *server) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encode response", "err", err)
		http.Error(w, `{"error":{"code":"internal_error","message":"internal error"}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// fail renders err. A fault keeps its code and message and gets its
// kind's status; anything else becomes a 500 whose cause is only logged.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := toFault(err)
	st := status(e.Kind)
	rid := RequestID(r.Context())
	if st >= 500 || e.Err != nil {
		s.log.Warn("request failed", "request_id", rid, "path", r.URL.Path, "status", st, "code", e.Code, "err", errString(e.Err, err))
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	s.writeJSON(w, st, api.ErrorResponse{Error: api.Error{Code: e.Code, Message: e.Message, RequestID: rid, Details: e.Details}})
}

func errString(cause, err error) string {
	if cause != nil {
		return cause.Error()
	}
	return err.Error()
}

// toFault is what the caller is told about err: the fault in its chain,
// a too-large body, a cancellation, or else a bare internal error.
func toFault(err error) *fault.Error {
	var me *http.MaxBytesError
	if fe, ok := fault.As(err); ok {
		return fe
	}
	switch {
	case errors.As(err, &me):
		return fault.Newf(fault.TooLarge, "body_too_large", "request body exceeds %d bytes", me.Limit)
	case errors.Is(err, context.Canceled):
		return fault.Wrap(err, fault.Cancelled, fault.CodeCancelled, "request cancelled")
	}
	return fault.Wrap(err, fault.Internal, fault.CodeInternal, "internal error")
}

// status is the HTTP status of each kind of fault: the one place where
// domain errors become status codes.
func status(k fault.Kind) int {
	switch k {
	case fault.Invalid:
		return http.StatusBadRequest
	case fault.Unauthenticated:
		return http.StatusUnauthorized
	case fault.Forbidden:
		return http.StatusForbidden
	case fault.NotFound:
		return http.StatusNotFound
	case fault.Conflict:
		return http.StatusConflict
	case fault.TooLarge:
		return http.StatusRequestEntityTooLarge
	case fault.Unprocessable:
		return http.StatusUnprocessableEntity
	case fault.Cancelled:
		return 499 // nginx's "client closed request"
	case fault.BadGateway:
		return http.StatusBadGateway
	case fault.Unavailable:
		return http.StatusServiceUnavailable
	case fault.Timeout:
		return http.StatusGatewayTimeout
	case fault.UnsupportedMedia:
		return http.StatusUnsupportedMediaType
	}
	return http.StatusInternalServerError
}

// decode reads exactly one JSON object into v, refusing unknown fields,
// trailing data and oversized bodies.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return fault.New(fault.UnsupportedMedia, "unsupported_media_type", "send the body as application/json")
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var me *http.MaxBytesError
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &me):
			return err
		case errors.Is(err, io.EOF):
			return fault.New(fault.Invalid, "invalid_json", "request body is empty: send a JSON object")
		case errors.As(err, &se):
			return fault.Newf(fault.Invalid, "invalid_json", "request body is not valid JSON (at byte %d)", se.Offset)
		case errors.As(err, &te):
			return fault.Newf(fault.Invalid, "invalid_json", "field %q must be %s", te.Field, te.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return fault.New(fault.Invalid, "unknown_field", "unknown field "+strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return fault.New(fault.Invalid, "invalid_json", "request body is not a valid JSON object: "+sanitizeJSONErr(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var me *http.MaxBytesError
		if errors.As(err, &me) {
			return err
		}
		return fault.New(fault.Invalid, "invalid_json", "request body has data after the JSON object")
	}
	return nil
}

// sanitizeJSONErr keeps decoder messages but never echoes input values.
func sanitizeJSONErr(err error) string {
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

func remoteHost(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, http.StatusOK, api.Status{Status: "ok"})
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.Ready != nil {
		if err := s.Ready(r.Context()); err != nil {
			s.log.Warn("not ready", "err", err)
			s.writeJSON(w, http.StatusServiceUnavailable, api.Status{Status: "not ready"})
			return
		}
	}
	s.writeJSON(w, http.StatusOK, api.Status{Status: "ready"})
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

func pathName(r *http.Request, key string) (string, error) {
	n := r.PathValue(key)
	if !nameRE.MatchString(n) {
		return "", fault.Newf(fault.Invalid, "invalid_name", "%s must match %s", key, nameRE)
	}
	return n, nil
}

// identityError converts a token verification failure for role tests.
func identityError(err error) *api.Error {
	var ie *identity.Error
	if errors.As(err, &ie) {
		return &api.Error{Code: ie.Code, Message: ie.Message}
	}
	return &api.Error{Code: "internal_error", Message: "token verification failed"}
}

var leaseIDRE = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)

func sameJSON(a, b any) bool {
	ab, err1 := json.Marshal(a)
	bb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ab) == string(bb)
}
