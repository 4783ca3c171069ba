//go:build e2e

// Smoke tests of the e2e harness (package peers): they prove that the real
// peers and clients work together before any keyferry code is involved, and
// they pin the quirks of SeaweedFS 4.53 that keyferry's e2e tests must
// tolerate. Run with: go test -tags e2e ./test/e2e/ -run Peers

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyferry/keyferry/internal/testutil"
	"github.com/keyferry/keyferry/test/e2e/peers"
)

// Names used by the smoke peers.
const (
	smokeCIRole       = "ci-role"        // AssumeRole by any identity; may put into ci-bucket
	smokeGHRole       = "gh-role"        // web identity from the IdP with aud=ci-broker
	smokeOtherAudRole = "other-aud-role" // web identity, but the trust policy wants aud=someone-else
	smokeAnyAudRole   = "any-aud-role"   // web identity, no audience condition in the trust policy
	smokeCIBucket     = "ci-bucket"
	smokeOtherBucket  = "other-bucket"
	smokeClientID     = "ci-broker"
	smokeProvider     = "local-oidc"
)

// smokeStack is one IdP and one SeaweedFS trusting it, shared by the smoke
// tests of this binary (SeaweedFS takes ~4 s to start).
var smokeStack = peers.SharedStack(func(idp *peers.IdP) peers.SeaweedConfig {
	cfg := putCIStack(idp.SeaweedProvider(smokeProvider, smokeClientID), smokeCIRole, smokeCIBucket, smokeOtherBucket)
	cfg.Roles = append(cfg.Roles,
		putCIRole(peers.SeaweedRole{Name: smokeGHRole, TrustWebIdentity: true, Audience: smokeClientID}),
		putCIRole(peers.SeaweedRole{Name: smokeOtherAudRole, TrustWebIdentity: true, Audience: "someone-else"}),
		putCIRole(peers.SeaweedRole{Name: smokeAnyAudRole, TrustWebIdentity: true}))
	return cfg
})

func getSmokePeers(t *testing.T) stackPeers { t.Helper(); return getStack(t, smokeStack) }

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// uniqueKey makes object keys unique across the tests sharing a bucket.
func uniqueKey(t *testing.T, client string) string {
	return strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "/" + client + "-" + time.Now().Format("150405.000000")
}

func TestPeersAssumeRoleARNForms(t *testing.T) {
	p := getSmokePeers(t)
	ctx := testContext(t)
	stsc := p.sw.STSClient(p.sw.AdminCredentials())

	// The admin identity itself. Quirk: SeaweedFS reports the static
	// identity's name as the UserId.
	id, err := stsc.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("admin GetCallerIdentity: %v", err)
	}
	if got, want := aws.ToString(id.Arn), "arn:aws:iam::000000000000:user/admin"; got != want {
		t.Errorf("admin caller ARN: got %q, want %q", got, want)
	}

	for _, tc := range []struct {
		name, arn string
	}{
		// The AWS form, with a 12-digit account: what keyferry sends.
		{"account form", peers.RoleARN(smokeCIRole)},
		// Quirk: the account-less form is accepted too.
		{"accountless form", "arn:aws:iam::role/" + smokeCIRole},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := stsc.AssumeRole(ctx, &sts.AssumeRoleInput{
				RoleArn:         aws.String(tc.arn),
				RoleSessionName: aws.String("smoke-1"),
				DurationSeconds: aws.Int32(3600),
			})
			if err != nil {
				t.Fatalf("AssumeRole(%s): %v", tc.arn, err)
			}
			c := out.Credentials
			// Quirk: STS access key ids are "ASIA" + 16 lower-case hex
			// digits (AWS: 16 upper-case alphanumerics); secrets are 44
			// characters of base64 (AWS: 40).
			if !regexp.MustCompile(`^ASIA[0-9a-f]{16}$`).MatchString(aws.ToString(c.AccessKeyId)) {
				t.Errorf("access key id: got %q, want ASIA + 16 lower-case hex digits", aws.ToString(c.AccessKeyId))
			}
			if got := len(aws.ToString(c.SecretAccessKey)); got != 44 {
				t.Errorf("secret length: got %d, want 44", got)
			}
			if aws.ToString(c.SessionToken) == "" {
				t.Error("no session token")
			}
			if left := time.Until(aws.ToTime(c.Expiration)); left < 55*time.Minute || left > 65*time.Minute {
				t.Errorf("expiration: got %s from now, want about 1h", left)
			}
			if got, want := aws.ToString(out.AssumedRoleUser.Arn), "arn:aws:sts::000000000000:assumed-role/ci-role/smoke-1"; got != want {
				t.Errorf("assumed role ARN: got %q, want %q", got, want)
			}
			t.Logf("AssumedRoleId %q", aws.ToString(out.AssumedRoleUser.AssumedRoleId))
		})
	}

	t.Run("unknown role", func(t *testing.T) {
		_, err := stsc.AssumeRole(ctx, &sts.AssumeRoleInput{
			RoleArn:         aws.String(peers.RoleARN("no-such-role")),
			RoleSessionName: aws.String("smoke-1"),
		})
		if err == nil {
			t.Fatal("AssumeRole of an unknown role succeeded")
		}
		t.Logf("unknown role: %v", err)
	})
}

// smokeClient drives one real client.
type smokeClient struct {
	name     string
	put      func(t *testing.T, env []string, endpoint, bucket, key string) peers.Result
	identity func(t *testing.T, env []string, endpoint string) peers.Result
}

func awsCLIClient(name string, run func(testing.TB, []string, ...string) peers.Result) smokeClient {
	return smokeClient{
		name: name,
		put: func(t *testing.T, env []string, endpoint, bucket, key string) peers.Result {
			file := filepath.Join(t.TempDir(), "body.txt")
			if err := os.WriteFile(file, []byte("hello from "+name), 0o600); err != nil {
				t.Fatal(err)
			}
			return run(t, env, append([]string{"s3", "cp", file, "s3://" + bucket + "/" + key}, endpointArg(endpoint)...)...)
		},
		identity: func(t *testing.T, env []string, endpoint string) peers.Result {
			return run(t, env, append([]string{"sts", "get-caller-identity", "--output", "json"}, endpointArg(endpoint)...)...)
		},
	}
}

// endpointArg is aws-cli's --endpoint-url, or nothing to leave the
// endpoint to the environment. With --endpoint-url, aws-cli also sends the
// credential provider's own STS calls there.
func endpointArg(endpoint string) []string {
	if endpoint == "" {
		return nil
	}
	return []string{"--endpoint-url", endpoint}
}

var smokeClients = []smokeClient{
	awsCLIClient("aws-cli-v2", peers.AWSCLIv2),
	awsCLIClient("aws-cli-v1", peers.AWSCLIv1),
	{
		name: "boto3",
		put: func(t *testing.T, env []string, endpoint, bucket, key string) peers.Result {
			return peers.Boto3PutObject(t, env, endpoint, bucket, key, "hello from boto3")
		},
		identity: func(t *testing.T, env []string, endpoint string) peers.Result {
			return peers.Boto3CallerIdentity(t, env, endpoint)
		},
	},
	{
		name: "go-sdk",
		put: func(t *testing.T, env []string, endpoint, bucket, key string) peers.Result {
			return peers.GoSDKPutObject(t, env, endpoint, bucket, key, "hello from go-sdk")
		},
		identity: func(t *testing.T, env []string, endpoint string) peers.Result {
			return peers.GoSDKCallerIdentity(t, env, endpoint)
		},
	},
}

// callerARN digs the caller ARN out of a client's get-caller-identity JSON
// (aws-cli and boto3: "Arn"; gosdkclient: callerIdentity.arn).
func callerARN(t *testing.T, stdout string) string {
	t.Helper()
	var out struct {
		Arn            string
		CallerIdentity struct{ Arn string }
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("caller identity output is not JSON: %v", err)
	}
	if out.Arn != "" {
		return out.Arn
	}
	return out.CallerIdentity.Arn
}

// TestPeersClientsWithRoleCredentials: temporary credentials from
// AssumeRole, handed to each real client in the environment, are honoured
// by S3 exactly as the role's policy says.
func TestPeersClientsWithRoleCredentials(t *testing.T) {
	p := getSmokePeers(t)
	env := peers.CredsEnv(p.assumeRole(t, smokeCIRole, "smoke-clients"), p.sw.Region)

	for _, c := range smokeClients {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if res := c.identity(t, env, p.sw.Endpoint); !res.OK() {
				t.Errorf("get-caller-identity: %s", res)
			} else if got, want := callerARN(t, res.Stdout), "arn:aws:sts::000000000000:assumed-role/ci-role/smoke-clients"; got != want {
				t.Errorf("caller ARN: got %q, want %q", got, want)
			}
			if res := c.put(t, env, p.sw.Endpoint, smokeCIBucket, uniqueKey(t, c.name)); !res.OK() {
				t.Errorf("put into %s (allowed by the role's policy): %s", smokeCIBucket, res)
			}
			res := c.put(t, env, p.sw.Endpoint, smokeOtherBucket, uniqueKey(t, c.name))
			if res.OK() || !peers.IsAccessDenied(res.Stderr) {
				t.Errorf("put into %s (outside the role's policy): got %s, want AccessDenied", smokeOtherBucket, res)
			}
			t.Logf("denied put: %s", strings.TrimSpace(res.Stderr))
		})
	}
}

// TestPeersClientsWithBadCredentials: SeaweedFS checks SigV4 for real.
func TestPeersClientsWithBadCredentials(t *testing.T) {
	p := getSmokePeers(t)
	creds := p.assumeRole(t, smokeCIRole, "smoke-bad")
	wrongSecret := creds
	wrongSecret.SecretAccessKey = strings.ToUpper(creds.SecretAccessKey[:4]) + creds.SecretAccessKey[4:] + "x"
	unknownKey := aws.Credentials{AccessKeyID: "AKIA0000000000UNKNWN", SecretAccessKey: "0123456789abcdef0123456789abcdef01234567"}

	for _, c := range smokeClients {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			res := c.put(t, peers.CredsEnv(wrongSecret, p.sw.Region), p.sw.Endpoint, smokeCIBucket, uniqueKey(t, c.name))
			if res.OK() || !peers.IsSignatureMismatch(res.Stderr) {
				t.Errorf("put with a wrong secret: got %s, want SignatureDoesNotMatch", res)
			}
			res = c.put(t, peers.CredsEnv(unknownKey, p.sw.Region), p.sw.Endpoint, smokeCIBucket, uniqueKey(t, c.name))
			if res.OK() || !peers.IsInvalidAccessKey(res.Stderr) {
				t.Errorf("put with an unknown key: got %s, want InvalidAccessKeyId", res)
			}
		})
	}
}

// TestPeersWebIdentity: SeaweedFS's AssumeRoleWithWebIdentity verifies a
// token from the TLS test IdP (signature via the HTTPS JWKS, iss, aud, exp,
// nbf) and the role's trust policy, including its audience condition.
func TestPeersWebIdentity(t *testing.T) {
	p := getSmokePeers(t)
	ctx := testContext(t)
	const sub = "repo:keyferry/keyferry:ref:refs/heads/main"
	claims := func(edit func(c map[string]any)) map[string]any {
		c := p.idp.Claims(sub, smokeClientID)
		if edit != nil {
			edit(c)
		}
		return c
	}
	good := p.idp.Sign(claims(nil))

	out, err := p.sw.STSClient(aws.AnonymousCredentials{}).AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(peers.RoleARN(smokeGHRole)),
		RoleSessionName:  aws.String("gh-1"),
		WebIdentityToken: aws.String(good),
	})
	if err != nil {
		t.Fatalf("AssumeRoleWithWebIdentity with a good token: %v", err)
	}
	// Quirk: the response carries Credentials and SubjectFromWebIdentityToken
	// only: no AssumedRoleUser, Audience or Provider (AWS sends all three).
	// botocore logs "Unable to extract account ID from Arn: None".
	if out.AssumedRoleUser != nil {
		t.Errorf("AssumedRoleUser: got %+v, want none (SeaweedFS 4.53 omits it)", *out.AssumedRoleUser)
	}
	if got := aws.ToString(out.SubjectFromWebIdentityToken); got != sub {
		t.Errorf("SubjectFromWebIdentityToken: got %q, want %q", got, sub)
	}
	env := peers.CredsEnv(aws.Credentials{
		AccessKeyID:     aws.ToString(out.Credentials.AccessKeyId),
		SecretAccessKey: aws.ToString(out.Credentials.SecretAccessKey),
		SessionToken:    aws.ToString(out.Credentials.SessionToken),
	}, p.sw.Region)
	if res := peers.AWSCLIv2(t, env, "sts", "get-caller-identity", "--output", "json", "--endpoint-url", p.sw.Endpoint); !res.OK() {
		t.Errorf("get-caller-identity with web-identity credentials: %s", res)
	} else if got, want := callerARN(t, res.Stdout), "arn:aws:sts::assumed-role/gh-role/gh-1"; got != want {
		// Quirk: after web identity the caller ARN has NO account
		// (after AssumeRole it has 000000000000).
		t.Errorf("web identity caller ARN: got %q, want %q", got, want)
	}
	if res := peers.GoSDKPutObject(t, env, p.sw.Endpoint, smokeCIBucket, uniqueKey(t, "go-sdk"), "x"); !res.OK() {
		t.Errorf("put with web-identity credentials: %s", res)
	}
	if res := peers.GoSDKPutObject(t, env, p.sw.Endpoint, smokeOtherBucket, uniqueKey(t, "go-sdk"), "x"); !peers.IsAccessDenied(res.Stderr) {
		t.Errorf("put outside the role's policy with web-identity credentials: got %s, want AccessDenied", res)
	}

	// Quirks: the error codes differ from AWS (which answers
	// InvalidIdentityToken for a bad signature, audience or issuer), and
	// SeaweedFS evaluates the trust policy on the still unverified claims
	// BEFORE it verifies the token, so a token that fails both gets the
	// trust policy's AccessDenied. Assert "refused", and the code only
	// where it is stable.
	for _, tc := range []struct {
		name     string
		role     string
		token    string
		wantCode string
		wantMsg  string
	}{
		{"trust policy wants another audience", smokeOtherAudRole, good,
			"AccessDenied", "trust policy denies web identity assumption"},
		{"role trusts only AssumeRole", smokeCIRole, good,
			"AccessDenied", "trust policy denies web identity assumption"},
		{"audience is not the provider's client id", smokeAnyAudRole, p.idp.Sign(claims(func(c map[string]any) { c["aud"] = "sts.amazonaws.com" })),
			"InvalidParameterValue", "token audience matches none of the configured client IDs"},
		{"audience mismatch caught by the trust policy first", smokeGHRole, p.idp.Sign(claims(func(c map[string]any) { c["aud"] = "sts.amazonaws.com" })),
			"AccessDenied", "trust policy denies web identity assumption"},
		{"no audience", smokeAnyAudRole, p.idp.Sign(claims(func(c map[string]any) { delete(c, "aud") })),
			"InvalidParameterValue", "token audience matches none of the configured client IDs"},
		// Quirk: oidc:aud is only set from a string "aud", so a trust policy
		// with an audience condition refuses an array audience, even
		// ["ci-broker"]; without a condition an array containing the client
		// id is accepted (see below).
		{"audience as an array, trust policy with audience condition", smokeGHRole, p.idp.Sign(claims(func(c map[string]any) { c["aud"] = []string{smokeClientID} })),
			"AccessDenied", "trust policy denies web identity assumption"},
		{"expired", smokeAnyAudRole, p.idp.Sign(claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() })),
			"ExpiredTokenException", "token has expired"},
		{"no exp", smokeAnyAudRole, p.idp.Sign(claims(func(c map[string]any) { delete(c, "exp") })),
			"InvalidParameterValue", "exp claim is required"},
		{"not yet valid", smokeAnyAudRole, p.idp.Sign(claims(func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() })),
			"InvalidParameterValue", "token is not valid yet"},
		// The trust policy's Federated principal is matched against the
		// provider whose issuer equals the token's iss, so an unknown issuer
		// fails there first. (A role whose trust names the foreign issuer
		// itself gets "AccessDenied: failed to validate web identity token:
		// no identity provider registered for issuer: …".)
		{"issuer of no registered provider", smokeAnyAudRole, p.idp.Sign(claims(func(c map[string]any) { c["iss"] = "https://token.actions.githubusercontent.com" })),
			"AccessDenied", "trust policy denies web identity assumption"},
		{"signed by a key the JWKS does not publish", smokeAnyAudRole, p.idp.SignWithUnknownKey(claims(nil)),
			"InvalidParameterValue", "token signature is invalid"},
		// SeaweedFS's trust evaluation treats a non-JWT as a "mock token"
		// from provider "test-oidc"; no real role trusts that, and the token
		// check would refuse it anyway ("web identity token must be a valid
		// JWT token").
		{"not a JWT", smokeAnyAudRole, "valid-oidc-token",
			"AccessDenied", "trust policy denies web identity assumption"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.sw.AssumeRoleWithWebIdentity(ctx, tc.role, "gh-1", tc.token)
			if err == nil {
				t.Fatal("AssumeRoleWithWebIdentity succeeded, want an error")
			}
			if got := testutil.APIErrorCode(err); got != tc.wantCode || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("got %q (%v), want %s containing %q", got, err, tc.wantCode, tc.wantMsg)
			}
		})
	}

	t.Run("array audience containing the client id, no audience condition", func(t *testing.T) {
		tok := p.idp.Sign(claims(func(c map[string]any) { c["aud"] = []string{"other", smokeClientID} }))
		if _, err := p.sw.AssumeRoleWithWebIdentity(ctx, smokeAnyAudRole, "gh-1", tok); err != nil {
			t.Errorf("got %v, want success", err)
		}
	})
}

// TestPeersWebIdentityCredentialChains: the SDKs' own web-identity
// providers (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, STS reached through
// AWS_ENDPOINT_URL_STS) work against SeaweedFS. aws-cli v2 2.9.19 is left
// out: it ignores AWS_ENDPOINT_URL_* and would call the real AWS STS.
func TestPeersWebIdentityCredentialChains(t *testing.T) {
	p := getSmokePeers(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	// No trailing newline: the SDKs send the file byte for byte.
	if err := os.WriteFile(tokenFile, []byte(p.idp.Sign(p.idp.Claims("chain", smokeClientID))), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"AWS_ROLE_ARN=" + peers.RoleARN(smokeGHRole),
		"AWS_WEB_IDENTITY_TOKEN_FILE=" + tokenFile,
		"AWS_ROLE_SESSION_NAME=chain-1",
		"AWS_ENDPOINT_URL_STS=" + p.sw.Endpoint,
		"AWS_ENDPOINT_URL_S3=" + p.sw.Endpoint,
		"AWS_REGION=" + p.sw.Region,
		"AWS_DEFAULT_REGION=" + p.sw.Region,
	}
	for _, c := range smokeClients {
		if c.name == "aws-cli-v2" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			res := c.identity(t, env, "")
			if !res.OK() {
				t.Fatalf("get-caller-identity through the web-identity chain: %s", res)
			}
			if got, want := callerARN(t, res.Stdout), "arn:aws:sts::assumed-role/gh-role/chain-1"; got != want {
				t.Errorf("caller ARN: got %q, want %q", got, want)
			}
			if c.name == "go-sdk" {
				var out struct{ Credentials struct{ Source string } }
				json.Unmarshal([]byte(res.Stdout), &out)
				if got, want := out.Credentials.Source, "WebIdentityCredentials"; got != want {
					t.Errorf("credential source: got %q, want %q", got, want)
				}
			}
			if res := c.put(t, env, "", smokeCIBucket, uniqueKey(t, c.name)); !res.OK() {
				t.Errorf("put through the web-identity chain: %s", res)
			}
		})
	}
}

// TestPeersIAMUserKeys pins the IAM-user path keyferry drives: a user with
// an inline policy and an access key works in S3 at once, and a deleted key
// stops working on the very next request.
func TestPeersIAMUserKeys(t *testing.T) {
	p := getSmokePeers(t)
	ctx := testContext(t)
	iamc := p.sw.IAMClient(p.sw.AdminCredentials())
	user := "kf-smoke-" + time.Now().Format("150405")
	id, env := newPutCIUser(ctx, t, iamc, user, p.sw.Region)

	if res := peers.AWSCLIv2(t, env, "s3", "cp", "-", "s3://ci-bucket/"+uniqueKey(t, "iam"), "--endpoint-url", p.sw.Endpoint); !res.OK() {
		t.Errorf("put with a fresh IAM key: %s", res)
	}
	if res := peers.GoSDKPutObject(t, env, p.sw.Endpoint, smokeOtherBucket, uniqueKey(t, "iam"), "x"); !peers.IsAccessDenied(res.Stderr) {
		t.Errorf("put outside the user's policy: got %s, want AccessDenied", res)
	}

	// Quirk: DeleteUser refuses while access keys exist, like AWS.
	if _, err := iamc.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String(user)}); err == nil {
		t.Errorf("DeleteUser with an access key left: succeeded, want an error")
	} else {
		t.Logf("DeleteUser with a key left: %s: %v", testutil.APIErrorCode(err), err)
	}
	if _, err := iamc.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(user), AccessKeyId: aws.String(id)}); err != nil {
		t.Fatalf("DeleteAccessKey: %v", err)
	}
	if res := peers.GoSDKPutObject(t, env, p.sw.Endpoint, smokeCIBucket, uniqueKey(t, "iam"), "x"); !peers.IsInvalidAccessKey(res.Stderr) {
		t.Errorf("put right after DeleteAccessKey: got %s, want InvalidAccessKeyId", res)
	}
	// Quirk: DeleteUser succeeds with an inline policy still attached (AWS
	// answers DeleteConflict): keyferry must not rely on the peer to catch
	// a missed DeleteUserPolicy.
	if _, err := iamc.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String(user)}); err != nil {
		t.Errorf("DeleteUser with a policy left: %v (SeaweedFS 4.53 allowed it)", err)
	}
}

// newPutCIUser creates user with the inline policy put-ci (putCIBucket)
// and an access key, and returns the key's id and the environment that
// signs with it in region.
func newPutCIUser(ctx context.Context, t *testing.T, iamc *iam.Client, user, region string) (string, []string) {
	t.Helper()
	if _, err := iamc.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(user)}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if _, err := iamc.PutUserPolicy(ctx, &iam.PutUserPolicyInput{
		UserName:       aws.String(user),
		PolicyName:     aws.String("put-ci"),
		PolicyDocument: aws.String(putCIBucket),
	}); err != nil {
		t.Fatalf("PutUserPolicy: %v", err)
	}
	key, err := iamc.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(user)})
	if err != nil {
		t.Fatalf("CreateAccessKey: %v", err)
	}
	id := aws.ToString(key.AccessKey.AccessKeyId)
	t.Logf("access key id %q (%d chars)", id, len(id))
	return id, peers.CredsEnv(aws.Credentials{AccessKeyID: id, SecretAccessKey: aws.ToString(key.AccessKey.SecretAccessKey)}, region)
}

// TestPeersTwoInstances: two SeaweedFS instances run side by side (every
// port chosen at start) and do not share identities.
func TestPeersTwoInstances(t *testing.T) {
	t.Parallel()
	start := time.Now()
	a := peers.StartSeaweedFS(t, peers.SeaweedConfig{Buckets: []string{"bucket-a"}})
	b := peers.StartSeaweedFS(t, peers.SeaweedConfig{Buckets: []string{"bucket-b"}})
	t.Logf("started two instances in %s", time.Since(start).Round(10*time.Millisecond))
	if a.Endpoint == b.Endpoint {
		t.Fatalf("both instances on %s", a.Endpoint)
	}
	ctx := testContext(t)
	if _, err := a.S3Client(a.AdminCredentials()).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("bucket-a")}); err != nil {
		t.Errorf("HeadBucket on its own instance: %v", err)
	}
	_, err := b.S3Client(a.AdminCredentials()).ListBuckets(ctx, &s3.ListBucketsInput{})
	if got := testutil.APIErrorCode(err); got != "InvalidAccessKeyId" {
		t.Errorf("instance A's admin key on instance B: got %q (%v), want InvalidAccessKeyId", got, err)
	}
}

// TestPeersVersityGWIAMUser: versitygw, the second and independent IAM + S3
// peer, serves keyferry's IAM-user path: CreateUser, PutUserPolicy,
// CreateAccessKey, then S3 with that key, and the key's deletion.
func TestPeersVersityGWIAMUser(t *testing.T) {
	t.Parallel()
	v := peers.StartVersityGW(t, peers.VersityGWConfig{Buckets: []string{smokeCIBucket, smokeOtherBucket}})
	ctx := testContext(t)
	iamc := v.IAMClient(v.RootCredentials())
	const user = "kf-smoke"
	id, env := newPutCIUser(ctx, t, iamc, user, v.Region)

	if res := peers.GoSDKPutObject(t, env, v.S3Endpoint, smokeCIBucket, "k1", "x"); !res.OK() {
		t.Errorf("put with a fresh IAM key: %s", res)
	}
	if res := peers.GoSDKPutObject(t, env, v.S3Endpoint, smokeOtherBucket, "k1", "x"); !peers.IsAccessDenied(res.Stderr) {
		t.Errorf("put outside the user's policy: got %s, want AccessDenied", res)
	}
	if _, err := iamc.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(user), AccessKeyId: aws.String(id)}); err != nil {
		t.Fatalf("DeleteAccessKey: %v", err)
	}
	if res := peers.GoSDKPutObject(t, env, v.S3Endpoint, smokeCIBucket, "k2", "x"); !peers.IsInvalidAccessKey(res.Stderr) {
		t.Errorf("put right after DeleteAccessKey: got %s, want InvalidAccessKeyId", res)
	}
	// Unlike SeaweedFS, versitygw refuses DeleteUser while an inline policy
	// is left, as AWS does.
	_, err := iamc.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String(user)})
	if got := testutil.APIErrorCode(err); got != "DeleteConflict" {
		t.Errorf("DeleteUser with a policy left: got %q (%v), want DeleteConflict", got, err)
	}
	if _, err := iamc.DeleteUserPolicy(ctx, &iam.DeleteUserPolicyInput{UserName: aws.String(user), PolicyName: aws.String("put-ci")}); err != nil {
		t.Fatalf("DeleteUserPolicy: %v", err)
	}
	if _, err := iamc.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String(user)}); err != nil {
		t.Errorf("DeleteUser: %v", err)
	}
}
