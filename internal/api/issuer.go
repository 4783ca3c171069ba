package api

import "github.com/keyferry/keyferry/internal/dur"

// Issuer is a trusted token issuer: what GET /v1/issuers/{name} returns
// and what PUT /v1/issuers/{name} and `keyferry apply` manifests decode
// (strictly: unknown fields are refused). docs/configuration.md describes
// each field.
type Issuer struct {
	Name string `json:"name"`
	// Kind is gitlab, github, kubernetes or generic.
	Kind       string   `json:"kind"`
	URL        string   `json:"url"`
	JWKSURL    string   `json:"jwks_url,omitempty"`
	PublicKeys []string `json:"public_keys,omitempty"`
	CACert     string   `json:"ca_cert,omitempty"`
	Audiences  []string `json:"audiences"`

	AllowMultipleAudiences bool         `json:"allow_multiple_audiences,omitempty"`
	Algorithms             []string     `json:"algorithms,omitempty"`
	Leeway                 dur.Duration `json:"leeway,omitempty"`
	MaxTokenAge            dur.Duration `json:"max_token_age,omitempty"`
	JWKSRefreshCooldown    dur.Duration `json:"jwks_refresh_cooldown,omitempty"`
	ReplayMaxUses          int          `json:"replay_max_uses,omitempty"`
}

// IssuerList is the body of GET /v1/issuers, sorted by name.
type IssuerList struct {
	Issuers []Issuer `json:"issuers"`
}
