package delivery

import "syscall"

// setDeathSignal kills the child if keyferry dies, so a SIGKILLed keyferry
// does not leave a tool running without its credential endpoint.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
