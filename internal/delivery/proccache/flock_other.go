//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package proccache

import (
	"errors"
	"io/fs"
	"os"
)

// supported is false: without flock(2) and Unix owners the cache could
// neither keep concurrent refreshes to one nor check who may read an entry,
// so Get calls fetch every time.
const supported = false

func tryFlock(*os.File) (bool, error) { return false, errors.New("flock not supported") }

func owner(fs.FileInfo) (int, bool) { return 0, false }
