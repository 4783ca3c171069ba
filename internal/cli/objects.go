package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/client"
	"github.com/spf13/cobra"
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

// withClient is a RunE that connects to the broker, then runs run.
func (e *env) withClient(run func(cmd *cobra.Command, c *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := e.client()
		if err != nil {
			return err
		}
		return run(cmd, c, args)
	}
}

// storedObject describes a kind of named object the admin API stores
// (issuer, role) for its write, read, list and delete commands.
type storedObject[T api.Role | api.Issuer] struct {
	kind string // as messages name it
	name func(*T) *string
	put  func(*client.Client, context.Context, T, bool) (*api.WriteResult[T], error)
	get  func(*client.Client, context.Context, string) (*T, error)
	list func(*client.Client, context.Context) ([]T, error)
	del  func(*client.Client, context.Context, string) error
	// header and row print the list as a table, tab-separated.
	header string
	row    func(w io.Writer, v T)
	// The commands' short help.
	writeShort, readShort, listShort, deleteShort string
}

// commands returns the write, read, list and delete commands.
func (o storedObject[T]) commands(e *env) []*cobra.Command {
	return []*cobra.Command{
		o.writeCmd(e),
		showCmd(e, "read NAME", o.readShort, o.get, e.printYAML),
		o.listCmd(e),
		deleteCmd(e, "delete NAME", o.deleteShort, o.kind, o.del),
	}
}

func (o storedObject[T]) writeCmd(e *env) *cobra.Command {
	var file string
	write := &cobra.Command{
		Use:   "write [NAME] -f FILE",
		Short: o.writeShort,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v T
			if err := readDoc(e, file, &v); err != nil {
				return err
			}
			name := o.name(&v)
			if len(args) == 1 {
				if *name != "" && *name != args[0] {
					return fmt.Errorf("the file names %s %q but the argument says %q", o.kind, *name, args[0])
				}
				*name = args[0]
			}
			if *name == "" {
				return fmt.Errorf("the %s needs a name (in the file or as the argument)", o.kind)
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			res, err := o.put(c, cmd.Context(), v, false)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s %s %s\n", o.kind, *name, res.Outcome)
			return nil
		},
	}
	write.Flags().StringVarP(&file, "file", "f", "", o.kind+" file (YAML or JSON; - for stdin)")
	return write
}

func (o storedObject[T]) listCmd(e *env) *cobra.Command {
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: o.listShort,
		Args:  cobra.NoArgs,
		RunE: e.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			vs, err := o.list(c, cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return e.printJSON(vs)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, o.header)
			for _, v := range vs {
				o.row(tw, v)
			}
			return tw.Flush()
		}),
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return list
}

// showCmd is a command that gets one object by its name or id, the only
// argument, and prints it with print.
func showCmd[T any](e *env, use, short string, get func(*client.Client, context.Context, string) (*T, error), print func(any) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			v, err := get(c, cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return print(v)
		}),
	}
}

// deleteCmd is a command that deletes one object of kind by its name or
// id, the only argument.
func deleteCmd(e *env, use, short, kind string, del func(*client.Client, context.Context, string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := del(c, cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s %s deleted\n", kind, args[0])
			return nil
		}),
	}
}
