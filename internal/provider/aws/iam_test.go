package aws

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyferry/keyferry/internal/testutil"
)

const (
	testBoundary = "arn:aws:iam::123456789012:policy/keyferry-boundary"
	testPolicy   = "arn:aws:iam::123456789012:policy/ci-deploy"
	awsReadOnly  = "arn:aws:iam::aws:policy/ReadOnlyAccess"
	testInline   = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::ci/*"}]}`
)

// newIAMFake returns a fake IAM that knows the broker's key, with groups
// "ci" and "deployers", a customer boundary and policy, and a role.
func newIAMFake(t testing.TB, opts ...testutil.IAMOption) *testutil.FakeIAM {
	t.Helper()
	base := []testutil.IAMOption{
		testutil.WithIAMKey(testAccessKey, testSecretKey),
		testutil.WithIAMGroups("ci", "deployers"),
		testutil.WithIAMPolicies(testBoundary, testPolicy),
		testutil.WithIAMRoles("deploy"),
	}
	return testutil.NewFakeIAM(t, append(base, opts...)...)
}

// newIAMSetup is a fake IAM (newIAMFake) and a provider on it.
func newIAMSetup(t testing.TB) (*testutil.FakeIAM, *Provider) {
	t.Helper()
	fake := newIAMFake(t)
	return fake, newIAMProvider(t, fake)
}

// newIAMProvider returns a provider whose IAM and STS are the fake, with
// 1ms backoffs.
func newIAMProvider(t testing.TB, fake *testutil.FakeIAM, mod ...func(*Config)) *Provider {
	t.Helper()
	return providerOn(t, fake.URL(), fake.URL(), mod...)
}

func fullSpec(name string) UserSpec {
	return UserSpec{
		UserName:            name,
		Tags:                []Tag{{"keyferry:lease", "l-123"}, {"project", "g/p"}},
		PermissionsBoundary: testBoundary,
		InlinePolicyName:    "session",
		InlinePolicy:        testInline,
		PolicyARNs:          []string{testPolicy, awsReadOnly},
		Groups:              []string{"ci", "deployers"},
	}
}

// rawIAM is an SDK IAM client on the fake, signed with the broker's key,
// without retries: for setting up state and calling IAM naively.
func rawIAM(t testing.TB, fake *testutil.FakeIAM) *iam.Client {
	t.Helper()
	return iam.New(iam.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(fake.URL()),
		Credentials:  credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, ""),
		Retryer:      aws.NopRetryer{},
	})
}

var accessKeyIDRE = regexp.MustCompile(`^AKIA[A-Z0-9]{16}$`)

func TestCreateUserSendsEverythingInOrder(t *testing.T) {
	fake, p := newIAMSetup(t)
	spec := fullSpec("ci-lease-123")

	u, err := p.CreateUser(t.Context(), spec)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}

	wantActions := []string{
		testutil.ActionCreateUser, testutil.ActionPutUserPolicy,
		testutil.ActionAttachUserPolicy, testutil.ActionAttachUserPolicy,
		testutil.ActionAddUserToGroup, testutil.ActionAddUserToGroup,
		testutil.ActionCreateAccessKey,
	}
	if diff := cmp.Diff(wantActions, fake.Actions()); diff != "" {
		t.Fatalf("IAM calls (-want +got):\n%s", diff)
	}
	type sent struct {
		UserName, Path, Boundary, PolicyName, PolicyDocument, PolicyARN, GroupName string
		Tags                                                                       []testutil.IAMTag
	}
	var got []sent
	for _, r := range fake.Requests() {
		got = append(got, sent{r.UserName, r.Path, r.PermissionsBoundary, r.PolicyName, r.PolicyDocument, r.PolicyARN, r.GroupName, r.Tags})
		if r.Status != http.StatusOK {
			t.Errorf("%s: got status %d (%s), want 200", r.Action, r.Status, r.ErrorCode)
		}
		if r.SignedBy != testAccessKey || r.Service != "iam" || r.Region != "us-east-1" {
			t.Errorf("%s: got signature by %q for %s/%s, want %s for iam/us-east-1", r.Action, r.SignedBy, r.Service, r.Region, testAccessKey)
		}
		if v := r.Params.Get("Version"); v != "2010-05-08" {
			t.Errorf("%s: got Version %q, want 2010-05-08", r.Action, v)
		}
	}
	const n = "ci-lease-123"
	want := []sent{
		{UserName: n, Path: "/keyferry/", Boundary: testBoundary, Tags: []testutil.IAMTag{{Key: "keyferry:lease", Value: "l-123"}, {Key: "project", Value: "g/p"}}},
		{UserName: n, PolicyName: "session", PolicyDocument: testInline},
		{UserName: n, PolicyARN: testPolicy},
		{UserName: n, PolicyARN: awsReadOnly},
		{UserName: n, GroupName: "ci"},
		{UserName: n, GroupName: "deployers"},
		{UserName: n},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("parameters sent (-want +got):\n%s", diff)
	}

	state, ok := fake.User(n)
	if !ok {
		t.Fatalf("fake has no user %s", n)
	}
	if len(state.AccessKeys) != 1 {
		t.Fatalf("got %d access keys, want 1", len(state.AccessKeys))
	}
	key := state.AccessKeys[0]
	wantUser := &User{
		UserName: n, UserARN: "arn:aws:iam::123456789012:user/keyferry/" + n, UserID: state.UserID,
		AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey, Created: state.Created,
	}
	if diff := cmp.Diff(wantUser, u); diff != "" {
		t.Errorf("returned user (-want +got):\n%s", diff)
	}
	if !accessKeyIDRE.MatchString(u.AccessKeyID) || len(u.SecretAccessKey) != 40 {
		t.Errorf("got key %q with a %d-char secret, want AKIA + 16 and 40 chars", u.AccessKeyID, len(u.SecretAccessKey))
	}
	if !strings.HasPrefix(u.UserID, "AIDA") {
		t.Errorf("got UserID %q, want AIDA…", u.UserID)
	}
	wantState := testutil.IAMUser{
		UserName: n, Path: "/keyferry/", PermissionsBoundary: testBoundary,
		Tags:             []testutil.IAMTag{{Key: "keyferry:lease", Value: "l-123"}, {Key: "project", Value: "g/p"}},
		InlinePolicies:   map[string]string{"session": testInline},
		AttachedPolicies: []string{testPolicy, awsReadOnly}, // sorted by ARN
		Groups:           []string{"ci", "deployers"},
	}
	if diff := cmp.Diff(wantState, state, cmpopts.IgnoreFields(testutil.IAMUser{}, "ARN", "UserID", "Created", "AccessKeys")); diff != "" {
		t.Errorf("user in IAM (-want +got):\n%s", diff)
	}
}

func TestCreateUserDefaults(t *testing.T) {
	tests := []struct {
		name        string
		spec        UserSpec
		wantActions []string
		wantPath    string
		wantInline  map[string]string
	}{
		{
			name:        "minimal spec: default path, only the key",
			spec:        UserSpec{UserName: "ci-1"},
			wantActions: []string{testutil.ActionCreateUser, testutil.ActionCreateAccessKey},
			wantPath:    "/keyferry/",
		},
		{
			name:        "inline policy without a name gets the default name",
			spec:        UserSpec{UserName: "ci-2", Path: "/ci/jobs/", InlinePolicy: testInline},
			wantActions: []string{testutil.ActionCreateUser, testutil.ActionPutUserPolicy, testutil.ActionCreateAccessKey},
			wantPath:    "/ci/jobs/",
			wantInline:  map[string]string{DefaultInlinePolicyName: testInline},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, p := newIAMSetup(t)
			if _, err := p.CreateUser(t.Context(), tt.spec); err != nil {
				t.Fatalf("CreateUser: %v", err)
			}
			if diff := cmp.Diff(tt.wantActions, fake.Actions()); diff != "" {
				t.Errorf("IAM calls (-want +got):\n%s", diff)
			}
			u, _ := fake.User(tt.spec.UserName)
			if u.Path != tt.wantPath {
				t.Errorf("got path %q, want %q", u.Path, tt.wantPath)
			}
			if diff := cmp.Diff(tt.wantInline, u.InlinePolicies, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("inline policies (-want +got):\n%s", diff)
			}
			if r, _ := fake.Requests()[0], 0; r.PermissionsBoundary != "" || len(r.Tags) != 0 {
				t.Errorf("got boundary %q and tags %v sent, want none", r.PermissionsBoundary, r.Tags)
			}
		})
	}
}

func TestCreateUserRejectsBadSpecLocally(t *testing.T) {
	many := make([]Tag, 51)
	for i := range many {
		many[i] = Tag{Key: "k" + strings.Repeat("x", i), Value: "v"}
	}
	tests := []struct {
		name string
		spec UserSpec
	}{
		{name: "empty name", spec: UserSpec{}},
		{name: "name too long", spec: UserSpec{UserName: strings.Repeat("a", 65)}},
		{name: "name with a slash", spec: UserSpec{UserName: "g/p"}},
		{name: "name with a space", spec: UserSpec{UserName: "ci 1"}},
		{name: "path without trailing slash", spec: UserSpec{UserName: "ci-1", Path: "/keyferry"}},
		{name: "path with a space", spec: UserSpec{UserName: "ci-1", Path: "/a b/"}},
		{name: "policy name without a policy", spec: UserSpec{UserName: "ci-1", InlinePolicyName: "x"}},
		{name: "51 tags", spec: UserSpec{UserName: "ci-1", Tags: many}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, p := newIAMSetup(t)
			_, err := p.CreateUser(t.Context(), tt.spec)
			if got := asError(t, err).Code; got != CodeInvalidRequest {
				t.Errorf("got code %q, want %q", got, CodeInvalidRequest)
			}
			var pe *PartialError
			if errors.As(err, &pe) {
				t.Errorf("got a *PartialError, want a plain *Error: nothing was sent")
			}
			if n := fake.Calls(); n != 0 {
				t.Errorf("got %d IAM calls, want 0", n)
			}
		})
	}
}

// TestCreateUserPartialFailure fails each step in turn: the error names the
// step and what completed, IAM holds exactly what completed, and DeleteUser
// cleans it all up from there.
func TestCreateUserPartialFailure(t *testing.T) {
	const n = "ci-partial"
	all := []Step{
		{Op: StepCreateUser}, {StepPutUserPolicy, "session"},
		{StepAttachUserPolicy, testPolicy}, {StepAttachUserPolicy, awsReadOnly},
		{StepAddUserToGroup, "ci"}, {StepAddUserToGroup, "deployers"},
		{Op: StepCreateAccessKey},
	}
	// passOne lets one call of action through before the next fault applies.
	passOne := func(action string) testutil.IAMFault {
		return testutil.IAMFault{Action: action, Times: 1, Latency: time.Microsecond}
	}
	tests := []struct {
		name       string
		spec       func(*UserSpec)
		faults     []testutil.IAMFault
		completed  int // len(all[:completed]) steps completed
		wantFailed Step
		wantCode   string
		wantUp     string
		mayExist   bool
	}{
		{
			name: "CreateUser denied", faults: []testutil.IAMFault{{Action: testutil.ActionCreateUser, Code: "AccessDenied"}},
			completed: 0, wantFailed: all[0], wantCode: CodeAccessDenied, wantUp: "AccessDenied",
		},
		{
			name: "CreateUser: name taken", faults: []testutil.IAMFault{{Action: testutil.ActionCreateUser, Code: "EntityAlreadyExists"}},
			completed: 0, wantFailed: all[0], wantCode: CodeInvalidRequest, wantUp: "EntityAlreadyExists", mayExist: true,
		},
		{
			name: "CreateUser unavailable after retries", faults: []testutil.IAMFault{{Action: testutil.ActionCreateUser, Code: "ServiceFailure"}},
			completed: 0, wantFailed: all[0], wantCode: CodeUnavailable, wantUp: "ServiceFailure", mayExist: true,
		},
		{
			name: "PutUserPolicy malformed", spec: func(s *UserSpec) { s.InlinePolicy = `{"Version":` },
			completed: 1, wantFailed: all[1], wantCode: CodeInvalidRequest, wantUp: "MalformedPolicyDocument", mayExist: true,
		},
		{
			name: "PutUserPolicy over 2,048 characters", spec: func(s *UserSpec) { s.InlinePolicy = `{"Sid":"` + strings.Repeat("x", 2100) + `"}` },
			completed: 1, wantFailed: all[1], wantCode: CodeInvalidRequest, wantUp: "LimitExceeded", mayExist: true,
		},
		{
			name: "first AttachUserPolicy: no such policy", spec: func(s *UserSpec) { s.PolicyARNs = []string{"arn:aws:iam::123456789012:policy/missing", awsReadOnly} },
			completed: 2, wantFailed: Step{StepAttachUserPolicy, "arn:aws:iam::123456789012:policy/missing"}, wantCode: CodeInvalidRequest, wantUp: "NoSuchEntity", mayExist: true,
		},
		{
			name:      "second AttachUserPolicy denied",
			faults:    []testutil.IAMFault{passOne(testutil.ActionAttachUserPolicy), {Action: testutil.ActionAttachUserPolicy, Code: "AccessDenied"}},
			completed: 3, wantFailed: all[3], wantCode: CodeAccessDenied, wantUp: "AccessDenied", mayExist: true,
		},
		{
			name: "second AddUserToGroup: no such group", spec: func(s *UserSpec) { s.Groups = []string{"ci", "nope"} },
			completed: 5, wantFailed: Step{StepAddUserToGroup, "nope"}, wantCode: CodeInvalidRequest, wantUp: "NoSuchEntity", mayExist: true,
		},
		{
			name: "CreateAccessKey over quota", faults: []testutil.IAMFault{{Action: testutil.ActionCreateAccessKey, Code: "LimitExceeded"}},
			completed: 6, wantFailed: all[6], wantCode: CodeInvalidRequest, wantUp: "LimitExceeded", mayExist: true,
		},
		{
			name: "CreateAccessKey throttled throughout", faults: []testutil.IAMFault{{Action: testutil.ActionCreateAccessKey, Code: "Throttling"}},
			completed: 6, wantFailed: all[6], wantCode: CodeThrottled, wantUp: "Throttling", mayExist: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, p := newIAMSetup(t)
			spec := fullSpec(n)
			if tt.spec != nil {
				tt.spec(&spec)
			}
			for _, f := range tt.faults {
				fake.AddFault(f)
			}

			u, err := p.CreateUser(t.Context(), spec)
			if u != nil {
				t.Fatalf("got user %+v, want nil on failure", u)
			}
			var pe *PartialError
			if !errors.As(err, &pe) {
				t.Fatalf("got error %v (%T), want *PartialError", err, err)
			}
			if pe.Failed != tt.wantFailed {
				t.Errorf("got Failed %v, want %v", pe.Failed, tt.wantFailed)
			}
			if diff := cmp.Diff(all[:tt.completed], pe.Completed, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Completed (-want +got):\n%s", diff)
			}
			if pe.UserName != n {
				t.Errorf("got UserName %q, want %q", pe.UserName, n)
			}
			e := asError(t, err)
			if e.Code != tt.wantCode || e.UpstreamCode != tt.wantUp {
				t.Errorf("got code %q upstream %q, want %q upstream %q", e.Code, e.UpstreamCode, tt.wantCode, tt.wantUp)
			}
			if got := pe.UserMayExist(); got != tt.mayExist {
				t.Errorf("got UserMayExist %v, want %v", got, tt.mayExist)
			}
			if !strings.Contains(err.Error(), tt.wantFailed.String()) {
				t.Errorf("got error text %q, want it to name the step %q", err, tt.wantFailed)
			}

			// IAM holds exactly what completed, for the reconciler to find.
			state, exists := fake.User(n)
			if wantExists := tt.completed > 0; exists != wantExists {
				t.Fatalf("user exists in IAM: got %v, want %v", exists, wantExists)
			}
			if exists {
				var inline, attached, groups int
				for _, st := range pe.Completed {
					switch st.Op {
					case StepPutUserPolicy:
						inline++
					case StepAttachUserPolicy:
						attached++
					case StepAddUserToGroup:
						groups++
					}
				}
				if len(state.AccessKeys) != 0 || len(state.InlinePolicies) != inline || len(state.AttachedPolicies) != attached || len(state.Groups) != groups {
					t.Errorf("got %d keys, %d inline, %d attached, %d groups in IAM; want 0, %d, %d, %d as completed",
						len(state.AccessKeys), len(state.InlinePolicies), len(state.AttachedPolicies), len(state.Groups), inline, attached, groups)
				}
			}

			// DeleteUser cleans up from here, and again.
			fake.ClearFaults()
			for i := range 2 {
				if err := p.DeleteUser(t.Context(), n, nil); err != nil {
					t.Fatalf("DeleteUser #%d: %v", i+1, err)
				}
			}
			if _, ok := fake.User(n); ok {
				t.Errorf("user still exists after DeleteUser")
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestNaiveDeleteUserConflicts shows the fake keeps AWS's rule that a
// DeleteUser-first implementation would trip over.
func TestNaiveDeleteUserConflicts(t *testing.T) {
	fake, p := newIAMSetup(t)
	if _, err := p.CreateUser(t.Context(), fullSpec("ci-naive")); err != nil {
		t.Fatal(err)
	}
	_, err := rawIAM(t, fake).DeleteUser(t.Context(), &iam.DeleteUserInput{UserName: aws.String("ci-naive")})
	if got := apiCode(err); got != "DeleteConflict" {
		t.Fatalf("naive DeleteUser: got %v (code %q), want DeleteConflict", err, got)
	}
	if got := httpStatus(err); got != http.StatusConflict {
		t.Errorf("got HTTP %d, want 409", got)
	}
	if _, ok := fake.User("ci-naive"); !ok {
		t.Fatalf("naive DeleteUser removed the user, want it refused")
	}
}

func TestDeleteUserOrderAndCalls(t *testing.T) {
	fake, p := newIAMSetup(t)
	if _, err := p.CreateUser(t.Context(), fullSpec("ci-del")); err != nil {
		t.Fatal(err)
	}
	fake.Reset()
	if err := p.DeleteUser(t.Context(), "ci-del", nil); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	want := []string{
		testutil.ActionListAccessKeys, testutil.ActionDeleteAccessKey,
		testutil.ActionListUserPolicies, testutil.ActionDeleteUserPolicy,
		testutil.ActionListAttachedUserPolicies, testutil.ActionDetachUserPolicy, testutil.ActionDetachUserPolicy,
		testutil.ActionListGroupsForUser, testutil.ActionRemoveUserFromGroup, testutil.ActionRemoveUserFromGroup,
		testutil.ActionDeleteUser,
	}
	if diff := cmp.Diff(want, fake.Actions()); diff != "" {
		t.Errorf("IAM calls (-want +got):\n%s", diff)
	}
	for _, r := range fake.Requests() {
		if r.Status != http.StatusOK {
			t.Errorf("%s: got status %d (%s), want 200", r.Action, r.Status, r.ErrorCode)
		}
	}
	if len(fake.Users()) != 0 {
		t.Errorf("got users %v left, want none", fake.Users())
	}
}

func TestDeleteUserIsIdempotent(t *testing.T) {
	fake, p := newIAMSetup(t)
	if _, err := p.CreateUser(t.Context(), fullSpec("ci-idem")); err != nil {
		t.Fatal(err)
	}
	if err := p.DeleteUser(t.Context(), "ci-idem", nil); err != nil {
		t.Fatalf("first DeleteUser: %v", err)
	}
	for _, name := range []string{"ci-idem", "never-existed"} {
		fake.Reset()
		if err := p.DeleteUser(t.Context(), name, nil); err != nil {
			t.Errorf("DeleteUser(%s) of a missing user: got %v, want nil", name, err)
		}
		// One call finds out the user is gone.
		if diff := cmp.Diff([]string{testutil.ActionListAccessKeys}, fake.Actions()); diff != "" {
			t.Errorf("IAM calls for a missing user (-want +got):\n%s", diff)
		}
	}
}

// TestDeleteUserToleratesRaces: another worker deleting things (or the
// user) midway makes calls answer NoSuchEntity, which count as done.
func TestDeleteUserToleratesRaces(t *testing.T) {
	tests := []struct {
		name   string
		faults []testutil.IAMFault
	}{
		{name: "key already deleted", faults: []testutil.IAMFault{{Action: testutil.ActionDeleteAccessKey, Times: 1, Code: "NoSuchEntity"}}},
		{name: "policy already detached", faults: []testutil.IAMFault{{Action: testutil.ActionDetachUserPolicy, Times: 2, Code: "NoSuchEntity"}}},
		{name: "group membership already gone", faults: []testutil.IAMFault{{Action: testutil.ActionRemoveUserFromGroup, Times: 1, Code: "NoSuchEntity"}}},
		{name: "user gone at DeleteUser", faults: []testutil.IAMFault{{Action: testutil.ActionDeleteUser, Times: 1, Code: "NoSuchEntity"}}},
		{name: "user gone while listing policies", faults: []testutil.IAMFault{{Action: testutil.ActionListUserPolicies, Times: 1, Code: "NoSuchEntity"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, p := newIAMSetup(t)
			if _, err := p.CreateUser(t.Context(), fullSpec("ci-race")); err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.faults {
				fake.AddFault(f)
			}
			if err := p.DeleteUser(t.Context(), "ci-race", nil); err != nil {
				t.Fatalf("DeleteUser: got %v, want NoSuchEntity to count as done", err)
			}
		})
	}
}

// TestDeleteUserRemovesWhatKeyferryNeverCreates: a human gave the user a
// console password, an MFA device, a signing certificate, an SSH key and a
// CodeCommit credential. The first DeleteUser conflicts; the second pass
// finds and removes them. Without them, none of those calls is made.
func TestDeleteUserRemovesWhatKeyferryNeverCreates(t *testing.T) {
	fake, p := newIAMSetup(t)
	if _, err := p.CreateUser(t.Context(), fullSpec("ci-extras")); err != nil {
		t.Fatal(err)
	}
	if !fake.AddUserExtras("ci-extras", testutil.IAMUserExtras{
		LoginProfile: true, MFADevices: []string{"arn:aws:iam::123456789012:mfa/ci-extras"},
		SigningCertificates: []string{"CERT1"}, SSHPublicKeys: []string{"APKA1"}, ServiceSpecificCredentials: []string{"ACCA1"},
	}) {
		t.Fatal("AddUserExtras: no such user")
	}
	fake.Reset()
	if err := p.DeleteUser(t.Context(), "ci-extras", nil); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, ok := fake.User("ci-extras"); ok {
		t.Fatalf("user still exists")
	}
	counts := map[string]int{}
	for _, a := range fake.Actions() {
		counts[a]++
	}
	for action, want := range map[string]int{
		testutil.ActionDeleteUser: 2, testutil.ActionListAccessKeys: 2, testutil.ActionDeleteLoginProfile: 1,
		testutil.ActionDeactivateMFADevice: 1, testutil.ActionDeleteSigningCertificate: 1,
		testutil.ActionDeleteSSHPublicKey: 1, testutil.ActionDeleteServiceSpecificCredential: 1,
	} {
		if counts[action] != want {
			t.Errorf("got %d %s calls, want %d", counts[action], action, want)
		}
	}

	// A plain keyferry user costs none of those calls.
	if _, err := p.CreateUser(t.Context(), fullSpec("ci-plain")); err != nil {
		t.Fatal(err)
	}
	fake.Reset()
	if err := p.DeleteUser(t.Context(), "ci-plain", nil); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{testutil.ActionDeleteLoginProfile, testutil.ActionListMFADevices, testutil.ActionListSigningCertificates, testutil.ActionListSSHPublicKeys, testutil.ActionListServiceSpecificCredentials} {
		wantCalls(t, fake, a, 0, " (deleting a plain user)")
	}
}

// TestDeleteUserOnPartialServers: AWS-compatible servers implement a
// subset of IAM and answer InvalidAction (400) or 501 for the rest. A list
// action they lack means they have nothing of that kind to remove.
func TestDeleteUserOnPartialServers(t *testing.T) {
	unsupported := func(actions ...string) []testutil.IAMFault {
		var out []testutil.IAMFault
		for i, a := range actions {
			f := testutil.IAMFault{Action: a, Code: "InvalidAction", Message: "Could not find operation " + a + " for version 2010-05-08"}
			if i%2 == 1 {
				f = testutil.IAMFault{Action: a, Status: http.StatusNotImplemented}
			}
			out = append(out, f)
		}
		return out
	}
	tests := []struct {
		name   string
		spec   UserSpec
		faults []testutil.IAMFault
	}{
		{
			// versitygw 1.8: no managed policies, no groups.
			name:   "no ListAttachedUserPolicies or ListGroupsForUser",
			spec:   UserSpec{UserName: "ci-vgw", InlinePolicy: testInline},
			faults: unsupported(testutil.ActionListAttachedUserPolicies, testutil.ActionListGroupsForUser),
		},
		{
			name: "DeleteConflict, then none of the extra kinds exist",
			spec: fullSpec("ci-extras-unsupported"),
			faults: append([]testutil.IAMFault{{Action: testutil.ActionDeleteUser, Times: 1, Code: "DeleteConflict"}},
				unsupported(testutil.ActionDeleteLoginProfile, testutil.ActionListMFADevices, testutil.ActionListSigningCertificates,
					testutil.ActionListSSHPublicKeys, testutil.ActionListServiceSpecificCredentials)...),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, p := newIAMSetup(t)
			if _, err := p.CreateUser(t.Context(), tt.spec); err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.faults {
				fake.AddFault(f)
			}
			if err := p.DeleteUser(t.Context(), tt.spec.UserName, nil); err != nil {
				t.Fatalf("DeleteUser: %v", err)
			}
			if _, ok := fake.User(tt.spec.UserName); ok {
				t.Errorf("user still exists")
			}
		})
	}

	// Access keys are not optional: a server that cannot list them cannot
	// be trusted to have none.
	fake, p := newIAMSetup(t)
	if _, err := p.CreateUser(t.Context(), UserSpec{UserName: "ci-keys"}); err != nil {
		t.Fatal(err)
	}
	fake.SetFault(testutil.IAMFault{Action: testutil.ActionListAccessKeys, Code: "InvalidAction"})
	if e := asError(t, p.DeleteUser(t.Context(), "ci-keys", nil)); e.UpstreamCode != "InvalidAction" {
		t.Errorf("got upstream %q, want InvalidAction from ListAccessKeys", e.UpstreamCode)
	}
}

// knownOf is what a lease records of a user made from spec with key akid.
func knownOf(spec UserSpec, akid string) *UserParts {
	k := &UserParts{AccessKeyIDs: []string{akid}, PolicyARNs: spec.PolicyARNs, Groups: spec.Groups}
	if spec.InlinePolicy != "" {
		k.InlinePolicies = []string{spec.InlinePolicyName}
	}
	return k
}

// TestDeleteUserKnownPartsCallsNoList: with what the lease recorded,
// DeleteUser removes exactly that and the user, listing nothing: three
// calls for a key and an inline policy instead of seven.
func TestDeleteUserKnownPartsCallsNoList(t *testing.T) {
	tests := []struct {
		name string
		spec UserSpec
		want []string
	}{
		{
			name: "key and inline policy",
			spec: UserSpec{UserName: "ci-known", InlinePolicyName: "keyferry", InlinePolicy: testInline},
			want: []string{testutil.ActionDeleteAccessKey, testutil.ActionDeleteUserPolicy, testutil.ActionDeleteUser},
		},
		{
			name: "full",
			spec: fullSpec("ci-known-full"),
			want: []string{
				testutil.ActionDeleteAccessKey, testutil.ActionDeleteUserPolicy,
				testutil.ActionDetachUserPolicy, testutil.ActionDetachUserPolicy,
				testutil.ActionRemoveUserFromGroup, testutil.ActionRemoveUserFromGroup,
				testutil.ActionDeleteUser,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, p := newIAMSetup(t)
			u, err := p.CreateUser(t.Context(), tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			fake.Reset()
			if err := p.DeleteUser(t.Context(), tt.spec.UserName, knownOf(tt.spec, u.AccessKeyID)); err != nil {
				t.Fatalf("DeleteUser: %v", err)
			}
			if diff := cmp.Diff(tt.want, fake.Actions()); diff != "" {
				t.Errorf("IAM calls (-want +got):\n%s", diff)
			}
			if _, ok := fake.User(tt.spec.UserName); ok {
				t.Errorf("user still exists")
			}
		})
	}
}

// TestDeleteUserKnownPartsIsNotTrusted: the recorded parts are a hint.
// Whatever else the user has (a second key, a policy and a group a human
// added, a key the lease never learnt of because issuance stopped before
// CreateAccessKey returned) makes DeleteUser conflict; then everything is
// listed and removed, and the user is gone.
func TestDeleteUserKnownPartsIsNotTrusted(t *testing.T) {
	spec := UserSpec{UserName: "ci-more", InlinePolicyName: "keyferry", InlinePolicy: testInline}
	tests := []struct {
		name  string
		known func(akid string) *UserParts
		add   func(t *testing.T, c *iam.Client)
	}{
		{
			name:  "extra key, policy and group added by hand",
			known: func(akid string) *UserParts { return knownOf(spec, akid) },
			add: func(t *testing.T, c *iam.Client) {
				ctx, user := t.Context(), aws.String(spec.UserName)
				if _, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: user}); err != nil {
					t.Fatal(err)
				}
				if _, err := c.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: user, PolicyArn: aws.String(testPolicy)}); err != nil {
					t.Fatal(err)
				}
				if _, err := c.AddUserToGroup(ctx, &iam.AddUserToGroupInput{UserName: user, GroupName: aws.String("ci")}); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "key unknown to the lease",
			known: func(string) *UserParts {
				k := knownOf(spec, "")
				k.AccessKeyIDs = nil
				return k
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, p := newIAMSetup(t)
			u, err := p.CreateUser(t.Context(), spec)
			if err != nil {
				t.Fatal(err)
			}
			if tt.add != nil {
				tt.add(t, rawIAM(t, fake))
			}
			fake.Reset()
			if err := p.DeleteUser(t.Context(), spec.UserName, tt.known(u.AccessKeyID)); err != nil {
				t.Fatalf("DeleteUser: %v", err)
			}
			if _, ok := fake.User(spec.UserName); ok {
				t.Fatalf("user still exists")
			}
			wantCalls(t, fake, testutil.ActionListAccessKeys, 1, " (the fallback after DeleteConflict)")
			wantCalls(t, fake, testutil.ActionDeleteUser, 2, " (conflict, then success)")
		})
	}
}

// TestDeleteUserKnownPartsToleratesMissing: a user already deleted, or
// parts already removed (a retry, another worker), count as done.
func TestDeleteUserKnownPartsToleratesMissing(t *testing.T) {
	fake, p := newIAMSetup(t)
	spec := fullSpec("ci-gone")
	u, err := p.CreateUser(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	known := knownOf(spec, u.AccessKeyID)
	// A retry after a failure midway: the key and policy are already gone.
	fake.SetFault(testutil.IAMFault{Action: testutil.ActionDetachUserPolicy, Status: http.StatusForbidden, Code: "AccessDenied"})
	if err := p.DeleteUser(t.Context(), spec.UserName, known); err == nil {
		t.Fatal("DeleteUser with DetachUserPolicy denied: got nil, want the error")
	}
	fake.ClearFaults()
	if got, _ := fake.User(spec.UserName); len(got.AccessKeys) != 0 || len(got.InlinePolicies) != 0 || len(got.AttachedPolicies) != 2 {
		t.Fatalf("after the failed attempt: %d keys, %d inline, %d attached; want 0, 0, 2", len(got.AccessKeys), len(got.InlinePolicies), len(got.AttachedPolicies))
	}
	if err := p.DeleteUser(t.Context(), spec.UserName, known); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if _, ok := fake.User(spec.UserName); ok {
		t.Fatalf("user still exists")
	}
	fake.Reset()
	if err := p.DeleteUser(t.Context(), spec.UserName, known); err != nil {
		t.Errorf("deleting a missing user: got %v, want nil", err)
	}
	// One call per recorded part and DeleteUser: 1 key, 1 inline policy,
	// 2 managed policies, 2 groups, then the user.
	if n := len(fake.Requests()); n != 7 {
		t.Errorf("got %d IAM calls for a missing user, want 7", n)
	}
	for _, r := range fake.Requests() {
		if r.ErrorCode != "NoSuchEntity" {
			t.Errorf("%s on a missing user: got %d %s, want NoSuchEntity", r.Action, r.Status, r.ErrorCode)
		}
	}
}

func TestDeleteUserPersistentConflict(t *testing.T) {
	fake, p := newIAMSetup(t)
	if _, err := p.CreateUser(t.Context(), UserSpec{UserName: "ci-stuck"}); err != nil {
		t.Fatal(err)
	}
	fake.SetFault(testutil.IAMFault{Action: testutil.ActionDeleteUser, Code: "DeleteConflict", Message: "Cannot delete entity, must detach all policies first."})
	err := p.DeleteUser(t.Context(), "ci-stuck", nil)
	e := asError(t, err)
	if e.Code != CodeUnavailable || e.UpstreamCode != "DeleteConflict" {
		t.Errorf("got code %q upstream %q, want %q upstream DeleteConflict", e.Code, e.UpstreamCode, CodeUnavailable)
	}
	if !strings.Contains(e.Message, "still refuses DeleteUser on ci-stuck (DeleteConflict)") {
		t.Errorf("got Message %q, want it to say DeleteUser still conflicts", e.Message)
	}
	wantCalls(t, fake, testutil.ActionDeleteUser, 2, " (one retry after re-listing)")
}

func TestIAMThrottling(t *testing.T) {
	tests := []struct {
		name      string
		fault     testutil.IAMFault
		wantCode  string // "" = success
		wantUp    string
		wantCalls int
	}{
		{name: "three throttles are retried", fault: testutil.IAMFault{Action: testutil.ActionCreateUser, Times: 3, Code: "Throttling"}, wantCalls: 4},
		{name: "Throttling throughout", fault: testutil.IAMFault{Action: testutil.ActionCreateUser, Code: "Throttling"}, wantCode: CodeThrottled, wantUp: "Throttling", wantCalls: 4},
		{name: "ThrottlingException", fault: testutil.IAMFault{Action: testutil.ActionCreateUser, Code: "ThrottlingException"}, wantCode: CodeThrottled, wantUp: "ThrottlingException", wantCalls: 4},
		{name: "RequestLimitExceeded", fault: testutil.IAMFault{Action: testutil.ActionCreateUser, Code: "RequestLimitExceeded"}, wantCode: CodeThrottled, wantUp: "RequestLimitExceeded", wantCalls: 4},
		{name: "bare 429", fault: testutil.IAMFault{Action: testutil.ActionCreateUser, Status: http.StatusTooManyRequests}, wantCode: CodeThrottled, wantCalls: 4},
		{name: "ServiceFailure 500", fault: testutil.IAMFault{Action: testutil.ActionCreateUser, Code: "ServiceFailure"}, wantCode: CodeUnavailable, wantUp: "ServiceFailure", wantCalls: 4},
		{name: "bare 503", fault: testutil.IAMFault{Action: testutil.ActionCreateUser, Status: http.StatusServiceUnavailable}, wantCode: CodeUnavailable, wantCalls: 4},
		{name: "ConcurrentModification is retried", fault: testutil.IAMFault{Action: testutil.ActionCreateUser, Times: 2, Code: "ConcurrentModification"}, wantCalls: 3},
		{name: "LimitExceeded is a quota, not throttling", fault: testutil.IAMFault{Action: testutil.ActionCreateUser, Code: "LimitExceeded"}, wantCode: CodeInvalidRequest, wantUp: "LimitExceeded", wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, p := newIAMSetup(t)
			fake.SetFault(tt.fault)
			start := time.Now()
			_, err := p.CreateUser(t.Context(), UserSpec{UserName: "ci-throttle"})
			if took := time.Since(start); took > time.Second {
				t.Errorf("took %v, want well under 1s with 1ms backoffs", took)
			}
			wantCalls(t, fake, testutil.ActionCreateUser, tt.wantCalls, "")
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("got %v, want success after retries", err)
				}
				return
			}
			e := asError(t, err)
			if e.Code != tt.wantCode || e.UpstreamCode != tt.wantUp {
				t.Errorf("got code %q upstream %q, want %q upstream %q", e.Code, e.UpstreamCode, tt.wantCode, tt.wantUp)
			}
			if tt.wantCode == CodeThrottled && (e.RetryAfter < time.Second || e.RetryAfter > 5*time.Second) {
				t.Errorf("got RetryAfter %v, want within 1s–5s", e.RetryAfter)
			}
			if !strings.HasPrefix(e.Message, "AWS IAM ") {
				t.Errorf("got Message %q, want it to name AWS IAM", e.Message)
			}
		})
	}
}

func TestIAMErrorMessages(t *testing.T) {
	const broker = "arn:aws:iam::123456789012:user/keyferry-broker"
	tests := []struct {
		name      string
		run       func(context.Context, *Provider) error
		fault     *testutil.IAMFault
		wantCode  string
		wantMsg   string
		msgHasNot []string
	}{
		{
			name:  "access denied names the IAM operation, not the upstream text",
			fault: &testutil.IAMFault{Action: testutil.ActionAttachUserPolicy, Code: "AccessDenied"},
			run: func(ctx context.Context, p *Provider) error {
				_, err := p.CreateUser(ctx, fullSpec("ci-denied"))
				return err
			},
			wantCode: CodeAccessDenied, wantMsg: "AWS IAM denied AttachUserPolicy on ci-denied (AccessDenied)",
			msgHasNot: []string{broker, "not authorized"},
		},
		{
			name:     "access denied on DeleteUser",
			fault:    &testutil.IAMFault{Action: testutil.ActionListAccessKeys, Code: "AccessDenied"},
			run:      func(ctx context.Context, p *Provider) error { return p.DeleteUser(ctx, "ci-x", nil) },
			wantCode: CodeAccessDenied, wantMsg: "AWS IAM denied ListAccessKeys on ci-x (AccessDenied)",
			msgHasNot: []string{broker},
		},
		{
			name: "name taken",
			run: func(ctx context.Context, p *Provider) error {
				if _, err := p.CreateUser(ctx, UserSpec{UserName: "ci-dup"}); err != nil {
					return err
				}
				_, err := p.CreateUser(ctx, UserSpec{UserName: "CI-DUP"})
				return err
			},
			wantCode: CodeInvalidRequest, wantMsg: "AWS IAM rejected CreateUser on CI-DUP (EntityAlreadyExists): User with name CI-DUP already exists.",
		},
		{
			name: "malformed policy",
			run: func(ctx context.Context, p *Provider) error {
				_, err := p.CreateUser(ctx, UserSpec{UserName: "ci-bad", InlinePolicy: "{"})
				return err
			},
			wantCode: CodeInvalidRequest, wantMsg: "AWS IAM rejected PutUserPolicy on ci-bad (MalformedPolicyDocument): Syntax errors in policy.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, p := newIAMSetup(t)
			if tt.fault != nil {
				fake.SetFault(*tt.fault)
			}
			e := asError(t, tt.run(t.Context(), p))
			if e.Code != tt.wantCode || e.Message != tt.wantMsg {
				t.Errorf("got %q %q, want %q %q", e.Code, e.Message, tt.wantCode, tt.wantMsg)
			}
			for _, s := range tt.msgHasNot {
				if strings.Contains(e.Message, s) {
					t.Errorf("got Message %q, want it without %q", e.Message, s)
				}
			}
			if e.Err == nil {
				t.Errorf("got nil Err, want the SDK error for logs")
			}
		})
	}
}

func TestIAMCallTimeout(t *testing.T) {
	fake := newIAMFake(t)
	p := newIAMProvider(t, fake, func(c *Config) { c.CallTimeout = 200 * time.Millisecond })
	fake.SetFault(testutil.IAMFault{Action: testutil.ActionCreateAccessKey, Hang: true})
	start := time.Now()
	_, err := p.CreateUser(t.Context(), UserSpec{UserName: "ci-hang"})
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v, want about 200ms", took)
	}
	var pe *PartialError
	if !errors.As(err, &pe) || pe.Failed.Op != StepCreateAccessKey || !pe.UserMayExist() {
		t.Fatalf("got %v, want a *PartialError at CreateAccessKey with the user existing", err)
	}
	e := asError(t, err)
	if e.Code != CodeTimeout || e.Message != "AWS IAM did not answer CreateAccessKey on ci-hang within 200ms" {
		t.Errorf("got %q %q, want a timeout naming CreateAccessKey", e.Code, e.Message)
	}

	// The caller going away is the context's error, not an upstream one.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	fake.SetFault(testutil.IAMFault{Hang: true})
	err = p.DeleteUser(ctx, "ci-hang", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want it to wrap context.DeadlineExceeded", err)
	}
	var ae *Error
	if errors.As(err, &ae) {
		t.Errorf("got *Error %q, want the caller's context error", ae.Code)
	}
}

// newWaitFake returns a fake IAM whose new keys become usable delay after
// creation by clock, where each STS probe moves clock on by step: so the
// test needs no sleeping, and the number of probes is exact.
func newWaitFake(t *testing.T, delay, step time.Duration, opts ...testutil.IAMOption) (*testutil.FakeIAM, *testutil.Clock) {
	t.Helper()
	clock := testutil.NewClock(fixedNow)
	hook := func(r *testutil.IAMRequest) error {
		if r.Action == testutil.ActionGetCallerIdentity {
			clock.Advance(step)
		}
		return nil
	}
	base := []testutil.IAMOption{testutil.WithIAMClock(clock.Now), testutil.WithIAMKeyDelay(delay), testutil.WithIAMHook(hook)}
	return newIAMFake(t, append(base, opts...)...), clock
}

func TestWaitUsable(t *testing.T) {
	fake, clock := newWaitFake(t, 10*time.Second, time.Second)
	p := newIAMProvider(t, fake)
	u, err := p.CreateUser(t.Context(), UserSpec{UserName: "ci-wait"})
	if err != nil {
		t.Fatal(err)
	}
	created := clock.Now()
	start := time.Now()
	if err := p.WaitUsable(t.Context(), u.AccessKeyID, u.SecretAccessKey, 3, time.Millisecond); err != nil {
		t.Fatalf("WaitUsable: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v, want a fast loop with 1ms intervals", took)
	}
	// Probes at +1s … +9s fail (the hook advances the clock before the
	// check), +10s, +11s, +12s succeed.
	var ok, failed int
	for _, r := range fake.STS().Requests() {
		switch {
		case r.Status == http.StatusOK:
			ok++
		case r.ErrorCode == "InvalidClientTokenId" && r.Status == http.StatusForbidden:
			failed++
		default:
			t.Errorf("got probe answered %d %s, want 200 or 403 InvalidClientTokenId", r.Status, r.ErrorCode)
		}
		if r.AccessKeyID != u.AccessKeyID {
			t.Errorf("got probe signed by %q, want the new key %q", r.AccessKeyID, u.AccessKeyID)
		}
	}
	if failed != 9 || ok != 3 {
		t.Errorf("got %d failed and %d good probes, want 9 and 3", failed, ok)
	}
	if got, want := clock.Now().Sub(created), 12*time.Second; got != want {
		t.Errorf("fake clock moved %v, want %v", got, want)
	}
	if p.created.Load() != 1 {
		t.Errorf("got %d STS clients, want 1: probes reuse the default client", p.created.Load())
	}
}

func TestWaitUsableCountsConsecutiveSuccesses(t *testing.T) {
	var probes atomic.Int32
	flaky := func(r *testutil.IAMRequest) error {
		if r.Action == testutil.ActionGetCallerIdentity && probes.Add(1) == 3 {
			return &testutil.QueryError{Status: http.StatusForbidden, Code: "InvalidClientTokenId", Message: "The security token included in the request is invalid."}
		}
		return nil
	}
	fake := newIAMFake(t, testutil.WithIAMHook(flaky))
	p := newIAMProvider(t, fake)
	u, err := p.CreateUser(t.Context(), UserSpec{UserName: "ci-flaky"})
	if err != nil {
		t.Fatal(err)
	}
	// ok, ok, fail, ok, ok, ok: three in a row only after the sixth.
	if err := p.WaitUsable(t.Context(), u.AccessKeyID, u.SecretAccessKey, 3, time.Millisecond); err != nil {
		t.Fatalf("WaitUsable: %v", err)
	}
	if got := probes.Load(); got != 6 {
		t.Errorf("got %d probes, want 6", got)
	}
}

func TestWaitUsableHonoursContext(t *testing.T) {
	tests := []struct {
		name     string
		secret   func(u *User) string
		deleted  bool
		ctx      func(t *testing.T) context.Context
		wantErr  error
		wantCode string // "" = the context error only
		wantUp   string
	}{
		{
			name:    "key never usable within the deadline",
			secret:  func(u *User) string { return u.SecretAccessKey },
			ctx:     deadlineIn(100 * time.Millisecond),
			wantErr: context.DeadlineExceeded, wantCode: CodeTimeout, wantUp: "InvalidClientTokenId",
		},
		{
			name:    "caller cancels",
			secret:  func(u *User) string { return u.SecretAccessKey },
			ctx:     cancelledIn(50 * time.Millisecond),
			wantErr: context.Canceled,
		},
		{
			name:    "wrong secret never works",
			secret:  func(*User) string { return strings.Repeat("x", 40) },
			ctx:     deadlineIn(100 * time.Millisecond),
			wantErr: context.DeadlineExceeded, wantCode: CodeTimeout, wantUp: "SignatureDoesNotMatch",
		},
		{
			name:    "deleted key never works",
			secret:  func(u *User) string { return u.SecretAccessKey },
			deleted: true,
			ctx:     deadlineIn(100 * time.Millisecond),
			wantErr: context.DeadlineExceeded, wantCode: CodeTimeout, wantUp: "InvalidClientTokenId",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			delay := time.Hour
			if tt.deleted || tt.name == "wrong secret never works" {
				delay = 0
			}
			fake, _ := newWaitFake(t, delay, time.Second)
			p := newIAMProvider(t, fake)
			u, err := p.CreateUser(t.Context(), UserSpec{UserName: "ci-ctx"})
			if err != nil {
				t.Fatal(err)
			}
			if tt.deleted {
				if err := p.DeleteAccessKey(t.Context(), u.UserName, u.AccessKeyID); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			err = p.WaitUsable(tt.ctx(t), u.AccessKeyID, tt.secret(u), 1, 5*time.Millisecond)
			if took := time.Since(start); took > time.Second {
				t.Errorf("took %v, want WaitUsable to end with its context", took)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want it to wrap %v", err, tt.wantErr)
			}
			var e *Error
			isErr := errors.As(err, &e)
			if tt.wantCode == "" {
				if isErr {
					t.Errorf("got *Error %q, want only the context error", e.Code)
				}
				return
			}
			if !isErr || e.Code != tt.wantCode || e.UpstreamCode != tt.wantUp {
				t.Fatalf("got %v, want *Error %s upstream %s", err, tt.wantCode, tt.wantUp)
			}
			if !strings.Contains(e.Message, u.AccessKeyID) || strings.Contains(e.Message, u.SecretAccessKey) {
				t.Errorf("got Message %q, want it to name the key id and never the secret", e.Message)
			}
		})
	}
}

func TestListUsers(t *testing.T) {
	fake := newIAMFake(t, testutil.WithIAMMaxPageSize(3))
	p := newIAMProvider(t, fake)
	var want []UserInfo
	for i := range 8 {
		name := "ci-" + string(rune('a'+i))
		spec := UserSpec{UserName: name, Tags: []Tag{{"keyferry:lease", "l-" + name}}}
		if i%3 == 2 {
			spec.Path = "/other/"
		}
		if _, err := p.CreateUser(t.Context(), spec); err != nil {
			t.Fatal(err)
		}
		if spec.Path == "" {
			st, _ := fake.User(name)
			want = append(want, UserInfo{
				UserName: name, Path: "/keyferry/", UserARN: st.ARN, UserID: st.UserID, Created: st.Created,
				Tags: map[string]string{"keyferry:lease": "l-" + name},
			})
		}
	}
	// A nested path is under the prefix too.
	if _, err := p.CreateUser(t.Context(), UserSpec{UserName: "ci-nested", Path: "/keyferry/deep/"}); err != nil {
		t.Fatal(err)
	}
	st, _ := fake.User("ci-nested")
	want = append(want, UserInfo{UserName: "ci-nested", Path: "/keyferry/deep/", UserARN: st.ARN, UserID: st.UserID, Created: st.Created, Tags: map[string]string{}})

	fake.Reset()
	got, err := p.ListUsers(t.Context(), DefaultUserPath)
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b UserInfo) bool { return a.UserName < b.UserName })); diff != "" {
		t.Errorf("users (-want +got):\n%s", diff)
	}
	// 7 users at 3 per page: 3 pages; one ListUserTags each.
	wantCalls(t, fake, testutil.ActionListUsers, 3, " (pages)")
	wantCalls(t, fake, testutil.ActionListUserTags, len(want), "")
	for _, r := range fake.Requests() {
		if r.Action == testutil.ActionListUsers && r.Params.Get("PathPrefix") != DefaultUserPath {
			t.Errorf("got PathPrefix %q, want %q", r.Params.Get("PathPrefix"), DefaultUserPath)
		}
	}

	other, err := p.ListUsers(t.Context(), "/other/")
	if err != nil || len(other) != 2 {
		t.Errorf("ListUsers(/other/): got %d users, %v; want 2", len(other), err)
	}
}

func TestListUsersWithoutTagSupport(t *testing.T) {
	fake, p := newIAMSetup(t)
	for _, n := range []string{"ci-1", "ci-2", "ci-3"} {
		if _, err := p.CreateUser(t.Context(), UserSpec{UserName: n, Tags: []Tag{{"a", "b"}}}); err != nil {
			t.Fatal(err)
		}
	}
	fake.Reset()
	fake.SetFault(testutil.IAMFault{Action: testutil.ActionListUserTags, Code: "InvalidAction", Message: "Could not find operation ListUserTags"})
	got, err := p.ListUsers(t.Context(), DefaultUserPath)
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d users, want 3", len(got))
	}
	for _, u := range got {
		if u.Tags != nil {
			t.Errorf("got tags %v for %s, want nil (unknown)", u.Tags, u.UserName)
		}
	}
	wantCalls(t, fake, testutil.ActionListUserTags, 1, ": once unsupported, not asked again")
}

func TestListUsersRefusesEmptyPrefix(t *testing.T) {
	fake, p := newIAMSetup(t)
	for _, prefix := range []string{"", "keyferry/"} {
		_, err := p.ListUsers(t.Context(), prefix)
		if got := asError(t, err).Code; got != CodeInvalidRequest {
			t.Errorf("ListUsers(%q): got code %q, want %q", prefix, got, CodeInvalidRequest)
		}
	}
	if fake.Calls() != 0 {
		t.Errorf("got %d IAM calls, want 0", fake.Calls())
	}
}

func TestDeleteAccessKey(t *testing.T) {
	fake, p := newIAMSetup(t)
	u, err := p.CreateUser(t.Context(), UserSpec{UserName: "ci-rotate"})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct{ user, key string }{
		{u.UserName, u.AccessKeyID},              // deletes it
		{u.UserName, u.AccessKeyID},              // already gone
		{"no-such-user", "AKIATESTNOSUCHKEY000"}, // no user
	} {
		if err := p.DeleteAccessKey(t.Context(), c.user, c.key); err != nil {
			t.Errorf("call %d: DeleteAccessKey(%s, %s): %v", i, c.user, c.key, err)
		}
	}
	if st, _ := fake.User("ci-rotate"); len(st.AccessKeys) != 0 {
		t.Errorf("got %d keys, want 0", len(st.AccessKeys))
	}
	fake.SetFault(testutil.IAMFault{Action: testutil.ActionDeleteAccessKey, Code: "AccessDenied"})
	if got := asError(t, p.DeleteAccessKey(t.Context(), u.UserName, u.AccessKeyID)).Code; got != CodeAccessDenied {
		t.Errorf("got code %q, want %q", got, CodeAccessDenied)
	}
}

func TestIAMConfig(t *testing.T) {
	fake := newIAMFake(t)
	p := newIAMProvider(t, fake, func(c *Config) { c.Region = "eu-west-1" })
	client := p.iam // made by New
	if _, err := p.CreateUser(t.Context(), UserSpec{UserName: "ci-region"}); err != nil {
		t.Fatal(err)
	}
	if err := p.DeleteUser(t.Context(), "ci-region", nil); err != nil {
		t.Fatal(err)
	}
	if r, _ := fake.LastRequest(); r.Region != DefaultIAMRegion {
		t.Errorf("got IAM signed for %q, want %q whatever the STS region", r.Region, DefaultIAMRegion)
	}
	p2 := newIAMProvider(t, fake, func(c *Config) { c.IAMRegion = "cn-north-1" })
	if _, err := p2.CreateUser(t.Context(), UserSpec{UserName: "ci-region-2"}); err != nil {
		t.Fatal(err)
	}
	if r, _ := fake.LastRequest(); r.Region != "cn-north-1" {
		t.Errorf("got IAM signed for %q, want cn-north-1", r.Region)
	}
	if client == nil || p.iam != client {
		t.Errorf("IAM client %p after two calls, want the one New made (%p): one IAM client per provider", p.iam, client)
	}
	if p.created.Load() != 1 {
		t.Errorf("got %d STS clients after IAM calls, want 1", p.created.Load())
	}
	_, err := New(t.Context(), Config{Region: "us-east-1", IAMRegion: "not a region", Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
	if err == nil {
		t.Errorf("New with an invalid IAMRegion: got nil error")
	}
}

func TestIAMLogsNeverCarrySecrets(t *testing.T) {
	var logs testutil.SyncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fake := newIAMFake(t)
	p := newIAMProvider(t, fake, func(c *Config) { c.Logger = logger })

	u, err := p.CreateUser(t.Context(), fullSpec("ci-logs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitUsable(t.Context(), u.AccessKeyID, u.SecretAccessKey, 2, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	fake.SetFault(testutil.IAMFault{Action: testutil.ActionCreateAccessKey, Code: "AccessDenied"})
	if _, err := p.CreateUser(t.Context(), fullSpec("ci-logs-2")); err == nil {
		t.Fatal("got nil error, want AccessDenied")
	}
	fake.ClearFaults()
	if err := p.DeleteUser(t.Context(), "ci-logs", nil); err != nil {
		t.Fatal(err)
	}

	out := logs.String()
	for _, want := range []string{u.AccessKeyID, `"iam_user":"ci-logs"`, `"step":"CreateAccessKey"`, `"upstream_code":"AccessDenied"`, "iam user deleted"} {
		if !strings.Contains(out, want) {
			t.Errorf("got logs without %q, want it", want)
		}
	}
	for name, secret := range map[string]string{"user secret": u.SecretAccessKey, "broker secret": testSecretKey} {
		if strings.Contains(out, secret) {
			t.Errorf("got the %s in the logs, want it never logged", name)
		}
	}
}
