package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/keyferry/keyferry/internal/audit"
)

func newAuditCmd(e *env) *cobra.Command {
	verify := &cobra.Command{
		Use:   "verify FILE",
		Short: "Verify the hash chain of an audit log file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			rep, err := audit.Verify(f)
			if err != nil {
				return &exitError{code: 3, msg: fmt.Sprintf("%s: TAMPERED OR DAMAGED: %v", args[0], err)}
			}
			fmt.Fprintf(e.stdout, "%s: ok: %d events (seq %d-%d), last hash %s\n", args[0], rep.Events, rep.First, rep.Last, rep.LastHash)
			if rep.FirstPrevHash != "" {
				fmt.Fprintf(e.stdout, "note: the file starts mid-chain (prev_hash %s): check it against the previous file's last hash\n", rep.FirstPrevHash)
			}
			return nil
		},
	}
	return groupCmd("audit", "Work with the audit log", verify)
}
