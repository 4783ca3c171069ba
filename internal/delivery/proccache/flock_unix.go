//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package proccache

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// supported reports whether this platform has flock(2) and Unix owners.
const supported = true

// tryFlock takes an exclusive flock(2) on f without blocking. flock locks
// belong to the open file description, so two opens in one process exclude
// each other too.
func tryFlock(f *os.File) (bool, error) {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, nil
		case errors.Is(err, syscall.EINTR):
			continue
		default:
			return false, err
		}
	}
}

// owner returns the uid that owns fi.
func owner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
