package aws

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDenyPolicyRoundTripAndPrune(t *testing.T) {
	now := time.Date(2030, 1, 1, 10, 20, 0, 0, time.UTC)
	var d DenyDoc
	d.Add(DeniedSession{UserID: "AROA1:gl-1", IssuedAt: now.Add(-time.Minute), Until: now.Add(40 * time.Minute)})
	d.Add(DeniedSession{UserID: "AROA1:gl-2", IssuedAt: now, Until: now.Add(2 * time.Hour)})
	d.Add(DeniedSession{UserID: "AROA1:gl-2", IssuedAt: now, Until: now.Add(2 * time.Hour)}) // idempotent
	doc, err := d.Render(DefaultDenyBudget)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"Sid":"KeyferryRevokedUntil2030010111Issued` + fmt.Sprint(now.Add(-time.Minute).Unix()) + `"`, `"Sid":"KeyferryRevokedUntil2030010113Issued`, `"aws:userid":["AROA1:gl-1"]`, `"Effect":"Deny"`, `"Action":"*"`} {
		if !strings.Contains(doc, want) {
			t.Errorf("policy lacks %s:\n%s", want, doc)
		}
	}
	if strings.Count(doc, "gl-2") != 1 {
		t.Errorf("duplicate entry:\n%s", doc)
	}
	back, err := ParseDenyPolicy(doc)
	if err != nil {
		t.Fatal(err)
	}
	back.Prune(now.Add(time.Hour)) // 11:20: the 11:00 bucket is over
	doc2, _ := back.Render(DefaultDenyBudget)
	if strings.Contains(doc2, "gl-1") || !strings.Contains(doc2, "gl-2") {
		t.Errorf("after prune:\n%s", doc2)
	}
	back.Prune(now.Add(3 * time.Hour))
	if !back.Empty() {
		t.Error("everything expired but the policy is not empty")
	}
}

// TestDenyPolicyStaysUnderBudget revokes many sessions: the document never
// exceeds the budget, and every revoked session stays denied (explicitly,
// or by the issued-before cutoff).
func TestDenyPolicyStaysUnderBudget(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var d DenyDoc
	issued := map[string]time.Time{}
	var all []DeniedSession
	for i := 0; i < 1000; i++ {
		s := DeniedSession{UserID: fmt.Sprintf("AROAEXAMPLEEXAMPLE12:gl-%06d-group-app", i), IssuedAt: now.Add(time.Duration(i) * time.Minute),
			Until: now.Add(time.Duration(i)*time.Minute + time.Hour)}
		issued[s.UserID] = s.IssuedAt
		all = append(all, s)
		d.Add(s)
		doc, err := d.Render(DefaultDenyBudget)
		if err != nil {
			t.Fatal(err)
		}
		if len(doc) > DefaultDenyBudget {
			t.Fatalf("after %d sessions the policy is %d characters", i+1, len(doc))
		}
	}
	doc, _ := d.Render(DefaultDenyBudget)
	if len(doc) > 10240 {
		t.Fatalf("over IAM's limit: %d", len(doc))
	}
	back, err := ParseDenyPolicy(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		explicit := strings.Contains(doc, `"`+s.UserID+`"`)
		byCutoff := !back.Before.IsZero() && s.IssuedAt.Before(back.Before) && !back.BeforeUntil.Before(s.Until)

		if !explicit && !byCutoff {
			t.Fatalf("session %s (issued %s, until %s) is no longer denied; cutoff %s until %s", s.UserID, s.IssuedAt, s.Until, back.Before, back.BeforeUntil)
		}
	}
	// The cutoff never outlives the sessions it was made for (no 12-hour
	// lock-out of the role).
	if last := all[len(all)-1].Until; back.BeforeUntil.After(last.Add(time.Hour)) {
		t.Errorf("cutoff kept until %s, after the last revoked session ends (%s)", back.BeforeUntil, last)
	}
	if !back.Before.IsZero() && back.Before.After(all[len(all)-1].IssuedAt.Add(time.Second)) {
		t.Errorf("cutoff %s is later than the newest revoked session's issue time", back.Before)
	}
	var p policyDoc
	if err := json.Unmarshal([]byte(doc), &p); err != nil || len(p.Statement) == 0 {
		t.Fatalf("not a policy: %v", err)
	}
}

func TestParseDenyPolicyRefusesForeignStatements(t *testing.T) {
	_, err := ParseDenyPolicy(`{"Version":"2012-10-17","Statement":[{"Sid":"AllowAll","Effect":"Allow","Action":"*","Resource":"*"}]}`)
	if err == nil {
		t.Fatal("a statement keyferry did not write was accepted")
	}
}
