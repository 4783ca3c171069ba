package server

import (
	"runtime"
	"runtime/debug"
)

// ExtraProcs is how many Ps (GOMAXPROCS) `keyferry server` runs with beyond
// Go's default, unless the GOMAXPROCS environment variable is set.
//
// The broker has two single-writer paths that fsync on every request's
// way: the bolt commit (two fdatasyncs per batch) and the audit writer (one
// fsync per flush). Go lets another thread take the P of a goroutine
// blocked in a syscall only once sysmon notices, after a full sysmon tick,
// and the tick stretches from 20 µs to 10 ms while sysmon finds nothing to
// do; an fsync of a few hundred microseconds therefore keeps its P for its
// whole length. Under load on a 2-core machine that is about one P of two.
// Measured with bench/loadgen (c=64, clients in another process, medians
// of the runs where the rest of the machine was idle): GOMAXPROCS 2 ran the
// broker on 1.23 cores at 6,295 issuances/s, 4 on 1.42 cores at 6,900/s
// with a lower p99 (docs/benchmarks.md). Two fsync paths never hold more
// than two Ps, so two extra cover them at any core count, for the price of
// two more threads.
const ExtraProcs = 2

// Procs returns the GOMAXPROCS a broker process runs with, given Go's
// default for the machine or container (runtime.SetDefaultGOMAXPROCS).
// Callers leave GOMAXPROCS alone when the operator set the variable.
// Setting it stops Go from following a container's CPU limit if that
// changes later.
func Procs(defaultProcs int) int { return defaultProcs + ExtraProcs }

// SetProcs applies Procs to this process unless getenv("GOMAXPROCS") is
// set, in which case the operator's choice stands. It is idempotent.
func SetProcs(getenv func(string) string) {
	if getenv("GOMAXPROCS") != "" {
		return
	}
	runtime.SetDefaultGOMAXPROCS()
	runtime.GOMAXPROCS(Procs(runtime.GOMAXPROCS(0)))
}

// GCPercent is the GOGC `keyferry server` runs with unless the GOGC
// environment variable is set. The broker's live heap is small (~7 MB:
// registry, compiled roles, JWKS, buffers) and its garbage is per request,
// so the default 100 collects ~90 times a second under load. At 200, in
// interleaved runs at an open-loop 3,000 issuances/s, the broker used
// 282 µs of CPU per issuance instead of 313–331 µs and the p99 was
// 8.2–8.3 ms instead of 8.5–9.4 ms; at 64 closed-loop clients it served
// 1.24× as many (docs/benchmarks.md, "Tuning knobs"). The price is a peak
// heap of about three times the live one. GOMEMLIMIT, when set,
// still bounds it.
const GCPercent = 200

// SetGC applies GCPercent to this process unless getenv("GOGC") is set.
func SetGC(getenv func(string) string) {
	if getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(GCPercent)
}
