package testutil

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const sigV4Algorithm = "AWS4-HMAC-SHA256"

type sigV4Auth struct {
	accessKeyID, date, region, service string
	signedHeaders                      []string
	signature                          string
}

// parseSigV4Header parses
// "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/sts/aws4_request, SignedHeaders=a;b, Signature=hex".
func parseSigV4Header(h string) (sigV4Auth, bool) {
	rest, ok := strings.CutPrefix(h, sigV4Algorithm+" ")
	if !ok {
		return sigV4Auth{}, false
	}
	var a sigV4Auth
	var haveCred, haveHeaders bool
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return sigV4Auth{}, false
		}
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[4] != "aws4_request" {
				return sigV4Auth{}, false
			}
			a.accessKeyID, a.date, a.region, a.service = f[0], f[1], f[2], f[3]
			haveCred = true
		case "SignedHeaders":
			a.signedHeaders = strings.Split(v, ";")
			haveHeaders = true
		case "Signature":
			a.signature = v
		}
	}
	if !haveCred || !haveHeaders || a.signature == "" {
		return sigV4Auth{}, false
	}
	return a, true
}

// sigV4Scope parses a request's SigV4 Authorization header and checks that
// it is scoped to service.
func sigV4Scope(authorization, service string) (sigV4Auth, *QueryError) {
	if authorization == "" {
		return sigV4Auth{}, &QueryError{Code: "MissingAuthenticationToken", Message: "Request is missing Authentication Token"}
	}
	a, ok := parseSigV4Header(authorization)
	if !ok {
		return sigV4Auth{}, &QueryError{Code: "IncompleteSignature", Message: "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization=" + authorization}
	}
	if a.service != service {
		return sigV4Auth{}, &QueryError{Code: "SignatureDoesNotMatch", Message: "Credential should be scoped to correct service: '" + service + "'."}
	}
	return a, nil
}

var errInvalidClientTokenID = &QueryError{Code: "InvalidClientTokenId", Message: "The security token included in the request is invalid."}

// authenticate checks a request that must be signed. It returns the issued
// session (or key source key) the request was signed with, or nil for a
// configured or unknown key.
func (h *FakeSTSHandler) authenticate(r *http.Request, body []byte, req *STSRequest) (*stsSession, *STSError) {
	a, serr := sigV4Scope(req.Authorization, "sts")
	if serr != nil {
		return nil, serr
	}
	secret, known := h.cfg.keys[a.accessKeyID]
	sess := h.session(a.accessKeyID)
	switch {
	case sess != nil:
		if subtle.ConstantTimeCompare([]byte(req.SecurityToken), []byte(sess.token)) != 1 {
			return nil, errInvalidClientTokenID
		}
		if !h.cfg.now().Before(sess.expires) {
			return nil, &STSError{Code: "ExpiredToken", Message: "The security token included in the request is expired"}
		}
		secret = sess.secret
	case known:
	case h.cfg.keySource != nil:
		k, ok := h.cfg.keySource.LookupSTSKey(a.accessKeyID)
		if !ok || req.SecurityToken != "" || h.cfg.now().Before(k.UsableAt) {
			return nil, errInvalidClientTokenID
		}
		secret = k.Secret
		sess = &stsSession{secret: k.Secret, arn: k.ARN, userID: k.UserID, account: k.Account, longTerm: true}
	case len(h.cfg.keys) > 0:
		return nil, errInvalidClientTokenID
	default:
		return nil, nil // no keys configured: accept unverified
	}
	if err := verifySigV4(r, body, a, secret); err != nil {
		return nil, err
	}
	return sess, nil
}

// verifySigV4 re-signs a copy of r, holding only the headers the client
// signed, with aws-sdk-go-v2's signer for a's service and region, and
// compares the signatures.
func verifySigV4(r *http.Request, body []byte, a sigV4Auth, secret string) *QueryError {
	mismatch := &QueryError{Code: "SignatureDoesNotMatch", Message: "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || !strings.HasPrefix(amzDate, a.date) {
		return &QueryError{Code: "IncompleteSignature", Message: "Date must be in ISO-8601 'basic format'. Got '" + amzDate + "'."}
	}
	cp := &http.Request{
		Method: r.Method,
		URL:    &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery},
		Host:   r.Host,
		Header: make(http.Header, len(a.signedHeaders)),
	}
	for _, name := range a.signedHeaders {
		switch name {
		case "host":
		case "content-length":
			cp.ContentLength = r.ContentLength
		default:
			cp.Header[http.CanonicalHeaderKey(name)] = r.Header.Values(name)
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: a.accessKeyID, SecretAccessKey: secret, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, cp, hex.EncodeToString(sum[:]), a.service, a.region, t); err != nil {
		return mismatch
	}
	got, ok := parseSigV4Header(cp.Header.Get("Authorization"))
	if !ok || subtle.ConstantTimeCompare([]byte(got.signature), []byte(a.signature)) != 1 {
		return mismatch
	}
	return nil
}
