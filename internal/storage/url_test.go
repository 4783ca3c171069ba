package storage

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    Location
		wantErr string // substring; "" means success
	}{
		{name: "memory", raw: "memory:", want: Location{Scheme: SchemeMemory}},
		{name: "memory upper case", raw: "MEMORY:", want: Location{Scheme: SchemeMemory}},
		{name: "bolt absolute", raw: "bolt:///var/lib/keyferry/keyferry.db", want: Location{Scheme: SchemeBolt, Path: "/var/lib/keyferry/keyferry.db"}},
		{name: "bolt single slash", raw: "bolt:/var/lib/kf.db", want: Location{Scheme: SchemeBolt, Path: "/var/lib/kf.db"}},
		{name: "bolt relative", raw: "bolt:data/keyferry.db", want: Location{Scheme: SchemeBolt, Path: "data/keyferry.db"}},
		{name: "bolt path kept literally", raw: "bolt:///tmp/a%20b.db", want: Location{Scheme: SchemeBolt, Path: "/tmp/a%20b.db"}},
		{name: "bare absolute", raw: "/var/lib/kf.db", want: Location{Scheme: SchemeBolt, Path: "/var/lib/kf.db"}},
		{name: "bare relative", raw: "kf.db", want: Location{Scheme: SchemeBolt, Path: "kf.db"}},
		{name: "bare dot relative with colon", raw: "./a:b.db", want: Location{Scheme: SchemeBolt, Path: "./a:b.db"}},
		{name: "bare with colon after slash", raw: "data/a:b.db", want: Location{Scheme: SchemeBolt, Path: "data/a:b.db"}},
		{name: "windows drive", raw: `C:\kf\kf.db`, want: Location{Scheme: SchemeBolt, Path: `C:\kf\kf.db`}},

		{name: "empty", raw: "", wantErr: "empty storage URL"},
		{name: "memory with path", raw: "memory:foo", wantErr: "takes no path"},
		{name: "bolt with host", raw: "bolt://var/lib/kf.db", wantErr: "has no host"},
		{name: "bolt without path", raw: "bolt:", wantErr: "missing database path"},
		{name: "bolt empty authority", raw: "bolt://", wantErr: "has no host"},
		{name: "etcd", raw: "etcd://h1:2379,h2:2379", wantErr: "etcd backend is not yet supported"},
		{name: "unknown scheme", raw: "s3://bucket", wantErr: `unknown storage scheme "s3"`},
		{name: "tailscale style mem", raw: "mem:", wantErr: `unknown storage scheme "mem"`},
		{name: "forgotten colon", raw: "memory", wantErr: "ambiguous"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseURL(tt.raw)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseURL(%q) = %+v, nil; want error containing %q", tt.raw, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseURL(%q) error = %q, want it to contain %q", tt.raw, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), `"memory:"`) || !strings.Contains(err.Error(), "etcd") {
					t.Errorf("ParseURL(%q) error = %q, want it to list the supported forms", tt.raw, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q) error = %v, want nil", tt.raw, err)
			}
			if got != tt.want {
				t.Errorf("ParseURL(%q) = %+v, want %+v", tt.raw, got, tt.want)
			}
		})
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"memory:", "bolt:///a/b.db", "bolt:a.db", "/a/b", "etcd://h", "x:y", "bolt://h/p", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		loc, err := ParseURL(raw)
		if err != nil {
			return
		}
		switch loc.Scheme {
		case SchemeMemory:
			if loc.Path != "" {
				t.Errorf("ParseURL(%q) = %+v, want an empty path for memory", raw, loc)
			}
		case SchemeBolt:
			if loc.Path == "" || !strings.HasSuffix(raw, loc.Path) {
				t.Errorf("ParseURL(%q) = %+v, want a non-empty path that ends the URL", raw, loc)
			}
		default:
			t.Errorf("ParseURL(%q) scheme = %q, want memory or bolt", raw, loc.Scheme)
		}
	})
}

func TestCheckPut(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		val     []byte
		wantErr bool
	}{
		{"empty key", "", nil, true},
		{"one byte key", "k", nil, false},
		{"max key", strings.Repeat("k", MaxKeyLen), nil, false},
		{"key too long", strings.Repeat("k", MaxKeyLen+1), nil, true},
		{"empty value", "k", []byte{}, false},
		{"max value", "k", make([]byte, MaxValueLen), false},
		{"value too large", "k", make([]byte, MaxValueLen+1), true},
	}
	for _, tt := range tests {
		err := CheckPut(tt.key, tt.val)
		if got := err != nil; got != tt.wantErr {
			t.Errorf("%s: CheckPut error = %v, want error: %v", tt.name, err, tt.wantErr)
		}
	}
}
