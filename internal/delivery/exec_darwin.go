package delivery

import "syscall"

// setDeathSignal does nothing: macOS has no parent-death signal.
func setDeathSignal(*syscall.SysProcAttr) {}
