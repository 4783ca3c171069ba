// Package client is the Go client of keyferry's HTTP API, used by the CLI
// and by tests. It speaks in the wire types of package api and imports no
// server package, so that the runner-side commands built on it link none
// of the broker. Errors from the server come back as *APIError carrying
// the server's status, code, message and request id.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keyferry/keyferry/internal/api"
)

// Options configure a Client.
type Options struct {
	// Token is an admin token for admin endpoints.
	Token string
	// CACertFile is a PEM bundle to trust in addition to system roots.
	CACertFile string
	// HTTPClient overrides the transport entirely.
	HTTPClient *http.Client
	// Timeout per request (default 30s).
	Timeout time.Duration
	// AllowInsecureHTTP permits http:// to a non-loopback host. Every
	// request carries a bearer secret (a job token, a refresh handle or an
	// admin token), so this is refused by default.
	AllowInsecureHTTP bool
}

// Client talks to one keyferry server.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// New returns a client for addr (http(s)://host:port).
func New(addr string, o Options) (*Client, error) {
	if addr == "" {
		return nil, errors.New("no keyferry address: set KEYFERRY_ADDR or --addr (e.g. https://keyferry.example.com)")
	}
	u, err := url.Parse(strings.TrimSuffix(addr, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("keyferry address %q is not an http(s) URL", addr)
	}
	if u.Scheme == "http" && !o.AllowInsecureHTTP && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("refusing plain HTTP to %s: requests carry tokens; use https:// (or set KEYFERRY_CLIENT_INSECURE_HTTP=1 on a trusted network)", u.Host)
	}
	hc := o.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if o.CACertFile != "" {
			pem, err := os.ReadFile(o.CACertFile)
			if err != nil {
				return nil, fmt.Errorf("read CA certificate: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s holds no PEM certificate", o.CACertFile)
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		timeout := o.Timeout
		if timeout == 0 {
			timeout = 30 * time.Second
		}
		hc = &http.Client{Transport: tr, Timeout: timeout}
	}
	return &Client{base: u, token: o.Token, hc: hc}, nil
}

// APIError is an error response from the server.
type APIError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
	Details   []string
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
	for _, d := range e.Details {
		s += "\n  - " + d
	}
	if e.RequestID != "" {
		s += fmt.Sprintf(" (request id %s)", e.RequestID)
	}
	return s
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := *c.base
	u.Path += path
	if query != nil {
		u.RawQuery = query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "keyferry-client")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach keyferry at %s: %w", c.base.Redacted(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		var er api.ErrorResponse
		if json.Unmarshal(b, &er) == nil && er.Error.Code != "" {
			return &APIError{Status: resp.StatusCode, Code: er.Error.Code, Message: er.Error.Message, RequestID: er.Error.RequestID, Details: er.Error.Details}
		}
		snippet := string(b)
		if len(snippet) > 200 {
			snippet = snippet[:200]
		}
		return &APIError{Status: resp.StatusCode, Code: "http_error", Message: fmt.Sprintf("unexpected response: %s", strings.TrimSpace(snippet))}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

// call makes a request whose answer decodes into a new T.
func call[T any](ctx context.Context, c *Client, method, path string, query url.Values, in any) (*T, error) {
	var out T
	return &out, c.do(ctx, method, path, query, in, &out)
}

// Creds exchanges a job token for credentials.
func (c *Client) Creds(ctx context.Context, req api.CredsRequest) (*api.CredsResponse, error) {
	return call[api.CredsResponse](ctx, c, http.MethodPost, "/v1/creds", nil, req)
}

// Refresh trades a refresh handle for fresh credentials and a new handle.
func (c *Client) Refresh(ctx context.Context, handle string) (*api.CredsResponse, error) {
	return call[api.CredsResponse](ctx, c, http.MethodPost, "/v1/creds/refresh", nil, api.RefreshRequest{RefreshHandle: handle})
}

// Roles lists roles, sorted by name.
func (c *Client) Roles(ctx context.Context) ([]api.Role, error) {
	var out api.RoleList
	return out.Roles, c.do(ctx, http.MethodGet, "/v1/roles", nil, nil, &out)
}

// Role reads one role.
func (c *Client) Role(ctx context.Context, name string) (*api.Role, error) {
	return call[api.Role](ctx, c, http.MethodGet, "/v1/roles/"+url.PathEscape(name), nil, nil)
}

// PutRole writes a role (dryRun: validate and diff only).
func (c *Client) PutRole(ctx context.Context, r api.Role, dryRun bool) (*api.WriteResult[api.Role], error) {
	return call[api.WriteResult[api.Role]](ctx, c, http.MethodPut, "/v1/roles/"+url.PathEscape(r.Name), dryRunQuery(dryRun), r)
}

// DeleteRole deletes a role.
func (c *Client) DeleteRole(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/roles/"+url.PathEscape(name), nil, nil, nil)
}

// TestRole explains a role decision.
func (c *Client) TestRole(ctx context.Context, name string, req api.RoleTestRequest) (*api.RoleTestResponse, error) {
	return call[api.RoleTestResponse](ctx, c, http.MethodPost, "/v1/roles/"+url.PathEscape(name)+"/test", nil, req)
}

// Issuers lists issuers, sorted by name.
func (c *Client) Issuers(ctx context.Context) ([]api.Issuer, error) {
	var out api.IssuerList
	return out.Issuers, c.do(ctx, http.MethodGet, "/v1/issuers", nil, nil, &out)
}

// Issuer reads one issuer.
func (c *Client) Issuer(ctx context.Context, name string) (*api.Issuer, error) {
	return call[api.Issuer](ctx, c, http.MethodGet, "/v1/issuers/"+url.PathEscape(name), nil, nil)
}

// PutIssuer writes an issuer (dryRun: validate and diff only).
func (c *Client) PutIssuer(ctx context.Context, is api.Issuer, dryRun bool) (*api.WriteResult[api.Issuer], error) {
	return call[api.WriteResult[api.Issuer]](ctx, c, http.MethodPut, "/v1/issuers/"+url.PathEscape(is.Name), dryRunQuery(dryRun), is)
}

// DeleteIssuer deletes an issuer.
func (c *Client) DeleteIssuer(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/issuers/"+url.PathEscape(name), nil, nil, nil)
}

// LeaseFilter selects leases.
type LeaseFilter struct {
	Role, Project, Pipeline, State, After string
	Limit                                 int
}

// Leases lists one page of leases; next is "" on the last page.
func (c *Client) Leases(ctx context.Context, f LeaseFilter) (leases []api.Lease, next string, err error) {
	q := url.Values{}
	for k, v := range map[string]string{"role": f.Role, "project": f.Project, "pipeline": f.Pipeline, "state": f.State, "after": f.After} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", fmt.Sprint(f.Limit))
	}
	var out api.LeaseList
	err = c.do(ctx, http.MethodGet, "/v1/leases", q, nil, &out)
	return out.Leases, out.Next, err
}

// Lease reads one lease.
func (c *Client) Lease(ctx context.Context, id string) (*api.Lease, error) {
	return call[api.Lease](ctx, c, http.MethodGet, "/v1/leases/"+url.PathEscape(id), nil, nil)
}

// RevokeLease revokes one lease; reason is recorded in its note.
func (c *Client) RevokeLease(ctx context.Context, id, reason string) (*api.Lease, error) {
	var out api.Lease
	var body any
	if reason != "" {
		body = api.RevokeRequest{Reason: reason}
	}
	return &out, c.do(ctx, http.MethodPost, "/v1/leases/"+url.PathEscape(id)+"/revoke", nil, body, &out)
}

// LeasesByKey returns every lease that ever held accessKeyID.
func (c *Client) LeasesByKey(ctx context.Context, accessKeyID string) ([]api.Lease, error) {
	var out api.LeaseList
	return out.Leases, c.do(ctx, http.MethodGet, "/v1/leases", url.Values{"access_key_id": {accessKeyID}}, nil, &out)
}

// RevokeLeaseWait revokes a lease and waits (up to 30 s on the server) for
// its upstream cleanup.
func (c *Client) RevokeLeaseWait(ctx context.Context, id, reason string) (*api.Lease, error) {
	return call[api.Lease](ctx, c, http.MethodPost, "/v1/leases/"+url.PathEscape(id)+"/revoke", url.Values{"wait": {"true"}}, api.RevokeRequest{Reason: reason})
}

// BulkRevoke revokes (or, with DryRun, lists) every live lease matching.
func (c *Client) BulkRevoke(ctx context.Context, req api.BulkRevokeRequest) (*api.BulkRevokeResult, error) {
	return call[api.BulkRevokeResult](ctx, c, http.MethodPost, "/v1/leases/revoke", nil, req)
}

// LeaseAction runs retry, forget or renew on a lease; body is nil, an
// api.RevokeRequest (forget) or an api.RenewRequest (renew).
func (c *Client) LeaseAction(ctx context.Context, id, action string, body any) (*api.Lease, error) {
	return call[api.Lease](ctx, c, http.MethodPost, "/v1/leases/"+url.PathEscape(id)+"/"+action, nil, body)
}

// SweepOrphans runs the orphan sweep now.
func (c *Client) SweepOrphans(ctx context.Context, dryRun bool) (*api.SweepResult, error) {
	return call[api.SweepResult](ctx, c, http.MethodPost, "/v1/orphans/sweep", url.Values{"dry_run": {strconv.FormatBool(dryRun)}}, nil)
}

// DevToken mints a dev job token (dev mode only).
func (c *Client) DevToken(ctx context.Context, req api.DevTokenRequest) (*api.DevTokenResponse, error) {
	return call[api.DevTokenResponse](ctx, c, http.MethodPost, "/v1/dev/token", nil, req)
}

// CreateAdminToken creates an admin token.
func (c *Client) CreateAdminToken(ctx context.Context, req api.TokenCreateRequest) (*api.TokenCreateResponse, error) {
	return call[api.TokenCreateResponse](ctx, c, http.MethodPost, "/v1/admin-tokens", nil, req)
}

// AdminTokens lists admin tokens (without secrets).
func (c *Client) AdminTokens(ctx context.Context) ([]api.Token, error) {
	var out api.TokenList
	return out.Tokens, c.do(ctx, http.MethodGet, "/v1/admin-tokens", nil, nil, &out)
}

// DeleteAdminToken deletes an admin token.
func (c *Client) DeleteAdminToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/admin-tokens/"+url.PathEscape(id), nil, nil, nil)
}

// Ready checks /readyz.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/readyz", nil, nil, nil)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func dryRunQuery(dry bool) url.Values {
	if !dry {
		return nil
	}
	return url.Values{"dry_run": {"true"}}
}
