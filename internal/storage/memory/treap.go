package memory

import "strings"

// node is one entry of a persistent (immutable) treap: a binary search tree
// on key that is also a max-heap on prio. Nodes reachable from a published
// root are never modified; every write copies the path from the root to
// the changed node, so an old root stays a consistent snapshot for as long
// as a reader holds it. Priorities come from a seeded hash of the key, so
// the tree's shape depends only on its key set and its expected depth is
// O(log n).
type node struct {
	key         string
	val         []byte
	rev         int64 // the store revision that wrote val
	prio        uint64
	left, right *node
}

// get returns the node holding key, or nil.
func get(n *node, key string) *node {
	for n != nil {
		switch {
		case key < n.key:
			n = n.left
		case key > n.key:
			n = n.right
		default:
			return n
		}
	}
	return nil
}

// insert returns a new root with key set to val at revision rev. It never
// modifies n; the nodes it returns on the path to key are fresh, so it may
// rotate them.
func insert(n *node, key string, val []byte, rev int64, prio uint64) *node {
	if n == nil {
		return &node{key: key, val: val, rev: rev, prio: prio}
	}
	c := *n
	switch {
	case key < n.key:
		c.left = insert(n.left, key, val, rev, prio)
		if c.left.prio > c.prio {
			l := c.left
			c.left, l.right = l.right, &c
			return l
		}
	case key > n.key:
		c.right = insert(n.right, key, val, rev, prio)
		if c.right.prio > c.prio {
			r := c.right
			c.right, r.left = r.left, &c
			return r
		}
	default:
		c.val, c.rev = val, rev
	}
	return &c
}

// remove returns a new root without key, and whether key was present. When
// it was not, it returns n itself and copies nothing.
func remove(n *node, key string) (*node, bool) {
	if n == nil {
		return nil, false
	}
	var sub *node
	var ok bool
	switch {
	case key < n.key:
		if sub, ok = remove(n.left, key); ok {
			c := *n
			c.left = sub
			return &c, true
		}
	case key > n.key:
		if sub, ok = remove(n.right, key); ok {
			c := *n
			c.right = sub
			return &c, true
		}
	default:
		return merge(n.left, n.right), true
	}
	return n, false
}

// merge joins two treaps where every key of a sorts before every key of b,
// copying the nodes on the merged spine.
func merge(a, b *node) *node {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.prio > b.prio:
		c := *a
		c.right = merge(a.right, b)
		return &c
	default:
		c := *b
		c.left = merge(a, b.left)
		return &c
	}
}

// scan calls fn in ascending key order for each node whose key has prefix
// and sorts strictly after `after`, until fn returns false or an error.
func scan(root *node, prefix, after string, fn func(*node) (bool, error)) error {
	// Start at the prefix itself (inclusive) unless after lies at or past
	// it, in which case start strictly after `after`.
	lo, inclusive := prefix, true
	if after >= prefix {
		lo, inclusive = after, false
	}
	var err error
	ascend(root, lo, inclusive, func(n *node) bool {
		if !strings.HasPrefix(n.key, prefix) {
			// Keys with the prefix are contiguous and lo >= prefix, so
			// the first key without it ends the range.
			return false
		}
		var more bool
		more, err = fn(n)
		return more && err == nil
	})
	return err
}

// ascend visits, in order, the nodes with key > lo (or >= lo when
// inclusive) until fn returns false. It reports whether to keep going.
func ascend(n *node, lo string, inclusive bool, fn func(*node) bool) bool {
	for n != nil {
		if n.key > lo || inclusive && n.key == lo {
			if !ascend(n.left, lo, inclusive, fn) || !fn(n) {
				return false
			}
		}
		// Either n and its left subtree are below lo, or they are done.
		n = n.right
	}
	return true
}
