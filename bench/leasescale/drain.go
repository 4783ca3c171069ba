package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/keyferry/keyferry/bench/internal/host"
	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/lease"
	"github.com/keyferry/keyferry/internal/metrics"
	"github.com/keyferry/keyferry/internal/policy"
	"github.com/keyferry/keyferry/internal/storage/bolt"
)

type drainOptions struct {
	leases, live   int
	lead           time.Duration
	workers        int
	rps            float64
	tick           time.Duration
	batch          int
	maxAttempts    int
	upstream       string
	iamWrites      float64
	retryAfter     time.Duration
	timeout        time.Duration
	cpuprofile     string
	keep, jsonOut  bool
	list           bool
	quiet          bool
	sampleInterval time.Duration
}

// drainSample is one reading of the lifecycle's metrics.
type drainSample struct {
	T         float64 `json:"t_s"` // seconds since the first expiry
	Backlog   float64 `json:"backlog"`
	Revoked   float64 `json:"revoked_total"`
	Failures  float64 `json:"failed_attempts_total"`
	Requests  int     `json:"iam_requests"`
	Writes    int     `json:"iam_writes_accepted"`
	Throttled int     `json:"iam_writes_throttled"`
}

// drainResult is the report of one drain run.
type drainResult struct {
	Leases      int            `json:"leases"`
	Live        int            `json:"live_leases"`
	Config      map[string]any `json:"config"`
	Lag         lagStats       `json:"lag"`
	Drain       time.Duration  `json:"drain_ns"` // first expiry → last revocation
	PerSecond   float64        `json:"revocations_per_s"`
	States      map[string]int `json:"states"`
	AttemptHist map[int]int    `json:"attempts_per_lease"` // revocation attempts (lease-level) → leases
	IAM         iamStats       `json:"iam"`
	CPU         time.Duration  `json:"process_cpu_ns"`
	Samples     []drainSample  `json:"samples"`
	Load        string         `json:"loadavg"`
}

type lagStats struct {
	P50, P90, P99, Max time.Duration
}

func runDrain(args []string) error {
	fs := flag.NewFlagSet("drain", flag.ExitOnError)
	var o drainOptions
	fs.IntVar(&o.leases, "leases", 10000, "iam_user leases that expire in the same second")
	fs.IntVar(&o.live, "live", 0, "other live leases in the store (expiring in 1–12 h), to drain a store that is not empty")
	fs.DurationVar(&o.lead, "lead", 5*time.Second, "time from the start of seeding to the first expiry (the lifecycle starts before it)")
	fs.IntVar(&o.workers, "workers", 8, "LifecycleConfig.Workers")
	fs.Float64Var(&o.rps, "rps", 5, "LifecycleConfig.RevocationsPerSecond")
	fs.DurationVar(&o.tick, "tick", 0, "LifecycleConfig.Tick (0: the default)")
	fs.IntVar(&o.batch, "batch", 0, "LifecycleConfig.Batch (0: the default)")
	fs.IntVar(&o.maxAttempts, "max-attempts", 0, "LifecycleConfig.MaxAttempts (0: the default)")
	fs.StringVar(&o.upstream, "iam", upstreamFake, "fake: the real AWS provider (SDK) → testutil's fake IAM over loopback; mem: an in-memory IAM with no latency (the broker alone)")
	fs.Float64Var(&o.iamWrites, "iam-writes", 0, "the IAM account's write quota per second (0: unlimited); deleting one user is 3 writes")
	fs.DurationVar(&o.retryAfter, "retry-after", time.Second, "-iam mem: the Retry-After hint on throttling errors (the provider's is 1–5 s)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	fs.DurationVar(&o.sampleInterval, "sample", time.Second, "how often the backlog gauge is sampled")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "CPU profile of the drain (from the start of the lifecycle to the last revocation)")
	fs.BoolVar(&o.list, "list", false, "record no user_parts in the leases, so that revocation lists what each user has (as for leases written before keyferry recorded them)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temp dir (bolt file, audit log, log)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the result as JSON")
	fs.BoolVar(&o.quiet, "q", false, "do not print the sample series")
	fs.Parse(args)
	if o.leases < 1 || o.live < 0 || o.workers < 1 || o.rps <= 0 || o.lead <= 0 || (o.upstream != upstreamFake && o.upstream != upstreamMem) {
		return errors.New("need -leases ≥ 1, -live ≥ 0, -workers ≥ 1, -rps > 0, -lead > 0, -iam fake or mem")
	}
	res, err := drain(context.Background(), o)
	if err != nil {
		return err
	}
	if o.jsonOut {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	printDrain(res, o)
	return nil
}

// drain runs one drain and returns its result.
func drain(ctx context.Context, o drainOptions) (res *drainResult, err error) {
	dir, err := os.MkdirTemp("", "keyferry-leasescale-")
	if err != nil {
		return nil, err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "drain: files in %s\n", dir)
	}
	// Production storage and audit settings: fsync'd, group commit.
	st, err := bolt.Open(filepath.Join(dir, "keyferry.db"), bolt.Options{})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	met := metrics.New()
	sink, err := audit.OpenFile(filepath.Join(dir, "audit.log"), audit.Options{OnFlush: met.AuditFlush})
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := sink.Close(); cerr != nil && err == nil {
			res, err = nil, fmt.Errorf("audit log: %w", cerr)
		}
	}()
	logf, err := os.Create(filepath.Join(dir, "lifecycle.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	var iam drainIAM
	if o.upstream == upstreamMem {
		iam = newMemIAM(o.iamWrites, o.retryAfter)
	} else {
		f, err := newFakeIAM(ctx, o.iamWrites)
		if err != nil {
			return nil, err
		}
		iam = f
	}
	defer iam.close()

	// Seed the live leases (if any), then the iam_user leases that expire
	// together, each with its IAM user (created as issuance would).
	setupStart := time.Now()
	g := newLeaseGen(7, setupStart, time.Hour, 12*time.Hour, 0.2)
	for done := 0; done < o.live; {
		k := min(10000, o.live-done)
		batch := make([]*lease.Lease, k)
		for i := range batch {
			batch[i] = g.next()
		}
		if err := lease.Seed(ctx, st, batch); err != nil {
			return nil, err
		}
		done += k
	}
	ug := newLeaseGen(11, setupStart, time.Hour, time.Hour, 1)
	expiring := make([]*lease.Lease, o.leases)
	for i := range expiring {
		expiring[i] = ug.next()
	}
	if o.list {
		for _, l := range expiring {
			l.UserParts = nil
		}
	}
	if err := iam.prepare(ctx, expiring); err != nil {
		return nil, fmt.Errorf("creating the IAM users: %w", err)
	}
	fmt.Fprintf(os.Stderr, "drain: %d live leases seeded and %d IAM users created in %v\n", o.live, o.leases, time.Since(setupStart).Round(time.Millisecond))
	// They expire evenly over [first, first+1s).
	seedStart := time.Now()
	first := seedStart.Add(o.lead)
	for i, l := range expiring {
		l.ExpiresAt = first.Add(time.Duration(i) * time.Second / time.Duration(o.leases)).UTC()
	}
	for done := 0; done < o.leases; {
		k := min(5000, o.leases-done)
		if err := lease.Seed(ctx, st, expiring[done:done+k]); err != nil {
			return nil, err
		}
		done += k
	}
	if time.Until(first) < time.Second {
		return nil, fmt.Errorf("seeding took %v: raise -lead above it", time.Since(seedStart).Round(time.Millisecond))
	}
	iam.limit()

	tune := lease.Tuning{Workers: o.workers, RevocationsPerSecond: o.rps, Tick: o.tick, Batch: o.batch, MaxAttempts: o.maxAttempts, SweepInterval: -1}
	m := lease.NewLifecycle(lease.LifecycleConfig{
		Store: st, Audit: sink, Users: iam, Observer: met, Tuning: tune,
		Logger: slog.New(slog.NewJSONHandler(logf, nil)).With("component", "lease"),
	})
	if o.cpuprofile != "" {
		pf, err := os.Create(o.cpuprofile)
		if err != nil {
			return nil, err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0 := processCPU()
	rctx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- m.Run(rctx) }()
	running := true
	stopRun := func() error {
		if !running {
			return nil
		}
		running = false
		cancel()
		return <-runErr
	}
	defer stopRun()

	// Sample the metrics until every lease is revoked or given up on.
	res = &drainResult{Leases: o.leases, Live: o.live, Config: map[string]any{
		"workers": o.workers, "revocations_per_s": o.rps, "tick": o.tick.String(), "batch": o.batch, "iam_writes_per_s": o.iamWrites,
		"retry_after": o.retryAfter.String(), "max_attempts": o.maxAttempts, "iam": o.upstream, "list": o.list,
	}}
	deadline := time.Now().Add(o.timeout)
	nextSample := first
	for {
		now := time.Now()
		g := gather(met)
		finished := g["keyferry_revocations_total"]+g["keyferry_irrevocable_leases_total"] >= float64(o.leases)
		if !now.Before(nextSample) || finished {
			s := iam.stats()
			res.Samples = append(res.Samples, drainSample{
				T: now.Sub(first).Seconds(), Backlog: g["keyferry_revocation_backlog"], Revoked: g["keyferry_revocations_total"],
				Failures: g["keyferry_revocation_failures_total"], Requests: s.Requests, Writes: s.Writes, Throttled: s.Throttled,
			})
			for !nextSample.After(now) {
				nextSample = nextSample.Add(o.sampleInterval)
			}
		}
		if finished {
			break
		}
		if now.After(deadline) {
			return nil, fmt.Errorf("not drained after %v: %v", o.timeout, gather(met))
		}
		// Lags come from the store, so this only sets the sampling
		// precision; Gather reads /proc, so not too often.
		time.Sleep(100 * time.Millisecond)
	}
	res.CPU = processCPU() - cpu0
	res.Load = host.LoadAvg()
	if err := stopRun(); err != nil {
		return nil, err
	}

	// Every lease's lag, from the store.
	res.States = map[string]int{}
	res.AttemptHist = map[int]int{}
	var lags []time.Duration
	var firstExp, lastRevoked time.Time
	after := ""
	for {
		page, next, err := m.List(ctx, lease.Filter{After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for _, l := range page {
			if l.Type != policy.TypeIAMUser || !l.ExpiresAt.Before(first.Add(time.Second)) || l.ExpiresAt.Before(first) {
				continue // a live lease
			}
			res.States[string(l.State)]++
			res.AttemptHist[l.Attempts+1]++ // Attempts counts the failed ones
			if l.State != lease.StateRevoked {
				continue
			}
			lags = append(lags, l.RevokedAt.Sub(l.ExpiresAt))
			if firstExp.IsZero() || l.ExpiresAt.Before(firstExp) {
				firstExp = l.ExpiresAt
			}
			if l.RevokedAt.After(lastRevoked) {
				lastRevoked = l.RevokedAt
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	if len(lags) > 0 {
		slices.Sort(lags)
		res.Lag = lagStats{P50: rank(lags, .5), P90: rank(lags, .9), P99: rank(lags, .99), Max: lags[len(lags)-1]}
		res.Drain = lastRevoked.Sub(firstExp)
		res.PerSecond = float64(len(lags)) / res.Drain.Seconds()
	}
	res.IAM = iam.stats()
	return res, nil
}

// rank returns the nearest-rank q-quantile of sorted ds.
func rank(ds []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// gather reads every keyferry_* counter and gauge of met, summed over
// labels.
func gather(met *metrics.Metrics) map[string]float64 {
	out := map[string]float64{}
	mfs, err := met.Registry.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "keyferry_") {
			continue
		}
		for _, mt := range mf.GetMetric() {
			// Without naming client_model's types (not a direct
			// dependency): only the field of the metric's type is set.
			if c := mt.GetCounter(); c != nil {
				out[mf.GetName()] += c.GetValue()
			} else if g := mt.GetGauge(); g != nil {
				out[mf.GetName()] += g.GetValue()
			}
		}
	}
	return out
}

// processCPU is this process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func printDrain(r *drainResult, o drainOptions) {
	fmt.Printf("drain: %d iam_user leases expiring within one second (+%d live), IAM %s, workers %d, %g revocations/s, tick %v, batch %d, IAM writes/s %g (0 = unlimited)\n",
		r.Leases, r.Live, o.upstream, o.workers, o.rps, o.tick, o.batch, o.iamWrites)
	fmt.Printf("  states: %v\n", r.States)
	fmt.Printf("  lag expiry→revoked: p50 %v, p90 %v, p99 %v, max %v\n", r.Lag.P50.Round(time.Millisecond), r.Lag.P90.Round(time.Millisecond),
		r.Lag.P99.Round(time.Millisecond), r.Lag.Max.Round(time.Millisecond))
	fmt.Printf("  drain: %v from the first expiry to the last revocation, %.0f revocations/s; process CPU %v (%.0f µs/revocation); load %s\n",
		r.Drain.Round(time.Millisecond), r.PerSecond, r.CPU.Round(time.Millisecond), float64(r.CPU.Microseconds())/float64(r.Leases), r.Load)
	keys := make([]int, 0, len(r.AttemptHist))
	for k := range r.AttemptHist {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var hist []string
	for _, k := range keys {
		hist = append(hist, fmt.Sprintf("%d: %d", k, r.AttemptHist[k]))
	}
	fmt.Printf("  attempts per lease (leases): %s\n", strings.Join(hist, ", "))
	fmt.Printf("  IAM: %d requests (%.2f per lease), %d writes accepted (%.2f per lease), %d writes throttled, %d reads; %d users left\n",
		r.IAM.Requests, float64(r.IAM.Requests)/float64(r.Leases), r.IAM.Writes, float64(r.IAM.Writes)/float64(r.Leases), r.IAM.Throttled, r.IAM.Reads, r.IAM.Users)
	if o.quiet {
		return
	}
	fmt.Printf("  %8s %8s %8s %8s %9s %8s %9s\n", "t (s)", "backlog", "revoked", "failed", "requests", "writes", "throttled")
	for _, s := range r.Samples {
		fmt.Printf("  %8.1f %8.0f %8.0f %8.0f %9d %8d %9d\n", s.T, s.Backlog, s.Revoked, s.Failures, s.Requests, s.Writes, s.Throttled)
	}
}
