package testutil

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/google/go-cmp/cmp"
)

const (
	iKey    = "AKIAFAKEIAMTEST00001"
	iSecret = "fake-iam-test-secret-0123456789abcdefghij"
)

func newTestIAM(t *testing.T, opts ...IAMOption) (*FakeIAM, *Clock) {
	t.Helper()
	clk := NewClock(tNow)
	base := []IAMOption{WithIAMKey(iKey, iSecret), WithIAMClock(clk.Now), WithIAMGroups("ci"), WithIAMRoles("deploy")}
	return NewFakeIAM(t, append(base, opts...)...), clk
}

func iamClient(fake *FakeIAM, key, secret string) *iam.Client {
	return iam.New(iam.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(fake.URL()),
		Credentials:  credentials.NewStaticCredentialsProvider(key, secret, ""),
		Retryer:      aws.NopRetryer{},
	})
}

// stsOn is an SDK STS client on url in us-east-1, without retries.
func stsOn(url, key, secret string) *sts.Client { return stsAt(url, "us-east-1", key, secret, "") }

func httpStatusOf(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// signedPost sends form to the fake signed for service with SigV4.
func signedPost(t *testing.T, base string, form url.Values, key, secret, service string) (*http.Response, []byte) {
	t.Helper()
	return postForm(t, base, form, "application/x-www-form-urlencoded; charset=utf-8", func(req *http.Request) {
		sum := sha256.Sum256([]byte(form.Encode()))
		if err := v4.NewSigner().SignHTTP(t.Context(), aws.Credentials{AccessKeyID: key, SecretAccessKey: secret}, req, hex.EncodeToString(sum[:]), service, "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
	})
}

// iamForm is an IAM query: action and the key, value pairs kv.
func iamForm(action string, kv ...string) url.Values { return queryForm(iamVersion, action, kv...) }

type xmlIAMError struct {
	XMLName xml.Name `xml:"https://iam.amazonaws.com/doc/2010-05-08/ ErrorResponse"`
	Error   struct {
		Type, Code, Message string
	}
	RequestID string `xml:"RequestId"`
}

func TestFakeIAMWire(t *testing.T) {
	fake, _ := newTestIAM(t, WithIAMPolicies("arn:aws:iam::123456789012:policy/boundary"))
	f := iamForm(ActionCreateUser, "UserName", "ci-1", "Path", "/keyferry/",
		"PermissionsBoundary", "arn:aws:iam::123456789012:policy/boundary",
		"Tags.member.1.Key", "lease", "Tags.member.1.Value", "l-<1>")
	resp, body := signedPost(t, fake.URL(), f, iKey, iSecret, "iam")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CreateUser: got %d %s", resp.StatusCode, body)
	}
	var created struct {
		XMLName xml.Name `xml:"https://iam.amazonaws.com/doc/2010-05-08/ CreateUserResponse"`
		User    struct {
			Path, UserName, UserId, Arn, CreateDate string
			Boundary                                struct {
				PermissionsBoundaryType, PermissionsBoundaryArn string
			} `xml:"PermissionsBoundary"`
			Tags []struct{ Key, Value string } `xml:"Tags>member"`
		} `xml:"CreateUserResult>User"`
		RequestID string `xml:"ResponseMetadata>RequestId"`
	}
	if err := xml.Unmarshal(body, &created); err != nil {
		t.Fatalf("CreateUser answer: %v\n%s", err, body)
	}
	u := created.User
	if u.Path != "/keyferry/" || u.UserName != "ci-1" || u.Arn != "arn:aws:iam::123456789012:user/keyferry/ci-1" ||
		len(u.UserId) != 21 || !strings.HasPrefix(u.UserId, "AIDA") || u.CreateDate != "2030-01-02T03:04:05Z" {
		t.Errorf("got user %+v", u)
	}
	if u.Boundary.PermissionsBoundaryType != "PermissionsBoundaryPolicy" || u.Boundary.PermissionsBoundaryArn != "arn:aws:iam::123456789012:policy/boundary" {
		t.Errorf("got boundary %+v", u.Boundary)
	}
	if len(u.Tags) != 1 || u.Tags[0].Key != "lease" || u.Tags[0].Value != "l-<1>" {
		t.Errorf("got tags %+v, want lease=l-<1> (escaped and back)", u.Tags)
	}
	if created.RequestID == "" || created.RequestID != resp.Header.Get("x-amzn-RequestId") {
		t.Errorf("got RequestId %q and header %q, want the same id", created.RequestID, resp.Header.Get("x-amzn-RequestId"))
	}

	// An action without output still answers ResponseMetadata.
	resp, body = signedPost(t, fake.URL(), iamForm(ActionTagUser, "UserName", "ci-1", "Tags.member.1.Key", "b", "Tags.member.1.Value", "2"), iKey, iSecret, "iam")
	var empty struct {
		XMLName   xml.Name `xml:"https://iam.amazonaws.com/doc/2010-05-08/ TagUserResponse"`
		RequestID string   `xml:"ResponseMetadata>RequestId"`
	}
	if err := xml.Unmarshal(body, &empty); err != nil || resp.StatusCode != 200 || empty.RequestID == "" {
		t.Errorf("TagUser: got %d %s (%v), want 200 with a RequestId", resp.StatusCode, body, err)
	}

	errs := []struct {
		name       string
		form       url.Values
		wantStatus int
		wantType   string
		wantCode   string
		wantMsg    string
	}{
		{"no such user", iamForm(ActionGetUser, "UserName", "nobody"), 404, "Sender", "NoSuchEntity", "The user with name nobody cannot be found."},
		{"name taken, ignoring case", iamForm(ActionCreateUser, "UserName", "CI-1"), 409, "Sender", "EntityAlreadyExists", "User with name CI-1 already exists."},
		{"bad name", iamForm(ActionCreateUser, "UserName", "a/b"), 400, "Sender", "ValidationError", ""},
		{"bad path", iamForm(ActionCreateUser, "UserName", "ci-2", "Path", "nope"), 400, "Sender", "ValidationError", ""},
		{"unknown boundary", iamForm(ActionCreateUser, "UserName", "ci-2", "PermissionsBoundary", "arn:aws:iam::123456789012:policy/nope"), 404, "Sender", "NoSuchEntity", ""},
		{"duplicate tag keys", iamForm(ActionCreateUser, "UserName", "ci-2", "Tags.member.1.Key", "a", "Tags.member.1.Value", "1", "Tags.member.2.Key", "A", "Tags.member.2.Value", "2"), 400, "Sender", "InvalidInput", ""},
		{"unknown action", iamForm("CreateRole", "RoleName", "x"), 400, "Sender", "InvalidAction", ""},
		{"wrong version", url.Values{"Action": {ActionGetUser}, "Version": {"2011-06-15"}}, 400, "Sender", "InvalidAction", ""},
		{"bad MaxItems", iamForm(ActionListUsers, "MaxItems", "0"), 400, "Sender", "ValidationError", ""},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := signedPost(t, fake.URL(), tt.form, iKey, iSecret, "iam")
			var e xmlIAMError
			if err := xml.Unmarshal(body, &e); err != nil {
				t.Fatalf("got %s: %v", body, err)
			}
			if resp.StatusCode != tt.wantStatus || e.Error.Type != tt.wantType || e.Error.Code != tt.wantCode {
				t.Errorf("got %d %s/%s %q, want %d %s/%s", resp.StatusCode, e.Error.Type, e.Error.Code, e.Error.Message, tt.wantStatus, tt.wantType, tt.wantCode)
			}
			if tt.wantMsg != "" && e.Error.Message != tt.wantMsg {
				t.Errorf("got message %q, want %q", e.Error.Message, tt.wantMsg)
			}
			if e.RequestID == "" {
				t.Errorf("got no RequestId")
			}
		})
	}
}

func TestFakeIAMSignatures(t *testing.T) {
	fake, _ := newTestIAM(t)
	ctx := t.Context()
	in := &iam.GetUserInput{}
	if _, err := iamClient(fake, iKey, iSecret).GetUser(ctx, in); err != nil {
		t.Fatalf("admin key: got %v, want success", err)
	}
	if _, err := iamClient(fake, iKey, "wrong").GetUser(ctx, in); APIErrorCode(err) != "SignatureDoesNotMatch" {
		t.Errorf("wrong secret: got %v, want SignatureDoesNotMatch", err)
	}
	if _, err := iamClient(fake, "AKIAUNKNOWN000000000", iSecret).GetUser(ctx, in); APIErrorCode(err) != "InvalidClientTokenId" {
		t.Errorf("unknown key: got %v, want InvalidClientTokenId", err)
	}
	resp, body := post(t, fake.URL(), iamForm(ActionGetUser), "")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "MissingAuthenticationToken") {
		t.Errorf("unsigned: got %d %s, want 403 MissingAuthenticationToken", resp.StatusCode, body)
	}
	resp, body = signedPost(t, fake.URL(), iamForm(ActionGetUser), iKey, iSecret, "sts")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "SignatureDoesNotMatch") {
		t.Errorf("scoped to sts: got %d %s, want 403 SignatureDoesNotMatch", resp.StatusCode, body)
	}

	// A key the fake issued is an identity, but not an IAM admin.
	admin := iamClient(fake, iKey, iSecret)
	if _, err := admin.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("ci-1")}); err != nil {
		t.Fatal(err)
	}
	k, err := admin.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("ci-1")})
	if err != nil {
		t.Fatal(err)
	}
	user := iamClient(fake, *k.AccessKey.AccessKeyId, *k.AccessKey.SecretAccessKey)
	if _, err := user.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("escalate")}); APIErrorCode(err) != "AccessDenied" {
		t.Errorf("issued key on IAM: got %v, want AccessDenied", err)
	}

	// Without WithIAMKey, the default admin key signs.
	def := NewFakeIAM(t)
	if _, err := iamClient(def, FakeIAMAccessKeyID, FakeIAMSecretAccessKey).GetUser(ctx, in); err != nil {
		t.Errorf("default admin key: %v", err)
	}
	if _, err := iamClient(def, iKey, iSecret).GetUser(ctx, in); APIErrorCode(err) != "InvalidClientTokenId" {
		t.Errorf("other key on a default fake: got %v, want InvalidClientTokenId", err)
	}
}

func TestFakeIAMDeleteConflict(t *testing.T) {
	const user = "ci-x"
	u := aws.String(user)
	tests := []struct {
		name    string
		add     func(context.Context, *iam.Client, *FakeIAM) error
		remove  func(context.Context, *iam.Client) error
		wantMsg string
	}{
		{
			name: "access key",
			add: func(ctx context.Context, c *iam.Client, _ *FakeIAM) error {
				_, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: u})
				return err
			},
			remove: func(ctx context.Context, c *iam.Client) error {
				out, err := c.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: u})
				if err != nil {
					return err
				}
				_, err = c.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: u, AccessKeyId: out.AccessKeyMetadata[0].AccessKeyId})
				return err
			},
			wantMsg: "Cannot delete entity, must delete access keys first.",
		},
		{
			name: "inline policy",
			add: func(ctx context.Context, c *iam.Client, _ *FakeIAM) error {
				_, err := c.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: u, PolicyName: aws.String("p"), PolicyDocument: aws.String(`{}`)})
				return err
			},
			remove: func(ctx context.Context, c *iam.Client) error {
				_, err := c.DeleteUserPolicy(ctx, &iam.DeleteUserPolicyInput{UserName: u, PolicyName: aws.String("p")})
				return err
			},
			wantMsg: "Cannot delete entity, must delete policies first.",
		},
		{
			name: "attached policy",
			add: func(ctx context.Context, c *iam.Client, _ *FakeIAM) error {
				_, err := c.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: u, PolicyArn: aws.String("arn:aws:iam::aws:policy/ReadOnlyAccess")})
				return err
			},
			remove: func(ctx context.Context, c *iam.Client) error {
				_, err := c.DetachUserPolicy(ctx, &iam.DetachUserPolicyInput{UserName: u, PolicyArn: aws.String("arn:aws:iam::aws:policy/ReadOnlyAccess")})
				return err
			},
			wantMsg: "Cannot delete entity, must detach all policies first.",
		},
		{
			name: "group",
			add: func(ctx context.Context, c *iam.Client, _ *FakeIAM) error {
				_, err := c.AddUserToGroup(ctx, &iam.AddUserToGroupInput{UserName: u, GroupName: aws.String("ci")})
				return err
			},
			remove: func(ctx context.Context, c *iam.Client) error {
				_, err := c.RemoveUserFromGroup(ctx, &iam.RemoveUserFromGroupInput{UserName: u, GroupName: aws.String("ci")})
				return err
			},
			wantMsg: "Cannot delete entity, must remove users from group first.",
		},
		{
			name: "login profile",
			add: func(ctx context.Context, c *iam.Client, _ *FakeIAM) error {
				_, err := c.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: u, Password: aws.String("hunter2hunter2")})
				return err
			},
			remove: func(ctx context.Context, c *iam.Client) error {
				_, err := c.DeleteLoginProfile(ctx, &iam.DeleteLoginProfileInput{UserName: u})
				return err
			},
			wantMsg: "Cannot delete entity, must delete login profile first.",
		},
		{
			name: "MFA device",
			add: func(_ context.Context, _ *iam.Client, f *FakeIAM) error {
				f.AddUserExtras(user, IAMUserExtras{MFADevices: []string{"arn:aws:iam::123456789012:mfa/x"}})
				return nil
			},
			remove: func(ctx context.Context, c *iam.Client) error {
				out, err := c.ListMFADevices(ctx, &iam.ListMFADevicesInput{UserName: u})
				if err != nil {
					return err
				}
				_, err = c.DeactivateMFADevice(ctx, &iam.DeactivateMFADeviceInput{UserName: u, SerialNumber: out.MFADevices[0].SerialNumber})
				return err
			},
			wantMsg: "Cannot delete entity, must delete MFA device first.",
		},
		{
			name: "signing certificate",
			add: func(_ context.Context, _ *iam.Client, f *FakeIAM) error {
				f.AddUserExtras(user, IAMUserExtras{SigningCertificates: []string{"CERT1"}})
				return nil
			},
			remove: func(ctx context.Context, c *iam.Client) error {
				out, err := c.ListSigningCertificates(ctx, &iam.ListSigningCertificatesInput{UserName: u})
				if err != nil {
					return err
				}
				_, err = c.DeleteSigningCertificate(ctx, &iam.DeleteSigningCertificateInput{UserName: u, CertificateId: out.Certificates[0].CertificateId})
				return err
			},
			wantMsg: "Cannot delete entity, must delete signing certificate first.",
		},
		{
			name: "SSH key",
			add: func(_ context.Context, _ *iam.Client, f *FakeIAM) error {
				f.AddUserExtras(user, IAMUserExtras{SSHPublicKeys: []string{"APKA1"}})
				return nil
			},
			remove: func(ctx context.Context, c *iam.Client) error {
				out, err := c.ListSSHPublicKeys(ctx, &iam.ListSSHPublicKeysInput{UserName: u})
				if err != nil {
					return err
				}
				_, err = c.DeleteSSHPublicKey(ctx, &iam.DeleteSSHPublicKeyInput{UserName: u, SSHPublicKeyId: out.SSHPublicKeys[0].SSHPublicKeyId})
				return err
			},
			wantMsg: "Cannot delete entity, must delete SSH public key first.",
		},
		{
			name: "service-specific credential",
			add: func(_ context.Context, _ *iam.Client, f *FakeIAM) error {
				f.AddUserExtras(user, IAMUserExtras{ServiceSpecificCredentials: []string{"ACCA1"}})
				return nil
			},
			remove: func(ctx context.Context, c *iam.Client) error {
				out, err := c.ListServiceSpecificCredentials(ctx, &iam.ListServiceSpecificCredentialsInput{UserName: u})
				if err != nil {
					return err
				}
				_, err = c.DeleteServiceSpecificCredential(ctx, &iam.DeleteServiceSpecificCredentialInput{UserName: u, ServiceSpecificCredentialId: out.ServiceSpecificCredentials[0].ServiceSpecificCredentialId})
				return err
			},
			wantMsg: "Cannot delete entity, must delete service specific credentials first.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, _ := newTestIAM(t)
			c := iamClient(fake, iKey, iSecret)
			ctx := t.Context()
			if _, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: u}); err != nil {
				t.Fatal(err)
			}
			if err := tt.add(ctx, c, fake); err != nil {
				t.Fatalf("add: %v", err)
			}
			_, err := c.DeleteUser(ctx, &iam.DeleteUserInput{UserName: u})
			if APIErrorCode(err) != "DeleteConflict" || httpStatusOf(err) != http.StatusConflict {
				t.Fatalf("DeleteUser: got %v, want 409 DeleteConflict", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("got %v, want message %q", err, tt.wantMsg)
			}
			if err := tt.remove(ctx, c); err != nil {
				t.Fatalf("remove: %v", err)
			}
			if _, err := c.DeleteUser(ctx, &iam.DeleteUserInput{UserName: u}); err != nil {
				t.Fatalf("DeleteUser once clear: %v", err)
			}
			if _, err := c.DeleteUser(ctx, &iam.DeleteUserInput{UserName: u}); APIErrorCode(err) != "NoSuchEntity" {
				t.Errorf("second DeleteUser: got %v, want NoSuchEntity", err)
			}
		})
	}
}

// docOfSize is a JSON policy of exactly n non-whitespace characters.
func docOfSize(n int) string { return `{"S":"` + strings.Repeat("x", n-8) + `"}` }

func TestFakeIAMLimits(t *testing.T) {
	fake, _ := newTestIAM(t)
	c := iamClient(fake, iKey, iSecret)
	ctx := t.Context()
	u := aws.String("ci-limits")
	if _, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: u}); err != nil {
		t.Fatal(err)
	}
	wantLimit := func(t *testing.T, what string, err error, msg string) {
		t.Helper()
		if APIErrorCode(err) != "LimitExceeded" || httpStatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: got %v, want 409 LimitExceeded %q", what, err, msg)
		}
	}

	for i := range 2 {
		k, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: u})
		if err != nil {
			t.Fatalf("key %d: %v", i+1, err)
		}
		id, secret := aws.ToString(k.AccessKey.AccessKeyId), aws.ToString(k.AccessKey.SecretAccessKey)
		if len(id) != 20 || !strings.HasPrefix(id, "AKIA") || strings.Trim(id[4:], "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" || len(secret) != 40 {
			t.Errorf("got key %q with a %d-char secret, want AKIA + 16 upper alphanumerics and 40", id, len(secret))
		}
	}
	_, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: u})
	wantLimit(t, "third key", err, "Cannot exceed quota for AccessKeysPerUser: 2")

	for i := range IAMMaxManagedPoliciesPerUser {
		arn := "arn:aws:iam::aws:policy/P" + strconv.Itoa(i)
		if _, err := c.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: u, PolicyArn: aws.String(arn)}); err != nil {
			t.Fatalf("policy %d: %v", i, err)
		}
	}
	// Attaching an attached policy again is fine, as in AWS.
	if _, err := c.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: u, PolicyArn: aws.String("arn:aws:iam::aws:policy/P0")}); err != nil {
		t.Errorf("re-attach: %v", err)
	}
	_, err = c.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: u, PolicyArn: aws.String("arn:aws:iam::aws:policy/P10")})
	wantLimit(t, "eleventh managed policy", err, "Cannot exceed quota for PoliciesPerUser: 10")
	_, err = c.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: u, PolicyArn: aws.String("arn:aws:iam::123456789012:policy/unknown")})
	if APIErrorCode(err) != "NoSuchEntity" {
		t.Errorf("unknown customer policy: got %v, want NoSuchEntity", err)
	}

	for i := range IAMMaxGroupsPerUser {
		g := aws.String("g" + strconv.Itoa(i))
		if _, err := c.CreateGroup(ctx, &iam.CreateGroupInput{GroupName: g}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.AddUserToGroup(ctx, &iam.AddUserToGroupInput{UserName: u, GroupName: g}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.AddUserToGroup(ctx, &iam.AddUserToGroupInput{UserName: u, GroupName: aws.String("ci")})
	wantLimit(t, "eleventh group", err, "Cannot exceed quota for GroupsPerUser: 10")
	if _, err := c.CreateGroup(ctx, &iam.CreateGroupInput{GroupName: aws.String("CI")}); APIErrorCode(err) != "EntityAlreadyExists" {
		t.Errorf("CreateGroup CI: got %v, want EntityAlreadyExists", err)
	}

	put := func(name, doc string) error {
		_, err := c.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: u, PolicyName: aws.String(name), PolicyDocument: aws.String(doc)})
		return err
	}
	if err := put("a", docOfSize(1000)); err != nil {
		t.Fatal(err)
	}
	if err := put("b", docOfSize(1048)); err != nil {
		t.Errorf("2,048 characters in all: %v", err)
	}
	wantLimit(t, "2,049 characters", put("c", docOfSize(8)+" "), "Maximum policy size of 2048 bytes exceeded for user ci-limits")
	if err := put("b", docOfSize(1048)+strings.Repeat(" \n\t", 500)); err != nil {
		t.Errorf("whitespace is not counted: %v", err)
	}
	if err := put("a", docOfSize(900)); err != nil {
		t.Errorf("replacing a policy counts it once: %v", err)
	}
	if err := put("bad", `{"Version":`); APIErrorCode(err) != "MalformedPolicyDocument" {
		t.Errorf("not JSON: got %v, want MalformedPolicyDocument", err)
	}

	tags := func(n, from int) []iamtypes.Tag {
		var out []iamtypes.Tag
		for i := range n {
			out = append(out, iamtypes.Tag{Key: aws.String("k" + strconv.Itoa(from+i)), Value: aws.String("v")})
		}
		return out
	}
	if _, err := c.TagUser(ctx, &iam.TagUserInput{UserName: u, Tags: tags(50, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TagUser(ctx, &iam.TagUserInput{UserName: u, Tags: []iamtypes.Tag{{Key: aws.String("K0"), Value: aws.String("new")}}}); err != nil {
		t.Errorf("overwriting a tag (keys ignore case): %v", err)
	}
	_, err = c.TagUser(ctx, &iam.TagUserInput{UserName: u, Tags: tags(1, 50)})
	wantLimit(t, "51st tag", err, "The number of tags has reached the maximum limit.")
	st, _ := fake.User("ci-limits")
	if len(st.Tags) != 50 || st.Tags[0] != (IAMTag{Key: "K0", Value: "new"}) {
		t.Errorf("got %d tags, first %+v; want 50, K0=new", len(st.Tags), st.Tags[0])
	}
}

func TestFakeIAMRoleInlinePolicySizeLimit(t *testing.T) {
	fake, _ := newTestIAM(t)
	c := iamClient(fake, iKey, iSecret)
	ctx := t.Context()
	put := func(role, name, doc string) error {
		_, err := c.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(name), PolicyDocument: aws.String(doc)})
		return err
	}
	for i := range 5 {
		if err := put("deploy", "p"+strconv.Itoa(i), docOfSize(2000)); err != nil {
			t.Fatalf("policy %d: %v", i, err)
		}
	}
	err := put("deploy", "p5", docOfSize(241))
	if APIErrorCode(err) != "LimitExceeded" || httpStatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "Maximum policy size of 10240 bytes exceeded for role deploy") {
		t.Errorf("10,241 characters: got %v, want 409 LimitExceeded", err)
	}
	if err := put("deploy", "p5", docOfSize(240)+"\n  \n"); err != nil {
		t.Errorf("exactly 10,240 characters plus whitespace: %v", err)
	}
	if err := put("deploy", "p0", docOfSize(2000)); err != nil {
		t.Errorf("replacing a policy with one of the same size: %v", err)
	}
	if err := put("deploy", "p0", docOfSize(2001)); APIErrorCode(err) != "LimitExceeded" {
		t.Errorf("growing a policy past the limit: got %v, want LimitExceeded", err)
	}
	if err := put("nope", "p", `{}`); APIErrorCode(err) != "NoSuchEntity" {
		t.Errorf("unknown role: got %v, want NoSuchEntity", err)
	}
	if err := put("deploy", "x", `{`); APIErrorCode(err) != "MalformedPolicyDocument" {
		t.Errorf("not JSON: got %v, want MalformedPolicyDocument", err)
	}

	deny := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:userid":"AROA:gl-42"}}}]}`
	if err := put("deploy", "p5", deny); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String("deploy"), PolicyName: aws.String("p5")})
	if err != nil {
		t.Fatal(err)
	}
	// IAM returns the document URL-encoded.
	doc, err := url.QueryUnescape(aws.ToString(got.PolicyDocument))
	if err != nil || doc != deny || aws.ToString(got.PolicyDocument) == deny {
		t.Errorf("got PolicyDocument %q, want %q URL-encoded", aws.ToString(got.PolicyDocument), deny)
	}
	if d, ok := fake.RolePolicy("deploy", "p5"); !ok || d != deny {
		t.Errorf("RolePolicy: got %q, %v", d, ok)
	}
	list, err := c.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: aws.String("deploy")})
	if err != nil || !cmp.Equal(list.PolicyNames, []string{"p0", "p1", "p2", "p3", "p4", "p5"}) {
		t.Errorf("ListRolePolicies: got %v, %v", list.PolicyNames, err)
	}
	if _, err := c.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String("deploy"), PolicyName: aws.String("p5")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String("deploy"), PolicyName: aws.String("p5")}); APIErrorCode(err) != "NoSuchEntity" {
		t.Errorf("deleted policy: got %v, want NoSuchEntity", err)
	}
	if _, err := c.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String("deploy"), PolicyName: aws.String("p5")}); APIErrorCode(err) != "NoSuchEntity" {
		t.Errorf("deleting twice: got %v, want NoSuchEntity", err)
	}
	if got := fake.RolePolicyNames("deploy"); len(got) != 5 {
		t.Errorf("got role policies %v, want 5", got)
	}
}

func TestFakeIAMListUsersPagination(t *testing.T) {
	fake, _ := newTestIAM(t)
	c := iamClient(fake, iKey, iSecret)
	ctx := t.Context()
	for _, n := range []string{"e", "a", "d", "b", "c"} {
		if _, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("ci-" + n), Path: aws.String("/keyferry/")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("human")}); err != nil {
		t.Fatal(err)
	}
	list := func(marker *string) *iam.ListUsersOutput {
		t.Helper()
		out, err := c.ListUsers(ctx, &iam.ListUsersInput{PathPrefix: aws.String("/keyferry/"), MaxItems: aws.Int32(2), Marker: marker})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	names := func(o *iam.ListUsersOutput) []string {
		var out []string
		for _, u := range o.Users {
			out = append(out, aws.ToString(u.UserName))
		}
		return out
	}
	p1 := list(nil)
	if !cmp.Equal(names(p1), []string{"ci-a", "ci-b"}) || !p1.IsTruncated || p1.Marker == nil {
		t.Fatalf("page 1: got %v truncated=%v marker=%v", names(p1), p1.IsTruncated, p1.Marker)
	}
	// Deleting what was already listed does not make the next page skip.
	if _, err := c.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String("ci-a")}); err != nil {
		t.Fatal(err)
	}
	p2 := list(p1.Marker)
	if !cmp.Equal(names(p2), []string{"ci-c", "ci-d"}) || !p2.IsTruncated {
		t.Fatalf("page 2: got %v truncated=%v", names(p2), p2.IsTruncated)
	}
	p3 := list(p2.Marker)
	if !cmp.Equal(names(p3), []string{"ci-e"}) || p3.IsTruncated || p3.Marker != nil {
		t.Fatalf("page 3: got %v truncated=%v marker=%v", names(p3), p3.IsTruncated, p3.Marker)
	}
	all, err := c.ListUsers(ctx, &iam.ListUsersInput{})
	if err != nil || len(all.Users) != 5 {
		t.Errorf("all paths: got %d users, %v; want 5", len(all.Users), err)
	}
	if _, err := c.ListUsers(ctx, &iam.ListUsersInput{Marker: aws.String("!!")}); APIErrorCode(err) != "InvalidInput" {
		t.Errorf("bad marker: got %v, want InvalidInput", err)
	}

	// WithIAMMaxPageSize caps pages whatever MaxItems asks.
	capped, _ := newTestIAM(t, WithIAMMaxPageSize(1))
	cc := iamClient(capped, iKey, iSecret)
	for _, n := range []string{"x", "y"} {
		if _, err := cc.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(n)}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := cc.ListUsers(ctx, &iam.ListUsersInput{MaxItems: aws.Int32(100)})
	if err != nil || len(out.Users) != 1 || !out.IsTruncated {
		t.Errorf("capped page: got %d users truncated=%v, %v; want 1, true", len(out.Users), out.IsTruncated, err)
	}
}

func TestFakeIAMEventualConsistency(t *testing.T) {
	fake, clk := newTestIAM(t, WithIAMKeyDelay(10*time.Second))
	c := iamClient(fake, iKey, iSecret)
	ctx := t.Context()
	if _, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("ci-ec"), Path: aws.String("/keyferry/")}); err != nil {
		t.Fatal(err)
	}
	k, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("ci-ec")})
	if err != nil {
		t.Fatal(err)
	}
	id, secret := aws.ToString(k.AccessKey.AccessKeyId), aws.ToString(k.AccessKey.SecretAccessKey)
	if at, ok := fake.KeyUsableAt(id); !ok || !at.Equal(tNow.Add(10*time.Second)) {
		t.Errorf("KeyUsableAt: got %v, %v; want %v", at, ok, tNow.Add(10*time.Second))
	}

	// The fake IAM answers STS itself; a separate fake STS can use it as
	// its key source. Both see the same key the same way.
	other := NewFakeSTS(t, WithSTSKeySource(fake.FakeIAMHandler), WithSTSClock(clk.Now))
	for _, target := range []struct{ name, url string }{{"fake IAM", fake.URL()}, {"fake STS with key source", other.URL()}} {
		t.Run(target.name, func(t *testing.T) {
			probe := stsOn(target.url, id, secret)
			_, err := probe.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			if APIErrorCode(err) != "InvalidClientTokenId" || httpStatusOf(err) != http.StatusForbidden {
				t.Errorf("at creation: got %v, want 403 InvalidClientTokenId", err)
			}
			clk.Advance(9999 * time.Millisecond)
			if _, err := probe.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); APIErrorCode(err) != "InvalidClientTokenId" {
				t.Errorf("just before the delay: got %v, want InvalidClientTokenId", err)
			}
			clk.Advance(time.Millisecond)
			out, err := probe.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			if err != nil {
				t.Fatalf("after the delay: %v", err)
			}
			if got, want := aws.ToString(out.Arn), "arn:aws:iam::123456789012:user/keyferry/ci-ec"; got != want {
				t.Errorf("got caller %q, want %q", got, want)
			}
			if aws.ToString(out.Account) != "123456789012" || !strings.HasPrefix(aws.ToString(out.UserId), "AIDA") {
				t.Errorf("got account %q user id %q", aws.ToString(out.Account), aws.ToString(out.UserId))
			}
			if _, err := stsOn(target.url, id, "wrong-secret").GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); APIErrorCode(err) != "SignatureDoesNotMatch" {
				t.Errorf("wrong secret: got %v, want SignatureDoesNotMatch", err)
			}
			clk.Advance(-10 * time.Second)
		})
	}
	if _, err := c.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("ci-ec"), AccessKeyId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if _, err := stsOn(fake.URL(), id, secret).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); APIErrorCode(err) != "InvalidClientTokenId" {
		t.Errorf("deleted key: got %v, want InvalidClientTokenId", err)
	}
	// The admin key works for STS too.
	if _, err := stsOn(fake.URL(), iKey, iSecret).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		t.Errorf("admin key on STS: %v", err)
	}
	if n := fake.CallsFor(ActionGetCallerIdentity); n != 6 {
		t.Errorf("got %d GetCallerIdentity calls at the fake IAM, want 6", n)
	}
}

func TestFakeIAMWriteRateLimit(t *testing.T) {
	fake, clk := newTestIAM(t, WithIAMWriteRateLimit(20, 20))
	c := iamClient(fake, iKey, iSecret)
	ctx := t.Context()
	create := func(i int) error {
		_, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("u" + strconv.Itoa(i))})
		return err
	}
	for i := range 20 {
		if err := create(i); err != nil {
			t.Fatalf("write %d within the burst: %v", i, err)
		}
	}
	err := create(20)
	if APIErrorCode(err) != "Throttling" || httpStatusOf(err) != http.StatusBadRequest {
		t.Fatalf("21st write: got %v, want 400 Throttling", err)
	}
	if _, err := c.ListUsers(ctx, &iam.ListUsersInput{}); err != nil {
		t.Errorf("reads are not limited: %v", err)
	}
	clk.Advance(500 * time.Millisecond) // 10 tokens
	for i := range 10 {
		if err := create(100 + i); err != nil {
			t.Errorf("write %d after refill: %v", i, err)
		}
	}
	if err := create(200); APIErrorCode(err) != "Throttling" {
		t.Errorf("after the refill: got %v, want Throttling", err)
	}
	if got := fake.Throttled(); got != 2 {
		t.Errorf("got Throttled %d, want 2", got)
	}
	if got := len(fake.Users()); got != 30 {
		t.Errorf("got %d users, want 30", got)
	}
}

func TestFakeIAMFaults(t *testing.T) {
	fake, _ := newTestIAM(t)
	c := iamClient(fake, iKey, iSecret)
	ctx := t.Context()
	in := &iam.GetUserInput{}

	fake.Throttle(2)
	for i := range 2 {
		if _, err := c.GetUser(ctx, in); APIErrorCode(err) != "Throttling" {
			t.Errorf("call %d: got %v, want Throttling", i, err)
		}
	}
	if _, err := c.GetUser(ctx, in); err != nil {
		t.Errorf("after the throttled calls: %v", err)
	}

	fake.SetFault(IAMFault{Action: ActionCreateUser, Code: "ServiceFailure"})
	if _, err := c.GetUser(ctx, in); err != nil {
		t.Errorf("fault for another action applied: %v", err)
	}
	resp, body := signedPost(t, fake.URL(), iamForm(ActionCreateUser, "UserName", "x"), iKey, iSecret, "iam")
	var e xmlIAMError
	if xml.Unmarshal(body, &e); resp.StatusCode != 500 || e.Error.Type != "Receiver" || e.Error.Code != "ServiceFailure" {
		t.Errorf("ServiceFailure: got %d %+v", resp.StatusCode, e.Error)
	}
	fake.SetFault(IAMFault{Action: ActionGetCallerIdentity, Code: "AccessDenied"})
	if _, err := stsOn(fake.URL(), iKey, iSecret).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); APIErrorCode(err) != "AccessDenied" {
		t.Errorf("fault on an STS action: got %v, want AccessDenied", err)
	}
	fake.SetFault(IAMFault{Status: http.StatusBadGateway, Body: "<html>bad gateway</html>"})
	if _, err := c.GetUser(ctx, in); httpStatusOf(err) != http.StatusBadGateway {
		t.Errorf("HTML 502: got %v", err)
	}
	fake.SetFault(IAMFault{Drop: true})
	if _, err := c.GetUser(ctx, in); err == nil || httpStatusOf(err) != 0 {
		t.Errorf("drop: got %v, want a connection error", err)
	}
	fake.SetFault(IAMFault{Latency: 30 * time.Millisecond})
	start := time.Now()
	if _, err := c.GetUser(ctx, in); err != nil || time.Since(start) < 30*time.Millisecond {
		t.Errorf("latency: got %v after %v", err, time.Since(start))
	}
	fake.ClearFaults()

	// Hang holds the request until Close.
	h := NewFakeIAMHandler(WithIAMKey(iKey, iSecret))
	srv := httptest.NewServer(h)
	defer srv.Close()
	h.SetFault(IAMFault{Hang: true})
	done := make(chan error, 1)
	go func() {
		_, err := iamClient(&FakeIAM{FakeIAMHandler: h, fakeServer: fakeServer{Server: srv}}, iKey, iSecret).GetUser(context.Background(), in)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("hung request returned early: %v", err)
	default:
	}
	wantReleased(t, h.Close, done, 5*time.Second)
}

func TestFakeIAMRecording(t *testing.T) {
	fake, _ := newTestIAM(t)
	c := iamClient(fake, iKey, iSecret)
	ctx := t.Context()
	u := aws.String("ci-rec")
	if _, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: u, Tags: []iamtypes.Tag{{Key: aws.String("a"), Value: aws.String("1")}}}); err != nil {
		t.Fatal(err)
	}
	k, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: u})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: u, PolicyArn: aws.String("arn:aws:iam::aws:policy/X")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteUser(ctx, &iam.DeleteUserInput{UserName: u}); APIErrorCode(err) != "DeleteConflict" {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{ActionCreateUser, ActionCreateAccessKey, ActionAttachUserPolicy, ActionDeleteUser}, fake.Actions()); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	reqs := fake.Requests()
	if r := reqs[0]; r.UserName != "ci-rec" || !cmp.Equal(r.Tags, []IAMTag{{Key: "a", Value: "1"}}) || r.SignedBy != iKey || r.Service != "iam" || r.Status != 200 {
		t.Errorf("CreateUser recorded as %+v", r)
	}
	if r := reqs[1]; r.IssuedAccessKeyID != aws.ToString(k.AccessKey.AccessKeyId) {
		t.Errorf("got IssuedAccessKeyID %q, want %q", r.IssuedAccessKeyID, aws.ToString(k.AccessKey.AccessKeyId))
	}
	if r := reqs[2]; r.PolicyARN != "arn:aws:iam::aws:policy/X" {
		t.Errorf("got PolicyARN %q", r.PolicyARN)
	}
	if r := reqs[3]; r.Status != http.StatusConflict || r.ErrorCode != "DeleteConflict" {
		t.Errorf("DeleteUser recorded %d %s, want 409 DeleteConflict", r.Status, r.ErrorCode)
	}
	if fake.CallsFor(ActionCreateUser) != 1 || fake.Calls() != 4 {
		t.Errorf("got %d CreateUser, %d calls; want 1, 4", fake.CallsFor(ActionCreateUser), fake.Calls())
	}
	st, ok := fake.User("CI-REC")
	if !ok || len(st.AccessKeys) != 1 || st.AccessKeys[0].SecretAccessKey != aws.ToString(k.AccessKey.SecretAccessKey) || len(st.AttachedPolicies) != 1 {
		t.Errorf("User(CI-REC): got %+v, %v", st, ok)
	}
	fake.Reset()
	if fake.Calls() != 0 || len(fake.Requests()) != 0 || len(fake.Users()) != 1 {
		t.Errorf("Reset: want counters and records cleared, state kept")
	}

	quiet, _ := newTestIAM(t, WithoutIAMRecording())
	if _, err := iamClient(quiet, iKey, iSecret).CreateUser(ctx, &iam.CreateUserInput{UserName: u}); err != nil {
		t.Fatal(err)
	}
	if len(quiet.Requests()) != 0 || quiet.CallsFor(ActionCreateUser) != 1 || len(quiet.Users()) != 1 {
		t.Errorf("WithoutIAMRecording: got %d records, %d calls, %d users; want 0, 1, 1", len(quiet.Requests()), quiet.CallsFor(ActionCreateUser), len(quiet.Users()))
	}
}

// TestFakeIAMConcurrentUse runs user lifecycles from many goroutines (run
// it with -race).
func TestFakeIAMConcurrentUse(t *testing.T) {
	fake, _ := newTestIAM(t, WithoutIAMRecording())
	c := iamClient(fake, iKey, iSecret)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 16 {
		wg.Go(func() {
			for i := range 10 {
				u := aws.String("u-" + strconv.Itoa(g) + "-" + strconv.Itoa(i))
				k, err := c.CreateUser(t.Context(), &iam.CreateUserInput{UserName: u})
				if err == nil {
					_, err = c.PutUserPolicy(t.Context(), &iam.PutUserPolicyInput{UserName: u, PolicyName: aws.String("p"), PolicyDocument: aws.String("{}")})
				}
				if err == nil {
					_, err = c.DeleteUserPolicy(t.Context(), &iam.DeleteUserPolicyInput{UserName: u, PolicyName: aws.String("p")})
				}
				if err == nil {
					_, err = c.DeleteUser(t.Context(), &iam.DeleteUserInput{UserName: k.User.UserName})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(fake.Users()); n != 0 {
		t.Errorf("got %d users left, want 0", n)
	}
}

func FuzzParsePolicyARN(f *testing.F) {
	f.Add("arn:aws:iam::aws:policy/ReadOnlyAccess")
	f.Add("arn:aws:iam::123456789012:policy/path/x")
	f.Add("arn:aws:iam::1:policy/")
	f.Fuzz(func(t *testing.T, arn string) {
		name, ok := parsePolicyARN(arn)
		if ok && (name == "" || !strings.HasSuffix(arn, "/"+name)) {
			t.Fatalf("parsePolicyARN(%q) = %q, true", arn, name)
		}
	})
}

func FuzzPageOf(f *testing.F) {
	f.Add(10, "", "3")
	f.Add(0, "bWFya2Vy", "1000")
	f.Fuzz(func(t *testing.T, n int, marker, maxItems string) {
		n = max(0, n%2000)
		p := url.Values{"Marker": {marker}, "MaxItems": {maxItems}}
		start, end, next, e := pageOf(p, 0, n, indexKey)
		if e != nil {
			return
		}
		if start < 0 || start > end || end > n || (next != "") != (end < n) {
			t.Fatalf("pageOf(n=%d, %q, %q) = %d, %d, %q", n, marker, maxItems, start, end, next)
		}
	})
}
