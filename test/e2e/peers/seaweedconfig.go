package peers

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// SeaweedAccountID is the account SeaweedFS puts in the ARNs it returns
// (arn:aws:sts::000000000000:assumed-role/ci-role/s1, and the caller ARN of
// the admin identity, arn:aws:iam::000000000000:user/admin).
const SeaweedAccountID = "000000000000"

// RoleARN is the ARN of the SeaweedFS role name, in the 12-digit-account
// form AWS uses. SeaweedFS also accepts arn:aws:iam::role/NAME; keyferry
// validates role ARNs like AWS does, so tests use this form.
func RoleARN(name string) string {
	return "arn:aws:iam::" + SeaweedAccountID + ":role/" + name
}

// SeaweedConfig describes the identities, policies, roles and buckets a
// SeaweedFS instance starts with. The zero value is a usable instance with
// only the admin identity.
type SeaweedConfig struct {
	// Policies maps a managed policy name to its IAM policy document
	// ({"Version":"2012-10-17","Statement":[…]}). Roles attach them by name.
	Policies map[string]json.RawMessage

	// Roles are created at start. Roles live in SeaweedFS's memory store:
	// PutRolePolicy is not implemented by SeaweedFS, so configure roles here.
	Roles []SeaweedRole

	// Providers are the OIDC identity providers STS trusts for
	// AssumeRoleWithWebIdentity; IdP.SeaweedProvider builds one.
	Providers []SeaweedOIDCProvider

	// Identities are static S3 identities in addition to the admin.
	Identities []SeaweedIdentity

	// Buckets are created with the admin identity once S3 answers.
	Buckets []string

	// TokenDuration is the default STS session length (default 1h) and
	// MaxSessionLength the longest one granted (default 12h).
	TokenDuration    time.Duration
	MaxSessionLength time.Duration

	// ExtraArgs are appended to the `weed mini` command line.
	ExtraArgs []string
}

// SeaweedRole is an IAM role defined in the SeaweedFS config file.
type SeaweedRole struct {
	Name             string
	AttachedPolicies []string // names from SeaweedConfig.Policies

	// TrustAssumeRole lets any authenticated SeaweedFS identity call
	// sts:AssumeRole on this role (Principal "*").
	TrustAssumeRole bool

	// TrustWebIdentity lets tokens from Provider (default: the only entry of
	// SeaweedConfig.Providers) call sts:AssumeRoleWithWebIdentity. When
	// Audience is set, the trust policy also requires oidc:aud to equal it.
	TrustWebIdentity bool
	Provider         string
	Audience         string

	// TrustPolicy, when set, replaces the generated trust policy.
	TrustPolicy json.RawMessage

	// MaxSessionDuration in seconds (3600–43200); zero uses the STS default.
	MaxSessionDuration int64
}

// SeaweedOIDCProvider is an OIDC provider entry of the SeaweedFS config.
// SeaweedFS fetches the JWKS over HTTPS only, verifying the server with
// CACertFile.
type SeaweedOIDCProvider struct {
	Name       string
	Issuer     string
	ClientID   string // the audience SeaweedFS's OIDC provider expects
	JWKSURI    string
	CACertFile string
}

// SeaweedIdentity is a static S3 identity (access key pair and legacy
// SeaweedFS actions such as "Read", "Write", "List", "Admin").
type SeaweedIdentity struct {
	Name      string
	AccessKey string
	SecretKey string
	Actions   []string
}

// Validate reports every problem in the config at once.
func (c SeaweedConfig) Validate() error {
	var errs []error
	providers := map[string]bool{}
	for _, p := range c.Providers {
		if p.Name == "" || p.Issuer == "" || p.ClientID == "" || p.JWKSURI == "" {
			errs = append(errs, fmt.Errorf("provider %q: name, issuer, clientID and jwksURI are required", p.Name))
		}
		providers[p.Name] = true
	}
	for name, doc := range c.Policies {
		if !json.Valid(doc) {
			errs = append(errs, fmt.Errorf("policy %q: document is not valid JSON", name))
		}
	}
	seen := map[string]bool{}
	for _, r := range c.Roles {
		if r.Name == "" {
			errs = append(errs, errors.New("role with an empty name"))
			continue
		}
		if seen[r.Name] {
			errs = append(errs, fmt.Errorf("role %q: defined twice", r.Name))
		}
		seen[r.Name] = true
		for _, p := range r.AttachedPolicies {
			if _, ok := c.Policies[p]; !ok {
				errs = append(errs, fmt.Errorf("role %q: attached policy %q is not in Policies", r.Name, p))
			}
		}
		if r.TrustPolicy != nil {
			if !json.Valid(r.TrustPolicy) {
				errs = append(errs, fmt.Errorf("role %q: trust policy is not valid JSON", r.Name))
			}
			continue
		}
		if !r.TrustAssumeRole && !r.TrustWebIdentity {
			errs = append(errs, fmt.Errorf("role %q: trusts nobody: set TrustAssumeRole, TrustWebIdentity or TrustPolicy", r.Name))
		}
		if r.TrustWebIdentity {
			switch {
			case r.Provider != "" && !providers[r.Provider]:
				errs = append(errs, fmt.Errorf("role %q: provider %q is not in Providers", r.Name, r.Provider))
			case r.Provider == "" && len(c.Providers) != 1:
				errs = append(errs, fmt.Errorf("role %q: set Provider (there are %d providers)", r.Name, len(c.Providers)))
			}
		}
	}
	for _, id := range c.Identities {
		if id.Name == "" || id.AccessKey == "" || id.SecretKey == "" {
			errs = append(errs, fmt.Errorf("identity %q: name, access key and secret key are required", id.Name))
		}
		if id.Name == "admin" {
			errs = append(errs, errors.New(`identity "admin" is reserved`))
		}
	}
	return errors.Join(errs...)
}

// Wire shapes of SeaweedFS's IAM config file. The same file is passed as
// -s3.config (identities) and -s3.iam.config (sts, providers, policies,
// roles); each reader ignores the keys it does not know.
type (
	swFile struct {
		Identities []swIdentity   `json:"identities"`
		STS        swSTS          `json:"sts"`
		Providers  []swProvider   `json:"providers,omitempty"`
		Policy     swPolicyEngine `json:"policy"`
		Policies   []swPolicy     `json:"policies,omitempty"`
		Roles      []swRole       `json:"roles,omitempty"`
	}
	swIdentity struct {
		Name        string         `json:"name"`
		Credentials []swCredential `json:"credentials"`
		Actions     []string       `json:"actions"`
	}
	swCredential struct {
		AccessKey string `json:"accessKey"`
		SecretKey string `json:"secretKey"`
	}
	swSTS struct {
		TokenDuration    string `json:"tokenDuration"`
		MaxSessionLength string `json:"maxSessionLength"`
		Issuer           string `json:"issuer"`
		SigningKey       string `json:"signingKey"` // base64 of 32 random bytes
	}
	swProvider struct {
		Name   string            `json:"name"`
		Type   string            `json:"type"`
		Config map[string]string `json:"config"`
	}
	swPolicyEngine struct {
		DefaultEffect string `json:"defaultEffect"`
		StoreType     string `json:"storeType"`
	}
	swPolicy struct {
		Name     string          `json:"name"`
		Document json.RawMessage `json:"document"`
	}
	swRole struct {
		RoleName           string          `json:"roleName"`
		RoleArn            string          `json:"roleArn"`
		AttachedPolicies   []string        `json:"attachedPolicies"`
		TrustPolicy        json.RawMessage `json:"trustPolicy"`
		MaxSessionDuration int64           `json:"maxSessionDuration,omitempty"`
	}
)

// randomHex returns n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand.Read never fails on Linux
	}
	return hex.EncodeToString(b)
}

// render builds the config file for the given admin keys.
func (c SeaweedConfig) render(adminAccess, adminSecret string) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	durOr := func(d, def time.Duration) string {
		if d <= 0 {
			d = def
		}
		return d.String()
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	f := swFile{
		Identities: []swIdentity{{
			Name:        "admin",
			Credentials: []swCredential{{AccessKey: adminAccess, SecretKey: adminSecret}},
			Actions:     []string{"Admin", "Read", "Write", "List", "Tagging"},
		}},
		STS: swSTS{
			TokenDuration:    durOr(c.TokenDuration, time.Hour),
			MaxSessionLength: durOr(c.MaxSessionLength, 12*time.Hour),
			Issuer:           "seaweedfs-sts",
			SigningKey:       base64.StdEncoding.EncodeToString(key),
		},
		Policy: swPolicyEngine{DefaultEffect: "Deny", StoreType: "memory"},
	}
	for _, id := range c.Identities {
		f.Identities = append(f.Identities, swIdentity{
			Name:        id.Name,
			Credentials: []swCredential{{AccessKey: id.AccessKey, SecretKey: id.SecretKey}},
			Actions:     id.Actions,
		})
	}
	for _, p := range c.Providers {
		cfg := map[string]string{"issuer": p.Issuer, "clientId": p.ClientID, "jwksUri": p.JWKSURI}
		if p.CACertFile != "" {
			cfg["tlsCaCert"] = p.CACertFile
		}
		f.Providers = append(f.Providers, swProvider{Name: p.Name, Type: "oidc", Config: cfg})
	}
	names := make([]string, 0, len(c.Policies))
	for name := range c.Policies {
		names = append(names, name)
	}
	slices.Sort(names) // a stable file makes failures reproducible
	for _, name := range names {
		f.Policies = append(f.Policies, swPolicy{Name: name, Document: c.Policies[name]})
	}
	for _, r := range c.Roles {
		trust := r.TrustPolicy
		if trust == nil {
			var err error
			if trust, err = c.trustPolicy(r); err != nil {
				return nil, err
			}
		}
		attached := r.AttachedPolicies
		if attached == nil {
			attached = []string{}
		}
		f.Roles = append(f.Roles, swRole{
			RoleName:           r.Name,
			RoleArn:            RoleARN(r.Name),
			AttachedPolicies:   attached,
			TrustPolicy:        trust,
			MaxSessionDuration: r.MaxSessionDuration,
		})
	}
	return json.MarshalIndent(f, "", "  ")
}

// trustPolicy generates a role's trust policy from its Trust* fields.
func (c SeaweedConfig) trustPolicy(r SeaweedRole) (json.RawMessage, error) {
	type statement struct {
		Effect    string                       `json:"Effect"`
		Principal any                          `json:"Principal"`
		Action    []string                     `json:"Action"`
		Condition map[string]map[string]string `json:"Condition,omitempty"`
	}
	var stmts []statement
	if r.TrustAssumeRole {
		stmts = append(stmts, statement{Effect: "Allow", Principal: "*", Action: []string{"sts:AssumeRole"}})
	}
	if r.TrustWebIdentity {
		provider := r.Provider
		if provider == "" {
			provider = c.Providers[0].Name
		}
		s := statement{
			Effect:    "Allow",
			Principal: map[string]string{"Federated": provider},
			Action:    []string{"sts:AssumeRoleWithWebIdentity"},
		}
		if r.Audience != "" {
			s.Condition = map[string]map[string]string{"StringEquals": {"oidc:aud": r.Audience}}
		}
		stmts = append(stmts, s)
	}
	return json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": stmts})
}
