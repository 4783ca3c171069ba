package aws

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyferry/keyferry/internal/testutil"
)

const (
	testAccessKey = "AKIAKEYFERRYTEST0001"
	testSecretKey = "keyferry-test-secret-key-0123456789abcdef"
	testRoleARN   = "arn:aws:iam::123456789012:role/deploy"
)

// fixedNow is the fake STS's clock, so Expiration is exact.
var fixedNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newFake(t *testing.T, opts ...testutil.STSOption) *testutil.FakeSTS {
	t.Helper()
	base := []testutil.STSOption{
		testutil.WithSTSKey(testAccessKey, testSecretKey),
		testutil.WithSTSClock(func() time.Time { return fixedNow }),
	}
	return testutil.NewFakeSTS(t, append(base, opts...)...)
}

// newSTSSetup is a fake STS (newFake) and a provider on it.
func newSTSSetup(t *testing.T) (*testutil.FakeSTS, *Provider) {
	t.Helper()
	fake := newFake(t)
	return fake, newProvider(t, fake)
}

// newProvider returns a provider signing with the fake's key, with tiny
// backoffs so retries cost milliseconds.
func newProvider(t *testing.T, fake *testutil.FakeSTS, mod ...func(*Config)) *Provider {
	t.Helper()
	return providerOn(t, fake.URL(), "", mod...)
}

// providerOn returns a provider on the STS and IAM endpoints (IAM's
// default for ""), signing with the test key, with tiny backoffs.
func providerOn(t testing.TB, stsURL, iamURL string, mod ...func(*Config)) *Provider {
	t.Helper()
	cfg := Config{
		Region:      "us-east-1",
		Endpoint:    stsURL,
		IAMEndpoint: iamURL,
		Credentials: credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, ""),
		CallTimeout: 5 * time.Second,
		MaxAttempts: 4,
		MaxBackoff:  time.Millisecond,
	}
	for _, m := range mod {
		m(&cfg)
	}
	p, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func baseRequest() Request {
	return Request{RoleARN: testRoleARN, SessionName: "gl-g-p-42"}
}

// wantCalls checks how many calls for action the fake got; why explains
// the count.
func wantCalls(t *testing.T, fake interface{ CallsFor(string) int }, action string, want int, why string) {
	t.Helper()
	if got := fake.CallsFor(action); got != want {
		t.Errorf("got %d %s calls, want %d%s", got, action, want, why)
	}
}

// deadlineIn is a test's context that times out after d.
func deadlineIn(d time.Duration) func(t *testing.T) context.Context {
	return func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), d)
		t.Cleanup(cancel)
		return ctx
	}
}

// cancelledIn is a test's context that is cancelled after d.
func cancelledIn(d time.Duration) func(t *testing.T) context.Context {
	return func(t *testing.T) context.Context {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(d, cancel)
		return ctx
	}
}

func jobToken(sub string) string { return testutil.CIJobToken(fixedNow, sub) }

// asError returns err as *Error or fails the test.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v (%T), want *Error", err, err)
	}
	return e
}

func TestAssumeRoleSendsParameters(t *testing.T) {
	type sent struct {
		RoleARN, RoleSessionName, Policy, SourceIdentity, ExternalID string
		PolicyARNs                                                   []string
		Tags                                                         []testutil.STSTag
		TransitiveTagKeys                                            []string
		DurationSeconds                                              int
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::ci/*"}]}`
	tests := []struct {
		name   string
		req    Request
		want   sent
		absent []string // form keys that must not be sent
	}{
		{
			name: "everything",
			req: Request{
				RoleARN: testRoleARN, SessionName: "gl-g-p-42", Policy: policy,
				PolicyARNs:        []string{"arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::123456789012:policy/ci"},
				Tags:              []Tag{{"project", "g/p"}, {"pipeline", "1001"}, {"empty", ""}},
				TransitiveTagKeys: []string{"project", "pipeline"},
				SourceIdentity:    "alice", ExternalID: "ext-123", Duration: 2 * time.Hour,
			},
			want: sent{
				RoleARN: testRoleARN, RoleSessionName: "gl-g-p-42", Policy: policy,
				PolicyARNs:        []string{"arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::123456789012:policy/ci"},
				Tags:              []testutil.STSTag{{Key: "project", Value: "g/p"}, {Key: "pipeline", Value: "1001"}, {Key: "empty", Value: ""}},
				TransitiveTagKeys: []string{"project", "pipeline"},
				SourceIdentity:    "alice", ExternalID: "ext-123", DurationSeconds: 7200,
			},
		},
		{
			name:   "minimal request sends no optional parameter",
			req:    baseRequest(),
			want:   sent{RoleARN: testRoleARN, RoleSessionName: "gl-g-p-42"},
			absent: []string{"Policy", "PolicyArns.member.1.arn", "Tags.member.1.Key", "Tags", "TransitiveTagKeys.member.1", "TransitiveTagKeys", "SourceIdentity", "ExternalId", "DurationSeconds"},
		},
		{
			name: "duration rounds down to whole seconds",
			req:  Request{RoleARN: testRoleARN, SessionName: "s1", Duration: time.Hour + 999*time.Millisecond},
			want: sent{RoleARN: testRoleARN, RoleSessionName: "s1", DurationSeconds: 3600},
		},
		{
			name: "duration below 900s is raised to 900s",
			req:  Request{RoleARN: testRoleARN, SessionName: "s1", Duration: time.Minute},
			want: sent{RoleARN: testRoleARN, RoleSessionName: "s1", DurationSeconds: 900},
		},
		{
			name: "twelve hours",
			req:  Request{RoleARN: testRoleARN, SessionName: "s1", Duration: 12 * time.Hour},
			want: sent{RoleARN: testRoleARN, RoleSessionName: "s1", DurationSeconds: 43200},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, p := newSTSSetup(t)
			if _, err := p.AssumeRole(t.Context(), tt.req); err != nil {
				t.Fatalf("AssumeRole: %v", err)
			}
			reqs := fake.Requests()
			if len(reqs) != 1 {
				t.Fatalf("got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			got := sent{
				RoleARN: r.RoleARN, RoleSessionName: r.RoleSessionName, Policy: r.Policy,
				SourceIdentity: r.SourceIdentity, ExternalID: r.ExternalID, PolicyARNs: r.PolicyARNs,
				Tags: r.Tags, TransitiveTagKeys: r.TransitiveTagKeys, DurationSeconds: r.DurationSeconds,
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("sent parameters (-want +got):\n%s", diff)
			}
			for _, k := range tt.absent {
				if _, ok := r.Params[k]; ok {
					t.Errorf("got parameter %s=%q, want it absent", k, r.Params.Get(k))
				}
			}
			if got, want := r.Params.Get("Version"), "2011-06-15"; got != want {
				t.Errorf("got Version %q, want %q", got, want)
			}
			if !strings.HasPrefix(r.Authorization, "AWS4-HMAC-SHA256 Credential="+testAccessKey+"/") {
				t.Errorf("got Authorization %q, want a SigV4 signature by %s", r.Authorization, testAccessKey)
			}
			if r.Status != http.StatusOK {
				t.Errorf("got status %d (%s), want 200: the fake verifies the signature", r.Status, r.ErrorCode)
			}
		})
	}
}

func TestAssumeRoleReturnsCredentials(t *testing.T) {
	tests := []struct {
		name        string
		opts        []testutil.STSOption
		role        string
		wantARN     string
		wantAccount string
	}{
		{
			name: "account from the assumed-role ARN", role: testRoleARN,
			wantARN: "arn:aws:sts::123456789012:assumed-role/deploy/s1", wantAccount: "123456789012",
		},
		{
			name: "role with a path", role: "arn:aws:iam::210987654321:role/ci/deploy",
			wantARN: "arn:aws:sts::210987654321:assumed-role/deploy/s1", wantAccount: "210987654321",
		},
		{
			name: "server without accounts in ARNs", opts: []testutil.STSOption{testutil.WithSTSOmitAccount()},
			role:    "arn:aws:iam::role/ci-role",
			wantARN: "arn:aws:sts::assumed-role/ci-role/s1", wantAccount: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t, tt.opts...)
			p := newProvider(t, fake)
			got, err := p.AssumeRole(t.Context(), Request{RoleARN: tt.role, SessionName: "s1", Duration: 90 * time.Minute})
			if err != nil {
				t.Fatalf("AssumeRole: %v", err)
			}
			r, _ := fake.LastRequest()
			if got.AccessKeyID != r.IssuedAccessKeyID {
				t.Errorf("got AccessKeyID %q, want the issued %q", got.AccessKeyID, r.IssuedAccessKeyID)
			}
			if !regexp.MustCompile(`^ASIA[A-Z0-9]{16}$`).MatchString(got.AccessKeyID) {
				t.Errorf("got AccessKeyID %q, want ASIA + 16 upper-case alphanumerics", got.AccessKeyID)
			}
			secret, token, ok := fake.Session(got.AccessKeyID)
			if !ok || got.SecretAccessKey != secret || got.SessionToken != token {
				t.Errorf("got secret/token that differ from the issued ones")
			}
			if len(got.SecretAccessKey) != 40 || len(got.SessionToken) < 300 {
				t.Errorf("got secret of %d chars and token of %d, want 40 and ≥300", len(got.SecretAccessKey), len(got.SessionToken))
			}
			if want := fixedNow.Add(90 * time.Minute); !got.Expiration.Equal(want) {
				t.Errorf("got Expiration %v, want %v", got.Expiration, want)
			}
			if got.AssumedRoleARN != tt.wantARN {
				t.Errorf("got AssumedRoleARN %q, want %q", got.AssumedRoleARN, tt.wantARN)
			}
			if got.AccountID != tt.wantAccount {
				t.Errorf("got AccountID %q, want %q", got.AccountID, tt.wantAccount)
			}
			if !strings.HasPrefix(got.AssumedRoleID, "AROA") || !strings.HasSuffix(got.AssumedRoleID, ":s1") {
				t.Errorf("got AssumedRoleID %q, want AROA…:s1", got.AssumedRoleID)
			}
		})
	}
}

func TestClientsAreCreatedOncePerRegion(t *testing.T) {
	fake, p := newSTSSetup(t)
	if got := p.created.Load(); got != 1 {
		t.Fatalf("after New: got %d clients, want 1 (the default region's)", got)
	}
	c1, err := p.client("")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		region      string
		wantRegion  string // SigV4 scope seen by STS
		wantClients int64
	}{
		{"", "us-east-1", 1},
		{"", "us-east-1", 1},
		{"us-east-1", "us-east-1", 1},
		{"eu-west-1", "eu-west-1", 2},
		{"eu-west-1", "eu-west-1", 2},
		{"", "us-east-1", 2},
		{"ap-southeast-2", "ap-southeast-2", 3},
	}
	for i, s := range steps {
		req := baseRequest()
		req.Region = s.region
		if _, err := p.AssumeRole(t.Context(), req); err != nil {
			t.Fatalf("step %d: AssumeRole: %v", i, err)
		}
		r, _ := fake.LastRequest()
		if r.Region != s.wantRegion {
			t.Errorf("step %d: got signing region %q, want %q", i, r.Region, s.wantRegion)
		}
		if got := p.created.Load(); got != s.wantClients {
			t.Errorf("step %d: got %d clients created, want %d", i, got, s.wantClients)
		}
	}
	c2, _ := p.client("")
	c3, _ := p.client("us-east-1")
	if c1 != c2 || c1 != c3 {
		t.Errorf("got a different *sts.Client for the default region on later calls, want the same one")
	}
	if eu, _ := p.client("eu-west-1"); eu == c1 {
		t.Errorf("got the default region's client for eu-west-1, want its own")
	}
}

func TestConcurrentCallsShareOneClient(t *testing.T) {
	fake, p := newSTSSetup(t)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 32 {
		wg.Go(func() {
			req := baseRequest()
			if i%2 == 1 {
				req.Region = "eu-central-1"
			}
			if _, err := p.AssumeRole(t.Context(), req); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if got := failed.Load(); got != 0 {
		t.Errorf("got %d failed calls, want 0", got)
	}
	if got := p.created.Load(); got != 2 {
		t.Errorf("got %d clients created, want 2", got)
	}
	wantCalls(t, fake, testutil.ActionAssumeRole, 32, "")
}

func TestInvalidRegionIsRejectedLocally(t *testing.T) {
	fake, p := newSTSSetup(t)
	req := baseRequest()
	req.Region = "evil.example.com/x"
	_, err := p.AssumeRole(t.Context(), req)
	if got := asError(t, err).Code; got != CodeInvalidRequest {
		t.Errorf("got code %q, want %q", got, CodeInvalidRequest)
	}
	if got := fake.Calls(); got != 0 {
		t.Errorf("got %d STS calls, want 0", got)
	}
}

func TestThrottling(t *testing.T) {
	tests := []struct {
		name     string
		fault    testutil.STSFault
		times    int
		wantCode string // "" = success
		wantUp   string
	}{
		{name: "one throttle is retried", fault: testutil.STSFault{Code: "Throttling"}, times: 1},
		{name: "three throttles with four attempts succeed", fault: testutil.STSFault{Code: "Throttling"}, times: 3},
		{name: "four throttles exhaust four attempts", fault: testutil.STSFault{Code: "Throttling"}, times: 4, wantCode: CodeThrottled, wantUp: "Throttling"},
		{name: "ThrottlingException", fault: testutil.STSFault{Code: "ThrottlingException"}, times: 10, wantCode: CodeThrottled, wantUp: "ThrottlingException"},
		{name: "RequestLimitExceeded", fault: testutil.STSFault{Code: "RequestLimitExceeded"}, times: 10, wantCode: CodeThrottled, wantUp: "RequestLimitExceeded"},
		{name: "TooManyRequestsException 429", fault: testutil.STSFault{Code: "TooManyRequestsException"}, times: 10, wantCode: CodeThrottled, wantUp: "TooManyRequestsException"},
		{name: "bare HTTP 429", fault: testutil.STSFault{Status: http.StatusTooManyRequests}, times: 10, wantCode: CodeThrottled},
		{name: "bare HTTP 429 then success", fault: testutil.STSFault{Status: http.StatusTooManyRequests}, times: 2},
	}
	const attempts = 4
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t)
			p := newProvider(t, fake, func(c *Config) { c.MaxAttempts = attempts })
			f := tt.fault
			f.Times = tt.times
			fake.AddFault(f)
			start := time.Now()
			creds, err := p.AssumeRole(t.Context(), baseRequest())
			if took := time.Since(start); took > time.Second {
				t.Errorf("took %v, want well under 1s with 1ms backoffs", took)
			}
			wantCalls := min(tt.times+1, attempts)
			if got := fake.Calls(); got != wantCalls {
				t.Errorf("got %d STS calls, want %d", got, wantCalls)
			}
			if tt.wantCode == "" {
				if err != nil || creds == nil {
					t.Fatalf("got error %v, want credentials after retries", err)
				}
				return
			}
			e := asError(t, err)
			if e.Code != tt.wantCode || e.UpstreamCode != tt.wantUp {
				t.Errorf("got code %q upstream %q, want %q upstream %q", e.Code, e.UpstreamCode, tt.wantCode, tt.wantUp)
			}
			if e.RetryAfter < time.Second || e.RetryAfter > 5*time.Second {
				t.Errorf("got RetryAfter %v, want within 1s–5s", e.RetryAfter)
			}
		})
	}
}

// TestSustainedThrottlingFailsFast checks the SDK's retry quota: once a
// client's retry budget (500 tokens, 5 per throttled retry) is spent, calls
// stop retrying and fail at once with CodeThrottled instead of multiplying
// the load on a throttling STS.
func TestSustainedThrottlingFailsFast(t *testing.T) {
	fake, p := newSTSSetup(t)
	fake.SetFault(testutil.STSFault{Code: "Throttling"})
	const calls = 60
	for i := range calls {
		_, err := p.AssumeRole(t.Context(), baseRequest())
		if e := asError(t, err); e.Code != CodeThrottled || e.RetryAfter <= 0 {
			t.Fatalf("call %d: got code %q RetryAfter %v, want %q with a hint", i, e.Code, e.RetryAfter, CodeThrottled)
		}
	}
	// 100 retries fit the budget; 60 calls × 4 attempts would be 240.
	if got, limit := fake.Calls(), calls+100; got > limit {
		t.Errorf("got %d STS calls, want at most %d once the retry quota is spent", got, limit)
	}
	if got := fake.Calls(); got <= calls {
		t.Errorf("got %d STS calls, want some retries before the quota ran out", got)
	}
}

func TestUpstreamErrorMapping(t *testing.T) {
	const brokerARN = "arn:aws:iam::123456789012:user/keyferry-broker"
	tests := []struct {
		name        string
		fault       testutil.STSFault
		wantCode    string
		wantUp      string
		wantCalls   int
		wantMsg     string   // exact, when set
		msgHas      []string // substrings of Message
		msgHasNot   []string // not in Message
		errHas      []string // substrings of Err's text (for logs)
		wantRetryAf bool
	}{
		{
			name:      "access denied hides the upstream message",
			fault:     testutil.STSFault{Code: "AccessDenied"}, // the fake's message names brokerARN
			wantCode:  CodeAccessDenied,
			wantUp:    "AccessDenied",
			wantCalls: 1,
			wantMsg:   "AWS STS denied AssumeRole on arn:aws:iam::123456789012:role/deploy (AccessDenied)",
			msgHasNot: []string{brokerARN, "keyferry-broker", "not authorized"},
			errHas:    []string{brokerARN, "not authorized to perform: sts:AssumeRole"},
		},
		{
			name:      "malformed policy",
			fault:     testutil.STSFault{Code: "MalformedPolicyDocument", Message: "Syntax errors in policy."},
			wantCode:  CodeInvalidRequest,
			wantUp:    "MalformedPolicyDocument",
			wantCalls: 1,
			wantMsg:   "AWS STS rejected AssumeRole on arn:aws:iam::123456789012:role/deploy (MalformedPolicyDocument): Syntax errors in policy.",
		},
		{
			name:      "packed policy too large",
			fault:     testutil.STSFault{Code: "PackedPolicyTooLarge"},
			wantCode:  CodeInvalidRequest,
			wantUp:    "PackedPolicyTooLarge",
			wantCalls: 1,
			msgHas:    []string{"PackedPolicyTooLarge", "Packed policy consumes 120% of allotted space"},
		},
		{
			name:      "validation error",
			fault:     testutil.STSFault{Code: "ValidationError", Message: "1 validation error detected: Value '50000' at 'durationSeconds' failed to satisfy constraint"},
			wantCode:  CodeInvalidRequest,
			wantUp:    "ValidationError",
			wantCalls: 1,
			msgHas:    []string{"ValidationError", "durationSeconds"},
		},
		{
			name:      "region disabled",
			fault:     testutil.STSFault{Code: "RegionDisabledException"},
			wantCode:  CodeInvalidRequest,
			wantUp:    "RegionDisabledException",
			wantCalls: 1,
			msgHas:    []string{"RegionDisabledException", "not activated in this region"},
		},
		{
			name:      "500 InternalFailure is retried then unavailable",
			fault:     testutil.STSFault{Code: "InternalFailure"},
			wantCode:  CodeUnavailable,
			wantUp:    "InternalFailure",
			wantCalls: 4,
			wantMsg:   "AWS STS is unavailable for AssumeRole (InternalFailure)",
		},
		{
			name:      "503 ServiceUnavailable",
			fault:     testutil.STSFault{Code: "ServiceUnavailable"},
			wantCode:  CodeUnavailable,
			wantUp:    "ServiceUnavailable",
			wantCalls: 4,
		},
		{
			name:      "502 HTML page from a proxy",
			fault:     testutil.STSFault{Status: http.StatusBadGateway, Body: "<html><body>Bad Gateway</body></html>"},
			wantCode:  CodeUnavailable,
			wantCalls: 4,
			msgHas:    []string{"HTTP 502"},
		},
		{
			name:      "503 with no body",
			fault:     testutil.STSFault{Status: http.StatusServiceUnavailable},
			wantCode:  CodeUnavailable,
			wantCalls: 4,
			msgHas:    []string{"HTTP 503"},
		},
		{
			name:      "connection dropped",
			fault:     testutil.STSFault{Drop: true},
			wantCode:  CodeUnavailable,
			wantCalls: 4,
			wantMsg:   "could not complete AWS STS AssumeRole",
		},
		{
			name:      "broker credentials invalid is the broker's problem",
			fault:     testutil.STSFault{Code: "InvalidClientTokenId", Message: "The security token included in the request is invalid."},
			wantCode:  CodeUnavailable,
			wantUp:    "InvalidClientTokenId",
			wantCalls: 1,
			msgHasNot: []string{"security token"},
		},
		{
			name:      "expired broker session on AssumeRole is not a token rejection",
			fault:     testutil.STSFault{Code: "ExpiredToken", Message: "The security token included in the request is expired"},
			wantCode:  CodeUnavailable,
			wantUp:    "ExpiredToken",
			wantCalls: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, p := newSTSSetup(t)
			fake.SetFault(tt.fault)
			_, err := p.AssumeRole(t.Context(), baseRequest())
			e := asError(t, err)
			if e.Code != tt.wantCode || e.UpstreamCode != tt.wantUp {
				t.Errorf("got code %q upstream %q, want %q upstream %q", e.Code, e.UpstreamCode, tt.wantCode, tt.wantUp)
			}
			if got := fake.Calls(); got != tt.wantCalls {
				t.Errorf("got %d STS calls, want %d", got, tt.wantCalls)
			}
			if tt.wantMsg != "" && e.Message != tt.wantMsg {
				t.Errorf("got Message %q, want %q", e.Message, tt.wantMsg)
			}
			for _, s := range tt.msgHas {
				if !strings.Contains(e.Message, s) {
					t.Errorf("got Message %q, want it to contain %q", e.Message, s)
				}
			}
			for _, s := range tt.msgHasNot {
				if strings.Contains(e.Message, s) {
					t.Errorf("got Message %q, want it without %q", e.Message, s)
				}
			}
			if e.Err == nil {
				t.Fatalf("got nil Err, want the SDK error for logs")
			}
			for _, s := range tt.errHas {
				if !strings.Contains(e.Err.Error(), s) {
					t.Errorf("got Err %q, want it to contain %q", e.Err, s)
				}
			}
			if e.RetryAfter != 0 {
				t.Errorf("got RetryAfter %v on %s, want 0", e.RetryAfter, e.Code)
			}
		})
	}
}

func TestInvalidRequestsFromRealValidation(t *testing.T) {
	many := make([]Tag, 51)
	for i := range many {
		many[i] = Tag{Key: "k" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Value: "v"}
	}
	tests := []struct {
		name      string
		mod       func(*Request)
		wantUp    string
		msgHas    string
		wantCalls int
	}{
		{name: "policy that is not JSON", mod: func(r *Request) { r.Policy = `{"Version":` }, wantUp: "MalformedPolicyDocument", msgHas: "Syntax errors in policy", wantCalls: 1},
		{name: "duration above 12h", mod: func(r *Request) { r.Duration = 13 * time.Hour }, wantUp: "ValidationError", msgHas: "durationSeconds", wantCalls: 1},
		{name: "more than 50 tags", mod: func(r *Request) { r.Tags = many }, wantUp: "ValidationError", msgHas: "tags", wantCalls: 1},
		{name: "session name with a slash", mod: func(r *Request) { r.SessionName = "g/p" }, wantUp: "ValidationError", msgHas: "roleSessionName", wantCalls: 1},
		{name: "missing role ARN never leaves the process", mod: func(r *Request) { r.RoleARN = "" }, msgHas: "RoleArn", wantCalls: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, p := newSTSSetup(t)
			req := baseRequest()
			tt.mod(&req)
			_, err := p.AssumeRole(t.Context(), req)
			e := asError(t, err)
			if e.Code != CodeInvalidRequest || e.UpstreamCode != tt.wantUp {
				t.Errorf("got code %q upstream %q, want %q upstream %q", e.Code, e.UpstreamCode, CodeInvalidRequest, tt.wantUp)
			}
			if !strings.Contains(e.Message, tt.msgHas) {
				t.Errorf("got Message %q, want it to contain %q", e.Message, tt.msgHas)
			}
			if got := fake.Calls(); got != tt.wantCalls {
				t.Errorf("got %d STS calls, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestWrongBrokerSecretFailsSignature(t *testing.T) {
	fake := newFake(t)
	p := newProvider(t, fake, func(c *Config) {
		c.Credentials = credentials.NewStaticCredentialsProvider(testAccessKey, "not-the-secret", "")
	})
	_, err := p.AssumeRole(t.Context(), baseRequest())
	e := asError(t, err)
	if e.Code != CodeUnavailable || e.UpstreamCode != "SignatureDoesNotMatch" {
		t.Errorf("got code %q upstream %q, want %q upstream SignatureDoesNotMatch", e.Code, e.UpstreamCode, CodeUnavailable)
	}
}

func TestUnreachableSTS(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	p, err := New(t.Context(), Config{
		Region: "us-east-1", Endpoint: url, MaxAttempts: 2, MaxBackoff: time.Millisecond,
		Credentials: credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.AssumeRole(t.Context(), baseRequest())
	if got := asError(t, err).Code; got != CodeUnavailable {
		t.Errorf("got code %q, want %q", got, CodeUnavailable)
	}
}

func TestCallTimeout(t *testing.T) {
	tests := []struct {
		name  string
		fault testutil.STSFault
	}{
		{name: "upstream hangs", fault: testutil.STSFault{Hang: true}},
		{name: "upstream slower than the timeout", fault: testutil.STSFault{Latency: 3 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t)
			p := newProvider(t, fake, func(c *Config) { c.CallTimeout = 200 * time.Millisecond })
			fake.SetFault(tt.fault)
			start := time.Now()
			_, err := p.AssumeRole(t.Context(), baseRequest())
			took := time.Since(start)
			e := asError(t, err)
			if e.Code != CodeTimeout {
				t.Errorf("got code %q, want %q", e.Code, CodeTimeout)
			}
			if want := "AWS STS did not answer AssumeRole on " + testRoleARN + " within 200ms"; e.Message != want {
				t.Errorf("got Message %q, want %q", e.Message, want)
			}
			if took < 200*time.Millisecond || took > 800*time.Millisecond {
				t.Errorf("took %v, want about 200ms", took)
			}
		})
	}
}

func TestCallerGoneReturnsContextError(t *testing.T) {
	tests := []struct {
		name    string
		ctx     func(t *testing.T) context.Context
		wantErr error
	}{
		{
			name:    "parent cancelled",
			ctx:     cancelledIn(50 * time.Millisecond),
			wantErr: context.Canceled,
		},
		{
			name:    "parent deadline shorter than CallTimeout",
			ctx:     deadlineIn(50 * time.Millisecond),
			wantErr: context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t)
			p := newProvider(t, fake) // CallTimeout 5s
			fake.SetFault(testutil.STSFault{Hang: true})
			start := time.Now()
			_, err := p.AssumeRole(tt.ctx(t), baseRequest())
			if took := time.Since(start); took > time.Second {
				t.Errorf("took %v, want the call to end with its caller", took)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("got error %v, want it to wrap %v", err, tt.wantErr)
			}
			var e *Error
			if errors.As(err, &e) {
				t.Errorf("got *Error %q, want the context error: the caller went away", e.Code)
			}
		})
	}
}

// countingCreds fails the test's expectations if anything asks it for
// credentials.
type countingCreds struct{ calls atomic.Int32 }

func (c *countingCreds) Retrieve(context.Context) (aws.Credentials, error) {
	c.calls.Add(1)
	return aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey, Source: "test"}, nil
}

func TestWebIdentityIsUnsigned(t *testing.T) {
	fake := newFake(t)
	creds := &countingCreds{}
	p := newProvider(t, fake, func(c *Config) { c.Credentials = creds })
	req := Request{
		RoleARN: testRoleARN, SessionName: "gl-42", WebIdentityToken: jobToken("project_path:g/p:ref_type:branch:ref:main"),
		Policy: `{"Version":"2012-10-17","Statement":[]}`, PolicyARNs: []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"},
		Duration: 30 * time.Minute,
		// Not part of this call: must not be sent.
		Tags: []Tag{{"a", "b"}}, TransitiveTagKeys: []string{"a"}, SourceIdentity: "alice", ExternalID: "x-1",
	}
	got, err := p.AssumeRoleWithWebIdentity(t.Context(), req)
	if err != nil {
		t.Fatalf("AssumeRoleWithWebIdentity: %v", err)
	}
	r, _ := fake.LastRequest()
	if r.Authorization != "" || r.SecurityToken != "" {
		t.Errorf("got Authorization %q, X-Amz-Security-Token %q, want an unsigned request", r.Authorization, r.SecurityToken)
	}
	if n := creds.calls.Load(); n != 0 {
		t.Errorf("got %d retrievals of broker credentials, want 0", n)
	}
	if r.Action != testutil.ActionAssumeRoleWithWebIdentity || r.RoleARN != req.RoleARN || r.RoleSessionName != req.SessionName ||
		r.WebIdentityToken != req.WebIdentityToken || r.Policy != req.Policy || r.DurationSeconds != 1800 {
		t.Errorf("got request %+v, want the role, session, token, policy and 1800s sent", r)
	}
	if diff := cmp.Diff(req.PolicyARNs, r.PolicyARNs); diff != "" {
		t.Errorf("policy ARNs (-want +got):\n%s", diff)
	}
	for _, k := range []string{"Tags.member.1.Key", "TransitiveTagKeys.member.1", "SourceIdentity", "ExternalId"} {
		if _, ok := r.Params[k]; ok {
			t.Errorf("got parameter %s, want it absent from AssumeRoleWithWebIdentity", k)
		}
	}
	if got.AccessKeyID != r.IssuedAccessKeyID || got.AccountID != "123456789012" || !got.Expiration.Equal(fixedNow.Add(30*time.Minute)) {
		t.Errorf("got credentials %q account %q expiring %v, want the issued ones", got.AccessKeyID, got.AccountID, got.Expiration)
	}
}

// hermeticAWSEnv leaves the SDK default chain with no credentials and no
// way to find any (no files, no IMDS, no container endpoint).
func hermeticAWSEnv(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "", "AWS_REGION": "", "AWS_DEFAULT_REGION": "",
		"AWS_CONFIG_FILE": dir + "/config", "AWS_SHARED_CREDENTIALS_FILE": dir + "/credentials",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_ROLE_ARN": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_STS": "", "AWS_MAX_ATTEMPTS": "1",
	} {
		t.Setenv(k, v)
	}
}

func TestWebIdentityWorksWithoutBrokerCredentials(t *testing.T) {
	hermeticAWSEnv(t)
	fake := newFake(t)
	p := newProvider(t, fake, func(c *Config) { c.Credentials = nil })

	creds, err := p.AssumeRoleWithWebIdentity(t.Context(), Request{
		RoleARN: testRoleARN, SessionName: "gl-42", WebIdentityToken: jobToken("project_path:g/p"),
	})
	if err != nil {
		t.Fatalf("AssumeRoleWithWebIdentity without broker credentials: %v", err)
	}
	if creds.AccessKeyID == "" {
		t.Errorf("got empty AccessKeyID, want issued credentials")
	}
	if r, _ := fake.LastRequest(); r.Authorization != "" {
		t.Errorf("got Authorization %q, want none", r.Authorization)
	}

	// AWS_MAX_ATTEMPTS=1 from the environment does not override MaxAttempts.
	fake.SetFault(testutil.STSFault{Code: "IDPCommunicationError"})
	_, err = p.AssumeRoleWithWebIdentity(t.Context(), Request{
		RoleARN: testRoleARN, SessionName: "gl-42", WebIdentityToken: jobToken("project_path:g/p"),
	})
	if got := asError(t, err).Code; got != CodeUnavailable {
		t.Errorf("got code %q, want %q", got, CodeUnavailable)
	}
	wantCalls(t, fake, testutil.ActionAssumeRoleWithWebIdentity, 1+4, " (1 + 4 attempts)")
	fake.ClearFaults()

	// The same provider cannot sign AssumeRole: it fails locally, without
	// reaching STS.
	_, err = p.AssumeRole(t.Context(), baseRequest())
	if got := asError(t, err).Code; got != CodeUnavailable {
		t.Errorf("AssumeRole without credentials: got code %q, want %q", got, CodeUnavailable)
	}
	wantCalls(t, fake, testutil.ActionAssumeRole, 0, " (at STS)")
}

func TestWebIdentityErrorMapping(t *testing.T) {
	expired := testutil.UnsignedJWT(map[string]any{"iss": "https://gitlab.example.com", "sub": "p", "aud": "sts.amazonaws.com", "exp": fixedNow.Add(-time.Minute).Unix()})
	tests := []struct {
		name      string
		token     string
		opts      []testutil.STSOption
		fault     *testutil.STSFault
		wantCode  string
		wantUp    string
		wantCalls int
		msgHas    string
	}{
		{name: "expired token", token: expired, wantCode: CodeTokenRejected, wantUp: "ExpiredTokenException", wantCalls: 1, msgHas: "Token expired"},
		{name: "not a JWT", token: "opaque-access-token", wantCode: CodeTokenRejected, wantUp: "InvalidIdentityToken", wantCalls: 1, msgHas: "not a valid JWT"},
		{
			name: "invalid token is not retried", opts: []testutil.STSOption{testutil.WithSTSTokenValidator(func(string) error { return errors.New("Incorrect token audience") })},
			wantCode: CodeTokenRejected, wantUp: "InvalidIdentityToken", wantCalls: 1, msgHas: "Incorrect token audience",
		},
		{name: "rejected claim", fault: &testutil.STSFault{Code: "IDPRejectedClaim"}, wantCode: CodeTokenRejected, wantUp: "IDPRejectedClaim", wantCalls: 1},
		{name: "ExpiredToken spelling", fault: &testutil.STSFault{Code: "ExpiredToken"}, wantCode: CodeTokenRejected, wantUp: "ExpiredToken", wantCalls: 1},
		{name: "IdP unreachable is retried, then unavailable", fault: &testutil.STSFault{Code: "IDPCommunicationError"}, wantCode: CodeUnavailable, wantUp: "IDPCommunicationError", wantCalls: 4},
		{name: "trust policy denies", fault: &testutil.STSFault{Code: "AccessDenied"}, wantCode: CodeAccessDenied, wantUp: "AccessDenied", wantCalls: 1, msgHas: "AWS STS denied AssumeRoleWithWebIdentity on " + testRoleARN},
		{name: "malformed policy", fault: &testutil.STSFault{Code: "MalformedPolicyDocument"}, wantCode: CodeInvalidRequest, wantUp: "MalformedPolicyDocument", wantCalls: 1},
		{name: "throttled", fault: &testutil.STSFault{Code: "Throttling"}, wantCode: CodeThrottled, wantUp: "Throttling", wantCalls: 4},
		{name: "missing token never leaves the process", token: "-", wantCode: CodeInvalidRequest, wantCalls: 0, msgHas: "WebIdentityToken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t, tt.opts...)
			p := newProvider(t, fake)
			if tt.fault != nil {
				fake.SetFault(*tt.fault)
			}
			token := tt.token
			switch token {
			case "":
				token = jobToken("project_path:g/p")
			case "-":
				token = ""
			}
			_, err := p.AssumeRoleWithWebIdentity(t.Context(), Request{RoleARN: testRoleARN, SessionName: "s1", WebIdentityToken: token})
			e := asError(t, err)
			if e.Code != tt.wantCode || e.UpstreamCode != tt.wantUp {
				t.Errorf("got code %q upstream %q, want %q upstream %q", e.Code, e.UpstreamCode, tt.wantCode, tt.wantUp)
			}
			if got := fake.Calls(); got != tt.wantCalls {
				t.Errorf("got %d STS calls, want %d", got, tt.wantCalls)
			}
			if !strings.Contains(e.Message, tt.msgHas) {
				t.Errorf("got Message %q, want it to contain %q", e.Message, tt.msgHas)
			}
			if token != "" && strings.Contains(e.Message, token) {
				t.Errorf("got Message containing the token, want it out")
			}
		})
	}
}

func TestCallerIdentity(t *testing.T) {
	const caller = "arn:aws:iam::123456789012:user/keyferry-broker"
	fake := newFake(t, testutil.WithSTSCallerARN(caller))
	p := newProvider(t, fake)
	got, err := p.CallerIdentity(t.Context())
	if err != nil {
		t.Fatalf("CallerIdentity: %v", err)
	}
	if got != caller {
		t.Errorf("got %q, want %q", got, caller)
	}
	r, _ := fake.LastRequest()
	if r.Action != testutil.ActionGetCallerIdentity || r.Status != http.StatusOK {
		t.Errorf("got %s answered %d, want a verified GetCallerIdentity", r.Action, r.Status)
	}

	fake.SetFault(testutil.STSFault{Code: "InvalidClientTokenId"})
	_, err = p.CallerIdentity(t.Context())
	e := asError(t, err)
	if e.Code != CodeUnavailable || e.Message != "AWS STS refused the broker's GetCallerIdentity call (InvalidClientTokenId)" {
		t.Errorf("got %q %q, want unavailable naming InvalidClientTokenId", e.Code, e.Message)
	}
}

func TestLogsNeverCarrySecrets(t *testing.T) {
	var logs testutil.SyncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fake := newFake(t)
	p := newProvider(t, fake, func(c *Config) { c.Logger = logger })

	ar, err := p.AssumeRole(t.Context(), baseRequest())
	if err != nil {
		t.Fatal(err)
	}
	token := jobToken("project_path:g/p")
	wi, err := p.AssumeRoleWithWebIdentity(t.Context(), Request{RoleARN: testRoleARN, SessionName: "s2", WebIdentityToken: token})
	if err != nil {
		t.Fatal(err)
	}
	fake.SetFault(testutil.STSFault{Code: "AccessDenied"})
	if _, err := p.AssumeRole(t.Context(), baseRequest()); err == nil {
		t.Fatal("got nil error, want AccessDenied")
	}

	out := logs.String()
	for _, want := range []string{ar.AccessKeyID, wi.AccessKeyID, `"upstream_code":"AccessDenied"`} {
		if !strings.Contains(out, want) {
			t.Errorf("got logs without %q, want it (AccessKeyId is for CloudTrail correlation)", want)
		}
	}
	for name, secret := range map[string]string{
		"secret key": ar.SecretAccessKey, "session token": ar.SessionToken,
		"web secret key": wi.SecretAccessKey, "web session token": wi.SessionToken,
		"job token": token, "broker secret": testSecretKey,
	} {
		if strings.Contains(out, secret) {
			t.Errorf("got the %s in the logs, want it never logged", name)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	static := credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, "")
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "no region", cfg: Config{Credentials: static}},
		{name: "negative timeout", cfg: Config{Region: "us-east-1", Credentials: static, CallTimeout: -time.Second}},
		{name: "negative attempts", cfg: Config{Region: "us-east-1", Credentials: static, MaxAttempts: -1}},
		{name: "invalid region", cfg: Config{Region: "US East", Credentials: static}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(t.Context(), tt.cfg); err == nil {
				t.Errorf("got nil error, want New to refuse %+v", tt.cfg)
			}
		})
	}
}

// TestMissingBrokerCredentials: a broker with no AWS credentials of its own
// says so, instead of a bare "could not complete".
func TestMissingBrokerCredentials(t *testing.T) {
	fake := newFake(t)
	p, err := New(t.Context(), Config{
		Region: "us-east-1", Endpoint: fake.URL(), MaxAttempts: 1,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{}, errors.New("no EC2 IMDS role found")
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.AssumeRole(t.Context(), baseRequest())
	e := asError(t, err)
	if e.Code != CodeUnavailable || !strings.Contains(e.Message, "no usable AWS credentials") {
		t.Errorf("got %s %q, want upstream_unavailable naming the missing broker credentials", e.Code, e.Message)
	}
	if fake.Calls() != 0 {
		t.Errorf("STS was called %d times without credentials", fake.Calls())
	}
}
