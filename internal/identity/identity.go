// Package identity verifies CI identity tokens (GitLab id_tokens, GitHub
// Actions OIDC tokens, Kubernetes service-account tokens and the other
// kinds of internal/cikind, or generic OIDC JWTs) against configured
// issuers and turns them into an Identity. What differs between kinds
// lives in internal/cikind.
//
// Validation follows RFC 8725 (JWT best current practices) and OpenID
// Connect Core: exact iss, an algorithm allow-list (never none or HS*),
// kid lookup with a rate-limited JWKS refresh, exp/nbf/iat with at most
// 60 s of leeway and a maximum token age, a required audience, the
// CI-shape check of the issuer's kind, and an optional jti replay cache.
// Every rejection is an *Error with a stable Code.
package identity

import (
	"errors"
	"time"

	"github.com/keyferry/keyferry/internal/cikind"
	"github.com/keyferry/keyferry/internal/dur"
)

// Kind is the flavour of an issuer, the name of a cikind.Kind; it selects
// the CI-shape checks, the known claim set and the identity summary.
type Kind string

// Issuer kinds. Every name cikind.Names lists is a valid Kind.
const (
	KindGitLab     Kind = cikind.GitLab
	KindGitHub     Kind = cikind.GitHub
	KindKubernetes Kind = cikind.Kubernetes
	KindGeneric    Kind = cikind.Generic
)

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return cikind.Lookup(string(k)) != nil }

// Issuer is the configuration of one trusted token issuer. Exactly one key
// source is used: PublicKeys if set, else JWKSURL if set, else OIDC
// discovery at URL + "/.well-known/openid-configuration".
type Issuer struct {
	// Name identifies the issuer in roles ("issuer: gitlab").
	Name string `json:"name"`
	// Kind selects CI-shape checks: one of cikind.Names.
	Kind Kind `json:"kind"`
	// URL is the exact expected "iss" claim, and the discovery base.
	URL string `json:"url"`
	// JWKSURL skips discovery and fetches keys from this URL.
	JWKSURL string `json:"jwks_url,omitempty"`
	// PublicKeys are static verification keys: PEM public keys or a JWKS
	// JSON document. No network access is made when set.
	PublicKeys []string `json:"public_keys,omitempty"`
	// CACert is a PEM bundle trusted for discovery and JWKS fetches, in
	// addition to the system roots.
	CACert string `json:"ca_cert,omitempty"`
	// Audiences lists accepted "aud" values; at least one is required.
	Audiences []string `json:"audiences"`
	// AllowMultipleAudiences accepts tokens whose aud array has more than
	// one value (one must be in Audiences). Off by default: such a token
	// is also usable at other relying parties.
	AllowMultipleAudiences bool `json:"allow_multiple_audiences,omitempty"`
	// Algorithms is the signature algorithm allow-list (default RS256).
	// none and HS* are never accepted.
	Algorithms []string `json:"algorithms,omitempty"`
	// Leeway is the clock-skew allowance for exp/nbf/iat (default 30s,
	// at most 60s).
	Leeway dur.Duration `json:"leeway,omitempty"`
	// MaxTokenAge rejects tokens whose iat is older than this (default per
	// kind: cikind.Kind.MaxTokenAge).
	MaxTokenAge dur.Duration `json:"max_token_age,omitempty"`
	// JWKSRefreshCooldown is the minimum time between JWKS fetches caused
	// by unknown kids (default 30s).
	JWKSRefreshCooldown dur.Duration `json:"jwks_refresh_cooldown,omitempty"`
	// ReplayMaxUses, when > 0, lets each jti be exchanged at most this many
	// times while the token is valid; tokens without jti are then refused.
	ReplayMaxUses int `json:"replay_max_uses,omitempty"`
}

// Identity is a verified CI identity.
type Identity struct {
	// Issuer is the configured issuer's Name; IssuerURL its iss value.
	Issuer    string
	IssuerURL string
	Kind      Kind
	Subject   string
	Audience  []string
	JTI       string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// Claims holds every claim of the token, decoded from JSON with numbers
	// as json.Number-free Go values: string, bool, float64 or int64 for
	// integral numbers, []any, map[string]any.
	Claims map[string]any
}

// Summary is the part of a CI identity that leases store and audit events
// record: who (issuer URL, subject), which project, ref, pipeline, job and
// user. It never includes the token. Its JSON is part of the lease store's
// format: fields are only ever added.
type Summary struct {
	Issuer    string `json:"iss,omitempty"`
	Subject   string `json:"sub,omitempty"`
	Project   string `json:"project,omitempty"`
	ProjectID string `json:"project_id,omitempty"`
	Ref       string `json:"ref,omitempty"`
	Pipeline  string `json:"pipeline,omitempty"`
	Job       string `json:"job,omitempty"`
	User      string `json:"user,omitempty"`
}

// Summary returns the fields recorded in leases and audit events.
func (id *Identity) Summary() Summary {
	f := cikind.Of(string(id.Kind)).Summarize(id.Claims)
	return Summary{
		Issuer: id.IssuerURL, Subject: id.Subject,
		Project: f.Project, ProjectID: f.ProjectID, Ref: f.Ref, Pipeline: f.Pipeline, Job: f.Job, User: f.User,
	}
}

// Rejection codes. They are part of the API: never rename one.
const (
	CodeTokenMissing         = "token_missing"
	CodeTokenTooLarge        = "token_too_large"
	CodeTokenMalformed       = "token_malformed"
	CodeTokenEncrypted       = "token_encrypted"
	CodeUnsupportedAlgorithm = "unsupported_algorithm"
	CodeForbiddenHeader      = "forbidden_header"
	CodeUnknownIssuer        = "unknown_issuer"
	CodeUnknownKey           = "unknown_key"
	CodeSignatureInvalid     = "signature_invalid"
	CodeTokenExpired         = "token_expired"
	CodeTokenNotYetValid     = "token_not_yet_valid"
	CodeTokenIssuedInFuture  = "token_issued_in_future"
	CodeTokenTooOld          = "token_too_old"
	CodeAudienceMismatch     = "audience_mismatch"
	CodeMultipleAudiences    = "multiple_audiences"
	CodeNotACIToken          = "not_a_ci_token"
	CodeTokenReplayed        = "token_replayed"
	CodeIssuerUnavailable    = "issuer_unavailable"
	// CodeReplayCacheFull: replay protection is on for the issuer and the
	// bounded jti cache is full of live entries; the token is refused
	// (fail closed) and may be retried later.
	CodeReplayCacheFull = "replay_cache_full"
)

// MaxTokenLen is the largest token accepted, in bytes (STS's own limit).
const MaxTokenLen = 20000

// Error is a token rejection. Message is safe to return to the caller; Err,
// if set, is an internal cause for logs only.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return "identity: " + e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return "identity: " + e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the rejection code of err, or "" if err is not an *Error.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
