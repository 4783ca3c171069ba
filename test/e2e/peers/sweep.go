package peers

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Temp dirs made by LaunchSeaweedFS and NewTLSIdP carry the PID of the
// process that made them. A shared peer that is never closed (no TestMain)
// dies with its test binary but leaves its dir; the next launch removes
// every such dir whose owner is gone.
const ownerFile = "owner.pid"

// makeOwnedTempDir creates a temp dir with the given prefix, marked as
// owned by this process, after sweeping stale dirs with the same prefix.
func makeOwnedTempDir(prefix string) (string, error) {
	sweepStale(prefix)
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// sweepStale removes temp dirs with prefix whose owner process has exited,
// and the SeaweedFS sockets listed in them.
func sweepStale(prefix string) {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	for _, dir := range matches {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not ours, or being created right now
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || alive(pid) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, socketsFile)); err == nil {
			for _, sock := range strings.Fields(string(b)) {
				if strings.HasPrefix(sock, "/tmp/seaweedfs-") && strings.HasSuffix(sock, ".sock") {
					os.Remove(sock)
				}
			}
		}
		os.RemoveAll(dir)
	}
}

// alive reports whether a process with this PID exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
