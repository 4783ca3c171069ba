// Command loadgen measures keyferry's issuance path end to end: it starts a
// dev-mode broker in this process (durable bolt storage and an fsync'd
// audit log in a temp dir, the production JSON logger at info), creates a
// role through the admin API, mints one GitLab-shaped job token per client
// from the dev issuer, warms up, and then drives POST /v1/creds over
// keep-alive HTTP on loopback.
//
//	go run ./bench/loadgen -c 1,16,64 -d 10s
//	go run ./bench/loadgen -c 64 -d 10s -cpuprofile cpu.prof
//	go run ./bench/loadgen -upstream http -c 1,16,64
//	go run ./bench/loadgen -c 64 -rate 1000,2000,3000   # open loop too
//
// Upstreams: "inproc" is a zero-latency in-process minter (the broker alone
// is measured); "http" is the real AWS provider (aws-sdk-go-v2) against the
// fake STS over loopback, so the SDK's cost is included.
//
// Closed loop (-c): N clients, each sending its next request when the
// previous one returns. Throughput is what the machine can do; latency at
// c > 1 is mostly queueing (by Little's law, mean latency = c / throughput).
// Open loop (-rate): requests arrive at a fixed rate, latency counted from
// the scheduled arrival; this answers "what is p99 at R requests/s".
//
// Clients, broker and upstream share the process and its CPUs. Goroutines
// carry the pprof label side=client, side=server or side=upstream, so a
// profile can be split: go tool pprof -tagfocus side=server cpu.prof.
//
// Any failed request fails the run (exit status 1), and so does a lease or
// audit count on disk that does not match the successful requests.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/keyferry/keyferry/bench/internal/host"
	"github.com/keyferry/keyferry/internal/server"
)

// levelResult is one row of the report.
type levelResult struct {
	Upstream    string  `json:"upstream"`
	Mode        string  `json:"mode"`
	Concurrency int     `json:"concurrency"`
	OfferedRate float64 `json:"offered_rate,omitempty"`
	DurationSec float64 `json:"duration_s"`

	Requests  int            `json:"requests"` // successful, started in the window
	Errors    map[string]int `json:"errors,omitempty"`
	PerSecond float64        `json:"issuances_per_s"`
	Latency   latencies      `json:"latency"`
	Dials     int64          `json:"tcp_dials"`
	SchedLate time.Duration  `json:"open_loop_sched_late_ns,omitempty"`
	// CPUPerReq and Cores are the broker process's CPU per issuance and
	// CPU seconds per second: the broker alone with -clients process, the
	// broker and the clients with -clients inproc.
	CPUPerReq time.Duration `json:"cpu_per_issuance_ns"`
	Cores     float64       `json:"cores_used"`
	// ClientCPUPerReq and ClientCores are the client process's (-clients
	// process only).
	ClientCPUPerReq time.Duration `json:"client_cpu_per_issuance_ns,omitempty"`
	ClientCores     float64       `json:"client_cores,omitempty"`
	// OtherCores is the CPU the rest of the machine used meanwhile
	// (from /proc/stat: busy minus ours); StealCores is hypervisor steal.
	OtherCores float64     `json:"other_cores"`
	StealCores float64     `json:"steal_cores"`
	GCPerSec   float64     `json:"gc_per_s"`
	Server     serverStats `json:"server"`
	Disk       durability  `json:"disk"`
	LoadBefore string      `json:"loadavg_before"`
	LoadAfter  string      `json:"loadavg_after"`
	Problems   []string    `json:"problems,omitempty"`
}

// serverStats come from the broker's /metrics, as the difference between a
// scrape at the start and one at the end of the measured window.
type serverStats struct {
	Issued           float64 `json:"issued"`
	IssueMeanMs      float64 `json:"issuance_mean_ms"`
	IssueP50Ms       float64 `json:"issuance_p50_ms"` // interpolated in buckets
	IssueP99Ms       float64 `json:"issuance_p99_ms"`
	IssueUnder10ms   float64 `json:"issuance_share_le_10ms"`
	HTTPMeanMs       float64 `json:"http_mean_ms"`
	HTTPP99Ms        float64 `json:"http_p99_ms"`
	AuditFlushes     float64 `json:"audit_flushes"`
	AuditPerFlush    float64 `json:"audit_events_per_flush"`
	AuditFlushMeanMs float64 `json:"audit_flush_mean_ms"`
}

type options struct {
	upstreams   []string
	conc        []int
	rates       []float64
	openWorkers int
	warmup      time.Duration
	measure     time.Duration
	cpuprofile  string
	memprofile  string
	tracefile   string
	profileC    int
	logLevel    string
	keep        bool
	jsonOut     bool
	repeat      int
	clients     string
}

// Where the clients run.
const (
	clientsProcess = "process" // a child process: the broker process is the broker alone
	clientsInproc  = "inproc"  // goroutines of this process, labelled side=client
)

func main() {
	var o options
	var conc, rates, ups string
	flag.StringVar(&conc, "c", "1,16,64", "closed-loop concurrency levels (comma-separated; empty for none)")
	flag.StringVar(&rates, "rate", "", "open-loop arrival rates per second (comma-separated), e.g. 1000,2000,3000")
	flag.IntVar(&o.openWorkers, "open-workers", 256, "open loop: clients available to serve arrivals (the in-flight cap)")
	flag.StringVar(&ups, "upstream", upstreamInproc, "upstream: inproc (zero-latency minter), http (AWS SDK → fake STS), or both: inproc,http")
	flag.DurationVar(&o.measure, "d", 10*time.Second, "measured duration per level")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up per level (not measured)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of one closed-loop level's measured window to this file")
	flag.StringVar(&o.memprofile, "memprofile", "", "write an allocation profile (alloc_space) of the same level's measured window to this file")
	flag.StringVar(&o.tracefile, "trace", "", "write an execution trace of the first second of the same level's measured window to this file")
	flag.IntVar(&o.profileC, "profile-c", 0, "the concurrency -cpuprofile, -memprofile and -trace cover (default: the highest of -c)")
	flag.StringVar(&o.logLevel, "log", "info", "broker log level: info (as in production), debug, warn or off")
	flag.BoolVar(&o.keep, "keep", false, "keep each level's temp dir (bolt file, audit log, server log)")
	flag.StringVar(&o.clients, "clients", clientsProcess, "where the load clients run: process (a child process) or inproc (goroutines beside the broker)")
	childSpecFile := flag.String("child-spec", "", "internal: run as the client process of a parent loadgen")
	flag.IntVar(&o.repeat, "n", 1, "runs per level (fresh broker each); the table shows medians")
	flag.BoolVar(&o.jsonOut, "json", false, "print the results as JSON on stdout (progress still goes to stderr)")
	flag.Parse()
	if *childSpecFile != "" {
		if err := runChild(context.Background(), *childSpecFile); err != nil {
			fatalf("client process: %v", err)
		}
		return
	}
	if o.clients != clientsProcess && o.clients != clientsInproc {
		fatalf("-clients must be %s or %s", clientsProcess, clientsInproc)
	}
	// The broker runs with the Ps and GOGC `keyferry server` gives itself.
	server.SetProcs(os.Getenv)
	server.SetGC(os.Getenv)

	var err error
	if o.conc, err = parseInts(conc); err != nil {
		fatalf("-c: %v", err)
	}
	if o.rates, err = parseFloats(rates); err != nil {
		fatalf("-rate: %v", err)
	}
	for _, u := range strings.Split(ups, ",") {
		if u = strings.TrimSpace(u); u != "" {
			o.upstreams = append(o.upstreams, u)
		}
	}
	if len(o.conc) == 0 && len(o.rates) == 0 {
		fatalf("nothing to run: give -c and/or -rate")
	}
	if o.measure <= 0 || o.warmup < 0 || o.openWorkers <= 0 || o.repeat < 1 {
		fatalf("-d must be > 0, -warmup ≥ 0, -open-workers > 0, -n ≥ 1")
	}
	if (o.cpuprofile != "" || o.memprofile != "" || o.tracefile != "") && o.profileC == 0 {
		for _, c := range o.conc {
			o.profileC = max(o.profileC, c)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	printMachine(os.Stderr, o)
	failed := false
	type job struct {
		upstream string
		spec     loadSpec
	}
	var jobs []job
	for _, up := range o.upstreams {
		for _, c := range o.conc {
			jobs = append(jobs, job{up, loadSpec{mode: modeClosed, workers: c, warmup: o.warmup, measure: o.measure}})
		}
		for _, r := range o.rates {
			jobs = append(jobs, job{up, loadSpec{mode: modeOpen, workers: o.openWorkers, rate: r, warmup: o.warmup, measure: o.measure}})
		}
	}
	// Rounds run every level once, so that with -n > 1 a slow spell on
	// the machine spreads over the levels instead of hitting one.
	runs := make([][]levelResult, len(jobs))
	for round := range o.repeat {
		for i, j := range jobs {
			var prof profiles
			if round == 0 && j.spec.mode == modeClosed && j.spec.workers == o.profileC {
				prof = profiles{
					cpu:   profileName(o.cpuprofile, j.upstream, len(o.upstreams)),
					mem:   profileName(o.memprofile, j.upstream, len(o.upstreams)),
					trace: profileName(o.tracefile, j.upstream, len(o.upstreams)),
				}
			}
			r, err := runLevel(ctx, o, j.upstream, j.spec, prof)
			if err != nil {
				fmt.Fprintf(os.Stderr, "loadgen: %s %s: %v\n", j.upstream, levelName(j.spec), err)
				os.Exit(1)
			}
			if len(r.Problems) > 0 {
				failed = true
			}
			printLevel(os.Stderr, r)
			runs[i] = append(runs[i], r)
			if ctx.Err() != nil {
				os.Exit(1)
			}
		}
	}
	summaries := make([]levelSummary, len(jobs))
	for i := range jobs {
		summaries[i] = summarizeRuns(runs[i])
	}
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(summaries)
	} else {
		printTable(os.Stdout, summaries)
	}
	if failed {
		fmt.Fprintln(os.Stderr, "loadgen: FAILED: see the problems above")
		os.Exit(1)
	}
}

// profiles names the profile files of a level ("" for none).
type profiles struct{ cpu, mem, trace string }

// profileName adds the upstream to name when several upstreams run.
func profileName(name, upstream string, upstreams int) string {
	if name == "" || upstreams == 1 {
		return name
	}
	ext := filepath.Ext(name)
	return strings.TrimSuffix(name, ext) + "-" + upstream + ext
}

// runLevel starts a fresh broker, runs one level of load against it, stops
// it and checks what it left on disk.
func runLevel(ctx context.Context, o options, upstream string, spec loadSpec, prof profiles) (levelResult, error) {
	r := levelResult{
		Upstream: upstream, Mode: spec.mode, Concurrency: spec.workers, OfferedRate: spec.rate,
		DurationSec: spec.measure.Seconds(), LoadBefore: host.LoadAvg(),
	}
	fmt.Fprintf(os.Stderr, "── %s, %s loop, %s … ", upstream, spec.mode, levelName(spec))
	b, err := startBroker(ctx, brokerConfig{upstream: upstream, logLevel: o.logLevel, keep: true})
	if err != nil {
		return r, err
	}
	defer func() {
		if !o.keep {
			os.RemoveAll(b.dir)
		}
	}()
	tokens, err := b.tokens(ctx, spec.workers, spec.warmup+spec.measure+10*time.Minute)
	if err != nil {
		b.stop()
		return r, err
	}

	var before, after promSample
	var scrapeErr error
	var cpu0, cpu1 time.Duration
	var gc0, gc1 uint64
	var st0, st1 cpuStat
	var profErr error
	hook := func(win window) {
		before, scrapeErr = b.metrics(ctx)
		cpu0, gc0, st0 = processCPU(), gcCycles(), readCPUStat()
		var f *os.File
		if prof.cpu != "" {
			if f, profErr = os.Create(prof.cpu); profErr == nil {
				profErr = pprof.StartCPUProfile(f)
			}
		}
		if prof.trace != "" {
			if err := traceFor(ctx, prof.trace, time.Second); err != nil && profErr == nil {
				profErr = err
			}
		}
		sleepUntil(ctx, win.end)
		if f != nil {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil && profErr == nil {
				profErr = err
			}
		}
		if prof.mem != "" {
			if err := writeAllocs(prof.mem); err != nil && profErr == nil {
				profErr = err
			}
		}
		cpu1, gc1, st1 = processCPU(), gcCycles(), readCPUStat()
		if scrapeErr == nil {
			after, scrapeErr = b.metrics(ctx)
		}
	}
	var res loadResult
	if o.clients == clientsProcess {
		if res, err = runLoadInChild(ctx, b.dir, b.addr, tokens, spec, hook); err != nil {
			b.stop()
			return r, err
		}
	} else {
		res = runLoad(ctx, b.addr, tokens, spec, time.Time{}, hook)
	}
	stopErr := b.stop()
	r.LoadAfter = host.LoadAvg()

	r.Requests = res.OK
	r.PerSecond = float64(res.OK) / spec.measure.Seconds()
	r.Latency = summarize(res.Recorded)
	r.Dials = res.Dials
	r.SchedLate = res.Behind
	if len(res.Errors) > 0 {
		r.Errors = res.Errors
		r.Problems = append(r.Problems, fmt.Sprintf("%d failed requests: %s", total(res.Errors), strings.Join(sortedErrors(res.Errors), ", ")))
	}
	if res.OK > 0 {
		r.CPUPerReq = (cpu1 - cpu0) / time.Duration(res.OK)
		r.ClientCPUPerReq = res.CPU / time.Duration(res.OK)
	}
	r.Cores = (cpu1 - cpu0).Seconds() / spec.measure.Seconds()
	r.ClientCores = res.CPU.Seconds() / spec.measure.Seconds()
	if st0.ok && st1.ok {
		r.OtherCores = max(0, (st1.busy-st0.busy).Seconds()/spec.measure.Seconds()-r.Cores-r.ClientCores)
		r.StealCores = (st1.steal - st0.steal).Seconds() / spec.measure.Seconds()
	}
	r.GCPerSec = float64(gc1-gc0) / spec.measure.Seconds()
	if scrapeErr != nil {
		r.Problems = append(r.Problems, "metrics: "+scrapeErr.Error())
	} else {
		r.Server = serverStatsOf(delta(before, after))
	}
	if profErr != nil {
		r.Problems = append(r.Problems, "cpu profile: "+profErr.Error())
	}
	if stopErr != nil {
		r.Problems = append(r.Problems, "server: "+stopErr.Error())
	}
	d, err := checkDisk(ctx, b.dbPath, b.auditPath)
	r.Disk = d
	switch {
	case err != nil:
		r.Problems = append(r.Problems, "disk check: "+err.Error())
	case d.Leases != res.AllOK || d.AuditIssues != res.AllOK:
		r.Problems = append(r.Problems, fmt.Sprintf("disk check: %d successful requests, but %d leases in bolt and %d issue events in the audit log", res.AllOK, d.Leases, d.AuditIssues))
	}
	if r.Server.Issued > 0 && math.Abs(r.Server.Issued-float64(res.OK)) > float64(spec.workers)+1 {
		// The scrapes and the window edges differ by the requests in flight.
		r.Problems = append(r.Problems, fmt.Sprintf("server counted %.0f issuances in the window, clients %d", r.Server.Issued, res.OK))
	}
	fmt.Fprintf(os.Stderr, "%.0f/s\n", r.PerSecond)
	return r, nil
}

// traceFor writes an execution trace of the next d to name.
func traceFor(ctx context.Context, name string, d time.Duration) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return err
	}
	sleepUntil(ctx, time.Now().Add(d))
	trace.Stop()
	return f.Close()
}

// writeAllocs writes the allocs profile at the end of the measured window.
// Its counts are cumulative since the process started, so run only the
// profiled level (e.g. -c 64) to keep other levels out of it.
func writeAllocs(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func serverStatsOf(d promSample) serverStats {
	const issue = "keyferry_issuance_duration_seconds"
	const httpLat = "keyferry_http_request_duration_seconds"
	creds := `route="POST /v1/creds"`
	s := serverStats{Issued: d.sumOf("keyferry_issuances_total", `result="issued"`)}
	if n := d.sumOf(issue + "_count"); n > 0 {
		hb := d.histogram(issue)
		s.IssueMeanMs = 1000 * d.sumOf(issue+"_sum") / n
		s.IssueP50Ms = 1000 * quantile(0.50, hb)
		s.IssueP99Ms = 1000 * quantile(0.99, hb)
		s.IssueUnder10ms = fractionBelow(0.01, hb)
	}
	if n := d.sumOf(httpLat+"_count", creds); n > 0 {
		s.HTTPMeanMs = 1000 * d.sumOf(httpLat+"_sum", creds) / n
		s.HTTPP99Ms = 1000 * quantile(0.99, d.histogram(httpLat, creds))
	}
	s.AuditFlushes = d.sumOf("keyferry_audit_flushes_total", `result="ok"`)
	if n := d.sumOf("keyferry_audit_flush_events_count"); n > 0 {
		s.AuditPerFlush = d.sumOf("keyferry_audit_flush_events_sum") / n
	}
	if n := d.sumOf("keyferry_audit_flush_duration_seconds_count"); n > 0 {
		s.AuditFlushMeanMs = 1000 * d.sumOf("keyferry_audit_flush_duration_seconds_sum") / n
	}
	return s
}

func levelName(s loadSpec) string {
	if s.mode == modeOpen {
		return fmt.Sprintf("%.0f/s offered (≤%d in flight)", s.rate, s.workers)
	}
	return fmt.Sprintf("c=%d", s.workers)
}

func printMachine(w io.Writer, o options) {
	fmt.Fprintf(w, "keyferry loadgen: %s, %v measured after %v warm-up per level, fresh broker per level, log=%s\n",
		strings.Join(o.upstreams, "+"), o.measure, o.warmup, o.logLevel)
	fmt.Fprintf(w, "machine: %d CPUs (%s), GOMAXPROCS %d, %s, clients: %s, load average %s\n",
		runtime.NumCPU(), host.CPUModel(), runtime.GOMAXPROCS(0), runtime.Version(), o.clients, host.LoadAvg())
}

func printLevel(w io.Writer, r levelResult) {
	cpu := fmt.Sprintf("broker+clients %v CPU/issuance on %.2f cores", r.CPUPerReq.Round(time.Microsecond), r.Cores)
	if r.ClientCores > 0 {
		cpu = fmt.Sprintf("broker %v CPU/issuance on %.2f cores, clients %v on %.2f", r.CPUPerReq.Round(time.Microsecond), r.Cores,
			r.ClientCPUPerReq.Round(time.Microsecond), r.ClientCores)
	}
	fmt.Fprintf(w, "   %d ok in %.0fs, %d TCP dials, %s (others %.2f, steal %.2f), GOMAXPROCS %d, %.1f GC/s; disk: %d leases, %d audit issue events, chain ok=%v; load %s → %s\n",
		r.Requests, r.DurationSec, r.Dials, cpu, r.OtherCores, r.StealCores, runtime.GOMAXPROCS(0), r.GCPerSec,
		r.Disk.Leases, r.Disk.AuditIssues, r.Disk.AuditOK, r.LoadBefore, r.LoadAfter)
	s := r.Server
	fmt.Fprintf(w, "   server: issuance mean %.2f ms, p50≈%.2f ms, p99≈%.1f ms (buckets), %.1f%% ≤ 10 ms; http mean %.2f ms; audit %.0f flushes, %.1f events/flush, %.2f ms/flush\n",
		s.IssueMeanMs, s.IssueP50Ms, s.IssueP99Ms, 100*s.IssueUnder10ms, s.HTTPMeanMs, s.AuditFlushes, s.AuditPerFlush, s.AuditFlushMeanMs)
	for _, p := range r.Problems {
		fmt.Fprintf(w, "   PROBLEM: %s\n", p)
	}
}

// levelSummary is one level over its runs: medians of each figure
// (taken separately, so a row need not be one run), and every run.
type levelSummary struct {
	Upstream    string  `json:"upstream"`
	Mode        string  `json:"mode"`
	Concurrency int     `json:"concurrency"`
	OfferedRate float64 `json:"offered_rate,omitempty"`
	Runs        int     `json:"runs"`
	Errors      int     `json:"errors"`

	PerSecond       float64       `json:"issuances_per_s_median"`
	PerSecondMin    float64       `json:"issuances_per_s_min"`
	PerSecondMax    float64       `json:"issuances_per_s_max"`
	P50             time.Duration `json:"p50_ns_median"`
	P90             time.Duration `json:"p90_ns_median"`
	P99             time.Duration `json:"p99_ns_median"`
	P999            time.Duration `json:"p999_ns_median"`
	Max             time.Duration `json:"max_ns"`
	CPUPerReq       time.Duration `json:"cpu_per_issuance_ns_median"`
	ClientCPUPerReq time.Duration `json:"client_cpu_per_issuance_ns_median,omitempty"`
	Cores           float64       `json:"cores_used_median"`
	OtherCores      float64       `json:"other_cores_median"`
	// Ceiling is NumCPU / (broker + client CPU per issuance): the
	// closed-loop rate if nothing but CPU bounded it and the machine ran
	// nothing else (it is shared).
	Ceiling       float64       `json:"cpu_bound_ceiling_per_s"`
	ServerMeanMs  float64       `json:"server_issuance_mean_ms_median"`
	ServerP99Ms   float64       `json:"server_issuance_p99_ms_median"`
	AuditPerFlush float64       `json:"audit_events_per_flush_median"`
	Results       []levelResult `json:"runs_detail"`
}

func summarizeRuns(rs []levelResult) levelSummary {
	r0 := rs[0]
	s := levelSummary{Upstream: r0.Upstream, Mode: r0.Mode, Concurrency: r0.Concurrency, OfferedRate: r0.OfferedRate, Runs: len(rs), Results: rs}
	med := func(f func(levelResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	dur := func(f func(levelResult) time.Duration) time.Duration {
		return time.Duration(med(func(r levelResult) float64 { return float64(f(r)) }))
	}
	s.PerSecond = med(func(r levelResult) float64 { return r.PerSecond })
	s.PerSecondMin, s.PerSecondMax = math.Inf(1), 0
	for _, r := range rs {
		s.Errors += total(r.Errors)
		s.PerSecondMin = min(s.PerSecondMin, r.PerSecond)
		s.PerSecondMax = max(s.PerSecondMax, r.PerSecond)
		s.Max = max(s.Max, r.Latency.Max)
	}
	s.P50 = dur(func(r levelResult) time.Duration { return r.Latency.P50 })
	s.P90 = dur(func(r levelResult) time.Duration { return r.Latency.P90 })
	s.P99 = dur(func(r levelResult) time.Duration { return r.Latency.P99 })
	s.P999 = dur(func(r levelResult) time.Duration { return r.Latency.P999 })
	s.CPUPerReq = dur(func(r levelResult) time.Duration { return r.CPUPerReq })
	s.ClientCPUPerReq = dur(func(r levelResult) time.Duration { return r.ClientCPUPerReq })
	s.Cores = med(func(r levelResult) float64 { return r.Cores })
	s.OtherCores = med(func(r levelResult) float64 { return r.OtherCores })
	if t := s.CPUPerReq + s.ClientCPUPerReq; t > 0 {
		s.Ceiling = float64(runtime.NumCPU()) / t.Seconds()
	}
	s.ServerMeanMs = med(func(r levelResult) float64 { return r.Server.IssueMeanMs })
	s.ServerP99Ms = med(func(r levelResult) float64 { return r.Server.IssueP99Ms })
	s.AuditPerFlush = med(func(r levelResult) float64 { return r.Server.AuditPerFlush })
	return s
}

// median of v (v is reordered).
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func printTable(w io.Writer, ss []levelSummary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "upstream\tmode\tc\toffered/s\truns\terrors\tissuances/s\t(min–max)\tp50\tp90\tp99\tp99.9\tmax\tbroker CPU/iss.\tclient CPU/iss.\tbroker cores\tothers\tceiling/s\tsrv mean\tsrv p99≈\taudit ev/flush\t")
	for _, s := range ss {
		offered := "-"
		if s.Mode == modeOpen {
			offered = strconv.FormatFloat(s.OfferedRate, 'f', 0, 64)
		}
		client := "-"
		if s.ClientCPUPerReq > 0 {
			client = strconv.FormatInt(s.ClientCPUPerReq.Microseconds(), 10) + "µs"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%.0f\t%.0f–%.0f\t%s\t%s\t%s\t%s\t%s\t%dµs\t%s\t%.2f\t%.2f\t%.0f\t%.2fms\t%.1fms\t%.1f\t\n",
			s.Upstream, s.Mode, s.Concurrency, offered, s.Runs, s.Errors, s.PerSecond, s.PerSecondMin, s.PerSecondMax,
			ms(s.P50), ms(s.P90), ms(s.P99), ms(s.P999), ms(s.Max), s.CPUPerReq.Microseconds(), client, s.Cores, s.OtherCores, s.Ceiling,
			s.ServerMeanMs, s.ServerP99Ms, s.AuditPerFlush)
	}
	tw.Flush()
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms" }

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%q is not a positive rate", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// processCPU is this process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// cpuStat is the machine's CPU time from /proc/stat (all CPUs).
type cpuStat struct {
	busy, steal time.Duration
	ok          bool
}

// readCPUStat reads the first line of /proc/stat: user nice system idle
// iowait irq softirq steal …, in clock ticks (USER_HZ, 100 on Linux).
func readCPUStat() cpuStat {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuStat{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuStat{}
	}
	var v [8]int64
	for i := range v {
		if v[i], err = strconv.ParseInt(f[i+1], 10, 64); err != nil {
			return cpuStat{}
		}
	}
	const tick = 10 * time.Millisecond
	busy := v[0] + v[1] + v[2] + v[5] + v[6] // user nice system irq softirq
	return cpuStat{busy: time.Duration(busy) * tick, steal: time.Duration(v[7]) * tick, ok: true}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	os.Exit(2)
}
