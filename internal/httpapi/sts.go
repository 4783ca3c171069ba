package httpapi

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyferry/keyferry/internal/fault"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/lease"
	"github.com/keyferry/keyferry/internal/policy"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
)

// The STS-compatible endpoint speaks the AssumeRoleWithWebIdentity wire
// protocol (form-encoded and unsigned in; STS XML out), so that an AWS SDK
// configured with AWS_ENDPOINT_URL_STS=<keyferry>/sts, AWS_ROLE_ARN and
// AWS_WEB_IDENTITY_TOKEN_FILE gets its credentials from keyferry with no
// keyferry binary in the job, and refreshes them by itself by re-reading
// the token file (docs/delivery.md, "STS endpoint").

const stsXMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"

var (
	sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	roleARNRE     = regexp.MustCompile(`^arn:aws[\w-]*:iam::(\d{12})?:role/([\w+=,.@/-]+)$`) // length checked apart
)

type stsError struct {
	status  int
	code    string
	message string
}

func (s *server) sts(w http.ResponseWriter, r *http.Request) {
	rid := RequestID(r.Context())
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		s.stsFail(w, rid, stsError{400, "InvalidParameterValue", "send the request form-encoded (application/x-www-form-urlencoded)"})
		return
	}
	if err := r.ParseForm(); err != nil {
		var me *http.MaxBytesError
		if errors.As(err, &me) {
			s.stsFail(w, rid, stsError{413, "RequestEntityTooLarge", fmt.Sprintf("request body exceeds %d bytes", me.Limit)})
			return
		}
		s.stsFail(w, rid, stsError{400, "MalformedQueryString", "the request body is not a valid form"})
		return
	}
	f := r.PostForm
	switch action := f.Get("Action"); action {
	case "AssumeRoleWithWebIdentity":
	case "":
		s.stsFail(w, rid, stsError{400, "MissingAction", "the Action parameter is required"})
		return
	default:
		s.stsFail(w, rid, stsError{400, "InvalidAction", fmt.Sprintf("keyferry's STS endpoint implements only AssumeRoleWithWebIdentity, not %.64q", action)})
		return
	}
	if v := f.Get("Version"); v != "" && v != "2011-06-15" {
		s.stsFail(w, rid, stsError{400, "InvalidParameterValue", "Version must be 2011-06-15"})
		return
	}
	if e := validateSTSForm(f); e != nil {
		s.stsFail(w, rid, *e)
		return
	}
	// With no candidate the token is still verified and the denial
	// audited: an unknown RoleArn is a refusal like any other.
	candidates := s.rolesForARN(f.Get("RoleArn"))
	var ttl time.Duration
	if d := f.Get("DurationSeconds"); d != "" {
		n, _ := strconv.Atoi(d) // validated above
		ttl = time.Duration(n) * time.Second
	}
	out, err := s.Issuer.Issue(r.Context(), lease.IssueRequest{
		Candidates: candidates, Token: f.Get("WebIdentityToken"), TTL: ttl,
		RequestID: rid, SourceAddr: remoteHost(r),
	})
	if err != nil {
		s.log.Info("sts: request refused", "request_id", rid, "err", err)
		s.stsFail(w, rid, stsErrorFor(err))
		return
	}
	s.log.Info("credentials issued (sts)", "request_id", rid, "role", out.Lease.Role, "lease_id", out.Lease.ID,
		"access_key_id", out.Credentials.AccessKeyID, "project", out.Lease.Identity.Project, "job", out.Lease.Identity.Job)

	arn := out.Credentials.AssumedRoleARN
	if arn == "" {
		arn = assumedRoleARN(out.Lease.RoleARN, out.Lease.SessionName)
	}
	resp := stsResponse{
		XMLNS: stsXMLNS,
		Result: stsResult{
			Subject:  out.Lease.Identity.Subject,
			Audience: strings.Join(out.Audience, ","),
			User:     stsUser{ARN: arn, ID: "AROAKEYFERRY" + ":" + out.Lease.SessionName},
			Provider: out.Lease.Identity.Issuer,
			Credentials: stsCreds{
				AccessKeyID: out.Credentials.AccessKeyID, SecretAccessKey: out.Credentials.SecretAccessKey,
				SessionToken: out.Credentials.SessionToken, Expiration: out.Credentials.Expiration.UTC().Format("2006-01-02T15:04:05Z"),
			},
		},
		Meta: stsMeta{RequestID: rid},
	}
	s.writeXML(w, http.StatusOK, resp)
}

// validateSTSForm applies STS's own parameter rules.
func validateSTSForm(f url.Values) *stsError {
	for k := range f {
		switch {
		case k == "Action", k == "Version", k == "RoleArn", k == "RoleSessionName", k == "WebIdentityToken", k == "DurationSeconds", k == "ProviderId":
		case k == "Policy", strings.HasPrefix(k, "PolicyArns."):
			return &stsError{400, "ValidationError", "keyferry applies the role's own session policy: Policy and PolicyArns are not accepted"}
		default:
			return &stsError{400, "InvalidParameterValue", fmt.Sprintf("unknown parameter %.64q", k)}
		}
	}
	arn := f.Get("RoleArn")
	switch {
	case arn == "":
		return &stsError{400, "ValidationError", "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null"}
	case len(arn) < 20 || len(arn) > 2048 || !roleARNRE.MatchString(arn):
		return &stsError{400, "ValidationError", "RoleArn is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"}
	}
	if n := f.Get("RoleSessionName"); !sessionNameRE.MatchString(n) {
		return &stsError{400, "ValidationError", "RoleSessionName must be 2-64 characters of [\\w+=,.@-]"}
	}
	tok := f.Get("WebIdentityToken")
	if len(tok) < 4 || len(tok) > identity.MaxTokenLen {
		return &stsError{400, "ValidationError", fmt.Sprintf("WebIdentityToken must be 4-%d characters", identity.MaxTokenLen)}
	}
	if d := f.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 900 || n > 43200 {
			return &stsError{400, "ValidationError", "DurationSeconds must be an integer from 900 to 43200"}
		}
	}
	return nil
}

// rolesForARN maps a RoleArn to keyferry roles: a role whose name is the
// ARN's last path segment, then (in name order) every role configured with
// exactly this role_arn.
func (s *server) rolesForARN(arn string) []string {
	var out []string
	m := roleARNRE.FindStringSubmatch(arn)
	if m == nil {
		return nil
	}
	path := m[2]
	name := path[strings.LastIndex(path, "/")+1:]
	// Only STS session roles: an iam_user role would hand a long-lived
	// key to a client that expects a session.
	if c, ok := s.Registry.Role(name); ok && c.Role().AWS.Type != policy.TypeIAMUser {
		out = append(out, name)
	}
	var byARN []string
	for _, r := range s.Registry.Roles() {
		if r.AWS.RoleARN == arn && r.Name != name && r.AWS.Type != policy.TypeIAMUser {
			byARN = append(byARN, r.Name)
		}
	}
	sort.Strings(byARN)
	return append(out, byARN...)
}

func assumedRoleARN(roleARN, session string) string {
	m := roleARNRE.FindStringSubmatch(roleARN)
	if m == nil {
		return ""
	}
	path := m[2]
	return fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", m[1], path[strings.LastIndex(path, "/")+1:], session)
}

// stsErrorFor maps keyferry refusals to the AWS error codes SDKs know.
func stsErrorFor(err error) stsError {
	le, ok := fault.As(err)
	if !ok {
		return stsError{500, "InternalFailure", "internal error"}
	}
	switch le.Code {
	case identity.CodeTokenExpired:
		return stsError{400, "ExpiredTokenException", le.Message}
	case identity.CodeIssuerUnavailable:
		return stsError{400, "IDPCommunicationError", le.Message}
	case identity.CodeNotACIToken:
		return stsError{403, "IDPRejectedClaim", le.Message}
	case identity.CodeTokenTooLarge:
		return stsError{400, "JWTPayloadSizeExceededException", le.Message}
	case identity.CodeReplayCacheFull:
		return stsError{503, "ServiceUnavailable", le.Message}
	case lease.CodeNoMatchingRole:
		return stsError{403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity: " + le.Message}
	case lease.CodeInvalidRequest:
		return stsError{400, "ValidationError", le.Message}
	case awsprov.CodeThrottled:
		return stsError{400, "Throttling", le.Message}
	case awsprov.CodeAccessDenied:
		return stsError{403, "AccessDenied", le.Message}
	case awsprov.CodeTokenRejected:
		return stsError{400, "InvalidIdentityToken", le.Message}
	case awsprov.CodeInvalidRequest:
		return stsError{400, "ValidationError", le.Message}
	case lease.CodeAuditUnavailable, lease.CodeStoreUnavailable, awsprov.CodeUnavailable, awsprov.CodeTimeout:
		return stsError{503, "ServiceUnavailable", le.Message}
	}
	if le.Kind == fault.Unauthenticated {
		return stsError{400, "InvalidIdentityToken", le.Message}
	}
	if status(le.Kind) >= 500 {
		return stsError{503, "ServiceUnavailable", le.Message}
	}
	return stsError{400, "ValidationError", le.Message}
}

type stsResponse struct {
	XMLName xml.Name  `xml:"AssumeRoleWithWebIdentityResponse"`
	XMLNS   string    `xml:"xmlns,attr"`
	Result  stsResult `xml:"AssumeRoleWithWebIdentityResult"`
	Meta    stsMeta   `xml:"ResponseMetadata"`
}

type stsResult struct {
	Subject     string   `xml:"SubjectFromWebIdentityToken"`
	Audience    string   `xml:"Audience"`
	User        stsUser  `xml:"AssumedRoleUser"`
	Provider    string   `xml:"Provider"`
	Credentials stsCreds `xml:"Credentials"`
}

type stsUser struct {
	ARN string `xml:"Arn"`
	ID  string `xml:"AssumedRoleId"`
}

type stsCreds struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type stsMeta struct {
	RequestID string `xml:"RequestId"`
}

type stsErrorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	XMLNS     string   `xml:"xmlns,attr"`
	Error     stsErrorBody
	RequestID string `xml:"RequestId"`
}

type stsErrorBody struct {
	XMLName xml.Name `xml:"Error"`
	Type    string   `xml:"Type"`
	Code    string   `xml:"Code"`
	Message string   `xml:"Message"`
}

func (s *server) stsFail(w http.ResponseWriter, rid string, e stsError) {
	typ := "Sender"
	if e.status >= 500 {
		typ = "Receiver"
	}
	s.writeXML(w, e.status, stsErrorResponse{XMLNS: stsXMLNS, Error: stsErrorBody{Type: typ, Code: e.code, Message: e.message}, RequestID: rid})
}

func (s *server) writeXML(w http.ResponseWriter, status int, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		s.log.Error("encode xml", "err", err)
		status, b = http.StatusInternalServerError, []byte(`<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>internal error</Message></Error></ErrorResponse>`)
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Amzn-Requestid", w.Header().Get("X-Request-Id"))
	w.WriteHeader(status)
	_, _ = w.Write(append([]byte(xml.Header), b...))
}
