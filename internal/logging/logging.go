// Package logging holds what keyferry's logs share: the attribute keys
// that several components use, and the redaction layer every logger the
// binary creates goes through (Redact, a slog.HandlerOptions.ReplaceAttr).
//
// Components log secrets by mistake, never on purpose: a token passed to
// a helper that logs its arguments, an error message that quotes a
// request. Redact is the net under that: attributes whose key names a
// secret lose their value, and anything that looks like a keyferry admin
// token, a refresh handle or a JWT is cut out of every string and error
// value, whatever its key.
package logging

import (
	"log/slog"
	"regexp"
	"strings"
)

// Attribute keys shared by several components. Each package may define
// more of its own; these must mean the same everywhere.
const (
	// Err is the key of an error, everywhere ("err", never "error").
	Err         = "err"
	RequestID   = "request_id"
	LeaseID     = "lease_id"
	AccessKeyID = "access_key_id"
	Role        = "role"
	Issuer      = "issuer"
	Path        = "path"
)

// Redacted replaces a secret's value.
const Redacted = "[REDACTED]"

// secretKeys are attribute keys whose values are secrets. Matching is on
// the key's lower-case form, in any group.
var secretKeys = map[string]bool{
	"token": true, "secret": true, "secret_access_key": true, "secretaccesskey": true,
	"session_token": true, "sessiontoken": true, "refresh_handle": true, "password": true,
	"authorization": true, "admin_token": true, "web_identity_token": true, "webidentitytoken": true,
	"client_secret": true, "jwt": true, "id_token": true,
}

// secretValue matches keyferry admin tokens, refresh handles and JWTs
// (three base64url segments, the first a JSON object's).
var secretValue = regexp.MustCompile(`kf[ar]_[0-9A-Za-z]+_[A-Za-z0-9_-]{20,}|eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*`)

// Redact is a slog.HandlerOptions.ReplaceAttr that removes secrets: the
// value of an attribute with a secret's key, and every token-shaped part
// of a string or error value.
func Redact(_ []string, a slog.Attr) slog.Attr {
	if secretKeys[strings.ToLower(a.Key)] {
		return slog.String(a.Key, Redacted)
	}
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); secretValue.MatchString(s) {
			return slog.String(a.Key, secretValue.ReplaceAllString(s, Redacted))
		}
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			if s := err.Error(); secretValue.MatchString(s) {
				return slog.String(a.Key, secretValue.ReplaceAllString(s, Redacted))
			}
		}
	}
	return a
}

// Options returns handler options at level with Redact.
func Options(level slog.Leveler) *slog.HandlerOptions {
	return &slog.HandlerOptions{Level: level, ReplaceAttr: Redact}
}
