package httpapi

import (
	"encoding/json"
	"time"

	"github.com/keyferry/keyferry/internal/admintoken"
	"github.com/keyferry/keyferry/internal/dur"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/lease"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
)

// Domain objects whose API rendering the golden files in testdata pin.
// The golden files were written by the handlers' rendering before the
// api types existed, so that the wire format is known not to have changed.

var fixtureNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func t0(min int) time.Time { return fixtureNow.Add(time.Duration(min) * time.Minute) }

// fullLease sets every field of lease.Lease, secrets included.
func fullLease() lease.Lease {
	return lease.Lease{
		ID: "01JNB4Q7YV0000000000000001", Role: "deploy-users", Type: policy.TypeIAMUser,
		Identity: identity.Summary{
			Issuer: "https://gitlab.example.com", Subject: "project_path:group/app:ref_type:branch:ref:main",
			Project: "group/app", ProjectID: "42", Ref: "main", Pipeline: "1001", Job: "2002", User: "alice",
		},
		RoleARN: "arn:aws:iam::123456789012:role/deploy", SessionName: "gl-group-app-2002",
		AccessKeyID: "AKIAEXAMPLE000000001", IssuedAt: t0(-90), ExpiresAt: t0(-30), State: lease.StateRevoked,
		RevokedAt: t0(-10), RevokedBy: "admin_token:0123456789abcdef(ops)", RevokeNote: "revoked by break glass",
		RequestID: "req-0123456789", SourceAddr: "192.0.2.10", MaxExpiresAt: t0(270), Refreshes: 2,
		Issuer: "gitlab", Claims: map[string]any{"user_email": "alice@example.com", "project_id": "42"},
		Region: "eu-west-1", Tags: []policy.Tag{{Key: "project", Value: "group/app"}, {Key: "pipeline", Value: "1001"}},
		SourceIdentity: "alice", UserName: "kf-01JNB4Q7YV0000000000000001", UserPath: "/keyferry/",
		UserParts:     &awsprov.UserParts{InlinePolicies: []string{"keyferry"}, PolicyARNs: []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"}, Groups: []string{"ci"}},
		AssumedRoleID: "AROAEXAMPLE000000001", SessionIssuedAt: t0(-60), EarlyRevocation: true,
		Attempts: 3, LastError: "iam: throttled", NextAttemptAt: t0(5),
		RefreshHash:       "4f5a0a1f0e4c7f8b4d2e2c6b8a9f0e1d2c3b4a5968778695a4b3c2d1e0f0a1b2",
		PrevRefreshHashes: []string{"0e1d2c3b4a5968778695a4b3c2d1e0f0a1b24f5a0a1f0e4c7f8b4d2e2c6b8a9f"},
	}
}

// minimalLease is an active STS lease past its expiry (shown as expired),
// with only the fields issuance always sets.
func minimalLease() lease.Lease {
	return lease.Lease{
		ID: "01JNB4Q7YV0000000000000002", Role: "deploy", Type: policy.TypeAssumeRole,
		RoleARN: "arn:aws:iam::123456789012:role/deploy", AccessKeyID: "ASIAEXAMPLE000000002",
		IssuedAt: t0(-120), ExpiresAt: t0(-60), State: lease.StateActive,
	}
}

func boolPtr(b bool) *bool { return &b }

// fullRole sets every field of policy.Role.
func fullRole() policy.Role {
	return policy.Role{
		Name: "deploy-users", Description: "IAM users for group/app", Issuer: "gitlab",
		Match:     map[string]policy.Values{"project_path": {"group/app"}, "ref": {"main", "release/*"}},
		Condition: `claims.pipeline_source != "merge_request_event"`, AllowUnbound: true,
		AWS: policy.AWS{
			Type: policy.TypeIAMUser, RoleARN: "arn:aws:iam::123456789012:role/deploy",
			SessionName:       "gl-{project_path}-{job_id}",
			SessionPolicy:     json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`),
			PolicyARNs:        []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"},
			Tags:              map[string]string{"project": "{project_path}", "pipeline": "{pipeline_id}"},
			TransitiveTagKeys: []string{"project"}, SourceIdentity: "{user_login}", ExternalID: "ext-1",
			TTL: dur.Duration(time.Hour), MaxTTL: dur.Duration(6 * time.Hour), Region: "eu-west-1",
			EarlyRevocation: true, UserName: "kf-{lease_id}", UserPath: "/keyferry/",
			PermissionsBoundary: "arn:aws:iam::123456789012:policy/boundary",
			UserPolicy:          json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"*"}]}`),
			Groups:              []string{"ci"}, WaitUntilUsable: boolPtr(false),
		},
	}
}

func minimalRole() policy.Role {
	return policy.Role{
		Name: "deploy", Issuer: "gitlab",
		AWS: policy.AWS{Type: policy.TypeAssumeRole, RoleARN: "arn:aws:iam::123456789012:role/deploy"},
	}
}

// fullIssuer sets every field of identity.Issuer.
func fullIssuer() identity.Issuer {
	return identity.Issuer{
		Name: "gitlab", Kind: identity.KindGitLab, URL: "https://gitlab.example.com",
		JWKSURL: "https://gitlab.example.com/oauth/discovery/keys", PublicKeys: []string{`{"keys":[]}`},
		CACert: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", Audiences: []string{"https://keyferry.example.com"},
		AllowMultipleAudiences: true, Algorithms: []string{"RS256", "ES256"}, Leeway: dur.Duration(30 * time.Second),
		MaxTokenAge: dur.Duration(24 * time.Hour), JWKSRefreshCooldown: dur.Duration(time.Minute), ReplayMaxUses: 1,
	}
}

func minimalIssuer() identity.Issuer {
	return identity.Issuer{Name: "dev", Kind: identity.KindGeneric, URL: "http://127.0.0.1:8200/dev/oidc"}
}

func fixtureToken() admintoken.Token {
	return admintoken.Token{
		ID: "0123456789abcdef", Name: "ops", Scopes: []string{"leases:read", "leases:revoke"},
		Hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", CreatedAt: t0(-600),
	}
}

func fixtureOrphans() []lease.Orphan {
	return []lease.Orphan{
		{UserName: "kf-01JNB4Q7YV0000000000000009", Path: "/keyferry/", Created: t0(-3000), LeaseID: "01JNB4Q7YV0000000000000009", Deleted: true},
		{UserName: "kf-stray", Path: "/keyferry/", Created: t0(-4000), Error: "iam: access denied"},
	}
}
