//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package audit

import "os"

// lockFile does nothing where flock(2) is not available: operators must
// make sure only one process writes a file.
func lockFile(*os.File) error { return nil }
