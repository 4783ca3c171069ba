package server

import (
	"context"
	"time"

	"github.com/keyferry/keyferry/internal/lease"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
)

// iamUsers adapts the AWS provider to the lease package's Users port. The
// port has its own user types (the lease store's, not the SDK's); what it
// only passes through (tags, the parts of a user to delete) are the
// provider's.
type iamUsers struct{ p *awsprov.Provider }

var _ Users = iamUsers{}

func (u iamUsers) CreateUser(ctx context.Context, s lease.UserSpec) (*lease.User, error) {
	out, err := u.p.CreateUser(ctx, awsprov.UserSpec{
		UserName: s.UserName, Path: s.Path, Tags: s.Tags, PermissionsBoundary: s.PermissionsBoundary,
		InlinePolicyName: s.InlinePolicyName, InlinePolicy: s.InlinePolicy, PolicyARNs: s.PolicyARNs, Groups: s.Groups,
	})
	if err != nil {
		return nil, err
	}
	return &lease.User{UserName: out.UserName, UserARN: out.UserARN, AccessKeyID: out.AccessKeyID, SecretAccessKey: out.SecretAccessKey}, nil
}

func (u iamUsers) WaitUsable(ctx context.Context, akid, secret string, successes int, interval time.Duration) error {
	return u.p.WaitUsable(ctx, akid, secret, successes, interval)
}

func (u iamUsers) DeleteUser(ctx context.Context, name string, known *awsprov.UserParts) error {
	return u.p.DeleteUser(ctx, name, known)
}

func (u iamUsers) ListUsers(ctx context.Context, path string) ([]lease.UserInfo, error) {
	us, err := u.p.ListUsers(ctx, path)
	if err != nil {
		return nil, err
	}
	out := make([]lease.UserInfo, len(us))
	for i, x := range us {
		out[i] = lease.UserInfo{UserName: x.UserName, Path: x.Path, Created: x.Created, Tags: x.Tags}
	}
	return out, nil
}
