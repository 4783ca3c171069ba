package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/client"
	"github.com/keyferry/keyferry/internal/dur"
	"github.com/keyferry/keyferry/internal/server/servertest"
	"github.com/keyferry/keyferry/internal/testutil"
)

func TestIssueAndDeny(t *testing.T) {
	h := servertest.Start(t)
	ctx := context.Background()
	h.WriteRole(servertest.DeployRole())

	tok := h.Token(api.DevTokenRequest{ProjectPath: "group/app", JobID: "4242", PipelineID: "77", UserLogin: "alice"})
	resp, err := h.Anon.Creds(ctx, api.CredsRequest{Role: "deploy", Token: tok})
	if err != nil {
		t.Fatalf("creds: %v", err)
	}
	c := resp.Credentials
	if !strings.HasPrefix(c.AccessKeyID, "ASIA") || c.SecretAccessKey == "" || c.SessionToken == "" {
		t.Fatalf("got credentials %+v, want a full STS session", c.AccessKeyID)
	}
	if d := time.Until(c.Expiration); d < 55*time.Minute || d > 61*time.Minute {
		t.Errorf("expiration in %v, want the role's default ttl of 1h", d)
	}
	req, ok := h.STS.LastRequest()
	if !ok {
		t.Fatal("STS saw no request")
	}
	if req.RoleSessionName != "gl-group-app-4242" || req.SourceIdentity != "alice" || req.DurationSeconds != 3600 {
		t.Errorf("STS got session %q source %q duration %d", req.RoleSessionName, req.SourceIdentity, req.DurationSeconds)
	}
	if !strings.Contains(req.Policy, "ci-bucket") {
		t.Errorf("STS got policy %q, want the session policy", req.Policy)
	}
	tags := map[string]string{}
	for _, tg := range req.Tags {
		tags[tg.Key] = tg.Value
	}
	if tags["project"] != "group/app" || tags["pipeline"] != "77" {
		t.Errorf("STS got tags %v", tags)
	}

	// The lease is recorded with the identity summary.
	l, err := h.Admin.Lease(ctx, resp.LeaseID)
	if err != nil {
		t.Fatal(err)
	}
	if l.State != "active" || l.AccessKeyID != c.AccessKeyID || l.Identity.Project != "group/app" || l.Identity.Job != "4242" || l.Identity.User != "alice" {
		t.Errorf("lease %+v", l)
	}

	// Another project: 403 no_matching_role, no lease, an audited denial.
	other := h.Token(api.DevTokenRequest{ProjectPath: "evil/app"})
	_, err = h.Anon.Creds(ctx, api.CredsRequest{Role: "deploy", Token: other})
	if st, code := servertest.APICode(t, err); st != 403 || code != "no_matching_role" {
		t.Fatalf("got %d %s, want 403 no_matching_role", st, code)
	}
	if !strings.Contains(err.Error(), "project_path") || strings.Contains(err.Error(), "group/app") {
		t.Errorf("denial message %q should name the claim but not the expected value", err)
	}
	leases, _, err := h.Admin.Leases(ctx, client.LeaseFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 1 {
		t.Errorf("got %d leases, want 1 (the denial must not create one)", len(leases))
	}

	// Audit: issue then deny, with the AccessKeyId and never a secret.
	evs := h.AuditEvents()
	var issue, deny *audit.Event
	for i := range evs {
		switch evs[i].Type {
		case audit.TypeIssue:
			issue = &evs[i]
		case audit.TypeDeny:
			deny = &evs[i]
		}
	}
	if issue == nil || issue.AccessKeyID != c.AccessKeyID || issue.LeaseID != resp.LeaseID || issue.Identity == nil || issue.Identity.Job != "4242" || issue.RequestID == "" {
		t.Errorf("issue event %+v", issue)
	}
	if deny == nil || deny.Reason != "no_matching_role" || deny.Identity == nil || deny.Identity.Project != "evil/app" {
		t.Errorf("deny event %+v", deny)
	}
	raw, _ := os.ReadFile(h.AuditPath)
	for name, secret := range map[string]string{"secret": c.SecretAccessKey, "session token": c.SessionToken, "job token": tok} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("audit log contains the %s", name)
		}
		if strings.Contains(h.Logs.String(), secret) {
			t.Errorf("server log contains the %s", name)
		}
	}
	if !strings.Contains(h.Logs.String(), c.AccessKeyID) {
		t.Errorf("server log should name the AccessKeyId for CloudTrail correlation")
	}
}

func TestUpstreamErrors(t *testing.T) {
	h := servertest.Start(t)
	ctx := context.Background()
	h.WriteRole(servertest.DeployRole())
	tok := h.Token(api.DevTokenRequest{ProjectPath: "group/app"})

	h.STS.SetFault(testutil.STSFault{Code: "Throttling", Message: "Rate exceeded"})
	_, err := h.Anon.Creds(ctx, api.CredsRequest{Role: "deploy", Token: tok})
	if st, code := servertest.APICode(t, err); st != 503 || code != "upstream_throttled" {
		t.Errorf("throttled: got %d %s, want 503 upstream_throttled", st, code)
	}
	// Retry-After is set on the raw response.
	h.STS.SetFault(testutil.STSFault{Code: "Throttling", Message: "Rate exceeded"})
	body, _ := json.Marshal(api.CredsRequest{Role: "deploy", Token: tok})
	r, err := http.Post(h.Addr+"/v1/creds", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 503 || r.Header.Get("Retry-After") == "" {
		t.Errorf("got %d Retry-After %q, want 503 with Retry-After", r.StatusCode, r.Header.Get("Retry-After"))
	}

	h.STS.SetFault(testutil.STSFault{Code: "AccessDenied", Message: "User: arn:aws:iam::123456789012:user/broker is not authorized"})
	_, err = h.Anon.Creds(ctx, api.CredsRequest{Role: "deploy", Token: tok})
	if st, code := servertest.APICode(t, err); st != 403 || code != "upstream_access_denied" {
		t.Errorf("denied: got %d %s, want 403 upstream_access_denied", st, code)
	}
	if !strings.Contains(err.Error(), "AccessDenied") || strings.Contains(err.Error(), "user/broker") {
		t.Errorf("message %q should name the upstream code but not the broker's principal", err)
	}
	h.STS.ClearFaults()
	if _, err := h.Anon.Creds(ctx, api.CredsRequest{Role: "deploy", Token: tok}); err != nil {
		t.Errorf("after the faults clear: %v", err)
	}
	leases, _, _ := h.Admin.Leases(ctx, client.LeaseFilter{})
	if len(leases) != 1 {
		t.Errorf("got %d leases, want 1 (failed mints leave none)", len(leases))
	}
}

// TestBadInput sends malformed requests of every kind: each gets a specific
// 4xx code and message, and nothing is written but audit events.
func TestBadInput(t *testing.T) {
	h := servertest.Start(t)
	h.WriteRole(servertest.DeployRole())
	good := h.Token(api.DevTokenRequest{ProjectPath: "group/app"})
	tests := []struct {
		name       string
		body       string
		ctype      string
		wantStatus int
		wantCode   string
	}{
		{name: "empty body", body: "", wantStatus: 400, wantCode: "invalid_json"},
		{name: "not json", body: "role=deploy", wantStatus: 400, wantCode: "invalid_json"},
		{name: "array", body: `[1,2]`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "trailing data", body: `{"role":"deploy","token":"x"} {}`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "unknown field", body: `{"role":"deploy","token":"x","admin":true}`, wantStatus: 400, wantCode: "unknown_field"},
		{name: "wrong type", body: `{"role":42,"token":"x"}`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "wrong content type", body: `{"role":"deploy"}`, ctype: "text/plain", wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "oversized body", body: `{"role":"deploy","token":"` + strings.Repeat("a", 40<<10) + `"}`, wantStatus: 413, wantCode: "body_too_large"},
		{name: "missing role", body: `{"token":"x"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "bad role name", body: `{"role":"../etc","token":"x"}`, wantStatus: 400, wantCode: "invalid_name"},
		{name: "negative ttl", body: `{"role":"deploy","token":"` + good + `","ttl_seconds":-5}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "ttl too long", body: `{"role":"deploy","token":"` + good + `","ttl_seconds":7200}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "missing token", body: `{"role":"deploy"}`, wantStatus: 401, wantCode: "token_missing"},
		{name: "garbage token", body: `{"role":"deploy","token":"not-a-jwt"}`, wantStatus: 401, wantCode: "token_malformed"},
		{name: "JWE token", body: `{"role":"deploy","token":"a.b.c.d.e"}`, wantStatus: 401, wantCode: "token_encrypted"},
		{name: "oversized token", body: `{"role":"deploy","token":"` + strings.Repeat("a", 20001) + `"}`, wantStatus: 413, wantCode: "token_too_large"},
		{name: "tampered token", body: `{"role":"deploy","token":"` + tamper(good) + `"}`, wantStatus: 401, wantCode: "signature_invalid"},
		{name: "unknown role", body: `{"role":"nope","token":"` + good + `"}`, wantStatus: 403, wantCode: "no_matching_role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", h.Addr+"/v1/creds", strings.NewReader(tt.body))
			ct := tt.ctype
			if ct == "" {
				ct = "application/json"
			}
			req.Header.Set("Content-Type", ct)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var er api.ErrorResponse
			if err := json.NewDecoder(resp.Body).Decode(&er); err != nil {
				t.Fatalf("error body is not JSON: %v", err)
			}
			if resp.StatusCode != tt.wantStatus || er.Error.Code != tt.wantCode {
				t.Fatalf("got %d %s (%s), want %d %s", resp.StatusCode, er.Error.Code, er.Error.Message, tt.wantStatus, tt.wantCode)
			}
			if er.Error.Message == "" || er.Error.RequestID == "" {
				t.Errorf("error %+v lacks a message or request id", er.Error)
			}
			if strings.Contains(er.Error.Message, "aaaaaaaaaa") || (len(good) > 0 && strings.Contains(er.Error.Message, good)) {
				t.Errorf("message echoes the input: %q", er.Error.Message)
			}
		})
	}
	leases, _, err := h.Admin.Leases(context.Background(), client.LeaseFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 0 {
		t.Errorf("got %d leases after bad requests, want 0", len(leases))
	}
	if n := h.STS.Calls(); n != 0 {
		t.Errorf("STS was called %d times by bad requests, want 0", n)
	}
	denies := 0
	for _, ev := range h.AuditEvents() {
		if ev.Type == audit.TypeDeny {
			denies++
		}
	}
	// Requests refused before the broker reads a token (malformed bodies)
	// are not identity decisions; every token or role decision is audited.
	if denies < 7 {
		t.Errorf("got %d deny events, want one per token/role refusal (≥ 7)", denies)
	}
}

// tamper rewrites the payload's project_path and keeps the signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		panic(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		panic(err)
	}
	claims["project_path"] = "group/other"
	nb, _ := json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(nb)
	return strings.Join(parts, ".")
}

func TestAdminAuth(t *testing.T) {
	h := servertest.Start(t)
	ctx := context.Background()
	_, err := h.Anon.Roles(ctx)
	if st, code := servertest.APICode(t, err); st != 401 || code != "unauthenticated" {
		t.Errorf("no token: got %d %s", st, code)
	}
	bad, _ := client.New(h.Addr, client.Options{Token: "kfa_0123456789abcdef_BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})
	_, err = bad.Roles(ctx)
	if st, code := servertest.APICode(t, err); st != 401 || code != "unauthenticated" {
		t.Errorf("wrong secret: got %d %s", st, code)
	}
	ro, err := h.Admin.CreateAdminToken(ctx, api.TokenCreateRequest{Name: "reader", Scopes: []string{"leases:read"}})
	if err != nil {
		t.Fatal(err)
	}
	reader, _ := client.New(h.Addr, client.Options{Token: ro.Token})
	if _, _, err := reader.Leases(ctx, client.LeaseFilter{}); err != nil {
		t.Errorf("reader listing leases: %v", err)
	}
	_, err = reader.PutRole(ctx, servertest.DeployRole(), false)
	if st, code := servertest.APICode(t, err); st != 403 || code != "forbidden" {
		t.Errorf("reader writing a role: got %d %s, want 403 forbidden", st, code)
	}
	if _, err := reader.DevToken(ctx, api.DevTokenRequest{}); err == nil {
		t.Error("reader minted a dev token")
	}
}

func TestRoleValidationAndApply(t *testing.T) {
	h := servertest.Start(t)
	ctx := context.Background()
	bad := servertest.DeployRole()
	bad.Match = nil
	bad.AWS.RoleARN = "arn:aws:iam::role/deploy"
	bad.Condition = "claims.no_such_claim == 1"
	_, err := h.Admin.PutRole(ctx, bad, false)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 422 || ae.Code != "invalid_object" || len(ae.Details) < 3 {
		t.Fatalf("got %v, want 422 invalid_object listing every problem", err)
	}
	res, err := h.Admin.PutRole(ctx, servertest.DeployRole(), false)
	if err != nil || res.Outcome != "created" {
		t.Fatalf("got %v %v, want created", res, err)
	}
	res, err = h.Admin.PutRole(ctx, servertest.DeployRole(), false)
	if err != nil || res.Outcome != "unchanged" {
		t.Fatalf("second write: got %v %v, want unchanged", res, err)
	}
	if res.Object.AWS.TTL.D() != time.Hour {
		t.Errorf("stored role ttl %v, want the 1h default filled in", res.Object.AWS.TTL)
	}
	// role test explains without minting.
	tok := h.Token(api.DevTokenRequest{ProjectPath: "group/app", Ref: "feature", Protected: new(false)})
	tr, err := h.Admin.TestRole(ctx, "deploy", api.RoleTestRequest{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Allowed {
		t.Error("unprotected ref allowed")
	}
	failed := ""
	for _, c := range tr.Checks {
		if !c.OK {
			failed += c.Name + " "
		}
	}
	if !strings.Contains(failed, "ref_protected") {
		t.Errorf("failed checks %q, want ref_protected", failed)
	}
	if h.STS.Calls() != 0 {
		t.Error("role test called STS")
	}
	// Deleting the issuer a role uses is refused.
	err = h.Admin.DeleteIssuer(ctx, "dev")
	if st, code := servertest.APICode(t, err); st != 409 || code != "in_use" {
		t.Errorf("delete used issuer: got %d %s, want 409 in_use", st, code)
	}
}

func TestRevokeIsIdempotentAndAudited(t *testing.T) {
	h := servertest.Start(t)
	ctx := context.Background()
	h.WriteRole(servertest.DeployRole())
	resp, err := h.Anon.Creds(ctx, api.CredsRequest{Role: "deploy", Token: h.Token(api.DevTokenRequest{ProjectPath: "group/app"})})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		l, err := h.Admin.RevokeLease(ctx, resp.LeaseID, "key pasted in a log")
		if err != nil {
			t.Fatal(err)
		}
		if l.State != "revoked" || !strings.Contains(l.RevokeNote, "reason: key pasted in a log") {
			t.Errorf("revoke #%d: got %+v", i+1, l)
		}
	}
	revokes := 0
	for _, ev := range h.AuditEvents() {
		if ev.Type == audit.TypeRevoke && ev.LeaseID == resp.LeaseID {
			revokes++
			if !strings.HasPrefix(ev.Actor, "admin_token:") {
				t.Errorf("revoke actor %q", ev.Actor)
			}
		}
	}
	if revokes != 1 {
		t.Errorf("got %d revoke events, want exactly 1", revokes)
	}
	_, err = h.Admin.RevokeLease(ctx, "01ARZ3NDEKTSV4RRFFQ69G5FAV", "")
	if st, code := servertest.APICode(t, err); st != 404 || code != "not_found" {
		t.Errorf("unknown lease: got %d %s", st, code)
	}
	ls, _, err := h.Admin.Leases(ctx, client.LeaseFilter{State: "revoked"})
	if err != nil || len(ls) != 1 {
		t.Errorf("filter by state: got %d leases, %v", len(ls), err)
	}
	ls, _, err = h.Admin.Leases(ctx, client.LeaseFilter{Project: "other/x"})
	if err != nil || len(ls) != 0 {
		t.Errorf("filter by project: got %d leases, %v", len(ls), err)
	}
}

func TestRefreshOverHTTP(t *testing.T) {
	h := servertest.Start(t)
	ctx := context.Background()
	r := servertest.DeployRole()
	r.AWS.MaxTTL = dur.Duration(4 * time.Hour)
	h.WriteRole(r)
	first, err := h.Anon.Creds(ctx, api.CredsRequest{Role: "deploy", Token: h.Token(api.DevTokenRequest{ProjectPath: "group/app"})})
	if err != nil {
		t.Fatal(err)
	}
	if first.RefreshHandle == "" || first.MaxExpiration.Sub(time.Now()) < 3*time.Hour {
		t.Fatalf("got handle %v max %v, want a handle valid ~4h", first.RefreshHandle != "", first.MaxExpiration)
	}
	second, err := h.Anon.Refresh(ctx, first.RefreshHandle)
	if err != nil {
		t.Fatal(err)
	}
	if second.LeaseID != first.LeaseID || second.Credentials.AccessKeyID == first.Credentials.AccessKeyID || second.RefreshHandle == first.RefreshHandle {
		t.Fatalf("refresh: same lease %v, new key %v, new handle %v", second.LeaseID == first.LeaseID,
			second.Credentials.AccessKeyID != first.Credentials.AccessKeyID, second.RefreshHandle != first.RefreshHandle)
	}
	// The admin view never shows refresh hashes.
	resp, err := http.NewRequest("GET", h.Addr+"/v1/leases/"+first.LeaseID, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Header.Set("Authorization", "Bearer "+servertest.AdminToken)
	res, err := http.DefaultClient.Do(resp)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if strings.Contains(string(body), "refresh_hash") {
		t.Errorf("lease view exposes refresh hashes: %s", body)
	}
	// Replaying the spent handle revokes the lease.
	_, err = h.Anon.Refresh(ctx, first.RefreshHandle)
	if st, code := servertest.APICode(t, err); st != 401 || code != "refresh_handle_reused" {
		t.Fatalf("replayed handle: got %d %s, want 401 refresh_handle_reused", st, code)
	}
	_, err = h.Anon.Refresh(ctx, second.RefreshHandle)
	if st, code := servertest.APICode(t, err); st != 401 || code != "lease_revoked" {
		t.Errorf("after the replay: got %d %s, want 401 lease_revoked", st, code)
	}
	raw, _ := os.ReadFile(h.AuditPath)
	if strings.Contains(string(raw), first.RefreshHandle[30:]) || strings.Contains(h.Logs.String(), second.RefreshHandle[30:]) {
		t.Error("a refresh handle reached the audit log or the server log")
	}
}

// TestSTSEndpointWithGoSDK points the AWS SDK for Go v2's own web-identity
// provider at keyferry's STS-compatible endpoint.
func TestSTSEndpointWithGoSDK(t *testing.T) {
	h := servertest.Start(t)
	ctx := context.Background()
	h.WriteRole(servertest.DeployRole())
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	retrieve := func(roleARN, token string) (aws.Credentials, error) {
		if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
			t.Fatal(err)
		}
		client := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(h.Addr + "/sts"), RetryMaxAttempts: 1})
		p := stscreds.NewWebIdentityRoleProvider(client, roleARN, stscreds.IdentityTokenFile(tokenFile), func(o *stscreds.WebIdentityRoleOptions) {
			o.RoleSessionName = "sdk-session"
		})
		return p.Retrieve(ctx)
	}
	good := h.Token(api.DevTokenRequest{ProjectPath: "group/app", JobID: "9001"})

	// By keyferry role name in the ARN's last segment, and by role_arn.
	for _, arn := range []string{"arn:aws:iam::123456789012:role/deploy", "arn:aws:iam::123456789012:role/keyferry/deploy"} {
		creds, err := retrieve(arn, good)
		if err != nil {
			t.Fatalf("%s: %v", arn, err)
		}
		if !strings.HasPrefix(creds.AccessKeyID, "ASIA") || creds.SecretAccessKey == "" || creds.SessionToken == "" || !creds.CanExpire {
			t.Fatalf("%s: got %+v", arn, creds.AccessKeyID)
		}
		if req, _ := h.STS.LastRequest(); req.IssuedAccessKeyID != creds.AccessKeyID || req.RoleSessionName != "gl-group-app-9001" {
			t.Errorf("%s: SDK got %s, upstream issued %s as %s", arn, creds.AccessKeyID, req.IssuedAccessKeyID, req.RoleSessionName)
		}
	}

	var apiErr interface{ ErrorCode() string }
	_, err := retrieve("arn:aws:iam::123456789012:role/deploy", h.Token(api.DevTokenRequest{ProjectPath: "evil/app"}))
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
		t.Errorf("other project: got %v, want AccessDenied", err)
	}
	_, err = retrieve("arn:aws:iam::123456789012:role/nope", good)
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
		t.Errorf("unknown role: got %v, want AccessDenied", err)
	}
	_, err = retrieve("arn:aws:iam::123456789012:role/deploy", tamper(good))
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidIdentityToken" {
		t.Errorf("tampered token: got %v, want InvalidIdentityToken", err)
	}
}

func TestSTSEndpointRawProtocol(t *testing.T) {
	h := servertest.Start(t)
	h.WriteRole(servertest.DeployRole())
	good := h.Token(api.DevTokenRequest{ProjectPath: "group/app"})
	base := url.Values{"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"}, "RoleArn": {"arn:aws:iam::123456789012:role/deploy"},
		"RoleSessionName": {"s1"}, "WebIdentityToken": {good}}
	with := func(k, v string) url.Values {
		u := url.Values{}
		for kk, vv := range base {
			u[kk] = vv
		}
		if v == "" {
			u.Del(k)
		} else {
			u.Set(k, v)
		}
		return u
	}
	tests := []struct {
		name       string
		form       url.Values
		ctype      string
		wantStatus int
		wantCode   string
	}{
		{name: "ok", form: base, wantStatus: 200},
		{name: "duration honoured", form: with("DurationSeconds", "1800"), wantStatus: 200},
		{name: "duration over the role ttl", form: with("DurationSeconds", "7200"), wantStatus: 400, wantCode: "ValidationError"},
		{name: "duration too short", form: with("DurationSeconds", "60"), wantStatus: 400, wantCode: "ValidationError"},
		{name: "no action", form: with("Action", ""), wantStatus: 400, wantCode: "MissingAction"},
		{name: "other action", form: with("Action", "AssumeRole"), wantStatus: 400, wantCode: "InvalidAction"},
		{name: "bad session name", form: with("RoleSessionName", "a/b"), wantStatus: 400, wantCode: "ValidationError"},
		{name: "no role arn", form: with("RoleArn", ""), wantStatus: 400, wantCode: "ValidationError"},
		{name: "policy refused", form: with("Policy", `{"Statement":[]}`), wantStatus: 400, wantCode: "ValidationError"},
		{name: "unknown parameter", form: with("Foo", "bar"), wantStatus: 400, wantCode: "InvalidParameterValue"},
		{name: "garbage token", form: with("WebIdentityToken", "not-a-jwt"), wantStatus: 400, wantCode: "InvalidIdentityToken"},
		{name: "json body", form: base, ctype: "application/json", wantStatus: 400, wantCode: "InvalidParameterValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := tt.ctype
			if ct == "" {
				ct = "application/x-www-form-urlencoded; charset=utf-8"
			}
			resp, err := http.Post(h.Addr+"/sts", ct, strings.NewReader(tt.form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if tt.wantCode != "" && !strings.Contains(string(body), "<Code>"+tt.wantCode+"</Code>") {
				t.Fatalf("got %s, want code %s", body, tt.wantCode)
			}
			if tt.wantStatus == 200 {
				for _, want := range []string{`<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">`, "<SubjectFromWebIdentityToken>project_path:group/app:", "<AccessKeyId>ASIA", "<RequestId>"} {
					if !strings.Contains(string(body), want) {
						t.Errorf("response lacks %q:\n%s", want, body)
					}
				}
			}
			if strings.Contains(string(body), good) {
				t.Error("the response echoes the token")
			}
		})
	}
	if req, _ := h.STS.LastRequest(); req.DurationSeconds != 3600 && req.DurationSeconds != 1800 {
		t.Errorf("upstream duration %d", req.DurationSeconds)
	}
}
