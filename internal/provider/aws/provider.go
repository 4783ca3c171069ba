package aws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go/middleware"
)

// Defaults for Config.
const (
	DefaultCallTimeout = 10 * time.Second
	DefaultMaxAttempts = 4
	DefaultMaxBackoff  = 2 * time.Second

	// minSessionDuration is STS's lower bound for DurationSeconds.
	minSessionDuration = 900 * time.Second
	// maxIdleConnsPerHost replaces the SDK's default of 10 idle connections
	// per host, which makes a broker doing hundreds of concurrent calls to
	// one STS endpoint close and re-dial connections constantly.
	maxIdleConnsPerHost = 256
)

// STS operation names, as they appear in messages and logs.
const (
	opAssumeRole                = "AssumeRole"
	opAssumeRoleWithWebIdentity = "AssumeRoleWithWebIdentity"
	opGetCallerIdentity         = "GetCallerIdentity"
)

// Log attribute keys.
const (
	logKeyOp           = "op"
	logKeyRoleARN      = "role_arn"
	logKeyRegion       = "region"
	logKeyAccessKeyID  = "access_key_id"
	logKeyExpiration   = "expiration"
	logKeyAttempts     = "attempts"
	logKeyTook         = "took"
	logKeyCode         = "code"
	logKeyUpstreamCode = "upstream_code"
	logKeyRequestID    = "request_id"
	logKeyErr          = "err"
)

// Config configures a Provider.
type Config struct {
	// Region is the default region, e.g. "us-east-1". When empty, the SDK
	// default chain's region is used (only when Credentials is nil).
	Region string
	// Endpoint is an optional STS endpoint URL, for any AWS-compatible STS
	// (e.g. http://127.0.0.1:18333). It applies to every region.
	Endpoint string
	// Credentials are the broker's own credentials, used to sign AssumeRole
	// and GetCallerIdentity. nil means the SDK default chain
	// (config.LoadDefaultConfig: environment, shared files, SSO, container,
	// IMDS). A provider given here is wrapped in a credentials cache unless
	// it is one. AssumeRoleWithWebIdentity never uses them.
	Credentials aws.CredentialsProvider
	// HTTPClient is optional; the default is the SDK's client with more idle
	// connections per host.
	HTTPClient *http.Client
	// IAMEndpoint is an optional IAM endpoint URL, for any AWS-compatible
	// IAM (e.g. http://127.0.0.1:18333). Default: AWS's global endpoint.
	IAMEndpoint string
	// DenyPolicyBudget caps the size of the keyferry-revoked-sessions role
	// policy (default DefaultDenyBudget; IAM allows 10,240 characters of
	// inline policy per role in all).
	DenyPolicyBudget int
	// IAMRegion is the region IAM calls are signed for (default us-east-1:
	// IAM is global; aws-cn and aws-us-gov use their own).
	IAMRegion string
	// CallTimeout bounds one STS or IAM call including its retries (default
	// 10s).
	CallTimeout time.Duration
	// MaxAttempts is the number of attempts per call, first included
	// (default 4).
	MaxAttempts int
	// MaxBackoff caps the jittered delay between attempts (default 2s).
	MaxBackoff time.Duration
	// Logger receives debug lines for issued credentials (AccessKeyId only)
	// and warnings for upstream failures; nil means silent.
	Logger *slog.Logger
}

// Provider mints credentials with STS and IAM. It keeps one STS client per
// region, created on first use, and one IAM client, all shared by every
// call; it is safe for concurrent use.
type Provider struct {
	cfg  Config
	base aws.Config
	log  *slog.Logger

	clients sync.Map   // region → *sts.Client
	mu      sync.Mutex // serialises client creation
	created atomic.Int64

	iam *iam.Client // created by New, shared by every IAM call

	denyLocks roleLocks // one deny-policy edit per role at a time
	acctMu    sync.Mutex
	acct      *string // the broker's account, once known
}

// New loads the AWS configuration once and creates the default region's
// STS client and the IAM client.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.CallTimeout < 0 || cfg.MaxAttempts < 0 || cfg.MaxBackoff < 0 {
		return nil, errors.New("aws: CallTimeout, MaxAttempts and MaxBackoff must not be negative")
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base, err := loadConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if base.Region == "" {
		return nil, errors.New("aws: no region: set Config.Region")
	}
	if cfg.IAMRegion == "" {
		cfg.IAMRegion = DefaultIAMRegion
	}
	if !validRegion(cfg.IAMRegion) {
		return nil, fmt.Errorf("aws: invalid IAMRegion %q", cfg.IAMRegion)
	}
	p := &Provider{cfg: cfg, base: base, log: log}
	if _, err := p.client(""); err != nil {
		return nil, err
	}
	p.iam = p.newIAMClient()
	return p, nil
}

func loadConfig(ctx context.Context, cfg Config) (aws.Config, error) {
	var httpClient aws.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = maxIdleConnsPerHost
	})
	if cfg.HTTPClient != nil {
		httpClient = cfg.HTTPClient
	}
	if cfg.Credentials != nil {
		// Explicit credentials: build the configuration without reading the
		// environment or shared files, so what runs is what was configured.
		if cfg.Region == "" {
			return aws.Config{}, errors.New("aws: no region: set Config.Region")
		}
		return aws.Config{Region: cfg.Region, Credentials: cached(cfg.Credentials), HTTPClient: httpClient}, nil
	}
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.HTTPClient == nil {
		// A *awshttp.BuildableClient lets the loader apply AWS_CA_BUNDLE.
		opts = append(opts, config.WithHTTPClient(httpClient))
	}
	base, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("aws: load default config: %w", err)
	}
	if cfg.HTTPClient != nil {
		base.HTTPClient = cfg.HTTPClient
	}
	return base, nil
}

func cached(p aws.CredentialsProvider) aws.CredentialsProvider {
	switch p.(type) {
	case *aws.CredentialsCache, aws.AnonymousCredentials, *aws.AnonymousCredentials:
		return p
	}
	return aws.NewCredentialsCache(p)
}

// client returns the STS client for region ("" = the default region),
// creating it on first use.
func (p *Provider) client(region string) (*sts.Client, error) {
	if region == "" {
		region = p.base.Region
	}
	if c, ok := p.clients.Load(region); ok {
		return c.(*sts.Client), nil
	}
	if !validRegion(region) {
		return nil, &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf("invalid AWS region %q", region)}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients.Load(region); ok {
		return c.(*sts.Client), nil
	}
	c := sts.NewFromConfig(p.base, func(o *sts.Options) {
		o.Region = region
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = p.cfg.MaxAttempts
			so.MaxBackoff = p.cfg.MaxBackoff
		})
		o.RetryMaxAttempts = 0 // ignore AWS_MAX_ATTEMPTS: Config decides
		if p.cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(p.cfg.Endpoint)
		}
	})
	p.clients.Store(region, c)
	p.created.Add(1)
	return c, nil
}

// validRegion accepts region names (lower-case letters, digits, dashes),
// which also bounds the number of clients to the regions roles name.
func validRegion(r string) bool {
	if r == "" || len(r) > 32 {
		return false
	}
	for i := 0; i < len(r); i++ {
		c := r[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// AssumeRole calls STS AssumeRole with the broker's credentials.
func (p *Provider) AssumeRole(ctx context.Context, req Request) (*Credentials, error) {
	in := &sts.AssumeRoleInput{
		RoleArn:           nonEmpty(req.RoleARN),
		RoleSessionName:   nonEmpty(req.SessionName),
		Policy:            nonEmpty(req.Policy),
		PolicyArns:        policyARNs(req.PolicyARNs),
		Tags:              tags(req.Tags),
		TransitiveTagKeys: nonEmptySlice(req.TransitiveTagKeys),
		SourceIdentity:    nonEmpty(req.SourceIdentity),
		ExternalId:        nonEmpty(req.ExternalID),
		DurationSeconds:   durationSeconds(req.Duration),
	}
	return p.mint(ctx, opAssumeRole, req, func(ctx context.Context, c *sts.Client) (stsResult, error) {
		out, err := c.AssumeRole(ctx, in)
		if err != nil {
			return stsResult{}, err
		}
		return stsResult{out.Credentials, out.AssumedRoleUser, out.ResultMetadata}, nil
	})
}

// AssumeRoleWithWebIdentity calls STS AssumeRoleWithWebIdentity with
// req.WebIdentityToken. The call is unsigned (the SDK marks the operation
// noAuth), so it works without any broker credentials. Tags,
// TransitiveTagKeys, SourceIdentity and ExternalID do not exist for this
// call and are ignored: session tags and source identity come from the
// token's claims.
func (p *Provider) AssumeRoleWithWebIdentity(ctx context.Context, req Request) (*Credentials, error) {
	in := &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          nonEmpty(req.RoleARN),
		RoleSessionName:  nonEmpty(req.SessionName),
		WebIdentityToken: nonEmpty(req.WebIdentityToken),
		Policy:           nonEmpty(req.Policy),
		PolicyArns:       policyARNs(req.PolicyARNs),
		DurationSeconds:  durationSeconds(req.Duration),
	}
	return p.mint(ctx, opAssumeRoleWithWebIdentity, req, func(ctx context.Context, c *sts.Client) (stsResult, error) {
		out, err := c.AssumeRoleWithWebIdentity(ctx, in)
		if err != nil {
			return stsResult{}, err
		}
		return stsResult{out.Credentials, out.AssumedRoleUser, out.ResultMetadata}, nil
	})
}

// CallerIdentity returns the ARN of the broker's own credentials
// (GetCallerIdentity in the default region), for readiness checks and the
// startup log.
func (p *Provider) CallerIdentity(ctx context.Context) (string, error) {
	c, err := p.client("")
	if err != nil {
		return "", err
	}
	callCtx, cancel := context.WithTimeoutCause(ctx, p.cfg.CallTimeout, errCallTimeout)
	defer cancel()
	out, err := c.GetCallerIdentity(callCtx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", p.fail(ctx, callCtx, opGetCallerIdentity, "", p.base.Region, err)
	}
	return aws.ToString(out.Arn), nil
}

type stsResult struct {
	creds *types.Credentials
	user  *types.AssumedRoleUser
	md    middleware.Metadata
}

// errCallTimeout is the cause of a call context that hit CallTimeout, to
// tell it from a parent context that ended.
var errCallTimeout = errors.New("aws: sts call timeout")

func (p *Provider) mint(ctx context.Context, op string, req Request, call func(context.Context, *sts.Client) (stsResult, error)) (*Credentials, error) {
	region := req.Region
	if region == "" {
		region = p.base.Region
	}
	c, err := p.client(region)
	if err != nil {
		return nil, err
	}
	callCtx, cancel := context.WithTimeoutCause(ctx, p.cfg.CallTimeout, errCallTimeout)
	defer cancel()
	start := time.Now()
	res, err := call(callCtx, c)
	if err != nil {
		return nil, p.fail(ctx, callCtx, op, req.RoleARN, region, err)
	}
	creds, err := convert(res.creds, res.user)
	if err != nil {
		e := &Error{Code: CodeUnavailable, Message: fmt.Sprintf("AWS STS answered %s on %s without credentials", op, req.RoleARN), Err: err}
		p.logFailure(ctx, op, req.RoleARN, region, e, "")
		return nil, e
	}
	if p.log.Enabled(ctx, slog.LevelDebug) {
		attempts := 0
		if r, ok := retry.GetAttemptResults(res.md); ok {
			attempts = len(r.Results)
		}
		p.log.LogAttrs(ctx, slog.LevelDebug, "sts credentials issued",
			slog.String(logKeyOp, op),
			slog.String(logKeyRoleARN, req.RoleARN),
			slog.String(logKeyRegion, region),
			slog.String(logKeyAccessKeyID, creds.AccessKeyID),
			slog.Time(logKeyExpiration, creds.Expiration),
			slog.Int(logKeyAttempts, attempts),
			slog.Duration(logKeyTook, time.Since(start)))
	}
	return creds, nil
}

// fail turns an SDK error into what the caller gets: the parent context's
// error, wrapped, when the caller went away; otherwise an *Error.
func (p *Provider) fail(ctx, callCtx context.Context, op, role, region string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		p.log.LogAttrs(ctx, slog.LevelDebug, "sts call abandoned by caller",
			slog.String(logKeyOp, op), slog.String(logKeyRoleARN, role), slog.String(logKeyRegion, region))
		return fmt.Errorf("aws: %s %s: %w", op, role, ctxErr)
	}
	timedOut := errors.Is(context.Cause(callCtx), errCallTimeout)
	e := classify(svcSTS, op, role, err, timedOut, p.cfg.CallTimeout, p.cfg.MaxBackoff)
	p.logFailure(ctx, op, role, region, e, requestID(err))
	return e
}

func (p *Provider) logFailure(ctx context.Context, op, role, region string, e *Error, reqID string) {
	p.log.LogAttrs(ctx, slog.LevelWarn, "sts call failed",
		slog.String(logKeyOp, op),
		slog.String(logKeyRoleARN, role),
		slog.String(logKeyRegion, region),
		slog.String(logKeyCode, e.Code),
		slog.String(logKeyUpstreamCode, e.UpstreamCode),
		slog.String(logKeyRequestID, reqID),
		slog.Any(logKeyErr, e.Err))
}

// convert checks and copies STS's answer.
func convert(c *types.Credentials, u *types.AssumedRoleUser) (*Credentials, error) {
	if c == nil || aws.ToString(c.AccessKeyId) == "" || aws.ToString(c.SecretAccessKey) == "" {
		return nil, errors.New("aws: sts response has no credentials")
	}
	out := &Credentials{
		AccessKeyID:     aws.ToString(c.AccessKeyId),
		SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken:    aws.ToString(c.SessionToken),
		Expiration:      aws.ToTime(c.Expiration),
	}
	if u != nil {
		out.AssumedRoleARN = aws.ToString(u.Arn)
		out.AssumedRoleID = aws.ToString(u.AssumedRoleId)
		out.AccountID = accountFromARN(out.AssumedRoleARN)
	}
	return out, nil
}

// accountFromARN returns the 12-digit account of an ARN
// (arn:partition:service:region:account:resource), or "" when the ARN has
// none, as some AWS-compatible servers answer
// (arn:aws:sts::assumed-role/role/session).
func accountFromARN(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return ""
	}
	a := parts[4]
	if len(a) != 12 {
		return ""
	}
	for i := 0; i < len(a); i++ {
		if a[i] < '0' || a[i] > '9' {
			return ""
		}
	}
	return a
}

// durationSeconds rounds d down to whole seconds, at least STS's 900; zero
// leaves the parameter out (STS then uses the role's default of one hour).
func durationSeconds(d time.Duration) *int32 {
	if d <= 0 {
		return nil
	}
	if d < minSessionDuration {
		d = minSessionDuration
	}
	s := int64(d / time.Second)
	if s > 1<<31-1 {
		s = 1<<31 - 1 // STS rejects it with ValidationError
	}
	return aws.Int32(int32(s))
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

func nonEmptySlice(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func policyARNs(arns []string) []types.PolicyDescriptorType {
	return mapSlice(arns, func(a string) types.PolicyDescriptorType { return types.PolicyDescriptorType{Arn: aws.String(a)} })
}

// mapSlice applies f to every element of in; it is nil for an empty in,
// so that an SDK input leaves the list out.
func mapSlice[In, Out any](in []In, f func(In) Out) []Out {
	if len(in) == 0 {
		return nil
	}
	out := make([]Out, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

func tags(ts []Tag) []types.Tag {
	return mapSlice(ts, func(t Tag) types.Tag { return types.Tag{Key: aws.String(t.Key), Value: aws.String(t.Value)} })
}
