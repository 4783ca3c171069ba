// Package servertest runs a whole keyferry server in-process for tests:
// dev mode on a random loopback port, bolt storage and an audit file in a
// temp dir, and the real AWS provider pointed at a fake STS.
package servertest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/client"
	"github.com/keyferry/keyferry/internal/config"
	"github.com/keyferry/keyferry/internal/logging"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
	"github.com/keyferry/keyferry/internal/server"
	"github.com/keyferry/keyferry/internal/testutil"
)

// AdminToken is the dev admin token of every test server.
const AdminToken = "kfa_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// Server is a running test server.
type Server struct {
	t         *testing.T
	Addr      string
	Admin     *client.Client // holds AdminToken
	Anon      *client.Client // no token, as a CI job
	STS       *testutil.FakeSTS
	AuditPath string
	Logs      *testutil.SyncBuffer // the server's log (JSON, debug level)
}

// Start runs a whole dev-mode server in-process against a fake STS.
func Start(t *testing.T) *Server {
	t.Helper()
	dir := t.TempDir()
	sts := testutil.NewFakeSTS(t, testutil.WithSTSKey("AKIABROKER0000000001", "brokersecret"))
	minter, err := awsprov.New(context.Background(), awsprov.Config{
		Region: "us-east-1", Endpoint: sts.URL(), MaxAttempts: 2, MaxBackoff: time.Millisecond, CallTimeout: 2 * time.Second,
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider("AKIABROKER0000000001", "brokersecret", "")),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	cfg := &config.Config{
		Listen: ln.Addr().String(), Storage: "bolt://" + filepath.Join(dir, "kf.db"),
		Audit: config.Audit{Path: filepath.Join(dir, "audit.log")}, Dev: true,
		Limits: config.Limits{MaxBodyBytes: 32 << 10},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &testutil.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, cfg, server.Options{
			Out: io.Discard, DevAdminToken: AdminToken, Minter: minter, Listener: ln,
			Logger: slog.New(slog.NewJSONHandler(logs, logging.Options(slog.LevelDebug))),
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server.Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("server did not stop within 10s")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	admin, err := client.New(addr, client.Options{Token: AdminToken})
	if err != nil {
		t.Fatal(err)
	}
	anon, _ := client.New(addr, client.Options{})
	return &Server{t: t, Addr: addr, Admin: admin, Anon: anon, STS: sts, AuditPath: cfg.Audit.Path, Logs: logs}
}

// WriteRole stores r or fails the test.
func (h *Server) WriteRole(r api.Role) {
	h.t.Helper()
	if _, err := h.Admin.PutRole(context.Background(), r, false); err != nil {
		h.t.Fatalf("put role: %v", err)
	}
}

// Token mints a dev job token or fails the test.
func (h *Server) Token(req api.DevTokenRequest) string {
	h.t.Helper()
	out, err := h.Admin.DevToken(context.Background(), req)
	if err != nil {
		h.t.Fatalf("dev token: %v", err)
	}
	return out.Token
}

// AuditEvents verifies and decodes the audit file.
func (h *Server) AuditEvents() []audit.Event {
	h.t.Helper()
	f, err := os.Open(h.AuditPath)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	if _, err := audit.Verify(f); err != nil {
		h.t.Fatalf("audit log does not verify: %v", err)
	}
	_, _ = f.Seek(0, 0)
	var out []audit.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev audit.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// DeployRole is a typical GitLab role: group/app on a protected ref.
func DeployRole() api.Role {
	return api.Role{
		Name: "deploy", Issuer: "dev",
		Match:     map[string]api.Values{"project_path": {"group/app"}, "ref_protected": {"true"}},
		Condition: `claims.pipeline_source != "merge_request_event"`,
		AWS: api.AWS{
			Type: policy.TypeAssumeRole, RoleARN: "arn:aws:iam::123456789012:role/deploy",
			SessionName:    "gl-{project_path}-{job_id}",
			SessionPolicy:  json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::ci-bucket/*"}]}`),
			Tags:           map[string]string{"project": "{project_path}", "pipeline": "{pipeline_id}"},
			SourceIdentity: "{user_login}",
		},
	}
}

// APICode returns the status and code of an API error, or fails.
func APICode(t *testing.T, err error) (int, string) {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v (%T), want an API error", err, err)
	}
	return ae.Status, ae.Code
}
