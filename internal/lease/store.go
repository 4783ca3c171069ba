package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/keyferry/keyferry/internal/storage"
)

// Storage layout. Every index is a key with an empty value, ordered so that
// a prefix scan returns what a component needs and nothing else:
//
//	leases/<id>                          the lease (JSON)
//	lease-exp/<unix nanos>/<id>          expiry index: the scheduler reads only what is due
//	lease-revoke/<unix nanos>/<id>       revocation queue, by next attempt time
//	lease-pending/<unix nanos>/<id>      write-ahead records awaiting their upstream writes
//	lease-by/<field>/<value>/<id>        lookups for break-glass filters and the leak runbook:
//	                                     role, project, pipeline, sub, akid (every key a lease ever had), user
//
// Times are zero-padded to 20 digits so byte order is time order. Values
// that may hold "/" are path-escaped.
const (
	leasePrefix   = "leases/"
	expiryPrefix  = "lease-exp/"
	revokePrefix  = "lease-revoke/"
	pendingPrefix = "lease-pending/"
	byPrefix      = "lease-by/"
)

// Index fields usable with ByField.
const (
	FieldRole     = "role"
	FieldProject  = "project"
	FieldPipeline = "pipeline"
	FieldSubject  = "sub"
	FieldKey      = "akid"
	FieldUser     = "user"
)

func timeKey(prefix string, t time.Time, id string) string {
	return fmt.Sprintf("%s%020d/%s", prefix, t.UnixNano(), id)
}

func expiryKey(t time.Time, id string) string  { return timeKey(expiryPrefix, t, id) }
func revokeKey(t time.Time, id string) string  { return timeKey(revokePrefix, t, id) }
func pendingKey(t time.Time, id string) string { return timeKey(pendingPrefix, t, id) }
func leaseKey(id string) string                { return leasePrefix + id }

// before is the range of a time-ordered index under prefix that holds
// the entries of times strictly before t: its keys sort below
// "<prefix><t>", and every entry of time t or later sorts above.
func before(prefix string, t time.Time) storage.Range {
	return storage.Range{Prefix: prefix, Before: fmt.Sprintf("%s%020d", prefix, t.UnixNano()), KeysOnly: true}
}

// due is the range of a time-ordered index under prefix that holds the
// entries due at now (times up to and including now).
func due(prefix string, now time.Time) storage.Range {
	return before(prefix, now.Add(time.Nanosecond))
}

// byKeyPrefix is the scan prefix for one indexed value.
func byKeyPrefix(field, value string) string {
	return byPrefix + field + "/" + url.PathEscape(value) + "/"
}

// parseTimeKey splits "<prefix><20 digits>/<id>".
func parseTimeKey(prefix, key string) (time.Time, string, bool) {
	rest := key[len(prefix):]
	if len(rest) < 22 || rest[20] != '/' {
		return time.Time{}, "", false
	}
	var n int64
	for _, c := range rest[:20] {
		if c < '0' || c > '9' {
			return time.Time{}, "", false
		}
		n = n*10 + int64(c-'0')
	}
	return time.Unix(0, n), rest[21:], true
}

// indexKeys lists the lookup keys of a lease.
func indexKeys(l *Lease) []string {
	var keys []string
	add := func(field, v string) {
		if v != "" {
			keys = append(keys, byKeyPrefix(field, v)+l.ID)
		}
	}
	add(FieldRole, l.Role)
	add(FieldProject, l.Identity.Project)
	if l.Identity.ProjectID != "" && l.Identity.ProjectID != l.Identity.Project {
		add(FieldProject, l.Identity.ProjectID)
	}
	add(FieldPipeline, l.Identity.Pipeline)
	add(FieldSubject, l.Identity.Subject)
	add(FieldKey, l.AccessKeyID)
	add(FieldUser, l.UserName)
	return keys
}

// encodeLease encodes l for createOps. Callers encode before they commit,
// so that encoding does not run inside bolt's batched transaction (one
// goroutine runs a batch while it holds the only writer lock, and a lease
// with its claims takes longer to encode than to insert).
func encodeLease(l *Lease) ([]byte, error) { return json.Marshal(l) }

func decodeLease(kv storage.KV) (*Lease, error) {
	var l Lease
	if err := json.Unmarshal(kv.Value, &l); err != nil {
		return nil, fmt.Errorf("lease: decode %s: %w", kv.Key, err)
	}
	return &l, nil
}

// createOps are the writes of a new lease, encoded as b by encodeLease:
// the lease, its lookup indexes, its expiry entry and, while pending, its
// write-ahead entry. At most 10 operations (a lease has at most 7 lookup
// keys), so that many leases fit in one commit.
func createOps(l *Lease, b []byte) []storage.Op {
	ops := []storage.Op{storage.Put(leaseKey(l.ID), b)}
	for _, k := range indexKeys(l) {
		ops = append(ops, storage.Put(k, nil))
	}
	if l.State == StatePending {
		ops = append(ops, storage.Put(pendingKey(l.IssuedAt, l.ID), nil))
	}
	return append(ops, storage.Put(expiryKey(l.ExpiresAt, l.ID), nil))
}

// maxCreateOps bounds len(createOps(l)).
const maxCreateOps = 10

// saveOps are the writes that turn old into l, keeping its expiry entry,
// revocation queue entry, pending entry and indexes consistent. Index
// entries are only added (a lease stays findable by every key it ever
// had).
func saveOps(old, l *Lease) ([]storage.Op, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	ops := []storage.Op{storage.Put(leaseKey(l.ID), b)}
	// Only new index entries are written: rewriting one that exists
	// changes nothing but still dirties its page, and a revocation would
	// copy six random index pages per lease in every commit.
	had := indexKeys(old)
	for _, k := range indexKeys(l) {
		if !slices.Contains(had, k) {
			ops = append(ops, storage.Put(k, nil))
		}
	}
	if old.State == StatePending && l.State != StatePending {
		ops = append(ops, storage.Del(pendingKey(old.IssuedAt, old.ID)))
	}
	// The expiry entry exists while the lease can still expire into work.
	wantExp := l.State == StateActive || l.State == StatePending
	hadExp := old.State == StateActive || old.State == StatePending
	if hadExp && (!wantExp || !old.ExpiresAt.Equal(l.ExpiresAt)) {
		ops = append(ops, storage.Del(expiryKey(old.ExpiresAt, old.ID)))
	}
	if wantExp && (!hadExp || !old.ExpiresAt.Equal(l.ExpiresAt)) {
		ops = append(ops, storage.Put(expiryKey(l.ExpiresAt, l.ID), nil))
	}
	// The queue entry exists while the lease is revoking.
	if old.State == StateRevoking && (l.State != StateRevoking || !old.NextAttemptAt.Equal(l.NextAttemptAt)) {
		ops = append(ops, storage.Del(revokeKey(old.NextAttemptAt, old.ID)))
	}
	if l.State == StateRevoking && (old.State != StateRevoking || !old.NextAttemptAt.Equal(l.NextAttemptAt)) {
		ops = append(ops, storage.Put(revokeKey(l.NextAttemptAt, l.ID), nil))
	}
	return ops, nil
}

// errSkip, returned by a function given to update, leaves the lease as
// it is.
var errSkip = errors.New("lease: skip")

// errNoLease is the error of update for a lease that does not exist.
func errNoLease(id string) error {
	return fmt.Errorf("lease %s: %w", id, storage.ErrNotFound)
}

// modifyOps decodes the lease read as cur, applies fn to a copy and
// returns the writes that save the result, with the lease before and
// after. fn returning errSkip gives no writes and the lease unchanged.
func modifyOps(id string, cur *storage.KV, fn func(l *Lease) error) (ops []storage.Op, old, l *Lease, err error) {
	if cur == nil {
		return nil, nil, nil, errNoLease(id)
	}
	if old, err = decodeLease(*cur); err != nil {
		return nil, nil, nil, err
	}
	next := *old
	if err := fn(&next); err != nil {
		if err == errSkip {
			return nil, old, old, nil
		}
		return nil, nil, nil, err
	}
	ops, err = saveOps(old, &next)
	return ops, old, &next, err
}

// records is the lease records in the store: the reads and writes that
// Issuer and Lifecycle share.
type records struct {
	st storage.Store
}

// create writes a new lease with its index entries.
func (r records) create(ctx context.Context, l *Lease) error {
	b, err := encodeLease(l)
	if err != nil {
		return err
	}
	return r.st.Commit(ctx, []storage.Cond{storage.Absent(leaseKey(l.ID))}, createOps(l, b))
}

// get reads lease id; a missing lease is an error wrapping
// storage.ErrNotFound.
func (r records) get(ctx context.Context, id string) (*Lease, error) {
	kv, err := r.st.Get(ctx, leaseKey(id))
	if err != nil {
		return nil, err
	}
	return decodeLease(kv)
}

// read reads lease id, with the key as read (for updateRead).
func (r records) read(ctx context.Context, id string) (storage.KV, *Lease, error) {
	kv, err := r.st.Get(ctx, leaseKey(id))
	if err != nil {
		return kv, nil, err
	}
	l, err := decodeLease(kv)
	return kv, l, err
}

// updateRead is update for a lease already read as kv (decoded as l): its
// first attempt commits on the condition that the lease is still as read,
// without reading it again; only if it changed does it fall back to update.
// It saves a read and a decode on the revocation path.
func (r records) updateRead(ctx context.Context, kv storage.KV, l *Lease, fn func(*Lease) error) (*Lease, error) {
	next := *l
	if err := fn(&next); err != nil {
		if err == errSkip {
			return l, nil
		}
		return nil, err
	}
	ops, err := saveOps(l, &next)
	if err != nil {
		return nil, err
	}
	err = r.st.Commit(ctx, []storage.Cond{storage.Unchanged(kv)}, ops)
	if errors.Is(err, storage.ErrConflict) {
		return r.update(ctx, l.ID, fn)
	}
	if err != nil {
		return nil, err
	}
	return &next, nil
}

// update applies fn to lease id and saves the result with its index
// entries in one commit, on the condition that nobody changed the lease
// meanwhile (fn runs again if somebody did, so it must only change the
// lease it is given). fn returning errSkip leaves the lease as it is. A
// missing lease is an error wrapping storage.ErrNotFound.
func (r records) update(ctx context.Context, id string, fn func(*Lease) error) (*Lease, error) {
	var out *Lease
	err := storage.Update(ctx, r.st, leaseKey(id), func(cur *storage.KV) ([]storage.Op, error) {
		ops, _, l, err := modifyOps(id, cur, fn)
		out = l
		return ops, err
	})
	return out, err
}

// eachIndexed calls fn with every lease indexed under field = value, in id
// order. A lease deleted since its index entry was read is skipped.
func (r records) eachIndexed(ctx context.Context, field, value string, fn func(l *Lease) error) error {
	prefix := byKeyPrefix(field, value)
	return storage.Scan(ctx, r.st, storage.Range{Prefix: prefix, KeysOnly: true}, func(kv storage.KV) (bool, error) {
		l, err := r.get(ctx, kv.Key[len(prefix):])
		if errors.Is(err, storage.ErrNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return true, fn(l)
	})
}

// queueRevoke moves a lease into the revocation queue (due now). It is
// idempotent: a lease already revoking or ended keeps its state, and
// changed is false.
func queueRevoke(ctx context.Context, r records, now func() time.Time, id, actor, note string) (l *Lease, changed bool, err error) {
	t := now()
	l, err = r.update(ctx, id, func(l *Lease) error {
		changed = false
		switch l.State {
		case StateRevoked, StateRevoking, StateIrrevocable:
			return errSkip
		}
		changed = true
		l.State, l.NextAttemptAt, l.RevokedBy, l.Attempts, l.LastError = StateRevoking, t, actor, 0, ""
		if note != "" {
			l.RevokeNote = note
		}
		return nil
	})
	return l, changed, err
}
