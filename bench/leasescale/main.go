// Command leasescale measures how keyferry's lease lifecycle scales with
// the number of leases:
//
//	leasescale populate -n 1000000 -db /var/tmp/kf-1m/keyferry.db
//	leasescale restart  -db /var/tmp/kf-1m/keyferry.db -runs 5 -idle 30s [-cold]
//	leasescale startprof -db /var/tmp/kf-1m/keyferry.db -cpuprofile start.prof
//	leasescale drain    -leases 10000 -workers 64 -rps 100000
//	leasescale drain    -leases 1000 -iam-writes 20
//	leasescale inspect  -db /var/tmp/kf-1m/keyferry.db
//
// populate fills a bolt file with N live leases (a mix of assume_role and
// iam_user, GitLab-shaped identities and claims, expiries spread over the
// next 1–12 h) through lease.Seed, which writes exactly what issuance
// writes, and initialises the store as `keyferry server init` does. It is
// setup and is not measured.
//
// restart starts the real broker (bin/keyferry server) on that file,
// measures the wall time from exec to the first 200 from /readyz, and reads
// the process's resident memory from /proc/<pid>/status when it is ready
// and again after an idle period with the lifecycle running. With -cold it
// drops the page cache before each start (root only).
//
// drain runs a lease.Lifecycle in this process on a durable bolt store and
// an fsync'd audit log, with N iam_user leases that all expire in the same
// second, against an IAM optionally limited to a number of writes per
// second: the real AWS provider against testutil's fake IAM over loopback
// (-iam fake), or an in-memory one with no latency (-iam mem). It reports
// the lag from each lease's expiry to its revocation, the drain rate, the
// attempts per lease, the IAM calls and the keyferry_revocation_backlog
// gauge sampled every second.
//
// inspect prints bbolt's view of a file: pages, keys and free pages.
//
// Results go to stdout as text (or JSON with -json); progress to stderr.
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/keyferry/keyferry/bench/internal/host"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "populate":
		err = runPopulate(args)
	case "restart":
		err = runRestart(args)
	case "startprof":
		err = runStartProf(args)
	case "drain":
		err = runDrain(args)
	case "inspect":
		err = runInspect(args)
	case "-h", "-help", "--help", "help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "leasescale: unknown command %q\n", cmd)
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "leasescale %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: leasescale <command> [flags]   (leasescale <command> -h for flags)

  populate   write N live leases into a new bolt file and initialise it (setup, not measured)
  restart    start bin/keyferry server on that file: time to ready, RSS when ready and after idling
  startprof  run the server in this process until ready, with a CPU profile of the start-up
  drain      N iam_user leases expire in the same second: lag from expiry to revocation, backlog
  inspect    bbolt's view of a file: pages, keys, free pages
`)
}

// machine describes the machine and its load, for the report.
func machine() string {
	return fmt.Sprintf("%d CPUs (%s), %s, load average %s", runtime.NumCPU(), host.CPUModel(), runtime.Version(), host.LoadAvg())
}
