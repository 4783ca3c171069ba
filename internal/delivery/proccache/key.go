package proccache

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// DefaultDir returns the cache directory: $KEYFERRY_CACHE_DIR, else
// $XDG_CACHE_HOME/keyferry/creds, else $HOME/.cache/keyferry/creds.
// KEYFERRY_CACHE_DIR must be absolute (credential_process runs in whatever
// directory the AWS tool was started in); a relative XDG_CACHE_HOME is
// ignored, as the XDG spec says.
func DefaultDir(getenv func(string) string) (string, error) {
	if d := getenv("KEYFERRY_CACHE_DIR"); d != "" {
		if !filepath.IsAbs(d) {
			return "", fmt.Errorf("proccache: KEYFERRY_CACHE_DIR %q is not an absolute path", d)
		}
		return filepath.Clean(d), nil
	}
	if d := getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "keyferry", "creds"), nil
	}
	if h := getenv("HOME"); h != "" && filepath.IsAbs(h) {
		return filepath.Join(h, ".cache", "keyferry", "creds"), nil
	}
	return "", errors.New("proccache: no cache directory: set KEYFERRY_CACHE_DIR or HOME")
}

// Key derives an entry's key from its parts, e.g. Key(brokerURL, role,
// TokenIdentity(jwt)): the hex SHA-256 of the length-prefixed parts, so
// ("ab", "c") and ("a", "bc") differ. It is a valid file name.
func Key(parts ...string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write([]byte("keyferry-proccache-v1"))
	for _, p := range parts {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// maxTokenSize bounds what TokenIdentity decodes; STS itself takes at most
// 20000 characters.
const maxTokenSize = 64 << 10

// TokenIdentity names the CI job a JWT was issued to, from its unverified
// payload: "iss|sub|job:<job_id>" (GitLab), "iss|sub|run:<run_id>:<attempt>"
// (GitHub Actions), "iss|sub|pod:<uid>" (a Kubernetes pod-bound service
// account token), else "iss|sub|jti:<jti>" or "iss|sub|iat:<iat>", so that a
// job's entry is keyed to that job and a new job gets a new entry. The
// fallbacks change with every token, which costs cache hits but never
// shares an entry between jobs. '|', '%' and control characters in values
// are %-escaped.
//
// It returns "" when the token does not parse, lacks iss or sub, or has
// none of the claims above: the caller should then not use the disk cache,
// since entries could be shared by unrelated jobs. The result never holds
// the token's signature or header. It is not verified: it selects a cache
// entry, and the broker still checks the token when the entry is refreshed.
func TokenIdentity(jwt string) string {
	if len(jwt) > maxTokenSize {
		return ""
	}
	parts := strings.Split(strings.TrimSpace(jwt), ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var c struct {
		Iss        claim `json:"iss"`
		Sub        claim `json:"sub"`
		JobID      claim `json:"job_id"`
		RunID      claim `json:"run_id"`
		RunAttempt claim `json:"run_attempt"`
		Kubernetes struct {
			Pod struct {
				Name claim `json:"name"`
				UID  claim `json:"uid"`
			} `json:"pod"`
		} `json:"kubernetes.io"`
		JTI claim `json:"jti"`
		IAT claim `json:"iat"`
	}
	if !bytes.HasPrefix(bytes.TrimSpace(payload), []byte("{")) || json.Unmarshal(payload, &c) != nil {
		return ""
	}
	if c.Iss == "" || c.Sub == "" {
		return ""
	}
	var job string
	switch pod := c.Kubernetes.Pod; {
	case c.JobID != "":
		job = "job:" + escape(string(c.JobID))
	case c.RunID != "":
		job = "run:" + escape(string(c.RunID))
		if c.RunAttempt != "" {
			job += ":" + escape(string(c.RunAttempt))
		}
	case pod.UID != "":
		job = "pod:" + escape(string(pod.UID))
	case pod.Name != "":
		job = "pod:" + escape(string(pod.Name))
	case c.JTI != "":
		job = "jti:" + escape(string(c.JTI))
	case c.IAT != "":
		job = "iat:" + escape(string(c.IAT))
	default:
		return ""
	}
	return escape(string(c.Iss)) + "|" + escape(string(c.Sub)) + "|" + job
}

// claim is a string or number claim as text; any other JSON value is "".
type claim string

func (c *claim) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*c = claim(s)
		return nil
	}
	var n json.Number
	if json.Unmarshal(b, &n) == nil {
		*c = claim(n)
	}
	return nil // never fail the whole payload over one odd claim
}

// escape %-encodes '%', '|' and control characters.
func escape(s string) string {
	if !strings.ContainsFunc(s, needsEscape) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if ch := s[i]; needsEscape(rune(ch)) {
			fmt.Fprintf(&b, "%%%02X", ch)
		} else {
			b.WriteByte(ch)
		}
	}
	return b.String()
}

func needsEscape(r rune) bool { return r == '%' || r == '|' || r < 0x20 || r == 0x7f }
