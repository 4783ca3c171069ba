package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyferry/keyferry/internal/storage"
	"github.com/keyferry/keyferry/internal/storage/memory"
)

// dumpStore returns every key and value in st.
func dumpStore(t *testing.T, st storage.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := storage.Scan(context.Background(), st, storage.Range{}, func(kv storage.KV) (bool, error) { out[kv.Key] = string(kv.Value); return true, nil })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSeedWritesWhatIssuanceWrites issues an iam_user and an assume_role
// lease through the Manager, seeds copies of them into an empty store, and
// compares every key and value: seeded stores must look exactly like
// stores the server filled.
func TestSeedWritesWhatIssuanceWrites(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	var leases []*Lease
	for _, role := range []string{"artifacts", "deploy"} {
		out, err := f.m.Issue(ctx, IssueRequest{Role: role, Token: "t"})
		if err != nil {
			t.Fatal(err)
		}
		l, err := f.m.Get(ctx, out.Lease.ID)
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	seeded := memory.New()
	if err := Seed(ctx, seeded, leases); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dumpStore(t, f.m.store()), dumpStore(t, seeded)); diff != "" {
		t.Errorf("seeded store differs from the issued one (-issued +seeded):\n%s", diff)
	}
	if err := Seed(ctx, seeded, leases[:1]); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("seeding an existing lease: got %v, want ErrConflict", err)
	}
}

func TestSeedRefusesLaterStates(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range []State{StateRevoking, StateRevoked, StateIrrevocable, StateExpired} {
		l := &Lease{ID: NewID(now), State: s, ExpiresAt: now}
		if err := Seed(context.Background(), memory.New(), []*Lease{l}); err == nil {
			t.Errorf("state %s: got nil error, want a refusal", s)
		}
	}
}
