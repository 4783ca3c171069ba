// Command keyferry is a credential broker for CI: a server that exchanges
// CI identity tokens for short-lived AWS credentials, the runner-side
// client that delivers them to unmodified tools, and operator tools.
package main

import (
	"os"

	"github.com/keyferry/keyferry/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
