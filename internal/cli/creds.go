package cli

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/delivery"
)

// DefaultTokenEnv is where `creds` looks for the job token by default.
const DefaultTokenEnv = "KEYFERRY_ID_TOKEN"

type tokenFlags struct {
	env, file string
}

func (t *tokenFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&t.env, "token-env", "", "environment variable holding the job token (default "+DefaultTokenEnv+")")
	cmd.Flags().StringVar(&t.file, "token-file", "", "file holding the job token (e.g. a Kubernetes projected token)")
}

// read returns the job token. Errors name what was looked for and never
// include the token.
func (t *tokenFlags) read(e *env) (string, error) {
	if t.env != "" && t.file != "" {
		return "", errors.New("give only one of --token-env and --token-file")
	}
	if t.file != "" {
		b, err := os.ReadFile(t.file)
		if err != nil {
			return "", fmt.Errorf("read job token: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("job token file %s is empty", t.file)
		}
		return tok, nil
	}
	name := first(t.env, DefaultTokenEnv)
	tok := strings.TrimSpace(e.getenv(name))
	if tok == "" {
		return "", fmt.Errorf("no job token: environment variable %s is empty or unset (in GitLab CI declare it under id_tokens:, or use --token-env / --token-file)", name)
	}
	return tok, nil
}

func newCredsCmd(e *env) *cobra.Command {
	var (
		role, format string
		ttl          int64
		tf           tokenFlags
	)
	cmd := &cobra.Command{
		Use:   "creds",
		Short: "Exchange the job's identity token for AWS credentials and print them",
		Long: `Exchange the CI job's identity token for AWS credentials of a keyferry role.

Formats:
  env                 export lines for eval in a shell: eval "$(keyferry creds --role R)"
  dotenv              KEY=value lines (GitLab artifacts:reports:dotenv; see docs/gitlab-ci.md for the caveats)
  json                the full response, lease id included
  credential-process  the document ~/.aws/config credential_process expects

The broker address comes from KEYFERRY_ADDR (or --addr).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if role == "" {
				return errors.New("--role is required")
			}
			if !slices.Contains(delivery.Formats, format) {
				return fmt.Errorf("--format %q: want one of %s", format, strings.Join(delivery.Formats, ", "))
			}
			tok, err := tf.read(e)
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			resp, err := c.Creds(cmd.Context(), api.CredsRequest{Role: role, Token: tok, TTLSeconds: ttl})
			if err != nil {
				return err
			}
			return delivery.Write(e.stdout, format, resp)
		},
	}
	cmd.Flags().StringVarP(&role, "role", "r", "", "keyferry role to use (required)")
	cmd.Flags().StringVarP(&format, "format", "f", "env", "output format: "+strings.Join(delivery.Formats, ", "))
	cmd.Flags().Int64Var(&ttl, "ttl", 0, "credential lifetime in seconds (900 up to the role's ttl)")
	tf.register(cmd)
	return cmd
}
