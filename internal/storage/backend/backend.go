// Package backend opens a storage.Store from a storage URL.
//
// It exists to break an import cycle: the backends (bolt, memory, later
// etcd) import package storage for its interface and sentinels, so storage
// cannot import them to pick one. Parsing the URL stays in storage
// (storage.ParseURL, usable by config validation without opening or
// linking any backend); this package adds the one switch that needs every
// backend, and is imported only by the composition root. A registry
// filled by init() functions would avoid the extra package, but it is
// hidden global state, which keyferry does not use.
package backend

import (
	"fmt"

	"github.com/keyferry/keyferry/internal/storage"
	"github.com/keyferry/keyferry/internal/storage/bolt"
	"github.com/keyferry/keyferry/internal/storage/memory"
)

// Open parses rawURL with storage.ParseURL and opens the backend it names
// with that backend's default options:
//
//	memory:                          memory.New()
//	bolt:///var/lib/keyferry/kf.db   bolt.Open("/var/lib/keyferry/kf.db", bolt.Options{})
//	bolt:data/kf.db, data/kf.db      bolt.Open("data/kf.db", bolt.Options{})
func Open(rawURL string) (storage.Store, error) {
	loc, err := storage.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	switch loc.Scheme {
	case storage.SchemeMemory:
		return memory.New(), nil
	case storage.SchemeBolt:
		s, err := bolt.Open(loc.Path, bolt.Options{})
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		// ParseURL accepted a scheme this switch does not know: a
		// backend was added to one and not the other.
		return nil, fmt.Errorf("backend: no backend for storage scheme %q", loc.Scheme)
	}
}
