package delivery

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/keyferry/keyferry/internal/api"
)

// expirationLayout is %Y-%m-%dT%H:%M:%SZ, the form botocore's static
// stability code parses (delivery-contracts.md §5). Fractions are
// truncated, so a served expiry is never later than the real one.
const expirationLayout = "2006-01-02T15:04:05Z"

func formatExpiration(t time.Time) string { return t.UTC().Format(expirationLayout) }

// documentCredentials are the credential fields of the container and the
// IMDS documents, named as the SDKs read them.
type documentCredentials struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	Expiration      string `json:"Expiration"`
}

func documentCredentialsOf(c api.Credentials) documentCredentials {
	return documentCredentials{
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		Token:           c.SessionToken,
		Expiration:      formatExpiration(c.Expiration),
	}
}

// refusal is an error answer for the client: a status, a stable code and a
// message safe to show to anyone. The cause goes to the log only.
type refusal struct {
	status  int
	code    string
	message string
}

func (r *refusal) write(w http.ResponseWriter) { writeError(w, r.status, r.code, r.message) }

var (
	errSourceFailed = &refusal{http.StatusBadGateway, "credentials_unavailable",
		"keyferry could not get credentials from the broker; the keyferry log has the cause"}
	errSourceTimeout = &refusal{http.StatusServiceUnavailable, "credentials_timeout",
		"keyferry is still waiting for credentials from the broker; retry"}
	errInvalidCreds = &refusal{http.StatusBadGateway, "credentials_invalid",
		"the broker returned incomplete credentials; the keyferry log has the cause"}
	errExpiredCreds = &refusal{http.StatusServiceUnavailable, "credentials_expired",
		"the credentials keyferry holds have expired and could not be refreshed"}
)

// document is one rendered response body and the credentials it was
// rendered from. Requests compare the Source's answer with creds and, when
// equal, write body as is: the JSON is built once per credential change,
// not once per request.
type document struct {
	creds api.Credentials
	body  []byte
	clen  []string // Content-Length header value
}

// docCache turns a Source into a rendered document.
type docCache struct {
	src    Source
	now    func() time.Time
	log    *slog.Logger
	render func(resp *api.CredsResponse, now time.Time) ([]byte, error)
	cur    atomic.Pointer[document]
}

// get returns the document for the Source's current credentials. On a
// refusal the cause has been logged and the caller writes the refusal.
func (c *docCache) get(ctx context.Context) (*document, *refusal) {
	resp, err := c.src.Credentials(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			c.log.Warn("delivery: credential source timed out", slog.String(logKeyErr, err.Error()))
			return nil, errSourceTimeout
		}
		c.log.Warn("delivery: credential source failed", slog.String(logKeyErr, err.Error()))
		return nil, errSourceFailed
	}
	if resp == nil || resp.Credentials.AccessKeyID == "" || resp.Credentials.SecretAccessKey == "" || resp.Credentials.Expiration.IsZero() {
		c.log.Warn("delivery: credential source returned incomplete credentials")
		return nil, errInvalidCreds
	}
	now := c.now()
	if !resp.Credentials.Expiration.After(now) {
		c.log.Warn("delivery: credential source returned expired credentials",
			slog.String(logKeyAccessKeyID, resp.Credentials.AccessKeyID),
			slog.Time(logKeyExpiration, resp.Credentials.Expiration))
		return nil, errExpiredCreds
	}
	if d := c.cur.Load(); d != nil && d.creds == resp.Credentials {
		return d, nil
	}
	body, err := c.render(resp, now)
	if err != nil {
		c.log.Warn("delivery: rendering credentials failed", slog.String(logKeyErr, err.Error()))
		return nil, errInvalidCreds
	}
	d := &document{creds: resp.Credentials, body: body, clen: []string{strconv.Itoa(len(body))}}
	c.cur.Store(d) // concurrent renders of the same credentials are equal: last one wins
	c.log.Info("delivery: serving new credentials",
		slog.String(logKeyAccessKeyID, resp.Credentials.AccessKeyID),
		slog.Time(logKeyExpiration, resp.Credentials.Expiration))
	return d, nil
}

// serve answers r with the document for the Source's current credentials,
// labelled contentType, or with the refusal.
func (c *docCache) serve(w http.ResponseWriter, r *http.Request, contentType []string) {
	d, ref := c.get(r.Context())
	if ref != nil {
		ref.write(w)
		return
	}
	writeDocument(w, contentType, d)
}

// writeDocument writes a pre-rendered body with its pre-computed headers.
func writeDocument(w http.ResponseWriter, contentType []string, d *document) {
	h := w.Header()
	h["Content-Type"] = contentType
	h["Content-Length"] = d.clen
	h["Cache-Control"] = hdrNoStore
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(d.body)
}
