package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/identity"
)

var testTime = time.Date(2025, 11, 26, 1, 2, 3, 456789000, time.UTC)

// testEvent returns a typical issue event, distinct for each i.
func testEvent(i int) *Event {
	return &Event{
		Time:      testTime.Add(time.Duration(i) * time.Millisecond),
		Type:      TypeIssue,
		RequestID: fmt.Sprintf("req-%d", i),
		Identity: &identity.Summary{
			Issuer:  "https://gitlab.example.com",
			Subject: "project_path:g/p:ref_type:branch:ref:main",
			Project: "g/p",
			Job:     fmt.Sprint(1000 + i),
		},
		Role:        "deploy",
		Decision:    DecisionAllow,
		LeaseID:     fmt.Sprintf("lease-%d", i),
		AccessKeyID: "ASIAEXAMPLE",
		Message:     `quotes " and <html> & unicode é`,
	}
}

// chainLines returns n lines (each ending in "\n") of a valid chain that
// starts at firstSeq after prevHash.
func chainLines(t testing.TB, n int, firstSeq uint64, prevHash string) [][]byte {
	t.Helper()
	lines := make([][]byte, n)
	for i := range lines {
		body, err := encodeBody(testEvent(i))
		if err != nil {
			t.Fatal(err)
		}
		lines[i], prevHash = appendLine(nil, firstSeq+uint64(i), prevHash, body)
	}
	return lines
}

// filledEvent returns an Event with every field, however deep, set to a
// non-zero value. It fails the test on a field kind it does not know.
func filledEvent(t testing.TB) Event {
	t.Helper()
	var ev Event
	fill(t, reflect.ValueOf(&ev).Elem(), "Event")
	return ev
}

func fill(t testing.TB, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString("x-" + path)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), path)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(testTime))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i), path+"."+v.Type().Field(i).Name)
			}
		}
	default:
		t.Fatalf("%s: kind %s: teach fill (and cloneEvent) about it", path, v.Kind())
	}
}

// faultFile wraps a file and fails or blocks its calls on demand.
type faultFile struct {
	file
	mu         sync.Mutex
	failWrites int // fail this many Write calls…
	partial    int // …after writing this many bytes of each
	failSyncs  int
	failTruncs int
	block      chan struct{} // if set, Write waits for it
	writes     int
	syncs      int
}

var errInjected = errors.New("injected: no space left on device")

func (f *faultFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	f.writes++
	block := f.block
	fail := f.failWrites > 0
	if fail {
		f.failWrites--
	}
	partial := min(f.partial, len(p))
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	if fail {
		n, _ := f.file.Write(p[:partial])
		return n, errInjected
	}
	return f.file.Write(p)
}

func (f *faultFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	if f.failSyncs > 0 {
		f.failSyncs--
		return errInjected
	}
	return f.file.Sync()
}

func (f *faultFile) Truncate(size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failTruncs > 0 {
		f.failTruncs--
		return errInjected
	}
	return f.file.Truncate(size)
}

func (f *faultFile) set(change func(f *faultFile)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

func (f *faultFile) counts() (writes, syncs int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes, f.syncs
}

// openFault opens a sink on a new file in a temp dir through a faultFile.
func openFault(t *testing.T, opts Options) (*FileSink, *faultFile, string) {
	t.Helper()
	path := t.TempDir() + "/audit.log"
	ff := &faultFile{}
	s, err := openFile(path, opts, func(f file) file { ff.file = f; return ff })
	if err != nil {
		t.Fatal(err)
	}
	return s, ff, path
}

// verifyFile verifies the file at path and fails the test if it does not.
func verifyFile(t *testing.T, path string) Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Verify(%s): %v", path, err)
	}
	return rep
}

// flushLog records OnFlush calls; with hold set, each call waits for a
// value on release (or for release to be closed).
type flushLog struct {
	mu      sync.Mutex
	sizes   []int
	errs    []error
	release chan struct{}
}

func (l *flushLog) onFlush(n int, _ time.Duration, err error) {
	l.mu.Lock()
	l.sizes = append(l.sizes, n)
	l.errs = append(l.errs, err)
	release := l.release
	l.mu.Unlock()
	if release != nil {
		<-release
	}
}

func (l *flushLog) get() ([]int, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.sizes...), append([]error(nil), l.errs...)
}
