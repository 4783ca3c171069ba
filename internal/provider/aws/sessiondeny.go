package aws

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// roleLocks serialises the read-modify-write of one role's deny policy
// inside this process. (Several brokers sharing roles need a lock in the
// shared store around DenySession; see docs/leases.md.)
type roleLocks struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func (r *roleLocks) lock(role string) func() {
	r.mu.Lock()
	if r.locks == nil {
		r.locks = map[string]*sync.Mutex{}
	}
	l := r.locks[role]
	if l == nil {
		l = &sync.Mutex{}
		r.locks[role] = l
	}
	r.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// roleNameFromARN returns NAME of arn:aws:iam::123456789012:role/path/NAME.
func roleNameFromARN(arn string) (string, error) {
	_, rest, ok := strings.Cut(arn, ":role/")
	if !ok || rest == "" || !strings.HasPrefix(arn, "arn:aws") {
		return "", fmt.Errorf("aws: %q is not a role ARN", arn)
	}
	return rest[strings.LastIndexByte(rest, '/')+1:], nil
}

// DenySession adds userID (an assumed-role session's aws:userid, issued
// at issuedAt) to the role's keyferry-revoked-sessions inline policy until
// the session ends, pruning what has expired and staying within the size
// budget (see denylist.go). The broker needs iam:GetRolePolicy,
// iam:PutRolePolicy and iam:DeleteRolePolicy on the role.
func (p *Provider) DenySession(ctx context.Context, roleARN, userID string, issuedAt, until time.Time) error {
	return p.editDenyPolicy(ctx, roleARN, func(d *DenyDoc) {
		d.Add(DeniedSession{UserID: userID, IssuedAt: issuedAt, Until: until})
	})
}

// PruneDeniedSessions drops expired entries from the role's deny policy
// and deletes the policy when nothing is left. It reports whether the
// policy is gone.
func (p *Provider) PruneDeniedSessions(ctx context.Context, roleARN string) (bool, error) {
	empty := false
	err := p.editDenyPolicy(ctx, roleARN, func(d *DenyDoc) { empty = d.Empty() })
	return empty, err
}

func (p *Provider) editDenyPolicy(ctx context.Context, roleARN string, change func(*DenyDoc)) error {
	role, err := roleNameFromARN(roleARN)
	if err != nil {
		return &Error{Code: CodeInvalidRequest, Message: err.Error()}
	}
	// IAM calls name the role, not its account: make sure the broker's
	// credentials act on the account of roleARN, not on a same-named role
	// of its own.
	if acct := accountOfARN(roleARN); acct != "" {
		mine, err := p.brokerAccount(ctx)
		if err != nil {
			return err
		}
		if mine != "" && mine != acct {
			return &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf("early revocation edits the role with the broker's own credentials, which belong to account %s, not %s: run a broker in that account or turn early_revocation off", mine, acct)}
		}
	}
	defer p.denyLocks.lock(role)()

	var current string
	err = p.iamCall(ctx, "GetRolePolicy", role, func(ctx context.Context) error {
		out, err := p.iam.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(DenyPolicyName)})
		if err != nil {
			return err
		}
		// IAM returns the document URL-encoded.
		doc, derr := url.QueryUnescape(aws.ToString(out.PolicyDocument))
		if derr != nil {
			doc = aws.ToString(out.PolicyDocument)
		}
		current = doc
		return nil
	})
	if err != nil && !isUpstream(err, codeNoSuchEntity) {
		return err
	}
	d, err := ParseDenyPolicy(current)
	if err != nil {
		return &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf("the role's %s policy was changed by hand: %v", DenyPolicyName, err), Err: err}
	}
	change(&d)
	d.Prune(time.Now())
	if d.Empty() {
		if current == "" {
			return nil
		}
		err := p.iamCall(ctx, "DeleteRolePolicy", role, func(ctx context.Context) error {
			_, err := p.iam.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(DenyPolicyName)})
			return err
		})
		if err != nil && !isUpstream(err, codeNoSuchEntity) {
			return err
		}
		return nil
	}
	doc, err := d.Render(p.denyBudget())
	if err != nil {
		return &Error{Code: CodeInvalidRequest, Message: err.Error(), Err: err}
	}
	if doc == current {
		return nil
	}
	return p.iamCall(ctx, "PutRolePolicy", role, func(ctx context.Context) error {
		_, err := p.iam.PutRolePolicy(ctx, putRolePolicyInput(role, DenyPolicyName, doc))
		return err
	})
}

func (p *Provider) denyBudget() int {
	if p.cfg.DenyPolicyBudget > 0 {
		return p.cfg.DenyPolicyBudget
	}
	return DefaultDenyBudget
}

func putRolePolicyInput(role, name, doc string) *iam.PutRolePolicyInput {
	return &iam.PutRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(name), PolicyDocument: aws.String(doc)}
}

// brokerAccount returns (and remembers) the account of the broker's own
// credentials, "" when the server does not report one.
func (p *Provider) brokerAccount(ctx context.Context) (string, error) {
	p.acctMu.Lock()
	defer p.acctMu.Unlock()
	if p.acct != nil {
		return *p.acct, nil
	}
	arn, err := p.CallerIdentity(ctx)
	if err != nil {
		return "", err
	}
	a := accountOfARN(arn)
	p.acct = &a
	return a, nil
}

// accountOfARN returns the 12-digit account of an IAM or STS ARN, or "".
func accountOfARN(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 || len(parts[4]) != 12 {
		return ""
	}
	for _, c := range parts[4] {
		if c < '0' || c > '9' {
			return ""
		}
	}
	return parts[4]
}
