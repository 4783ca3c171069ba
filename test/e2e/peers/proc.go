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
	*Child
	log      *os.File
	logPath  string
	logStart int64 // the log's size when this process started
}

// startProc starts bin with args in dir, appending its output to logPath
// after a header line. env is added to the test process's environment.
func startProc(bin string, args []string, dir, logPath string, env []string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	p := &proc{log: logf, logPath: logPath}
	if fi, err := logf.Stat(); err == nil {
		p.logStart = fi.Size()
	}
	fmt.Fprintf(logf, "=== %s %s\n", bin, strings.Join(args, " "))

	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	if p.Child, err = StartChild(cmd, nil); err != nil {
		logf.Close()
		return nil, err
	}
	return p, nil
}

// Child is a process that the kernel kills when the test binary dies
// (panic, -timeout, ^C), started by StartChild.
type Child struct {
	Cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has been reaped
	waitErr error         // valid after exited is closed
}

// StartChild starts cmd as a Child; reaped, if set, runs once it has been
// reaped, before Exited is closed. The parent-death signal is tied to the
// OS thread that forked the child, so the child is started and reaped on
// a locked thread that lives exactly as long as the child.
func StartChild(cmd *exec.Cmd, reaped func()) (*Child, error) {
	c := &Child{Cmd: cmd, exited: make(chan struct{})}
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
		c.waitErr = cmd.Wait()
		if reaped != nil {
			reaped()
		}
		close(c.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return c, nil
}

// Exited is closed once the process has been reaped.
func (c *Child) Exited() <-chan struct{} { return c.exited }

// WaitErr is what Wait returned; valid once Exited is closed.
func (c *Child) WaitErr() error { return c.waitErr }

// Running reports whether the process is still alive.
func (c *Child) Running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// Wait reports whether the process exits within d.
func (c *Child) Wait(d time.Duration) bool {
	select {
	case <-c.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// Stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (c *Child) Stop(grace time.Duration) {
	if c.Running() {
		c.Cmd.Process.Signal(syscall.SIGTERM)
		if !c.Wait(grace) {
			c.Cmd.Process.Kill()
			<-c.exited
		}
	}
}

// stop stops the process (Stop) and closes its log.
func (p *proc) stop(grace time.Duration) {
	p.Stop(grace)
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
		case <-p.Exited():
			if lostRace() {
				return errBindRace
			}
			return fmt.Errorf("%sexited during start-up: %v", prefix, p.WaitErr())
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
