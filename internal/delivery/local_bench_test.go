package delivery

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Benchmarks of the local endpoints over real loopback HTTP with
// keep-alive: 64 concurrent callers (SetParallelism), each timing its own
// requests; p50 and p99 are reported as custom metrics. Callers and server
// share the machine's cores.
//
//	go test -run '^$' -bench 'ContainerEndpoint|IMDSCredentials|ContainerHandler' -benchtime 100000x -count 2 ./internal/delivery
//
// On the 2-vCPU Firecracker VM (AMD EPYC, Go 1.26), started only when the
// machine was >= 90% idle:
//
//	BenchmarkContainerEndpoint          10.4-11.3 µs/op  p50 600-650 µs  p99 2.4-2.8 ms  31 allocs/op
//	BenchmarkIMDSCredentials            11.2-12.2 µs/op  p50 630-690 µs  p99 2.9-4.0 ms  33 allocs/op
//	BenchmarkContainerEndpointGoClient  16-27 µs/op      p50 0.9-1.1 ms  p99 3.8-10 ms   63 allocs/op
//	BenchmarkContainerHandler           0.22-0.25 µs/op  0 allocs/op (guard + token check + cached document)
//	BenchmarkContainerEndpointPaced     8k rps: p50 147 µs p99 0.76 ms; 16k: p99 2.1 ms; 32k: p99 1.8 ms
//
// The p99 < 1 ms target at 64 back-to-back callers is not met, and cannot
// be on this machine whatever the handler does: a closed loop's mean
// latency is callers × time per request (Little's law), 64 × 10.5 µs ≈
// 670 µs, and nearly all of those 10.5 µs are loopback TCP syscalls and
// net/http parsing on both sides; the handler's share is 0.22 µs. GOGC=off
// lowers p99 by about a quarter (the rest is scheduling of 128 goroutines
// on 2 Ps). The target holds at 8k requests/s offered by the same callers.

const benchCallers = 64

func benchServer(b *testing.B, endpoints Endpoints) *LocalServer {
	b.Helper()
	return startLocal(b, LocalConfig{Endpoints: endpoints})
}

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: 2 * benchCallers, MaxIdleConnsPerHost: 2 * benchCallers,
		DisableCompression: true, IdleConnTimeout: time.Minute,
	}}
}

// get sends one request and drains the body so the connection is reused.
func get(c *http.Client, r *http.Request) error {
	resp, err := c.Do(r)
	if err != nil {
		return err
	}
	return drain(resp)
}

// drain reads and closes resp's body, and fails unless resp is a 200.
func drain(resp *http.Response) error {
	_, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return err
}

// runCallers runs benchCallers goroutines. setup builds each caller's
// request function (untimed); every request's latency is recorded.
func runCallers(b *testing.B, setup func() (func() error, error)) {
	b.Helper()
	runPacedCallers(b, 0, setup)
}

// runPacedCallers is runCallers with each caller sending at most one
// request per interval (0: back to back), i.e. an offered load of
// benchCallers/interval requests per second.
func runPacedCallers(b *testing.B, interval time.Duration, setup func() (func() error, error)) {
	b.Helper()
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((benchCallers + procs - 1) / procs)
	var (
		mu  sync.Mutex
		all []time.Duration
	)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		do, err := setup()
		if err != nil {
			b.Error(err)
			return
		}
		lat := make([]time.Duration, 0, 4096)
		next := time.Now()
		if interval > 0 { // spread the callers over the interval, not in lockstep
			next = next.Add(rand.N(interval))
		}
		for pb.Next() {
			if interval > 0 {
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				next = next.Add(interval)
			}
			start := time.Now()
			if err := do(); err != nil {
				b.Error(err)
				return
			}
			lat = append(lat, time.Since(start))
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	b.StopTimer()
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(pct(0.50), "p50-us")
	b.ReportMetric(pct(0.99), "p99-us")
}

// containerRequest and imdsRequest build one caller's request; the IMDS
// one first fetches the caller's own token.
func containerRequest(s *LocalServer) (*http.Request, error) {
	r, err := http.NewRequest(http.MethodGet, s.ContainerURL(), nil)
	if err == nil {
		r.Header.Set("Authorization", s.ContainerToken())
	}
	return r, err
}

func imdsRequest(s *LocalServer, c *http.Client) (*http.Request, error) {
	put, _ := http.NewRequest(http.MethodPut, s.IMDSEndpoint()+"latest/api/token", nil)
	put.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
	resp, err := c.Do(put)
	if err != nil {
		return nil, err
	}
	var tok strings.Builder
	_, _ = io.Copy(&tok, resp.Body)
	resp.Body.Close()
	r, err := http.NewRequest(http.MethodGet, s.IMDSEndpoint()+"latest/meta-data/iam/security-credentials/"+DefaultIMDSRole, nil)
	if err == nil {
		r.Header.Set("X-aws-ec2-metadata-token", tok.String())
	}
	return r, err
}

// The two benchmarks the brief names use the minimal keep-alive client
// (rawCaller); the GoClient variants use net/http's Transport, as the Go
// SDK does, and so also measure that client's CPU on the shared cores.

// rawCallers is a runCallers setup: each caller sends the request newReq
// builds on its own rawCaller connection to s.
func rawCallers(b *testing.B, s *LocalServer, newReq func() (*http.Request, error)) func() (func() error, error) {
	return func() (func() error, error) {
		r, err := newReq()
		if err != nil {
			return nil, err
		}
		c, err := newRawCaller(s.Addr(), r)
		if err != nil {
			return nil, err
		}
		b.Cleanup(func() { c.conn.Close() })
		return c.do, nil
	}
}

func BenchmarkContainerEndpoint(b *testing.B) {
	s := benchServer(b, EndpointContainer)
	runCallers(b, rawCallers(b, s, func() (*http.Request, error) { return containerRequest(s) }))
}

func BenchmarkIMDSCredentials(b *testing.B) {
	s := benchServer(b, EndpointIMDS)
	hc := benchClient()
	runCallers(b, rawCallers(b, s, func() (*http.Request, error) { return imdsRequest(s, hc) }))
}

// BenchmarkContainerEndpointPaced offers a fixed load from the same 64
// callers, to show the latency when the machine is not saturated.
func BenchmarkContainerEndpointPaced(b *testing.B) {
	for _, rate := range []int{8000, 16000, 32000} {
		b.Run(fmt.Sprintf("rps=%d", rate), func(b *testing.B) {
			s := benchServer(b, EndpointContainer)
			runPacedCallers(b, time.Second*benchCallers/time.Duration(rate),
				rawCallers(b, s, func() (*http.Request, error) { return containerRequest(s) }))
		})
	}
}

func BenchmarkContainerEndpointGoClient(b *testing.B) {
	s := benchServer(b, EndpointContainer)
	hc := benchClient()
	runCallers(b, func() (func() error, error) {
		r, err := containerRequest(s)
		return func() error { return get(hc, r) }, err
	})
}

func BenchmarkIMDSCredentialsGoClient(b *testing.B) {
	s := benchServer(b, EndpointIMDS)
	hc := benchClient()
	runCallers(b, func() (func() error, error) {
		r, err := imdsRequest(s, hc)
		return func() error { return get(hc, r) }, err
	})
}

// BenchmarkContainerHandler is the handler alone, in process: the server's
// own share of a request, without HTTP parsing or the network.
func BenchmarkContainerHandler(b *testing.B) {
	s, err := NewLocalServer(LocalConfig{Endpoints: EndpointContainer, ContainerToken: fixToken, Source: staticSource(fixCreds(time.Now()))})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r := req(http.MethodGet, DefaultContainerPath, withHeader("Authorization", fixToken))
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		s.Handler().ServeHTTP(w, r)
	}
	if w.code != http.StatusOK {
		b.Fatalf("got %d", w.code)
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// rawCaller is a minimal HTTP/1.1 keep-alive client: one connection, a
// pre-built request, http.ReadResponse to parse the answer. It costs less
// CPU than net/http's Transport, so on a small machine the latency it sees
// is closer to the server's own.
type rawCaller struct {
	conn net.Conn
	br   *bufio.Reader
	req  []byte
}

func newRawCaller(addr string, req *http.Request) (*rawCaller, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		return nil, err
	}
	return &rawCaller{conn: conn, br: bufio.NewReaderSize(conn, 4096), req: buf.Bytes()}, nil
}

func (c *rawCaller) do() error {
	if _, err := c.conn.Write(c.req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return err
	}
	return drain(resp)
}
