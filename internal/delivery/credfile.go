package delivery

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/keyferry/keyferry/internal/api"
)

var profileNameRE = regexp.MustCompile(`^[A-Za-z0-9_.+@-]{1,64}$`)

// ProfileSection renders a shared-credentials-file section for creds.
func ProfileSection(profile string, c api.Credentials) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s]\n", profile)
	fmt.Fprintf(&b, "aws_access_key_id = %s\n", c.AccessKeyID)
	fmt.Fprintf(&b, "aws_secret_access_key = %s\n", c.SecretAccessKey)
	if c.SessionToken != "" {
		fmt.Fprintf(&b, "aws_session_token = %s\n", c.SessionToken)
	}
	if !c.Expiration.IsZero() {
		// Not read by the SDKs; a note for people and for keyferry.
		fmt.Fprintf(&b, "# keyferry: expires %s\n", c.Expiration.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// CredentialsFile returns the shared credentials file the SDKs read:
// $AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials.
func CredentialsFile(getenv func(string) string) (string, error) {
	if p := getenv("AWS_SHARED_CREDENTIALS_FILE"); p != "" {
		return p, nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", errors.New("cannot find the home directory: set HOME or AWS_SHARED_CREDENTIALS_FILE")
		}
		home = h
	}
	return filepath.Join(home, ".aws", "credentials"), nil
}

// WriteProfile replaces (or appends) the [profile] section of the
// credentials file at path with creds, leaving every other section as it
// was. The file is rewritten atomically (temp file + rename) with mode
// 0600, under an exclusive lock so that concurrent writers do not lose
// each other's profiles.
func WriteProfile(path, profile string, c api.Credentials) error {
	if !profileNameRE.MatchString(profile) {
		return fmt.Errorf("profile name %q: use letters, digits and _.+@-", profile)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	lock, err := os.OpenFile(path+".keyferry.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	defer lock.Close() // closing the file releases the lock
	if err := lockFile(lock); err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}

	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	out := replaceSection(old, profile, ProfileSection(profile, c))
	tmp, err := os.CreateTemp(dir, ".credentials-*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// replaceSection swaps the body of [name] in an INI document, or appends
// the section. Lines of other sections, comments included, are kept.
func replaceSection(doc []byte, name, section string) []byte {
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(doc))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	inTarget, replaced := false, false
	for sc.Scan() {
		line := sc.Text()
		if h, ok := sectionHeader(line); ok {
			if inTarget {
				inTarget = false
			}
			if h == name {
				inTarget = true
				if !replaced {
					out.WriteString(section)
					replaced = true
				}
				continue
			}
		}
		if inTarget {
			continue
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	if !replaced {
		if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n\n")) {
			out.WriteByte('\n')
		}
		out.WriteString(section)
	}
	return out.Bytes()
}

func sectionHeader(line string) (string, bool) {
	t := strings.TrimSpace(line)
	if len(t) < 2 || t[0] != '[' || t[len(t)-1] != ']' {
		return "", false
	}
	return strings.TrimSpace(t[1 : len(t)-1]), true
}
