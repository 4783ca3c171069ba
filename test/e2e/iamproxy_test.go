//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// iamProxy is a loopback HTTP proxy in front of a peer's IAM (AWS query
// protocol: Action=… in a form body) that counts the calls by action and
// lets a test act at precise points of an issuance: before a call reaches
// the peer (hold it, drop it) or after the peer answered and before the
// broker hears the answer (kill the broker). It forwards requests
// byte-for-byte, Host header included, so SigV4 signatures made for the
// proxy's address still verify at the peer.
type iamProxy struct {
	URL string

	mu       sync.Mutex
	counts   map[string]int
	inflight map[string]int // calls received and not yet answered, by action
	idle     *sync.Cond     // signalled when a call ends
	// before runs when a call arrives (n counts calls of that action, from
	// 1); returning false drops the call with a 503 instead of forwarding
	// it. It may block.
	before func(action string, n int) bool
	// after runs once the peer answered a forwarded call, before the
	// answer is relayed. It may block.
	after func(action string, n, status int)
}

func startIAMProxy(t testing.TB, upstream string) *iamProxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := &iamProxy{counts: map[string]int{}, inflight: map[string]int{}}
	p.idle = sync.NewCond(&p.mu)
	rp := httputil.NewSingleHostReverseProxy(u) // keeps the incoming Host header
	rp.ErrorLog = nil
	rp.ModifyResponse = func(resp *http.Response) error {
		action, n, _ := callOf(resp.Request.Context())
		if after := p.hooks().after; after != nil && action != "" {
			after(action, n, resp.StatusCode)
		}
		return nil
	}
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		action := ""
		if form, err := url.ParseQuery(string(body)); err == nil {
			action = form.Get("Action")
		}
		p.mu.Lock()
		p.counts[action]++
		p.inflight[action]++
		n := p.counts[action]
		before := p.before
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			p.inflight[action]--
			p.idle.Broadcast()
			p.mu.Unlock()
		}()
		if before != nil && !before(action, n) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r.WithContext(withCall(r.Context(), action, n)))
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

type hookSet struct {
	before func(string, int) bool
	after  func(string, int, int)
}

func (p *iamProxy) hooks() hookSet {
	p.mu.Lock()
	defer p.mu.Unlock()
	return hookSet{p.before, p.after}
}

// setHooks installs (or, with nils, removes) the hooks.
func (p *iamProxy) setHooks(before func(action string, n int) bool, after func(action string, n, status int)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.before, p.after = before, after
}

// inFlight returns the calls received and not yet answered, by action.
func (p *iamProxy) inFlight() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for a, n := range p.inflight {
		if n > 0 {
			out[a] = n
		}
	}
	return out
}

// waitIdle waits until no call is in flight.
func (p *iamProxy) waitIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		busy := false
		for _, n := range p.inflight {
			busy = busy || n > 0
		}
		if !busy {
			return
		}
		p.idle.Wait()
	}
}

// count returns how many calls of action arrived.
func (p *iamProxy) count(action string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[action]
}

type callKey struct{}

type proxiedCall struct {
	action string
	n      int
}

func withCall(ctx context.Context, action string, n int) context.Context {
	return context.WithValue(ctx, callKey{}, proxiedCall{action, n})
}

func callOf(ctx context.Context) (action string, n int, ok bool) {
	c, ok := ctx.Value(callKey{}).(proxiedCall)
	return c.action, c.n, ok
}
