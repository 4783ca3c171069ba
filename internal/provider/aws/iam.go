package aws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// Defaults for IAM users.
const (
	DefaultIAMRegion        = "us-east-1"
	DefaultUserPath         = "/keyferry/"
	DefaultInlinePolicyName = "keyferry"
	// DefaultProbeInterval is WaitUsable's pause between probes when none is
	// given.
	DefaultProbeInterval = time.Second
)

// The steps of CreateUser, in order; PartialError names them.
const (
	StepCreateUser       = "CreateUser"
	StepPutUserPolicy    = "PutUserPolicy"
	StepAttachUserPolicy = "AttachUserPolicy"
	StepAddUserToGroup   = "AddUserToGroup"
	StepCreateAccessKey  = "CreateAccessKey"
)

// IAM operation names, as they appear in messages and logs.
const (
	opDeleteUser                      = "DeleteUser"
	opListUsers                       = "ListUsers"
	opListUserTags                    = "ListUserTags"
	opListAccessKeys                  = "ListAccessKeys"
	opDeleteAccessKey                 = "DeleteAccessKey"
	opListUserPolicies                = "ListUserPolicies"
	opDeleteUserPolicy                = "DeleteUserPolicy"
	opListAttachedUserPolicies        = "ListAttachedUserPolicies"
	opDetachUserPolicy                = "DetachUserPolicy"
	opListGroupsForUser               = "ListGroupsForUser"
	opRemoveUserFromGroup             = "RemoveUserFromGroup"
	opDeleteLoginProfile              = "DeleteLoginProfile"
	opListMFADevices                  = "ListMFADevices"
	opDeactivateMFADevice             = "DeactivateMFADevice"
	opListSigningCertificates         = "ListSigningCertificates"
	opDeleteSigningCertificate        = "DeleteSigningCertificate"
	opListSSHPublicKeys               = "ListSSHPublicKeys"
	opDeleteSSHPublicKey              = "DeleteSSHPublicKey"
	opListServiceSpecificCredentials  = "ListServiceSpecificCredentials"
	opDeleteServiceSpecificCredential = "DeleteServiceSpecificCredential"
)

// IAM error codes the provider branches on.
const (
	codeNoSuchEntity   = "NoSuchEntity"
	codeDeleteConflict = "DeleteConflict"
)

// Log attribute keys for IAM.
const (
	logKeyUser   = "iam_user"
	logKeyStep   = "step"
	logKeySteps  = "steps"
	logKeyProbes = "probes"
)

// maxPages bounds every listing, against a server that never stops
// answering IsTruncated.
const maxPages = 10000

// UserSpec is an IAM user to create.
type UserSpec struct {
	// UserName is required: 1–64 characters of [A-Za-z0-9+=,.@_-]. It must
	// be unique; the caller records it (the lease) before CreateUser.
	UserName string
	// Path defaults to DefaultUserPath. ListUsers finds users by it.
	Path string
	Tags []Tag
	// PermissionsBoundary is an optional managed policy ARN.
	PermissionsBoundary string
	// InlinePolicy is an optional JSON policy put on the user under
	// InlinePolicyName (default DefaultInlinePolicyName).
	InlinePolicyName string
	InlinePolicy     string
	// PolicyARNs are managed policies to attach.
	PolicyARNs []string
	// Groups are existing IAM groups to add the user to.
	Groups []string
}

// User is a created IAM user and its access key.
type User struct {
	UserName, UserARN, UserID string
	AccessKeyID               string
	SecretAccessKey           string
	// Created is the user's creation time as IAM reports it.
	Created time.Time
}

// UserInfo is a user found by ListUsers.
type UserInfo struct {
	UserName, Path, UserARN, UserID string
	Created                         time.Time
	// Tags is nil when the server cannot list user tags (ListUserTags
	// unsupported), empty when the user has none.
	Tags map[string]string
}

// Step is one IAM call of CreateUser: Op is a Step* constant; Target is
// the policy name, policy ARN or group it concerned ("" for CreateUser and
// CreateAccessKey).
type Step struct{ Op, Target string }

func (s Step) String() string {
	if s.Target == "" {
		return s.Op
	}
	return s.Op + " " + s.Target
}

// PartialError is a CreateUser failure. CreateUser cleans nothing up:
// whatever Completed lists exists in IAM until DeleteUser removes it (the
// caller's lease names the user; its reconciler deletes it).
type PartialError struct {
	UserName string
	// Failed is the call that failed. A call that timed out or failed after
	// retries may still have taken effect upstream.
	Failed Step
	// Completed are the calls that succeeded, in order.
	Completed []Step
	// Err is an *Error, or the context's error when the caller went away.
	Err error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("aws: create IAM user %s: %s failed after %d completed steps: %v", e.UserName, e.Failed, len(e.Completed), e.Err)
}

func (e *PartialError) Unwrap() error { return e.Err }

// UserMayExist reports whether a user by this name may exist upstream, so
// that the caller must delete it. It is false only when IAM refused the
// CreateUser call itself for a reason other than EntityAlreadyExists (an
// earlier attempt of the same call, retried after a 5xx or a lost answer,
// may have created it: DeleteUser is then needed, and it is the caller's
// job to make sure the name is its own).
func (e *PartialError) UserMayExist() bool {
	if e.Failed.Op != StepCreateUser {
		return true
	}
	var ae *Error
	if errors.As(e.Err, &ae) && (ae.Code == CodeAccessDenied || ae.Code == CodeInvalidRequest) {
		return ae.UpstreamCode == "EntityAlreadyExists"
	}
	return true
}

func (p *Provider) newIAMClient() *iam.Client {
	return iam.NewFromConfig(p.base, func(o *iam.Options) {
		o.Region = p.cfg.IAMRegion
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = p.cfg.MaxAttempts
			so.MaxBackoff = p.cfg.MaxBackoff
			// IAM answers ConcurrentModification (409) when two writes to one
			// entity race; the second succeeds if retried.
			so.Retryables = append(slices.Clone(so.Retryables),
				retry.RetryableErrorCode{Codes: map[string]struct{}{"ConcurrentModification": {}}})
		})
		o.RetryMaxAttempts = 0 // ignore AWS_MAX_ATTEMPTS: Config decides
		if p.cfg.IAMEndpoint != "" {
			o.BaseEndpoint = aws.String(p.cfg.IAMEndpoint)
		}
	})
}

// CreateUser creates an IAM user with an access key: CreateUser (path,
// tags, permissions boundary) → PutUserPolicy → AttachUserPolicy per ARN →
// AddUserToGroup per group → CreateAccessKey. A spec that fails local
// checks returns an *Error (CodeInvalidRequest) before any call; any
// upstream failure returns a *PartialError naming the failed step and the
// completed ones, and nothing is cleaned up. The new key may not work for
// several seconds (see WaitUsable).
func (p *Provider) CreateUser(ctx context.Context, s UserSpec) (*User, error) {
	s, err := s.normalize()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	name := aws.String(s.UserName)
	pe := &PartialError{UserName: s.UserName}
	run := func(st Step, call func(context.Context) error) bool {
		if err := p.iamCall(ctx, st.Op, s.UserName, call); err != nil {
			pe.Failed, pe.Err = st, err
			return false
		}
		pe.Completed = append(pe.Completed, st)
		return true
	}
	fail := func() (*User, error) {
		p.logIAMFailure(ctx, "CreateUser", s.UserName, pe.Failed.String(), pe.Err)
		return nil, pe
	}

	u := &User{UserName: s.UserName}
	if !run(Step{Op: StepCreateUser}, func(ctx context.Context) error {
		out, err := p.iam.CreateUser(ctx, &iam.CreateUserInput{
			UserName:            name,
			Path:                aws.String(s.Path),
			PermissionsBoundary: nonEmpty(s.PermissionsBoundary),
			Tags:                iamTags(s.Tags),
		})
		if err != nil {
			return err
		}
		if out.User != nil {
			u.UserARN, u.UserID, u.Created = aws.ToString(out.User.Arn), aws.ToString(out.User.UserId), aws.ToTime(out.User.CreateDate)
		}
		return nil
	}) {
		return fail()
	}
	if s.InlinePolicy != "" && !run(Step{StepPutUserPolicy, s.InlinePolicyName}, func(ctx context.Context) error {
		_, err := p.iam.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: name, PolicyName: aws.String(s.InlinePolicyName), PolicyDocument: aws.String(s.InlinePolicy)})
		return err
	}) {
		return fail()
	}
	for _, arn := range s.PolicyARNs {
		if !run(Step{StepAttachUserPolicy, arn}, func(ctx context.Context) error {
			_, err := p.iam.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: name, PolicyArn: aws.String(arn)})
			return err
		}) {
			return fail()
		}
	}
	for _, g := range s.Groups {
		if !run(Step{StepAddUserToGroup, g}, func(ctx context.Context) error {
			_, err := p.iam.AddUserToGroup(ctx, &iam.AddUserToGroupInput{UserName: name, GroupName: aws.String(g)})
			return err
		}) {
			return fail()
		}
	}
	if !run(Step{Op: StepCreateAccessKey}, func(ctx context.Context) error {
		out, err := p.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: name})
		if err != nil {
			return err
		}
		if out.AccessKey == nil || aws.ToString(out.AccessKey.AccessKeyId) == "" || aws.ToString(out.AccessKey.SecretAccessKey) == "" {
			return errNoAccessKey
		}
		u.AccessKeyID, u.SecretAccessKey = aws.ToString(out.AccessKey.AccessKeyId), aws.ToString(out.AccessKey.SecretAccessKey)
		return nil
	}) {
		return fail()
	}
	if p.log.Enabled(ctx, slog.LevelDebug) {
		p.log.LogAttrs(ctx, slog.LevelDebug, "iam user created",
			slog.String(logKeyUser, u.UserName),
			slog.String(logKeyAccessKeyID, u.AccessKeyID),
			slog.Int(logKeySteps, len(pe.Completed)),
			slog.Duration(logKeyTook, time.Since(start)))
	}
	return u, nil
}

var errNoAccessKey = errors.New("aws: CreateAccessKey answered without a key")

// normalize applies defaults and checks what would otherwise fail later in
// a way that matters: the name (DeleteUser and leases key on it) and the
// path (ListUsers finds keyferry's users by it).
func (s UserSpec) normalize() (UserSpec, error) {
	bad := func(format string, args ...any) (UserSpec, error) {
		return s, &Error{Code: CodeInvalidRequest, Message: "invalid IAM user: " + fmt.Sprintf(format, args...)}
	}
	if !validUserName(s.UserName) {
		return bad("name %q must be 1–64 characters of letters, digits and +=,.@_-", s.UserName)
	}
	if s.Path == "" {
		s.Path = DefaultUserPath
	}
	if !validPath(s.Path) {
		return bad("path %q must be / or start and end with / (printable ASCII, at most 512 characters)", s.Path)
	}
	if s.InlinePolicy == "" && s.InlinePolicyName != "" {
		return bad("inline policy name %q without a policy", s.InlinePolicyName)
	}
	if s.InlinePolicy != "" && s.InlinePolicyName == "" {
		s.InlinePolicyName = DefaultInlinePolicyName
	}
	if len(s.Tags) > 50 {
		return bad("%d tags, at most 50", len(s.Tags))
	}
	return s, nil
}

func validUserName(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("+=,.@_-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func validPath(s string) bool {
	if len(s) < 1 || len(s) > 512 || s[0] != '/' || s[len(s)-1] != '/' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func iamTags(ts []Tag) []iamtypes.Tag {
	return mapSlice(ts, func(t Tag) iamtypes.Tag { return iamtypes.Tag{Key: aws.String(t.Key), Value: aws.String(t.Value)} })
}

// WaitUsable probes STS GetCallerIdentity signed with the given key, every
// interval (default DefaultProbeInterval), until successes (at least 1)
// consecutive probes succeed: IAM is eventually consistent and a new key
// fails for 5–15 s. Any failed probe restarts the count. It uses the
// default region's STS client (Config.Endpoint) without retries, each probe
// bounded by CallTimeout, and returns when ctx ends: an *Error with
// CodeTimeout (wrapping the context error and the last probe's error) when
// ctx's deadline passed, the wrapped context error when it was cancelled.
func (p *Provider) WaitUsable(ctx context.Context, accessKeyID, secret string, successes int, interval time.Duration) error {
	successes = max(successes, 1)
	if interval <= 0 {
		interval = DefaultProbeInterval
	}
	c, err := p.client("")
	if err != nil {
		return err
	}
	key := aws.Credentials{AccessKeyID: accessKeyID, SecretAccessKey: secret, Source: "keyferry-probe"}
	probe := func(o *sts.Options) {
		o.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return key, nil })
		o.Retryer = aws.NopRetryer{} // the loop is the retry
	}
	start := time.Now()
	streak, probes := 0, 0
	var last error
	var timer *time.Timer
	for {
		probes++
		callCtx, cancel := context.WithTimeoutCause(ctx, p.cfg.CallTimeout, errCallTimeout)
		_, err := c.GetCallerIdentity(callCtx, &sts.GetCallerIdentityInput{}, probe)
		cancel()
		if err == nil {
			if streak++; streak >= successes {
				p.log.LogAttrs(ctx, slog.LevelDebug, "access key usable",
					slog.String(logKeyAccessKeyID, accessKeyID),
					slog.Int(logKeyProbes, probes),
					slog.Duration(logKeyTook, time.Since(start)))
				return nil
			}
		} else if ctx.Err() == nil { // not a probe the caller's deadline cut short
			streak, last = 0, err
		}
		if timer == nil {
			timer = time.NewTimer(interval)
			defer timer.Stop()
		} else {
			timer.Reset(interval)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return p.waitFailed(ctx, accessKeyID, probes, time.Since(start), last)
		}
	}
}

func (p *Provider) waitFailed(ctx context.Context, accessKeyID string, probes int, took time.Duration, last error) error {
	ctxErr := ctx.Err()
	if !errors.Is(ctxErr, context.DeadlineExceeded) {
		return fmt.Errorf("aws: waiting for access key %s: %w", accessKeyID, ctxErr)
	}
	e := &Error{
		Code:    CodeTimeout,
		Message: fmt.Sprintf("the new AWS access key %s was not usable after %d probes in %s", accessKeyID, probes, took.Round(time.Millisecond)),
		Err:     errors.Join(ctxErr, last),
	}
	if last != nil {
		e.UpstreamCode = apiCode(last)
	}
	p.log.LogAttrs(ctx, slog.LevelWarn, "access key not usable in time",
		slog.String(logKeyAccessKeyID, accessKeyID),
		slog.Int(logKeyProbes, probes),
		slog.String(logKeyUpstreamCode, e.UpstreamCode),
		slog.Any(logKeyErr, last))
	return e
}

// UserParts names what keyferry attached to a user it created: the
// access keys, inline policy names, managed policy ARNs and groups. A
// lease records it (without the access key, which the lease holds
// itself) before the user is created, so that revocation deletes exactly
// that.
type UserParts struct {
	AccessKeyIDs   []string `json:"access_key_ids,omitempty"`
	InlinePolicies []string `json:"inline_policies,omitempty"`
	PolicyARNs     []string `json:"policy_arns,omitempty"`
	Groups         []string `json:"groups,omitempty"`
}

// DeleteUser deletes an IAM user and everything AWS requires gone first:
// its access keys, inline policies, attached managed policies and group
// memberships, then DeleteUser.
//
// With known (what the lease recorded at creation), it removes exactly
// those and calls DeleteUser: three calls for a user with a key and an
// inline policy, where listing costs seven. IAM's DeleteConflict is the
// check that nothing else is left; on it, and when known is nil (a user
// found by the orphan sweep), it lists every kind of attachment and
// removes what it finds. If IAM still answers DeleteConflict (the user has
// a login profile, MFA device, signing certificate, SSH key or
// service-specific credential, none of which keyferry creates, or gained
// a key meanwhile), it removes those too, all listed afresh, and retries
// once; a second DeleteConflict is an *Error naming it. NoSuchEntity
// anywhere counts as done, so DeleteUser is idempotent and works from any
// partial CreateUser.
func (p *Provider) DeleteUser(ctx context.Context, userName string, known *UserParts) error {
	if !validUserName(userName) {
		return &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf("invalid IAM user name %q", userName)}
	}
	start := time.Now()
	if err := p.deleteUser(ctx, userName, known); err != nil {
		p.logIAMFailure(ctx, opDeleteUser, userName, "", err)
		return err
	}
	p.log.LogAttrs(ctx, slog.LevelDebug, "iam user deleted",
		slog.String(logKeyUser, userName), slog.Duration(logKeyTook, time.Since(start)))
	return nil
}

func (p *Provider) deleteUser(ctx context.Context, name string, known *UserParts) error {
	if known != nil {
		done, err := p.deleteKnown(ctx, name, known)
		if err != nil || done {
			return err
		}
		p.log.LogAttrs(ctx, slog.LevelInfo, "iam user has more than its lease recorded; listing what is left",
			slog.String(logKeyUser, name), slog.String(logKeyUpstreamCode, codeDeleteConflict))
	}
	for pass := 1; ; pass++ {
		gone, err := p.detachAll(ctx, name, pass > 1)
		if err != nil || gone {
			return err
		}
		err = p.callDeleteUser(ctx, name)
		switch {
		case err == nil || isUpstream(err, codeNoSuchEntity):
			return nil
		case !isUpstream(err, codeDeleteConflict):
			return err
		case pass > 1:
			var e *Error
			errors.As(err, &e)
			e.Message = fmt.Sprintf("AWS IAM still refuses DeleteUser on %s (DeleteConflict) after its keys, policies, groups, login profile, MFA devices, certificates, SSH keys and service credentials were removed", name)
			return e
		}
		p.log.LogAttrs(ctx, slog.LevelInfo, "iam user has more than keyferry gave it; removing the rest",
			slog.String(logKeyUser, name), slog.String(logKeyUpstreamCode, codeDeleteConflict))
	}
}

// deleteKnown removes the parts in known and then the user. done is false
// when DeleteUser answered DeleteConflict: something is left that known
// did not name. An action the server does not implement is skipped, as
// detachAll skips its list (DeleteUser's answer says whether it mattered).
func (p *Provider) deleteKnown(ctx context.Context, name string, known *UserParts) (done bool, err error) {
	ids := map[string][]string{
		opDeleteAccessKey: known.AccessKeyIDs, opDeleteUserPolicy: known.InlinePolicies,
		opDetachUserPolicy: known.PolicyARNs, opRemoveUserFromGroup: known.Groups,
	}
	for _, part := range p.userParts(name, false) {
		for _, id := range ids[part.delOp] {
			err := p.iamCall(ctx, part.delOp, name, func(ctx context.Context) error { return part.del(ctx, id) })
			// NoSuchEntity: never attached (a crash mid-CreateUser), or
			// removed by another worker or a human.
			if err != nil && !isUpstream(err, codeNoSuchEntity) && !unsupported(err) {
				return false, err
			}
		}
	}
	err = p.callDeleteUser(ctx, name)
	switch {
	case err == nil || isUpstream(err, codeNoSuchEntity):
		return true, nil
	case isUpstream(err, codeDeleteConflict):
		return false, nil
	default:
		return false, err
	}
}

func (p *Provider) callDeleteUser(ctx context.Context, name string) error {
	return p.iamCall(ctx, opDeleteUser, name, func(ctx context.Context) error {
		_, err := p.iam.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String(name)})
		return err
	})
}

// userPart is one kind of thing that blocks DeleteUser while the user has
// it: how to list a user's and how to remove one.
type userPart struct {
	listOp, delOp string
	list          func(context.Context) ([]string, error)
	del           func(context.Context, string) error
}

// detachAll removes what blocks DeleteUser: access keys, inline and managed
// policies and group memberships; with all, also the login profile, MFA
// devices, signing certificates, SSH keys and service-specific
// credentials. A list action the server does not implement means it has
// none of that kind (versitygw has no ListAttachedUserPolicies), except for
// access keys. gone reports that the user no longer exists.
func (p *Provider) detachAll(ctx context.Context, name string, all bool) (gone bool, err error) {
	parts := p.userParts(name, all)
	if all {
		err := p.iamCall(ctx, opDeleteLoginProfile, name, func(ctx context.Context) error {
			_, err := p.iam.DeleteLoginProfile(ctx, &iam.DeleteLoginProfileInput{UserName: aws.String(name)})
			return err
		})
		if err != nil && !isUpstream(err, codeNoSuchEntity) && !unsupported(err) {
			return false, err
		}
	}
	for _, part := range parts {
		ids, err := part.list(ctx)
		switch {
		case err == nil:
		case isUpstream(err, codeNoSuchEntity):
			return true, nil
		case unsupported(err) && part.listOp != opListAccessKeys:
			continue
		default:
			return false, err
		}
		for _, id := range ids {
			err := p.iamCall(ctx, part.delOp, name, func(ctx context.Context) error { return part.del(ctx, id) })
			// NoSuchEntity: another worker or a human got there first.
			if err != nil && !isUpstream(err, codeNoSuchEntity) {
				return false, err
			}
		}
	}
	return false, nil
}

// userParts lists what detachAll removes, in order. Only with all does it
// include what keyferry never creates: for the users keyferry makes, those
// calls would be pure cost against IAM's quotas (DeleteLoginProfile is a
// write that always answers NoSuchEntity), and DeleteUser's DeleteConflict
// says when they are needed.
func (p *Provider) userParts(name string, all bool) []userPart {
	user := aws.String(name)
	parts := []userPart{
		{
			opListAccessKeys, opDeleteAccessKey,
			func(ctx context.Context) ([]string, error) {
				return collect(ctx, p, opListAccessKeys, name,
					iam.NewListAccessKeysPaginator(p.iam, &iam.ListAccessKeysInput{UserName: user}).NextPage,
					func(o *iam.ListAccessKeysOutput) []string {
						return mapSlice(o.AccessKeyMetadata, func(k iamtypes.AccessKeyMetadata) string { return aws.ToString(k.AccessKeyId) })
					})
			},
			func(ctx context.Context, id string) error {
				_, err := p.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: user, AccessKeyId: aws.String(id)})
				return err
			},
		},
		{
			opListUserPolicies, opDeleteUserPolicy,
			func(ctx context.Context) ([]string, error) {
				return collect(ctx, p, opListUserPolicies, name,
					iam.NewListUserPoliciesPaginator(p.iam, &iam.ListUserPoliciesInput{UserName: user}).NextPage,
					func(o *iam.ListUserPoliciesOutput) []string { return o.PolicyNames })
			},
			func(ctx context.Context, policy string) error {
				_, err := p.iam.DeleteUserPolicy(ctx, &iam.DeleteUserPolicyInput{UserName: user, PolicyName: aws.String(policy)})
				return err
			},
		},
		{
			opListAttachedUserPolicies, opDetachUserPolicy,
			func(ctx context.Context) ([]string, error) {
				return collect(ctx, p, opListAttachedUserPolicies, name,
					iam.NewListAttachedUserPoliciesPaginator(p.iam, &iam.ListAttachedUserPoliciesInput{UserName: user}).NextPage,
					func(o *iam.ListAttachedUserPoliciesOutput) []string {
						return mapSlice(o.AttachedPolicies, func(a iamtypes.AttachedPolicy) string { return aws.ToString(a.PolicyArn) })
					})
			},
			func(ctx context.Context, arn string) error {
				_, err := p.iam.DetachUserPolicy(ctx, &iam.DetachUserPolicyInput{UserName: user, PolicyArn: aws.String(arn)})
				return err
			},
		},
		{
			opListGroupsForUser, opRemoveUserFromGroup,
			func(ctx context.Context) ([]string, error) {
				return collect(ctx, p, opListGroupsForUser, name,
					iam.NewListGroupsForUserPaginator(p.iam, &iam.ListGroupsForUserInput{UserName: user}).NextPage,
					func(o *iam.ListGroupsForUserOutput) []string {
						return mapSlice(o.Groups, func(g iamtypes.Group) string { return aws.ToString(g.GroupName) })
					})
			},
			func(ctx context.Context, group string) error {
				_, err := p.iam.RemoveUserFromGroup(ctx, &iam.RemoveUserFromGroupInput{UserName: user, GroupName: aws.String(group)})
				return err
			},
		},
	}
	if !all {
		return parts
	}
	return append(parts,
		userPart{
			opListMFADevices, opDeactivateMFADevice,
			func(ctx context.Context) ([]string, error) {
				return collect(ctx, p, opListMFADevices, name,
					iam.NewListMFADevicesPaginator(p.iam, &iam.ListMFADevicesInput{UserName: user}).NextPage,
					func(o *iam.ListMFADevicesOutput) []string {
						return mapSlice(o.MFADevices, func(d iamtypes.MFADevice) string { return aws.ToString(d.SerialNumber) })
					})
			},
			func(ctx context.Context, serial string) error {
				_, err := p.iam.DeactivateMFADevice(ctx, &iam.DeactivateMFADeviceInput{UserName: user, SerialNumber: aws.String(serial)})
				return err
			},
		},
		userPart{
			opListSigningCertificates, opDeleteSigningCertificate,
			func(ctx context.Context) ([]string, error) {
				return collect(ctx, p, opListSigningCertificates, name,
					iam.NewListSigningCertificatesPaginator(p.iam, &iam.ListSigningCertificatesInput{UserName: user}).NextPage,
					func(o *iam.ListSigningCertificatesOutput) []string {
						return mapSlice(o.Certificates, func(c iamtypes.SigningCertificate) string { return aws.ToString(c.CertificateId) })
					})
			},
			func(ctx context.Context, id string) error {
				_, err := p.iam.DeleteSigningCertificate(ctx, &iam.DeleteSigningCertificateInput{UserName: user, CertificateId: aws.String(id)})
				return err
			},
		},
		userPart{
			opListSSHPublicKeys, opDeleteSSHPublicKey,
			func(ctx context.Context) ([]string, error) {
				return collect(ctx, p, opListSSHPublicKeys, name,
					iam.NewListSSHPublicKeysPaginator(p.iam, &iam.ListSSHPublicKeysInput{UserName: user}).NextPage,
					func(o *iam.ListSSHPublicKeysOutput) []string {
						return mapSlice(o.SSHPublicKeys, func(k iamtypes.SSHPublicKeyMetadata) string { return aws.ToString(k.SSHPublicKeyId) })
					})
			},
			func(ctx context.Context, id string) error {
				_, err := p.iam.DeleteSSHPublicKey(ctx, &iam.DeleteSSHPublicKeyInput{UserName: user, SSHPublicKeyId: aws.String(id)})
				return err
			},
		},
		userPart{
			opListServiceSpecificCredentials, opDeleteServiceSpecificCredential,
			func(ctx context.Context) ([]string, error) { return p.listServiceCredentials(ctx, name) },
			func(ctx context.Context, id string) error {
				_, err := p.iam.DeleteServiceSpecificCredential(ctx, &iam.DeleteServiceSpecificCredentialInput{UserName: user, ServiceSpecificCredentialId: aws.String(id)})
				return err
			},
		},
	)
}

// listServiceCredentials pages by hand: the SDK has no paginator for it.
func (p *Provider) listServiceCredentials(ctx context.Context, name string) ([]string, error) {
	var ids []string
	var marker *string
	for range maxPages {
		var out *iam.ListServiceSpecificCredentialsOutput
		err := p.iamCall(ctx, opListServiceSpecificCredentials, name, func(ctx context.Context) (err error) {
			out, err = p.iam.ListServiceSpecificCredentials(ctx, &iam.ListServiceSpecificCredentialsInput{UserName: aws.String(name), Marker: marker})
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, c := range out.ServiceSpecificCredentials {
			ids = append(ids, aws.ToString(c.ServiceSpecificCredentialId))
		}
		if !out.IsTruncated || aws.ToString(out.Marker) == "" || aws.ToString(out.Marker) == aws.ToString(marker) {
			return ids, nil
		}
		marker = out.Marker
	}
	return nil, tooManyPages(opListServiceSpecificCredentials)
}

// collect drains a paginator (next is its NextPage), one CallTimeout per
// page, and gathers what items picks from each page.
func collect[Out any](ctx context.Context, p *Provider, op, user string,
	next func(context.Context, ...func(*iam.Options)) (Out, error), items func(Out) []string) ([]string, error) {
	var all []string
	for range maxPages {
		var out Out
		err := p.iamCall(ctx, op, user, func(ctx context.Context) (err error) {
			out, err = next(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		all = append(all, items(out)...)
		if !truncated(out) {
			return all, nil
		}
	}
	return nil, tooManyPages(op)
}

// truncated reads IsTruncated and Marker from a list output: a page says
// more follow only with both (the SDK's paginators go by Marker alone).
func truncated(out any) bool {
	switch o := out.(type) {
	case *iam.ListAccessKeysOutput:
		return o.IsTruncated && aws.ToString(o.Marker) != ""
	case *iam.ListUserPoliciesOutput:
		return o.IsTruncated && aws.ToString(o.Marker) != ""
	case *iam.ListAttachedUserPoliciesOutput:
		return o.IsTruncated && aws.ToString(o.Marker) != ""
	case *iam.ListGroupsForUserOutput:
		return o.IsTruncated && aws.ToString(o.Marker) != ""
	case *iam.ListMFADevicesOutput:
		return o.IsTruncated && aws.ToString(o.Marker) != ""
	case *iam.ListSigningCertificatesOutput:
		return o.IsTruncated && aws.ToString(o.Marker) != ""
	case *iam.ListSSHPublicKeysOutput:
		return o.IsTruncated && aws.ToString(o.Marker) != ""
	case *iam.ListUserTagsOutput:
		return o.IsTruncated && aws.ToString(o.Marker) != ""
	case *iam.ListUsersOutput:
		return o.IsTruncated && aws.ToString(o.Marker) != ""
	}
	return false
}

func tooManyPages(op string) error {
	return &Error{Code: CodeUnavailable, Message: fmt.Sprintf("AWS IAM kept answering %s with more pages (over %d)", op, maxPages)}
}

// ListUsers returns the users whose path starts with pathPrefix (required,
// e.g. DefaultUserPath: an orphan sweep must never see the whole account),
// with their tags from ListUserTags. Servers that do not implement
// ListUserTags give nil Tags. Users are filtered by path here too, in case
// a server ignores PathPrefix.
func (p *Provider) ListUsers(ctx context.Context, pathPrefix string) ([]UserInfo, error) {
	if pathPrefix == "" || pathPrefix[0] != '/' {
		return nil, &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf("invalid IAM path prefix %q: it must start with /", pathPrefix)}
	}
	var users []UserInfo
	pg := iam.NewListUsersPaginator(p.iam, &iam.ListUsersInput{PathPrefix: aws.String(pathPrefix), MaxItems: aws.Int32(1000)})
	_, err := collect(ctx, p, opListUsers, "", pg.NextPage, func(o *iam.ListUsersOutput) []string {
		for _, u := range o.Users {
			if path := aws.ToString(u.Path); strings.HasPrefix(path, pathPrefix) {
				users = append(users, UserInfo{
					UserName: aws.ToString(u.UserName), Path: path, UserARN: aws.ToString(u.Arn),
					UserID: aws.ToString(u.UserId), Created: aws.ToTime(u.CreateDate),
				})
			}
		}
		return nil
	})
	if err != nil {
		p.logIAMFailure(ctx, opListUsers, "", "", err)
		return nil, err
	}
	out := users[:0]
	tagsSupported := true
	for _, u := range users {
		if !tagsSupported {
			out = append(out, u)
			continue
		}
		tags := map[string]string{}
		_, err := collect(ctx, p, opListUserTags, u.UserName,
			iam.NewListUserTagsPaginator(p.iam, &iam.ListUserTagsInput{UserName: aws.String(u.UserName)}).NextPage,
			func(o *iam.ListUserTagsOutput) []string {
				for _, t := range o.Tags {
					tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
				}
				return nil
			})
		switch {
		case err == nil:
			u.Tags = tags
		case isUpstream(err, codeNoSuchEntity):
			continue // deleted since it was listed
		case unsupported(err):
			tagsSupported = false
		default:
			p.logIAMFailure(ctx, opListUserTags, u.UserName, "", err)
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// DeleteAccessKey deletes one access key of a user (key rotation);
// NoSuchEntity (no such key or user) counts as done.
func (p *Provider) DeleteAccessKey(ctx context.Context, userName, accessKeyID string) error {
	err := p.iamCall(ctx, opDeleteAccessKey, userName, func(ctx context.Context) error {
		_, err := p.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(userName), AccessKeyId: aws.String(accessKeyID)})
		return err
	})
	if err == nil || isUpstream(err, codeNoSuchEntity) {
		return nil
	}
	p.logIAMFailure(ctx, opDeleteAccessKey, userName, "", err)
	return err
}

// iamCall runs one IAM call bounded by CallTimeout. It returns nil, the
// caller's context error (wrapped) when the caller went away, or an *Error;
// it logs nothing: each public method logs its own outcome once.
func (p *Provider) iamCall(ctx context.Context, op, user string, call func(context.Context) error) error {
	callCtx, cancel := context.WithTimeoutCause(ctx, p.cfg.CallTimeout, errCallTimeout)
	defer cancel()
	err := call(callCtx)
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("aws: IAM %s %s: %w", op, user, ctxErr)
	}
	timedOut := errors.Is(context.Cause(callCtx), errCallTimeout)
	return classify(svcIAM, op, user, err, timedOut, p.cfg.CallTimeout, p.cfg.MaxBackoff)
}

func (p *Provider) logIAMFailure(ctx context.Context, op, user, step string, err error) {
	attrs := []slog.Attr{slog.String(logKeyOp, op), slog.String(logKeyUser, user)}
	if step != "" {
		attrs = append(attrs, slog.String(logKeyStep, step))
	}
	var e *Error
	if !errors.As(err, &e) {
		// The caller went away: its own business, not an upstream failure.
		p.log.LogAttrs(ctx, slog.LevelDebug, "iam call abandoned by caller", append(attrs, slog.Any(logKeyErr, err))...)
		return
	}
	attrs = append(attrs,
		slog.String(logKeyCode, e.Code),
		slog.String(logKeyUpstreamCode, e.UpstreamCode),
		slog.String(logKeyRequestID, requestID(e.Err)),
		slog.Any(logKeyErr, e.Err))
	p.log.LogAttrs(ctx, slog.LevelWarn, "iam call failed", attrs...)
}

// isUpstream reports whether err is an *Error with this upstream code.
func isUpstream(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.UpstreamCode == code
}

// apiCode returns the upstream error code of an SDK error, "" if none.
func apiCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() != "UnknownError" {
		return apiErr.ErrorCode()
	}
	return ""
}

// unsupported reports an IAM action the server does not implement
// (AWS-compatible servers implement a subset): InvalidAction and the like,
// or a bare 404/405/501.
func unsupported(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.UpstreamCode {
	case "InvalidAction", "NotImplemented", "UnsupportedOperation", "UnknownOperationException", "UnknownOperation":
		return true
	case "":
		switch httpStatus(e.Err) {
		case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
			return true
		}
	}
	return false
}
