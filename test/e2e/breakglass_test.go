//go:build e2e

// Break glass and the leaked-key runbook (docs/runbooks/leaked-credentials.md)
// against SeaweedFS, with both kinds of lease: iam_user (keyferry deletes
// the user) and assume_role (an STS session, which nothing upstream can
// end early on SeaweedFS: it has no PutRolePolicy for early_revocation).

package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/test/e2e/peers"
)

// bgSTSRoleYAML binds jobs of group/a and group/b to SeaweedFS's ci-role.
const bgSTSRoleYAML = `name: bg-sts
issuer: dev
match:
  project_path: [group/a, group/b]
  ref_protected: "true"
aws:
  type: assume_role
  role_arn: arn:aws:iam::000000000000:role/ci-role
  session_name: "bg-{project_path}-{job_id}"
  ttl: 1h
`

// bgLease is one job's credentials and the lease behind them.
type bgLease struct {
	project, kind string // kind: iam_user or assume_role
	env           []string
	lease         iamLeaseJSON
}

// TestLeaseBreakGlass: two projects hold leases of both kinds. `keyferry
// lease revoke --project group/a --yes` revokes exactly group/a's leases:
// its IAM users are deleted and their keys refused; its STS session is
// marked revoked (and, as documented, keeps working upstream until it
// expires); group/b's credentials keep working. The audit log has one
// operator revoke per revoked lease (plus, for an IAM user, the event of
// its deletion) and none for group/b. Then the leak runbook on one of
// group/b's keys: `lease list --access-key-id K` finds its lease, `lease
// revoke --access-key-id K --yes` ends it and nothing else.
func TestLeaseBreakGlass(t *testing.T) {
	requireExecutable(t, peers.AWSCLIv2Path, "install it with `scripts/peers.sh clients`")
	p := seaweedIAMPeer(getBrokerPeers(t).sw)
	b := startIAMBroker(t, p, "", "", "")
	// SeaweedFS accepts a new key at once: no probe (TestIAMUserLifecycle
	// covers wait_until_usable).
	iu := iamRoleSpec{Name: "bg-user", UserPrefix: "kfbg-", Projects: []string{"group/a", "group/b"}, Bucket: kfCIBucket, TTL: "10m", NoWait: true}
	b.writeRole(t, iu.yaml())
	b.writeRole(t, bgSTSRoleYAML)

	var all []bgLease
	job := 700
	get := func(project, kind string) bgLease {
		t.Helper()
		job++
		tok := b.devToken(t, "--project", project, "--job-id", strconv.Itoa(job), "--pipeline-id", "70")
		l := bgLease{project: project, kind: kind}
		switch kind {
		case "iam_user":
			c := b.iamJobCreds(t, iu.Name, tok)
			l.env, l.lease = c.Env, b.leaseByKey(t, c.AccessKeyID)
		case "assume_role":
			c := b.credsAsJSON(t, "bg-sts", tok)
			l.env, l.lease = jsonEnv(t, c), b.leaseByKey(t, c.Credentials.AccessKeyID)
		}
		if l.lease.Type != kind || l.lease.Identity.Project != project || l.lease.State != "active" {
			t.Fatalf("lease %s: got %s %s %s, want an active %s lease of %s", l.lease.ID, l.lease.Type, l.lease.Identity.Project, l.lease.State, kind, project)
		}
		all = append(all, l)
		return l
	}
	a1, a2, aSTS := get("group/a", "iam_user"), get("group/a", "iam_user"), get("group/a", "assume_role")
	b1, bSTS := get("group/b", "iam_user"), get("group/b", "assume_role")
	for _, l := range all {
		p.requirePutOK(t, l.project+" "+l.kind+" before break glass", l.env, kfCIBucket, "bg/"+l.lease.ID)
	}

	// --dry-run lists group/a's three leases and revokes nothing.
	res := b.admin(t, "lease", "revoke", "--project", "group/a", "--dry-run")
	if got := strings.TrimSpace(res.Stderr); got != "3 live lease(s) match" {
		t.Errorf("revoke --project group/a --dry-run: stderr %q, want %q", got, "3 live lease(s) match")
	}
	for _, l := range []bgLease{a1, a2, aSTS} {
		if !strings.Contains(res.Stdout, l.lease.ID) {
			t.Errorf("revoke --dry-run does not list %s", l.lease.ID)
		}
	}
	if ls := b.iamLeases(t, "--state", "active"); len(ls) != 5 {
		t.Errorf("after --dry-run: %d active leases, want all 5", len(ls))
	}

	// Break glass.
	res = b.admin(t, "lease", "revoke", "--project", "group/a", "--yes", "--reason", "runner compromise")
	if first := strings.SplitN(res.Stdout, "\n", 2)[0]; first != "revoked 3 lease(s)" {
		t.Errorf("revoke --project group/a --yes: got %q, want %q", first, "revoked 3 lease(s)")
	}
	for _, l := range []bgLease{b1, bSTS} {
		if strings.Contains(res.Stdout, l.lease.ID) {
			t.Errorf("break glass on group/a lists group/b's lease %s", l.lease.ID)
		}
	}
	// The IAM deletions are queued, not awaited: they drain within seconds.
	for _, l := range []bgLease{a1, a2} {
		p.waitUserGone(t, l.lease.UserName, 10*time.Second)
		p.requirePutRefused(t, "group/a's IAM user key after break glass", l.env, kfCIBucket, "bg/"+l.lease.ID+"-after", codeDeletedKey)
	}
	if _, ok := p.users(t, "kfbg-")[b1.lease.UserName]; !ok {
		t.Fatalf("break glass on group/a deleted group/b's user %s", b1.lease.UserName)
	}
	for _, l := range []bgLease{a1, a2, aSTS} {
		if got := b.iamLease(t, l.lease.ID); got.State != "revoked" || !isAdminActor(got.RevokedBy) || !strings.Contains(got.RevokeNote, "reason: runner compromise") {
			t.Errorf("lease %s after break glass: state %q revoked_by %q note %q, want revoked by the admin with the reason", l.lease.ID, got.State, got.RevokedBy, got.RevokeNote)
		}
	}
	// Documented limit (docs/leases.md): an STS session without
	// early_revocation stays valid upstream until it expires.
	if got := b.iamLease(t, aSTS.lease.ID); !strings.Contains(got.RevokeNote, "STS sessions cannot be deleted") {
		t.Errorf("revoked STS lease: note %q, want it to say the session stays valid upstream", got.RevokeNote)
	}
	p.requirePutOK(t, "group/a's STS session after break glass (documented: valid until it expires)", aSTS.env, kfCIBucket, "bg/"+aSTS.lease.ID+"-after")
	for _, l := range []bgLease{b1, bSTS} {
		p.requirePutOK(t, "group/b "+l.kind+" after group/a's break glass", l.env, kfCIBucket, "bg/"+l.lease.ID+"-after")
		if got := b.iamLease(t, l.lease.ID); got.State != "active" {
			t.Errorf("group/b's lease %s after group/a's break glass: %s, want active", l.lease.ID, got.State)
		}
	}

	// The audit log: one operator revoke per group/a lease, carrying the
	// reason; for the IAM users also the deletion; nothing for group/b.
	evs := b.auditEvents(t)
	for _, l := range []bgLease{a1, a2, aSTS} {
		operatorRevokeEvent(t, evs, b.iamLease(t, l.lease.ID), "runner compromise")
		want := 1
		if l.kind == "iam_user" {
			want = 2
			deletedEvent(t, evs, l.lease, isAdminActor)
		}
		if n := len(eventsOf(evs, "revoke", l.lease.ID)); n != want {
			t.Errorf("%s lease %s: %d revoke events, want %d", l.kind, l.lease.ID, n, want)
		}
	}
	for _, l := range []bgLease{b1, bSTS} {
		if rs := eventsOf(evs, "revoke", l.lease.ID); len(rs) != 0 {
			t.Errorf("group/b's lease %s has %d revoke events after group/a's break glass", l.lease.ID, len(rs))
		}
	}

	// The leak runbook, step 1: find the lease of a key, in the table the
	// operator reads.
	res = b.admin(t, "lease", "list", "--access-key-id", b1.lease.AccessKeyID)
	rows := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	if len(rows) != 2 || !strings.HasPrefix(rows[0], "ID") {
		t.Fatalf("lease list --access-key-id %s: got %q, want a header and one row", b1.lease.AccessKeyID, res.Stdout)
	}
	if f := strings.Fields(rows[1]); len(f) < 7 || f[0] != b1.lease.ID || f[1] != iu.Name || f[2] != "active" || f[3] != "group/b" || f[6] != b1.lease.AccessKeyID {
		t.Errorf("lease list --access-key-id row: got %q, want %s %s active group/b … %s", rows[1], b1.lease.ID, iu.Name, b1.lease.AccessKeyID)
	}
	if got := b.leaseByKey(t, bSTS.lease.AccessKeyID); got.ID != bSTS.lease.ID {
		t.Errorf("lease list --access-key-id of the STS key: got lease %s, want %s", got.ID, bSTS.lease.ID)
	}
	// Step 2: cut it off by key.
	res = b.admin(t, "lease", "revoke", "--access-key-id", b1.lease.AccessKeyID, "--yes", "--reason", "key in job log")
	if first := strings.SplitN(res.Stdout, "\n", 2)[0]; first != "revoked 1 lease(s)" || !strings.Contains(res.Stdout, b1.lease.ID) {
		t.Errorf("revoke --access-key-id --yes: got %q, want %q listing %s", res.Stdout, "revoked 1 lease(s)", b1.lease.ID)
	}
	p.waitUserGone(t, b1.lease.UserName, 10*time.Second)
	p.requirePutRefused(t, "the leaked key after revoke --access-key-id", b1.env, kfCIBucket, "bg/"+b1.lease.ID+"-leaked", codeDeletedKey)
	p.requirePutOK(t, "group/b's other credentials after the leaked key's revocation", bSTS.env, kfCIBucket, "bg/"+bSTS.lease.ID+"-leak")
	// Step 4: verify. The lease is still found by its key, now revoked.
	if got := b.leaseByKey(t, b1.lease.AccessKeyID); got.ID != b1.lease.ID || got.State != "revoked" {
		t.Errorf("lease list --access-key-id after the revoke: got %s %s, want %s revoked", got.ID, got.State, b1.lease.ID)
	}
	operatorRevokeEvent(t, b.auditEvents(t), b.iamLease(t, b1.lease.ID), "key in job log")
	if ls := b.iamLeases(t, "--state", "active"); len(ls) != 1 || ls[0].ID != bSTS.lease.ID {
		t.Errorf("active leases at the end: got %d, want only group/b's STS lease %s", len(ls), bSTS.lease.ID)
	}
	if left := p.users(t, "kfbg-"); len(left) != 0 {
		t.Errorf("IAM users left: %v", mapKeysSorted(left))
	}
	auditVerify(t, b)
}
