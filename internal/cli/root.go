// Package cli implements keyferry's command line, one file per command.
// Commands talk to the server through internal/client; only `server` runs
// components in-process.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/keyferry/keyferry/internal/client"
	"github.com/keyferry/keyferry/internal/logging"
)

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

// env is the environment view of one invocation (tests replace it).
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	addr, token, cacert string
	output              string
}

// Main runs the CLI and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return Run(args, stdin, stdout, stderr, os.Getenv)
}

// Run is Main with the environment given explicitly (tests).
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(stderr, "keyferry:", ee.msg)
			}
			return ee.code
		}
		fmt.Fprintln(stderr, "keyferry:", err)
		return 1
	}
	return 0
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "keyferry",
		Short: "Short-lived AWS credentials for CI jobs, from their OIDC identity",
		Long: `keyferry exchanges a CI job's identity token (GitLab id_tokens, GitHub Actions OIDC,
Kubernetes service-account tokens) for short-lived AWS credentials, leased and audited.

  keyferry server --dev                         run a local broker with a dev OIDC issuer
  keyferry creds --role deploy --format env     get credentials inside a CI job
  keyferry lease list --project group/app       see what was issued`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&e.addr, "addr", "", "keyferry server URL (env KEYFERRY_ADDR)")
	root.PersistentFlags().StringVar(&e.token, "token", "", "admin token for admin commands (env KEYFERRY_TOKEN)")
	root.PersistentFlags().StringVar(&e.cacert, "cacert", "", "PEM CA bundle to trust for the server (env KEYFERRY_CACERT)")
	root.AddCommand(
		newServerCmd(e), newDevCmd(e), newCredsCmd(e), newCredentialProcessCmd(e), newExecCmd(e), newServeCmd(e), newRoleCmd(e), newIssuerCmd(e), newApplyCmd(e),
		newLeaseCmd(e), newAdminTokenCmd(e), newAuditCmd(e), newVersionCmd(e),
	)
	return root
}

// groupCmd is a command that only groups the subcommands subs.
func groupCmd(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short}
	cmd.AddCommand(subs...)
	return cmd
}

func (e *env) client() (*client.Client, error) {
	addr := first(e.addr, e.getenv("KEYFERRY_ADDR"))
	return client.New(addr, client.Options{
		Token:             first(e.token, e.getenv("KEYFERRY_TOKEN")),
		CACertFile:        first(e.cacert, e.getenv("KEYFERRY_CACERT")),
		AllowInsecureHTTP: e.getenv("KEYFERRY_CLIENT_INSECURE_HTTP") == "1",
	})
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// newCLILogger logs client-side components' events to stderr as text, at
// warn level unless KEYFERRY_LOG_LEVEL says otherwise.
func newCLILogger(e *env) *slog.Logger {
	var lvl slog.Level = slog.LevelWarn
	if v := e.getenv("KEYFERRY_LOG_LEVEL"); v != "" {
		_ = lvl.UnmarshalText([]byte(v))
	}
	return slog.New(slog.NewTextHandler(e.stderr, logging.Options(lvl)))
}

func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(e.stdout, "keyferry", Version)
			return nil
		},
	}
}
