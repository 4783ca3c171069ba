package delivery

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keyferry/keyferry/internal/api"
)

func resp(key string, exp time.Time) *api.CredsResponse {
	return &api.CredsResponse{Credentials: api.Credentials{AccessKeyID: key, SecretAccessKey: "s", SessionToken: "t", Expiration: exp}}
}

func TestCachedRefreshesOnlyWhenDue(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var calls atomic.Int32
	c := &Cached{Now: func() time.Time { return now }, Source: SourceFunc(func(context.Context) (*api.CredsResponse, error) {
		n := calls.Add(1)
		return resp(string(rune('A'+n-1)), now.Add(time.Hour)), nil
	})}
	ctx := context.Background()
	r, _ := c.Credentials(ctx)
	r2, _ := c.Credentials(ctx)
	if r.Credentials.AccessKeyID != "A" || r2.Credentials.AccessKeyID != "A" || calls.Load() != 1 {
		t.Fatalf("got %s %s after %d fetches, want A A after 1", r.Credentials.AccessKeyID, r2.Credentials.AccessKeyID, calls.Load())
	}
	now = now.Add(41 * time.Minute) // 19 min left < 20 min
	r, _ = c.Credentials(ctx)
	if r.Credentials.AccessKeyID != "B" || calls.Load() != 2 {
		t.Fatalf("got %s after %d fetches, want B after 2", r.Credentials.AccessKeyID, calls.Load())
	}
}

// TestCachedOneFetchForManyCallers: 50 callers that arrive while the
// first fetch is still running all wait for it; there is one fetch. The
// bubble makes "all arrived and waiting" a fact, not a guess: Wait returns
// only once every goroutine is blocked (49 callers on the fetch, the fetch
// on release, the first caller too).
func TestCachedOneFetchForManyCallers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		release := make(chan struct{})
		c := &Cached{Source: SourceFunc(func(context.Context) (*api.CredsResponse, error) {
			calls.Add(1)
			<-release
			return resp("A", time.Now().Add(time.Hour)), nil
		})}
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				if _, err := c.Credentials(context.Background()); err != nil {
					t.Error(err)
				}
			})
		}
		synctest.Wait() // every caller is waiting, none has been answered
		if got := calls.Load(); got != 1 {
			t.Fatalf("%d fetches are running for 50 waiting callers, want 1", got)
		}
		close(release)
		wg.Wait()
		if got := calls.Load(); got != 1 {
			t.Fatalf("got %d fetches, want 1", got)
		}
	})
}

func TestCachedServesStaleButValidOnError(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	fail := false
	c := &Cached{Now: func() time.Time { return now }, Source: SourceFunc(func(context.Context) (*api.CredsResponse, error) {
		if fail {
			return nil, errors.New("broker down")
		}
		return resp("A", now.Add(time.Hour)), nil
	})}
	if _, err := c.Credentials(context.Background()); err != nil {
		t.Fatal(err)
	}
	fail = true
	now = now.Add(50 * time.Minute)
	r, err := c.Credentials(context.Background())
	if err != nil || r.Credentials.AccessKeyID != "A" {
		t.Fatalf("got %v %v, want the old credentials while they are valid", r, err)
	}
	now = now.Add(11 * time.Minute) // expired
	if _, err := c.Credentials(context.Background()); err == nil {
		t.Fatal("got nil error with expired credentials and a failing source")
	}
}

func TestCachedShortLivedCredentials(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var calls atomic.Int32
	c := &Cached{Now: func() time.Time { return now }, Source: SourceFunc(func(context.Context) (*api.CredsResponse, error) {
		calls.Add(1)
		return resp("A", now.Add(2*time.Minute)), nil
	})}
	ctx := context.Background()
	_, _ = c.Credentials(ctx)
	now = now.Add(50 * time.Second) // 70 s of 120 left: more than half
	_, _ = c.Credentials(ctx)
	if calls.Load() != 1 {
		t.Fatalf("got %d fetches, want 1: 2-minute credentials must not be refetched on every call", calls.Load())
	}
	now = now.Add(20 * time.Second) // 50 s left: under half
	_, _ = c.Credentials(ctx)
	if calls.Load() != 2 {
		t.Fatalf("got %d fetches, want 2 once less than half the lifetime is left", calls.Load())
	}
}
