package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
)

// TestMain lets the test binary serve as the client process of
// runLoadInChild, which runs os.Executable() -child-spec file.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "-child-spec" {
		if err := runChild(context.Background(), os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := summarize(ds)
	want := latencies{N: 100, Mean: 50500 * time.Microsecond, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond,
		P99: 99 * time.Millisecond, P999: 100 * time.Millisecond, Max: 100 * time.Millisecond}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := summarize(nil); got != (latencies{}) {
		t.Errorf("got %+v for no samples, want zero", got)
	}
}

const sampleMetrics = `# HELP keyferry_issuance_duration_seconds Time to serve a credential request.
# TYPE keyferry_issuance_duration_seconds histogram
keyferry_issuance_duration_seconds_bucket{le="0.001"} 10
keyferry_issuance_duration_seconds_bucket{le="0.0025"} 60
keyferry_issuance_duration_seconds_bucket{le="0.005"} 90
keyferry_issuance_duration_seconds_bucket{le="0.01"} 100
keyferry_issuance_duration_seconds_bucket{le="+Inf"} 100
keyferry_issuance_duration_seconds_sum 0.25
keyferry_issuance_duration_seconds_count 100
keyferry_issuances_total{role="deploy",result="issued"} 98
keyferry_issuances_total{role="deploy",result="token_expired"} 2
keyferry_http_request_duration_seconds_bucket{route="POST /v1/creds",le="+Inf"} 100
keyferry_http_request_duration_seconds_count{route="POST /v1/creds"} 100
process_cpu_seconds_total 1.5e+00
`

func TestParsePromAndQuantile(t *testing.T) {
	p, err := parseProm(strings.NewReader(sampleMetrics))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.sumOf("keyferry_issuances_total", `result="issued"`); got != 98 {
		t.Errorf("issued: got %v, want 98", got)
	}
	if got := p.sumOf("keyferry_issuances_total"); got != 100 {
		t.Errorf("all results: got %v, want 100", got)
	}
	if got := p.sumOf("keyferry_http_request_duration_seconds_count", `route="POST /v1/creds"`); got != 100 {
		t.Errorf("label value with a space: got %v, want 100", got)
	}
	if got := p["process_cpu_seconds_total"]; got != 1.5 {
		t.Errorf("unlabelled series: got %v, want 1.5", got)
	}
	hb := p.histogram("keyferry_issuance_duration_seconds")
	for _, c := range []struct {
		q, want float64
	}{
		{0.05, 0.0005}, // inside the first bucket, from 0
		{0.5, 0.0022},  // 10 + 40/50 of the (1 ms, 2.5 ms] bucket
		{0.9, 0.005},   // exactly a bound
		{0.99, 0.0095}, // 5 ms + 9/10 of the (5 ms, 10 ms] bucket
	} {
		if got := quantile(c.q, hb); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("quantile(%v): got %v, want %v", c.q, got, c.want)
		}
	}
	if got := fractionBelow(0.005, hb); got != 0.9 {
		t.Errorf("fractionBelow(5 ms): got %v, want 0.9", got)
	}
	if got := quantile(0.5, nil); !math.IsNaN(got) {
		t.Errorf("quantile of nothing: got %v, want NaN", got)
	}

	before, _ := parseProm(strings.NewReader(`keyferry_issuances_total{role="deploy",result="issued"} 90`))
	if got := delta(before, p).sumOf("keyferry_issuances_total", `result="issued"`); got != 8 {
		t.Errorf("delta: got %v, want 8", got)
	}
}

// TestRunAgainstBroker runs a short closed-loop and open-loop level
// against an in-process broker and checks that every request succeeded
// and left one lease and one audit event. It asserts nothing about speed.
func TestRunAgainstBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	ctx := context.Background()
	for _, c := range []struct {
		upstream string
		clients  string
		spec     loadSpec
	}{
		{upstreamInproc, clientsInproc, loadSpec{mode: modeClosed, workers: 3, warmup: 50 * time.Millisecond, measure: 200 * time.Millisecond}},
		{upstreamHTTP, clientsInproc, loadSpec{mode: modeOpen, workers: 4, rate: 100, warmup: 50 * time.Millisecond, measure: 200 * time.Millisecond}},
		{upstreamInproc, clientsProcess, loadSpec{mode: modeClosed, workers: 2, warmup: 50 * time.Millisecond, measure: 200 * time.Millisecond}},
	} {
		t.Run(c.upstream+"/"+c.spec.mode+"/clients-"+c.clients, func(t *testing.T) {
			b, err := startBroker(ctx, brokerConfig{upstream: c.upstream, logLevel: "info", keep: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(b.dir) })
			tokens, err := b.tokens(ctx, c.spec.workers, time.Hour)
			if err != nil {
				b.stop()
				t.Fatal(err)
			}
			var windows int
			count := func(window) { windows++ }
			var res loadResult
			if c.clients == clientsProcess {
				if res, err = runLoadInChild(ctx, b.dir, b.addr, tokens, c.spec, count); err != nil {
					b.stop()
					t.Fatal(err)
				}
				if res.CPU <= 0 {
					t.Errorf("client process reported CPU %v, want > 0", res.CPU)
				}
			} else {
				res = runLoad(ctx, b.addr, tokens, c.spec, time.Time{}, count)
			}
			if err := b.stop(); err != nil {
				t.Errorf("stop: %v", err)
			}
			if len(res.Errors) > 0 {
				t.Errorf("got errors %v, want none", res.Errors)
			}
			if res.OK == 0 || len(res.Recorded) != res.OK || res.AllOK < res.OK {
				t.Errorf("got %d ok in the window, %d latencies, %d ok in all; want > 0, equal, ≥", res.OK, len(res.Recorded), res.AllOK)
			}
			if windows != 1 {
				t.Errorf("onWindow ran %d times, want 1", windows)
			}
			if c.spec.mode == modeClosed && res.Dials != int64(c.spec.workers) {
				t.Errorf("got %d TCP dials, want %d (one kept-alive connection per client)", res.Dials, c.spec.workers)
			}
			d, err := checkDisk(ctx, b.dbPath, b.auditPath)
			if err != nil {
				t.Fatal(err)
			}
			if !d.AuditOK || d.Leases != res.AllOK || d.AuditIssues != res.AllOK {
				t.Errorf("disk: got %+v, want %d leases and audit issue events, chain ok", d, res.AllOK)
			}
		})
	}
}

func TestInprocMinterShape(t *testing.T) {
	c := mintFake(awsRequest("arn:aws:iam::123456789012:role/deploy", "gl-g-p-1"))
	if !strings.HasPrefix(c.AccessKeyID, "ASIA") || len(c.AccessKeyID) != 20 {
		t.Errorf("got access key id %q, want ASIA + 16", c.AccessKeyID)
	}
	if len(c.SecretAccessKey) != 40 || len(c.SessionToken) < 500 {
		t.Errorf("got secret of %d and token of %d chars, want 40 and ~600", len(c.SecretAccessKey), len(c.SessionToken))
	}
	if want := "arn:aws:sts::123456789012:assumed-role/deploy/gl-g-p-1"; c.AssumedRoleARN != want {
		t.Errorf("got %q, want %q", c.AssumedRoleARN, want)
	}
	if d := time.Until(c.Expiration); d < 59*time.Minute || d > time.Hour {
		t.Errorf("expires in %v, want the requested hour", d)
	}
}

func awsRequest(roleARN, session string) awsprov.Request {
	return awsprov.Request{RoleARN: roleARN, SessionName: session, Duration: time.Hour}
}
