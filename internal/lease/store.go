package lease

import (
	"encoding/json"
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

// encodeLease encodes l for createLease. Callers encode before
// storage.Store.Update, so that encoding does not run inside the
// transaction: bolt runs the functions of a batch one after another on one
// goroutine while it holds its only writer lock, and a lease with its
// claims takes longer to encode than to insert.
func encodeLease(l *Lease) ([]byte, error) { return json.Marshal(l) }

// createLease writes a new lease, encoded as b by encodeLease, with its
// expiry entry and indexes.
func createLease(tx storage.Txn, l *Lease, b []byte) error {
	if err := tx.Create(leasePrefix+l.ID, b); err != nil {
		return err
	}
	for _, k := range indexKeys(l) {
		if err := tx.Put(k, nil); err != nil {
			return err
		}
	}
	if l.State == StatePending {
		if err := tx.Put(pendingKey(l.IssuedAt, l.ID), nil); err != nil {
			return err
		}
	}
	return tx.Put(expiryKey(l.ExpiresAt, l.ID), nil)
}

// saveLease rewrites a lease changed from old, keeping its expiry entry,
// revocation queue entry, pending entry and indexes consistent. Index
// entries are only added (a lease stays findable by every key it ever
// had).
func saveLease(tx storage.Txn, old, l *Lease) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if err := tx.Put(leasePrefix+l.ID, b); err != nil {
		return err
	}
	// Only new index entries are written: rewriting one that exists
	// changes nothing but still dirties its page, and a revocation would
	// copy six random index pages per lease in every commit.
	had := indexKeys(old)
	for _, k := range indexKeys(l) {
		if slices.Contains(had, k) {
			continue
		}
		if err := tx.Put(k, nil); err != nil {
			return err
		}
	}
	if old.State == StatePending && l.State != StatePending {
		if err := tx.Delete(pendingKey(old.IssuedAt, old.ID)); err != nil {
			return err
		}
	}
	// The expiry entry exists while the lease can still expire into work.
	wantExp := l.State == StateActive || l.State == StatePending
	hadExp := old.State == StateActive || old.State == StatePending
	if hadExp && (!wantExp || !old.ExpiresAt.Equal(l.ExpiresAt)) {
		if err := tx.Delete(expiryKey(old.ExpiresAt, old.ID)); err != nil {
			return err
		}
	}
	if wantExp && (!hadExp || !old.ExpiresAt.Equal(l.ExpiresAt)) {
		if err := tx.Put(expiryKey(l.ExpiresAt, l.ID), nil); err != nil {
			return err
		}
	}
	// The queue entry exists while the lease is revoking.
	if old.State == StateRevoking && (l.State != StateRevoking || !old.NextAttemptAt.Equal(l.NextAttemptAt)) {
		if err := tx.Delete(revokeKey(old.NextAttemptAt, old.ID)); err != nil {
			return err
		}
	}
	if l.State == StateRevoking && (old.State != StateRevoking || !old.NextAttemptAt.Equal(l.NextAttemptAt)) {
		if err := tx.Put(revokeKey(l.NextAttemptAt, l.ID), nil); err != nil {
			return err
		}
	}
	return nil
}

// modify loads a lease in tx, applies fn to a copy and saves the result
// with saveLease. fn returning errSkip leaves the lease untouched.
func modify(tx storage.Txn, id string, fn func(l *Lease) error) (*Lease, error) {
	old, err := getLease(tx, id)
	if err != nil {
		return nil, err
	}
	l := *old
	if err := fn(&l); err != nil {
		if err == errSkip {
			return old, nil
		}
		return nil, err
	}
	return &l, saveLease(tx, old, &l)
}

// errSkip tells modify to leave the lease as it is.
var errSkip = fmt.Errorf("lease: skip")
