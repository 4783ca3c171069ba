//go:build !linux && !darwin

package delivery

import (
	"os"
	"syscall"
)

func childProcAttr(bool) *syscall.SysProcAttr { return nil }

// signalChild delivers what the platform can. Windows can only kill; a
// console Ctrl-C reaches every process on the console by itself.
func signalChild(p *os.Process, sig os.Signal, _ bool) {
	if sig == syscall.SIGKILL {
		_ = p.Kill()
		return
	}
	_ = p.Signal(sig)
}

func inForegroundOfTerminal() bool { return false }
