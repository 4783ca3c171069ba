package delivery

import (
	"context"
	"sync"
	"time"

	"github.com/keyferry/keyferry/internal/api"
)

// Source produces credentials. The broker-backed implementation exchanges
// the job token on the first call and trades its refresh handle after
// that; tests use a func.
type Source interface {
	Credentials(ctx context.Context) (*api.CredsResponse, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context) (*api.CredsResponse, error)

// Credentials implements Source.
func (f SourceFunc) Credentials(ctx context.Context) (*api.CredsResponse, error) { return f(ctx) }

// DefaultMinRemaining is how much lifetime cached credentials must have
// left to be handed out without a refresh. botocore refreshes on every
// call below 15 minutes, so anything we serve should have more than that.
const DefaultMinRemaining = 20 * time.Minute

// Cached is a Source that keeps the last credentials in memory and fetches
// new ones only when less than MinRemaining is left, or less than half of
// their lifetime for credentials shorter-lived than 2×MinRemaining (so that
// short sessions are not refetched on every request). Concurrent callers
// share one fetch. When a refresh fails, the old credentials are served
// while they are still valid (the SDKs refresh again on their own), and
// the error is returned only once they have expired.
type Cached struct {
	Source       Source
	MinRemaining time.Duration
	Now          func() time.Time

	mu        sync.Mutex
	cur       *api.CredsResponse
	threshold time.Duration // refresh when less than this is left
	inflight  *call
}

type call struct {
	done chan struct{}
	resp *api.CredsResponse
	err  error
}

// Credentials implements Source.
func (c *Cached) Credentials(ctx context.Context) (*api.CredsResponse, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	minLeft := c.MinRemaining
	if minLeft == 0 {
		minLeft = DefaultMinRemaining
	}
	c.mu.Lock()
	if cur := c.cur; cur != nil && cur.Credentials.Expiration.Sub(now()) > min(minLeft, c.threshold) {
		c.mu.Unlock()
		return cur, nil
	}
	cl := c.inflight
	if cl == nil {
		cl = &call{done: make(chan struct{})}
		c.inflight = cl
		go c.fetch(cl, now)
	}
	c.mu.Unlock()

	select {
	case <-cl.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if cl.err == nil {
		return cl.resp, nil
	}
	c.mu.Lock()
	cur := c.cur
	c.mu.Unlock()
	if cur != nil && now().Before(cur.Credentials.Expiration) {
		return cur, nil // stale but valid: better than failing the tool
	}
	return nil, cl.err
}

// fetch runs detached from any one caller's context, so that a caller
// giving up does not fail the others; the Source bounds its own time.
func (c *Cached) fetch(cl *call, now func() time.Time) {
	resp, err := c.Source.Credentials(context.Background())
	c.mu.Lock()
	if err == nil {
		c.cur = resp
		c.threshold = resp.Credentials.Expiration.Sub(now()) / 2
	}
	c.inflight = nil
	cl.resp, cl.err = resp, err
	c.mu.Unlock()
	close(cl.done)
}
