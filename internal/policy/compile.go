package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyferry/keyferry/internal/cikind"
	"github.com/keyferry/keyferry/internal/dur"
	"github.com/keyferry/keyferry/internal/identity"
)

// ValidationError lists every problem found in a role, each prefixed with
// the field it concerns ("aws.role_arn: …").
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return "invalid role: " + strings.Join(e.Problems, "; ")
}

// Role limits and defaults.
const (
	DefaultTTL = time.Hour
	MinTTL     = 15 * time.Minute
	MaxTTL     = 12 * time.Hour
	// MinUserTTL is the shortest iam_user lease: no STS minimum applies.
	MinUserTTL = time.Minute
	// DefaultUserName and DefaultUserPath apply to iam_user roles.
	DefaultUserName = "kf-{lease_id}"
	DefaultUserPath = "/keyferry/"
	// MaxMaxTTL bounds how long a lease may be renewed or refreshed.
	MaxMaxTTL = 168 * time.Hour

	maxPolicyARNs    = 10
	maxSessionPolicy = 2048
	maxUserPolicy    = 2048 // IAM's aggregate inline-policy size for a user
	maxGroups        = 10
	maxUserPath      = 512
	// ReservedUserTags is how many tags keyferry puts on IAM users itself.
	ReservedUserTags = 4
	maxRoleNameInARN = 64
	minExternalID    = 2
	maxExternalID    = 1224
)

var (
	roleNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	// The path+name part is bounded by length separately: a counted
	// repetition like {1,512} compiles to a large program at start-up.
	roleARNRE   = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/[\w+=,.@/-]+$`)
	policyARNRE = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:iam::(aws|\d{12}):policy/.+`)
	regionRE    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
	externalRE  = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
)

// DefaultSessionName returns the session-name template used when a role
// sets none. The per-job part comes first so that truncation to 64
// characters never cuts it off.
func DefaultSessionName(kind identity.Kind) string {
	return cikind.Of(string(kind)).DefaultSessionName()
}

// Normalize returns a copy of r with defaults filled in: the session name
// for the kind, ttl 1h, max_ttl = ttl, and the session policy as compact
// JSON object text. It does not validate; Compile does, and the server
// stores Compile's (*Compiled).Role().
func Normalize(r Role, kind identity.Kind) Role {
	n := r.clone()
	if n.AWS.Type == TypeIAMUser {
		if n.AWS.UserName == "" {
			n.AWS.UserName = DefaultUserName
		}
		if n.AWS.UserPath == "" {
			n.AWS.UserPath = DefaultUserPath
		}
		if p := bytes.TrimSpace(n.AWS.UserPolicy); len(p) == 0 || string(p) == "null" {
			n.AWS.UserPolicy = nil
		} else if c, err := compactPolicy(p); err == nil {
			n.AWS.UserPolicy = c
		}
	} else if n.AWS.SessionName == "" {
		n.AWS.SessionName = DefaultSessionName(kind)
	}
	if n.AWS.TTL == 0 {
		n.AWS.TTL = dur.Duration(DefaultTTL)
	}
	if n.AWS.MaxTTL == 0 {
		n.AWS.MaxTTL = n.AWS.TTL
	}
	if p := bytes.TrimSpace(n.AWS.SessionPolicy); len(p) == 0 || string(p) == "null" {
		n.AWS.SessionPolicy = nil
	} else if c, err := compactPolicy(p); err == nil {
		n.AWS.SessionPolicy = c
	}
	return n
}

// clone returns a deep copy of r.
func (r Role) clone() Role {
	c := r
	if r.Match != nil {
		c.Match = make(map[string]Values, len(r.Match))
		for k, v := range r.Match {
			c.Match[k] = slices.Clone(v)
		}
	}
	c.AWS.SessionPolicy = bytes.Clone(r.AWS.SessionPolicy)
	c.AWS.PolicyARNs = slices.Clone(r.AWS.PolicyARNs)
	c.AWS.Tags = maps.Clone(r.AWS.Tags)
	c.AWS.TransitiveTagKeys = slices.Clone(r.AWS.TransitiveTagKeys)
	c.AWS.UserPolicy = bytes.Clone(r.AWS.UserPolicy)
	c.AWS.Groups = slices.Clone(r.AWS.Groups)
	if r.AWS.WaitUntilUsable != nil {
		v := *r.AWS.WaitUntilUsable
		c.AWS.WaitUntilUsable = &v
	}
	return c
}

// Compiled is a validated role, ready to evaluate and render. It is
// immutable and safe for concurrent use.
type Compiled struct {
	role     Role
	kind     identity.Kind
	matchers []matcher // sorted by key
	cond     *condition
	session  template
	tags     []tagTemplate // sorted by key
	sourceID *template
}

type tagTemplate struct {
	key string
	tpl template
}

// matcher checks one match key: the claim at path must equal (or, for
// lists, contain) a value matching one of globs.
type matcher struct {
	key   string
	path  []string
	globs []glob
	// want describes the accepted values for check details.
	want string
}

// Role returns a copy of the normalised role.
func (c *Compiled) Role() Role { return c.role.clone() }

// Kind returns the issuer kind the role was compiled for.
func (c *Compiled) Kind() identity.Kind { return c.kind }

// problems collects validation problems.
type problems []string

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, field+": "+fmt.Sprintf(format, args...))
}

// Compile normalises and validates r for issuers of the given kind. On
// failure the error is a *ValidationError listing every problem.
func Compile(r Role, kind identity.Kind) (*Compiled, error) {
	var ps problems
	if !kind.Valid() {
		ps.add("issuer", "kind %q is not one of %s", kind, strings.Join(cikind.Names(), ", "))
	}
	n := Normalize(r, kind)
	c := &Compiled{role: n, kind: kind}
	known := KnownClaims(kind)

	if !roleNameRE.MatchString(n.Name) {
		ps.add("name", "%q is not a valid role name (want 1–63 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit)", n.Name)
	}
	if strings.TrimSpace(n.Issuer) == "" {
		ps.add("issuer", "required")
	}
	c.matchers = compileMatch(n.Match, kind, known, &ps)
	if n.Condition != "" {
		cond, cps := compileCondition(n.Condition, known)
		for _, p := range cps {
			ps.add("condition", "%s", p)
		}
		c.cond = cond
	}
	if !n.AllowUnbound {
		if p := unboundProblem(kind, c.matchers); p != "" {
			ps.add("match", "%s", p)
		}
	}
	compileAWS(c, &n.AWS, kind, known, &ps)
	if len(ps) > 0 {
		return nil, &ValidationError{Problems: ps}
	}
	return c, nil
}

func compileMatch(match map[string]Values, kind identity.Kind, known map[string]bool, ps *problems) []matcher {
	keys := slices.Sorted(maps.Keys(match))
	out := make([]matcher, 0, len(keys))
	for _, key := range keys {
		field := "match." + key
		path, err := parseClaimPath(key)
		if err != nil {
			ps.add(field, "%v", err)
			continue
		}
		if p := checkClaimName(path, known); p != "" {
			ps.add(field, "%s for %s tokens", p, kind)
			continue
		}
		if len(path) == 1 && cikind.Of(string(kind)).IsObjectClaim(path[0]) {
			ps.add(field, "claim %q holds an object, which never matches; match a field inside it with a JSON pointer such as /%s/…", path[0], path[0])
			continue
		}
		vals := match[key]
		if len(vals) == 0 {
			ps.add(field, "no values (give at least one)")
			continue
		}
		m := matcher{key: key, path: path}
		ok := true
		for i, v := range vals {
			if v == "" {
				ps.add(field, "value %d is empty", i)
				ok = false
				continue
			}
			g, err := compileGlob(v)
			if err != nil {
				ps.add(field, "value %q %v", v, err)
				ok = false
				continue
			}
			m.globs = append(m.globs, g)
		}
		if !ok {
			continue
		}
		quoted := make([]string, len(vals))
		for i, v := range vals {
			quoted[i] = strconv.Quote(v)
		}
		if len(quoted) == 1 {
			m.want = quoted[0]
		} else {
			m.want = "one of " + strings.Join(quoted, ", ")
		}
		out = append(out, m)
	}
	return out
}

func compileAWS(c *Compiled, a *AWS, kind identity.Kind, known map[string]bool, ps *problems) {
	webIdentity := false
	switch a.Type {
	case TypeAssumeRole:
	case TypeWebIdentity:
		webIdentity = true
	case TypeIAMUser:
		compileIAMUser(c, a, known, ps)
		return
	case "":
		ps.add("aws.type", "required (assume_role, web_identity or iam_user)")
	default:
		ps.add("aws.type", "%q is not one of assume_role, web_identity, iam_user", a.Type)
	}
	for _, f := range []struct {
		name string
		set  bool
	}{{"user_name", a.UserName != ""}, {"user_path", a.UserPath != ""}, {"permissions_boundary", a.PermissionsBoundary != ""},
		{"user_policy", len(a.UserPolicy) > 0}, {"groups", len(a.Groups) > 0}, {"wait_until_usable", a.WaitUntilUsable != nil}} {
		if f.set {
			ps.add("aws."+f.name, "only iam_user roles use it")
		}
	}
	if a.EarlyRevocation && a.Type != TypeAssumeRole {
		ps.add("aws.early_revocation", "only assume_role sessions can be revoked early (the broker adds a deny statement to the role it assumed)")
	}

	checkRoleARN(a.RoleARN, ps)

	// Session name.
	session, tps := parseTemplate(a.SessionName, known)
	for _, p := range tps {
		ps.add("aws.session_name", "%s", p)
	}
	if len(tps) == 0 {
		if want := uniquePlaceholders(kind); !slices.ContainsFunc(want, session.uses) {
			ps.add("aws.session_name", "%q has no per-job placeholder; include one of {%s} so every session can be traced to its job",
				a.SessionName, strings.Join(want, "}, {"))
		}
	}
	c.session = session

	// Session policy and managed policies.
	if len(a.SessionPolicy) > 0 {
		if _, err := compactPolicy(a.SessionPolicy); err != nil {
			ps.add("aws.session_policy", "%v", err)
		}
	}
	if len(a.PolicyARNs) > maxPolicyARNs {
		ps.add("aws.policy_arns", "%d policies; STS accepts at most %d", len(a.PolicyARNs), maxPolicyARNs)
	}
	for i, arn := range a.PolicyARNs {
		if !policyARNRE.MatchString(arn) {
			ps.add(fmt.Sprintf("aws.policy_arns[%d]", i), "%q is not a managed policy ARN (want arn:aws:iam::123456789012:policy/NAME or arn:aws:iam::aws:policy/NAME)", arn)
		}
	}

	// Tags, source identity and external ID are AssumeRole parameters;
	// AssumeRoleWithWebIdentity takes tags and source identity from the
	// token and has no external ID.
	if webIdentity {
		const why = "web_identity roles cannot set it: AssumeRoleWithWebIdentity takes session tags and source identity from the token's https://aws.amazon.com/ claims and has no external ID; use type assume_role"
		if len(a.Tags) > 0 {
			ps.add("aws.tags", "%s", why)
		}
		if len(a.TransitiveTagKeys) > 0 {
			ps.add("aws.transitive_tag_keys", "%s", why)
		}
		if a.SourceIdentity != "" {
			ps.add("aws.source_identity", "%s", why)
		}
		if a.ExternalID != "" {
			ps.add("aws.external_id", "%s", why)
		}
	} else {
		c.tags = compileTags(a, known, ps)
		if a.SourceIdentity != "" {
			t, tps := parseTemplate(a.SourceIdentity, known)
			for _, p := range tps {
				ps.add("aws.source_identity", "%s", p)
			}
			if strings.HasPrefix(strings.ToLower(t.literalPrefix()), "aws:") {
				ps.add("aws.source_identity", "%q starts with aws:, which STS reserves", a.SourceIdentity)
			}
			c.sourceID = &t
		}
		if a.ExternalID != "" {
			if n := utf8.RuneCountInString(a.ExternalID); n < minExternalID || n > maxExternalID || !externalRE.MatchString(a.ExternalID) {
				ps.add("aws.external_id", "must be %d–%d characters of letters, digits and _+=,.@:/- (got %d characters)", minExternalID, maxExternalID, n)
			}
		}
	}

	checkLifetimesAndRegion(a, MinTTL, ps)
}

// checkLifetimesAndRegion checks ttl (from minTTL to MaxTTL), max_ttl (from
// ttl to MaxMaxTTL) and the region's name.
func checkLifetimesAndRegion(a *AWS, minTTL time.Duration, ps *problems) {
	ttl, maxTTL := a.TTL.D(), a.MaxTTL.D()
	if ttl < minTTL || ttl > MaxTTL {
		ps.add("aws.ttl", "%s is outside %s–%s", ttl, dur.Duration(minTTL), dur.Duration(MaxTTL))
	}
	switch {
	case maxTTL < ttl:
		ps.add("aws.max_ttl", "%s is shorter than ttl %s", maxTTL, ttl)
	case maxTTL > MaxMaxTTL:
		ps.add("aws.max_ttl", "%s exceeds the limit %s", maxTTL, MaxMaxTTL)
	}
	if a.Region != "" && !regionRE.MatchString(a.Region) {
		ps.add("aws.region", "%q is not an AWS region name (want something like eu-west-1)", a.Region)
	}
}

// maxRoleARNLen is STS's limit on RoleArn.
const maxRoleARNLen = 2048

func checkRoleARN(arn string, ps *problems) {
	if arn == "" {
		ps.add("aws.role_arn", "required")
		return
	}
	if !roleARNRE.MatchString(arn) || len(arn) > maxRoleARNLen {
		ps.add("aws.role_arn", "%q is not an IAM role ARN (want arn:aws:iam::123456789012:role/NAME)", arn)
		return
	}
	name := arn[strings.LastIndexByte(arn, '/')+1:]
	switch {
	case name == "":
		ps.add("aws.role_arn", "%q ends with /; the role name is missing", arn)
	case len(name) > maxRoleNameInARN:
		ps.add("aws.role_arn", "role name %q is %d characters long; IAM allows at most %d", name, len(name), maxRoleNameInARN)
	}
}

// uniquePlaceholders lists the session-name placeholders that make a name
// unique per job for the kind; a session name needs at least one.
func uniquePlaceholders(kind identity.Kind) []string {
	return append(cikind.Of(string(kind)).PerJobClaims(), "jti", VarLeaseID)
}

func compileTags(a *AWS, known map[string]bool, ps *problems) []tagTemplate {
	if len(a.Tags) > maxTags {
		ps.add("aws.tags", "%d tags; STS accepts at most %d", len(a.Tags), maxTags)
	}
	keys := slices.Sorted(maps.Keys(a.Tags))
	seen := make(map[string]string, len(keys))
	out := make([]tagTemplate, 0, len(keys))
	for _, k := range keys {
		field := "aws.tags." + k
		if p := tagKeyProblem(k); p != "" {
			ps.add(field, "%s", p)
		}
		if prev, dup := seen[strings.ToLower(k)]; dup {
			ps.add(field, "duplicates tag %q (tag keys are case-insensitive)", prev)
		} else {
			seen[strings.ToLower(k)] = k
		}
		t, tps := parseTemplate(a.Tags[k], known)
		for _, p := range tps {
			ps.add(field, "%s", p)
		}
		out = append(out, tagTemplate{key: k, tpl: t})
	}
	for i, k := range a.TransitiveTagKeys {
		if _, ok := a.Tags[k]; !ok {
			ps.add(fmt.Sprintf("aws.transitive_tag_keys[%d]", i), "%q is not a key of aws.tags", k)
		}
	}
	return out
}

func tagKeyProblem(k string) string {
	n := 0
	for _, r := range k {
		n++
		if !tagRune(r) {
			return fmt.Sprintf("key contains %q; tag keys may hold letters, digits, spaces and _.:/=+-@", r)
		}
	}
	switch {
	case n == 0:
		return "empty key"
	case n > maxTagKey:
		return fmt.Sprintf("key is %d characters long; the limit is %d", n, maxTagKey)
	case strings.HasPrefix(strings.ToLower(k), "aws:"):
		return "keys starting with aws: are reserved by AWS"
	}
	return ""
}

// compactPolicy checks an inline session policy (a JSON object, or a JSON
// string holding one) and returns it as compact JSON object text.
func compactPolicy(raw json.RawMessage) (json.RawMessage, error) {
	doc := bytes.TrimSpace(raw)
	if len(doc) > 0 && doc[0] == '"' {
		var s string
		if err := json.Unmarshal(doc, &s); err != nil {
			return nil, fmt.Errorf("not valid JSON: %v", err)
		}
		doc = bytes.TrimSpace([]byte(s))
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(doc, &obj); err != nil || obj == nil {
		return nil, errors.New("must be a JSON object holding an IAM policy document (or a string holding one)")
	}
	if _, ok := obj["Statement"]; !ok {
		return nil, errors.New(`has no "Statement"`)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, doc); err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	n := 0
	for _, r := range buf.String() {
		n++
		if !(r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0xFF) {
			return nil, fmt.Errorf("contains %q; STS accepts only tab, newline, carriage return and U+0020–U+00FF", r)
		}
	}
	if n > maxSessionPolicy {
		return nil, fmt.Errorf("is %d characters long as compact JSON; STS accepts at most %d", n, maxSessionPolicy)
	}
	return buf.Bytes(), nil
}

var (
	userPathRE  = regexp.MustCompile(`^/([\x21-\x7E]+/)?$`)
	groupNameRE = regexp.MustCompile(`^[\w+=,.@-]+$`)
)

// compileIAMUser validates an iam_user role: a user per lease, named from
// a template that contains {lease_id}, with its policies, boundary, groups
// and tags.
func compileIAMUser(c *Compiled, a *AWS, known map[string]bool, ps *problems) {
	const notUsed = "iam_user roles create a user with its own key; %s is for assume_role/web_identity"
	if a.RoleARN != "" {
		ps.add("aws.role_arn", notUsed, "role_arn")
	}
	if a.SessionName != "" {
		ps.add("aws.session_name", notUsed+" (name the user with user_name)", "session_name")
	}
	if len(a.SessionPolicy) > 0 {
		ps.add("aws.session_policy", notUsed+" (use user_policy)", "session_policy")
	}
	if len(a.TransitiveTagKeys) > 0 {
		ps.add("aws.transitive_tag_keys", notUsed, "transitive_tag_keys")
	}
	if a.SourceIdentity != "" {
		ps.add("aws.source_identity", notUsed, "source_identity")
	}
	if a.ExternalID != "" {
		ps.add("aws.external_id", notUsed, "external_id")
	}
	user, tps := parseTemplate(a.UserName, known)
	for _, p := range tps {
		ps.add("aws.user_name", "%s", p)
	}
	if len(tps) == 0 && !user.uses(VarLeaseID) {
		ps.add("aws.user_name", "%q must contain {lease_id}: every lease gets its own user, deleted when the lease ends", a.UserName)
	}
	c.session = user
	if len(a.UserPath) > maxUserPath || !userPathRE.MatchString(a.UserPath) {
		ps.add("aws.user_path", "%q is not an IAM path (/, or /name/.../ with printable ASCII, at most %d characters)", a.UserPath, maxUserPath)
	}
	if a.PermissionsBoundary != "" && !policyARNRE.MatchString(a.PermissionsBoundary) {
		ps.add("aws.permissions_boundary", "%q is not a managed policy ARN", a.PermissionsBoundary)
	}
	if len(a.UserPolicy) > 0 {
		if p, err := compactPolicy(a.UserPolicy); err != nil {
			ps.add("aws.user_policy", "%v", err)
		} else if len(p) > maxUserPolicy {
			ps.add("aws.user_policy", "%d characters; IAM allows %d of inline policy per user", len(p), maxUserPolicy)
		}
	}
	if len(a.PolicyARNs) > maxPolicyARNs {
		ps.add("aws.policy_arns", "%d policies; IAM attaches at most %d to a user", len(a.PolicyARNs), maxPolicyARNs)
	}
	for i, arn := range a.PolicyARNs {
		if !policyARNRE.MatchString(arn) {
			ps.add(fmt.Sprintf("aws.policy_arns[%d]", i), "%q is not a managed policy ARN", arn)
		}
	}
	if len(a.Groups) > maxGroups {
		ps.add("aws.groups", "%d groups; a user can be in at most %d", len(a.Groups), maxGroups)
	}
	for i, g := range a.Groups {
		if len(g) > 128 || !groupNameRE.MatchString(g) {
			ps.add(fmt.Sprintf("aws.groups[%d]", i), "%q is not an IAM group name", g)
		}
	}
	if len(a.UserPolicy) == 0 && len(a.PolicyARNs) == 0 && len(a.Groups) == 0 {
		ps.add("aws.user_policy", "the user would have no permissions: set user_policy, policy_arns or groups")
	}
	// keyferry adds up to ReservedUserTags tags of its own (keyferry:…)
	// to every user; IAM allows 50 per user.
	if len(a.Tags) > maxTags-ReservedUserTags {
		ps.add("aws.tags", "%d tags; iam_user roles may set at most %d (keyferry adds %d keyferry:… tags, IAM allows %d)", len(a.Tags), maxTags-ReservedUserTags, ReservedUserTags, maxTags)
	}
	for k := range a.Tags {
		if strings.HasPrefix(strings.ToLower(k), "keyferry:") {
			ps.add("aws.tags."+k, "the keyferry: prefix is reserved for the tags keyferry sets")
		}
	}
	c.tags = compileTags(a, known, ps)
	checkLifetimesAndRegion(a, MinUserTTL, ps)
}
