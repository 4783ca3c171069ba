package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/keyferry/keyferry/internal/delivery"
)

func newExecCmd(e *env) *cobra.Command {
	var (
		region        string
		keepAWSConfig bool
		jf            jobFlags
	)
	cmd := &cobra.Command{
		Use:   "exec --role R -- COMMAND [ARGS...]",
		Short: "Run a command with AWS credentials served by a private local endpoint",
		Long: `Run COMMAND with credentials from keyferry, without putting them in its environment.

keyferry starts a container-credentials endpoint on 127.0.0.1 (random port, random
token) and gives the command AWS_CONTAINER_CREDENTIALS_FULL_URI and the token
(AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE and AWS_CONTAINER_AUTHORIZATION_TOKEN), plus
AWS_REGION and AWS_DEFAULT_REGION. The AWS SDKs (aws-cli, boto3, Terraform, the Go
SDK…) then fetch the credentials themselves and refresh them before they expire;
keyferry refreshes from the broker with the lease's refresh handle, so long jobs keep
working after the job token expires (until the role's max_ttl).

Variables that would take precedence over the endpoint (AWS_ACCESS_KEY_ID,
AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE, …) and the job token itself are removed
from the command's environment; AWS_CONFIG_FILE is pointed at /dev/null unless
--keep-aws-config. The exit code and signals pass through.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, tokens, err := jf.connect(e)
			if err != nil {
				return err
			}
			var unset []string
			if jf.env != "" {
				unset = append(unset, jf.env)
			}
			// Not cmd.Context(): Exec relays SIGINT/SIGTERM to the child
			// itself; a context cancelled by the same signals would make
			// it send a second one.
			code, err := delivery.Exec(context.Background(), delivery.ExecConfig{
				Source: &delivery.Broker{Client: c, Role: jf.role, Tokens: tokens, TTLSeconds: jf.ttl,
					OnRefreshError: func(err error) {
						fmt.Fprintf(e.stderr, "keyferry: refresh refused (%v); requesting new credentials with the job token\n", err)
					}},
				Region: region, Args: args, Env: os.Environ(), Unset: unset, KeepConfigFile: keepAWSConfig,
				Stdin: e.stdin, Stdout: e.stdout, Stderr: e.stderr,
			})
			if err != nil {
				return &exitError{code: code, msg: err.Error()}
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&region, "region", "", "AWS region for the command (default: the role's, else the broker's)")
	cmd.Flags().BoolVar(&keepAWSConfig, "keep-aws-config", false, "let the command read ~/.aws/config (a profile there can outrank keyferry's credentials)")
	jf.register(cmd)
	cmd.Flags().SetInterspersed(false)
	return cmd
}
