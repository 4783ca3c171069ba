package main

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/client"
	"github.com/keyferry/keyferry/internal/config"
	"github.com/keyferry/keyferry/internal/lease"
	"github.com/keyferry/keyferry/internal/logging"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
	"github.com/keyferry/keyferry/internal/server"
	"github.com/keyferry/keyferry/internal/storage"
	"github.com/keyferry/keyferry/internal/storage/backend"
	"github.com/keyferry/keyferry/internal/testutil"
)

// Upstream modes.
const (
	upstreamInproc = "inproc"
	upstreamHTTP   = "http"
)

// newAdminToken returns a random dev admin token in the kfa_ format; it
// never leaves the process.
func newAdminToken() string {
	var id [8]byte
	var secret [32]byte
	crand.Read(id[:])
	crand.Read(secret[:])
	return "kfa_" + hex.EncodeToString(id[:]) + "_" + base64.RawURLEncoding.EncodeToString(secret[:])
}

// benchRole is the role every client asks for: the shape of the article's
// deploy role (bound claims, a CEL condition, templates, tags, a session
// policy), so verification, evaluation and rendering cost what they cost in
// production.
func benchRole() api.Role {
	return api.Role{
		Name: "deploy", Issuer: server.DevIssuerName,
		Match:     map[string]api.Values{"project_path": {"group/app"}, "ref_protected": {"true"}, "ref": {"main", "release/*"}},
		Condition: `claims.pipeline_source != "merge_request_event"`,
		AWS: api.AWS{
			Type: policy.TypeAssumeRole, RoleARN: "arn:aws:iam::123456789012:role/deploy",
			SessionName:    "gl-{project_path}-{job_id}",
			SessionPolicy:  []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::ci-bucket/*"}]}`),
			Tags:           map[string]string{"project": "{project_path}", "pipeline": "{pipeline_id}"},
			SourceIdentity: "{user_login}",
		},
	}
}

// brokerConfig says how to start a broker.
type brokerConfig struct {
	upstream string
	// logLevel is the server's slog level ("info" as in production,
	// "debug", or "off"). Lines go to server.log in the temp dir through
	// the JSON handler the real server uses.
	logLevel string
	keep     bool // keep the temp dir
}

// broker is a dev-mode keyferry server running in this process.
type broker struct {
	addr      string // http://127.0.0.1:port
	admin     *client.Client
	dir       string
	dbPath    string
	auditPath string

	cancel context.CancelFunc
	done   chan error
	closes []func()
	keep   bool
}

// startBroker runs server.Run on 127.0.0.1:0 with durable bolt storage and
// an fsync'd audit file in a fresh temp dir, and waits until it is ready.
// The server's goroutines carry the pprof label side=server.
func startBroker(ctx context.Context, bc brokerConfig) (_ *broker, err error) {
	dir, err := os.MkdirTemp("", "keyferry-loadgen-")
	if err != nil {
		return nil, err
	}
	b := &broker{dir: dir, dbPath: filepath.Join(dir, "keyferry.db"), auditPath: filepath.Join(dir, "audit.log"), keep: bc.keep}
	defer func() {
		if err != nil {
			b.stop()
		}
	}()

	var minter lease.Minter
	switch bc.upstream {
	case upstreamInproc:
		minter = inprocMinter{}
	case upstreamHTTP:
		// The real provider (aws-sdk-go-v2, SigV4 signing, XML parsing)
		// against the fake STS over loopback HTTP.
		sts := testutil.NewFakeSTSHandler(testutil.WithoutSTSRecording())
		ts := httptest.NewUnstartedServer(sts)
		pprof.Do(ctx, pprof.Labels("side", "upstream"), func(context.Context) { ts.Start() })
		b.closes = append(b.closes, func() { sts.Close(); ts.Close() })
		p, err := awsprov.New(ctx, awsprov.Config{
			Region: "us-east-1", Endpoint: ts.URL,
			Credentials: credentials.NewStaticCredentialsProvider("AKIABROKER0000000001", "brokersecret", ""),
		})
		if err != nil {
			return nil, err
		}
		minter = p
	default:
		return nil, fmt.Errorf("unknown upstream %q (want %s or %s)", bc.upstream, upstreamInproc, upstreamHTTP)
	}

	logger, closeLog, err := serverLogger(filepath.Join(dir, "server.log"), bc.logLevel)
	if err != nil {
		return nil, err
	}
	b.closes = append(b.closes, closeLog)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cfg := &config.Config{
		Listen: ln.Addr().String(), Storage: "bolt://" + b.dbPath,
		Audit: config.Audit{Path: b.auditPath}, Dev: true,
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		ln.Close()
		return nil, err
	}
	b.addr = "http://" + ln.Addr().String()
	adminToken := newAdminToken()

	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.cancel = cancel
	b.done = make(chan error, 1)
	go pprof.Do(sctx, pprof.Labels("side", "server"), func(sctx context.Context) {
		b.done <- server.Run(sctx, cfg, server.Options{
			Out: io.Discard, DevAdminToken: adminToken, Minter: minter, Listener: ln, Logger: logger,
		})
	})

	if err := b.waitReady(ctx); err != nil {
		return nil, err
	}
	if b.admin, err = client.New(b.addr, client.Options{Token: adminToken}); err != nil {
		return nil, err
	}
	if _, err := b.admin.PutRole(ctx, benchRole(), false); err != nil {
		return nil, fmt.Errorf("create role: %w", err)
	}
	return b, nil
}

func (b *broker) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-b.done:
			b.done <- err
			return fmt.Errorf("server stopped during startup: %v", err)
		default:
		}
		resp, err := http.Get(b.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not ready after 10s: %v", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// tokens mints n GitLab-shaped job tokens that the bench role accepts, one
// per client, each with its own job id, valid for ttl.
func (b *broker) tokens(ctx context.Context, n int, ttl time.Duration) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		r, err := b.admin.DevToken(ctx, api.DevTokenRequest{
			ProjectPath: "group/app", Ref: "main", UserLogin: "loadgen",
			PipelineID: "7000", JobID: fmt.Sprint(100000 + i), TTLSeconds: int64(ttl / time.Second),
		})
		if err != nil {
			return nil, fmt.Errorf("dev token: %w", err)
		}
		out[i] = r.Token
	}
	return out, nil
}

// metrics scrapes /metrics.
func (b *broker) metrics(ctx context.Context) (promSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return parseProm(resp.Body)
}

// stop shuts the server down and removes the temp dir (unless kept).
func (b *broker) stop() error {
	var err error
	if b.cancel != nil {
		b.cancel()
		select {
		case err = <-b.done:
		case <-time.After(20 * time.Second):
			err = errors.New("server did not stop within 20s")
		}
		b.cancel = nil
	}
	for i := len(b.closes) - 1; i >= 0; i-- {
		b.closes[i]()
	}
	b.closes = nil
	if !b.keep && b.dir != "" {
		os.RemoveAll(b.dir)
	}
	return err
}

// durability is what a stopped broker left on disk.
type durability struct {
	Leases      int  `json:"leases"`       // lease records in the bolt file
	AuditIssues int  `json:"audit_issues"` // issue events in the audit log
	AuditOK     bool `json:"audit_chain_ok"`
}

// checkDisk counts the leases in the bolt file and the issue events in the
// audit log, and verifies the audit hash chain. Call it after stop (with
// keep) or before the dir is removed: it opens the files the server closed.
func checkDisk(ctx context.Context, dbPath, auditPath string) (durability, error) {
	var d durability
	st, err := backend.Open("bolt://" + dbPath)
	if err != nil {
		return d, err
	}
	err = storage.Scan(ctx, st, storage.Range{Prefix: "leases/", KeysOnly: true}, func(storage.KV) (bool, error) { d.Leases++; return true, nil })
	st.Close()
	if err != nil {
		return d, err
	}
	f, err := os.Open(auditPath)
	if err != nil {
		return d, err
	}
	defer f.Close()
	if _, err := audit.Verify(f); err != nil {
		return d, fmt.Errorf("audit log does not verify: %w", err)
	}
	d.AuditOK = true
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return d, err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), audit.MaxLineBytes+1)
	issue := []byte(`"type":"issue"`)
	for sc.Scan() {
		if bytes.Contains(sc.Bytes(), issue) {
			d.AuditIssues++
		}
	}
	return d, sc.Err()
}

// serverLogger mirrors `keyferry server`: a JSON slog handler on an
// unbuffered file (the real server writes to stderr).
func serverLogger(path, level string) (*slog.Logger, func(), error) {
	var lvl slog.Level
	switch strings.ToLower(level) {
	case "off":
		return slog.New(slog.DiscardHandler), func() {}, nil
	case "", "info":
		lvl = slog.LevelInfo
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	default:
		return nil, nil, fmt.Errorf("unknown -log level %q (want info, debug, warn or off)", level)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	return slog.New(slog.NewJSONHandler(f, logging.Options(lvl))), func() { f.Close() }, nil
}

// inprocMinter is a zero-latency upstream: it returns random credentials
// shaped like STS's (ASIA key id, 40-character secret, ~600-character
// session token, the assumed-role ARN) without any I/O, so a run measures
// the broker and not the upstream.
type inprocMinter struct{}

var _ lease.Minter = inprocMinter{}

func (inprocMinter) AssumeRole(_ context.Context, req awsprov.Request) (*awsprov.Credentials, error) {
	return mintFake(req), nil
}

func (inprocMinter) AssumeRoleWithWebIdentity(_ context.Context, req awsprov.Request) (*awsprov.Credentials, error) {
	return mintFake(req), nil
}

const (
	keyIDAlphabet  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	base64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	fakeAccount    = "123456789012"
)

func mintFake(req awsprov.Request) *awsprov.Credentials {
	d := req.Duration
	if d == 0 {
		d = time.Hour
	}
	role := req.RoleARN[strings.LastIndexByte(req.RoleARN, '/')+1:]
	return &awsprov.Credentials{
		AccessKeyID:     "ASIA" + randString(keyIDAlphabet, 16),
		SecretAccessKey: randString(base64Alphabet, 40),
		SessionToken:    "IQoJb3JpZ2luX2VjE" + randString(base64Alphabet, 576),
		Expiration:      time.Now().Add(d).UTC().Truncate(time.Second),
		AssumedRoleARN:  "arn:aws:sts::" + fakeAccount + ":assumed-role/" + role + "/" + req.SessionName,
		AssumedRoleID:   "AROA" + randString(keyIDAlphabet, 17) + ":" + req.SessionName,
		AccountID:       fakeAccount,
	}
}

// randString returns n characters of alphabet (a power-of-two size). It
// is not a secret: the credentials are fake.
func randString(alphabet string, n int) string {
	mask := uint64(len(alphabet) - 1)
	b := make([]byte, n)
	var x uint64
	for i := range b {
		if i%10 == 0 {
			x = rand.Uint64()
		}
		b[i] = alphabet[x&mask]
		x >>= 6
	}
	return string(b)
}
