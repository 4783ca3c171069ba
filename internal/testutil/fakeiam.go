package testutil

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// IAM actions served by the fake.
const (
	ActionCreateUser                      = "CreateUser"
	ActionGetUser                         = "GetUser"
	ActionListUsers                       = "ListUsers"
	ActionTagUser                         = "TagUser"
	ActionListUserTags                    = "ListUserTags"
	ActionDeleteUser                      = "DeleteUser"
	ActionPutUserPolicy                   = "PutUserPolicy"
	ActionListUserPolicies                = "ListUserPolicies"
	ActionDeleteUserPolicy                = "DeleteUserPolicy"
	ActionAttachUserPolicy                = "AttachUserPolicy"
	ActionListAttachedUserPolicies        = "ListAttachedUserPolicies"
	ActionDetachUserPolicy                = "DetachUserPolicy"
	ActionCreateGroup                     = "CreateGroup"
	ActionAddUserToGroup                  = "AddUserToGroup"
	ActionListGroupsForUser               = "ListGroupsForUser"
	ActionRemoveUserFromGroup             = "RemoveUserFromGroup"
	ActionCreateLoginProfile              = "CreateLoginProfile"
	ActionDeleteLoginProfile              = "DeleteLoginProfile"
	ActionCreateAccessKey                 = "CreateAccessKey"
	ActionListAccessKeys                  = "ListAccessKeys"
	ActionDeleteAccessKey                 = "DeleteAccessKey"
	ActionListMFADevices                  = "ListMFADevices"
	ActionDeactivateMFADevice             = "DeactivateMFADevice"
	ActionListSigningCertificates         = "ListSigningCertificates"
	ActionDeleteSigningCertificate        = "DeleteSigningCertificate"
	ActionListSSHPublicKeys               = "ListSSHPublicKeys"
	ActionDeleteSSHPublicKey              = "DeleteSSHPublicKey"
	ActionListServiceSpecificCredentials  = "ListServiceSpecificCredentials"
	ActionDeleteServiceSpecificCredential = "DeleteServiceSpecificCredential"
	ActionPutRolePolicy                   = "PutRolePolicy"
	ActionGetRolePolicy                   = "GetRolePolicy"
	ActionDeleteRolePolicy                = "DeleteRolePolicy"
	ActionListRolePolicies                = "ListRolePolicies"
)

// iamActions lists every IAM action the fake serves; writes are those not
// starting with Get or List.
var iamActions = []string{
	ActionCreateUser, ActionGetUser, ActionListUsers, ActionTagUser, ActionListUserTags, ActionDeleteUser,
	ActionPutUserPolicy, ActionListUserPolicies, ActionDeleteUserPolicy,
	ActionAttachUserPolicy, ActionListAttachedUserPolicies, ActionDetachUserPolicy,
	ActionCreateGroup, ActionAddUserToGroup, ActionListGroupsForUser, ActionRemoveUserFromGroup,
	ActionCreateLoginProfile, ActionDeleteLoginProfile,
	ActionCreateAccessKey, ActionListAccessKeys, ActionDeleteAccessKey,
	ActionListMFADevices, ActionDeactivateMFADevice, ActionListSigningCertificates, ActionDeleteSigningCertificate,
	ActionListSSHPublicKeys, ActionDeleteSSHPublicKey, ActionListServiceSpecificCredentials, ActionDeleteServiceSpecificCredential,
	ActionPutRolePolicy, ActionGetRolePolicy, ActionDeleteRolePolicy, ActionListRolePolicies,
}

// AWS's IAM quotas (defaults) that the fake enforces.
const (
	IAMMaxAccessKeysPerUser      = 2
	IAMMaxManagedPoliciesPerUser = 10
	IAMMaxGroupsPerUser          = 10
	IAMMaxTagsPerUser            = 50
	// IAMMaxUserInlinePolicySize and IAMMaxRoleInlinePolicySize bound the
	// aggregate size of a user's or role's inline policies, in characters,
	// whitespace not counted.
	IAMMaxUserInlinePolicySize = 2048
	IAMMaxRoleInlinePolicySize = 10240
)

// The fake IAM's default admin key, used to sign IAM calls when no
// WithIAMKey option is given: the fake always verifies signatures.
const (
	FakeIAMAccessKeyID     = "AKIAKEYFERRYTESTIAM0"
	FakeIAMSecretAccessKey = "keyferry-fake-iam-admin-secret-0123456789"
)

const iamVersion = "2010-05-08"

// IAMTag is one IAM tag.
type IAMTag struct{ Key, Value string }

// IAMRequest is one request as the fake IAM parsed it. STS actions sent to
// the fake IAM are recorded too (Service "sts").
type IAMRequest struct {
	Action string
	// Params holds every form and query parameter, raw.
	Params url.Values
	// The usual parameters, empty when absent.
	UserName, Path, PermissionsBoundary   string
	PolicyName, PolicyDocument, PolicyARN string
	GroupName, RoleName, AccessKeyID      string
	Tags                                  []IAMTag

	// Authorization is the raw header. SignedBy, Region and Service come from
	// its SigV4 credential scope.
	Authorization             string
	SignedBy, Region, Service string

	// QueryOutcome is the answer: the key CreateAccessKey issued, if any;
	// for STS actions, STS().Requests() has the error code.
	QueryOutcome
}

// IAMFault makes the fake IAM misbehave for matching calls; it is the
// same description as STSFault (Action may name an STS action too).
type IAMFault = STSFault

// IAMUserExtras are credentials keyferry never creates but a user may have
// been given by hand; each makes DeleteUser fail with DeleteConflict until
// it is removed. Seed them with AddUserExtras.
type IAMUserExtras struct {
	LoginProfile               bool
	MFADevices                 []string // serial numbers
	SigningCertificates        []string // certificate ids
	SSHPublicKeys              []string // key ids
	ServiceSpecificCredentials []string // credential ids
}

func (x IAMUserExtras) clone() IAMUserExtras {
	x.MFADevices = slices.Clone(x.MFADevices)
	x.SigningCertificates = slices.Clone(x.SigningCertificates)
	x.SSHPublicKeys = slices.Clone(x.SSHPublicKeys)
	x.ServiceSpecificCredentials = slices.Clone(x.ServiceSpecificCredentials)
	return x
}

// IAMUser is a snapshot of a user in the fake IAM.
type IAMUser struct {
	UserName, Path, ARN, UserID string
	Created                     time.Time
	PermissionsBoundary         string
	Tags                        []IAMTag
	InlinePolicies              map[string]string // name → document
	AttachedPolicies            []string          // ARNs, sorted
	Groups                      []string          // names, sorted
	AccessKeys                  []IAMAccessKey
	Extras                      IAMUserExtras
}

// IAMAccessKey is an access key in the fake IAM.
type IAMAccessKey struct {
	AccessKeyID, SecretAccessKey, Status string
	Created                              time.Time
	// UsableAt is when the fake's STS starts accepting it.
	UsableAt time.Time
}

// IAMOption configures a fake IAM.
type IAMOption func(*iamConfig)

type iamConfig struct {
	account     string
	keys        map[string]string
	now         func() time.Time
	keyDelay    time.Duration
	roles       []string
	groups      []string
	policies    []string
	writeRate   rate.Limit
	writeBurst  int
	hook        func(*IAMRequest) error
	noRecording bool
	maxPage     int
}

// WithIAMAccount sets the account in ARNs (default DefaultSTSAccount).
func WithIAMAccount(id string) IAMOption { return func(c *iamConfig) { c.account = id } }

// WithIAMKey adds an admin key whose signatures the fake verifies, for IAM
// and STS calls. Without any, FakeIAMAccessKeyID is the admin key.
func WithIAMKey(accessKeyID, secretAccessKey string) IAMOption {
	return func(c *iamConfig) { addKey(&c.keys, accessKeyID, secretAccessKey) }
}

// WithIAMClock injects the clock for creation dates, key usability and the
// write rate limit.
func WithIAMClock(now func() time.Time) IAMOption { return func(c *iamConfig) { c.now = now } }

// WithIAMKeyDelay models IAM's eventual consistency: STS refuses a new key
// (InvalidClientTokenId, 403) until d after its creation, by the fake's
// clock. AWS takes 5–15 s.
func WithIAMKeyDelay(d time.Duration) IAMOption { return func(c *iamConfig) { c.keyDelay = d } }

// WithIAMRoles pre-seeds roles (path /) for the role inline policy actions.
func WithIAMRoles(names ...string) IAMOption {
	return func(c *iamConfig) { c.roles = append(c.roles, names...) }
}

// WithIAMGroups pre-seeds groups (path /); CreateGroup adds more.
func WithIAMGroups(names ...string) IAMOption {
	return func(c *iamConfig) { c.groups = append(c.groups, names...) }
}

// WithIAMPolicies pre-seeds customer managed policies by ARN. AWS managed
// policies (arn:aws:iam::aws:policy/…) always exist; any other policy ARN
// is NoSuchEntity, as in AWS.
func WithIAMPolicies(arns ...string) IAMOption {
	return func(c *iamConfig) { c.policies = append(c.policies, arns...) }
}

// WithIAMWriteRateLimit answers writes (every action but Get* and List*)
// beyond perSecond, with bursts of burst, with Throttling (HTTP 400), as
// IAM does when an account exceeds its write quota. The bucket refills by
// the fake's clock.
func WithIAMWriteRateLimit(perSecond float64, burst int) IAMOption {
	return func(c *iamConfig) { c.writeRate, c.writeBurst = rate.Limit(perSecond), max(burst, 1) }
}

// WithIAMHook runs fn on every authenticated IAM request before it takes
// effect, and on every STS request before the STS handles it; fn may run
// concurrently. A *QueryError is answered as is; any other error as
// AccessDenied with the error text.
func WithIAMHook(fn func(*IAMRequest) error) IAMOption { return func(c *iamConfig) { c.hook = fn } }

// WithIAMMaxPageSize makes every list answer at most n items per page,
// whatever MaxItems asks (IAM "might return fewer results"), so that a
// client's pagination is exercised with few items.
func WithIAMMaxPageSize(n int) IAMOption { return func(c *iamConfig) { c.maxPage = n } }

// WithoutIAMRecording keeps no per-request records so memory stays flat
// under load; counters and state still work.
func WithoutIAMRecording() IAMOption { return func(c *iamConfig) { c.noRecording = true } }

type iamUser struct {
	name, path, arn, id string
	created             time.Time
	boundary            string
	tags                []IAMTag
	inline              map[string]string
	attached            []string // sorted ARNs
	groups              []string // sorted lower-case group keys
	keys                []*iamKey
	extras              IAMUserExtras
}

type iamKey struct {
	id, secret, status string
	created, usableAt  time.Time
	user               *iamUser
}

type iamGroup struct {
	name, path, arn, id string
	created             time.Time
}

type iamRole struct {
	name, arn, id string
	policies      map[string]string
}

// FakeIAMHandler is the fake IAM as an http.Handler, usable without a
// testing.T. Close it to release hung requests.
//
// It speaks the IAM query API (version 2010-05-08) for the user, group,
// access-key and role-inline-policy operations keyferry uses, with AWS's
// rules where they matter to a credential broker: DeleteUser refuses
// (DeleteConflict) while the user still has keys, policies, groups or other
// credentials; two access keys per user; 2,048 characters of inline user
// policy and 10,240 of inline role policy; names unique ignoring case. It
// also answers STS actions (GetCallerIdentity, …) for its admin keys and
// the keys it issued, optionally with IAM's eventual consistency: a new key
// is refused for WithIAMKeyDelay after its creation.
type FakeIAMHandler struct {
	queryFake[IAMRequest, *IAMRequest]
	cfg       iamConfig
	adminARN  string
	sts       *FakeSTSHandler
	limiter   *rate.Limiter
	throttled atomic.Int64

	mu        sync.Mutex
	users     map[string]*iamUser // by lower-case name: IAM names are case-insensitive
	userKeys  []string            // sorted keys of users
	keys      map[string]*iamKey
	groups    map[string]*iamGroup
	roles     map[string]*iamRole
	policies  map[string]bool
	adminUser *iamUser
}

// NewFakeIAMHandler returns a fake IAM handler.
func NewFakeIAMHandler(opts ...IAMOption) *FakeIAMHandler {
	cfg := iamConfig{account: DefaultSTSAccount, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if len(cfg.keys) == 0 {
		cfg.keys = map[string]string{FakeIAMAccessKeyID: FakeIAMSecretAccessKey}
	}
	h := &FakeIAMHandler{
		cfg:      cfg,
		adminARN: "arn:aws:iam::" + cfg.account + ":user/keyferry-broker",
		users:    make(map[string]*iamUser),
		keys:     make(map[string]*iamKey),
		groups:   make(map[string]*iamGroup),
		roles:    make(map[string]*iamRole),
		policies: make(map[string]bool),
	}
	h.prepare(slices.Concat(iamActions, stsActions), cfg.noRecording)
	if cfg.writeRate > 0 {
		h.limiter = rate.NewLimiter(cfg.writeRate, cfg.writeBurst)
		// Start full at the fake's clock, not the wall clock.
		h.limiter.SetBurstAt(cfg.now(), cfg.writeBurst)
	}
	now := cfg.now().UTC().Truncate(time.Second)
	h.adminUser = &iamUser{name: "keyferry-broker", path: "/", arn: h.adminARN, id: "AIDA" + stableID(h.adminARN), created: now}
	for _, g := range cfg.groups {
		h.groups[strings.ToLower(g)] = h.newGroup(g, "/", now)
	}
	for _, r := range cfg.roles {
		arn := "arn:aws:iam::" + cfg.account + ":role/" + r
		h.roles[strings.ToLower(r)] = &iamRole{name: r, arn: arn, id: "AROA" + stableID(arn), policies: make(map[string]string)}
	}
	for _, p := range cfg.policies {
		h.policies[p] = true
	}
	stsOpts := []STSOption{
		WithSTSAccount(cfg.account), WithSTSCallerARN(h.adminARN), WithSTSKeySource(h),
		WithSTSClock(cfg.now),
	}
	for k, s := range cfg.keys {
		stsOpts = append(stsOpts, WithSTSKey(k, s))
	}
	if cfg.noRecording {
		stsOpts = append(stsOpts, WithoutSTSRecording())
	}
	h.sts = NewFakeSTSHandler(stsOpts...)
	return h
}

func (h *FakeIAMHandler) newGroup(name, path string, now time.Time) *iamGroup {
	arn := "arn:aws:iam::" + h.cfg.account + ":group" + path + name
	return &iamGroup{name: name, path: path, arn: arn, id: "AGPA" + stableID(arn), created: now}
}

// Close releases requests held by a Hang fault. It is idempotent.
func (h *FakeIAMHandler) Close() {
	h.close()
	h.sts.Close()
}

// STS returns the fake STS that answers the STS actions sent to the fake
// IAM: its requests, faults and counters.
func (h *FakeIAMHandler) STS() *FakeSTSHandler { return h.sts }

// Throttled returns how many writes the write rate limit refused.
func (h *FakeIAMHandler) Throttled() int { return int(h.throttled.Load()) }

// Actions returns the action of every recorded request, in arrival order.
func (h *FakeIAMHandler) Actions() []string {
	reqs := h.Requests()
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.Action
	}
	return out
}

// Reset forgets recorded requests, counters and faults, not state (users,
// keys, roles).
func (h *FakeIAMHandler) Reset() {
	h.reset()
	h.throttled.Store(0)
	h.sts.Reset()
}

// Users returns a snapshot of every user, sorted by name.
func (h *FakeIAMHandler) Users() []IAMUser {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]IAMUser, 0, len(h.userKeys))
	for _, k := range h.userKeys {
		out = append(out, h.snapshot(h.users[k]))
	}
	return out
}

// User returns a snapshot of the user named name (case-insensitive).
func (h *FakeIAMHandler) User(name string) (IAMUser, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[strings.ToLower(name)]
	if u == nil {
		return IAMUser{}, false
	}
	return h.snapshot(u), true
}

func (h *FakeIAMHandler) snapshot(u *iamUser) IAMUser {
	s := IAMUser{
		UserName: u.name, Path: u.path, ARN: u.arn, UserID: u.id, Created: u.created,
		PermissionsBoundary: u.boundary, Tags: slices.Clone(u.tags),
		InlinePolicies:   make(map[string]string, len(u.inline)),
		AttachedPolicies: slices.Clone(u.attached),
		Extras:           u.extras.clone(),
	}
	for k, v := range u.inline {
		s.InlinePolicies[k] = v
	}
	for _, g := range u.groups {
		s.Groups = append(s.Groups, h.groups[g].name)
	}
	for _, k := range u.keys {
		s.AccessKeys = append(s.AccessKeys, IAMAccessKey{AccessKeyID: k.id, SecretAccessKey: k.secret, Status: k.status, Created: k.created, UsableAt: k.usableAt})
	}
	return s
}

// AddUserExtras gives an existing user credentials keyferry never creates
// (login profile, MFA devices, …), which block DeleteUser like keys do.
// It reports whether the user exists.
func (h *FakeIAMHandler) AddUserExtras(name string, x IAMUserExtras) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[strings.ToLower(name)]
	if u == nil {
		return false
	}
	u.extras.LoginProfile = u.extras.LoginProfile || x.LoginProfile
	u.extras.MFADevices = append(u.extras.MFADevices, x.MFADevices...)
	u.extras.SigningCertificates = append(u.extras.SigningCertificates, x.SigningCertificates...)
	u.extras.SSHPublicKeys = append(u.extras.SSHPublicKeys, x.SSHPublicKeys...)
	u.extras.ServiceSpecificCredentials = append(u.extras.ServiceSpecificCredentials, x.ServiceSpecificCredentials...)
	return true
}

// RolePolicy returns the inline policy document name of role, as put.
func (h *FakeIAMHandler) RolePolicy(role, name string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.roles[strings.ToLower(role)]
	if r == nil {
		return "", false
	}
	doc, ok := r.policies[name]
	return doc, ok
}

// RolePolicyNames returns the names of role's inline policies, sorted.
func (h *FakeIAMHandler) RolePolicyNames(role string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.roles[strings.ToLower(role)]
	if r == nil {
		return nil
	}
	return sortedKeys(r.policies)
}

// KeyUsableAt returns when the fake's STS starts accepting accessKeyID,
// and false for a key that does not exist.
func (h *FakeIAMHandler) KeyUsableAt(accessKeyID string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := h.keys[accessKeyID]
	if k == nil {
		return time.Time{}, false
	}
	return k.usableAt, true
}

// LookupSTSKey makes the fake IAM an STSKeySource: pass it to a separate
// fake STS with WithSTSKeySource to have that STS accept the keys issued
// here. Inactive keys are refused, like deleted ones.
func (h *FakeIAMHandler) LookupSTSKey(accessKeyID string) (STSLongTermKey, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := h.keys[accessKeyID]
	if k == nil || k.status != "Active" {
		return STSLongTermKey{}, false
	}
	return STSLongTermKey{Secret: k.secret, ARN: k.user.arn, UserID: k.user.id, Account: h.cfg.account, UsableAt: k.usableAt}, true
}

var _ STSKeySource = (*FakeIAMHandler)(nil)

func isSTSAction(a string) bool {
	return a == ActionGetCallerIdentity || a == ActionAssumeRole || a == ActionAssumeRoleWithWebIdentity
}

func isIAMWrite(a string) bool {
	return !strings.HasPrefix(a, "Get") && !strings.HasPrefix(a, "List")
}

// ServeHTTP answers one IAM (or STS) query-API request.
func (h *FakeIAMHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := newRequestID()
	body, params, ok := h.read(r, func(e *QueryError) int { return writeIAMError(w, reqID, e) })
	if !ok {
		return
	}
	req := parseIAMRequest(params, r)
	sts := isSTSAction(req.Action)
	writeErr := func(e *QueryError) int {
		if sts {
			return writeSTSError(w, reqID, e)
		}
		return writeIAMError(w, reqID, e)
	}
	defaultMsg := func(code string) string { return defaultIAMMessage(code, &req, h.adminARN) }
	idx, handled := h.start(w, r, reqID, req.Action, &req, writeErr, defaultMsg)
	if handled {
		return
	}

	if sts {
		if h.cfg.hook != nil {
			if err := h.cfg.hook(&req); err != nil {
				e := asQueryError(err, "AccessDenied")
				h.log.finish(idx, writeErr(e), e.Code, "")
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusRecorder{ResponseWriter: w}
		h.sts.ServeHTTP(rec, r)
		h.log.finish(idx, rec.status, "", "")
		return
	}

	out, issued, e := h.dispatch(r, body, &req, reqID)
	h.answer(w, reqID, idx, out, issued, e, writeErr)
}

// statusRecorder remembers the status the fake STS answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Hijack lets a Drop fault of the fake STS close the connection.
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(s.ResponseWriter).Hijack()
}

func (h *FakeIAMHandler) dispatch(r *http.Request, body []byte, req *IAMRequest, reqID string) ([]byte, string, *QueryError) {
	_, known := h.perAction[req.Action]
	if e := checkCall(r, req.Action, known, iamVersion, req.Params); e != nil {
		return nil, "", e
	}
	if e := h.authenticate(r, body, req); e != nil {
		return nil, "", e
	}
	if h.limiter != nil && isIAMWrite(req.Action) && !h.limiter.AllowN(h.cfg.now(), 1) {
		h.throttled.Add(1)
		return nil, "", &QueryError{Code: "Throttling", Message: "Rate exceeded"}
	}
	if h.cfg.hook != nil {
		if err := h.cfg.hook(req); err != nil {
			return nil, "", asQueryError(err, "AccessDenied")
		}
	}
	return h.act(req, reqID)
}

// authenticate accepts only the admin keys, verified; keys the fake issued
// are valid identities but not allowed to call IAM.
func (h *FakeIAMHandler) authenticate(r *http.Request, body []byte, req *IAMRequest) *QueryError {
	a, e := sigV4Scope(req.Authorization, "iam")
	if e != nil {
		return e
	}
	secret, ok := h.cfg.keys[a.accessKeyID]
	if !ok {
		if k, issued := h.LookupSTSKey(a.accessKeyID); issued {
			if e := verifySigV4(r, body, a, k.Secret); e != nil {
				return e
			}
			return &QueryError{Code: "AccessDenied", Message: "User: " + k.ARN + " is not authorized to perform: iam:" + req.Action + " because no identity-based policy allows the iam:" + req.Action + " action"}
		}
		return errInvalidClientTokenID
	}
	return verifySigV4(r, body, a, secret)
}

func parseIAMRequest(p url.Values, r *http.Request) IAMRequest {
	req := IAMRequest{
		Action:              p.Get("Action"),
		Params:              p,
		UserName:            p.Get("UserName"),
		Path:                p.Get("Path"),
		PermissionsBoundary: p.Get("PermissionsBoundary"),
		PolicyName:          p.Get("PolicyName"),
		PolicyDocument:      p.Get("PolicyDocument"),
		PolicyARN:           p.Get("PolicyArn"),
		GroupName:           p.Get("GroupName"),
		RoleName:            p.Get("RoleName"),
		AccessKeyID:         p.Get("AccessKeyId"),
		Authorization:       r.Header.Get("Authorization"),
	}
	req.Tags = parseTags[IAMTag](p)
	if a, ok := parseSigV4Header(req.Authorization); ok {
		req.SignedBy, req.Region, req.Service = a.accessKeyID, a.region, a.service
	}
	return req
}

// FakeIAM is a FakeIAMHandler served by an httptest.Server on loopback.
// Point both the IAM and the STS endpoint of a client at URL().
type FakeIAM struct {
	*FakeIAMHandler
	fakeServer
}

// NewFakeIAM starts a fake IAM for the test; it is closed by t.Cleanup.
func NewFakeIAM(t testing.TB, opts ...IAMOption) *FakeIAM {
	t.Helper()
	h := NewFakeIAMHandler(opts...)
	return &FakeIAM{FakeIAMHandler: h, fakeServer: serveFake(t, h, h.Close)}
}
