package memory

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTreapAgainstMap applies random inserts and removes to the treap and
// to a map, checking after each step that the treap holds the same keys in
// order, keeps its invariants, and never changes an older root.
func TestTreapAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seed := maphash.MakeSeed()
	want := map[string]string{}
	var root *node

	type snapshot struct {
		root *node
		want []string
	}
	var snaps []snapshot

	for step := range 3000 {
		key := fmt.Sprintf("k%03d", rng.IntN(300))
		if rng.IntN(3) == 0 {
			var ok bool
			root, ok = remove(root, key)
			if _, had := want[key]; ok != had {
				t.Fatalf("step %d: remove(%q) found = %v, want %v", step, key, ok, had)
			}
			delete(want, key)
		} else {
			val := fmt.Sprint(step)
			root = insert(root, key, []byte(val), 1, maphash.String(seed, key))
			want[key] = val
		}
		got := entries(t, root)
		if exp := sortedEntries(want); !slices.Equal(got, exp) {
			t.Fatalf("step %d: treap = %v, want %v", step, got, exp)
		}
		if step%100 == 0 {
			snaps = append(snaps, snapshot{root, got})
		}
	}
	for i, s := range snaps {
		if got := entries(t, s.root); !slices.Equal(got, s.want) {
			t.Errorf("snapshot %d changed: got %v, want %v", i, got, s.want)
		}
	}
}

// entries lists "key=value" in order and checks the BST and heap
// invariants on the way.
func entries(t *testing.T, root *node) []string {
	t.Helper()
	var out []string
	var walk func(n *node, lo, hi *string)
	walk = func(n *node, lo, hi *string) {
		if n == nil {
			return
		}
		if lo != nil && n.key <= *lo || hi != nil && n.key >= *hi {
			t.Fatalf("key %q out of order", n.key)
		}
		for _, c := range []*node{n.left, n.right} {
			if c != nil && c.prio > n.prio {
				t.Fatalf("heap order broken at %q", n.key)
			}
		}
		walk(n.left, lo, &n.key)
		out = append(out, n.key+"="+string(n.val))
		walk(n.right, &n.key, hi)
	}
	walk(root, nil, nil)
	return out
}

func sortedEntries(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}
