package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyferry/keyferry/internal/api"
)

// Load modes.
const (
	modeClosed = "closed" // N clients, each sends its next request when the last one returns
	modeOpen   = "open"   // requests arrive at a fixed rate whatever the latency
)

// loadSpec is one level of load.
type loadSpec struct {
	mode    string
	workers int     // clients (closed) or the in-flight cap (open)
	rate    float64 // arrivals per second (open only)
	warmup  time.Duration
	measure time.Duration
}

// window is the measured interval; requests are recorded when they start
// inside it.
type window struct{ start, end time.Time }

func (w window) holds(t time.Time) bool { return !t.Before(w.start) && t.Before(w.end) }

// loadResult is what the clients saw. A client process sends it to its
// parent as JSON.
type loadResult struct {
	Recorded []time.Duration `json:"recorded"` // latencies of requests started in the window
	OK       int             `json:"ok"`       // successful requests started in the window
	AllOK    int             `json:"all_ok"`   // successful requests, warm-up included
	Errors   map[string]int  `json:"errors"`   // by "status code" or "transport: …", warm-up included
	Dials    int64           `json:"dials"`    // TCP connections opened (keep-alive check)
	Behind   time.Duration   `json:"behind"`   // open loop: how late the last arrival was sent
	// CPU is the client process's CPU time in the window (client
	// process only; in-process clients share the broker's).
	CPU time.Duration `json:"cpu"`
}

// loadClient sends credential requests over keep-alive HTTP/1.1.
type loadClient struct {
	url   string
	hc    *http.Client
	dials atomic.Int64
}

func newLoadClient(addr string, conns int) *loadClient {
	c := &loadClient{url: addr + "/v1/creds"}
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			c.dials.Add(1)
			return d.DialContext(ctx, network, a)
		},
		// One idle connection per client: every client keeps its own
		// connection alive (the default of 2 per host would make most of
		// them re-dial after every request).
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	c.hc = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return c
}

func (c *loadClient) close() { c.hc.CloseIdleConnections() }

// worker is one client with its own job token and buffers.
type worker struct {
	c    *loadClient
	body []byte
	buf  bytes.Buffer

	lat    []time.Duration
	ok     int
	allOK  int
	errors map[string]int
}

func newWorker(c *loadClient, role, token string) *worker {
	body, _ := json.Marshal(api.CredsRequest{Role: role, Token: token})
	return &worker{c: c, body: body, errors: map[string]int{}}
}

var credsMarker = []byte(`"access_key_id":"ASIA`)

// do sends one request and reports its outcome; "" means success.
func (w *worker) do(ctx context.Context) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.c.url, bytes.NewReader(w.body))
	if err != nil {
		return "request: " + err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "cancelled"
		}
		return "transport: " + errClass(err)
	}
	w.buf.Reset()
	_, err = w.buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "transport: read body: " + errClass(err)
	}
	if resp.StatusCode == http.StatusOK {
		if !bytes.Contains(w.buf.Bytes(), credsMarker) {
			return "200 without credentials"
		}
		return ""
	}
	var er api.ErrorResponse
	if json.Unmarshal(w.buf.Bytes(), &er) == nil && er.Error.Code != "" {
		return fmt.Sprintf("%d %s", resp.StatusCode, er.Error.Code)
	}
	return fmt.Sprintf("%d (no error body)", resp.StatusCode)
}

// errClass strips addresses and ports so that errors group.
func errClass(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// record books one finished request.
func (w *worker) record(win window, started time.Time, took time.Duration, outcome string) {
	if outcome != "" {
		w.errors[outcome]++
		return
	}
	w.allOK++
	if win.holds(started) {
		w.ok++
		w.lat = append(w.lat, took)
	}
}

// windowOf is the measured window of spec when the load starts at t0.
func windowOf(spec loadSpec, t0 time.Time) window {
	return window{start: t0.Add(spec.warmup), end: t0.Add(spec.warmup + spec.measure)}
}

// watchWindow runs onWindow (if set) in its own goroutine when win starts;
// wait for it with the WaitGroup.
func watchWindow(ctx context.Context, win window, onWindow func(window), wg *sync.WaitGroup) {
	if onWindow == nil {
		return
	}
	wg.Go(func() {
		if sleepUntil(ctx, win.start) {
			onWindow(win)
		}
	})
}

// runLoad drives the broker at addr with spec, starting at t0 (now if
// zero), and returns what the clients saw. Client goroutines carry the
// pprof label side=client. onWindow, if set, runs in its own goroutine
// when the measured window starts and gets the window; it must return by
// the window's end.
func runLoad(ctx context.Context, addr string, tokens []string, spec loadSpec, t0 time.Time, onWindow func(window)) loadResult {
	c := newLoadClient(addr, spec.workers)
	defer c.close()
	workers := make([]*worker, spec.workers)
	for i := range workers {
		workers[i] = newWorker(c, benchRole().Name, tokens[i%len(tokens)])
	}
	if t0.IsZero() {
		t0 = time.Now()
	}
	sleepUntil(ctx, t0)
	win := windowOf(spec, t0)
	var hooks sync.WaitGroup
	watchWindow(ctx, win, onWindow, &hooks)
	lctx, cancel := context.WithDeadline(ctx, win.end.Add(30*time.Second)) // a hung request fails the run
	defer cancel()

	var wg sync.WaitGroup
	var behind time.Duration
	pprof.Do(lctx, pprof.Labels("side", "client"), func(lctx context.Context) {
		switch spec.mode {
		case modeOpen:
			behind = runOpen(lctx, workers, win, t0, spec.rate, &wg)
		default:
			runClosed(lctx, workers, win, &wg)
		}
	})
	wg.Wait()
	hooks.Wait()

	res := loadResult{Errors: map[string]int{}, Dials: c.dials.Load(), Behind: behind}
	for _, w := range workers {
		res.Recorded = append(res.Recorded, w.lat...)
		res.OK += w.ok
		res.AllOK += w.allOK
		for k, v := range w.errors {
			res.Errors[k] += v
		}
	}
	return res
}

// runClosed starts one goroutine per worker; each sends requests back to
// back until the window ends.
func runClosed(ctx context.Context, workers []*worker, win window, wg *sync.WaitGroup) {
	for _, w := range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				start := time.Now()
				if !start.Before(win.end) {
					return
				}
				out := w.do(ctx)
				w.record(win, start, time.Since(start), out)
			}
		})
	}
}

// runOpen schedules arrivals at rate from t0 to the window's end and hands
// them to the workers. A request's latency is measured from its scheduled
// arrival, not from when a worker got to it, so time spent queued behind
// busy workers counts (no coordinated omission). It returns how late the
// scheduler sent its last arrival.
func runOpen(ctx context.Context, workers []*worker, win window, t0 time.Time, rate float64, wg *sync.WaitGroup) time.Duration {
	arrivals := make(chan time.Time, 1<<16)
	for _, w := range workers {
		wg.Go(func() {
			for at := range arrivals {
				out := w.do(ctx)
				w.record(win, at, time.Since(at), out)
			}
		})
	}
	defer close(arrivals)
	interval := time.Duration(float64(time.Second) / rate)
	var late time.Duration
	for i := 0; ; i++ {
		at := t0.Add(time.Duration(i) * interval)
		if !at.Before(win.end) {
			return late
		}
		if d := time.Until(at); d > 0 {
			if !sleepUntil(ctx, at) {
				return late
			}
		} else {
			late = -d
		}
		select {
		case arrivals <- at:
		case <-ctx.Done():
			return late
		}
	}
}

// sleepUntil sleeps until t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// sortedErrors renders an error map deterministically.
func sortedErrors(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(out)
	return out
}
