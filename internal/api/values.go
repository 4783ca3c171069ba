package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// Values is a role's list of accepted values for one claim. On the wire it
// is a single scalar or a non-empty list of scalars; booleans and numbers
// are read into the string form a claim of that value is compared in
// (true → "true", 42 and 42.0 → "42"), because GitLab sends booleans as
// "true"/"false". One value is written as a string, several as a list.
type Values []string

// UnmarshalJSON accepts a string, boolean or number, or a non-empty list of
// those, with the messages the server's role validation documents.
func (v *Values) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("invalid match value: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("invalid match value: trailing data after the value")
	}
	list, ok := raw.([]any)
	if !ok {
		s, err := valueString(raw)
		if err != nil {
			return err
		}
		*v = Values{s}
		return nil
	}
	if len(list) == 0 {
		return errors.New("invalid match value: empty list (give at least one value)")
	}
	out := make(Values, 0, len(list))
	for i, e := range list {
		s, err := valueString(e)
		if err != nil {
			if _, nested := e.([]any); nested {
				return fmt.Errorf("invalid match value: item %d is a list; lists cannot be nested", i)
			}
			return fmt.Errorf("item %d: %w", i, err)
		}
		out = append(out, s)
	}
	*v = out
	return nil
}

// MarshalJSON writes a single value as a string and several as a list.
func (v Values) MarshalJSON() ([]byte, error) {
	if len(v) == 1 {
		return json.Marshal(v[0])
	}
	if v == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]string(v))
}

// valueString converts one decoded JSON scalar into its match string.
func valueString(x any) (string, error) {
	switch t := x.(type) {
	case string:
		return t, nil
	case bool:
		return strconv.FormatBool(t), nil
	case json.Number:
		return NumberString(t)
	case nil:
		return "", errors.New("invalid match value: null is not a value (use a string, boolean or number)")
	case []any:
		return "", errors.New("invalid match value: a nested list is not a value (use a string, boolean or number)")
	default:
		return "", errors.New("invalid match value: an object is not a value (use a string, boolean or number)")
	}
}

// NumberString formats a JSON number the way a claim holding the same
// number is compared: integral numbers without a fraction or exponent
// ("42" for 42, 42.0 and 4.2e1), others in their shortest exact form. The
// role model formats claims with it too, so that a match value and a claim
// of the same number are the same text.
func NumberString(n json.Number) (string, error) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return strconv.FormatInt(i, 10), nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return "", fmt.Errorf("invalid match value: number %s is out of range", n)
	}
	return FloatString(f), nil
}

// FloatString prints integral floats without a fraction or exponent ("42")
// and others in their shortest exact form ("1.5").
func FloatString(f float64) string {
	if f == 0 {
		return "0" // also for -0
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
