package httpapi

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/admintoken"
	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/devissuer"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/lease"
	"github.com/keyferry/keyferry/internal/metrics"
	"github.com/keyferry/keyferry/internal/policy"
	"github.com/keyferry/keyferry/internal/registry"
)

// Fakes behind the handlers' interfaces. Each records the calls it gets,
// in order and without their context, in one log shared by all of them,
// and answers with what the test set on it.

// call is one call a fake received.
type call struct {
	Method string
	Args   []any
}

// c builds a call, for the wanted calls of a test case.
func c(method string, args ...any) call { return call{Method: method, Args: args} }

// callLog is the calls the fakes of one API received.
type callLog struct {
	mu    sync.Mutex
	calls []call
}

func (l *callLog) add(method string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, call{Method: method, Args: args})
}

// take returns the calls logged so far and forgets them.
func (l *callLog) take() []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.calls
	l.calls = nil
	return out
}

// hasDeadline is recorded with Leases.Revoke: whether the context it got
// carries a deadline (a waiting revocation must not outlive the client).
type hasDeadline bool

type fakeIssuance struct {
	log       *callLog
	issued    *lease.Issued
	refreshed *lease.Refreshed
	err       error
}

var _ Issuance = (*fakeIssuance)(nil)

func (f *fakeIssuance) Issue(_ context.Context, req lease.IssueRequest) (*lease.Issued, error) {
	f.log.add("Issue", req)
	if f.err != nil {
		return nil, f.err
	}
	return f.issued, nil
}

func (f *fakeIssuance) Refresh(_ context.Context, req lease.RefreshRequest) (*lease.Refreshed, error) {
	f.log.add("Refresh", req)
	if f.err != nil {
		return nil, f.err
	}
	return f.refreshed, nil
}

// fakeLeases answers every read with leases (or lease) and every action
// with lease, or with err. RevokeMatching returns leases and err as they
// are, so that a partial failure can be told.
type fakeLeases struct {
	log     *callLog
	lease   *lease.Lease
	leases  []lease.Lease
	next    string
	orphans []lease.Orphan
	// forcedDry makes SweepOrphansNow report a dry run whatever it was
	// asked (the server's orphan_sweep_dry_run).
	forcedDry bool
	err       error
}

var _ Leases = (*fakeLeases)(nil)

func (f *fakeLeases) one() (*lease.Lease, error) {
	if f.err != nil {
		return nil, f.err
	}
	l := *f.lease
	return &l, nil
}

func (f *fakeLeases) many() ([]lease.Lease, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.leases, nil
}

func (f *fakeLeases) Get(_ context.Context, id string) (*lease.Lease, error) {
	f.log.add("Get", id)
	return f.one()
}

func (f *fakeLeases) List(_ context.Context, flt lease.Filter) ([]lease.Lease, string, error) {
	f.log.add("List", flt)
	ls, err := f.many()
	if err != nil {
		return nil, "", err
	}
	return ls, f.next, nil
}

func (f *fakeLeases) FindByKey(_ context.Context, accessKeyID string) ([]lease.Lease, error) {
	f.log.add("FindByKey", accessKeyID)
	return f.many()
}

func (f *fakeLeases) Select(_ context.Context, s lease.Selector) ([]lease.Lease, error) {
	f.log.add("Select", s)
	return f.many()
}

func (f *fakeLeases) Revoke(ctx context.Context, id string, o audit.Origin, wait bool) (*lease.Lease, error) {
	_, ok := ctx.Deadline()
	f.log.add("Revoke", id, o, wait, hasDeadline(ok))
	return f.one()
}

func (f *fakeLeases) RevokeMatching(_ context.Context, s lease.Selector, o audit.Origin) ([]lease.Lease, error) {
	f.log.add("RevokeMatching", s, o)
	return f.leases, f.err
}

func (f *fakeLeases) Retry(_ context.Context, id string, o audit.Origin) (*lease.Lease, error) {
	f.log.add("Retry", id, o)
	return f.one()
}

func (f *fakeLeases) Forget(_ context.Context, id string, o audit.Origin) (*lease.Lease, error) {
	f.log.add("Forget", id, o)
	return f.one()
}

func (f *fakeLeases) Renew(_ context.Context, id string, ttl time.Duration, o audit.Origin) (*lease.Lease, error) {
	f.log.add("Renew", id, ttl, o)
	return f.one()
}

func (f *fakeLeases) SweepOrphansNow(_ context.Context, dryRun bool) ([]lease.Orphan, bool, error) {
	f.log.add("SweepOrphansNow", dryRun)
	if f.err != nil {
		return nil, false, f.err
	}
	return f.orphans, dryRun || f.forcedDry, nil
}

// fakeRegistry holds roles and issuers in maps. A successful PutRole or
// PutIssuer stores the object, as the real registry does, so that the
// handler reads back what it wrote; err fails every write, compileErr
// CompileRole.
type fakeRegistry struct {
	log        *callLog
	roles      map[string]*policy.Compiled
	issuers    map[string]identity.Issuer
	outcome    registry.Outcome
	err        error
	compileErr error
	// vanish makes every write disappear at once, as if another request
	// deleted the object right after it was stored.
	vanish bool
}

var _ Registry = (*fakeRegistry)(nil)

func (f *fakeRegistry) Role(name string) (*policy.Compiled, bool) {
	f.log.add("Role", name)
	c, ok := f.roles[name]
	return c, ok
}

func (f *fakeRegistry) Roles() []policy.Role {
	f.log.add("Roles")
	out := []policy.Role{} // as the registry answers
	for _, c := range f.roles {
		out = append(out, c.Role())
	}
	slices.SortFunc(out, func(a, b policy.Role) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (f *fakeRegistry) compile(ro policy.Role) (*policy.Compiled, error) {
	kind := identity.KindGeneric
	if is, ok := f.issuers[ro.Issuer]; ok {
		kind = is.Kind
	}
	return policy.Compile(ro, kind)
}

func (f *fakeRegistry) CompileRole(ro policy.Role) (*policy.Compiled, error) {
	f.log.add("CompileRole", ro)
	if f.compileErr != nil {
		return nil, f.compileErr
	}
	return f.compile(ro)
}

func (f *fakeRegistry) PutRole(_ context.Context, ro policy.Role, o audit.Origin) (registry.Outcome, error) {
	f.log.add("PutRole", ro, o)
	if f.err != nil {
		return "", f.err
	}
	c, err := f.compile(ro)
	if err != nil {
		return "", fmt.Errorf("fake registry: %w", err)
	}
	f.roles[ro.Name] = c
	if f.vanish {
		delete(f.roles, ro.Name)
	}
	return f.outcome, nil
}

func (f *fakeRegistry) DeleteRole(_ context.Context, name string, o audit.Origin) error {
	f.log.add("DeleteRole", name, o)
	return f.err
}

func (f *fakeRegistry) Issuer(name string) (identity.Issuer, bool) {
	f.log.add("Issuer", name)
	is, ok := f.issuers[name]
	return is, ok
}

func (f *fakeRegistry) Issuers() []identity.Issuer {
	f.log.add("Issuers")
	out := []identity.Issuer{} // as the registry answers
	for _, is := range f.issuers {
		out = append(out, is)
	}
	slices.SortFunc(out, func(a, b identity.Issuer) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (f *fakeRegistry) PutIssuer(_ context.Context, is identity.Issuer, o audit.Origin) (registry.Outcome, error) {
	f.log.add("PutIssuer", is, o)
	if f.err != nil {
		return "", f.err
	}
	f.issuers[is.Name] = is
	return f.outcome, nil
}

func (f *fakeRegistry) DeleteIssuer(_ context.Context, name string, o audit.Origin) error {
	f.log.add("DeleteIssuer", name, o)
	return f.err
}

// fakeTokens authenticates the tokens in byValue (presented value →
// record) and refuses any other; authErr, when set, fails every
// authentication. Authentications are logged apart from the other calls,
// which are the admin-token endpoints' work.
type fakeTokens struct {
	log      *callLog
	authLog  callLog
	byValue  map[string]admintoken.Token
	authErr  error
	list     []admintoken.Token
	created  *admintoken.Token
	createAs string // the token value Create returns
	err      error
}

var _ AdminTokens = (*fakeTokens)(nil)

func (f *fakeTokens) Authenticate(_ context.Context, presented string) (*admintoken.Token, error) {
	f.authLog.add("Authenticate", presented)
	if f.authErr != nil {
		return nil, f.authErr
	}
	t, ok := f.byValue[presented]
	if !ok {
		return nil, fmt.Errorf("fake: %w", admintoken.ErrInvalid)
	}
	return &t, nil
}

func (f *fakeTokens) List(context.Context) ([]admintoken.Token, error) {
	f.log.add("Tokens.List")
	if f.err != nil {
		return nil, f.err
	}
	return f.list, nil
}

func (f *fakeTokens) Create(_ context.Context, name string, scopes []string, o audit.Origin) (string, *admintoken.Token, error) {
	f.log.add("Tokens.Create", name, scopes, o)
	if f.err != nil {
		return "", nil, f.err
	}
	return f.createAs, f.created, nil
}

func (f *fakeTokens) Delete(_ context.Context, id string, o audit.Origin) error {
	f.log.add("Tokens.Delete", id, o)
	return f.err
}

// fakeVerifier verifies the tokens in ids and refuses any other with
// err (an identity.Error by default).
type fakeVerifier struct {
	log *callLog
	ids map[string]*identity.Identity
	err error
}

var _ lease.Verifier = (*fakeVerifier)(nil)

func (f *fakeVerifier) Verify(_ context.Context, raw string) (*identity.Identity, error) {
	f.log.add("Verify", raw)
	if id, ok := f.ids[raw]; ok {
		return id, nil
	}
	if f.err != nil {
		return nil, f.err
	}
	return nil, &identity.Error{Code: identity.CodeUnknownIssuer, Message: "the token's issuer is not trusted"}
}

// The request every test sends comes from httptest.NewRequest's peer
// and carries a fixed request id.
const (
	testRequestID = "test-request-0001"
	testPeer      = "192.0.2.1"
)

// adminToken is the value and record of a fake admin token.
type adminToken struct {
	value string
	admintoken.Token
}

// tokenFor returns a fake admin token holding scope alone: the root
// token for "*", a token named after the scope otherwise.
func tokenFor(scope string) adminToken {
	i := slices.Index(admintoken.AllScopes, scope)
	if i < 0 {
		panic("unknown scope " + scope)
	}
	id := fmt.Sprintf("%016x", 0xa0+i)
	name := "root"
	if scope != admintoken.ScopeAll {
		name = strings.NewReplacer(":", "-").Replace(scope) + "-only"
	}
	return adminToken{
		value: "kfa_" + id + "_" + strings.Repeat(string(rune('A'+i)), 43),
		Token: admintoken.Token{ID: id, Name: name, Scopes: []string{scope}},
	}
}

var rootToken = tokenFor(admintoken.ScopeAll)

// rootOrigin is the audit.Origin of a test request made with root.
func rootOrigin(reason string) audit.Origin {
	return audit.Origin{Actor: "admin_token:" + rootToken.ID + "(root)", RequestID: testRequestID, SourceAddr: testPeer, Reason: reason}
}

// devIssuer is one dev issuer for every test: its RSA key takes a while
// to generate.
var devIssuer = sync.OnceValue(func() *devissuer.Issuer {
	d, err := devissuer.New("http://127.0.0.1:8200/dev/oidc")
	if err != nil {
		panic(err)
	}
	return d
})

// fakeAPI is the API handler in front of fakes: one admin token per
// scope, the dev issuer on, a Ready that answers readyErr.
type fakeAPI struct {
	t        testing.TB
	log      *callLog
	issuance *fakeIssuance
	leases   *fakeLeases
	registry *fakeRegistry
	tokens   *fakeTokens
	verifier *fakeVerifier
	readyErr error
	cfg      Config
	h        http.Handler
}

// newFakeAPI returns the API over fresh fakes; setup, when not nil, sets
// the fakes' answers and may change cfg before the handler is built.
func newFakeAPI(t testing.TB, setup func(*fakeAPI)) *fakeAPI {
	t.Helper()
	log := &callLog{}
	a := &fakeAPI{
		t:        t,
		log:      log,
		issuance: &fakeIssuance{log: log},
		leases:   &fakeLeases{log: log},
		registry: &fakeRegistry{log: log, roles: map[string]*policy.Compiled{}, issuers: map[string]identity.Issuer{}},
		tokens:   &fakeTokens{log: log, byValue: map[string]admintoken.Token{}},
		verifier: &fakeVerifier{log: log},
	}
	for _, s := range admintoken.AllScopes {
		tok := tokenFor(s)
		a.tokens.byValue[tok.value] = tok.Token
	}
	a.cfg = Config{
		Issuer: a.issuance, Leases: a.leases, Registry: a.registry, Verifier: a.verifier, Tokens: a.tokens,
		Metrics: metrics.New(), Dev: devIssuer(), DevAudience: "http://127.0.0.1:8200",
		Ready: func(context.Context) error {
			log.add("Ready")
			return a.readyErr
		},
		Now: func() time.Time { return fixtureNow },
	}
	if setup != nil {
		setup(a)
	}
	a.h = New(a.cfg)
	return a
}

// request is what a test sends: "METHOD /path" in line, a body, its
// Content-Type (application/json when there is a body, unless set; "-"
// sends none), and the admin token to present ("" for none).
type request struct {
	line   string
	body   string
	ctype  string
	token  string
	header map[string]string
}

func (a *fakeAPI) do(t testing.TB, req request) *httptest.ResponseRecorder {
	t.Helper()
	method, target, ok := strings.Cut(req.line, " ")
	if !ok {
		t.Fatalf("request line %q is not METHOD /path", req.line)
	}
	r := httptest.NewRequest(method, target, strings.NewReader(req.body))
	switch {
	case req.ctype == "-":
	case req.ctype != "":
		r.Header.Set("Content-Type", req.ctype)
	case req.body != "":
		r.Header.Set("Content-Type", "application/json")
	}
	if req.token != "" {
		r.Header.Set("Authorization", "Bearer "+req.token)
	}
	r.Header.Set("X-Request-Id", testRequestID)
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, r)
	return w
}

// servedBy returns the route label the HTTP metrics recorded for the
// requests so far ("" when none was recorded, as for /metrics).
func (a *fakeAPI) servedBy(t testing.TB) []string {
	t.Helper()
	mfs, err := a.cfg.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != "keyferry_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" {
					out = append(out, l.GetValue())
				}
			}
		}
	}
	return out
}

// apiErrorOf reads an error answer's code and message: the JSON error body,
// or an STS ErrorResponse.
func apiErrorOf(t testing.TB, w *httptest.ResponseRecorder) (code, msg string) {
	t.Helper()
	if strings.HasPrefix(w.Header().Get("Content-Type"), "text/xml") {
		var doc stsErrorDoc
		if err := xml.Unmarshal(w.Body.Bytes(), &doc); err != nil {
			t.Fatalf("status %d, body %q: not an STS ErrorResponse: %v", w.Code, w.Body, err)
		}
		return doc.Error.Code, doc.Error.Message
	}
	var body struct {
		Error *struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == nil {
		t.Fatalf("status %d, body %q: not an error body (%v)", w.Code, w.Body, err)
	}
	if body.Error.RequestID != testRequestID {
		t.Errorf("got request_id %q in the error body, want %q", body.Error.RequestID, testRequestID)
	}
	return body.Error.Code, body.Error.Message
}
