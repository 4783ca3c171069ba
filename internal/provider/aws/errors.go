package aws

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// Upstream error codes by what they mean for the caller.
var (
	throttleCodes = codeSet("Throttling", "ThrottlingException", "ThrottledException",
		"RequestThrottled", "RequestThrottledException", "RequestLimitExceeded",
		"TooManyRequestsException", "SlowDown")
	accessDeniedCodes = codeSet("AccessDenied", "AccessDeniedException")
	// The request itself is wrong; the upstream message names only what the
	// broker sent for the role (policy, tags, duration, region; for IAM the
	// user, a policy ARN, a group or the quota hit), so it is safe to pass on.
	invalidRequestCodes = codeSet("MalformedPolicyDocument", "PackedPolicyTooLarge",
		"ValidationError", "RegionDisabledException", "InvalidParameterValue",
		"InvalidParameterCombination", "MissingParameter",
		// IAM
		"LimitExceeded", "EntityAlreadyExists", "InvalidInput", "NoSuchEntity",
		"PolicyNotAttachable", "UnmodifiableEntity")
	// Web identity only: the job's token was refused. "ExpiredToken" is
	// here because for an unsigned call it can only be about the job's
	// token; on AssumeRole it means the broker's own session expired.
	tokenRejectedCodes = codeSet("InvalidIdentityToken", "ExpiredTokenException",
		"ExpiredToken", "IDPRejectedClaim", "JWTPayloadSizeExceededException")
)

func codeSet(codes ...string) map[string]struct{} {
	m := make(map[string]struct{}, len(codes))
	for _, c := range codes {
		m[c] = struct{}{}
	}
	return m
}

// Bounds of the RetryAfter hint given with CodeThrottled.
const (
	minRetryAfter = time.Second
	maxRetryAfter = 5 * time.Second
)

// Services named in messages.
const (
	svcSTS = "STS"
	svcIAM = "IAM"
)

// classify maps an SDK error of service svc ("STS", "IAM") to an *Error.
// Message is safe for the caller: it names the service, the operation, its
// target (a role ARN, an IAM user) and the upstream code, and carries the
// upstream message only for codes where the text describes the request.
// timedOut reports whether the call's own deadline (CallTimeout) ended it.
func classify(svc, op, target string, err error, timedOut bool, callTimeout, maxBackoff time.Duration) *Error {
	on := ""
	if target != "" {
		on = " on " + target
	}
	who := "AWS " + svc
	if timedOut {
		return &Error{Code: CodeTimeout, Message: fmt.Sprintf("%s did not answer %s%s within %s", who, op, on, callTimeout), Err: err}
	}

	var invalidParams smithy.InvalidParamsError
	if errors.As(err, &invalidParams) {
		// The SDK refused to send it: a required field is missing.
		return &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf("invalid %s request: %s", op, safeText(invalidParams.Error())), Err: err}
	}

	status := httpStatus(err)
	code, upstreamMsg := "", ""
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() != "UnknownError" {
		code, upstreamMsg = apiErr.ErrorCode(), apiErr.ErrorMessage()
	}
	e := &Error{UpstreamCode: code, Err: err}
	switch {
	case in(throttleCodes, code) || (code == "" && status == http.StatusTooManyRequests):
		e.Code = CodeThrottled
		e.RetryAfter = retryAfterHint(err, maxBackoff)
		e.Message = fmt.Sprintf("%s is throttling %s calls (%s); retry later", who, op, codeOrStatus(code, status))
	case in(accessDeniedCodes, code):
		// The upstream text names the broker's own principal: logs only.
		e.Code = CodeAccessDenied
		e.Message = fmt.Sprintf("%s denied %s%s (%s)", who, op, on, code)
	case in(invalidRequestCodes, code):
		e.Code = CodeInvalidRequest
		e.Message = fmt.Sprintf("%s rejected %s%s (%s): %s", who, op, on, code, safeText(upstreamMsg))
	case op == opAssumeRoleWithWebIdentity && in(tokenRejectedCodes, code):
		// The text is about the job's own token (audience, expiry, claims).
		e.Code = CodeTokenRejected
		e.Message = fmt.Sprintf("%s rejected the web identity token for %s (%s): %s", who, target, code, safeText(upstreamMsg))
	case code == "IDPCommunicationError":
		e.Code = CodeUnavailable
		e.Message = fmt.Sprintf("%s could not reach the identity provider for %s%s (%s)", who, op, on, code)
	case status >= 500:
		e.Code = CodeUnavailable
		e.Message = fmt.Sprintf("%s is unavailable for %s (%s)", who, op, codeOrStatus(code, status))
	case code != "":
		// Any other refusal concerns the broker's own setup (invalid or
		// expired broker credentials, signature, unknown action): nothing the
		// caller can fix.
		e.Code = CodeUnavailable
		e.Message = fmt.Sprintf("%s refused the broker's %s call%s (%s)", who, op, on, code)
	case status != 0:
		e.Code = CodeUnavailable
		e.Message = fmt.Sprintf("%s answered %s with HTTP %d", who, op, status)
	case isCredentialsError(err):
		// The SDK could not resolve the broker's own credentials.
		e.Code = CodeUnavailable
		e.Message = fmt.Sprintf("the broker has no usable AWS credentials for %s %s: an operator must configure them (environment, shared files, or an instance or container role)", svc, op)
	default:
		// Connection refused or reset, DNS, TLS.
		e.Code = CodeUnavailable
		e.Message = fmt.Sprintf("could not complete %s %s", who, op)
	}
	return e
}

// isCredentialsError reports a failure to resolve the broker's own
// credentials, before anything was sent: the SDK wraps it as "get identity"
// (smithy auth) or "failed to retrieve credentials" (SigV4 middleware).
func isCredentialsError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "get identity: ") || strings.Contains(msg, "failed to retrieve credentials")
}

func in(set map[string]struct{}, code string) bool {
	_, ok := set[code]
	return ok
}

func codeOrStatus(code string, status int) string {
	if code != "" {
		return code
	}
	return "HTTP " + strconv.Itoa(status)
}

// httpStatus returns the status of the last HTTP response, 0 if none.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func requestID(err error) string {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.ServiceRequestID()
	}
	return ""
}

// retryAfterHint is how long a throttled caller should wait: the upstream's
// x-amz-retry-after (milliseconds) if it sent one, else the configured
// MaxBackoff, kept within 1–5 s.
func retryAfterHint(err error, maxBackoff time.Duration) time.Duration {
	d := maxBackoff
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil && re.Response.Response != nil {
		if ms, perr := strconv.ParseInt(re.Response.Header.Get("X-Amz-Retry-After"), 10, 64); perr == nil && ms >= 0 {
			d = time.Duration(ms) * time.Millisecond
		}
	}
	return min(max(d, minRetryAfter), maxRetryAfter)
}

// safeText trims an upstream message for a caller: control characters
// become spaces and it is cut to 300 bytes on a rune boundary.
func safeText(s string) string {
	const maxLen = 300
	s = strings.TrimSpace(s)
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxLen {
		cut := maxLen
		for cut > 0 && (s[cut]&0xc0) == 0x80 {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
