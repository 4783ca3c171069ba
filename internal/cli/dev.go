package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/client"
)

func newDevCmd(e *env) *cobra.Command {
	var req api.DevTokenRequest
	var protected bool
	var ttl int64
	tok := &cobra.Command{
		Use:   "token",
		Short: "Mint a GitLab-shaped CI job token from the dev issuer",
		Long: `Mint a GitLab-shaped CI job token (every claim of a real GitLab id_token) from
the dev server's built-in issuer, and print it. Use it as the job token:

  export KEYFERRY_ID_TOKEN=$(keyferry dev token --project group/app --ref main)`,
		Args: cobra.NoArgs,
		RunE: e.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			if cmd.Flags().Changed("protected") {
				req.Protected = &protected
			}
			req.TTLSeconds = ttl
			out, err := c.DevToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, out.Token)
			return nil
		}),
	}
	fl := tok.Flags()
	fl.StringVar(&req.ProjectPath, "project", "", "project path (default group/project)")
	fl.StringVar(&req.ProjectID, "project-id", "", "project id")
	fl.StringVar(&req.Ref, "ref", "", "git ref (default main)")
	fl.StringVar(&req.RefType, "ref-type", "", "branch or tag (default branch)")
	fl.BoolVar(&protected, "protected", true, "ref_protected claim")
	fl.StringVar(&req.PipelineSource, "pipeline-source", "", "pipeline_source claim (default push)")
	fl.StringVar(&req.Environment, "environment", "", "environment claim (deployment jobs)")
	fl.BoolVar(&req.EnvironmentProtected, "environment-protected", false, "environment_protected claim")
	fl.StringVar(&req.UserLogin, "user", "", "user_login claim")
	fl.StringVar(&req.PipelineID, "pipeline-id", "", "pipeline_id claim (default random)")
	fl.StringVar(&req.JobID, "job-id", "", "job_id claim (default random)")
	fl.StringSliceVar(&req.Audience, "aud", nil, "audience (default the server's public URL)")
	fl.Int64Var(&ttl, "ttl", 0, "token lifetime in seconds (default 3600)")
	return groupCmd("dev", "Dev-mode helpers (against `keyferry server --dev`)", tok)
}
