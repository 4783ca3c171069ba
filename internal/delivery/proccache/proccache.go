// Package proccache is the on-disk credential cache behind
// `keyferry credential-process`.
//
// The AWS CLI does not cache process credentials: every `aws` command runs
// the helper again, and botocore runs it again whenever less than 15 minutes
// remain (botocore's process provider refreshes at that advisory threshold;
// docs/delivery.md). Without a disk cache
// each of those runs would be one request to the broker, and N parallel `aws`
// commands would be N requests. Cache.Get serves an entry from disk while it
// is fresh and otherwise refreshes it under a per-key flock(2), so that
// concurrent processes make one upstream request between them.
//
// # Files
//
// The cache directory must be owned by the current user and have no group
// or other permission bits (it is created 0700). For each key it holds
//
//	<key>.json   the entry, 0600, replaced atomically (temp file, fsync, rename)
//	<key>.lock   the flock(2) lock file, empty
//	.tmp-<key>-* a temp file while an entry is being written
//
// Readers never lock: rename(2) makes them see either the old or the new
// entry, never a partial one. A hit costs a handful of system calls and one
// JSON decode, and starts no goroutine.
//
// # Trust
//
// Entry files hold secrets. An entry that is a symlink, not a regular file,
// not owned by the current user or readable or writable by group or others
// is not read: it counts as a miss, Cache.Warn is told why, and the refreshed
// entry replaces it. A directory that is not private makes Get fail with
// ErrUnsafeDir (see there for why it is not repaired). Each entry also
// records its own key, so an entry renamed to another key's file name is a
// miss. Nothing here writes a secret anywhere but the entry files: warnings
// and errors name files, modes and owners only.
package proccache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyferry/keyferry/internal/api"
)

// DefaultMinRemaining is the lifetime an entry must have left to be served
// from disk: botocore refreshes on every credential access below 15 minutes.
const DefaultMinRemaining = 15 * time.Minute

// DefaultLockTimeout bounds the wait for another process's refresh. The Go
// SDK kills a credential_process after one minute anyway.
const DefaultLockTimeout = 60 * time.Second

// maxEntrySize caps what is read from an entry file; real entries are < 4 KiB.
const maxEntrySize = 1 << 20

// fileVersion is the version of the on-disk format; other versions are
// misses.
const fileVersion = 1

var (
	// ErrUnsafeDir means the cache directory is not owned by the current
	// user or is accessible to group or others. Get and Delete refuse to
	// use it and leave it as it is. The directory is what makes the lock
	// protocol and the entries trustworthy: while others could write to it
	// they could have swapped lock files (breaking the one-refresh
	// guarantee) or renamed our own entries onto other keys, and the cache
	// cannot tell afterwards. keyferry never creates such a directory (it
	// creates 0700), so one is a misconfiguration worth a loud error, and
	// chmod-ing a directory an operator chose (KEYFERRY_CACHE_DIR) would
	// silently change their setup. A caller that prefers availability can
	// match this error and fetch without the cache.
	ErrUnsafeDir = errors.New("proccache: unsafe cache directory")
	// ErrLockTimeout means another process held the entry's lock for longer
	// than Cache.LockTimeout.
	ErrLockTimeout = errors.New("proccache: timed out waiting for another keyferry process to refresh the credentials")
)

// Entry is one cached credential set.
type Entry struct {
	Response api.CredsResponse `json:"response"`
	// RefreshHandle is the broker's opaque refresh handle. It is a secret.
	RefreshHandle string `json:"refresh_handle,omitempty"`
	// Identity describes what the key was derived from (see TokenIdentity);
	// it holds no secret.
	Identity string `json:"identity"`
	// StoredAt is set by Get when the entry is written.
	StoredAt time.Time `json:"stored_at"`
}

// file is the on-disk document.
type file struct {
	Version int    `json:"version"`
	Key     string `json:"key"`
	Entry   Entry  `json:"entry"`
}

// Cache is a directory of entries. The zero values of its optional fields
// select the defaults; a Cache is safe for concurrent use by goroutines and
// processes.
type Cache struct {
	// Dir is the cache directory (see DefaultDir). It is created 0700 when
	// missing.
	Dir string
	// MinRemaining is the lifetime an entry must have left to be served;
	// default DefaultMinRemaining.
	MinRemaining time.Duration
	// Now is the clock used to judge freshness; default time.Now.
	Now func() time.Time
	// LockTimeout bounds the wait for the entry's lock; default
	// DefaultLockTimeout. It is measured in real time, not with Now.
	LockTimeout time.Duration
	// Warn, if set, is called with a one-line, secret-free explanation
	// whenever a file is ignored or could not be written. The CLI prints it
	// to stderr.
	Warn func(msg string)
}

// Get returns the entry stored under key when it is fresh (hit is true).
// Otherwise it takes the key's lock, reads the entry again (another process
// may have just refreshed it: hit is then true as well), and if it is still
// not fresh calls fetch with the stored entry, or nil when there is none or
// it could not be trusted, so that fetch can use its refresh handle. The
// entry fetch returns is stored (StoredAt set) and returned, even when it
// is itself not fresh. Fetch's error is returned as is and leaves the
// stored entry untouched. Failing to store a fetched entry is only a
// warning: the entry is still returned.
//
// key must be 1–128 characters of [A-Za-z0-9_-], e.g. from Key. Get does not
// cache on platforms without flock(2): there it just calls fetch(ctx, nil).
func (c *Cache) Get(ctx context.Context, key string, fetch func(ctx context.Context, stale *Entry) (*Entry, error)) (*Entry, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	if !supported {
		e, err := fetch(ctx, nil)
		return e, false, err
	}
	if c.Dir == "" {
		return nil, false, errors.New("proccache: no cache directory")
	}

	// Fast path: no lock, no directory creation.
	root, err := c.openDir()
	switch {
	case err == nil:
		if e := c.read(root, key, true); e != nil && c.fresh(e) {
			root.Close()
			return e, true, nil
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(c.Dir, 0o700); err != nil {
			return nil, false, fmt.Errorf("proccache: create cache directory: %w", err)
		}
		if root, err = c.openDir(); err != nil {
			return nil, false, err
		}
	default:
		return nil, false, err
	}
	defer root.Close()

	// While another process refreshes, poll the entry too: once its fresh
	// entry has landed, waiters return it without queueing for the lock.
	// Warnings were given by the fast path already.
	var landed *Entry
	unlock, err := c.lock(ctx, root, key, func() bool {
		landed = c.read(root, key, false)
		return landed != nil && c.fresh(landed)
	})
	if err != nil {
		return nil, false, err
	}
	if unlock == nil {
		return landed, true, nil
	}
	defer unlock()

	// Double-checked: whoever held the lock before us may have refreshed.
	stale := c.read(root, key, false)
	if stale != nil && c.fresh(stale) {
		return stale, true, nil
	}
	e, err := fetch(ctx, stale)
	if err != nil {
		return nil, false, err
	}
	if e == nil {
		return nil, false, errors.New("proccache: fetch returned no entry")
	}
	if cr := e.Response.Credentials; cr.AccessKeyID == "" || cr.SecretAccessKey == "" {
		return nil, false, errors.New("proccache: fetch returned an entry without credentials")
	}
	out := *e
	out.StoredAt = c.now().UTC()
	if err := c.write(root, key, &out); err != nil {
		c.warn(fmt.Sprintf("could not store credentials in the cache, the next run will fetch again: %v", err))
	}
	return &out, false, nil
}

// Delete removes the entry stored under key, if any, and its lock file. It
// waits for a refresh in progress (up to LockTimeout).
func (c *Cache) Delete(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if !supported || c.Dir == "" {
		return nil
	}
	root, err := c.openDir()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer root.Close()
	unlock, err := c.lock(context.Background(), root, key, nil)
	if err != nil {
		return err
	}
	defer unlock()
	if err := root.Remove(key + ".json"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("proccache: delete entry: %w", err)
	}
	// Safe while we hold the lock: lock() re-checks the path after locking.
	if err := root.Remove(key + ".lock"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("proccache: delete lock file: %w", err)
	}
	return nil
}

// Prune removes entries (and their lock files) whose credentials expired
// more than grace ago, corrupt or untrusted entries, orphan lock files, and
// temp files left by crashed writers more than an hour old. Keys whose lock
// is held are skipped. On a shared runner, where the cache outlives jobs, the
// CLI can call it after a miss. It returns how many keys it removed.
func (c *Cache) Prune(grace time.Duration) (int, error) {
	if !supported || c.Dir == "" {
		return 0, nil
	}
	root, err := c.openDir()
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer root.Close()
	d, err := root.Open(".")
	if err != nil {
		return 0, fmt.Errorf("proccache: prune: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return 0, fmt.Errorf("proccache: prune: %w", err)
	}
	now := c.now()
	seen := map[string]bool{}
	removed := 0
	for _, name := range names {
		if strings.HasPrefix(name, ".tmp-") {
			if fi, err := root.Lstat(name); err == nil && time.Since(fi.ModTime()) > time.Hour {
				root.Remove(name)
			}
			continue
		}
		key, ok := strings.CutSuffix(name, ".json")
		if !ok {
			key, ok = strings.CutSuffix(name, ".lock")
		}
		if !ok || seen[key] || checkKey(key) != nil {
			continue
		}
		seen[key] = true
		unlock, err := c.tryLock(root, key)
		if err != nil || unlock == nil {
			continue // busy, or not ours to judge
		}
		e := c.read(root, key, false)
		if e == nil || now.Sub(e.Response.Credentials.Expiration) > grace {
			root.Remove(key + ".json")
			root.Remove(key + ".lock")
			removed++
		}
		unlock()
	}
	return removed, nil
}

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// fresh reports whether e can be served: more than MinRemaining left, or,
// for credentials that never had that much (a 15-minute session), more
// than half of their lifetime — otherwise every aws command would fetch
// new ones, since botocore re-runs the helper below 15 minutes anyway.
func (c *Cache) fresh(e *Entry) bool {
	need := c.MinRemaining
	if need <= 0 {
		need = DefaultMinRemaining
	}
	exp := e.Response.Credentials.Expiration
	if !e.StoredAt.IsZero() {
		need = min(need, exp.Sub(e.StoredAt)/2)
	}
	return exp.Sub(c.now()) > need
}

func (c *Cache) warn(msg string) {
	if c.Warn != nil {
		c.Warn(msg)
	}
}

// checkKey keeps keys to safe file names.
func checkKey(key string) error {
	if key == "" || len(key) > 128 {
		return fmt.Errorf("proccache: invalid key of length %d", len(key))
	}
	for _, r := range key {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_') {
			return errors.New("proccache: invalid character in key")
		}
	}
	return nil
}

// openDir opens the cache directory and checks that it is private. The
// check is made on the opened directory, and every later file operation is
// relative to it, so the directory cannot be swapped after the check.
func (c *Cache) openDir() (*os.Root, error) {
	root, err := os.OpenRoot(c.Dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("proccache: open cache directory: %w", err)
	}
	fi, err := root.Stat(".")
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("proccache: stat cache directory: %w", err)
	}
	if problem := c.unsafe(fi); problem != "" {
		root.Close()
		return nil, fmt.Errorf("%w: %s %s; run `chmod 700 %s` (and make sure you own it) or set KEYFERRY_CACHE_DIR", ErrUnsafeDir, c.Dir, problem, c.Dir)
	}
	return root, nil
}

// unsafe says what makes fi untrustworthy, or "" when it is not.
func (c *Cache) unsafe(fi fs.FileInfo) string {
	uid, ok := owner(fi)
	if !ok {
		return "has an unknown owner"
	}
	if want := os.Getuid(); uid != want {
		return fmt.Sprintf("is owned by uid %d, not by the current user (uid %d)", uid, want)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Sprintf("has mode %04o: group or others can access it", perm)
	}
	return ""
}

// read returns the entry stored under key, or nil when there is none or it
// cannot be trusted; then, if warn is set, Warn is told why (except for a
// missing file).
func (c *Cache) read(root *os.Root, key string, warn bool) *Entry {
	name := key + ".json"
	ignore := func(why string) *Entry {
		if warn {
			c.warn(fmt.Sprintf("ignoring cached credentials %s: %s; they will be refreshed and replaced", filepath.Join(c.Dir, name), why))
		}
		return nil
	}
	// os.Root follows symlinks that stay inside the root, so refuse them
	// here and check below that the file opened is the one examined.
	li, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return ignore(err.Error())
	}
	if li.Mode()&fs.ModeSymlink != 0 {
		return ignore("it is a symlink")
	}
	if !li.Mode().IsRegular() {
		return ignore("it is not a regular file")
	}
	if problem := c.unsafe(li); problem != "" {
		return ignore("it " + problem)
	}
	f, err := root.OpenFile(name, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed since the Lstat
	}
	if err != nil {
		return ignore(err.Error())
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ignore(err.Error())
	}
	if !os.SameFile(li, fi) {
		// Replaced between Lstat and open: by a rename from another
		// keyferry process, or by a symlink. Judge the file we opened.
		if !fi.Mode().IsRegular() {
			return ignore("it is not a regular file")
		}
		if problem := c.unsafe(fi); problem != "" {
			return ignore("it " + problem)
		}
	}
	if fi.Size() > maxEntrySize {
		return ignore("it is too large")
	}
	buf := make([]byte, fi.Size()+1) // +1 sees EOF in the first read
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return ignore(err.Error())
	}
	var doc file
	// The decode error is not quoted: it could contain file content.
	if err := json.Unmarshal(buf[:n], &doc); err != nil {
		return ignore("it is not valid JSON")
	}
	switch cr := doc.Entry.Response.Credentials; {
	case doc.Version != fileVersion:
		return ignore(fmt.Sprintf("it has format version %d, want %d", doc.Version, fileVersion))
	case doc.Key != key:
		return ignore("it belongs to another key")
	case cr.AccessKeyID == "" || cr.SecretAccessKey == "" || cr.Expiration.IsZero():
		return ignore("it is incomplete")
	}
	return &doc.Entry
}

// write stores e under key atomically: a new 0600 temp file in the same
// directory, fsync, rename over the old entry. The directory itself is not
// fsynced: after a crash the entry may be missing, which is only a miss.
func (c *Cache) write(root *os.Root, key string, e *Entry) error {
	data, err := json.Marshal(file{Version: fileVersion, Key: key, Entry: *e})
	if err != nil {
		return err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := ".tmp-" + key + "-" + hex.EncodeToString(rnd[:])
	// O_EXCL never follows a symlink.
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	// Exactly 0600 whatever the umask: a umask of 0277 would otherwise
	// leave a file we cannot read back.
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, key+".json")
	}
	if err != nil {
		root.Remove(tmp)
		return err
	}
	return nil
}

// lock takes key's exclusive lock, waiting up to LockTimeout or until ctx
// is done. It polls with LOCK_NB rather than blocking in flock(2), which
// could not be interrupted. If done is not nil and returns true while the
// lock is busy, lock gives up waiting and returns a nil unlock func and no
// error.
func (c *Cache) lock(ctx context.Context, root *os.Root, key string, done func() bool) (unlock func(), err error) {
	timeout := c.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	wait := 2 * time.Millisecond
	for {
		unlock, err := c.tryLock(root, key)
		if err != nil || unlock != nil {
			return unlock, err
		}
		if done != nil && done() {
			return nil, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("proccache: waiting for the cache lock: %w", ctx.Err())
		case <-deadline.C:
			t.Stop()
			return nil, fmt.Errorf("%w (%s)", ErrLockTimeout, timeout)
		case <-t.C:
		}
		wait = min(wait*3/2, 50*time.Millisecond)
	}
}

// tryLock takes key's lock if it is free; it returns a nil unlock func and
// no error when it is held.
func (c *Cache) tryLock(root *os.Root, key string) (unlock func(), err error) {
	name := key + ".lock"
	// Delete and Prune remove lock files while holding them, so a lock
	// taken on a file that is no longer at name excludes nobody: check, and
	// start over with the new file.
	for range 10 {
		f, err := root.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("proccache: open lock file: %w", err)
		}
		locked, err := tryFlock(f)
		if err != nil || !locked {
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("proccache: lock: %w", err)
			}
			return nil, nil
		}
		fi, err1 := f.Stat()
		li, err2 := root.Lstat(name)
		if err1 == nil && err2 == nil && li.Mode().IsRegular() && os.SameFile(fi, li) {
			return func() { f.Close() }, nil // closing releases the flock
		}
		f.Close()
		if err2 == nil && !li.Mode().IsRegular() {
			return nil, fmt.Errorf("proccache: lock file %s is not a regular file", filepath.Join(c.Dir, name))
		}
	}
	return nil, errors.New("proccache: lock file keeps changing")
}
