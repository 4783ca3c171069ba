package cli

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/client"
)

func newLeaseCmd(e *env) *cobra.Command {
	return groupCmd("lease", "Inspect, renew and revoke issued credentials (incl. break-glass revocation)",
		newLeaseListCmd(e), newLeaseGetCmd(e), newLeaseRevokeCmd(e),
		newLeaseActionCmd(e, "retry", "Queue an irrevocable lease's upstream cleanup again"),
		newLeaseActionCmd(e, "forget", "Mark a lease revoked WITHOUT upstream cleanup (you clean up by hand; audited)"),
		newLeaseActionCmd(e, "renew", "Extend an iam_user lease (up to its max_ttl)"),
		newSweepCmd(e))
}

func printLeases(e *env, ls []api.Lease) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tSTATE\tPROJECT\tPIPELINE\tJOB\tACCESS KEY\tEXPIRES")
	for _, l := range ls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.ID, l.Role, l.State, l.Identity.Project,
			l.Identity.Pipeline, l.Identity.Job, l.AccessKeyID, l.ExpiresAt.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func newLeaseListCmd(e *env) *cobra.Command {
	var (
		f          client.LeaseFilter
		akid       string
		asJSON, al bool
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List leases (filter by role, project, pipeline, state; or find the lease of an access key)",
		Args:  cobra.NoArgs,
		RunE: e.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			var out []api.Lease
			if akid != "" {
				var err error
				if out, err = c.LeasesByKey(cmd.Context(), akid); err != nil {
					return err
				}
			} else {
				for {
					page, next, err := c.Leases(cmd.Context(), f)
					if err != nil {
						return err
					}
					out = append(out, page...)
					if next == "" || !al {
						if next != "" {
							fmt.Fprintf(e.stderr, "more leases exist: rerun with --all or --after %s\n", next)
						}
						break
					}
					f.After = next
				}
			}
			if asJSON {
				return e.printJSON(out)
			}
			return printLeases(e, out)
		}),
	}
	fl := list.Flags()
	fl.StringVar(&f.Role, "role", "", "only this role")
	fl.StringVar(&f.Project, "project", "", "only this project (path or id)")
	fl.StringVar(&f.Pipeline, "pipeline", "", "only this pipeline id")
	fl.StringVar(&f.State, "state", "", "only this state: pending, active, revoking, revoked, irrevocable, expired")
	fl.StringVar(&akid, "access-key-id", "", "find the lease(s) that held this AWS access key id")
	fl.IntVar(&f.Limit, "limit", 100, "page size (1-1000)")
	fl.StringVar(&f.After, "after", "", "continue after this lease id")
	fl.BoolVar(&al, "all", false, "fetch every page")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return list
}

func newLeaseGetCmd(e *env) *cobra.Command {
	return showCmd(e, "get ID", "Show one lease", (*client.Client).Lease, e.printJSON)
}

func newLeaseRevokeCmd(e *env) *cobra.Command {
	var (
		reason, akid        string
		wait, yes, dryRun   bool
		role, proj, pip, sb string
	)
	revoke := &cobra.Command{
		Use:   "revoke (ID | --project P | --role R | --pipeline N | --sub S | --access-key-id K)",
		Short: "Revoke a lease, or every live lease of a project, role, pipeline, subject or key (break glass)",
		Long: `Revoke one lease by id, or — break glass — every live lease matching all the given
filters. A bulk revocation shows how many leases match and asks for confirmation
(--yes skips it; --dry-run only lists them).

iam_user leases: the IAM user is deleted by the revocation workers (--wait waits
for it). assume_role sessions with early_revocation: a deny statement on the role
cuts the session off. Other STS sessions cannot be deleted: the lease is marked
revoked and the credentials stay valid upstream until they expire.`,
		Args: cobra.MaximumNArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			bulk := role != "" || proj != "" || pip != "" || sb != "" || akid != ""
			switch {
			case len(args) == 1 && bulk:
				return errors.New("give a lease id or filters, not both")
			case len(args) == 1:
				var (
					l   *api.Lease
					err error
				)
				if wait {
					l, err = c.RevokeLeaseWait(cmd.Context(), args[0], reason)
				} else {
					l, err = c.RevokeLease(cmd.Context(), args[0], reason)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "lease %s %s\n", l.ID, l.State)
				if l.RevokeNote != "" {
					fmt.Fprintf(e.stdout, "note: %s\n", l.RevokeNote)
				}
				return nil
			case !bulk:
				return errors.New("give a lease id, or at least one of --project, --role, --pipeline, --sub, --access-key-id")
			}
			req := api.BulkRevokeRequest{Role: role, Project: proj, Pipeline: pip, Subject: sb, AccessKeyID: akid, Reason: reason, DryRun: true}
			plan, err := c.BulkRevoke(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "%d live lease(s) match\n", plan.Count)
			if plan.Count == 0 {
				return nil
			}
			if dryRun {
				return printLeases(e, plan.Leases)
			}
			if !yes {
				fmt.Fprintf(e.stderr, "revoke all %d? type the number to confirm: ", plan.Count)
				line, _ := bufio.NewReader(e.stdin).ReadString('\n')
				if strings.TrimSpace(line) != fmt.Sprint(plan.Count) {
					return &exitError{code: 1, msg: "not confirmed: nothing revoked"}
				}
			}
			req.DryRun = false
			res, err := c.BulkRevoke(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "revoked %d lease(s)\n", res.Count)
			if res.Error != "" {
				return &exitError{code: 1, msg: "some revocations failed: " + res.Error}
			}
			return printLeases(e, res.Leases)
		}),
	}
	fl := revoke.Flags()
	fl.StringVar(&reason, "reason", "", "why (recorded in the leases and the audit log)")
	fl.BoolVar(&wait, "wait", false, "wait for upstream cleanup (single lease)")
	fl.StringVar(&proj, "project", "", "revoke every live lease of this project (path or id)")
	fl.StringVar(&role, "role", "", "... of this role")
	fl.StringVar(&pip, "pipeline", "", "... of this pipeline id")
	fl.StringVar(&sb, "sub", "", "... of this token subject")
	fl.StringVar(&akid, "access-key-id", "", "... that held this access key id")
	fl.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	fl.BoolVar(&dryRun, "dry-run", false, "only list what would be revoked")
	return revoke
}

func newLeaseActionCmd(e *env, action, short string) *cobra.Command {
	var (
		reason string
		ttl    time.Duration
	)
	cmd := &cobra.Command{
		Use:   action + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			var body any
			switch action {
			case "forget":
				body = api.RevokeRequest{Reason: reason}
			case "renew":
				body = api.RenewRequest{TTLSeconds: int64(ttl.Seconds())}
			}
			l, err := c.LeaseAction(cmd.Context(), args[0], action, body)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "lease %s %s, expires %s\n", l.ID, l.State, l.ExpiresAt.Local().Format(time.DateTime))
			if l.RevokeNote != "" && action == "forget" {
				fmt.Fprintf(e.stdout, "note: %s\n", l.RevokeNote)
			}
			return nil
		}),
	}
	switch action {
	case "forget":
		cmd.Flags().StringVar(&reason, "reason", "", "why upstream cleanup is skipped (required)")
	case "renew":
		cmd.Flags().DurationVar(&ttl, "ttl", 0, "extend by this much (default the role's ttl)")
	}
	return cmd
}

func newSweepCmd(e *env) *cobra.Command {
	var dry bool
	cmd := &cobra.Command{
		Use:   "sweep-orphans",
		Short: "Delete IAM users under keyferry's path that no live lease owns (now, instead of waiting for the periodic sweep)",
		Args:  cobra.NoArgs,
		RunE: e.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			res, err := c.SweepOrphans(cmd.Context(), dry)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "USER\tPATH\tCREATED\tLEASE\tDELETED\tERROR")
			for _, o := range res.Orphans {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", o.UserName, o.Path, o.Created.Local().Format(time.DateTime), o.LeaseID, o.Deleted, o.Error)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&dry, "dry-run", false, "only report")
	return cmd
}
