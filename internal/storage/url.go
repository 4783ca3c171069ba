package storage

import (
	"fmt"
	"strings"
)

// Backend schemes accepted by ParseURL.
const (
	SchemeMemory = "memory"
	SchemeBolt   = "bolt"
)

// supported is appended to every ParseURL error so an operator sees the
// accepted forms without reading the docs.
const supported = `supported: "memory:", "bolt:///absolute/path.db", "bolt:relative/path.db" or a bare file path; "etcd://" is not yet supported`

// Location is a parsed storage URL: which backend, and where.
type Location struct {
	// Scheme is SchemeMemory or SchemeBolt.
	Scheme string
	// Path is the bolt database file exactly as written (no
	// percent-decoding; a relative path is relative to the working
	// directory). It is empty for memory.
	Path string
}

// ParseURL parses a storage URL. The accepted forms are:
//
//	memory:                      in-process, lost on exit (tests, demos)
//	bolt:///var/lib/kf/kf.db     bolt file, absolute path
//	bolt:data/kf.db              bolt file, relative path
//	/var/lib/kf/kf.db, kf.db     a bare path means bolt
//
// The scheme is case-insensitive. etcd:// is recognised and rejected as
// not yet supported. ParseURL only parses; it touches no file, so config
// validation can call it without opening anything.
func ParseURL(raw string) (Location, error) {
	if raw == "" {
		return Location{}, fmt.Errorf("storage: empty storage URL (%s)", supported)
	}
	scheme, rest, ok := splitScheme(raw)
	if !ok {
		switch raw {
		case SchemeMemory, SchemeBolt, "etcd":
			// Almost certainly a forgotten colon, not a file named "memory".
			return Location{}, fmt.Errorf("storage: %q is ambiguous: write %q for the backend or ./%s for a file (%s)", raw, raw+":", raw, supported)
		}
		return Location{Scheme: SchemeBolt, Path: raw}, nil
	}
	switch strings.ToLower(scheme) {
	case SchemeMemory:
		if rest != "" {
			return Location{}, fmt.Errorf("storage: %q: the memory backend takes no path (%s)", raw, supported)
		}
		return Location{Scheme: SchemeMemory}, nil
	case SchemeBolt:
		if after, ok := strings.CutPrefix(rest, "//"); ok {
			// bolt://host/... is the classic typo for bolt:///abs/...:
			// refuse it instead of silently opening "host/..." relative
			// to the working directory.
			if !strings.HasPrefix(after, "/") {
				return Location{}, fmt.Errorf("storage: %q: a bolt URL has no host; write bolt:///absolute/path or bolt:relative/path (%s)", raw, supported)
			}
			rest = after
		}
		if rest == "" {
			return Location{}, fmt.Errorf("storage: %q: missing database path (%s)", raw, supported)
		}
		return Location{Scheme: SchemeBolt, Path: rest}, nil
	case "etcd":
		return Location{}, fmt.Errorf("storage: %q: the etcd backend is not yet supported (%s)", raw, supported)
	default:
		return Location{}, fmt.Errorf("storage: %q: unknown storage scheme %q (%s)", raw, scheme, supported)
	}
}

// splitScheme splits "scheme:rest" when the text before the first colon is
// a URL scheme (RFC 3986: a letter, then letters, digits, "+", "-", ".").
// A single letter is not taken as a scheme, so a Windows drive path such
// as C:\kf.db stays a bare path.
func splitScheme(raw string) (scheme, rest string, ok bool) {
	scheme, rest, found := strings.Cut(raw, ":")
	if !found || len(scheme) < 2 {
		return "", "", false
	}
	for i, c := range []byte(scheme) {
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if letter || i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.') {
			continue
		}
		return "", "", false
	}
	return scheme, rest, true
}
