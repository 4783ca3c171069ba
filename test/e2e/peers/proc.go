package peers

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// proc is a peer process: output appended to a log file, killed by the
// kernel if the test binary dies, stopped by PID.
type proc struct {
	cmd      *exec.Cmd
	log      *os.File
	logPath  string
	logStart int64         // the log's size when this process started
	exited   chan struct{} // closed once the process has been reaped
	waitErr  error         // valid after exited is closed
}

// startProc starts bin with args in dir, appending its output to logPath
// after a header line. env is added to the test process's environment.
func startProc(bin string, args []string, dir, logPath string, env []string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	p := &proc{log: logf, logPath: logPath, exited: make(chan struct{})}
	if fi, err := logf.Stat(); err == nil {
		p.logStart = fi.Size()
	}
	fmt.Fprintf(logf, "=== %s %s\n", bin, strings.Join(args, " "))

	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	p.cmd = cmd
	if err := StartTied(cmd, func(err error) { p.waitErr = err; close(p.exited) }); err != nil {
		close(p.exited)
		logf.Close()
		return nil, err
	}
	return p, nil
}

// StartTied starts cmd so that the kernel kills it when the test binary
// dies (panic, -timeout, ^C), and calls reaped with Wait's error once it
// has been reaped. The parent-death signal is tied to the OS thread that
// forked the child, so the child is started and reaped on a locked thread
// that lives exactly as long as the child.
func StartTied(cmd *exec.Cmd, reaped func(waitErr error)) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the runtime retires this thread when the
		// goroutine ends, after the child has been reaped.
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		reaped(cmd.Wait())
	}()
	return <-started
}

// running reports whether the process is still alive.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (p *proc) stop(grace time.Duration) {
	if p.running() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(grace):
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
	p.log.Close()
}

// output returns what the process logged (without earlier runs sharing
// the log file).
func (p *proc) output() []byte {
	b, _ := os.ReadFile(p.logPath)
	if p.logStart <= int64(len(b)) {
		b = b[p.logStart:]
	}
	return b
}

// logContains reports whether the process logged any of the markers.
func (p *proc) logContains(markers ...string) bool {
	out := p.output()
	for _, m := range markers {
		if bytes.Contains(out, []byte(m)) {
			return true
		}
	}
	return false
}

// LogTail returns the last n lines of a log file.
func LogTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pollReady polls probe every interval until it succeeds, p exits or
// timeout passes. lostRace reports from p's log whether a port was taken
// before p bound it (errBindRace). Errors start with prefix.
func pollReady(p *proc, prefix string, timeout, interval time.Duration, probe func(context.Context) error, lostRace func() bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		select {
		case <-p.exited:
			if lostRace() {
				return errBindRace
			}
			return fmt.Errorf("%sexited during start-up: %v", prefix, p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("%snot ready after %s: last error: %v", prefix, timeout, last)
		case <-time.After(interval):
		}
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		last = probe(actx)
		acancel()
		if last == nil {
			return nil
		}
		if lostRace() {
			return errBindRace
		}
	}
}
