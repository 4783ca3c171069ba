package logging

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const (
	adminToken = "kfa_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	handle     = "kfr_01JABCDEFGHJKMNPQRSTVWXYZ0_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	jwt        = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwcm9qZWN0X3BhdGg6ZyJ9.c2lnbmF0dXJl"
	awsSecret  = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

// TestRedactRemovesSecrets logs every way a secret can slip into a log
// line, through both handlers keyferry uses, and checks none survives
// while the harmless attributes do.
func TestRedactRemovesSecrets(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			h := slog.Handler(slog.NewTextHandler(&buf, Options(slog.LevelDebug)))
			if format == "json" {
				h = slog.NewJSONHandler(&buf, Options(slog.LevelDebug))
			}
			log := slog.New(h).With("token", jwt)
			log.Info("secret keys",
				"secret_access_key", awsSecret, "SessionToken", "IQoJb3JpZ2luX2VjEXAMPLE", "refresh_handle", handle,
				"authorization", "Bearer "+adminToken, slog.Group("req", "password", "hunter2", "admin_token", adminToken))
			log.Warn("token-shaped values under harmless keys",
				"message", "presented "+adminToken+" and "+handle, Err, errors.New("verify "+jwt+": expired"),
				"wrapped", fmt.Errorf("outer: %w", errors.New("inner "+jwt)))
			log.Info("harmless", AccessKeyID, "ASIAEXAMPLE000000001", LeaseID, "01JABCDEFGHJKMNPQRSTVWXYZ0", "role", "deploy")
			out := buf.String()
			for _, secret := range []string{adminToken, handle, jwt, awsSecret, "IQoJb3JpZ2luX2VjEXAMPLE", "hunter2", "c2lnbmF0dXJl"} {
				if strings.Contains(out, secret) {
					t.Errorf("the log holds %q:\n%s", secret, out)
				}
			}
			for _, kept := range []string{"ASIAEXAMPLE000000001", "01JABCDEFGHJKMNPQRSTVWXYZ0", "deploy", "verify " + Redacted + ": expired", "presented " + Redacted} {
				if !strings.Contains(out, kept) {
					t.Errorf("the log lost %q:\n%s", kept, out)
				}
			}
		})
	}
}

func FuzzRedactNeverLeaksATokenValue(f *testing.F) {
	f.Add("x " + adminToken + " y")
	f.Add(jwt)
	f.Add("eyJ.eyJ.")
	f.Fuzz(func(t *testing.T, s string) {
		a := Redact(nil, slog.String("message", s))
		if secretValue.MatchString(a.Value.String()) {
			t.Errorf("Redact(%q) = %q still holds a token", s, a.Value.String())
		}
	})
}
