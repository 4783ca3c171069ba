package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/keyferry/keyferry/internal/config"
	"github.com/keyferry/keyferry/internal/devissuer"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/lease"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
	"github.com/keyferry/keyferry/internal/server"
	"github.com/keyferry/keyferry/internal/storage/bolt"
)

// Files populate writes next to the database.
const (
	configFile = "keyferry.yaml"   // for `keyferry server --config`
	auditFile  = "audit.log"       // the broker's audit log
	metaFile   = "leasescale.json" // what populate wrote (populateMeta)
)

// populateMeta records what populate wrote, for restart's report.
type populateMeta struct {
	Leases      int       `json:"leases"`
	IAMUser     int       `json:"iam_user"`
	AssumeRole  int       `json:"assume_role"`
	At          time.Time `json:"populated_at"`
	ExpiryFrom  time.Time `json:"expiries_from"`
	ExpiryTo    time.Time `json:"expiries_to"`
	MeanJSON    int       `json:"mean_lease_json_bytes"`
	DBBytes     int64     `json:"db_bytes"`
	Seconds     float64   `json:"populate_seconds"`
	BatchLeases int       `json:"batch_leases"`
}

type populateOptions struct {
	n          int
	db         string
	batch      int
	iamShare   float64
	minExpiry  time.Duration
	maxExpiry  time.Duration
	randomSeed uint64
}

func runPopulate(args []string) error {
	fs := flag.NewFlagSet("populate", flag.ExitOnError)
	var o populateOptions
	fs.IntVar(&o.n, "n", 10000, "number of live leases to write")
	fs.StringVar(&o.db, "db", "", "bolt file to create (must not exist); the config, audit log and metadata go next to it")
	fs.IntVar(&o.batch, "batch", 64, "leases per transaction: a busy server's group commit holds tens of issuances; much larger batches free pages the server would reuse, leaving a file with a large freelist")
	fs.Float64Var(&o.iamShare, "iam-share", 0.2, "share of iam_user leases (the rest are assume_role)")
	fs.DurationVar(&o.minExpiry, "expiry-min", time.Hour, "earliest expiry, from now")
	fs.DurationVar(&o.maxExpiry, "expiry-max", 12*time.Hour, "latest expiry, from now")
	fs.Uint64Var(&o.randomSeed, "seed", 1, "random seed for the generated identities")
	fs.Parse(args)
	if o.db == "" || o.n < 1 || o.batch < 1 || o.iamShare < 0 || o.iamShare > 1 || o.minExpiry <= 0 || o.maxExpiry < o.minExpiry {
		return errors.New("need -db, -n ≥ 1, -batch ≥ 1, 0 ≤ -iam-share ≤ 1, 0 < -expiry-min ≤ -expiry-max")
	}
	db, err := filepath.Abs(o.db)
	if err != nil {
		return err
	}
	if _, err := os.Stat(db); err == nil {
		return fmt.Errorf("%s exists: populate writes a new store", db)
	}
	dir := filepath.Dir(db)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ctx := context.Background()
	start := time.Now()

	// The store and its first admin token, exactly as `keyferry server
	// init` makes them, and a config file for `keyferry server`.
	cfgPath := filepath.Join(dir, configFile)
	cfgYAML := fmt.Sprintf("storage: %s\naudit:\n  path: %s\n", strconv.Quote("bolt://"+db), strconv.Quote(filepath.Join(dir, auditFile)))
	if err := os.WriteFile(cfgPath, []byte(cfgYAML), 0o600); err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath, func(string) string { return "" })
	if err != nil {
		return err
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := server.Init(ctx, cfg, io.Discard); err != nil {
		return err
	}

	// Setup is not measured: skip fsync per batch and sync once at the end.
	// The bytes written are the same.
	st, err := bolt.Open(db, bolt.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer st.Close()
	g := newLeaseGen(o.randomSeed, start, o.minExpiry, o.maxExpiry, o.iamShare)
	meta := populateMeta{Leases: o.n, At: start.UTC(), ExpiryFrom: start.Add(o.minExpiry).UTC(), ExpiryTo: start.Add(o.maxExpiry).UTC(), BatchLeases: o.batch}
	var jsonBytes int64
	last := time.Now()
	for done := 0; done < o.n; {
		k := min(o.batch, o.n-done)
		batch := make([]*lease.Lease, k)
		for i := range batch {
			l := g.next()
			if l.Type == policy.TypeIAMUser {
				meta.IAMUser++
			} else {
				meta.AssumeRole++
			}
			b, _ := json.Marshal(l)
			jsonBytes += int64(len(b))
			batch[i] = l
		}
		if err := lease.Seed(ctx, st, batch); err != nil {
			return err
		}
		done += k
		if time.Since(last) > 5*time.Second || done == o.n {
			last = time.Now()
			fmt.Fprintf(os.Stderr, "populate: %d/%d leases, %.0f s, %.0f leases/s\n", done, o.n, time.Since(start).Seconds(), float64(done)/time.Since(start).Seconds())
		}
	}
	if err := st.Close(); err != nil {
		return err
	}
	syscall.Sync()
	fi, err := os.Stat(db)
	if err != nil {
		return err
	}
	meta.DBBytes = fi.Size()
	meta.MeanJSON = int(jsonBytes / int64(o.n))
	meta.Seconds = time.Since(start).Seconds()
	b, _ := json.MarshalIndent(meta, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, metaFile), append(b, '\n'), 0o600); err != nil {
		return err
	}
	fmt.Printf("populated %s: %d leases (%d assume_role, %d iam_user), mean lease record %d B, file %.1f MB (%.0f B/lease), expiries %s … %s, %.0f s\n",
		db, o.n, meta.AssumeRole, meta.IAMUser, meta.MeanJSON, float64(meta.DBBytes)/1e6, float64(meta.DBBytes)/float64(o.n),
		meta.ExpiryFrom.Format(time.RFC3339), meta.ExpiryTo.Format(time.RFC3339), meta.Seconds)
	return nil
}

// leaseGen makes leases shaped like the ones the broker writes: GitLab
// identities over a few thousand projects, a few dozen roles, the job
// token's claims on refreshable (assume_role) leases, session tags, a
// refresh-handle hash; iam_user leases name their user.
type leaseGen struct {
	rng                  *rand.Rand
	now                  time.Time
	minExpiry, maxExpiry time.Duration
	iamShare             float64
	job                  int
}

func newLeaseGen(seed uint64, now time.Time, minExpiry, maxExpiry time.Duration, iamShare float64) *leaseGen {
	return &leaseGen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: now, minExpiry: minExpiry, maxExpiry: maxExpiry, iamShare: iamShare, job: 500_000_000}
}

const (
	genProjects = 5000
	genRoles    = 40
	genUsers    = 2000
	gitlabURL   = "https://gitlab.example.com"
)

func (g *leaseGen) next() *lease.Lease {
	r := g.rng
	g.job += 1 + r.IntN(3)
	p := r.IntN(genProjects)
	project := fmt.Sprintf("group-%d/service-%d", p%300, p)
	projectID := strconv.Itoa(10_000 + p)
	pipeline := strconv.Itoa(90_000_000 + g.job/8)
	job := strconv.Itoa(g.job)
	user := fmt.Sprintf("dev-%d", r.IntN(genUsers))
	ref := "main"
	if r.IntN(4) == 0 {
		ref = fmt.Sprintf("release/%d.%d", r.IntN(20), r.IntN(10))
	}
	ttl := g.minExpiry + time.Duration(r.Int64N(int64(g.maxExpiry-g.minExpiry)+1))
	issued := g.now.Add(-time.Duration(r.Int64N(int64(5 * time.Minute))))
	expires := g.now.Add(ttl)
	claims := devissuer.GitLabClaims(gitlabURL, devissuer.GitLabOptions{
		ProjectPath: project, ProjectID: projectID, NamespaceID: strconv.Itoa(p % 300),
		Ref: ref, Protected: true, UserLogin: user, UserID: strconv.Itoa(1000 + r.IntN(genUsers)),
		PipelineID: pipeline, JobID: job, Audience: []string{"https://keyferry.example.com"}, Now: issued,
		SHA: randHex(r, 20), JTI: randHex(r, 16),
	})
	id := identity.Identity{Issuer: "gitlab", IssuerURL: gitlabURL, Kind: identity.KindGitLab, Subject: claims["sub"].(string), Claims: claims}
	roleN := r.IntN(genRoles)
	tags := []policy.Tag{{Key: "project", Value: project}, {Key: "pipeline", Value: pipeline}}
	l := &lease.Lease{
		ID: lease.NewID(issued), Identity: id.Summary(), IssuedAt: issued.UTC(), ExpiresAt: expires.UTC(),
		State: lease.StateActive, RequestID: randHex(r, 8), SourceAddr: fmt.Sprintf("10.%d.%d.%d:%d", r.IntN(256), r.IntN(256), r.IntN(256), 30000+r.IntN(30000)),
		MaxExpiresAt: issued.Add(12 * time.Hour).UTC(), Issuer: "gitlab", Tags: tags,
	}
	if r.Float64() < g.iamShare {
		// issueUser: no claims or refresh handle; the user is named after
		// the lease, under keyferry's path.
		l.Type, l.Role = policy.TypeIAMUser, fmt.Sprintf("artifacts-%d", roleN)
		l.UserName, l.UserPath, l.Region = "kf-"+l.ID, policy.DefaultUserPath, "us-east-1"
		l.AccessKeyID = "AKIA" + randUpper(r, 16)
		l.UserParts = &awsprov.UserParts{InlinePolicies: []string{"keyferry"}}
		return l
	}
	session := fmt.Sprintf("gl-%s-%s", projectID, job)
	l.Type, l.Role = policy.TypeAssumeRole, fmt.Sprintf("deploy-%d", roleN)
	l.RoleARN = fmt.Sprintf("arn:aws:iam::123456789012:role/ci/deploy-%d", roleN)
	l.SessionName, l.SourceIdentity = session, user
	l.AccessKeyID = "ASIA" + randUpper(r, 16)
	l.AssumedRoleID = "AROA" + randUpper(r, 17) + ":" + session
	l.Claims = claims
	l.RefreshHash = randHex(r, 32)
	return l
}

func randHex(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return hex.EncodeToString(b)
}

func randUpper(r *rand.Rand, n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// readMeta reads what populate wrote next to db.
func readMeta(db string) (populateMeta, error) {
	var m populateMeta
	b, err := os.ReadFile(filepath.Join(filepath.Dir(db), metaFile))
	if err != nil {
		return m, fmt.Errorf("%w (was %s made by leasescale populate?)", err, db)
	}
	return m, json.Unmarshal(b, &m)
}
