package cli

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyferry/keyferry/internal/config"
	"github.com/keyferry/keyferry/internal/logging"
	"github.com/keyferry/keyferry/internal/server"
)

type serverFlags struct {
	configPath    string
	set           map[string]*string
	insecureHTTP  bool
	dev           bool
	devAdminToken string
}

// serverFlagFields maps flag names to config fields (config.Set names).
var serverFlagFields = []struct{ flag, field, usage string }{
	{"listen", "listen", "listen address host:port (default 127.0.0.1:8200)"},
	{"public-url", "public_url", "URL clients use to reach this server"},
	{"storage", "storage", "storage URL: bolt:///path/keyferry.db or memory:"},
	{"audit-path", "audit.path", "audit log file (JSON lines)"},
	{"tls-cert", "tls.cert_file", "TLS certificate file (PEM)"},
	{"tls-key", "tls.key_file", "TLS private key file (PEM)"},
	{"aws-region", "aws.region", "default AWS region (default us-east-1)"},
	{"aws-sts-endpoint", "aws.sts_endpoint", "STS endpoint URL (AWS-compatible servers)"},
	{"aws-iam-endpoint", "aws.iam_endpoint", "IAM endpoint URL (AWS-compatible servers; iam_user roles)"},
	{"aws-iam-region", "aws.iam_region", "region IAM calls are signed for (default us-east-1; cn-north-1 or us-gov-west-1 in other partitions)"},
	{"log-level", "log.level", "debug, info, warn or error"},
	{"log-format", "log.format", "json or text"},
}

func (f *serverFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.configPath, "config", "c", "", "YAML config file (env KEYFERRY_CONFIG)")
	f.set = map[string]*string{}
	for _, s := range serverFlagFields {
		f.set[s.field] = cmd.Flags().String(s.flag, "", s.usage)
	}
}

// load builds the config: file → env → flags → defaults → Validate.
func (f *serverFlags) load(e *env, cmd *cobra.Command) (*config.Config, error) {
	path := first(f.configPath, e.getenv("KEYFERRY_CONFIG"))
	cfg, err := config.Load(path, e.getenv)
	if err != nil {
		return nil, err
	}
	for _, s := range serverFlagFields {
		if cmd.Flags().Changed(s.flag) {
			if err := cfg.Set(s.field, *f.set[s.field]); err != nil {
				return nil, fmt.Errorf("--%s: %w", s.flag, err)
			}
		}
	}
	if cmd.Flags().Changed("insecure-http") {
		cfg.InsecureHTTP = f.insecureHTTP
	}
	return cfg, nil
}

func newServerCmd(e *env) *cobra.Command {
	f := &serverFlags{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the keyferry broker",
		Long: `Run the keyferry broker.

Configuration comes from a YAML file (--config), KEYFERRY_* environment
variables, and flags, in increasing precedence. See docs/configuration.md.

--dev runs a throwaway local broker: storage and audit log in a temp dir,
HTTP on 127.0.0.1, a built-in OIDC issuer (issuer "dev") and a printed admin
token. Never use it in production.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(e, cmd)
			if err != nil {
				return err
			}
			if f.dev {
				cfg.Dev = true
				if cfg.TLS.Enabled() || cfg.InsecureHTTP {
					return fmt.Errorf("--dev serves plain HTTP on loopback only: drop --tls-*/--insecure-http")
				}
				cleanup, err := server.DevDefaults(cfg)
				if err != nil {
					return err
				}
				defer cleanup()
				if cfg.Log.Format == "" {
					cfg.Log.Format = "text"
				}
			}
			cfg.SetDefaults()
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
			}
			log := newLogger(e, cfg)
			server.SetProcs(e.getenv) // fsyncs hold Ps: see server.ExtraProcs
			server.SetGC(e.getenv)    // a small live heap: see server.GCPercent
			return server.Run(cmd.Context(), cfg, server.Options{Out: e.stdout, DevAdminToken: f.devAdminToken, Logger: log})
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&f.insecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback address (behind a TLS proxy only)")
	cmd.Flags().BoolVar(&f.dev, "dev", false, "dev mode: temp storage, dev OIDC issuer, printed admin token, loopback HTTP")
	cmd.Flags().StringVar(&f.devAdminToken, "dev-admin-token", "", "fixed admin token for --dev (kfa_<16 hex>_<43 base64url>)")
	cmd.AddCommand(newServerInitCmd(e))
	return cmd
}

func newServerInitCmd(e *env) *cobra.Command {
	f := &serverFlags{}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the store and print the first admin token (once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(e, cmd)
			if err != nil {
				return err
			}
			cfg.SetDefaults()
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
			}
			return server.Init(cmd.Context(), cfg, e.stdout)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&f.insecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback address")
	return cmd
}

func newLogger(e *env, cfg *config.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	opts := logging.Options(lvl)
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(e.stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(e.stderr, opts))
}
