package testutil

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/google/go-cmp/cmp"
)

const (
	tKey    = "AKIAFAKESTSTEST00001"
	tSecret = "fake-sts-test-secret-0123456789abcdefghij"
	tRole   = "arn:aws:iam::123456789012:role/deploy"
	// anySig is a well-formed SigV4 header; a fake without keys accepts it
	// unverified.
	anySig = "AWS4-HMAC-SHA256 Credential=AKIDANY/20300102/eu-west-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=00"
)

var tNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func clock() func() time.Time { return func() time.Time { return tNow } }

// post sends a raw form to the fake and returns the status and body.
func post(t *testing.T, base string, form url.Values, auth string) (*http.Response, []byte) {
	t.Helper()
	return postForm(t, base, form, "application/x-www-form-urlencoded", func(req *http.Request) {
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
	})
}

// postForm POSTs form to base with contentType, after prepare (which may
// add headers), and returns the status and body.
func postForm(t *testing.T, base string, form url.Values, contentType string, prepare func(*http.Request)) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	prepare(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// form is an STS query: action and the key, value pairs kv.
func form(action string, kv ...string) url.Values { return queryForm(stsVersion, action, kv...) }

// queryForm is a query-API form for action of version, with the key,
// value pairs kv.
func queryForm(version, action string, kv ...string) url.Values {
	v := url.Values{"Action": {action}, "Version": {version}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

type xmlCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string
	SessionToken    string
	Expiration      string
}

type xmlAssumeRole struct {
	XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleResponse"`
	Result  struct {
		AssumedRoleUser struct {
			Arn           string
			AssumedRoleID string `xml:"AssumedRoleId"`
		}
		Credentials      xmlCredentials
		PackedPolicySize int
		SourceIdentity   string
	} `xml:"AssumeRoleResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

type xmlError struct {
	XMLName   xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ ErrorResponse"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestFakeSTSAssumeRoleResponse(t *testing.T) {
	fake := NewFakeSTS(t, WithSTSClock(clock()))
	f := form(ActionAssumeRole, "RoleArn", tRole, "RoleSessionName", "s-1", "DurationSeconds", "1800",
		"SourceIdentity", "alice<&>", "Tags.member.1.Key", "project", "Tags.member.1.Value", "g/p")
	resp, body := post(t, fake.URL(), f, anySig)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got status %d, want 200: %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Content-Type"); got != "text/xml" {
		t.Errorf("got Content-Type %q, want text/xml", got)
	}
	var got xmlAssumeRole
	if err := xml.Unmarshal(body, &got); err != nil {
		t.Fatalf("decode: %v\n%s", err, body)
	}
	c := got.Result.Credentials
	if !regexp.MustCompile(`^ASIA[A-Z0-9]{16}$`).MatchString(c.AccessKeyID) {
		t.Errorf("got AccessKeyId %q, want ASIA + 16 upper-case alphanumerics", c.AccessKeyID)
	}
	if len(c.SecretAccessKey) != 40 || len(c.SessionToken) < 300 {
		t.Errorf("got secret of %d chars and token of %d, want 40 and ≥300", len(c.SecretAccessKey), len(c.SessionToken))
	}
	if want := "2030-01-02T03:34:05Z"; c.Expiration != want {
		t.Errorf("got Expiration %q, want %q (now + 1800s)", c.Expiration, want)
	}
	if want := "arn:aws:sts::123456789012:assumed-role/deploy/s-1"; got.Result.AssumedRoleUser.Arn != want {
		t.Errorf("got Arn %q, want %q", got.Result.AssumedRoleUser.Arn, want)
	}
	if id := got.Result.AssumedRoleUser.AssumedRoleID; !regexp.MustCompile(`^AROA[A-Z0-9]{17}:s-1$`).MatchString(id) {
		t.Errorf("got AssumedRoleId %q, want AROA + 17 chars + :s-1", id)
	}
	if got.Result.SourceIdentity != "alice<&>" {
		t.Errorf("got SourceIdentity %q, want it escaped and decoded back", got.Result.SourceIdentity)
	}
	if got.Result.PackedPolicySize < 1 {
		t.Errorf("got PackedPolicySize %d, want ≥1 when tags are sent", got.Result.PackedPolicySize)
	}
	if !uuidRE.MatchString(got.RequestID) || resp.Header.Get("X-Amzn-Requestid") != got.RequestID {
		t.Errorf("got RequestId %q and header %q, want the same UUID", got.RequestID, resp.Header.Get("X-Amzn-Requestid"))
	}
	r, _ := fake.LastRequest()
	if r.IssuedAccessKeyID != c.AccessKeyID || r.Status != 200 || r.AccessKeyID != "AKIDANY" || r.Region != "eu-west-1" {
		t.Errorf("got record %+v, want issued key, status 200, signer AKIDANY in eu-west-1", r)
	}
	if want := []STSTag{{"project", "g/p"}}; !cmp.Equal(r.Tags, want) {
		t.Errorf("got tags %v, want %v", r.Tags, want)
	}
}

func TestFakeSTSParsesLists(t *testing.T) {
	fake := NewFakeSTS(t)
	f := form(ActionAssumeRole, "RoleArn", tRole, "RoleSessionName", "s-1",
		"Tags.member.1.Key", "a", "Tags.member.1.Value", "1",
		"Tags.member.2.Key", "b", "Tags.member.2.Value", "",
		"TransitiveTagKeys.member.1", "a", "TransitiveTagKeys.member.2", "b",
		"PolicyArns.member.1.arn", "arn:aws:iam::aws:policy/A", "PolicyArns.member.2.arn", "arn:aws:iam::aws:policy/B")
	if resp, body := post(t, fake.URL(), f, anySig); resp.StatusCode != 200 {
		t.Fatalf("got %d, want 200: %s", resp.StatusCode, body)
	}
	r, _ := fake.LastRequest()
	want := STSRequest{
		Tags:              []STSTag{{"a", "1"}, {"b", ""}},
		TransitiveTagKeys: []string{"a", "b"},
		PolicyARNs:        []string{"arn:aws:iam::aws:policy/A", "arn:aws:iam::aws:policy/B"},
	}
	got := STSRequest{Tags: r.Tags, TransitiveTagKeys: r.TransitiveTagKeys, PolicyARNs: r.PolicyARNs}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lists (-want +got):\n%s", diff)
	}
}

func TestFakeSTSErrors(t *testing.T) {
	long := strings.Repeat("x", 2049)
	tests := []struct {
		name       string
		form       url.Values
		auth       string
		fault      *STSFault
		wantStatus int
		wantType   string
		wantCode   string
		msgHas     string
	}{
		{name: "AssumeRole must be signed", form: form(ActionAssumeRole, "RoleArn", tRole, "RoleSessionName", "s1"), wantStatus: 403, wantType: "Sender", wantCode: "MissingAuthenticationToken"},
		{name: "garbled signature", form: form(ActionAssumeRole, "RoleArn", tRole, "RoleSessionName", "s1"), auth: "AWS4-HMAC-SHA256 nonsense", wantStatus: 400, wantType: "Sender", wantCode: "IncompleteSignature"},
		{name: "web identity must be unsigned", form: form(ActionAssumeRoleWithWebIdentity, "RoleArn", tRole, "RoleSessionName", "s1", "WebIdentityToken", CIJobToken(time.Now(), "p")), auth: anySig, wantStatus: 400, wantCode: "UnexpectedSignature"},
		{name: "unknown action", form: form("GetSessionToken"), auth: anySig, wantStatus: 400, wantCode: "InvalidAction", msgHas: "GetSessionToken"},
		{name: "wrong version", form: url.Values{"Action": {ActionGetCallerIdentity}, "Version": {"2010-01-01"}}, auth: anySig, wantStatus: 400, wantCode: "InvalidAction", msgHas: "2010-01-01"},
		{name: "missing role", form: form(ActionAssumeRole, "RoleSessionName", "s1"), auth: anySig, wantStatus: 400, wantCode: "ValidationError", msgHas: "Value null at 'roleArn'"},
		{name: "session name pattern", form: form(ActionAssumeRole, "RoleArn", tRole, "RoleSessionName", "g/p"), auth: anySig, wantStatus: 400, wantCode: "ValidationError", msgHas: "roleSessionName"},
		{name: "session name too short", form: form(ActionAssumeRole, "RoleArn", tRole, "RoleSessionName", "s"), auth: anySig, wantStatus: 400, wantCode: "ValidationError", msgHas: "greater than or equal to 2"},
		{name: "duration too short", form: form(ActionAssumeRole, "RoleArn", tRole, "RoleSessionName", "s1", "DurationSeconds", "899"), auth: anySig, wantStatus: 400, wantCode: "ValidationError", msgHas: "900"},
		{name: "duration too long", form: form(ActionAssumeRole, "RoleArn", tRole, "RoleSessionName", "s1", "DurationSeconds", "43201"), auth: anySig, wantStatus: 400, wantCode: "ValidationError", msgHas: "43200"},
		{name: "policy not JSON", form: form(ActionAssumeRole, "RoleArn", tRole, "RoleSessionName", "s1", "Policy", "{"), auth: anySig, wantStatus: 400, wantCode: "MalformedPolicyDocument"},
		{name: "policy too long", form: form(ActionAssumeRole, "RoleArn", tRole, "RoleSessionName", "s1", "Policy", long), auth: anySig, wantStatus: 400, wantCode: "ValidationError", msgHas: "2048"},
		{name: "not a role ARN", form: form(ActionAssumeRole, "RoleArn", "arn:aws:iam::123456789012:user/bob", "RoleSessionName", "s1"), auth: anySig, wantStatus: 400, wantCode: "ValidationError"},
		{name: "web token too short", form: form(ActionAssumeRoleWithWebIdentity, "RoleArn", tRole, "RoleSessionName", "s1", "WebIdentityToken", "a.b"), wantStatus: 400, wantCode: "ValidationError", msgHas: "webIdentityToken"},
		{name: "throttled", form: form(ActionGetCallerIdentity), auth: anySig, fault: &STSFault{Code: "Throttling"}, wantStatus: 400, wantType: "Sender", wantCode: "Throttling", msgHas: "Rate exceeded"},
		{name: "429", form: form(ActionGetCallerIdentity), auth: anySig, fault: &STSFault{Code: "TooManyRequestsException"}, wantStatus: 429, wantType: "Sender", wantCode: "TooManyRequestsException"},
		{name: "internal failure", form: form(ActionGetCallerIdentity), auth: anySig, fault: &STSFault{Code: "InternalFailure"}, wantStatus: 500, wantType: "Receiver", wantCode: "InternalFailure"},
		{name: "access denied names the caller like AWS", form: form(ActionAssumeRole, "RoleArn", tRole, "RoleSessionName", "s1"), auth: anySig, fault: &STSFault{Code: "AccessDenied"}, wantStatus: 403, wantCode: "AccessDenied", msgHas: "User: arn:aws:iam::123456789012:user/keyferry-broker is not authorized to perform: sts:AssumeRole on resource: " + tRole},
		{name: "status override", form: form(ActionGetCallerIdentity), auth: anySig, fault: &STSFault{Code: "Throttling", Status: 503}, wantStatus: 503, wantType: "Receiver", wantCode: "Throttling"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := NewFakeSTS(t)
			if tt.fault != nil {
				fake.SetFault(*tt.fault)
			}
			resp, body := post(t, fake.URL(), tt.form, tt.auth)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("got status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			var e xmlError
			if err := xml.Unmarshal(body, &e); err != nil {
				t.Fatalf("decode ErrorResponse: %v\n%s", err, body)
			}
			wantType := tt.wantType
			if wantType == "" {
				wantType = "Sender"
			}
			if e.Code != tt.wantCode || e.Type != wantType {
				t.Errorf("got %s/%s %q, want %s/%s", e.Type, e.Code, e.Message, wantType, tt.wantCode)
			}
			if !strings.Contains(e.Message, tt.msgHas) {
				t.Errorf("got Message %q, want it to contain %q", e.Message, tt.msgHas)
			}
			if !uuidRE.MatchString(e.RequestID) {
				t.Errorf("got RequestId %q, want a UUID", e.RequestID)
			}
			if r, _ := fake.LastRequest(); r.Status != tt.wantStatus || r.ErrorCode != tt.wantCode {
				t.Errorf("got record status %d code %q, want %d %q", r.Status, r.ErrorCode, tt.wantStatus, tt.wantCode)
			}
		})
	}
}

// stsClient is an SDK STS client on the fake in us-west-2, without retries.
func stsClient(fake *FakeSTS, key, secret, token string) *sts.Client {
	return stsAt(fake.URL(), "us-west-2", key, secret, token)
}

// stsAt is an SDK STS client on url, without retries.
func stsAt(url, region, key, secret, token string) *sts.Client {
	return sts.New(sts.Options{
		Region:       region,
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider(key, secret, token),
		Retryer:      aws.NopRetryer{},
	})
}

func TestFakeSTSVerifiesSignatures(t *testing.T) {
	clk := NewClock(tNow)
	fake := NewFakeSTS(t, WithSTSKey(tKey, tSecret), WithSTSClock(clk.Now))
	ctx := t.Context()
	in := &sts.AssumeRoleInput{RoleArn: aws.String(tRole), RoleSessionName: aws.String("s1")}

	if _, err := stsClient(fake, tKey, tSecret, "").AssumeRole(ctx, in); err != nil {
		t.Fatalf("right key: got %v, want success", err)
	}
	if _, err := stsClient(fake, tKey, "wrong", "").AssumeRole(ctx, in); APIErrorCode(err) != "SignatureDoesNotMatch" {
		t.Errorf("wrong secret: got %v, want SignatureDoesNotMatch", err)
	}
	if _, err := stsClient(fake, "AKIAUNKNOWN000000000", tSecret, "").AssumeRole(ctx, in); APIErrorCode(err) != "InvalidClientTokenId" {
		t.Errorf("unknown key: got %v, want InvalidClientTokenId", err)
	}

	// Credentials the fake issued are known to it.
	out, err := stsClient(fake, tKey, tSecret, "").AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(tRole), RoleSessionName: aws.String("job-7"), DurationSeconds: aws.Int32(900)})
	if err != nil {
		t.Fatal(err)
	}
	c := out.Credentials
	issued := stsClient(fake, *c.AccessKeyId, *c.SecretAccessKey, *c.SessionToken)
	id, err := issued.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity with issued credentials: %v", err)
	}
	if got, want := aws.ToString(id.Arn), "arn:aws:sts::123456789012:assumed-role/deploy/job-7"; got != want {
		t.Errorf("got caller %q, want %q", got, want)
	}
	if _, err := stsClient(fake, *c.AccessKeyId, *c.SecretAccessKey, "forged").GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); APIErrorCode(err) != "InvalidClientTokenId" {
		t.Errorf("wrong session token: got %v, want InvalidClientTokenId", err)
	}
	chained := &sts.AssumeRoleInput{RoleArn: aws.String(tRole), RoleSessionName: aws.String("s2"), DurationSeconds: aws.Int32(7200)}
	if _, err := issued.AssumeRole(ctx, chained); APIErrorCode(err) != "ValidationError" {
		t.Errorf("role chaining beyond 1h: got %v, want ValidationError", err)
	}
	clk.Advance(16 * time.Minute)
	if _, err := issued.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); APIErrorCode(err) != "ExpiredToken" {
		t.Errorf("expired issued credentials: got %v, want ExpiredToken", err)
	}
}

// TestFakeSTSVerifiesBotocoreStyleSignature signs without content-length,
// as botocore does.
func TestFakeSTSVerifiesBotocoreStyleSignature(t *testing.T) {
	fake := NewFakeSTS(t, WithSTSKey(tKey, tSecret))
	for _, tc := range []struct {
		name   string
		secret string
		want   int
	}{{"right secret", tSecret, 200}, {"wrong secret", "nope", 403}} {
		t.Run(tc.name, func(t *testing.T) {
			body := form(ActionGetCallerIdentity).Encode()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, fake.URL()+"/", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			cl := req.ContentLength
			req.ContentLength = 0 // keep content-length out of the signature
			sum := sha256.Sum256([]byte(body))
			if err := v4.NewSigner().SignHTTP(t.Context(), aws.Credentials{AccessKeyID: tKey, SecretAccessKey: tc.secret}, req, hex.EncodeToString(sum[:]), "sts", "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
			req.ContentLength = cl
			if strings.Contains(req.Header.Get("Authorization"), "content-length") {
				t.Fatalf("test setup: content-length was signed")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("got status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

func TestFakeSTSWebIdentity(t *testing.T) {
	var seen string
	fake := NewFakeSTS(t, WithSTSClock(clock()), WithSTSTokenValidator(func(tok string) error {
		seen = tok
		if strings.Contains(tok, "eyJzdWIiOiJldmlsIn0") { // {"sub":"evil"}
			return &STSError{Code: "IDPRejectedClaim", Message: "Not authorized to perform sts:AssumeRoleWithWebIdentity"}
		}
		return nil
	}))
	tok := CIJobToken(tNow, "project_path:g/p:ref_type:branch:ref:main")
	client := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(fake.URL()), RetryMaxAttempts: 1})
	out, err := client.AssumeRoleWithWebIdentity(t.Context(), &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(tRole), RoleSessionName: aws.String("s1"), WebIdentityToken: aws.String(tok),
	})
	if err != nil {
		t.Fatalf("AssumeRoleWithWebIdentity: %v", err)
	}
	if seen != tok {
		t.Errorf("validator got %q, want the token sent", seen)
	}
	if got := aws.ToString(out.SubjectFromWebIdentityToken); got != "project_path:g/p:ref_type:branch:ref:main" {
		t.Errorf("got subject %q, want the token's sub", got)
	}
	if got := aws.ToString(out.Provider); got != "gitlab.example.com" {
		t.Errorf("got provider %q, want gitlab.example.com", got)
	}
	if got := aws.ToString(out.Audience); got != "sts.amazonaws.com" {
		t.Errorf("got audience %q, want sts.amazonaws.com", got)
	}
	if got, want := aws.ToTime(out.Credentials.Expiration), tNow.Add(time.Hour); !got.Equal(want) {
		t.Errorf("got expiration %v, want %v", got, want)
	}

	evil := UnsignedJWT(map[string]any{"sub": "evil"})
	_, err = client.AssumeRoleWithWebIdentity(t.Context(), &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(tRole), RoleSessionName: aws.String("s1"), WebIdentityToken: aws.String(evil),
	})
	if APIErrorCode(err) != "IDPRejectedClaim" {
		t.Errorf("got %v, want IDPRejectedClaim from the validator", err)
	}
}

func TestFakeSTSFaultQueue(t *testing.T) {
	fake := NewFakeSTS(t)
	call := func(action string) int {
		f := form(action, "RoleArn", tRole, "RoleSessionName", "s1", "WebIdentityToken", CIJobToken(time.Now(), "p"))
		auth := anySig
		if action == ActionAssumeRoleWithWebIdentity {
			auth = ""
		}
		resp, _ := post(t, fake.URL(), f, auth)
		return resp.StatusCode
	}
	fake.Throttle(2)
	fake.AddFault(STSFault{Action: ActionAssumeRoleWithWebIdentity, Times: 1, Code: "IDPRejectedClaim"})
	fake.AddFault(STSFault{Times: 1, Code: "InternalFailure"})
	steps := []struct {
		action string
		want   int
	}{
		{ActionAssumeRole, 400},                // throttle 1
		{ActionAssumeRoleWithWebIdentity, 400}, // throttle 2
		{ActionAssumeRole, 500},                // web-identity fault skipped, InternalFailure
		{ActionAssumeRole, 200},
		{ActionAssumeRoleWithWebIdentity, 403}, // its own fault
		{ActionAssumeRoleWithWebIdentity, 200},
	}
	for i, s := range steps {
		if got := call(s.action); got != s.want {
			t.Errorf("step %d (%s): got %d, want %d", i, s.action, got, s.want)
		}
	}
	fake.SetFault(STSFault{Code: "ServiceUnavailable"})
	for i := range 3 {
		if got := call(ActionAssumeRole); got != 503 {
			t.Errorf("persistent fault, call %d: got %d, want 503", i, got)
		}
	}
	fake.ClearFaults()
	if got := call(ActionAssumeRole); got != 200 {
		t.Errorf("after ClearFaults: got %d, want 200", got)
	}
	if got, want := fake.Calls(), len(steps)+4; got != want {
		t.Errorf("got %d calls, want %d", got, want)
	}
	if got := fake.CallsFor(ActionAssumeRoleWithWebIdentity); got != 3 {
		t.Errorf("got %d web identity calls, want 3", got)
	}
}

func TestFakeSTSLatencyHangAndDrop(t *testing.T) {
	h := NewFakeSTSHandler()
	srv := httptest.NewServer(h)
	t.Cleanup(func() { h.Close(); srv.Close() })
	f := form(ActionGetCallerIdentity)

	h.SetFault(STSFault{Times: 1, Latency: 50 * time.Millisecond})
	start := time.Now()
	if resp, _ := post(t, srv.URL, f, anySig); resp.StatusCode != 200 {
		t.Errorf("latency: got %d, want 200", resp.StatusCode)
	}
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("latency: took %v, want ≥50ms", took)
	}

	h.SetFault(STSFault{Times: 1, Drop: true})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, strings.NewReader(f.Encode()))
	req.Header.Set("Authorization", anySig)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("drop: got status %d, want a connection error", resp.StatusCode)
	}

	// Hang until the client gives up.
	h.SetFault(STSFault{Times: 1, Hang: true})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(f.Encode()))
	req.Header.Set("Authorization", anySig)
	start = time.Now()
	if resp, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			resp.Body.Close()
		}
		t.Errorf("hang: got %v, want the client's deadline", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("hang: took %v, want about 100ms", took)
	}

	// Hang until the fake closes.
	h.SetFault(STSFault{Hang: true})
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL, strings.NewReader(f.Encode()))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	for h.Calls() < 4 {
		time.Sleep(time.Millisecond)
	}
	wantReleased(t, h.Close, done, 2*time.Second)
}

// wantReleased calls closeFake and fails unless a hung request returns
// (done is closed, or sends) within d.
func wantReleased[T any](t *testing.T, closeFake func(), done <-chan T, d time.Duration) {
	t.Helper()
	closeFake()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("hung request still held %v after Close", d)
	}
}

func TestFakeSTSWithoutRecording(t *testing.T) {
	fake := NewFakeSTS(t, WithoutSTSRecording())
	for range 3 {
		if resp, _ := post(t, fake.URL(), form(ActionGetCallerIdentity), anySig); resp.StatusCode != 200 {
			t.Fatalf("got %d, want 200", resp.StatusCode)
		}
	}
	if got := len(fake.Requests()); got != 0 {
		t.Errorf("got %d recorded requests, want 0", got)
	}
	if got := fake.Calls(); got != 3 {
		t.Errorf("got %d calls, want 3", got)
	}
}

func TestAppendXMLEscaped(t *testing.T) {
	for _, s := range []string{"", "plain", `a&b<c>d"e'f`, "tab\tnl\nend", "ünïcødé", "bell\x07"} {
		doc := "<v>" + string(appendXMLEscaped(nil, s)) + "</v>"
		var got string
		if err := xml.Unmarshal([]byte(doc), &got); err != nil {
			t.Errorf("%q: not well-formed: %v", s, err)
			continue
		}
		want := strings.ReplaceAll(s, "\x07", "\uFFFD")
		if got != want {
			t.Errorf("round trip of %q: got %q, want %q", s, got, want)
		}
	}
}

func FuzzAppendXMLEscaped(f *testing.F) {
	f.Add("a&b<c>")
	f.Add("\x00\x1f")
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || strings.ContainsAny(s, "\r\uFFFE\uFFFF") {
			return // XML normalises CR; those runes are not XML characters
		}
		for _, r := range s {
			if r >= 0xD800 && r <= 0xDFFF {
				return
			}
		}
		var got string
		if err := xml.Unmarshal(append(append([]byte("<v>"), appendXMLEscaped(nil, s)...), "</v>"...), &got); err != nil {
			t.Fatalf("%q: not well-formed: %v", s, err)
		}
		want := strings.Map(func(r rune) rune {
			if r < 0x20 && r != '\t' && r != '\n' {
				return '\uFFFD'
			}
			return r
		}, s)
		if got != want {
			t.Fatalf("round trip of %q: got %q, want %q", s, got, want)
		}
	})
}

func FuzzParseSigV4Header(f *testing.F) {
	f.Add(anySig)
	f.Add("AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request,SignedHeaders=,Signature=x")
	f.Fuzz(func(t *testing.T, h string) {
		a, ok := parseSigV4Header(h)
		if ok && (a.signature == "" || !strings.HasPrefix(h, sigV4Algorithm)) {
			t.Fatalf("accepted %q as %+v", h, a)
		}
	})
}
