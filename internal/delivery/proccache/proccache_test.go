package proccache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/testutil"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// entry returns an entry whose credentials expire at exp.
func entry(akid string, exp time.Time) *Entry {
	return &Entry{
		Response: api.CredsResponse{LeaseID: "lease-" + akid, Role: "deploy", Credentials: api.Credentials{
			AccessKeyID: akid, SecretAccessKey: "secret-" + akid, SessionToken: "session-" + akid, Expiration: exp,
		}},
		RefreshHandle: "handle-" + akid,
		Identity:      "https://gitlab.example|project_path:g/p:ref_type:branch:ref:main|job:1",
	}
}

// recorder is a fetch func that counts its calls, records the stale entry
// it was given, and returns entries named A, B, C…
type recorder struct {
	clock *testutil.Clock
	ttl   time.Duration
	err   error
	calls atomic.Int32
	stale []*Entry
	mu    sync.Mutex
}

func (r *recorder) fetch(_ context.Context, stale *Entry) (*Entry, error) {
	n := r.calls.Add(1)
	r.mu.Lock()
	r.stale = append(r.stale, stale)
	r.mu.Unlock()
	if r.err != nil {
		return nil, r.err
	}
	ttl := r.ttl
	if ttl == 0 {
		ttl = time.Hour
	}
	return entry(string(rune('A'+n-1)), r.clock.Now().Add(ttl)), nil
}

type fixture struct {
	c     *Cache
	clock *testutil.Clock
	rec   *recorder
	warns *[]string
	key   string
	path  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clk := testutil.NewClock(t0)
	var warns []string
	var mu sync.Mutex
	dir := filepath.Join(t.TempDir(), "creds")
	c := &Cache{Dir: dir, Now: clk.Now, Warn: func(m string) { mu.Lock(); warns = append(warns, m); mu.Unlock() }}
	key := Key("https://broker.example", "deploy", "id")
	return &fixture{c: c, clock: clk, rec: &recorder{clock: clk}, warns: &warns, key: key, path: filepath.Join(dir, key+".json")}
}

func (f *fixture) get(t *testing.T) (*Entry, bool) {
	t.Helper()
	e, hit, err := f.c.Get(context.Background(), f.key, f.rec.fetch)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return e, hit
}

// getWant gets the entry and fails unless it is akid's, from the cache
// (a hit) or fetched.
func (f *fixture) getWant(t *testing.T, akid string, hit bool) *Entry {
	t.Helper()
	e, got := f.get(t)
	if got != hit || e.Response.Credentials.AccessKeyID != akid {
		t.Fatalf("got %s hit=%v, want %s hit=%v", e.Response.Credentials.AccessKeyID, got, akid, hit)
	}
	return e
}

// openRoot opens the cache directory as the cache does; it is closed when
// the test ends.
func (f *fixture) openRoot(t *testing.T) *os.Root {
	t.Helper()
	root, err := os.OpenRoot(f.c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return root
}

// lock takes key's lock, as another process would, and returns its unlock.
func (f *fixture) lock(t *testing.T, root *os.Root, key string) func() {
	t.Helper()
	unlock, err := f.c.tryLock(root, key)
	if err != nil || unlock == nil {
		t.Fatalf("tryLock: %v", err)
	}
	return unlock
}

// wantWarningsWithout fails if a warning holds one of secrets.
func (f *fixture) wantWarningsWithout(t *testing.T, secrets ...string) {
	t.Helper()
	for _, w := range *f.warns {
		for _, secret := range secrets {
			if strings.Contains(w, secret) {
				t.Errorf("warning %q holds %q, want no secrets nor file content", w, secret)
			}
		}
	}
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

func TestGetMissThenHit(t *testing.T) {
	f := newFixture(t)
	e, hit := f.get(t)
	if hit || e.Response.Credentials.AccessKeyID != "A" || f.rec.calls.Load() != 1 {
		t.Fatalf("got %s hit=%v after %d fetches, want A hit=false after 1", e.Response.Credentials.AccessKeyID, hit, f.rec.calls.Load())
	}
	if f.rec.stale[0] != nil {
		t.Errorf("got stale entry %+v on an empty cache, want nil", f.rec.stale[0])
	}
	if !e.StoredAt.Equal(t0) {
		t.Errorf("got StoredAt %v, want %v", e.StoredAt, t0)
	}
	if m := mode(t, f.c.Dir); m.Perm() != 0o700 || !m.IsDir() {
		t.Errorf("got directory mode %v, want drwx------", m)
	}
	if m := mode(t, f.path); m != 0o600 {
		t.Errorf("got entry mode %v, want -rw-------", m)
	}
	e2, hit := f.get(t)
	if !hit || e2.Response.Credentials.AccessKeyID != "A" || f.rec.calls.Load() != 1 {
		t.Fatalf("got %s hit=%v after %d fetches, want A hit=true after 1", e2.Response.Credentials.AccessKeyID, hit, f.rec.calls.Load())
	}
	if e2.RefreshHandle != "handle-A" || e2.Identity != e.Identity || e2.Response != e.Response {
		t.Errorf("got %+v from disk, want %+v", e2, e)
	}
	if len(*f.warns) != 0 {
		t.Errorf("got warnings %q, want none", *f.warns)
	}
}

func TestFreshness(t *testing.T) {
	tests := []struct {
		name    string
		left    time.Duration // lifetime left when read
		minimum time.Duration
		hit     bool
	}{
		{"one hour left", time.Hour, 0, true},
		{"just over 15m", 15*time.Minute + time.Second, 0, true},
		{"exactly 15m", 15 * time.Minute, 0, false},
		{"10m left", 10 * time.Minute, 0, false},
		{"expired", -time.Minute, 0, false},
		{"custom minimum, fresh", 6 * time.Minute, 5 * time.Minute, true},
		{"custom minimum, stale", 5 * time.Minute, 5 * time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.c.MinRemaining = tt.minimum
			f.get(t) // stores A, valid for one hour
			f.clock.Advance(time.Hour - tt.left)
			e, hit := f.get(t)
			if hit != tt.hit {
				t.Fatalf("got hit=%v, want %v", hit, tt.hit)
			}
			if !tt.hit {
				if e.Response.Credentials.AccessKeyID != "B" {
					t.Errorf("got %s, want the refreshed B", e.Response.Credentials.AccessKeyID)
				}
				if s := f.rec.stale[1]; s == nil || s.Response.Credentials.AccessKeyID != "A" || s.RefreshHandle != "handle-A" {
					t.Errorf("got stale entry %+v, want A with its refresh handle", s)
				}
			}
		})
	}
}

func TestStaleEntryIsReplaced(t *testing.T) {
	f := newFixture(t)
	f.get(t)
	f.clock.Advance(50 * time.Minute)
	f.getWant(t, "B", false)
	f.getWant(t, "B", true) // the stored B
}

// A role whose credentials live less than MinRemaining is stored (for its
// refresh handle) but refreshed on every run: the broker must issue more.
// TestShortLivedEntryIsRefetchedPastHalfLife: an entry with less than
// MinRemaining from the start is served for half its life, then refetched
// with its refresh handle.
func TestShortLivedEntryIsRefetchedPastHalfLife(t *testing.T) {
	f := newFixture(t)
	f.rec.ttl = 12 * time.Minute
	f.get(t)
	if _, hit := f.get(t); !hit {
		t.Fatal("a fresh 12-minute entry was not served from the cache")
	}
	f.clock.Advance(7 * time.Minute)
	e, hit := f.get(t)
	if hit || f.rec.calls.Load() != 2 {
		t.Fatalf("got hit=%v after %d fetches, want a miss after 2", hit, f.rec.calls.Load())
	}
	if s := f.rec.stale[1]; s == nil || s.RefreshHandle != "handle-A" {
		t.Errorf("got stale %+v, want A's refresh handle", s)
	}
	if e.Response.Credentials.AccessKeyID != "B" {
		t.Errorf("got %s, want B", e.Response.Credentials.AccessKeyID)
	}
}

func TestFetchErrorLeavesEntryUntouched(t *testing.T) {
	f := newFixture(t)
	f.get(t)
	before, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(50 * time.Minute)
	want := errors.New("broker said: job token rejected (403)")
	f.rec.err = want
	e, hit, err := f.c.Get(context.Background(), f.key, f.rec.fetch)
	if err != want || e != nil || hit {
		t.Fatalf("got (%v, %v, %v), want (nil, false, the fetch error as is)", e, hit, err)
	}
	after, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("entry changed after a failed fetch")
	}
	if s := f.rec.stale[1]; s == nil || s.RefreshHandle != "handle-A" {
		t.Errorf("got stale %+v, want A", s)
	}
}

func TestBadFetchResultIsAnError(t *testing.T) {
	tests := []struct {
		name string
		e    *Entry
	}{
		{"nil entry", nil},
		{"no access key", &Entry{Response: api.CredsResponse{Credentials: api.Credentials{SecretAccessKey: "s", Expiration: t0.Add(time.Hour)}}}},
		{"no secret key", &Entry{Response: api.CredsResponse{Credentials: api.Credentials{AccessKeyID: "A", Expiration: t0.Add(time.Hour)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			_, _, err := f.c.Get(context.Background(), f.key, func(context.Context, *Entry) (*Entry, error) { return tt.e, nil })
			if err == nil {
				t.Fatal("got no error, want one")
			}
			if _, err := os.Lstat(f.path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("got %v for the entry file, want it not stored", err)
			}
		})
	}
}

func TestCorruptEntryIsAMiss(t *testing.T) {
	valid := func(mut func(*file)) []byte {
		doc := file{Version: fileVersion, Entry: *entry("X", t0.Add(time.Hour))}
		doc.Key = Key("https://broker.example", "deploy", "id")
		mut(&doc)
		b, _ := json.Marshal(doc)
		return b
	}
	full := valid(func(*file) {})
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not JSON", []byte("secret-X is not json")},
		{"truncated", full[:len(full)/2]},
		{"JSON array", []byte("[1,2]")},
		{"trailing garbage", append(append([]byte{}, full...), "}x"...)},
		{"other version", valid(func(d *file) { d.Version = 2 })},
		{"other key", valid(func(d *file) { d.Key = Key("other") })},
		{"no secret", valid(func(d *file) { d.Entry.Response.Credentials.SecretAccessKey = "" })},
		{"no expiration", valid(func(d *file) { d.Entry.Response.Credentials.Expiration = time.Time{} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if err := os.MkdirAll(f.c.Dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f.path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			f.getWant(t, "A", false)
			if f.rec.stale[0] != nil {
				t.Errorf("got stale %+v, want nil for a corrupt entry", f.rec.stale[0])
			}
			if len(*f.warns) != 1 {
				t.Errorf("got warnings %q, want one", *f.warns)
			}
			f.wantWarningsWithout(t, "secret-X")
			if _, hit := f.get(t); !hit {
				t.Errorf("got a miss after the entry was rewritten, want a hit")
			}
		})
	}
}

func TestEntryOpenToOthersIsIgnoredAndReplaced(t *testing.T) {
	for _, perm := range []fs.FileMode{0o644, 0o640, 0o604, 0o660, 0o606} {
		t.Run(perm.String(), func(t *testing.T) {
			f := newFixture(t)
			f.get(t)
			if err := os.Chmod(f.path, perm); err != nil {
				t.Fatal(err)
			}
			f.getWant(t, "B", false)
			if f.rec.stale[1] != nil {
				t.Errorf("got stale %+v, want nil: the file's content must not be trusted", f.rec.stale[1])
			}
			if len(*f.warns) != 1 || !strings.Contains((*f.warns)[0], f.path) || !strings.Contains((*f.warns)[0], "group or others") {
				t.Errorf("got warnings %q, want one naming %s and the problem", *f.warns, f.path)
			}
			f.wantWarningsWithout(t, "secret-", "handle-")
			if m := mode(t, f.path); m != 0o600 {
				t.Errorf("got mode %v after the refresh, want -rw-------", m)
			}
		})
	}
}

func TestEntryOwnedByAnotherUserIsIgnored(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to chown")
	}
	f := newFixture(t)
	f.get(t)
	if err := os.Chown(f.path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	f.getWant(t, "B", false)
	if f.rec.stale[1] != nil {
		t.Fatalf("got stale %+v, want nil", f.rec.stale[1])
	}
	if len(*f.warns) != 1 || !strings.Contains((*f.warns)[0], "owned by uid 65534") {
		t.Errorf("got warnings %q, want one about the owner", *f.warns)
	}
	fi, err := os.Stat(f.path)
	if err != nil {
		t.Fatal(err)
	}
	if uid, _ := owner(fi); uid != os.Getuid() {
		t.Errorf("got owner %d after the refresh, want %d", uid, os.Getuid())
	}
}

func TestSymlinkedEntryIsRefused(t *testing.T) {
	for _, where := range []string{"inside", "outside"} {
		t.Run(where, func(t *testing.T) {
			f := newFixture(t)
			f.get(t)
			// A perfectly valid, private entry, reached through a symlink.
			target := filepath.Join(t.TempDir(), "target.json")
			if where == "inside" {
				target = filepath.Join(f.c.Dir, "target.json")
			}
			if err := os.Rename(f.path, target); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, f.path); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(target)
			f.getWant(t, "B", false)
			if f.rec.stale[1] != nil {
				t.Fatalf("got stale %+v, want nil", f.rec.stale[1])
			}
			if len(*f.warns) != 1 || !strings.Contains((*f.warns)[0], "symlink") {
				t.Errorf("got warnings %q, want one about the symlink", *f.warns)
			}
			if m := mode(t, f.path); m != 0o600 {
				t.Errorf("got %v at the entry path, want a regular 0600 file replacing the link", m)
			}
			if after, _ := os.ReadFile(target); !bytes.Equal(before, after) {
				t.Errorf("the symlink's target was written to")
			}
		})
	}
}

// A directory at the entry's path cannot be read nor replaced: the fetched
// entry is still returned, with warnings.
func TestUnwritableEntryStillReturnsFetched(t *testing.T) {
	f := newFixture(t)
	if err := os.MkdirAll(filepath.Join(f.path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	f.getWant(t, "A", false)
	if len(*f.warns) != 2 || !strings.Contains((*f.warns)[1], "could not store") {
		t.Errorf("got warnings %q, want one for the read and one for the write", *f.warns)
	}
	names, _ := os.ReadDir(f.c.Dir)
	for _, n := range names {
		if strings.HasPrefix(n.Name(), ".tmp-") {
			t.Errorf("temp file %s left behind", n.Name())
		}
	}
}

func TestUnsafeDirectoryIsRefused(t *testing.T) {
	tests := []struct {
		name  string
		perm  fs.FileMode
		chown bool
	}{
		{"0755", 0o755, false},
		{"0750", 0o750, false},
		{"0701", 0o701, false},
		{"0777", 0o777, false},
		{"other owner", 0o700, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.get(t)
			if tt.chown {
				if os.Getuid() != 0 {
					t.Skip("needs root to chown")
				}
				if err := os.Chown(f.c.Dir, 65534, 65534); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(f.c.Dir, tt.perm); err != nil {
				t.Fatal(err)
			}
			// Even a fresh entry is not served from an unsafe directory.
			e, _, err := f.c.Get(context.Background(), f.key, f.rec.fetch)
			if !errors.Is(err, ErrUnsafeDir) || e != nil {
				t.Fatalf("got (%v, %v), want ErrUnsafeDir", e, err)
			}
			if !strings.Contains(err.Error(), f.c.Dir) || !strings.Contains(err.Error(), "chmod 700") {
				t.Errorf("got %q, want the directory and the fix named", err)
			}
			if n := f.rec.calls.Load(); n != 1 {
				t.Errorf("got %d fetches, want none after the first", n-1)
			}
			if m := mode(t, f.c.Dir); m.Perm() != tt.perm {
				t.Errorf("got directory mode %v, want it left at %v", m.Perm(), tt.perm)
			}
			if err := f.c.Delete(f.key); !errors.Is(err, ErrUnsafeDir) {
				t.Errorf("got Delete error %v, want ErrUnsafeDir", err)
			}
		})
	}
}

func TestInvalidKey(t *testing.T) {
	f := newFixture(t)
	for _, key := range []string{"", "../x", "a/b", "a.json", strings.Repeat("a", 129), "a b", "ключ"} {
		if _, _, err := f.c.Get(context.Background(), key, f.rec.fetch); err == nil {
			t.Errorf("Get(%q): got no error, want one", key)
		}
		if err := f.c.Delete(key); err == nil {
			t.Errorf("Delete(%q): got no error, want one", key)
		}
	}
	if f.rec.calls.Load() != 0 {
		t.Errorf("got %d fetches, want none", f.rec.calls.Load())
	}
}

func TestNoDirectory(t *testing.T) {
	c := &Cache{}
	if _, _, err := c.Get(context.Background(), Key("k"), (&recorder{clock: testutil.NewClock(t0)}).fetch); err == nil {
		t.Fatal("got no error for an empty Dir, want one")
	}
}

func TestDelete(t *testing.T) {
	f := newFixture(t)
	if err := f.c.Delete(f.key); err != nil {
		t.Fatalf("Delete with no directory: %v", err)
	}
	f.get(t)
	if err := f.c.Delete(f.key); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{f.key + ".json", f.key + ".lock"} {
		if _, err := os.Lstat(filepath.Join(f.c.Dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("got %v for %s, want it removed", err, name)
		}
	}
	if _, hit := f.get(t); hit {
		t.Errorf("got a hit after Delete, want a miss")
	}
	if err := f.c.Delete(f.key); err != nil {
		t.Fatal(err)
	}
}

func TestPrune(t *testing.T) {
	f := newFixture(t)
	keys := map[string]time.Duration{ // key → lifetime
		Key("live"):     time.Hour,
		Key("expired"):  time.Minute,
		Key("graceful"): 50 * time.Minute,
	}
	for key, ttl := range keys {
		_, _, err := f.c.Get(context.Background(), key, func(context.Context, *Entry) (*Entry, error) {
			return entry(key[:4], t0.Add(ttl)), nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	corrupt := Key("corrupt")
	os.WriteFile(filepath.Join(f.c.Dir, corrupt+".json"), []byte("{"), 0o600)
	orphan := Key("orphan")
	os.WriteFile(filepath.Join(f.c.Dir, orphan+".lock"), nil, 0o600)
	oldTmp := filepath.Join(f.c.Dir, ".tmp-x-1")
	os.WriteFile(oldTmp, nil, 0o600)
	os.Chtimes(oldTmp, time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour))
	newTmp := filepath.Join(f.c.Dir, ".tmp-x-2")
	os.WriteFile(newTmp, nil, 0o600)

	// A held lock protects even an expired entry.
	busy := Key("busy")
	f.c.Get(context.Background(), busy, func(context.Context, *Entry) (*Entry, error) { return entry("busy", t0), nil })
	defer f.lock(t, f.openRoot(t), busy)()

	f.clock.Set(t0.Add(time.Hour + time.Minute)) // "graceful" expired 11m ago
	n, err := f.c.Prune(15 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("got %d keys pruned, want 3 (expired, corrupt, orphan)", n)
	}
	exists := func(name string) bool { _, err := os.Lstat(filepath.Join(f.c.Dir, name)); return err == nil }
	for name, want := range map[string]bool{
		Key("live") + ".json": true, Key("graceful") + ".json": true, busy + ".json": true,
		Key("expired") + ".json": false, Key("expired") + ".lock": false,
		corrupt + ".json": false, orphan + ".lock": false, ".tmp-x-1": false, ".tmp-x-2": true,
	} {
		if got := exists(name); got != want {
			t.Errorf("%s: got exists=%v, want %v", name, got, want)
		}
	}
}

func TestLockTimeoutAndCancel(t *testing.T) {
	f := newFixture(t)
	f.get(t)
	f.clock.Advance(50 * time.Minute)
	defer f.lock(t, f.openRoot(t), f.key)()

	f.c.LockTimeout = 20 * time.Millisecond
	if _, _, err := f.c.Get(context.Background(), f.key, f.rec.fetch); !errors.Is(err, ErrLockTimeout) {
		t.Errorf("got %v, want ErrLockTimeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.c.LockTimeout = time.Hour
	if _, _, err := f.c.Get(ctx, f.key, f.rec.fetch); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if n := f.rec.calls.Load(); n != 1 {
		t.Errorf("got %d fetches, want none while the lock is held", n-1)
	}
	// The hit path takes no lock.
	f.clock.Advance(-50 * time.Minute)
	if _, hit := f.get(t); !hit {
		t.Errorf("got a miss, want a hit while another process holds the lock")
	}
}

// A lock file removed and recreated by Delete while we wait must not let
// two holders in.
func TestLockSurvivesLockFileReplacement(t *testing.T) {
	f := newFixture(t)
	f.get(t)
	root := f.openRoot(t)
	unlock := f.lock(t, root, f.key)
	// Unlink the held lock file: a new opener gets a new inode and must
	// hold a lock on the file that is at the path.
	lockPath := filepath.Join(f.c.Dir, f.key+".lock")
	if err := os.Remove(lockPath); err != nil {
		t.Fatal(err)
	}
	unlock2, err := f.c.tryLock(root, f.key)
	if err != nil || unlock2 == nil {
		t.Fatalf("tryLock on the new file: %v", err)
	}
	unlock()
	unlock3, err := f.c.tryLock(root, f.key)
	if err != nil || unlock3 != nil {
		t.Fatalf("got a second holder (err %v), want the lock busy", err)
	}
	unlock2()
}

func TestConcurrentGoroutinesFetchOnce(t *testing.T) {
	f := newFixture(t)
	var calls atomic.Int32
	fetch := func(ctx context.Context, stale *Entry) (*Entry, error) {
		calls.Add(1)
		time.Sleep(100 * time.Millisecond) // a slow broker: everyone else piles up
		return entry("A", f.clock.Now().Add(time.Hour)), nil
	}
	const n = 20
	var wg sync.WaitGroup
	var misses atomic.Int32
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, hit, err := f.c.Get(context.Background(), f.key, fetch)
			if err != nil {
				t.Error(err)
				return
			}
			if !hit {
				misses.Add(1)
			}
			if e.Response.Credentials.AccessKeyID != "A" {
				t.Errorf("got %s, want A", e.Response.Credentials.AccessKeyID)
			}
		}()
	}
	wg.Wait()
	if calls.Load() != 1 || misses.Load() != 1 {
		t.Errorf("got %d fetches and %d misses, want 1 and 1", calls.Load(), misses.Load())
	}
}

// Readers take no lock, so every write must appear at once: a reader loop
// racing a writer loop must only ever decode complete entries.
func TestReadersNeverSeePartialEntries(t *testing.T) {
	f := newFixture(t)
	f.get(t)
	root := f.openRoot(t)
	done := make(chan struct{})
	var writes atomic.Int32
	go func() {
		defer close(done)
		for i := range 100 {
			// Entries of varying sizes, so a torn read could not decode.
			e := entry(fmt.Sprintf("W%d", i), t0.Add(time.Hour))
			e.Response.Credentials.SessionToken = strings.Repeat("t", 100+(i*997)%20000)
			if err := f.c.write(root, f.key, e); err != nil {
				t.Error(err)
				return
			}
			writes.Add(1)
		}
	}()
	reads := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		e := f.c.read(root, f.key, true)
		if e == nil {
			t.Fatalf("read a partial or missing entry after %d writes: %q", writes.Load(), *f.warns)
		}
		if akid := e.Response.Credentials.AccessKeyID; akid != "A" {
			i, _ := strconv.Atoi(akid[1:])
			if got, want := len(e.Response.Credentials.SessionToken), 100+(i*997)%20000; got != want {
				t.Fatalf("got a session token of %d bytes for %s, want %d", got, akid, want)
			}
		}
		reads++
	}
	if writes.Load() != 100 {
		t.Fatalf("got %d writes, want 100", writes.Load())
	}
	t.Logf("%d reads during 100 writes", reads)
}

func BenchmarkGetHit(b *testing.B) {
	c := &Cache{Dir: filepath.Join(b.TempDir(), "creds"), Now: func() time.Time { return t0 }}
	key := Key("https://broker.example", "deploy", "id")
	fetch := func(context.Context, *Entry) (*Entry, error) { return entry("A", t0.Add(time.Hour)), nil }
	if _, _, err := c.Get(context.Background(), key, fetch); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, hit, err := c.Get(ctx, key, fetch)
		if err != nil || !hit {
			b.Fatalf("got hit=%v err=%v, want a hit", hit, err)
		}
	}
}

// A waiter returns the entry another process stored, without waiting for
// that process to release the lock.
func TestWaiterReturnsLandedEntryWithoutTheLock(t *testing.T) {
	f := newFixture(t)
	f.get(t)
	f.clock.Advance(50 * time.Minute) // A is stale now
	root := f.openRoot(t)
	defer f.lock(t, root, f.key)() // "another process" refreshing

	fastPathRead := make(chan struct{})
	var once sync.Once
	f.c.Now = func() time.Time { once.Do(func() { close(fastPathRead) }); return f.clock.Now() }
	type result struct {
		e   *Entry
		hit bool
		err error
	}
	res := make(chan result)
	go func() {
		e, hit, err := f.c.Get(context.Background(), f.key, f.rec.fetch)
		res <- result{e, hit, err}
	}()
	<-fastPathRead // Get has read the stale A and is heading for the lock
	if err := f.c.write(root, f.key, entry("Z", f.clock.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil || !r.hit || r.e.Response.Credentials.AccessKeyID != "Z" {
		t.Fatalf("got (%v, hit=%v, %v), want Z as a hit", r.e, r.hit, r.err)
	}
	if n := f.rec.calls.Load(); n != 1 {
		t.Errorf("got %d fetches, want none by the waiter", n-1)
	}
}

// TestShortLivedEntriesAreServed: a 15-minute session (the STS minimum) is
// served from the cache for the first half of its life, not refetched by
// every aws command.
func TestShortLivedEntriesAreServed(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &Cache{Dir: filepath.Join(t.TempDir(), "cache"), Now: func() time.Time { return now }}
	fetches := 0
	fetch := func(context.Context, *Entry) (*Entry, error) {
		fetches++
		return &Entry{Response: api.CredsResponse{Credentials: api.Credentials{AccessKeyID: "ASIATEST", SecretAccessKey: "s", Expiration: now.Add(15 * time.Minute)}}}, nil
	}
	key := Key("a", "b", "c")
	for _, after := range []time.Duration{0, time.Minute, 7 * time.Minute} {
		now = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(after)
		if _, _, err := c.Get(context.Background(), key, fetch); err != nil {
			t.Fatal(err)
		}
	}
	if fetches != 1 {
		t.Fatalf("got %d fetches in the first half of a 15-minute session, want 1", fetches)
	}
	now = time.Date(2030, 1, 1, 0, 8, 0, 0, time.UTC)
	_, _, _ = c.Get(context.Background(), key, fetch)
	if fetches != 2 {
		t.Fatalf("got %d fetches past half the lifetime, want 2", fetches)
	}
}
