package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keyferry/keyferry/bench/internal/host"
	"github.com/keyferry/keyferry/internal/config"
	"github.com/keyferry/keyferry/internal/server"
)

// restartRun is one start of the broker.
type restartRun struct {
	Run  int  `json:"run"`
	Cold bool `json:"cold"` // page cache dropped before the start
	// Ready is the wall time from exec to the first 200 from /readyz.
	Ready time.Duration `json:"ready_ns"`
	// Memory from /proc/<pid>/status when ready and after the idle period
	// (kB). RssFile is mostly bbolt's mmap of the database file.
	Mem  procMem `json:"mem_ready"`
	Idle procMem `json:"mem_idle"`
	// IdleCPU is the CPU the process used while idle.
	IdleCPU time.Duration `json:"idle_cpu_ns"`
	// HeapInuse is go_memstats_heap_inuse_bytes from /metrics when ready.
	HeapInuse float64       `json:"heap_inuse_bytes"`
	Stop      time.Duration `json:"stop_ns"` // SIGTERM to exit
}

// procMem is from /proc/<pid>/status, in kB.
type procMem struct {
	VmRSS, RssAnon, RssFile, VmHWM int64
}

type restartOptions struct {
	db, bin string
	runs    int
	idle    time.Duration
	cold    bool
	jsonOut bool
}

func runRestart(args []string) error {
	fs := flag.NewFlagSet("restart", flag.ExitOnError)
	var o restartOptions
	fs.StringVar(&o.db, "db", "", "bolt file made by leasescale populate")
	fs.StringVar(&o.bin, "bin", "bin/keyferry", "the keyferry binary (make build)")
	fs.IntVar(&o.runs, "runs", 5, "starts; the report shows medians")
	fs.DurationVar(&o.idle, "idle", 30*time.Second, "how long each started broker idles (lifecycle running) before its memory is read again and it is stopped")
	fs.BoolVar(&o.cold, "cold", false, "drop the page cache before each start (echo 3 > /proc/sys/vm/drop_caches; root only)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the runs as JSON")
	fs.Parse(args)
	if o.db == "" || o.runs < 1 || o.idle < 0 {
		return errors.New("need -db, -runs ≥ 1, -idle ≥ 0")
	}
	db, err := filepath.Abs(o.db)
	if err != nil {
		return err
	}
	meta, err := readMeta(db)
	if err != nil {
		return err
	}
	fi, err := os.Stat(db)
	if err != nil {
		return err
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%w: build it with make build", err)
	}
	if time.Now().After(meta.ExpiryFrom) {
		fmt.Fprintf(os.Stderr, "restart: WARNING: leases began expiring at %s: the broker now has revocation work at start-up\n", meta.ExpiryFrom.Format(time.RFC3339))
	}
	if o.cold {
		if err := dropCaches(); err != nil {
			return fmt.Errorf("cannot drop the page cache (-cold): %w", err)
		}
	}
	mode := "warm (page cache as left by the previous run)"
	if o.cold {
		mode = "cold (page cache dropped before each start)"
	}
	fmt.Fprintf(os.Stderr, "restart: %s, %d leases, file %.1f MB; %d starts, %v idle each, %s\nmachine: %s\n",
		db, meta.Leases, float64(fi.Size())/1e6, o.runs, o.idle, mode, machine())

	var runs []restartRun
	for i := 1; i <= o.runs; i++ {
		r, err := restartOnce(o, bin, filepath.Join(filepath.Dir(db), configFile), i)
		if err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		fmt.Fprintf(os.Stderr, "  run %d: ready in %v, RSS %d kB (anon %d, file %d), heap in use %.1f MB; after %v idle: RSS %d kB (anon %d, file %d), %v CPU; stop %v; load %s\n",
			i, r.Ready.Round(100*time.Microsecond), r.Mem.VmRSS, r.Mem.RssAnon, r.Mem.RssFile, r.HeapInuse/1e6,
			o.idle, r.Idle.VmRSS, r.Idle.RssAnon, r.Idle.RssFile, r.IdleCPU.Round(time.Millisecond), r.Stop.Round(time.Millisecond), host.LoadAvg())
		runs = append(runs, r)
	}
	if o.jsonOut {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{"db": db, "db_bytes": fi.Size(), "meta": meta, "cold": o.cold, "runs": runs})
	}
	med := func(f func(restartRun) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2] // the median for odd counts, the upper median for even
	}
	fmt.Printf("leases %d, file %.1f MB, %s, %d starts: ready median %.1f ms (min %.1f, max %.1f); RSS when ready %.1f MB (anon %.1f, file %.1f), after %v idle %.1f MB (anon %.1f, file %.1f), idle CPU %.0f ms; heap in use %.1f MB\n",
		meta.Leases, float64(fi.Size())/1e6, map[bool]string{true: "cold", false: "warm"}[o.cold], len(runs),
		med(func(r restartRun) float64 { return ms(r.Ready) }), minOf(runs, func(r restartRun) float64 { return ms(r.Ready) }), -minOf(runs, func(r restartRun) float64 { return -ms(r.Ready) }),
		med(func(r restartRun) float64 { return float64(r.Mem.VmRSS) / 1024 }), med(func(r restartRun) float64 { return float64(r.Mem.RssAnon) / 1024 }), med(func(r restartRun) float64 { return float64(r.Mem.RssFile) / 1024 }),
		o.idle, med(func(r restartRun) float64 { return float64(r.Idle.VmRSS) / 1024 }), med(func(r restartRun) float64 { return float64(r.Idle.RssAnon) / 1024 }), med(func(r restartRun) float64 { return float64(r.Idle.RssFile) / 1024 }),
		med(func(r restartRun) float64 { return ms(r.IdleCPU) }), med(func(r restartRun) float64 { return r.HeapInuse / 1e6 }))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func minOf(runs []restartRun, f func(restartRun) float64) float64 {
	m := f(runs[0])
	for _, r := range runs[1:] {
		m = min(m, f(r))
	}
	return m
}

// restartOnce starts the broker, waits for readiness, reads its memory,
// lets it idle, reads its memory again and stops it.
func restartOnce(o restartOptions, bin, cfgPath string, i int) (restartRun, error) {
	r := restartRun{Run: i, Cold: o.cold}
	if o.cold {
		if err := dropCaches(); err != nil {
			return r, err
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return r, err
	}
	logf, err := os.Create(filepath.Join(filepath.Dir(cfgPath), fmt.Sprintf("server-%d.log", i)))
	if err != nil {
		return r, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "server", "--config", cfgPath, "--listen", addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The broker's environment minus anything that would change how it
	// starts (GOMAXPROCS, GOGC, GODEBUG are left as the caller set them).
	cmd.Env = os.Environ()

	client := &http.Client{Timeout: time.Second}
	url := "http://" + addr + "/readyz"
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return r, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() time.Duration {
		t := time.Now()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		return time.Since(t)
	}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				r.Ready = time.Since(start)
				break
			}
		}
		select {
		case err := <-exited:
			return r, fmt.Errorf("broker exited before it was ready (%v); see %s", err, logf.Name())
		case <-time.After(2 * time.Millisecond):
		}
		if time.Since(start) > 10*time.Minute {
			stop()
			return r, errors.New("not ready after 10 minutes")
		}
	}
	pid := cmd.Process.Pid
	if r.Mem, err = readProcMem(pid); err != nil {
		stop()
		return r, err
	}
	r.HeapInuse = scrapeGauge(client, "http://"+addr+"/metrics", "go_memstats_heap_inuse_bytes")
	cpu0 := procCPU(pid)
	time.Sleep(o.idle)
	r.IdleCPU = procCPU(pid) - cpu0
	if r.Idle, err = readProcMem(pid); err != nil {
		stop()
		return r, err
	}
	r.Stop = stop()
	return r, nil
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// dropCaches writes back dirty pages and drops the page cache, dentries
// and inodes.
func dropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}

func readProcMem(pid int) (procMem, error) {
	var m procMem
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return m, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			m.VmRSS = n
		case "RssAnon":
			m.RssAnon = n
		case "RssFile":
			m.RssFile = n
		case "VmHWM":
			m.VmHWM = n
		}
	}
	return m, sc.Err()
}

// procCPU is a process's user+system time from /proc/<pid>/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at ")".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)            // utime: field 14
	st, _ := strconv.ParseInt(f[12], 10, 64)            // stime: field 15
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

// scrapeGauge reads one unlabelled sample from a Prometheus text page (0
// if absent).
func scrapeGauge(c *http.Client, url, name string) float64 {
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// runStartProf runs server.Run in this process on a populated store until
// /readyz answers 200, with a CPU profile of that start-up, to find what a
// start costs. The binary's own start is what restart measures; this is
// the same code in a process that can be profiled.
func runStartProf(args []string) error {
	fs := flag.NewFlagSet("startprof", flag.ExitOnError)
	db := fs.String("db", "", "bolt file made by leasescale populate")
	cpuprofile := fs.String("cpuprofile", "start.prof", "CPU profile output")
	fs.Parse(args)
	if *db == "" {
		return errors.New("need -db")
	}
	abs, err := filepath.Abs(*db)
	if err != nil {
		return err
	}
	cfg, err := config.Load(filepath.Join(filepath.Dir(abs), configFile), os.Getenv)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cfg.Listen = ln.Addr().String()
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	pf, err := os.Create(*cpuprofile)
	if err != nil {
		return err
	}
	defer pf.Close()
	server.SetProcs(os.Getenv)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := pprof.StartCPUProfile(pf); err != nil {
		return err
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, cfg, server.Options{Listener: ln}) }()
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get("http://" + cfg.Listen + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			pprof.StopCPUProfile()
			return fmt.Errorf("server stopped before it was ready: %v", err)
		case <-time.After(2 * time.Millisecond):
		}
	}
	took := time.Since(start)
	pprof.StopCPUProfile()
	cancel()
	<-done
	fmt.Printf("in-process start-up to ready: %v; CPU profile in %s (go tool pprof -top %s)\n", took.Round(100*time.Microsecond), *cpuprofile, *cpuprofile)
	return nil
}
