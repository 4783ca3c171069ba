package delivery

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/keyferry/keyferry/internal/api"
)

// IMDS paths served by IMDSHandler (delivery-contracts.md §5).
const (
	IMDSTokenPath     = "/latest/api/token"
	IMDSRoleListPath  = "/latest/meta-data/iam/security-credentials/"
	IMDSIAMInfoPath   = "/latest/meta-data/iam/info"
	DefaultIMDSRole   = "keyferry"
	imdsMaxTTLSeconds = 21600
)

// Canonical forms of the IMDSv2 headers (X-aws-ec2-metadata-token…), for
// direct map access; TestIMDSHeaderKeysAreCanonical checks them.
const (
	hdrIMDSTTL   = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	hdrIMDSToken = "X-Aws-Ec2-Metadata-Token"
)

// roleNameRE is IAM's role-name alphabet and length.
var roleNameRE = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)

// IMDSConfig configures an IMDSHandler.
type IMDSConfig struct {
	// Source yields the credentials; it should be a *Cached.
	Source Source
	// RoleName is the single role listed under security-credentials/.
	// Default DefaultIMDSRole.
	RoleName string
	Logger   *slog.Logger
	// Now is the clock for token expiry and LastUpdated.
	Now func() time.Time
}

// IMDSHandler emulates the credential part of the EC2 instance metadata
// service, IMDSv2 only: every GET needs a token from PUT /latest/api/token.
// Tokens are stateless: the expiry and a random nonce, MACed with a key
// that lives only in this process, so there is no token table to fill up.
// Serve it under /latest/ behind Guard (LocalServer does both).
type IMDSHandler struct {
	role     string
	roleBody []byte
	credPath string
	now      func() time.Time
	key      []byte
	macs     sync.Pool
	creds    docCache
	info     docCache
}

var _ http.Handler = (*IMDSHandler)(nil)

// NewIMDSHandler checks cfg and returns the handler.
func NewIMDSHandler(cfg IMDSConfig) (*IMDSHandler, error) {
	role := cfg.RoleName
	if role == "" {
		role = DefaultIMDSRole
	}
	var errs []error
	if cfg.Source == nil {
		errs = append(errs, errors.New("delivery: imds endpoint: no credential source"))
	}
	if !roleNameRE.MatchString(role) {
		errs = append(errs, fmt.Errorf("delivery: imds endpoint: role name %q is not a valid IAM role name", role))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("delivery: imds endpoint: token key: %w", err)
	}
	h := &IMDSHandler{
		role:     role,
		roleBody: []byte(role), // no trailing newline: botocore appends the body to the URL
		credPath: IMDSRoleListPath + role,
		now:      orNow(cfg.Now),
		key:      key,
	}
	h.macs.New = func() any { return hmac.New(sha256.New, h.key) }
	log := orDiscard(cfg.Logger)
	h.creds = docCache{src: cfg.Source, now: h.now, log: log, render: h.renderCreds}
	h.info = docCache{src: cfg.Source, now: h.now, log: orDiscard(nil), render: h.renderInfo} // logs once, via creds
	return h, nil
}

var (
	errIMDSNoToken = &refusal{http.StatusUnauthorized, "unauthorized",
		"IMDSv2 only: PUT /latest/api/token first and send X-aws-ec2-metadata-token"}
	errIMDSBadTTL = &refusal{http.StatusBadRequest, "invalid_ttl",
		"X-aws-ec2-metadata-token-ttl-seconds must be an integer from 1 to 21600"}
	errIMDSForwarded = &refusal{http.StatusBadRequest, "forwarded_request",
		"token requests that carry X-Forwarded-For are refused"}
	errIMDSNotFound = &refusal{http.StatusNotFound, "not_found", "no such metadata path"}
)

// ServeHTTP implements http.Handler.
func (h *IMDSHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch r.Method {
	case http.MethodPut:
		if path != IMDSTokenPath {
			methodNotAllowed(w, http.MethodGet)
			return
		}
		h.putToken(w, r)
	case http.MethodGet:
		if path == IMDSTokenPath {
			methodNotAllowed(w, http.MethodPut)
			return
		}
		if vals := r.Header[hdrIMDSToken]; len(vals) != 1 || !h.validToken(vals[0]) {
			errIMDSNoToken.write(w)
			return
		}
		switch path {
		case IMDSRoleListPath, IMDSRoleListPath[:len(IMDSRoleListPath)-1]:
			h.writeText(w, h.roleBody)
		// Real IMDS labels its JSON text/plain; both SDKs ignore the type.
		case h.credPath:
			h.creds.serve(w, r, hdrText)
		case IMDSIAMInfoPath:
			h.info.serve(w, r, hdrText)
		default:
			errIMDSNotFound.write(w)
		}
	default:
		methodNotAllowed(w, http.MethodGet+", "+http.MethodPut)
	}
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header()["Allow"] = []string{allow}
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use "+allow)
}

func (h *IMDSHandler) putToken(w http.ResponseWriter, r *http.Request) {
	if _, fwd := r.Header["X-Forwarded-For"]; fwd {
		// AWS refuses these so that an open reverse proxy or an SSRF bug
		// cannot fetch a token for a remote attacker.
		errIMDSForwarded.write(w)
		return
	}
	vals := r.Header[hdrIMDSTTL]
	if len(vals) != 1 {
		errIMDSBadTTL.write(w)
		return
	}
	ttl, ok := parseTTL(vals[0])
	if !ok {
		errIMDSBadTTL.write(w)
		return
	}
	tok := h.mintToken(h.now().Add(time.Duration(ttl) * time.Second))
	hd := w.Header()
	hd["Content-Type"] = hdrText
	hd["Cache-Control"] = hdrNoStore
	// The Go SDK silently falls back to IMDSv1 without this echo.
	hd[hdrIMDSTTL] = []string{strconv.Itoa(ttl)}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(tok))
}

// parseTTL accepts 1 to 21600 written as plain decimal digits, as the
// EC2 metadata mock does; signs, spaces and exponents are refused.
func parseTTL(s string) (int, bool) {
	if len(s) == 0 || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n >= 1 && n <= imdsMaxTTLSeconds
}

// An IMDS token is base64url(expiry unix-nanos ‖ 16-byte nonce ‖ first 16
// bytes of HMAC-SHA256(key, expiry ‖ nonce)).
const (
	tokenExpiryLen = 8
	tokenNonceLen  = 16
	tokenMACLen    = 16
	tokenBodyLen   = tokenExpiryLen + tokenNonceLen
	tokenRawLen    = tokenBodyLen + tokenMACLen
)

var tokenEncoding = base64.RawURLEncoding.Strict()

func (h *IMDSHandler) mintToken(exp time.Time) string {
	var raw [tokenRawLen]byte
	binary.BigEndian.PutUint64(raw[:tokenExpiryLen], uint64(exp.UnixNano()))
	_, _ = rand.Read(raw[tokenExpiryLen:tokenBodyLen]) // crypto/rand.Read never fails
	h.sign(raw[:tokenBodyLen], raw[tokenBodyLen:])
	return tokenEncoding.EncodeToString(raw[:])
}

func (h *IMDSHandler) sign(body, out []byte) {
	m := h.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(body)
	var sum [sha256.Size]byte
	copy(out, m.Sum(sum[:0]))
	h.macs.Put(m)
}

// validToken reports whether tok was minted by this handler and has not
// expired. The MAC is compared in constant time.
func (h *IMDSHandler) validToken(tok string) bool {
	if len(tok) != tokenEncoding.EncodedLen(tokenRawLen) {
		return false
	}
	var raw [tokenRawLen]byte
	if n, err := tokenEncoding.Decode(raw[:], []byte(tok)); err != nil || n != tokenRawLen {
		return false
	}
	var want [tokenMACLen]byte
	h.sign(raw[:tokenBodyLen], want[:])
	if !hmac.Equal(want[:], raw[tokenBodyLen:]) {
		return false
	}
	exp := int64(binary.BigEndian.Uint64(raw[:tokenExpiryLen]))
	return h.now().UnixNano() < exp
}

func (h *IMDSHandler) writeText(w http.ResponseWriter, body []byte) {
	hd := w.Header()
	hd["Content-Type"] = hdrText
	hd["Cache-Control"] = hdrNoStore
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// imdsCredentials is the security-credentials/<role> document. The Go SDK
// requires Code "Success"; botocore requires the four credential fields.
type imdsCredentials struct {
	Code        string `json:"Code"`
	LastUpdated string `json:"LastUpdated"`
	Type        string `json:"Type"`
	documentCredentials
}

func (h *IMDSHandler) renderCreds(resp *api.CredsResponse, now time.Time) ([]byte, error) {
	return json.Marshal(imdsCredentials{
		Code:                "Success",
		LastUpdated:         formatExpiration(now),
		Type:                "AWS-HMAC",
		documentCredentials: documentCredentialsOf(resp.Credentials),
	})
}

// imdsInfo is the iam/info document (read by the .NET SDK, not by botocore
// or Go).
type imdsInfo struct {
	Code               string `json:"Code"`
	LastUpdated        string `json:"LastUpdated"`
	InstanceProfileARN string `json:"InstanceProfileArn"`
	InstanceProfileID  string `json:"InstanceProfileId"`
}

func (h *IMDSHandler) renderInfo(resp *api.CredsResponse, now time.Time) ([]byte, error) {
	acct := resp.Credentials.AccountID
	sum := sha256.Sum256([]byte(acct + "/" + h.role))
	return json.Marshal(imdsInfo{
		Code:               "Success",
		LastUpdated:        formatExpiration(now),
		InstanceProfileARN: "arn:aws:iam::" + acct + ":instance-profile/" + h.role,
		// AIPA + 17 characters, the shape of a real instance profile ID,
		// stable for an account and role.
		InstanceProfileID: "AIPA" + base32.StdEncoding.EncodeToString(sum[:])[:17],
	})
}
