package identity

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/keyferry/keyferry/internal/cikind"
	"github.com/keyferry/keyferry/internal/dur"
)

// Defaults applied to an Issuer's zero-valued fields.
const (
	DefaultAlgorithm           = "RS256"
	DefaultLeeway              = 30 * time.Second
	MaxLeeway                  = 60 * time.Second
	DefaultJWKSRefreshCooldown = 30 * time.Second
)

// DefaultMaxTokenAge returns the maximum token age used for kind when an
// Issuer's MaxTokenAge is zero.
func DefaultMaxTokenAge(k Kind) time.Duration {
	return cikind.Of(string(k)).MaxTokenAge()
}

var issuerNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidateIssuer checks one issuer's configuration and reports every
// problem at once; each message names the offending field.
func ValidateIssuer(is Issuer) error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}

	if !issuerNameRE.MatchString(is.Name) {
		add("name", "%q must be 1-63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit", is.Name)
	}
	if !is.Kind.Valid() {
		add("kind", "%q must be one of %s", is.Kind, cikind.NameList())
	}
	if is.URL == "" {
		add("url", "is required")
	} else if err := checkFetchURL(is.URL); err != nil {
		add("url", "%v", err)
	}
	if is.JWKSURL != "" {
		if err := checkFetchURL(is.JWKSURL); err != nil {
			add("jwks_url", "%v", err)
		}
		if len(is.PublicKeys) > 0 {
			add("jwks_url", "set together with public_keys: use one key source")
		}
	}

	algs := is.Algorithms
	if len(algs) == 0 {
		algs = []string{DefaultAlgorithm}
	}
	var allowed algSet
	for i, a := range is.Algorithms {
		switch {
		case strings.EqualFold(a, "none"):
			add(fmt.Sprintf("algorithms[%d]", i), "none is never accepted: it means an unsigned token anyone can forge")
		case len(a) >= 2 && strings.EqualFold(a[:2], "HS"):
			add(fmt.Sprintf("algorithms[%d]", i), "%s is never accepted: HMAC needs a shared secret, and with a public key as the secret anyone could forge tokens", a)
		case algBit(a) == 0:
			add(fmt.Sprintf("algorithms[%d]", i), "%q is not supported (use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA)", a)
		}
	}
	for _, a := range algs {
		allowed |= algBit(a)
	}

	if len(is.PublicKeys) > 0 {
		keys, err := parseStaticKeys(is.PublicKeys)
		if err != nil {
			errs = append(errs, err)
		} else if allowed != 0 {
			usable := false
			for _, k := range keys {
				usable = usable || k.algs&allowed != 0
			}
			if !usable {
				add("public_keys", "no key can verify any of the allowed algorithms %v", algs)
			}
		}
	}
	if is.CACert != "" {
		if _, err := certPoolFromPEM(is.CACert); err != nil {
			add("ca_cert", "%v", err)
		}
	}

	if len(is.Audiences) == 0 {
		add("audiences", "at least one audience is required")
	}
	for i, a := range is.Audiences {
		if strings.TrimSpace(a) == "" {
			add(fmt.Sprintf("audiences[%d]", i), "must not be empty")
		}
	}

	if l := is.Leeway.D(); l < 0 || l > MaxLeeway {
		add("leeway", "%s must be between 0s and %s", l, MaxLeeway)
	}
	if is.MaxTokenAge < 0 {
		add("max_token_age", "%s must not be negative", is.MaxTokenAge)
	}
	if is.JWKSRefreshCooldown < 0 {
		add("jwks_refresh_cooldown", "%s must not be negative", is.JWKSRefreshCooldown)
	}
	if is.ReplayMaxUses < 0 {
		add("replay_max_uses", "%d must not be negative", is.ReplayMaxUses)
	}

	if len(errs) == 0 {
		return nil
	}
	label := is.Name
	if label == "" {
		label = is.URL
	}
	return fmt.Errorf("issuer %q: %w", label, errors.Join(errs...))
}

// withDefaults returns a copy of is with zero fields set to their defaults
// and slices copied, so the caller's config cannot change under us.
func withDefaults(is Issuer) Issuer {
	is.Audiences = append([]string(nil), is.Audiences...)
	is.PublicKeys = append([]string(nil), is.PublicKeys...)
	if len(is.Algorithms) == 0 {
		is.Algorithms = []string{DefaultAlgorithm}
	} else {
		is.Algorithms = append([]string(nil), is.Algorithms...)
	}
	if is.Leeway == 0 {
		is.Leeway = dur.Duration(DefaultLeeway)
	}
	if is.MaxTokenAge == 0 {
		is.MaxTokenAge = dur.Duration(DefaultMaxTokenAge(is.Kind))
	}
	if is.JWKSRefreshCooldown == 0 {
		is.JWKSRefreshCooldown = dur.Duration(DefaultJWKSRefreshCooldown)
	}
	return is
}

// checkFetchURL enforces the rule for URLs keyferry fetches keys from (and
// for issuer URLs): absolute, https, no query, fragment or credentials;
// plain http only for a loopback host (dev mode).
func checkFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a valid URL", raw)
	}
	if !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%q must be an absolute URL like https://gitlab.example.com", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return fmt.Errorf("%q must use https (http is allowed only for localhost or a loopback IP)", raw)
		}
	default:
		return fmt.Errorf("%q must use https", raw)
	}
	if u.User != nil {
		return fmt.Errorf("%q must not contain credentials", raw)
	}
	if u.RawQuery != "" || u.ForceQuery {
		return fmt.Errorf("%q must not have a query", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("%q must not have a fragment", raw)
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// certPoolFromPEM returns the system roots plus every certificate in
// pemData. Every PEM block must be a parseable CERTIFICATE.
func certPoolFromPEM(pemData string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	rest := []byte(pemData)
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", n, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("unexpected data after the last PEM certificate")
	}
	return pool, nil
}
