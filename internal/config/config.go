// Package config loads the server's configuration: a YAML file, then
// KEYFERRY_* environment variables, then command-line flags, then defaults,
// then Validate, which reports every problem at once. Unknown YAML keys are
// rejected so that a typo never silently turns a setting off.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/keyferry/keyferry/internal/dur"
	"github.com/keyferry/keyferry/internal/storage"
)

// Defaults.
const (
	DefaultListen          = "127.0.0.1:8200"
	DefaultStorage         = "bolt:///var/lib/keyferry/keyferry.db"
	DefaultAuditPath       = "/var/log/keyferry/audit.log"
	DefaultRegion          = "us-east-1"
	DefaultMaxBodyBytes    = 64 << 10
	DefaultShutdownTimeout = 15 * time.Second
	DefaultCallTimeout     = 10 * time.Second
	DefaultMaxAttempts     = 4
)

// Config is the server configuration. Field names are the YAML keys.
type Config struct {
	// Listen is the address the API listens on (host:port).
	Listen string `json:"listen,omitempty"`
	// PublicURL is the URL clients use to reach the server; it is the
	// issuer URL of the dev OIDC issuer. Default: derived from Listen.
	PublicURL string `json:"public_url,omitempty"`
	TLS       TLS    `json:"tls,omitempty"`
	// InsecureHTTP allows plain HTTP on a non-loopback address. Never use
	// it outside a trusted, encrypted network (e.g. behind a TLS proxy).
	InsecureHTTP bool `json:"insecure_http,omitempty"`
	// Storage is a storage URL: bolt:///path/keyferry.db or memory:.
	Storage string `json:"storage,omitempty"`
	Audit   Audit  `json:"audit,omitempty"`
	AWS     AWS    `json:"aws,omitempty"`
	Log     Log    `json:"log,omitempty"`
	Leases  Leases `json:"leases,omitempty"`
	Limits  Limits `json:"limits,omitempty"`
	// ShutdownTimeout bounds graceful shutdown.
	ShutdownTimeout dur.Duration `json:"shutdown_timeout,omitempty"`
	// Dev enables dev mode (flag only: never from a file).
	Dev bool `json:"-"`
}

// TLS configures the API listener's certificate.
type TLS struct {
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// Audit configures the audit log.
type Audit struct {
	// Path of the JSON-lines audit file.
	Path string `json:"path,omitempty"`
}

// AWS configures the broker's AWS side.
type AWS struct {
	// Region is the default region for STS calls.
	Region string `json:"region,omitempty"`
	// STSEndpoint overrides the STS endpoint (any AWS-compatible STS).
	STSEndpoint string `json:"sts_endpoint,omitempty"`
	// IAMEndpoint overrides the IAM endpoint (iam_user roles, early
	// revocation).
	IAMEndpoint string `json:"iam_endpoint,omitempty"`
	// IAMRegion is the region IAM calls are signed for: us-east-1 (the
	// default) in the aws partition, cn-north-1 in aws-cn, us-gov-west-1
	// in aws-us-gov.
	IAMRegion string `json:"iam_region,omitempty"`
	// CallTimeout bounds each upstream call, retries included.
	CallTimeout dur.Duration `json:"call_timeout,omitempty"`
	// MaxAttempts is the number of attempts per upstream call.
	MaxAttempts int `json:"max_attempts,omitempty"`
}

// Leases tunes the lease lifecycle (docs/leases.md). Zero values keep
// the defaults.
type Leases struct {
	// RevocationWorkers is the number of concurrent upstream revocations
	// (default 8).
	RevocationWorkers int `json:"revocation_workers,omitempty"`
	// RevocationsPerSecond rate-limits upstream revocations against the
	// IAM account (default 5; each deletes a user: several IAM writes).
	RevocationsPerSecond float64 `json:"revocations_per_second,omitempty"`
	// MaxRevokeAttempts before a lease becomes irrevocable (default 10).
	MaxRevokeAttempts int `json:"max_revoke_attempts,omitempty"`
	// OrphanSweepInterval is how often IAM users under keyferry's paths
	// are checked for an owner (default 10m; "-1s" disables).
	OrphanSweepInterval dur.Duration `json:"orphan_sweep_interval,omitempty"`
	// OrphanGrace is the minimum age of an unowned user before deletion
	// (default 15m).
	OrphanGrace dur.Duration `json:"orphan_grace,omitempty"`
	// OrphanSweepDryRun only reports orphans.
	OrphanSweepDryRun bool `json:"orphan_sweep_dry_run,omitempty"`
	// UserPaths are the IAM paths swept (default [/keyferry/]).
	UserPaths []string `json:"user_paths,omitempty"`
}

// Log configures the server log.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `json:"level,omitempty"`
	// Format is json or text.
	Format string `json:"format,omitempty"`
}

// Limits bounds untrusted input.
type Limits struct {
	// MaxBodyBytes caps request bodies.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`
}

// Load reads path (if non-empty), applies the environment, and returns the
// config without defaults or validation: the caller applies flags, then
// calls SetDefaults and Validate.
func Load(path string, getenv func(string) string) (*Config, error) {
	c := &Config{}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := Parse(b, c); err != nil {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	if err := c.applyEnv(getenv); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse decodes YAML (or JSON) into c, rejecting unknown keys.
func Parse(b []byte, c *Config) error {
	if err := yaml.UnmarshalStrict(b, c); err != nil {
		return cleanYAMLError(err)
	}
	return nil
}

// cleanYAMLError strips the converter's noise from sigs.k8s.io/yaml errors
// so that users see `unknown field "listn"` rather than a JSON decoder trace.
func cleanYAMLError(err error) error {
	msg := err.Error()
	for _, p := range []string{"error unmarshaling JSON: while decoding JSON: ", "error unmarshaling JSON: ", "error converting YAML to JSON: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	msg = strings.ReplaceAll(msg, "json: ", "")
	return errors.New(msg)
}

// Env is the list of environment variables Load reads, with the field each
// sets. docs/configuration.md documents the same table.
var Env = []struct{ Name, Field string }{
	{"KEYFERRY_LISTEN", "listen"},
	{"KEYFERRY_PUBLIC_URL", "public_url"},
	{"KEYFERRY_TLS_CERT_FILE", "tls.cert_file"},
	{"KEYFERRY_TLS_KEY_FILE", "tls.key_file"},
	{"KEYFERRY_INSECURE_HTTP", "insecure_http"},
	{"KEYFERRY_STORAGE", "storage"},
	{"KEYFERRY_AUDIT_PATH", "audit.path"},
	{"KEYFERRY_AWS_REGION", "aws.region"},
	{"KEYFERRY_AWS_STS_ENDPOINT", "aws.sts_endpoint"},
	{"KEYFERRY_AWS_IAM_ENDPOINT", "aws.iam_endpoint"},
	{"KEYFERRY_AWS_IAM_REGION", "aws.iam_region"},
	{"KEYFERRY_LOG_LEVEL", "log.level"},
	{"KEYFERRY_LOG_FORMAT", "log.format"},
}

func (c *Config) applyEnv(getenv func(string) string) error {
	var errs []error
	for _, e := range Env {
		v := getenv(e.Name)
		if v == "" {
			continue
		}
		if err := c.Set(e.Field, v); err != nil {
			errs = append(errs, fmt.Errorf("config: %s: %w", e.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Set assigns one field by its dotted YAML name; flags and env use it.
func (c *Config) Set(field, v string) error {
	if field == "insecure_http" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
		c.InsecureHTTP = b
		return nil
	}
	p, ok := map[string]*string{
		"listen": &c.Listen, "public_url": &c.PublicURL, "storage": &c.Storage, "audit.path": &c.Audit.Path,
		"tls.cert_file": &c.TLS.CertFile, "tls.key_file": &c.TLS.KeyFile,
		"aws.region": &c.AWS.Region, "aws.sts_endpoint": &c.AWS.STSEndpoint,
		"aws.iam_endpoint": &c.AWS.IAMEndpoint, "aws.iam_region": &c.AWS.IAMRegion,
		"log.level": &c.Log.Level, "log.format": &c.Log.Format,
	}[field]
	if !ok {
		return fmt.Errorf("unknown field %q", field)
	}
	*p = v
	return nil
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Storage == "" {
		c.Storage = DefaultStorage
	}
	if c.Audit.Path == "" {
		c.Audit.Path = DefaultAuditPath
	}
	if c.AWS.Region == "" {
		c.AWS.Region = DefaultRegion
	}
	if c.AWS.CallTimeout == 0 {
		c.AWS.CallTimeout = dur.Duration(DefaultCallTimeout)
	}
	if c.AWS.MaxAttempts == 0 {
		c.AWS.MaxAttempts = DefaultMaxAttempts
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.Limits.MaxBodyBytes == 0 {
		c.Limits.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = dur.Duration(DefaultShutdownTimeout)
	}
	if c.PublicURL == "" {
		scheme := "https"
		if !c.TLS.Enabled() {
			scheme = "http"
		}
		c.PublicURL = scheme + "://" + c.Listen
	}
}

var regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)

// Validate checks the whole config and returns every problem at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		bad("listen", "%q is not host:port", c.Listen)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		bad("listen", "port %q is not a number in 0-65535", port)
	}
	switch {
	case c.TLS.Enabled():
		if c.TLS.CertFile == "" || c.TLS.KeyFile == "" {
			bad("tls", "set both cert_file and key_file")
		} else if _, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile); err != nil {
			bad("tls", "cannot load the certificate and key: %v", err)
		}
	case err == nil && !IsLoopback(host) && !c.InsecureHTTP:
		bad("listen", "plain HTTP on non-loopback address %q: configure tls.cert_file and tls.key_file, or set insecure_http: true if a TLS proxy terminates in front of keyferry", c.Listen)
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("public_url", "%q is not an http(s) URL", c.PublicURL)
		}
	}
	if c.Storage == "" {
		bad("storage", "required")
	} else if _, err := storage.ParseURL(c.Storage); err != nil {
		bad("storage", "%s", strings.TrimPrefix(err.Error(), "storage: "))
	}
	if c.Audit.Path == "" {
		bad("audit.path", "required: keyferry does not issue credentials without an audit log")
	}
	if c.AWS.Region != "" && !regionRE.MatchString(c.AWS.Region) {
		bad("aws.region", "%q is not a region name like us-east-1", c.AWS.Region)
	}
	if c.AWS.IAMRegion != "" && !regionRE.MatchString(c.AWS.IAMRegion) {
		bad("aws.iam_region", "%q is not a region name like us-east-1", c.AWS.IAMRegion)
	}
	for field, ep := range map[string]string{"aws.sts_endpoint": c.AWS.STSEndpoint, "aws.iam_endpoint": c.AWS.IAMEndpoint} {
		if ep == "" {
			continue
		}
		u, err := url.Parse(ep)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			bad(field, "%q is not an http(s) URL", ep)
		case u.Scheme == "http" && !IsLoopback(u.Hostname()):
			bad(field, "plain HTTP is only allowed to a loopback address, got %q", ep)
		}
	}
	l := c.Leases
	if l.RevocationWorkers < 0 || l.RevocationWorkers > 256 {
		bad("leases.revocation_workers", "must be 1-256, got %d", l.RevocationWorkers)
	}
	if l.RevocationsPerSecond < 0 {
		bad("leases.revocations_per_second", "must be positive, got %g", l.RevocationsPerSecond)
	}
	if l.MaxRevokeAttempts < 0 || l.MaxRevokeAttempts > 1000 {
		bad("leases.max_revoke_attempts", "must be 1-1000, got %d", l.MaxRevokeAttempts)
	}
	if l.OrphanGrace < 0 {
		bad("leases.orphan_grace", "must not be negative")
	}
	for i, p := range l.UserPaths {
		switch {
		case p == "/":
			bad(fmt.Sprintf("leases.user_paths[%d]", i), "the root path would make the orphan sweep delete every IAM user of the account: give keyferry a path of its own, like /keyferry/")
		case len(p) < 3 || !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/"):
			bad(fmt.Sprintf("leases.user_paths[%d]", i), "%q is not an IAM path (/name/)", p)
		}
	}
	if c.AWS.CallTimeout < 0 || (c.AWS.CallTimeout != 0 && c.AWS.CallTimeout.D() < 100*time.Millisecond) {
		bad("aws.call_timeout", "must be at least 100ms, got %s", c.AWS.CallTimeout)
	}
	if c.AWS.MaxAttempts < 0 || c.AWS.MaxAttempts > 20 {
		bad("aws.max_attempts", "must be 1-20, got %d", c.AWS.MaxAttempts)
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "", "json", "text":
	default:
		bad("log.format", "%q: want json or text", c.Log.Format)
	}
	if c.Limits.MaxBodyBytes < 0 || c.Limits.MaxBodyBytes > 16<<20 {
		bad("limits.max_body_bytes", "must be between 1 and 16777216, got %d", c.Limits.MaxBodyBytes)
	}
	if c.ShutdownTimeout < 0 {
		bad("shutdown_timeout", "must not be negative")
	}
	return errors.Join(errs...)
}

// IsLoopback reports whether host (a name or an IP, no port) is loopback.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.IsLoopback()
}
