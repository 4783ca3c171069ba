package cli

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/client"
	"github.com/keyferry/keyferry/internal/delivery"
	"github.com/keyferry/keyferry/internal/tokensource"
)

// tokenFlags choose where the job token comes from.
type tokenFlags struct {
	source, env, file, audience string
}

func (t *tokenFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&t.source, "token-source", "auto", "where the job token comes from: "+strings.Join(tokensource.Kinds, ", "))
	cmd.Flags().StringVar(&t.env, "token-env", "", "environment variable holding the job token (default "+tokensource.EnvToken+")")
	cmd.Flags().StringVar(&t.file, "token-file", "", "file holding the job token, re-read on every use (default $"+tokensource.EnvTokenFile+")")
	cmd.Flags().StringVar(&t.audience, "audience", "", "audience to request from GitHub Actions (default $"+tokensource.EnvAudience+", then the broker URL)")
}

// sourceFor builds the token source: --token-env / --token-file select
// their kind unless --token-source says otherwise.
func (t *tokenFlags) sourceFor(e *env) (tokensource.Source, error) {
	kind := t.source
	if kind == "auto" {
		switch {
		case t.env != "" && t.file != "":
			return nil, errors.New("give only one of --token-env and --token-file")
		case t.env != "":
			kind = "env"
		case t.file != "":
			kind = "file"
		}
	}
	return tokensource.New(tokensource.Options{
		Kind: kind, EnvName: t.env, File: t.file, Audience: t.audience,
		BrokerAddr: first(e.addr, e.getenv("KEYFERRY_ADDR")), Getenv: e.getenv,
	})
}

// jobFlags are the flags of the commands that get a role's credentials
// for a CI job: --role, --ttl and where the job token comes from.
type jobFlags struct {
	role string
	ttl  int64
	tokenFlags
}

func (j *jobFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&j.role, "role", "r", "", "keyferry role to use (required)")
	cmd.Flags().Int64Var(&j.ttl, "ttl", 0, "credential lifetime in seconds (900 up to the role's ttl)")
	j.tokenFlags.register(cmd)
}

// checkRole refuses a command without --role.
func (j *jobFlags) checkRole() error {
	if j.role == "" {
		return errors.New("--role is required")
	}
	return nil
}

// connect checks --role and returns the broker's client and the job
// token's source.
func (j *jobFlags) connect(e *env) (*client.Client, tokensource.Source, error) {
	if err := j.checkRole(); err != nil {
		return nil, nil, err
	}
	c, err := e.client()
	if err != nil {
		return nil, nil, err
	}
	tokens, err := j.sourceFor(e)
	if err != nil {
		return nil, nil, err
	}
	return c, tokens, nil
}

// read returns the job token. Errors name what was looked for and never
// include the token.
func (t *tokenFlags) read(e *env, cmd *cobra.Command) (string, error) {
	src, err := t.sourceFor(e)
	if err != nil {
		return "", err
	}
	return src.Token(cmd.Context())
}

var credsFormats = append(slices.Clone(delivery.Formats), "ini")

func newCredsCmd(e *env) *cobra.Command {
	var (
		format, profile string
		jf              jobFlags
	)
	cmd := &cobra.Command{
		Use:   "creds",
		Short: "Exchange the job's identity token for AWS credentials and print or store them",
		Long: `Exchange the CI job's identity token for AWS credentials of a keyferry role.

Formats (--format):
  env                 export lines for a shell: eval "$(keyferry creds --role R)"
  dotenv              KEY=value lines (GitLab artifacts:reports:dotenv — see docs/gitlab-ci.md:
                      dotenv artifacts can be downloaded by anyone who can read the job)
  json                the full response: lease id, credentials, refresh handle
  credential-process  the document credential_process expects (prefer
                      'keyferry credential-process', which caches and refreshes)
  ini                 a shared-credentials-file section

--write-profile NAME stores the credentials as [NAME] in the shared credentials
file ($AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials) instead of printing
them: written atomically with mode 0600, other profiles left untouched.

The job token comes from --token-source (auto: $KEYFERRY_ID_TOKEN, then
$KEYFERRY_ID_TOKEN_FILE, then GitHub Actions' OIDC request variables). The
broker address comes from KEYFERRY_ADDR (or --addr).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := jf.checkRole(); err != nil {
				return err
			}
			if !slices.Contains(credsFormats, format) {
				return fmt.Errorf("--format %q: want one of %s", format, strings.Join(credsFormats, ", "))
			}
			tok, err := jf.read(e, cmd)
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			resp, err := c.Creds(cmd.Context(), api.CredsRequest{Role: jf.role, Token: tok, TTLSeconds: jf.ttl})
			if err != nil {
				return err
			}
			if profile != "" {
				path, err := delivery.CredentialsFile(e.getenv)
				if err != nil {
					return err
				}
				if err := delivery.WriteProfile(path, profile, resp.Credentials); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "keyferry: wrote profile [%s] to %s (AccessKeyId %s, expires %s)\n", profile, path,
					resp.Credentials.AccessKeyID, resp.Credentials.Expiration.Format("2006-01-02T15:04:05Z07:00"))
				return nil
			}
			if format == "ini" {
				_, err := fmt.Fprint(e.stdout, delivery.ProfileSection("default", resp.Credentials))
				return err
			}
			return delivery.Write(e.stdout, format, resp)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "env", "output format: "+strings.Join(credsFormats, ", "))
	cmd.Flags().StringVar(&profile, "write-profile", "", "write the credentials to this profile of the shared credentials file instead of printing them")
	jf.register(cmd)
	return cmd
}
