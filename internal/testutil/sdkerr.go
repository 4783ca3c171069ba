package testutil

import (
	"errors"

	"github.com/aws/smithy-go"
)

// APIErrorCode returns the AWS error code of an SDK error, or "".
func APIErrorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}
