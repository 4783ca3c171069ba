package cikind

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"time"
)

// DevAudience is the aud of dev tokens whose options name none.
const DevAudience = "keyferry"

// def sets *v to d when it is empty.
func def(v *string, d string) {
	if *v == "" {
		*v = d
	}
}

// defTimes fills a zero (or negative) token lifetime with ttl and a zero
// issue time with now.
func defTimes(lifetime *time.Duration, now *time.Time, ttl time.Duration) {
	if *lifetime <= 0 {
		*lifetime = ttl
	}
	if now.IsZero() {
		*now = time.Now()
	}
}

// audienceClaim returns aud as GitLab and GitHub emit it: a string for one
// audience, an array for several.
func audienceClaim(aud []string) any {
	switch len(aud) {
	case 0:
		return DevAudience
	case 1:
		return aud[0]
	}
	return append([]string(nil), aud...)
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// randomUUID returns a random (version 4) UUID.
func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// randomID returns a random decimal id in [100000, 1000000000).
func randomID() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(999_900_000))
	return n.Add(n, big.NewInt(100_000)).String()
}

// randomSHA returns 40 random hex digits, like a git commit SHA.
func randomSHA() string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}
