package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// readDoc reads a YAML or JSON document from a file ("-" = stdin) into v,
// rejecting unknown keys.
func readDoc(e *env, path string, v any) error {
	if path == "" {
		return errors.New("-f FILE is required (use - for stdin)")
	}
	var (
		b   []byte
		err error
	)
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(e.stdin, 4<<20))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		return fmt.Errorf("%s: %s", displayPath(path), cleanYAML(err))
	}
	return nil
}

func displayPath(p string) string {
	if p == "-" {
		return "stdin"
	}
	return p
}

func cleanYAML(err error) string {
	msg := err.Error()
	for _, p := range []string{"error unmarshaling JSON: while decoding JSON: ", "error unmarshaling JSON: ", "error converting YAML to JSON: ", "json: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return msg
}

// printYAML prints v as YAML (what read commands show).
func (e *env) printYAML(v any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(b)
	return err
}
