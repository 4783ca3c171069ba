package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyferry/keyferry/internal/delivery"
)

func newServeCmd(e *env) *cobra.Command {
	var (
		listen, endpoints, path, tokenFile, roleName string
		cidrs, hosts                                 []string
		jf                                           jobFlags
	)
	cmd := &cobra.Command{
		Use:   "serve --role R",
		Short: "Serve credentials on an IMDSv2-compatible and/or container-credentials endpoint",
		Long: `Serve a role's credentials to unmodified tools on a runner host or from a sidecar,
the way EC2 instance metadata (IMDSv2) and the ECS/EKS container endpoint do, and
keep them refreshed.

  keyferry serve --role deploy --listen 127.0.0.1:9911 --endpoints imds
  export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9911/

  keyferry serve --role deploy --endpoints container --token-file-out /run/kf/token
  export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:PORT/creds
  export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=/run/kf/token

Only loopback callers are served unless --allow-cidr names more (a pod network
for a sidecar). The Host header must name the server (DNS-rebinding defence):
add 169.254.169.254 or 169.254.170.2 with --host when you route those addresses
here. IMDSv2 only: PUT /latest/api/token first (TTL 1-21600 s); requests that
carry X-Forwarded-For are refused. The server stops on SIGINT/SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := jf.checkRole(); err != nil {
				return err
			}
			eps, err := delivery.ParseEndpoints(endpoints)
			if err != nil {
				return err
			}
			var allowed []netip.Prefix
			for _, c := range cidrs {
				p, err := netip.ParsePrefix(c)
				if err != nil {
					return fmt.Errorf("--allow-cidr %q: %w", c, err)
				}
				allowed = append(allowed, p)
			}
			c, tokens, err := jf.connect(e)
			if err != nil {
				return err
			}
			src := &delivery.Cached{Source: &delivery.Broker{Client: c, Role: jf.role, Tokens: tokens, TTLSeconds: jf.ttl}}
			// Fail fast on a broker or token problem, before tools rely on us.
			if _, err := src.Credentials(cmd.Context()); err != nil {
				return err
			}
			srv, err := delivery.NewLocalServer(delivery.LocalConfig{
				Addr: listen, Endpoints: eps, ContainerPath: path, RoleName: roleName,
				AllowedCIDRs: allowed, Hosts: hosts, Source: src, Logger: newCLILogger(e),
			})
			if err != nil {
				return err
			}
			if eps&delivery.EndpointContainer != 0 {
				if tokenFile == "" {
					dir, err := os.MkdirTemp("", "keyferry-serve-")
					if err != nil {
						srv.Close()
						return err
					}
					defer os.RemoveAll(dir)
					tokenFile = filepath.Join(dir, "token")
				}
				if err := writeSecretFile(tokenFile, srv.ContainerToken()); err != nil {
					srv.Close()
					return err
				}
			}
			w := e.stdout
			fmt.Fprintf(w, "keyferry serve: role %s on %s\n", jf.role, srv.Addr())
			if u := srv.IMDSEndpoint(); u != "" {
				fmt.Fprintf(w, "  export AWS_EC2_METADATA_SERVICE_ENDPOINT=%s\n", u)
			}
			if u := srv.ContainerURL(); u != "" {
				fmt.Fprintf(w, "  export AWS_CONTAINER_CREDENTIALS_FULL_URI=%s\n  export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=%s\n", u, tokenFile)
			}
			return srv.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", delivery.DefaultLocalAddr, "listen address (a random loopback port by default)")
	cmd.Flags().StringVar(&endpoints, "endpoints", "both", "imds, container or both")
	cmd.Flags().StringVar(&path, "container-path", "", "path of the container endpoint (default "+delivery.DefaultContainerPath+")")
	cmd.Flags().StringVar(&tokenFile, "token-file-out", "", "write the container endpoint's token here (mode 0600, no trailing newline)")
	cmd.Flags().StringVar(&roleName, "imds-role-name", "", "role name listed by the IMDS endpoint (default "+delivery.DefaultIMDSRole+")")
	cmd.Flags().StringSliceVar(&cidrs, "allow-cidr", nil, "also serve callers from this network (repeatable)")
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "also accept this Host header (repeatable), e.g. 169.254.169.254")
	jf.register(cmd)
	return cmd
}

// writeSecretFile writes s with mode 0600 and no trailing newline (SDKs
// reject a token file that ends in one).
func writeSecretFile(path, s string) error {
	if strings.ContainsAny(s, "\r\n") {
		return errors.New("refusing to write a secret that contains a newline")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
