package delivery

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/api"
)

func TestWriteProfileKeepsOtherProfiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), ".aws", "credentials")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	orig := "# my keys\n[default]\naws_access_key_id = AKIAOLD\naws_secret_access_key = old\n\n[ci]\naws_access_key_id = AKIASTALE\naws_secret_access_key = stale\naws_session_token = stale\n\n[other]\nregion = eu-west-1\n"
	if err := os.WriteFile(p, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	c := api.Credentials{AccessKeyID: "ASIANEW", SecretAccessKey: "newsecret", SessionToken: "newtoken", Expiration: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := WriteProfile(p, "ci", c); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	got := string(b)
	for _, want := range []string{"# my keys\n[default]\naws_access_key_id = AKIAOLD\n", "[ci]\naws_access_key_id = ASIANEW\naws_secret_access_key = newsecret\naws_session_token = newtoken\n", "[other]\nregion = eu-west-1\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "stale") {
		t.Errorf("old ci values survived:\n%s", got)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 (even though the old file was 0644)", fi.Mode().Perm())
	}
	// A new profile is appended.
	if err := WriteProfile(p, "fresh", c); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(p)
	if strings.Count(string(b), "[fresh]") != 1 || strings.Count(string(b), "[ci]") != 1 || !strings.Contains(string(b), "AKIAOLD") {
		t.Errorf("after append:\n%s", b)
	}
}

func TestWriteProfileConcurrentWriters(t *testing.T) {
	p := filepath.Join(t.TempDir(), "credentials")
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := "p" + string(rune('a'+i))
			if err := WriteProfile(p, name, api.Credentials{AccessKeyID: "ASIA" + name, SecretAccessKey: "s"}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	b, _ := os.ReadFile(p)
	for i := 0; i < 20; i++ {
		if !strings.Contains(string(b), "[p"+string(rune('a'+i))+"]") {
			t.Errorf("profile p%c lost", 'a'+i)
		}
	}
}

func TestWriteProfileRejectsBadNames(t *testing.T) {
	for _, n := range []string{"", "a]b", "a\nb", "with space"} {
		if err := WriteProfile(filepath.Join(t.TempDir(), "c"), n, api.Credentials{}); err == nil {
			t.Errorf("profile %q accepted", n)
		}
	}
}
