// Package cikind holds what keyferry knows about each kind of CI identity
// token (GitLab CI ID tokens, GitHub Actions OIDC tokens, Kubernetes
// service-account tokens, …) and about generic OIDC JWTs.
//
// Each kind lives in one file (gitlab.go, github.go, …) and declares, as
// data and small pure functions: the claims that make a token a CI token
// of that kind, how its claims map to the identity summary, its default
// maximum token age, the claims a role may name, the match keys that bind
// a role to one tenant, the default session name, the dev issuer's token
// template and the text of its rows in docs/roles.md. kinds.go lists the
// kinds; adding a kind is one new file plus one line there.
//
// The package is a leaf: identity (verification), policy (role
// compilation) and devissuer (dev tokens) read it and interpret it. Kinds
// are immutable values, safe for concurrent use.
package cikind

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind is everything keyferry knows about one kind of CI token. Its zero
// value is not useful: get kinds from Lookup, Of or All.
type Kind struct {
	name string

	// Verification.
	maxTokenAge time.Duration
	iatOptional bool
	// shape returns what the claims lack to be a CI token of this kind,
	// as phrases ("job_id", `sub starting with "repo:"`); nil when they
	// have it all. It must not allocate for a well-formed token.
	shape func(claims map[string]any) []string
	// expiry, when set, is a time claim that ends validity before exp.
	expiry *Expiry
	// summary maps claims to the summary fields; nil leaves them empty.
	summary func(claims map[string]any) Summary

	// Roles.
	// claims are the claim names tokens of this kind carry; nil accepts
	// any name.
	claims []string
	// objectClaims are claims holding an object (or a list of objects),
	// which a role can only match through a JSON pointer.
	objectClaims []string
	// bindings are the tenant-binding keys in the order an error message
	// suggests them.
	bindings    []Binding
	bindingHint string
	sessionName string
	// perJob are the claim placeholders that make a session name unique
	// per job (besides jti, which any kind may carry).
	perJob []string

	// dev builds the claims of a dev token issued by iss.
	dev func(iss string, o DevOptions) map[string]any

	// claimsDoc, when set, follows the claim list in the docs table.
	claimsDoc string
}

// Name returns the kind's name as issuers configure it ("gitlab").
func (k *Kind) Name() string { return k.name }

// String returns the kind's name.
func (k *Kind) String() string { return k.name }

// MaxTokenAge is the default maximum age of a token (now − iat).
func (k *Kind) MaxTokenAge() time.Duration { return k.maxTokenAge }

// RequiresIAT reports whether tokens must carry iat. Without iat, a
// verifier bounds the remaining lifetime instead of the age.
func (k *Kind) RequiresIAT() bool { return !k.iatOptional }

// ShapeProblem returns why claims are not a CI token of this kind, or ""
// when they are. It guards against type confusion: a GitLab user-login ID
// token is signed with the same keys as CI job tokens, for example.
func (k *Kind) ShapeProblem(claims map[string]any) string {
	missing := k.shape(claims)
	if len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("this is not a %s CI token: it lacks %s", k.name, strings.Join(missing, ", "))
}

// Expiry is a time claim that ends a token's validity before its exp, as
// Kubernetes' warnafter does for legacy extended tokens.
type Expiry struct {
	// Path leads to the claim through nested objects.
	Path []string
	// Expired is the rejection message once the time has passed.
	Expired string
}

// Name is the claim's path joined with ".", for messages.
func (e Expiry) Name() string { return strings.Join(e.Path, ".") }

// Expiry returns the kind's early-expiry claim, if it has one.
func (k *Kind) Expiry() (Expiry, bool) {
	if k.expiry == nil {
		return Expiry{}, false
	}
	return *k.expiry, true
}

// Summary is what a token says about its job in the fields every kind
// maps to; leases and audit events record it. Absent claims leave fields
// empty.
type Summary struct {
	Project, ProjectID, Ref, Pipeline, Job, User string
}

// Summarize maps a verified token's claims to the summary fields.
func (k *Kind) Summarize(claims map[string]any) Summary {
	if k.summary == nil {
		return Summary{}
	}
	return k.summary(claims)
}

// KnownClaims returns the claim names tokens of this kind carry, as a
// fresh set, or nil when any name is accepted (generic).
func (k *Kind) KnownClaims() map[string]bool {
	if k.claims == nil {
		return nil
	}
	set := make(map[string]bool, len(k.claims))
	for _, n := range k.claims {
		set[n] = true
	}
	return set
}

// ClaimNames returns the claim names tokens of this kind carry, in the
// order the docs list them, or nil when any name is accepted.
func (k *Kind) ClaimNames() []string { return clone(k.claims) }

// IsObjectClaim reports whether the top-level claim name holds an object
// (or a list of objects): a match on it never succeeds.
func (k *Kind) IsObjectClaim(name string) bool {
	for _, n := range k.objectClaims {
		if n == name {
			return true
		}
	}
	return false
}

// RuleForm is the form of a tenant-binding rule.
type RuleForm uint8

// Rule forms. Policy interprets them on its compiled match values.
const (
	// Exact: only a value without wildcards names a tenant (ids, owner
	// names, namespaces): "4*" matches project 42 and project 4711.
	Exact RuleForm = iota + 1
	// Path: a value names a tenant when it is exact, or when its literal
	// text before the first wildcard starts with one of Prefixes (any
	// text, when Prefixes is empty) and then holds Segments complete
	// segments, each non-empty and ending in Sep. "group/*" is bound to
	// a group; "acme*" also matches "acme-evil/x".
	Path
	// LiteralPrefix: a value names a tenant unless it starts with a
	// wildcard (generic issuers, whose sub grammar is unknown).
	LiteralPrefix
)

// Rule says when a match value of a binding key names one tenant.
type Rule struct {
	Form RuleForm
	// Prefixes, Sep and Segments apply to Path. The first prefix is the
	// one messages name. Segments below 1 count as 1.
	Prefixes []string
	Sep      byte
	Segments int
}

// Binding is a match key that pins a role to one tenant (project, group,
// repository, owner, namespace) when every value of it follows Rule.
type Binding struct {
	// Key is a claim name or a JSON pointer, as a role writes it.
	Key  string
	Rule Rule
	// Doc ends "a value names a tenant when …" in the docs; bindings of
	// a kind with the same Doc share a row.
	Doc string
}

// Bindings returns the kind's tenant-binding keys, in the order they are
// suggested to role authors.
func (k *Kind) Bindings() []Binding {
	out := clone(k.bindings)
	for i := range out {
		out[i].Rule.Prefixes = clone(out[i].Rule.Prefixes)
	}
	return out
}

// Binding returns the rule of the binding key, if key is one.
func (k *Kind) Binding(key string) (Rule, bool) {
	for i := range k.bindings {
		if k.bindings[i].Key == key {
			return k.bindings[i].Rule, true
		}
	}
	return Rule{}, false
}

// BindingKeys returns the binding keys in the order they are suggested.
func (k *Kind) BindingKeys() []string {
	keys := make([]string, len(k.bindings))
	for i := range k.bindings {
		keys[i] = k.bindings[i].Key
	}
	return keys
}

// BindingHint describes, for an error message, which values bind.
func (k *Kind) BindingHint() string { return k.bindingHint }

// DefaultSessionName is the session-name template of roles that set
// none. Its per-job part comes first, so truncation never cuts it off.
func (k *Kind) DefaultSessionName() string { return k.sessionName }

// PerJobClaims lists the claims that make a session name unique per job
// for this kind, besides jti.
func (k *Kind) PerJobClaims() []string { return clone(k.perJob) }

// DevOptions shape a dev token of any kind. Zero fields get the kind's
// defaults; each kind's file says how it uses them.
type DevOptions struct {
	// Project names the tenant: a GitLab project path, a GitHub
	// repository (owner/name), a Kubernetes namespace, a CircleCI project
	// id, a generic sub.
	Project string
	// Ref is the git ref, as the kind writes it (GitLab "main", GitHub
	// and CircleCI "refs/heads/main"); Kubernetes and generic ignore it.
	Ref string
	// User is who started the job: a GitLab login, a GitHub actor, a
	// CircleCI user id, a Kubernetes service account.
	User     string
	Audience []string
	TTL      time.Duration
	Now      time.Time
	JTI      string
}

// DevClaims returns the claims of a dev token of this kind issued by iss,
// with the kind's JSON types, ready to be signed.
func (k *Kind) DevClaims(iss string, o DevOptions) map[string]any {
	return k.dev(iss, o)
}

// claimString returns a scalar claim as a summary field: strings as they
// are, integers in decimal, anything else "".
func claimString(claims map[string]any, name string) string {
	if s, ok := claims[name].(string); ok { // inlined: the common case
		return s
	}
	return numberClaim(claims, name)
}

func numberClaim(claims map[string]any, name string) string {
	switch n := claims[name].(type) {
	case int64:
		return strconv.FormatInt(n, 10)
	case float64:
		return strconv.FormatInt(int64(n), 10)
	}
	return ""
}

// stringClaim returns m[name] if it is a string, else "".
func stringClaim(m map[string]any, name string) string {
	s, _ := m[name].(string)
	return s
}

// need appends to missing every name whose claim is not a non-empty
// string.
func need(missing []string, claims map[string]any, names ...string) []string {
	for _, n := range names {
		if stringClaim(claims, n) == "" {
			missing = append(missing, n)
		}
	}
	return missing
}

// subPrefix appends a phrase to missing unless sub starts with prefix.
func subPrefix(missing []string, claims map[string]any, prefix string) []string {
	if !strings.HasPrefix(stringClaim(claims, "sub"), prefix) {
		missing = append(missing, "sub starting with "+strconv.Quote(prefix))
	}
	return missing
}

// Rules that kinds declare.
var (
	exact         = Rule{Form: Exact}
	literalPrefix = Rule{Form: LiteralPrefix}
)

// path returns a Path rule: segments complete sep-ended segments after
// one of prefixes.
func path(sep byte, segments int, prefixes ...string) Rule {
	return Rule{Form: Path, Prefixes: prefixes, Sep: sep, Segments: segments}
}

func clone[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append([]T(nil), s...)
}
