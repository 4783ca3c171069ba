package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// UnmarshalJSON accepts a string, boolean or number, or a non-empty list of
// those. Booleans and numbers are stored in the string form a claim of that
// value is compared in: true → "true", 42 → "42", 42.0 → "42".
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
		return numberString(t)
	case nil:
		return "", errors.New("invalid match value: null is not a value (use a string, boolean or number)")
	case []any:
		return "", errors.New("invalid match value: a nested list is not a value (use a string, boolean or number)")
	default:
		return "", errors.New("invalid match value: an object is not a value (use a string, boolean or number)")
	}
}

// numberString formats a JSON number the way a claim holding the same number
// is stringified, so that `runner_id: 42` and `runner_id: 42.0` both match
// the claim 42.
func numberString(n json.Number) (string, error) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return strconv.FormatInt(i, 10), nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return "", fmt.Errorf("invalid match value: number %s is out of range", n)
	}
	return floatString(f), nil
}
