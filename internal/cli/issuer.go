package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/keyferry/keyferry/internal/api"
)

func newIssuerCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "issuer", Short: "Manage trusted token issuers (GitLab, GitHub, Kubernetes, generic OIDC)"}

	var file string
	write := &cobra.Command{
		Use:   "write [NAME] -f FILE",
		Short: "Create or update an issuer from a YAML/JSON file",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var is api.Issuer
			if err := readDoc(e, file, &is); err != nil {
				return err
			}
			if len(args) == 1 {
				if is.Name != "" && is.Name != args[0] {
					return fmt.Errorf("the file names issuer %q but the argument says %q", is.Name, args[0])
				}
				is.Name = args[0]
			}
			if is.Name == "" {
				return errors.New("the issuer needs a name (in the file or as the argument)")
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			res, err := c.PutIssuer(cmd.Context(), is, false)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "issuer %s %s\n", is.Name, res.Outcome)
			return nil
		},
	}
	write.Flags().StringVarP(&file, "file", "f", "", "issuer file (YAML or JSON; - for stdin)")

	read := &cobra.Command{
		Use:   "read NAME",
		Short: "Show an issuer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			is, err := c.Issuer(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return e.printYAML(is)
		},
	}

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List issuers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			iss, err := c.Issuers(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return e.printJSON(iss)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tURL\tAUDIENCES")
			for _, is := range iss {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", is.Name, is.Kind, is.URL, strings.Join(is.Audiences, ","))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an issuer no role uses",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			if err := c.DeleteIssuer(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "issuer %s deleted\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(write, read, list, del)
	return cmd
}
