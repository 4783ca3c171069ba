package httpapi

import (
	"maps"
	"slices"
	"time"

	"github.com/keyferry/keyferry/internal/admintoken"
	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/lease"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
)

// The conversions between domain objects and the wire types of package
// api. Each names every field it copies: a field added to a domain type
// reaches the API only when it is added here (convert_test.go fails until
// that decision is made). Slices and maps are copied, never shared, and
// keep their nil-ness, which the JSON shows (null vs []).

// RoleToAPI returns r as the API shows it.
func RoleToAPI(r policy.Role) api.Role {
	var match map[string]api.Values
	if r.Match != nil {
		match = make(map[string]api.Values, len(r.Match))
		for k, v := range r.Match {
			match[k] = api.Values(slices.Clone(v))
		}
	}
	return api.Role{
		Name:         r.Name,
		Description:  r.Description,
		Issuer:       r.Issuer,
		Match:        match,
		Condition:    r.Condition,
		AllowUnbound: r.AllowUnbound,
		AWS:          awsToAPI(r.AWS),
	}
}

func awsToAPI(a policy.AWS) api.AWS {
	return api.AWS{
		Type:                a.Type,
		RoleARN:             a.RoleARN,
		SessionName:         a.SessionName,
		SessionPolicy:       slices.Clone(a.SessionPolicy),
		PolicyARNs:          slices.Clone(a.PolicyARNs),
		Tags:                maps.Clone(a.Tags),
		TransitiveTagKeys:   slices.Clone(a.TransitiveTagKeys),
		SourceIdentity:      a.SourceIdentity,
		ExternalID:          a.ExternalID,
		TTL:                 a.TTL,
		MaxTTL:              a.MaxTTL,
		Region:              a.Region,
		EarlyRevocation:     a.EarlyRevocation,
		UserName:            a.UserName,
		UserPath:            a.UserPath,
		PermissionsBoundary: a.PermissionsBoundary,
		UserPolicy:          slices.Clone(a.UserPolicy),
		Groups:              slices.Clone(a.Groups),
		WaitUntilUsable:     cloneBool(a.WaitUntilUsable),
	}
}

// RoleFromAPI returns the domain role a PUT body or a manifest describes.
// The CLI uses it too, to compile a manifest's role locally (keyferry
// apply), so that the server and the CLI read a role the same way.
func RoleFromAPI(r api.Role) policy.Role {
	var match map[string]policy.Values
	if r.Match != nil {
		match = make(map[string]policy.Values, len(r.Match))
		for k, v := range r.Match {
			match[k] = policy.Values(slices.Clone(v))
		}
	}
	return policy.Role{
		Name:         r.Name,
		Description:  r.Description,
		Issuer:       r.Issuer,
		Match:        match,
		Condition:    r.Condition,
		AllowUnbound: r.AllowUnbound,
		AWS:          awsFromAPI(r.AWS),
	}
}

func awsFromAPI(a api.AWS) policy.AWS {
	return policy.AWS{
		Type:                a.Type,
		RoleARN:             a.RoleARN,
		SessionName:         a.SessionName,
		SessionPolicy:       slices.Clone(a.SessionPolicy),
		PolicyARNs:          slices.Clone(a.PolicyARNs),
		Tags:                maps.Clone(a.Tags),
		TransitiveTagKeys:   slices.Clone(a.TransitiveTagKeys),
		SourceIdentity:      a.SourceIdentity,
		ExternalID:          a.ExternalID,
		TTL:                 a.TTL,
		MaxTTL:              a.MaxTTL,
		Region:              a.Region,
		EarlyRevocation:     a.EarlyRevocation,
		UserName:            a.UserName,
		UserPath:            a.UserPath,
		PermissionsBoundary: a.PermissionsBoundary,
		UserPolicy:          slices.Clone(a.UserPolicy),
		Groups:              slices.Clone(a.Groups),
		WaitUntilUsable:     cloneBool(a.WaitUntilUsable),
	}
}

func rolesToAPI(rs []policy.Role) []api.Role {
	if rs == nil {
		return nil
	}
	out := make([]api.Role, len(rs))
	for i := range rs {
		out[i] = RoleToAPI(rs[i])
	}
	return out
}

// IssuerToAPI returns is as the API shows it.
func IssuerToAPI(is identity.Issuer) api.Issuer {
	return api.Issuer{
		Name:                   is.Name,
		Kind:                   string(is.Kind),
		URL:                    is.URL,
		JWKSURL:                is.JWKSURL,
		PublicKeys:             slices.Clone(is.PublicKeys),
		CACert:                 is.CACert,
		Audiences:              slices.Clone(is.Audiences),
		AllowMultipleAudiences: is.AllowMultipleAudiences,
		Algorithms:             slices.Clone(is.Algorithms),
		Leeway:                 is.Leeway,
		MaxTokenAge:            is.MaxTokenAge,
		JWKSRefreshCooldown:    is.JWKSRefreshCooldown,
		ReplayMaxUses:          is.ReplayMaxUses,
	}
}

// IssuerFromAPI returns the domain issuer a PUT body or a manifest
// describes.
func IssuerFromAPI(is api.Issuer) identity.Issuer {
	return identity.Issuer{
		Name:                   is.Name,
		Kind:                   identity.Kind(is.Kind),
		URL:                    is.URL,
		JWKSURL:                is.JWKSURL,
		PublicKeys:             slices.Clone(is.PublicKeys),
		CACert:                 is.CACert,
		Audiences:              slices.Clone(is.Audiences),
		AllowMultipleAudiences: is.AllowMultipleAudiences,
		Algorithms:             slices.Clone(is.Algorithms),
		Leeway:                 is.Leeway,
		MaxTokenAge:            is.MaxTokenAge,
		JWKSRefreshCooldown:    is.JWKSRefreshCooldown,
		ReplayMaxUses:          is.ReplayMaxUses,
	}
}

func issuersToAPI(iss []identity.Issuer) []api.Issuer {
	if iss == nil {
		return nil
	}
	out := make([]api.Issuer, len(iss))
	for i := range iss {
		out[i] = IssuerToAPI(iss[i])
	}
	return out
}

// leaseToAPI returns l as the API shows it at now: with its effective
// state (an active lease past its expiry is expired). The token's claims
// and the refresh handle's hashes are not copied: api.Lease has no field
// for them.
func leaseToAPI(l lease.Lease, now time.Time) api.Lease {
	return api.Lease{
		ID:              l.ID,
		Role:            l.Role,
		Type:            l.Type,
		Identity:        identityToAPI(l.Identity),
		RoleARN:         l.RoleARN,
		SessionName:     l.SessionName,
		AccessKeyID:     l.AccessKeyID,
		IssuedAt:        l.IssuedAt,
		ExpiresAt:       l.ExpiresAt,
		State:           string(l.EffectiveState(now)),
		RevokedAt:       l.RevokedAt,
		RevokedBy:       l.RevokedBy,
		RevokeNote:      l.RevokeNote,
		RequestID:       l.RequestID,
		SourceAddr:      l.SourceAddr,
		MaxExpiresAt:    l.MaxExpiresAt,
		Refreshes:       l.Refreshes,
		Issuer:          l.Issuer,
		Region:          l.Region,
		Tags:            tagsToAPI(l.Tags),
		SourceIdentity:  l.SourceIdentity,
		UserName:        l.UserName,
		UserPath:        l.UserPath,
		UserParts:       userPartsToAPI(l.UserParts),
		AssumedRoleID:   l.AssumedRoleID,
		SessionIssuedAt: l.SessionIssuedAt,
		EarlyRevocation: l.EarlyRevocation,
		Attempts:        l.Attempts,
		LastError:       l.LastError,
		NextAttemptAt:   l.NextAttemptAt,
	}
}

// leasesToAPI converts a list of leases; it is never nil, so that an empty
// list is sent as [] (as the API always has).
func leasesToAPI(ls []lease.Lease, now time.Time) []api.Lease {
	out := make([]api.Lease, len(ls))
	for i := range ls {
		out[i] = leaseToAPI(ls[i], now)
	}
	return out
}

func tagsToAPI(ts []policy.Tag) []api.Tag {
	if ts == nil {
		return nil
	}
	out := make([]api.Tag, len(ts))
	for i, t := range ts {
		out[i] = api.Tag{Key: t.Key, Value: t.Value}
	}
	return out
}

func userPartsToAPI(p *awsprov.UserParts) *api.UserParts {
	if p == nil {
		return nil
	}
	return &api.UserParts{
		InlinePolicies: slices.Clone(p.InlinePolicies),
		PolicyARNs:     slices.Clone(p.PolicyARNs),
		Groups:         slices.Clone(p.Groups),
	}
}

func orphanToAPI(o lease.Orphan) api.Orphan {
	return api.Orphan{
		UserName: o.UserName,
		Path:     o.Path,
		Created:  o.Created,
		LeaseID:  o.LeaseID,
		Deleted:  o.Deleted,
		Error:    o.Error,
	}
}

func orphansToAPI(orphans []lease.Orphan) []api.Orphan {
	if orphans == nil {
		return nil
	}
	out := make([]api.Orphan, len(orphans))
	for i := range orphans {
		out[i] = orphanToAPI(orphans[i])
	}
	return out
}

// tokenToAPI returns t without its hash.
func tokenToAPI(t admintoken.Token) api.Token {
	return api.Token{
		ID:        t.ID,
		Name:      t.Name,
		Scopes:    slices.Clone(t.Scopes),
		CreatedAt: t.CreatedAt,
	}
}

func tokensToAPI(ts []admintoken.Token) []api.Token {
	if ts == nil {
		return nil
	}
	out := make([]api.Token, len(ts))
	for i := range ts {
		out[i] = tokenToAPI(ts[i])
	}
	return out
}

func cloneBool(b *bool) *bool {
	if b == nil {
		return nil
	}
	v := *b
	return &v
}

// identityToAPI returns a CI identity summary as the API shows it.
func identityToAPI(s identity.Summary) api.Identity {
	return api.Identity{
		Issuer:    s.Issuer,
		Subject:   s.Subject,
		Project:   s.Project,
		ProjectID: s.ProjectID,
		Ref:       s.Ref,
		Pipeline:  s.Pipeline,
		Job:       s.Job,
		User:      s.User,
	}
}

// credentialsToAPI returns minted credentials as a client receives them.
// The session's AssumedRoleID is left out: the lease keeps it for early
// revocation, and the caller knows its session by its ARN.
func credentialsToAPI(c awsprov.Credentials) api.Credentials {
	return api.Credentials{
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		SessionToken:    c.SessionToken,
		Expiration:      c.Expiration,
		AccountID:       c.AccountID,
		AssumedRoleARN:  c.AssumedRoleARN,
	}
}
