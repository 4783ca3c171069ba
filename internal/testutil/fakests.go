// Package testutil holds in-process fakes that speak real wire protocols, for
// tests and benchmarks. FakeSTS speaks the AWS STS query API (form-encoded
// POST in, XML out) closely enough that the real AWS SDKs cannot tell it
// from STS for the operations keyferry uses. FakeIAM does the same for the
// IAM user, group, access-key and role-policy operations, with AWS's rules
// (DeleteConflict, quotas, eventually consistent new keys).
package testutil

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// STS actions served by the fake.
const (
	ActionAssumeRole                = "AssumeRole"
	ActionAssumeRoleWithWebIdentity = "AssumeRoleWithWebIdentity"
	ActionGetCallerIdentity         = "GetCallerIdentity"
)

const (
	stsVersion = "2011-06-15"
	// DefaultSTSAccount is the account the fake uses when a role ARN names none.
	DefaultSTSAccount = "123456789012"
)

// STSTag is one session tag as it arrived on the wire.
type STSTag struct{ Key, Value string }

// STSRequest is one request as the fake parsed it.
type STSRequest struct {
	Action string
	// Params holds every form and query parameter, raw.
	Params            url.Values
	RoleARN           string
	RoleSessionName   string
	Policy            string
	PolicyARNs        []string
	Tags              []STSTag
	TransitiveTagKeys []string
	SourceIdentity    string
	ExternalID        string
	WebIdentityToken  string
	// DurationSeconds is 0 when the parameter was absent.
	DurationSeconds int

	// Authorization is the raw header, empty for an unsigned request.
	Authorization string
	// AccessKeyID and Region come from the SigV4 credential scope.
	AccessKeyID   string
	Region        string
	SecurityToken string
	ContentType   string

	// QueryOutcome is the answer: the AccessKeyId of the credentials
	// issued, if any.
	QueryOutcome
}

// STSError is an STS error answer. Return one from a hook or token validator
// to choose the exact code and status.
type STSError = QueryError

// STSFault makes the fake misbehave for matching calls.
type STSFault struct {
	// Action limits the fault to one action; empty matches every action.
	Action string
	// Times is how many matching calls the fault applies to; 0 means every
	// call until the faults are cleared.
	Times int
	// Code and Message make the fake answer an ErrorResponse. Status
	// defaults to the one AWS uses for Code.
	Code    string
	Message string
	// Status alone (no Code, no Body) answers an empty body with that status.
	Status int
	// Body answers this raw body (e.g. an HTML 502 page from a proxy) with
	// Status (default 502).
	Body string
	// Latency delays the answer (or the fault's error).
	Latency time.Duration
	// Hang holds the request until the client goes away or the fake closes.
	Hang bool
	// Drop closes the connection without an answer.
	Drop bool
}

// STSOption configures a fake STS.
type STSOption func(*stsConfig)

type stsConfig struct {
	account       string
	callerARN     string
	keys          map[string]string
	now           func() time.Time
	validateToken func(token string) error
	hook          func(*STSRequest) error
	omitAccount   bool
	noRecording   bool
	keySource     STSKeySource
}

// WithSTSAccount sets the account used when a role ARN names none, and the
// default caller's account (default DefaultSTSAccount).
func WithSTSAccount(id string) STSOption { return func(c *stsConfig) { c.account = id } }

// WithSTSCallerARN sets the ARN GetCallerIdentity answers for the
// configured (non-session) keys.
func WithSTSCallerARN(arn string) STSOption { return func(c *stsConfig) { c.callerARN = arn } }

// WithSTSKey makes the fake verify the SigV4 signature of signed requests
// made with this access key; with at least one key configured, requests
// signed with an unknown key are refused (InvalidClientTokenId). Without
// any key, signed requests are accepted unverified unless they use
// credentials the fake issued.
func WithSTSKey(accessKeyID, secretAccessKey string) STSOption {
	return func(c *stsConfig) { addKey(&c.keys, accessKeyID, secretAccessKey) }
}

// WithSTSClock injects the clock used for Expiration and token exp checks.
func WithSTSClock(now func() time.Time) STSOption { return func(c *stsConfig) { c.now = now } }

// WithSTSTokenValidator adds a check of AssumeRoleWithWebIdentity tokens,
// after the fake's own (JWT shape, exp); fn may run concurrently. An *STSError is answered as is;
// any other error as InvalidIdentityToken with the error text.
func WithSTSTokenValidator(fn func(token string) error) STSOption {
	return func(c *stsConfig) { c.validateToken = fn }
}

// WithSTSHook runs fn on every well-formed, authenticated request before
// credentials are issued; fn may run concurrently. An *STSError is answered as is; any other error
// as AccessDenied with the error text.
func WithSTSHook(fn func(*STSRequest) error) STSOption { return func(c *stsConfig) { c.hook = fn } }

// WithSTSOmitAccount answers ARNs without an account, as some AWS-compatible
// servers do (arn:aws:sts::assumed-role/role/session).
func WithSTSOmitAccount() STSOption { return func(c *stsConfig) { c.omitAccount = true } }

// WithoutSTSRecording keeps no per-request state (requests, issued
// sessions) so memory stays flat under load; counters still work.
func WithoutSTSRecording() STSOption { return func(c *stsConfig) { c.noRecording = true } }

// STSKeySource supplies long-term access keys issued outside the fake STS
// (by a fake IAM), so that requests signed with them are verified and
// GetCallerIdentity answers for their user. Its methods may run
// concurrently.
type STSKeySource interface {
	// LookupSTSKey returns the key with accessKeyID; ok is false for a key
	// that does not exist (never created, or deleted).
	LookupSTSKey(accessKeyID string) (key STSLongTermKey, ok bool)
}

// STSLongTermKey is an IAM user's access key as the fake STS sees it.
type STSLongTermKey struct {
	Secret string
	// ARN, UserID and Account are what GetCallerIdentity answers.
	ARN, UserID, Account string
	// UsableAt is when STS starts accepting the key (IAM is eventually
	// consistent: a new key fails with InvalidClientTokenId for a while);
	// the zero time means at once. It is compared with the STS's clock.
	UsableAt time.Time
}

// WithSTSKeySource makes the fake accept the long-term keys src knows, with
// their eventual consistency. With a key source, requests signed with an
// unknown key are refused (InvalidClientTokenId) even when no key is
// configured with WithSTSKey.
func WithSTSKeySource(src STSKeySource) STSOption { return func(c *stsConfig) { c.keySource = src } }

// stsSession is a set of credentials the fake issued, so that later calls
// signed with them can be verified and answered (GetCallerIdentity, role
// chaining), or a long-term key from the key source (longTerm).
type stsSession struct {
	secret, token string
	arn, userID   string
	account       string
	expires       time.Time
	longTerm      bool
}

// FakeSTSHandler is the fake STS as an http.Handler, usable without a
// testing.T (a benchmark harness can mount it). Close it to release hung
// requests.
type FakeSTSHandler struct {
	queryFake[STSRequest, *STSRequest]
	cfg stsConfig

	mu       sync.Mutex
	sessions map[string]*stsSession
}

// stsActions lists every STS action the fake serves.
var stsActions = []string{ActionAssumeRole, ActionAssumeRoleWithWebIdentity, ActionGetCallerIdentity}

// NewFakeSTSHandler returns a fake STS handler.
func NewFakeSTSHandler(opts ...STSOption) *FakeSTSHandler {
	cfg := stsConfig{account: DefaultSTSAccount, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.callerARN == "" {
		cfg.callerARN = "arn:aws:iam::" + cfg.account + ":user/keyferry-broker"
		if cfg.omitAccount {
			cfg.callerARN = "arn:aws:iam::user/keyferry-broker"
		}
	}
	h := &FakeSTSHandler{cfg: cfg, sessions: make(map[string]*stsSession)}
	h.prepare(slices.Clone(stsActions), cfg.noRecording)
	return h
}

// Close releases requests held by a Hang fault. It is idempotent.
func (h *FakeSTSHandler) Close() { h.close() }

// Reset forgets recorded requests, counters and faults (not issued sessions).
func (h *FakeSTSHandler) Reset() { h.reset() }

// ServeHTTP answers one STS query-API request.
func (h *FakeSTSHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := newRequestID()
	writeErr := func(e *QueryError) int { return writeSTSError(w, reqID, e) }
	body, params, ok := h.read(r, writeErr)
	if !ok {
		return
	}
	req := parseSTSRequest(params, r)
	defaultMsg := func(code string) string { return defaultSTSMessage(code, &req, h.cfg.callerARN) }
	idx, handled := h.start(w, r, reqID, req.Action, &req, writeErr, defaultMsg)
	if handled {
		return
	}
	out, issued, serr := h.dispatch(r, body, &req, reqID)
	h.answer(w, reqID, idx, out, issued, serr, writeErr)
}

func (h *FakeSTSHandler) dispatch(r *http.Request, body []byte, req *STSRequest, reqID string) (out []byte, issued string, serr *STSError) {
	known := slices.Contains(stsActions, req.Action)
	if e := checkCall(r, req.Action, known, stsVersion, req.Params); e != nil {
		return nil, "", e
	}
	switch req.Action {
	case ActionAssumeRole:
		return h.assumeRole(r, body, req, reqID)
	case ActionAssumeRoleWithWebIdentity:
		return h.assumeRoleWithWebIdentity(req, reqID)
	default:
		return h.getCallerIdentity(r, body, req, reqID)
	}
}

func (h *FakeSTSHandler) runHook(req *STSRequest) *STSError {
	if h.cfg.hook == nil {
		return nil
	}
	if err := h.cfg.hook(req); err != nil {
		return asQueryError(err, "AccessDenied")
	}
	return nil
}

func (h *FakeSTSHandler) assumeRole(r *http.Request, body []byte, req *STSRequest, reqID string) ([]byte, string, *STSError) {
	caller, serr := h.authenticate(r, body, req)
	if serr != nil {
		return nil, "", serr
	}
	if serr := validateAssumeRole(req); serr != nil {
		return nil, "", serr
	}
	role, serr := parseRoleARN(req.RoleARN)
	if serr != nil {
		return nil, "", serr
	}
	if caller != nil && !caller.longTerm && req.DurationSeconds > 3600 {
		return nil, "", &STSError{Code: "ValidationError", Message: "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."}
	}
	if serr := h.runHook(req); serr != nil {
		return nil, "", serr
	}
	sess, akid := h.issue(role, req.RoleSessionName, req.DurationSeconds)
	buf := resultOpen(stsXMLNS, ActionAssumeRole)
	if req.SourceIdentity != "" {
		buf = appendEl(buf, "    ", "SourceIdentity", req.SourceIdentity)
	}
	buf = appendRoleUserAndCreds(buf, sess, akid)
	if n := packedPolicyPercent(req); n > 0 {
		buf = appendEl(buf, "    ", "PackedPolicySize", strconv.Itoa(n))
	}
	return appendClose(buf, ActionAssumeRole, reqID), akid, nil
}

func (h *FakeSTSHandler) assumeRoleWithWebIdentity(req *STSRequest, reqID string) ([]byte, string, *STSError) {
	if req.Authorization != "" {
		// Real STS would accept it; the fake refuses so that a client that
		// signs this call (leaking that it holds credentials) fails a test.
		return nil, "", &STSError{Code: "UnexpectedSignature", Message: "fake STS: AssumeRoleWithWebIdentity must be unsigned"}
	}
	if serr := validateWebIdentity(req); serr != nil {
		return nil, "", serr
	}
	role, serr := parseRoleARN(req.RoleARN)
	if serr != nil {
		return nil, "", serr
	}
	claims, serr := parseJWTClaims(req.WebIdentityToken)
	if serr != nil {
		return nil, "", serr
	}
	now := h.cfg.now()
	if claims.Exp != 0 && now.Unix() >= int64(claims.Exp) {
		return nil, "", &STSError{Code: "ExpiredTokenException", Message: "Token expired: current date/time " + now.UTC().Format(time.RFC3339) + " must be before the expiration date/time " + time.Unix(int64(claims.Exp), 0).UTC().Format(time.RFC3339)}
	}
	if h.cfg.validateToken != nil {
		if err := h.cfg.validateToken(req.WebIdentityToken); err != nil {
			return nil, "", asQueryError(err, "InvalidIdentityToken")
		}
	}
	if serr := h.runHook(req); serr != nil {
		return nil, "", serr
	}
	sess, akid := h.issue(role, req.RoleSessionName, req.DurationSeconds)
	buf := resultOpen(stsXMLNS, ActionAssumeRoleWithWebIdentity)
	buf = appendEl(buf, "    ", "SubjectFromWebIdentityToken", claims.Sub)
	buf = appendEl(buf, "    ", "Audience", claims.audience())
	buf = appendRoleUserAndCreds(buf, sess, akid)
	buf = appendEl(buf, "    ", "Provider", strings.TrimPrefix(claims.Iss, "https://"))
	return appendClose(buf, ActionAssumeRoleWithWebIdentity, reqID), akid, nil
}

func (h *FakeSTSHandler) getCallerIdentity(r *http.Request, body []byte, req *STSRequest, reqID string) ([]byte, string, *STSError) {
	caller, serr := h.authenticate(r, body, req)
	if serr != nil {
		return nil, "", serr
	}
	if serr := h.runHook(req); serr != nil {
		return nil, "", serr
	}
	arn, userID, account := h.cfg.callerARN, "AIDA"+stableID(h.cfg.callerARN), h.cfg.account
	if caller != nil {
		arn, userID, account = caller.arn, caller.userID, caller.account
	}
	buf := resultOpen(stsXMLNS, ActionGetCallerIdentity)
	buf = appendEl(buf, "    ", "Arn", arn)
	buf = appendEl(buf, "    ", "UserId", userID)
	buf = appendEl(buf, "    ", "Account", account)
	return appendClose(buf, ActionGetCallerIdentity, reqID), "", nil
}

// issue mints credentials for role and remembers them unless recording is off.
func (h *FakeSTSHandler) issue(role roleARN, session string, durationSecs int) (*stsSession, string) {
	if durationSecs == 0 {
		durationSecs = 3600
	}
	account := role.account
	if account == "" {
		account = h.cfg.account
	}
	arn := "arn:" + role.partition + ":sts::" + account + ":assumed-role/" + role.name + "/" + session
	if h.cfg.omitAccount {
		arn = "arn:" + role.partition + ":sts::assumed-role/" + role.name + "/" + session
	}
	akid := newAccessKeyID()
	s := &stsSession{
		secret:  newSecretKey(),
		token:   newSessionToken(),
		arn:     arn,
		userID:  "AROA" + stableID(role.raw) + ":" + session,
		account: account,
		expires: h.cfg.now().Add(time.Duration(durationSecs) * time.Second).UTC().Truncate(time.Second),
	}
	if !h.cfg.noRecording {
		h.mu.Lock()
		h.sessions[akid] = s
		h.mu.Unlock()
	}
	return s, akid
}

func (h *FakeSTSHandler) session(akid string) *stsSession {
	if h.cfg.noRecording {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[akid]
}

// Session returns the secret and session token the fake issued with
// accessKeyID, for tests that sign requests with issued credentials.
func (h *FakeSTSHandler) Session(accessKeyID string) (secret, token string, ok bool) {
	s := h.session(accessKeyID)
	if s == nil {
		return "", "", false
	}
	return s.secret, s.token, true
}

func parseSTSRequest(p url.Values, r *http.Request) STSRequest {
	req := STSRequest{
		Action:           p.Get("Action"),
		Params:           p,
		RoleARN:          p.Get("RoleArn"),
		RoleSessionName:  p.Get("RoleSessionName"),
		Policy:           p.Get("Policy"),
		SourceIdentity:   p.Get("SourceIdentity"),
		ExternalID:       p.Get("ExternalId"),
		WebIdentityToken: p.Get("WebIdentityToken"),
		Authorization:    r.Header.Get("Authorization"),
		SecurityToken:    r.Header.Get("X-Amz-Security-Token"),
		ContentType:      r.Header.Get("Content-Type"),
	}
	if d := p.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil {
			n = -1 // rejected by validation
		}
		req.DurationSeconds = n
	}
	req.PolicyARNs = members(p, "PolicyArns.member.", ".arn")
	req.TransitiveTagKeys = members(p, "TransitiveTagKeys.member.", "")
	req.Tags = parseTags[STSTag](p)
	if a, ok := parseSigV4Header(req.Authorization); ok {
		req.AccessKeyID, req.Region = a.accessKeyID, a.region
	}
	return req
}

// FakeSTS is a FakeSTSHandler served by an httptest.Server on loopback.
type FakeSTS struct {
	*FakeSTSHandler
	fakeServer
}

// NewFakeSTS starts a fake STS for the test; it is closed by t.Cleanup.
func NewFakeSTS(t testing.TB, opts ...STSOption) *FakeSTS {
	t.Helper()
	h := NewFakeSTSHandler(opts...)
	return &FakeSTS{FakeSTSHandler: h, fakeServer: serveFake(t, h, h.Close)}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func getBuf() []byte { return (*bufPool.Get().(*[]byte))[:0] }

func putBuf(b []byte) {
	if cap(b) > 64<<10 {
		return
	}
	bufPool.Put(&b)
}
