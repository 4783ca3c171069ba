package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/client"
)

var issuers = storedObject[api.Issuer]{
	kind:   "issuer",
	name:   func(is *api.Issuer) *string { return &is.Name },
	put:    (*client.Client).PutIssuer,
	get:    (*client.Client).Issuer,
	list:   (*client.Client).Issuers,
	del:    (*client.Client).DeleteIssuer,
	header: "NAME\tKIND\tURL\tAUDIENCES",
	row: func(w io.Writer, is api.Issuer) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", is.Name, is.Kind, is.URL, strings.Join(is.Audiences, ","))
	},
	writeShort:  "Create or update an issuer from a YAML/JSON file",
	readShort:   "Show an issuer",
	listShort:   "List issuers",
	deleteShort: "Delete an issuer no role uses",
}

func newIssuerCmd(e *env) *cobra.Command {
	return groupCmd("issuer", "Manage trusted token issuers (GitLab, GitHub, Kubernetes, generic OIDC)", issuers.commands(e)...)
}
