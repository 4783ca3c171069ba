package aws

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// Early revocation of assumed-role sessions. AWS cannot delete an STS
// session, but a Deny in the role's own policy cuts it off: keyferry keeps
// one inline policy on each role it revoked sessions of, DenyPolicyName,
// whose statements deny everything to the revoked sessions:
//
//   - one statement per hour bucket, denying a list of session user ids
//     ("AROAID:session-name", the aws:userid of an assumed-role session);
//     the Sid names the hour after which every session in it has expired
//     and the latest issue time among them,
//     "KeyferryRevokedUntil2026112615Issued1795000000", so the policy
//     describes itself and pruning needs no other state;
//   - when the explicit lists would not fit the size budget, the bucket
//     that ends first collapses into one statement that denies every
//     session of the role issued before T = its latest issue time + 1 s
//     (aws:TokenIssueTime), kept until the bucket's hour. Sessions issued
//     before T that were not revoked are cut off too until then: they must
//     get new credentials (keyferry's refreshing channels do so on their
//     next refresh).
//
// IAM limits the inline policies of a role to 10,240 characters in all;
// DefaultDenyBudget leaves room for the role's other inline policies.

// DenyPolicyName is the inline role policy keyferry manages.
const DenyPolicyName = "keyferry-revoked-sessions"

// DefaultDenyBudget is the default size budget of the deny policy.
const DefaultDenyBudget = 6144

const (
	sidUntil   = "KeyferryRevokedUntil"
	sidBefore  = "KeyferryIssuedBefore"
	hourLayout = "2006010215"
)

// DeniedSession is one revoked session.
type DeniedSession struct {
	// UserID is the session's aws:userid, "AROAID:session-name".
	UserID string
	// IssuedAt is when STS issued the session (zero: unknown, taken as
	// Until, the latest it can have been); Until when it expires.
	IssuedAt, Until time.Time
}

// DenyDoc is the parsed deny policy: explicit sessions by hour bucket, and
// an optional issued-before cutoff.
type DenyDoc struct {
	// Buckets maps an hour (UTC) to the user ids whose sessions all
	// expire by then.
	Buckets map[time.Time][]string
	// Issued maps each bucket's hour to the latest issue time among its
	// sessions.
	Issued map[time.Time]time.Time
	// Before, if non-zero, denies sessions issued before it, until
	// BeforeUntil.
	Before, BeforeUntil time.Time
}

type policyDoc struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid       string                    `json:"Sid"`
	Effect    string                    `json:"Effect"`
	Action    string                    `json:"Action"`
	Resource  string                    `json:"Resource"`
	Condition map[string]map[string]any `json:"Condition"`
}

// ParseDenyPolicy reads a document written by Render. Statements keyferry
// did not write are an error: the policy name is keyferry's.
func ParseDenyPolicy(doc string) (DenyDoc, error) {
	d := DenyDoc{Buckets: map[time.Time][]string{}, Issued: map[time.Time]time.Time{}}
	if strings.TrimSpace(doc) == "" {
		return d, nil
	}
	var p policyDoc
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return d, fmt.Errorf("deny policy: %w", err)
	}
	for _, s := range p.Statement {
		if !strings.HasPrefix(s.Sid, sidUntil) && !strings.HasPrefix(s.Sid, sidBefore) {
			return d, fmt.Errorf("deny policy: statement %q was not written by keyferry", s.Sid)
		}
		if err := d.add(s); err != nil {
			return d, fmt.Errorf("deny policy: statement %q: %w", s.Sid, err)
		}
	}
	return d, nil
}

// add reads one of keyferry's statements into d.
func (d *DenyDoc) add(s statement) error {
	if rest, ok := strings.CutPrefix(s.Sid, sidBefore); ok {
		// KeyferryIssuedBefore<unix>Until<hour>
		var before int64
		var until string
		if _, err := fmt.Sscanf(rest, "%dUntil%s", &before, &until); err != nil {
			return err
		}
		u, err := time.Parse(hourLayout, until)
		if err != nil {
			return err
		}
		d.Before, d.BeforeUntil = time.Unix(before, 0).UTC(), u
		return nil
	}
	var hour string
	var issued int64
	if _, err := fmt.Sscanf(strings.TrimPrefix(s.Sid, sidUntil), "%10sIssued%d", &hour, &issued); err != nil {
		return err
	}
	h, err := time.Parse(hourLayout, hour)
	if err != nil {
		return err
	}
	if t := time.Unix(issued, 0).UTC(); t.After(d.Issued[h]) {
		d.Issued[h] = t
	}
	ids, err := stringList(s.Condition["StringLike"]["aws:userid"])
	if err != nil {
		return err
	}
	d.Buckets[h] = append(d.Buckets[h], ids...)
	return nil
}

func stringList(v any) ([]string, error) {
	switch t := v.(type) {
	case string:
		return []string{t}, nil
	case []any:
		out := make([]string, 0, len(t))
		for _, x := range t {
			s, ok := x.(string)
			if !ok {
				return nil, errors.New("aws:userid list holds a non-string")
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, errors.New("no aws:userid condition")
}

// Add records a revoked session, in the bucket of the hour its session
// ends in (rounded up, so the bucket outlives every session in it).
func (d *DenyDoc) Add(s DeniedSession) {
	if d.Buckets == nil {
		d.Buckets = map[time.Time][]string{}
	}
	if d.Issued == nil {
		d.Issued = map[time.Time]time.Time{}
	}
	h := s.Until.UTC().Truncate(time.Hour)
	if !h.Equal(s.Until.UTC()) {
		h = h.Add(time.Hour)
	}
	issued := s.IssuedAt.UTC()
	if issued.IsZero() || issued.After(s.Until) {
		issued = s.Until.UTC()
	}
	if issued.After(d.Issued[h]) {
		d.Issued[h] = issued
	}
	if slices.Contains(d.Buckets[h], s.UserID) {
		return
	}
	d.Buckets[h] = append(d.Buckets[h], s.UserID)
}

// Prune drops what has expired by now.
func (d *DenyDoc) Prune(now time.Time) {
	for h := range d.Buckets {
		if !h.After(now) {
			delete(d.Buckets, h)
			delete(d.Issued, h)
		}
	}
	if !d.BeforeUntil.IsZero() && !d.BeforeUntil.After(now) {
		d.Before, d.BeforeUntil = time.Time{}, time.Time{}
	}
}

// Empty reports whether nothing is denied any more (the policy can go).
func (d *DenyDoc) Empty() bool { return len(d.Buckets) == 0 && d.Before.IsZero() }

// Render writes the policy document, collapsing the buckets that end
// first into the issued-before cutoff until it fits budget characters.
func (d *DenyDoc) Render(budget int) (string, error) {
	for {
		doc, err := d.render()
		if err != nil {
			return "", err
		}
		if len(doc) <= budget {
			return doc, nil
		}
		if len(d.Buckets) == 0 {
			return "", fmt.Errorf("deny policy: %d characters exceed the budget of %d even with every session collapsed", len(doc), budget)
		}
		h := slices.MinFunc(slices.Collect(maps.Keys(d.Buckets)), time.Time.Compare)
		// Every session in the bucket was issued by d.Issued[h] and has
		// expired by h.
		cut := d.Issued[h].Add(time.Second).Truncate(time.Second)
		if cut.After(d.Before) {
			d.Before = cut
		}
		if h.After(d.BeforeUntil) {
			d.BeforeUntil = h
		}
		delete(d.Buckets, h)
		delete(d.Issued, h)
	}
}

func (d *DenyDoc) render() (string, error) {
	p := policyDoc{Version: "2012-10-17"}
	for _, h := range slices.SortedFunc(maps.Keys(d.Buckets), time.Time.Compare) {
		ids := slices.Clone(d.Buckets[h])
		sort.Strings(ids)
		p.Statement = append(p.Statement, statement{
			Sid: fmt.Sprintf("%s%sIssued%d", sidUntil, h.UTC().Format(hourLayout), d.Issued[h].Unix()), Effect: "Deny", Action: "*", Resource: "*",
			Condition: map[string]map[string]any{"StringLike": {"aws:userid": ids}},
		})
	}
	if !d.Before.IsZero() {
		p.Statement = append(p.Statement, statement{
			Sid:    fmt.Sprintf("%s%dUntil%s", sidBefore, d.Before.Unix(), d.BeforeUntil.UTC().Format(hourLayout)),
			Effect: "Deny", Action: "*", Resource: "*",
			Condition: map[string]map[string]any{"DateLessThan": {"aws:TokenIssueTime": d.Before.UTC().Format(time.RFC3339)}},
		})
	}
	if len(p.Statement) == 0 {
		return "", nil
	}
	b, err := json.Marshal(p)
	return string(b), err
}
