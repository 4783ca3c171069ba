package peers

import (
	"regexp"
	"slices"
)

// errorCodePatterns find the AWS error code in what each client prints.
var errorCodePatterns = []*regexp.Regexp{
	// botocore, boto3, aws-cli v1 and v2:
	//   An error occurred (AccessDenied) when calling the PutObject operation: Access Denied
	regexp.MustCompile(`An error occurred \(([A-Za-z0-9.]+)\)`),
	// AWS SDK for Go v2: "… api error AccessDenied: Access Denied"
	regexp.MustCompile(`api error ([A-Za-z0-9.]+):`),
	// the gosdkclient program's JSON: "code":"AccessDenied"
	regexp.MustCompile(`"code":\s*"([A-Za-z0-9.]+)"`),
	// raw S3/STS XML: <Code>AccessDenied</Code>
	regexp.MustCompile(`<Code>([A-Za-z0-9.]+)</Code>`),
}

// ErrorCodes returns every AWS error code found in a client's output (for
// example its stderr), in the order of the patterns above.
func ErrorCodes(output string) []string {
	var codes []string
	for _, re := range errorCodePatterns {
		for _, m := range re.FindAllStringSubmatch(output, -1) {
			if !slices.Contains(codes, m[1]) {
				codes = append(codes, m[1])
			}
		}
	}
	return codes
}

// ErrorCode returns the first AWS error code in output, or "".
func ErrorCode(output string) string {
	if codes := ErrorCodes(output); len(codes) > 0 {
		return codes[0]
	}
	return ""
}

// HasErrorCode reports whether output carries one of codes.
func HasErrorCode(output string, codes ...string) bool {
	for _, c := range ErrorCodes(output) {
		if slices.Contains(codes, c) {
			return true
		}
	}
	return false
}

// IsAccessDenied reports an authenticated request refused by policy.
func IsAccessDenied(output string) bool {
	return HasErrorCode(output, "AccessDenied", "AccessDeniedException")
}

// IsInvalidAccessKey reports an access key the server does not know
// (S3 InvalidAccessKeyId; STS and IAM InvalidClientTokenId).
func IsInvalidAccessKey(output string) bool {
	return HasErrorCode(output, "InvalidAccessKeyId", "InvalidClientTokenId")
}

// IsSignatureMismatch reports a known access key with the wrong secret.
func IsSignatureMismatch(output string) bool {
	return HasErrorCode(output, "SignatureDoesNotMatch")
}
