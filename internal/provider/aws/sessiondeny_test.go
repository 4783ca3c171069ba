package aws

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDenySessionAgainstFakeIAM: the deny statement appears on the role,
// accumulates, stays under the size limit with many revocations, and is
// removed once every denied session would have expired.
func TestDenySessionAgainstFakeIAM(t *testing.T) {
	fake, p := newIAMSetup(t)
	ctx := t.Context()
	const arn = "arn:aws:iam::123456789012:role/deploy"
	soon := time.Now().Add(2 * time.Second)
	if err := p.DenySession(ctx, arn, "AROAEXAMPLE:gl-1-group-app", time.Now(), soon); err != nil {
		t.Fatal(err)
	}
	doc, ok := fake.RolePolicy("deploy", DenyPolicyName)
	if !ok || !strings.Contains(doc, `"AROAEXAMPLE:gl-1-group-app"`) || !strings.Contains(doc, `"Effect":"Deny"`) {
		t.Fatalf("role policy %q (present %v)", doc, ok)
	}
	// Many revocations: the policy stays within IAM's 10,240 characters
	// (the fake refuses more with LimitExceeded).
	for i := 0; i < 300; i++ {
		if err := p.DenySession(ctx, arn, fmt.Sprintf("AROAEXAMPLE:gl-%06d-group/app-with-a-longish-name", i), time.Now(), time.Now().Add(time.Duration(i%12+1)*time.Hour)); err != nil {
			t.Fatalf("revocation %d: %v", i, err)
		}
	}
	doc, _ = fake.RolePolicy("deploy", DenyPolicyName)
	if len(doc) > DefaultDenyBudget {
		t.Fatalf("policy is %d characters", len(doc))
	}
	if !strings.Contains(doc, "aws:TokenIssueTime") {
		t.Errorf("300 sessions should have collapsed into an issued-before cutoff:\n%.300s", doc)
	}
	// A role whose policy only holds expired entries loses it.
	fake2 := newIAMFake(t)
	p2 := newIAMProvider(t, fake2)
	if err := p2.DenySession(ctx, arn, "AROAEXAMPLE:gl-2", time.Now().Add(-3*time.Hour), time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, ok := fake2.RolePolicy("deploy", DenyPolicyName); ok {
		t.Error("an already expired session was written")
	}
	if err := p2.DenySession(ctx, arn, "AROAEXAMPLE:gl-3", time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	empty, err := p2.PruneDeniedSessions(ctx, arn)
	if err != nil || empty {
		t.Fatalf("prune with a live entry: empty %v, %v", empty, err)
	}
}

func TestDenySessionRefusesHandEditedPolicy(t *testing.T) {
	_, p := newIAMSetup(t)
	const arn = "arn:aws:iam::123456789012:role/deploy"
	if err := p.DenySession(t.Context(), arn, "AROAEXAMPLE:gl-1", time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Someone adds their own statement to keyferry's policy.
	if _, err := p.iam.PutRolePolicy(t.Context(), putRolePolicyInput("deploy", DenyPolicyName,
		`{"Version":"2012-10-17","Statement":[{"Sid":"Mine","Effect":"Deny","Action":"s3:*","Resource":"*"}]}`)); err != nil {
		t.Fatal(err)
	}
	err := p.DenySession(t.Context(), arn, "AROAEXAMPLE:gl-2", time.Now(), time.Now().Add(time.Hour))
	if err == nil || !strings.Contains(err.Error(), "changed by hand") {
		t.Fatalf("got %v, want a refusal to overwrite a hand-edited policy", err)
	}
}

// TestDenySessionRefusesAnotherAccountsRole: the broker's credentials must
// not edit a same-named role of its own account.
func TestDenySessionRefusesAnotherAccountsRole(t *testing.T) {
	fake, p := newIAMSetup(t)
	arn, err := p.CallerIdentity(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	mine := accountOfARN(arn)
	other := "999999999999"
	if mine == other || mine == "" {
		t.Fatalf("the fake's account is %q", mine)
	}
	err = p.DenySession(t.Context(), "arn:aws:iam::"+other+":role/deploy", "AROAEXAMPLE:gl-1", time.Now(), time.Now().Add(time.Hour))
	if err == nil || !strings.Contains(err.Error(), "belong to account") {
		t.Fatalf("got %v, want a refusal naming the accounts", err)
	}
	if _, ok := fake.RolePolicy("deploy", DenyPolicyName); ok {
		t.Error("the broker's own role was edited")
	}
}
