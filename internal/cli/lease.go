package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyferry/keyferry/internal/client"
	"github.com/keyferry/keyferry/internal/lease"
)

func newLeaseCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "lease", Short: "Inspect and revoke issued credentials"}

	var (
		f      client.LeaseFilter
		asJSON bool
		all    bool
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List leases (filter by role, project, pipeline, state)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			var out []lease.Lease
			for {
				page, next, err := c.Leases(cmd.Context(), f)
				if err != nil {
					return err
				}
				out = append(out, page...)
				if next == "" || !all {
					if next != "" {
						fmt.Fprintf(e.stderr, "more leases exist: rerun with --all or --after %s\n", next)
					}
					break
				}
				f.After = next
			}
			if asJSON {
				return e.printJSON(out)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tROLE\tSTATE\tPROJECT\tPIPELINE\tJOB\tACCESS KEY\tEXPIRES")
			for _, l := range out {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.ID, l.Role, l.State, l.Identity.Project,
					l.Identity.Pipeline, l.Identity.Job, l.AccessKeyID, l.ExpiresAt.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	fl := list.Flags()
	fl.StringVar(&f.Role, "role", "", "only this role")
	fl.StringVar(&f.Project, "project", "", "only this project (path or id)")
	fl.StringVar(&f.Pipeline, "pipeline", "", "only this pipeline id")
	fl.StringVar(&f.State, "state", "", "only this state: pending, active, revoking, revoked, expired")
	fl.IntVar(&f.Limit, "limit", 100, "page size (1-1000)")
	fl.StringVar(&f.After, "after", "", "continue after this lease id")
	fl.BoolVar(&all, "all", false, "fetch every page")
	fl.BoolVar(&asJSON, "json", false, "print JSON")

	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show one lease",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			l, err := c.Lease(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return e.printJSON(l)
		},
	}

	var reason string
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a lease (idempotent)",
		Long: `Revoke a lease. For assumed-role sessions (assume_role, web_identity) AWS cannot
delete a session: the lease is marked revoked and audited, and the credentials
stay valid upstream until they expire.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			l, err := c.RevokeLease(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "lease %s %s\n", l.ID, l.State)
			if l.RevokeNote != "" {
				fmt.Fprintf(e.stdout, "note: %s\n", l.RevokeNote)
			}
			return nil
		},
	}
	revoke.Flags().StringVar(&reason, "reason", "", "why (recorded in the lease and the audit log)")
	cmd.AddCommand(list, get, revoke)
	return cmd
}
