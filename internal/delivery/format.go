// Package delivery hands credentials to unmodified AWS tools through the
// channels the AWS SDKs read. This file holds the printable formats: shell
// exports, dotenv (GitLab artifacts:reports:dotenv), JSON, and the
// credential_process document. docs/delivery.md describes each contract
// as the SDKs read it.
package delivery

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/keyferry/keyferry/internal/api"
)

// Formats lists the names accepted by Write.
var Formats = []string{"env", "dotenv", "json", "credential-process"}

// Write prints creds in format to w. It is the only place keyferry prints
// a secret, and it does so only because the user asked for that format.
func Write(w io.Writer, format string, resp *api.CredsResponse) error {
	c := resp.Credentials
	switch format {
	case "env":
		for _, kv := range envPairs(resp) {
			if _, err := fmt.Fprintf(w, "export %s=%s\n", kv[0], shellQuote(kv[1])); err != nil {
				return err
			}
		}
		return nil
	case "dotenv":
		for _, kv := range envPairs(resp) {
			if strings.ContainsAny(kv[1], "\n\r") {
				return fmt.Errorf("value of %s contains a newline: cannot write dotenv", kv[0])
			}
			if _, err := fmt.Fprintf(w, "%s=%s\n", kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(resp)
	case "credential-process":
		doc := ProcessCredentials{
			Version: 1, AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey,
			SessionToken: c.SessionToken, AccountID: c.AccountID,
		}
		if !c.Expiration.IsZero() {
			doc.Expiration = c.Expiration.UTC().Format(time.RFC3339)
		}
		return json.NewEncoder(w).Encode(doc)
	}
	return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

// ProcessCredentials is the credential_process stdout document (Version 1).
type ProcessCredentials struct {
	Version         int    `json:"Version"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	SessionToken    string `json:"SessionToken,omitempty"`
	Expiration      string `json:"Expiration,omitempty"`
	AccountID       string `json:"AccountId,omitempty"`
}

func envPairs(resp *api.CredsResponse) [][2]string {
	c := resp.Credentials
	out := [][2]string{
		{"AWS_ACCESS_KEY_ID", c.AccessKeyID},
		{"AWS_SECRET_ACCESS_KEY", c.SecretAccessKey},
	}
	if c.SessionToken != "" {
		out = append(out, [2]string{"AWS_SESSION_TOKEN", c.SessionToken})
	}
	if !c.Expiration.IsZero() {
		out = append(out, [2]string{"AWS_CREDENTIAL_EXPIRATION", c.Expiration.UTC().Format(time.RFC3339)})
	}
	if resp.Region != "" {
		// botocore reads only AWS_DEFAULT_REGION; the Go SDK and aws-cli v2
		// prefer AWS_REGION: set both.
		out = append(out, [2]string{"AWS_REGION", resp.Region}, [2]string{"AWS_DEFAULT_REGION", resp.Region})
	}
	return out
}

// shellQuote single-quotes s for POSIX shells.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
