package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/client"
)

var roles = storedObject[api.Role]{
	kind:   "role",
	name:   func(r *api.Role) *string { return &r.Name },
	put:    (*client.Client).PutRole,
	get:    (*client.Client).Role,
	list:   (*client.Client).Roles,
	del:    (*client.Client).DeleteRole,
	header: "NAME\tISSUER\tTYPE\tROLE ARN\tTTL",
	row: func(w io.Writer, r api.Role) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Issuer, r.AWS.Type, r.AWS.RoleARN, r.AWS.TTL)
	},
	writeShort:  "Create or update a role from a YAML/JSON file",
	readShort:   "Show a role (as stored, defaults filled in)",
	listShort:   "List roles",
	deleteShort: "Delete a role (issued leases stay until they expire or are revoked)",
}

func newRoleCmd(e *env) *cobra.Command {
	return groupCmd("role", "Manage roles (who gets which AWS credentials)", append(roles.commands(e), newRoleTestCmd(e))...)
}

func newRoleTestCmd(e *env) *cobra.Command {
	var (
		role, token, claims string
		tf                  tokenFlags
		asJSON              bool
	)
	cmd := &cobra.Command{
		Use:   "test --role R (--token T | --token-env VAR | --token-file F | --claims JSON)",
		Short: "Explain whether a token (or a set of claims) matches a role; mints nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if role == "" {
				return errors.New("--role is required")
			}
			var req api.RoleTestRequest
			switch {
			case claims != "":
				if token != "" || tf.env != "" || tf.file != "" {
					return errors.New("give either claims or a token, not both")
				}
				if err := json.Unmarshal([]byte(claims), &req.Claims); err != nil {
					return fmt.Errorf("--claims is not a JSON object: %w", err)
				}
			case token != "":
				req.Token = token
			default:
				t, err := tf.read(e, cmd)
				if err != nil {
					return err
				}
				req.Token = t
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			res, err := c.TestRole(cmd.Context(), role, req)
			if err != nil {
				return err
			}
			if asJSON {
				if err := e.printJSON(res); err != nil {
					return err
				}
			} else {
				printRoleTest(e, res)
			}
			if !res.Allowed {
				return &exitError{code: 2}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&role, "role", "r", "", "role to test")
	cmd.Flags().StringVar(&token, "token", "", "job token (JWT)")
	cmd.Flags().StringVar(&claims, "claims", "", "claims as a JSON object instead of a token")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	tf.register(cmd)
	return cmd
}

func printRoleTest(e *env, res *api.RoleTestResponse) {
	w := e.stdout
	if res.TokenError != nil {
		fmt.Fprintf(w, "token rejected: %s: %s\n", res.TokenError.Code, res.TokenError.Message)
		return
	}
	if res.Identity != nil {
		fmt.Fprintf(w, "identity: %s (project %s, ref %s, pipeline %s, job %s)\n", res.Identity.Subject, res.Identity.Project, res.Identity.Ref, res.Identity.Pipeline, res.Identity.Job)
	}
	for _, c := range res.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %-24s %s\n", mark, c.Name, c.Detail)
	}
	if res.Allowed {
		fmt.Fprintf(w, "role %s: ALLOWED\n  session name: %s\n", res.Role, res.SessionName)
		if len(res.Tags) > 0 {
			var tags []string
			for k, v := range res.Tags {
				tags = append(tags, k+"="+v)
			}
			fmt.Fprintf(w, "  tags: %s\n", strings.Join(slices.Sorted(slices.Values(tags)), ", "))
		}
		if res.SourceIdentity != "" {
			fmt.Fprintf(w, "  source identity: %s\n", res.SourceIdentity)
		}
		return
	}
	fmt.Fprintf(w, "role %s: DENIED\n", res.Role)
}
