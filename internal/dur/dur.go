// Package dur provides a time.Duration that reads and writes as a
// human-readable string ("90s", "1h30m") in JSON and YAML documents.
package dur

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration encoded as a Go duration string. When
// decoding, a bare JSON number is taken as whole seconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.String.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON encodes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts "1h30m" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q: use a value like 90s, 15m or 1h", s)
		}
		*d = Duration(v)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("invalid duration %s: use a string like \"15m\" or a number of seconds", b)
	}
	secs, err := n.Int64()
	if err != nil {
		return fmt.Errorf("invalid duration %s: seconds must be a whole number", b)
	}
	if secs > int64(1<<62)/int64(time.Second) || secs < -int64(1<<62)/int64(time.Second) {
		return fmt.Errorf("invalid duration %s: out of range", b)
	}
	*d = Duration(time.Duration(secs) * time.Second)
	return nil
}
