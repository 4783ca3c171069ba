package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// maxTimeClaim is 9999-12-31T23:59:59Z: larger time claims are malformed.
const maxTimeClaim = 253402300799

// decodeClaims decodes a JWT payload into a claim map whose numbers are
// int64 (integral values) or float64.
func decodeClaims(payload []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	// Decoding into an interface (not a map type) takes encoding/json's
	// reflection-free path: about a fifth of Verify's allocations.
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode claims: %w", err)
	}
	claims, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("decode claims: payload is not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("decode claims: data after the JSON object")
	}
	for k, v := range claims {
		c, err := convertNumbers(v)
		if err != nil {
			return nil, fmt.Errorf("decode claims: %s: %w", k, err)
		}
		claims[k] = c
	}
	return claims, nil
}

// convertNumbers replaces json.Number values in v, recursively.
func convertNumbers(v any) (any, error) {
	switch t := v.(type) {
	case json.Number:
		return convertNumber(t)
	case map[string]any:
		for k, e := range t {
			c, err := convertNumbers(e)
			if err != nil {
				return nil, err
			}
			t[k] = c
		}
	case []any:
		for i, e := range t {
			c, err := convertNumbers(e)
			if err != nil {
				return nil, err
			}
			t[i] = c
		}
	}
	return v, nil
}

// convertNumber returns n as int64 when it is integral and fits, else as
// float64.
func convertNumber(n json.Number) (any, error) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return nil, fmt.Errorf("number %.40s out of range", n)
	}
	// 1e3 and 10.0 are integral too; 2^63 itself does not fit.
	if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
		return int64(f), nil
	}
	return f, nil
}

// timeClaim reads a NumericDate claim. present is false when the claim is
// absent; err is set when it is not a number in [0, year 9999].
func timeClaim(claims map[string]any, name string) (secs float64, present bool, err error) {
	v, ok := claims[name]
	if !ok {
		return 0, false, nil
	}
	return numericDate(v, name)
}

func numericDate(v any, name string) (float64, bool, error) {
	var f float64
	switch t := v.(type) {
	case int64:
		f = float64(t)
	case float64:
		f = t
	default:
		return 0, true, fmt.Errorf("%s is not a number", name)
	}
	if f < 0 || f > maxTimeClaim {
		return 0, true, fmt.Errorf("%s is out of range", name)
	}
	return f, true, nil
}

// secondsToTime converts a validated NumericDate to a time.Time.
func secondsToTime(secs float64) time.Time {
	whole := math.Floor(secs)
	return time.Unix(int64(whole), int64((secs-whole)*1e9)).UTC()
}

// timeSeconds returns t as fractional Unix seconds.
func timeSeconds(t time.Time) float64 {
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}

// audiences reads the aud claim: a string or an array of strings.
func audiences(claims map[string]any) ([]string, error) {
	switch t := claims["aud"].(type) {
	case nil:
		return nil, nil
	case string:
		if t == "" {
			return nil, nil
		}
		return []string{t}, nil
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, errors.New("aud array holds a non-string value")
			}
			if s != "" {
				out = append(out, s)
			}
		}
		return out, nil
	}
	return nil, errors.New("aud is neither a string nor an array")
}

// stringClaim returns claims[name] if it is a non-empty string.
func stringClaim(m map[string]any, name string) string {
	s, _ := m[name].(string)
	return s
}

// nestedClaim follows path through nested objects of claims.
func nestedClaim(claims map[string]any, path []string) (any, bool) {
	var v any = claims
	for _, seg := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return v, true
}
