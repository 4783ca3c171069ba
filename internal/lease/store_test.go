package lease

import (
	"context"
	"strings"
	"testing"

	"github.com/keyferry/keyferry/internal/storage"
)

// putRecorder records the keys its commits put.
type putRecorder struct {
	storage.Store
	puts []string
}

func (r *putRecorder) Commit(ctx context.Context, conds []storage.Cond, ops []storage.Op) error {
	for _, op := range ops {
		if !op.Delete {
			r.puts = append(r.puts, op.Key)
		}
	}
	return r.Store.Commit(ctx, conds, ops)
}

// TestSaveLeaseWritesOnlyNewIndexEntries: a state change rewrites the
// lease but none of its lookup entries (each would dirty a page of its
// own in the commit); a new access key adds its entry and keeps the old.
func TestSaveLeaseWritesOnlyNewIndexEntries(t *testing.T) {
	f := newLCFixture(t)
	rec := &putRecorder{Store: f.m.store()}
	f.m.setStore(rec)
	ctx := context.Background()
	out, err := f.m.Issue(ctx, IssueRequest{Role: "deploy", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	id, oldKey := out.Lease.ID, out.Lease.AccessKeyID
	indexPuts := func() []string {
		var ks []string
		for _, k := range rec.puts {
			if strings.HasPrefix(k, byPrefix) {
				ks = append(ks, k)
			}
		}
		rec.puts = nil
		return ks
	}
	indexPuts()

	if _, err := f.m.update(ctx, id, func(l *Lease) error { l.RevokeNote = "changed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := indexPuts(); len(got) != 0 {
		t.Errorf("a change without new lookup values wrote index entries %v, want none", got)
	}

	if _, err := f.m.update(ctx, id, func(l *Lease) error { l.AccessKeyID = "ASIANEWKEY0000000001"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, want := indexPuts(), []string{byKeyPrefix(FieldKey, "ASIANEWKEY0000000001") + id}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("a new access key wrote %v, want %v", got, want)
	}
	for _, k := range []string{oldKey, "ASIANEWKEY0000000001"} {
		ls, err := f.m.Select(ctx, Selector{AccessKeyID: k})
		if err != nil || len(ls) != 1 || ls[0].ID != id {
			t.Errorf("Select by access key %s: %v, %v; want lease %s", k, ls, err, id)
		}
	}
}

// TestUpdateReadFallsBackWhenTheLeaseChanged: updateRead commits on the
// lease as read; when somebody changed it meanwhile, it applies fn to the
// lease as it now is instead of overwriting the change.
func TestUpdateReadFallsBackWhenTheLeaseChanged(t *testing.T) {
	f := newLCFixture(t)
	ctx := context.Background()
	out, err := f.m.Issue(ctx, IssueRequest{Role: "deploy", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	kv, l, err := f.m.Lifecycle.read(ctx, out.Lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.update(ctx, l.ID, func(l *Lease) error { l.RevokeNote = "changed meanwhile"; return nil }); err != nil {
		t.Fatal(err)
	}
	got, err := f.m.Lifecycle.updateRead(ctx, kv, l, func(l *Lease) error { l.LastError = "from updateRead"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	stored := f.state(t, l.ID)
	if stored.RevokeNote != "changed meanwhile" || stored.LastError != "from updateRead" || got.RevokeNote != "changed meanwhile" {
		t.Errorf("stored note %q and error %q (returned note %q), want both changes kept", stored.RevokeNote, stored.LastError, got.RevokeNote)
	}
}
