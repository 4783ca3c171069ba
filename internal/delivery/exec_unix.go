//go:build linux || darwin

package delivery

import (
	"os"
	"syscall"
	"unsafe"
)

// childProcAttr puts the child in its own process group when newGroup, and
// has the kernel kill it if keyferry dies (Linux).
func childProcAttr(newGroup bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: newGroup}
	setDeathSignal(a)
	return a
}

// signalChild sends sig to the child's process group when group (the
// child leads it), else to the child alone.
func signalChild(p *os.Process, sig os.Signal, group bool) {
	s, ok := sig.(syscall.Signal)
	if group && ok {
		if err := syscall.Kill(-p.Pid, s); err == nil {
			return
		}
		// The child left its group (setsid): signal it alone.
	}
	_ = p.Signal(sig)
}

// inForegroundOfTerminal reports whether this process has a controlling
// terminal and is in its foreground process group, i.e. whether Ctrl-C on
// that terminal reaches this process and a child in the same group.
func inForegroundOfTerminal() bool {
	f, err := os.Open("/dev/tty")
	if err != nil {
		return false // no controlling terminal: CI
	}
	defer f.Close()
	var pgrp int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(syscall.TIOCGPGRP), uintptr(unsafe.Pointer(&pgrp))); e != 0 {
		return false
	}
	return int(pgrp) == syscall.Getpgrp()
}
