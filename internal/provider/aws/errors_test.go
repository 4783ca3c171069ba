package aws

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func responseError(status int, header http.Header, err error) error {
	if header == nil {
		header = http.Header{}
	}
	return &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: header}},
			Err:      err,
		},
		RequestID: "req-1",
	}
}

func TestRetryAfterHint(t *testing.T) {
	throttle := &smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded"}
	tests := []struct {
		name       string
		header     string
		maxBackoff time.Duration
		want       time.Duration
	}{
		{name: "default MaxBackoff", maxBackoff: 2 * time.Second, want: 2 * time.Second},
		{name: "tiny MaxBackoff is raised to 1s", maxBackoff: time.Millisecond, want: time.Second},
		{name: "huge MaxBackoff is capped at 5s", maxBackoff: time.Minute, want: 5 * time.Second},
		{name: "upstream x-amz-retry-after wins", header: "3500", maxBackoff: 2 * time.Second, want: 3500 * time.Millisecond},
		{name: "upstream hint is capped", header: "60000", maxBackoff: 2 * time.Second, want: 5 * time.Second},
		{name: "garbage hint is ignored", header: "soon", maxBackoff: 2 * time.Second, want: 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set("X-Amz-Retry-After", tt.header)
			}
			e := classify(svcSTS, opAssumeRole, testRoleARN, responseError(400, h, throttle), false, time.Second, tt.maxBackoff)
			if e.Code != CodeThrottled {
				t.Fatalf("got code %q, want %q", e.Code, CodeThrottled)
			}
			if e.RetryAfter != tt.want {
				t.Errorf("got RetryAfter %v, want %v", e.RetryAfter, tt.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name     string
		op       string
		err      error
		timedOut bool
		wantCode string
		wantUp   string
		wantMsg  string
	}{
		{
			name: "timeout wins over whatever the SDK said", op: opAssumeRole, timedOut: true,
			err:      responseError(500, nil, &smithy.GenericAPIError{Code: "InternalFailure"}),
			wantCode: CodeTimeout, wantMsg: "AWS STS did not answer AssumeRole on " + testRoleARN + " within 1s",
		},
		{
			name: "token codes mean nothing on AssumeRole", op: opAssumeRole,
			err:      responseError(400, nil, &smithy.GenericAPIError{Code: "InvalidIdentityToken", Message: "x"}),
			wantCode: CodeUnavailable, wantUp: "InvalidIdentityToken",
		},
		{
			name: "unknown 4xx without a code", op: opAssumeRole,
			err:      responseError(418, nil, errors.New("teapot")),
			wantCode: CodeUnavailable, wantMsg: "AWS STS answered AssumeRole with HTTP 418",
		},
		{
			name: "UnknownError is not an upstream code", op: opAssumeRole,
			err:      responseError(503, nil, &smithy.GenericAPIError{Code: "UnknownError", Message: "UnknownError"}),
			wantCode: CodeUnavailable, wantMsg: "AWS STS is unavailable for AssumeRole (HTTP 503)",
		},
		{
			name: "SDK parameter validation", op: opAssumeRoleWithWebIdentity,
			err:      smithy.InvalidParamsError{Context: "AssumeRoleWithWebIdentityInput"},
			wantCode: CodeInvalidRequest,
		},
		{
			name: "upstream message is sanitised", op: opAssumeRole,
			err:      responseError(400, nil, &smithy.GenericAPIError{Code: "ValidationError", Message: "bad\nvalue\x00" + strings.Repeat("é", 400)}),
			wantCode: CodeInvalidRequest, wantUp: "ValidationError",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := classify(svcSTS, tt.op, testRoleARN, tt.err, tt.timedOut, time.Second, time.Second)
			if e.Code != tt.wantCode || e.UpstreamCode != tt.wantUp {
				t.Errorf("got code %q upstream %q, want %q upstream %q", e.Code, e.UpstreamCode, tt.wantCode, tt.wantUp)
			}
			if tt.wantMsg != "" && e.Message != tt.wantMsg {
				t.Errorf("got Message %q, want %q", e.Message, tt.wantMsg)
			}
			if strings.ContainsAny(e.Message, "\n\x00") || len(e.Message) > 500 {
				t.Errorf("got Message %q, want no control characters and a bounded length", e.Message)
			}
			if e.Err == nil || (reflect.TypeOf(tt.err).Comparable() && !errors.Is(e, tt.err)) {
				t.Errorf("got an *Error that does not wrap the SDK error")
			}
		})
	}
}

func TestAccountFromARN(t *testing.T) {
	tests := []struct{ arn, want string }{
		{"arn:aws:sts::123456789012:assumed-role/deploy/s1", "123456789012"},
		{"arn:aws-cn:sts::210987654321:assumed-role/ci/path/s1", "210987654321"},
		{"arn:aws:sts::assumed-role/gh-role/gh-1", ""}, // SeaweedFS
		{"arn:aws:sts::000000000000:assumed-role/r/s", "000000000000"},
		{"arn:aws:sts::12345:assumed-role/r/s", ""},
		{"arn:aws:sts::12345678901a:assumed-role/r/s", ""},
		{"not-an-arn:aws:sts::123456789012:x", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := accountFromARN(tt.arn); got != tt.want {
			t.Errorf("accountFromARN(%q): got %q, want %q", tt.arn, got, tt.want)
		}
	}
}

func FuzzAccountFromARN(f *testing.F) {
	f.Add("arn:aws:sts::123456789012:assumed-role/deploy/s1")
	f.Add("arn:aws:sts::assumed-role/gh-role/gh-1")
	f.Add("arn:::::")
	f.Fuzz(func(t *testing.T, arn string) {
		got := accountFromARN(arn)
		if got == "" {
			return
		}
		if len(got) != 12 || strings.Trim(got, "0123456789") != "" {
			t.Fatalf("accountFromARN(%q) = %q, want 12 digits or empty", arn, got)
		}
		if !strings.HasPrefix(arn, "arn:") || !strings.Contains(arn, ":"+got+":") {
			t.Fatalf("accountFromARN(%q) = %q, not a field of the ARN", arn, got)
		}
	})
}

func TestDurationSeconds(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want int32 // -1 = absent
	}{
		{0, -1},
		{-time.Second, -1},
		{time.Second, 900},
		{899*time.Second + 999*time.Millisecond, 900},
		{900 * time.Second, 900},
		{3600*time.Second + 999*time.Millisecond, 3600},
		{12 * time.Hour, 43200},
	}
	for _, tt := range tests {
		got := durationSeconds(tt.in)
		switch {
		case tt.want == -1 && got != nil:
			t.Errorf("durationSeconds(%v): got %d, want absent", tt.in, *got)
		case tt.want != -1 && (got == nil || *got != tt.want):
			t.Errorf("durationSeconds(%v): got %v, want %d", tt.in, got, tt.want)
		}
	}
}
