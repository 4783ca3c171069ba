package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyferry/keyferry/internal/admintoken"
	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/client"
)

func newAdminTokenCmd(e *env) *cobra.Command {
	var (
		name   string
		scopes []string
	)
	create := &cobra.Command{
		Use:   "create --name N --scope S...",
		Short: "Create an admin token (printed once)",
		Long:  "Create an admin token. Scopes: " + strings.Join(admintoken.AllScopes, ", "),
		Args:  cobra.NoArgs,
		RunE: e.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			out, err := c.CreateAdminToken(cmd.Context(), api.TokenCreateRequest{Name: name, Scopes: scopes})
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, out.Token)
			return nil
		}),
	}
	create.Flags().StringVar(&name, "name", "", "a name for the token")
	create.Flags().StringSliceVar(&scopes, "scope", nil, "scope to grant (repeatable)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List admin tokens (ids, names, scopes; never secrets)",
		Args:  cobra.NoArgs,
		RunE: e.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			ts, err := c.AdminTokens(cmd.Context())
			if err != nil {
				return err
			}
			return e.printJSON(tokenRows(ts))
		}),
	}
	del := deleteCmd(e, "delete ID", "Delete an admin token", "admin token", (*client.Client).DeleteAdminToken)
	return groupCmd("admin-token", "Manage admin API tokens", create, list, del)
}

// tokenRow is an admin token as `admin-token list` prints it: the keys in
// alphabetical order, as this command has always printed them.
type tokenRow struct {
	CreatedAt time.Time `json:"created_at"`
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Scopes    []string  `json:"scopes"`
}

func tokenRows(ts []api.Token) []tokenRow {
	if ts == nil {
		return nil
	}
	out := make([]tokenRow, len(ts))
	for i, t := range ts {
		out[i] = tokenRow{CreatedAt: t.CreatedAt, ID: t.ID, Name: t.Name, Scopes: t.Scopes}
	}
	return out
}
