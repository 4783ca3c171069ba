package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/fault"
)

// TestStatusOfEveryKind: each kind of fault has one status, and no kind
// but Internal falls through to 500.
func TestStatusOfEveryKind(t *testing.T) {
	want := map[fault.Kind]int{
		fault.Internal: 500, fault.Invalid: 400, fault.Unauthenticated: 401, fault.Forbidden: 403, fault.NotFound: 404,
		fault.Conflict: 409, fault.TooLarge: 413, fault.Unprocessable: 422, fault.Cancelled: 499, fault.BadGateway: 502,
		fault.Unavailable: 503, fault.Timeout: 504, fault.UnsupportedMedia: 415,
	}
	for k := fault.Internal; ; k++ {
		if k.String() == fmt.Sprintf("kind(%d)", int(k)) {
			if len(want) != int(k) {
				t.Errorf("%d kinds exist, the table has %d: a new kind needs a status", k, len(want))
			}
			break
		}
		if got := status(k); got != want[k] {
			t.Errorf("status(%s) = %d, want %d", k, got, want[k])
		}
	}
}

// TestToFaultKeepsTheChannelsApart: a fault's message reaches the
// caller and its cause does not; an error that is not a fault reaches the
// caller as a bare internal error.
func TestToFaultKeepsTheChannelsApart(t *testing.T) {
	secret := errors.New("dial tcp 10.0.0.7:5432: password authentication failed for user kf")
	tests := []struct {
		name       string
		err        error
		status     int
		code, msg  string
		retryAfter time.Duration
	}{
		{"fault", fault.Wrap(secret, fault.Unavailable, "store_unavailable", "the lease store is unavailable"), 503, "store_unavailable", "the lease store is unavailable", 0},
		{"wrapped fault", fmt.Errorf("lease: %w", &fault.Error{Kind: fault.Unavailable, Code: "upstream_throttled", Message: "slow down", RetryAfter: 2 * time.Second}), 503, "upstream_throttled", "slow down", 2 * time.Second},
		{"plain error", secret, 500, "internal_error", "internal error", 0},
		{"cancelled", fmt.Errorf("x: %w", context.Canceled), 499, "request_cancelled", "request cancelled", 0},
		{"body too large", &http.MaxBytesError{Limit: 10}, 413, "body_too_large", "request body exceeds 10 bytes", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := toFault(tt.err)
			if st := status(e.Kind); st != tt.status || e.Code != tt.code || e.Message != tt.msg || e.RetryAfter != tt.retryAfter {
				t.Errorf("got %d %s %q retry %v, want %d %s %q retry %v", st, e.Code, e.Message, e.RetryAfter, tt.status, tt.code, tt.msg, tt.retryAfter)
			}
		})
	}
}
