//go:build e2e

// Crash safety of iam_user issuance (docs/leases.md, "write-ahead"): a
// burst of issuances against SeaweedFS, the broker killed with SIGKILL at
// a chosen moment, then restarted on the same bolt store and audit log.
// Whatever moment the kill hits, once the restarted broker has reconciled:
//   - every credential a client received belongs to an active lease that
//     names that key, and the key still works in S3 (a received key is
//     never reclaimed);
//   - no IAM user of the role is left without a live lease (SeaweedFS
//     ignores IAM paths, so users are matched by the role's name prefix);
//   - no lease is left pending, revoking or irrevocable;
//   - the audit log verifies, and has exactly one issue event per active
//     lease and none for a reclaimed one.

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyferry/keyferry/test/e2e/peers"
)

// Burst shape: 500 issuances from 16 concurrent clients (each a job
// POSTing /v1/creds with its own token).
const (
	crashBurst   = 500
	crashClients = 16
	crashProject = "group/crash"
)

// crashLeasesConfig: revocations drain fast (the reconciler has hundreds
// to do), and the orphan sweep's grace is short so that `lease
// sweep-orphans` would act on anything it sees.
const crashLeasesConfig = "  revocation_workers: 16\n  revocations_per_second: 500\n  orphan_grace: 1s\n"

// crashRun is one burst against one broker.
type crashRun struct {
	t     *testing.T
	p     iamPeer
	proxy *iamProxy
	b     *broker

	killOnce  sync.Once
	killed    chan struct{}
	killedAt  time.Time
	killWhy   string
	inFlight  map[string]int // IAM calls in flight at the peer when the kill came
	afterKill func()         // runs once the proxy is idle after the kill
	heldNotes string         // what became of calls the proxy held

	issued   atomic.Int64 // POSTs sent
	received atomic.Int64 // 200s with credentials
	mu       sync.Mutex
	creds    []receivedCreds
}

type receivedCreds struct {
	Job                          string
	LeaseID, AccessKeyID, Secret string
}

// kill sends SIGKILL to the broker once and records why.
func (r *crashRun) kill(why string) {
	r.killOnce.Do(func() {
		r.killedAt, r.killWhy = time.Now(), why
		r.inFlight = r.proxy.inFlight()
		if err := r.b.Cmd.Process.Kill(); err != nil {
			r.t.Errorf("kill -9 the broker: %v", err)
		}
		close(r.killed)
	})
}

// crashMoment arms the kill: it installs proxy hooks or returns a
// function the clients call after each received credential.
type crashMoment struct {
	name, prefix, doc string
	arm               func(r *crashRun) (onReceived func(n int64))
	// killDuringRevocation: the clean-up (break glass on the role) is
	// itself killed a third of the way through its IAM deletions, and
	// must resume after a restart.
	killDuringRevocation bool
}

// TestIAMUserCrashSafety kills the broker with SIGKILL in the middle of a
// burst of iam_user issuances, at three moments, and checks what the
// restarted broker leaves behind (see the file comment). It reports, per
// moment, the issuances sent and received, the leases found pending at
// restart and the users the reconciler deleted.
//
// The role sets wait_until_usable: false: SeaweedFS accepts a new key on
// the very next request (TestPeersIAMUserKeys), and the probe's three
// one-second rounds would make the burst ~60 s long. The window it would
// add (key created, lease not yet active) is the same kind as (c)'s.
func TestIAMUserCrashSafety(t *testing.T) {
	sw := peers.StartSeaweedFS(t, peers.SeaweedConfig{Buckets: []string{kfCIBucket}})
	p := seaweedIAMPeer(sw)
	moments := []crashMoment{
		{
			name: "a_createuser_in_flight", prefix: "kfca-",
			doc: "the peer created the 40th user; the broker is killed before it hears so",
			arm: func(r *crashRun) func(int64) {
				r.proxy.setHooks(nil, func(action string, n, status int) {
					if action == "CreateUser" && n == 40 {
						r.kill(fmt.Sprintf("after the peer answered CreateUser #%d (status %d), before the broker read it", n, status))
					}
				})
				return nil
			},
		},
		{
			name: "b_between_createuser_and_createaccesskey", prefix: "kfcb-",
			doc: "CreateAccessKey from the 150th on is held; the broker is killed once one is held for 0.3 s; " +
				"held calls are then dropped (odd: user and policy exist, no key) or forwarded (even: a key nobody received)",
			arm: func(r *crashRun) func(int64) {
				held := make(chan struct{})
				var heldOnce sync.Once
				var dropped, forwarded atomic.Int64
				r.proxy.setHooks(func(action string, n int) bool {
					if action != "CreateAccessKey" || n < 150 {
						return true
					}
					heldOnce.Do(func() { close(held) })
					<-r.killed
					time.Sleep(200 * time.Millisecond) // the broker is surely gone
					if n%2 == 0 {
						forwarded.Add(1)
						return true
					}
					dropped.Add(1)
					return false
				}, nil)
				r.afterKill = func() {
					r.heldNotes = fmt.Sprintf("held CreateAccessKey calls: %d dropped (user without key), %d forwarded after the kill (key nobody received)", dropped.Load(), forwarded.Load())
				}
				go func() {
					select {
					case <-held:
						time.Sleep(300 * time.Millisecond)
						r.kill(fmt.Sprintf("with %d CreateAccessKey calls held (users created, no key yet)", r.proxy.count("CreateAccessKey")-149))
					case <-r.killed:
					}
				}()
				return nil
			},
		},
		{
			name: "c_after_responses", prefix: "kfcc-", killDuringRevocation: true,
			doc: "right after the 250th client received its credentials, others in flight",
			arm: func(r *crashRun) func(int64) {
				return func(n int64) {
					if n == 250 {
						r.kill("right after the 250th response was received")
					}
				}
			},
		},
	}
	for _, m := range moments {
		t.Run(m.name, func(t *testing.T) { testCrashMoment(t, p, m) })
	}
}

func testCrashMoment(t *testing.T, p iamPeer, m crashMoment) {
	t.Logf("kill moment: %s", m.doc)
	started := time.Now()
	dir := t.TempDir()
	conf := iamLeasesConfig(t, crashLeasesConfig)
	r := &crashRun{t: t, p: p, killed: make(chan struct{})}
	r.proxy = startIAMProxy(t, p.IAMEndpoint)
	r.b = startIAMBroker(t, p, dir, r.proxy.URL, conf)
	role := iamRoleSpec{Name: "crash", UserPrefix: m.prefix, Projects: []string{crashProject}, Bucket: kfCIBucket, TTL: "1h", NoWait: true}
	r.b.writeRole(t, role.yaml())
	tokens := mintTokens(t, r.b, crashBurst)

	onReceived := m.arm(r)
	burstStart := time.Now()
	r.burst(tokens, onReceived)

	select {
	case <-r.killed:
	default:
		r.kill("never: the burst ended first")
		t.Fatalf("the kill moment was never reached in a burst of %d", crashBurst)
	}
	r.b.Wait(10 * time.Second)
	if r.b.Running() {
		t.Fatal("the broker survived SIGKILL")
	}
	r.proxy.waitIdle() // calls the test held are settled before the restart
	r.proxy.setHooks(nil, nil)
	if r.afterKill != nil {
		r.afterKill()
	}
	atKill := p.users(t, m.prefix)
	t.Logf("killed %s after %s: %d issuances sent, %d received; IAM calls in flight at the kill %v; peer saw %d CreateUser, %d CreateAccessKey; %d users of the role in the peer. %s",
		r.killWhy, r.killedAt.Sub(burstStart).Round(time.Millisecond), r.issued.Load(), r.received.Load(), r.inFlight,
		r.proxy.count("CreateUser"), r.proxy.count("CreateAccessKey"), len(atKill), r.heldNotes)

	// Restart on the same store and audit log; wait for reconciliation.
	restart := time.Now()
	eventsBefore := len(r.b.auditEvents(t))
	b2 := startIAMBroker(t, p, dir, r.proxy.URL, conf)
	states := map[string]int{}
	var leases []iamLeaseJSON
	deadline := time.Now().Add(60 * time.Second)
	for {
		leases = b2.iamLeases(t, "--role", role.Name)
		clear(states)
		for _, l := range leases {
			states[l.State]++
		}
		if states["pending"]+states["revoking"] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leases still pending or revoking 60s after the restart: %v", states)
		}
		time.Sleep(250 * time.Millisecond)
	}
	reconciled := time.Since(restart)

	byKey, byUser := map[string]iamLeaseJSON{}, map[string]iamLeaseJSON{}
	for _, l := range leases {
		if l.AccessKeyID != "" {
			byKey[l.AccessKeyID] = l
		}
		byUser[l.UserName] = l
		if l.State == "irrevocable" {
			t.Errorf("lease %s is irrevocable: %s", l.ID, l.LastError)
		}
	}

	// 1. Every received credential: an active lease naming the key, the
	// job's lease id, and the key still works.
	s3put := func(c receivedCreds) error {
		cl := s3.NewFromConfig(aws.Config{Region: p.Region, BaseEndpoint: aws.String(p.S3Endpoint), RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.Secret, "")}, func(o *s3.Options) { o.UsePathStyle = true })
		_, err := cl.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(kfCIBucket), Key: aws.String("crash/" + c.LeaseID), Body: strings.NewReader("x")})
		return err
	}
	broken := 0
	for _, c := range r.creds {
		l, ok := byKey[c.AccessKeyID]
		switch {
		case !ok:
			t.Errorf("received key %s (job %s, lease %s): no lease holds it", c.AccessKeyID, c.Job, c.LeaseID)
			continue
		case l.ID != c.LeaseID || l.Identity.Job != c.Job:
			t.Errorf("received key %s: lease %s of job %s, want lease %s of job %s", c.AccessKeyID, l.ID, l.Identity.Job, c.LeaseID, c.Job)
		case l.State != "active":
			// The brief allows active/revoking/revoked; with ttl 1h and no
			// operator, nothing may have revoked a key a job holds.
			t.Errorf("received key %s: lease %s is %s (revoked_by %q, note %q), want active", c.AccessKeyID, l.ID, l.State, l.RevokedBy, l.RevokeNote)
		}
		if err := s3put(c); err != nil {
			broken++
			if broken <= 5 {
				t.Errorf("received key %s (lease %s) no longer works: %v", c.AccessKeyID, c.LeaseID, err)
			}
		}
	}
	if broken > 5 {
		t.Errorf("... %d received keys no longer work in all", broken)
	}

	// 2. No user of the role without a live lease; no active lease without
	// its user.
	after := p.users(t, m.prefix)
	for name := range after {
		if l, ok := byUser[name]; !ok || (l.State != "active" && l.State != "pending") {
			t.Errorf("IAM user %s is left without a live lease (lease %+v)", name, l)
		}
	}
	active := 0
	for _, l := range leases {
		if l.State == "active" {
			active++
			if _, ok := after[l.UserName]; !ok {
				t.Errorf("active lease %s has no IAM user %s", l.ID, l.UserName)
			}
		}
	}

	// 3. The audit log: the reconciler's work, and one issue per active
	// lease.
	evs := b2.auditEvents(t)
	reclaimed, deleted := 0, 0
	issues := map[string]int{}
	for i, ev := range evs {
		switch {
		case ev.Type == "issue":
			issues[ev.LeaseID]++
		case i >= eventsBefore && ev.Type == "revoke" && ev.Reason == "abandoned_pending":
			reclaimed++
		case i >= eventsBefore && ev.Type == "revoke" && strings.HasPrefix(ev.Message, "IAM user "+m.prefix) && strings.HasSuffix(ev.Message, " deleted"):
			deleted++
		}
	}
	for _, l := range leases {
		// An active lease has exactly one issue event. A reclaimed one has
		// none, or one when the crash fell between the audit write and the
		// lease turning active (keyferry audits first: an issue record for
		// a key nobody received, never a live user without its record).
		ok := issues[l.ID] == 1
		if l.State != "active" {
			ok = issues[l.ID] <= 1
		}
		if !ok {
			t.Errorf("lease %s (%s): %d issue events", l.ID, l.State, issues[l.ID])
		}
	}
	if states["revoked"] != reclaimed {
		t.Errorf("%d leases revoked after the restart, but %d abandoned_pending events", states["revoked"], reclaimed)
	}
	auditVerify(t, b2)

	// 4. The orphan sweep cannot help on SeaweedFS (it lists users under
	// /keyferry/, SeaweedFS lists every user under "/"); with no orphans
	// left it must report none anyway.
	sweep := b2.admin(t, "lease", "sweep-orphans")
	if rows := strings.Split(strings.TrimSpace(sweep.Stdout), "\n"); len(rows) != 1 {
		t.Errorf("lease sweep-orphans after reconciliation: got %q, want no orphan", sweep.Stdout)
	}
	repaired := false
	for _, l := range logLines(b2.Stderr) {
		repaired = repaired || l["msg"] == "audit log repaired at start-up"
	}
	t.Logf("warnings and errors the restarted broker logged: %v", logProblems(b2.Stderr))

	t.Logf("COUNTS %s: issued %d, received %d, leases %d (active %d, of which %d never reached a client), "+
		"pending at restart %d (reclaimed), users deleted by the reconciler %d, users left %d (all with active leases), "+
		"burst %s (%.0f issuances/s), reconciled %s after the restart, audit log repaired at start-up: %v, whole moment %s",
		m.name, r.issued.Load(), r.received.Load(), len(leases), active, active-int(r.received.Load()), reclaimed, deleted, len(after),
		r.killedAt.Sub(burstStart).Round(time.Millisecond), float64(r.received.Load())/r.killedAt.Sub(burstStart).Seconds(),
		reconciled.Round(time.Millisecond), repaired, time.Since(started).Round(time.Millisecond))

	// Leave the shared peer clean: break glass on the role (which also
	// drains a few hundred IAM deletions at once).
	var live []iamLeaseJSON
	for _, l := range leases {
		if l.State == "active" {
			live = append(live, l)
		}
	}
	if m.killDuringRevocation {
		t.Run("d_kill_during_revocation", func(t *testing.T) { testKillDuringRevocation(t, p, r.proxy, dir, conf, b2, role, live) })
		return
	}
	if len(live) > 0 {
		cleanup := time.Now()
		b2.admin(t, "lease", "revoke", "--role", role.Name, "--yes", "--reason", "e2e clean-up")
		waitNoUsers(t, p, m.prefix, 60*time.Second)
		t.Logf("break glass on the role: %d IAM users deleted in %s", len(live), time.Since(cleanup).Round(time.Millisecond))
	}
}

// logProblems counts the WARN and ERROR lines of a broker's JSON log by
// message (with the upstream error code, if any).
func logProblems(path string) map[string]int {
	out := map[string]int{}
	for _, l := range logLines(path) {
		if lvl, _ := l["level"].(string); lvl == "WARN" || lvl == "ERROR" {
			k := fmt.Sprint(l["msg"])
			if c, ok := l["upstream_code"].(string); ok && c != "" {
				k += " [" + c + "]"
			}
			out[k]++
		}
	}
	return out
}

func waitNoUsers(t *testing.T, p iamPeer, prefix string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(p.users(t, prefix)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d IAM users of the role left %s after revoking all its leases", len(p.users(t, prefix)), within)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// testKillDuringRevocation: break glass on every live lease of the role,
// SIGKILL the broker a third of the way through the IAM deletions, and
// restart it: the revocation queue is in the store, so the restarted
// broker finishes every deletion; each lease ends revoked with exactly one
// "IAM user … deleted" event (a deletion done upstream but not recorded
// before the kill is redone: NoSuchEntity counts as done).
func testKillDuringRevocation(t *testing.T, p iamPeer, proxy *iamProxy, dir, conf string, b *broker, role iamRoleSpec, live []iamLeaseJSON) {
	if len(live) < 30 {
		t.Fatalf("only %d live leases: too few to kill the drain in its middle", len(live))
	}
	base := proxy.count("DeleteUser")
	killAt := base + len(live)/3
	killed := make(chan struct{})
	var once sync.Once
	var inFlight map[string]int
	proxy.setHooks(nil, func(action string, n, _ int) {
		if action == "DeleteUser" && n == killAt {
			once.Do(func() {
				inFlight = proxy.inFlight()
				b.Cmd.Process.Kill()
				close(killed)
			})
		}
	})
	start := time.Now()
	res := kfRun(t, b.adminEnv(), "lease", "revoke", "--role", role.Name, "--yes", "--reason", "e2e: break glass, then a crash")
	bulkOK := res.OK()
	select {
	case <-killed:
	case <-time.After(60 * time.Second):
		t.Fatalf("the drain never reached DeleteUser #%d", killAt-base)
	}
	b.Wait(10 * time.Second)
	proxy.waitIdle()
	proxy.setHooks(nil, nil)
	killedAfter := time.Since(start)
	atKill := len(p.users(t, role.UserPrefix))

	restart := time.Now()
	b3 := startIAMBroker(t, p, dir, proxy.URL, conf)
	if !bulkOK {
		// The kill cut the bulk request short: the operator runs it again.
		t.Logf("the bulk revoke was cut short by the kill (%s): running it again", res)
		b3.admin(t, "lease", "revoke", "--role", role.Name, "--yes", "--reason", "e2e: break glass, again")
	}
	waitNoUsers(t, p, role.UserPrefix, 60*time.Second)
	var leases []iamLeaseJSON
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		leases = b3.iamLeases(t, "--role", role.Name)
		busy := 0
		for _, l := range leases {
			if l.State == "revoking" || l.State == "active" || l.State == "pending" {
				busy++
			}
		}
		if busy == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d leases not revoked 30s after the restart", busy)
		}
	}
	byID := map[string]iamLeaseJSON{}
	for _, l := range leases {
		byID[l.ID] = l
	}
	evs := b3.auditEvents(t)
	missing, doubled := 0, 0
	for _, l := range live {
		got := byID[l.ID]
		if got.State != "revoked" {
			t.Errorf("lease %s: %s (%s), want revoked", l.ID, got.State, got.LastError)
		}
		n := 0
		for _, ev := range eventsOf(evs, "revoke", l.ID) {
			if ev.Message == "IAM user "+l.UserName+" deleted" {
				n++
			}
		}
		switch {
		case n == 0:
			missing++
			if missing <= 5 {
				t.Errorf("lease %s is revoked and its user %s gone, but the audit log has no event of the deletion", l.ID, l.UserName)
			}
		case n > 1:
			doubled++
			t.Errorf("lease %s: %d events of its user's deletion, want 1", l.ID, n)
		}
	}
	if missing > 5 {
		t.Errorf("... %d revoked leases in all have no deletion event", missing)
	}
	auditVerify(t, b3)
	t.Logf("warnings and errors the restarted broker logged: %v", logProblems(b3.Stderr))
	t.Logf("COUNTS d_kill_during_revocation: %d live leases revoked at once; killed after %s at DeleteUser #%d with IAM calls in flight %v, "+
		"%d users left at the kill; the restarted broker finished in %s; deletion events missing %d, doubled %d",
		len(live), killedAfter.Round(time.Millisecond), killAt-base, inFlight, atKill, time.Since(restart).Round(time.Millisecond), missing, doubled)
}

// burst runs the clients until every token is used or the broker is
// killed.
func (r *crashRun) burst(tokens []string, onReceived func(int64)) {
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: crashClients}}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range crashClients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(tokens)) {
					return
				}
				select {
				case <-r.killed:
					return
				default:
				}
				r.issued.Add(1)
				var out credsJSON
				st, err := postJSONWith(client, r.b.URL+"/v1/creds", map[string]string{"role": "crash", "token": tokens[i]}, &out)
				if err != nil || st != http.StatusOK {
					select {
					case <-r.killed:
						return
					default:
					}
					r.t.Errorf("issuance %d failed before the kill: status %d, %v", i, st, err)
					continue
				}
				r.mu.Lock()
				r.creds = append(r.creds, receivedCreds{Job: jobID(int(i)), LeaseID: out.LeaseID, AccessKeyID: out.Credentials.AccessKeyID, Secret: out.Credentials.SecretAccessKey})
				r.mu.Unlock()
				if n := r.received.Add(1); onReceived != nil {
					onReceived(n)
				}
			}
		})
	}
	wg.Wait()
}

func jobID(i int) string { return strconv.Itoa(900000 + i) }

// mintTokens gets n job tokens of crashProject from the dev issuer, one
// job id each.
func mintTokens(t *testing.T, b *broker, n int) []string {
	t.Helper()
	tokens := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var out struct{ Token string }
			st, err := postJSONWith(http.DefaultClient, b.URL+"/v1/dev/token", map[string]string{"project_path": crashProject, "job_id": jobID(i)}, &out, b.AdminToken)
			if err != nil || st != http.StatusOK || out.Token == "" {
				errs <- fmt.Errorf("dev token %d: status %d, %v", i, st, err)
				return
			}
			tokens[i] = out.Token
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return tokens
}

// postJSONWith POSTs in as JSON with client (and a bearer token if given)
// and decodes the response into out.
func postJSONWith(client *http.Client, url string, in, out any, bearer ...string) (int, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if len(bearer) > 0 {
		req.Header.Set("Authorization", "Bearer "+bearer[0])
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("response %d: %w", resp.StatusCode, err)
	}
	return resp.StatusCode, nil
}
