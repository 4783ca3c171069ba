package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/keyferry/keyferry/internal/lease"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
)

func TestLeaseGenShapes(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	g := newLeaseGen(1, now, time.Hour, 12*time.Hour, 0.5)
	types := map[string]int{}
	for range 200 {
		l := g.next()
		types[l.Type]++
		if l.ExpiresAt.Before(now.Add(time.Hour)) || l.ExpiresAt.After(now.Add(12*time.Hour)) {
			t.Errorf("expiry %v outside [now+1h, now+12h]", l.ExpiresAt)
		}
		if l.State != lease.StateActive || l.ID == "" || l.AccessKeyID == "" || l.Identity.Project == "" || l.Identity.Pipeline == "" {
			t.Fatalf("incomplete lease %+v", l)
		}
		switch l.Type {
		case policy.TypeIAMUser:
			if l.UserName != "kf-"+l.ID || l.Claims != nil || l.RefreshHash != "" {
				t.Errorf("iam_user lease %+v: want a user named after it, no claims, no refresh handle", l)
			}
		case policy.TypeAssumeRole:
			if l.Claims["project_path"] != l.Identity.Project || len(l.RefreshHash) != 64 || l.SessionName == "" {
				t.Errorf("assume_role lease %+v: want claims, a refresh hash and a session", l)
			}
		}
	}
	if types[policy.TypeIAMUser] == 0 || types[policy.TypeAssumeRole] == 0 {
		t.Errorf("types %v, want both", types)
	}
}

func TestMemIAMThrottlesWritesAndKeepsProgress(t *testing.T) {
	ctx := context.Background()
	f := newMemIAM(2, 3*time.Second) // a bucket of 2 writes
	ls := []*lease.Lease{{UserName: "kf-a"}}
	if err := f.prepare(ctx, ls); err != nil {
		t.Fatal(err)
	}
	f.limit()
	// Two writes pass (key, policy); DeleteUser is throttled.
	err := f.DeleteUser(ctx, "kf-a", nil)
	var ae *awsprov.Error
	if !errors.As(err, &ae) || ae.Code != awsprov.CodeThrottled || ae.RetryAfter != 3*time.Second {
		t.Fatalf("got %v, want a throttling error with Retry-After 3s", err)
	}
	s := f.stats()
	if s.Writes != 2 || s.Throttled != 1 || s.Users != 1 {
		t.Errorf("after the throttled attempt: %+v, want 2 writes, 1 throttled, the user left", s)
	}
	// The next attempt only has DeleteUser left to do.
	f.wl.lim = rate.NewLimiter(rate.Inf, 1) // the quota recovered
	if err := f.DeleteUser(ctx, "kf-a", nil); err != nil {
		t.Fatal(err)
	}
	if s := f.stats(); s.Writes != 3 || s.Users != 0 {
		t.Errorf("after the retry: %+v, want 3 writes in all and no user", s)
	}
	// A missing user is done (NoSuchEntity).
	if err := f.DeleteUser(ctx, "kf-a", nil); err != nil {
		t.Errorf("deleting a missing user: %v, want nil", err)
	}
}

// TestMemIAMKnownParts: with the lease's parts, deleting a user is three
// writes and no reads; a part the lease did not name makes DeleteUser
// conflict and falls back to listing.
func TestMemIAMKnownParts(t *testing.T) {
	ctx := context.Background()
	known := &awsprov.UserParts{AccessKeyIDs: []string{"AKIAMEMIAM0000000000"}, InlinePolicies: []string{"keyferry"}}
	f := newMemIAM(0, time.Second)
	if err := f.prepare(ctx, []*lease.Lease{{UserName: "kf-a"}, {UserName: "kf-b"}}); err != nil {
		t.Fatal(err)
	}
	if err := f.DeleteUser(ctx, "kf-a", known); err != nil {
		t.Fatal(err)
	}
	if s := f.stats(); s.Writes != 3 || s.Reads != 0 || s.Users != 1 {
		t.Errorf("known parts: %+v, want 3 writes, 0 reads, kf-b left", s)
	}
	// kf-b's lease never learnt its key: DeleteConflict, then the lists.
	noKey := &awsprov.UserParts{InlinePolicies: []string{"keyferry"}}
	if err := f.DeleteUser(ctx, "kf-b", noKey); err != nil {
		t.Fatal(err)
	}
	if s := f.stats(); s.Writes != 3+2+2 || s.Reads != 4 || s.Users != 0 {
		t.Errorf("unknown key: %+v, want 7 writes, 4 reads, no user", s)
	}
}

// TestDrainSmoke runs a small drain against each IAM: every lease ends
// revoked and every user deleted. It checks counts, not times.
func TestDrainSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the lifecycle for a few seconds")
	}
	for _, up := range []string{upstreamMem, upstreamFake} {
		t.Run(up, func(t *testing.T) {
			res, err := drain(context.Background(), drainOptions{
				leases: 20, live: 10, lead: 2 * time.Second, workers: 4, rps: 1000, upstream: up,
				timeout: time.Minute, sampleInterval: time.Second, retryAfter: time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.States[string(lease.StateRevoked)] != 20 || len(res.States) != 1 {
				t.Errorf("states %v, want 20 revoked", res.States)
			}
			if res.IAM.Users != 0 || res.IAM.Writes != 3*20 || res.AttemptHist[1] != 20 {
				t.Errorf("IAM %+v, attempts %v: want every user deleted with 3 writes, one attempt each", res.IAM, res.AttemptHist)
			}
			if _, err := json.Marshal(res); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestReadProcMem(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	m, err := readProcMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.VmRSS <= 0 || m.RssAnon+m.RssFile > m.VmRSS+1 || m.VmHWM < m.VmRSS {
		t.Errorf("got %+v, want VmRSS > 0 = anon + file (+shmem) ≤ VmHWM", m)
	}
}
