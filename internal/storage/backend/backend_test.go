package backend_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyferry/keyferry/internal/storage"
	"github.com/keyferry/keyferry/internal/storage/backend"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	tests := []struct {
		name     string
		url      string
		wantType string
		wantFile string // for bolt: the file Open must create
	}{
		{"memory", "memory:", "*memory.Store", ""},
		{"bolt absolute", "bolt://" + filepath.Join(dir, "abs.db"), "*bolt.Store", filepath.Join(dir, "abs.db")},
		{"bolt relative", "bolt:rel/kf.db", "*bolt.Store", filepath.Join(dir, "rel", "kf.db")},
		{"bare path", filepath.Join(dir, "bare.db"), "*bolt.Store", filepath.Join(dir, "bare.db")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := backend.Open(tt.url)
			if err != nil {
				t.Fatalf("Open(%q) = %v, want nil", tt.url, err)
			}
			defer s.Close()
			if got := fmt.Sprintf("%T", s); got != tt.wantType {
				t.Errorf("Open(%q) = %s, want %s", tt.url, got, tt.wantType)
			}
			if tt.wantFile != "" {
				if _, err := os.Stat(tt.wantFile); err != nil {
					t.Errorf("Open(%q): stat %s = %v, want the database file there", tt.url, tt.wantFile, err)
				}
			}
			// The store works end to end.
			if err := storage.Create(t.Context(), s, "k", []byte("v")); err != nil {
				t.Fatalf("Create = %v, want nil", err)
			}
			if kv, err := s.Get(t.Context(), "k"); err != nil || string(kv.Value) != "v" {
				t.Errorf("Get = %q, %v; want %q, nil", kv.Value, err, "v")
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, url, want string
	}{
		{"unknown scheme", "s3://bucket/kf", `unknown storage scheme "s3"`},
		{"etcd not yet", "etcd://h1:2379,h2:2379", "not yet supported"},
		{"bolt with host", "bolt://var/lib/kf.db", "has no host"},
		{"bolt error passed through", "bolt://" + filepath.Join(notADir, "kf.db"), "bolt: create directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := backend.Open(tt.url)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) = nil error, want one containing %q", tt.url, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open(%q) error = %q, want it to contain %q", tt.url, err, tt.want)
			}
		})
	}
}
