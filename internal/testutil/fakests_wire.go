package testutil

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const stsXMLNS = `xmlns="https://sts.amazonaws.com/doc/2011-06-15/"`

func appendRoleUserAndCreds(buf []byte, s *stsSession, akid string) []byte {
	buf = append(buf, "    <AssumedRoleUser>\n"...)
	buf = appendEl(buf, "      ", "AssumedRoleId", s.userID)
	buf = appendEl(buf, "      ", "Arn", s.arn)
	buf = append(buf, "    </AssumedRoleUser>\n    <Credentials>\n"...)
	buf = appendEl(buf, "      ", "AccessKeyId", akid)
	buf = appendEl(buf, "      ", "SecretAccessKey", s.secret)
	buf = appendEl(buf, "      ", "SessionToken", s.token)
	buf = appendTimeEl(buf, "      ", "Expiration", s.expires)
	return append(buf, "    </Credentials>\n"...)
}

// writeSTSError writes an ErrorResponse the way STS does and returns the
// HTTP status used.
func writeSTSError(w http.ResponseWriter, reqID string, e *STSError) int {
	return writeQueryError(w, stsXMLNS, reqID, e, stsErrorStatus)
}

// stsErrorStatus is the HTTP status AWS answers with for an error code.
func stsErrorStatus(code string) int {
	switch code {
	case "AccessDenied", "ExpiredToken", "IDPRejectedClaim", "RegionDisabledException",
		"InvalidClientTokenId", "SignatureDoesNotMatch", "MissingAuthenticationToken":
		return http.StatusForbidden
	case "TooManyRequestsException":
		return http.StatusTooManyRequests
	case "InternalFailure", "InternalError", "InternalServerError":
		return http.StatusInternalServerError
	case "ServiceUnavailable", "ServiceUnavailableException":
		return http.StatusServiceUnavailable
	}
	// Throttling, ValidationError, InvalidIdentityToken, ExpiredTokenException,
	// IDPCommunicationError, MalformedPolicyDocument, PackedPolicyTooLarge, …
	return http.StatusBadRequest
}

// defaultSTSMessage is the message AWS sends with code, for faults that set none.
func defaultSTSMessage(code string, req *STSRequest, callerARN string) string {
	switch code {
	case "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException":
		return "Rate exceeded"
	case "AccessDenied":
		if req.Action == ActionAssumeRoleWithWebIdentity {
			return "Not authorized to perform sts:AssumeRoleWithWebIdentity"
		}
		return "User: " + callerARN + " is not authorized to perform: sts:" + req.Action + " on resource: " + req.RoleARN
	case "InvalidIdentityToken":
		return "Incorrect token audience"
	case "IDPRejectedClaim":
		return "Not authorized to perform sts:AssumeRoleWithWebIdentity"
	case "IDPCommunicationError":
		return "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements"
	case "ExpiredTokenException", "ExpiredToken":
		return "Token expired"
	case "RegionDisabledException":
		return "STS is not activated in this region for account:" + DefaultSTSAccount + ". Your account administrator can activate STS in this region using the IAM Console."
	case "MalformedPolicyDocument":
		return "Syntax errors in policy."
	case "PackedPolicyTooLarge":
		return "Packed policy consumes 120% of allotted space, please use smaller policy."
	case "InternalFailure":
		return "An internal error occurred."
	case "ServiceUnavailable":
		return "Service is unavailable"
	}
	return code
}

const base32Upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// newAccessKeyID returns ASIA + 16 characters of AWS's key-id alphabet.
func newAccessKeyID() string { return newKeyID("ASIA") }

// newKeyID returns a 4-character prefix (ASIA, AKIA) + 16 characters of
// AWS's key-id alphabet.
func newKeyID(prefix string) string { return awsID(prefix, 16, rand.Uint64(), rand.Uint64()) }

// newUniqueID returns a principal id: a 4-character prefix (AIDA, AGPA) and
// 17 characters of AWS's id alphabet.
func newUniqueID(prefix string) string { return awsID(prefix, 17, rand.Uint64(), rand.Uint64()) }

// awsID returns prefix and n (at most 24) characters of AWS's id alphabet,
// the first 12 drawn from the bits of x, the rest from y.
func awsID(prefix string, n int, x, y uint64) string {
	var a [32]byte
	b := append(a[:0], prefix...)
	for i := range n {
		if i < 12 {
			b = append(b, base32Upper[x&31])
			x >>= 5
		} else {
			b = append(b, base32Upper[y&31])
			y >>= 5
		}
	}
	return string(b)
}

// newSecretKey returns 40 base64 characters, the shape of an AWS secret key.
func newSecretKey() string {
	var raw [30]byte
	fillRandom(raw[:])
	return base64.StdEncoding.EncodeToString(raw[:])
}

// newSessionToken returns a session token as long as real ones (~600 chars),
// with their usual prefix.
func newSessionToken() string {
	var raw [432]byte
	fillRandom(raw[:])
	return "IQoJb3JpZ2luX2VjE" + base64.StdEncoding.EncodeToString(raw[:])
}

func fillRandom(b []byte) {
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, rand.Uint64())
		b = b[8:]
	}
	if len(b) > 0 {
		var tail [8]byte
		binary.LittleEndian.PutUint64(tail[:], rand.Uint64())
		copy(b, tail[:])
	}
}

// newRequestID returns a random UUID, like STS request ids.
func newRequestID() string {
	const hex = "0123456789abcdef"
	var raw [16]byte
	fillRandom(raw[:])
	raw[6] = raw[6]&0x0f | 0x40
	raw[8] = raw[8]&0x3f | 0x80
	var b [36]byte
	j := 0
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hex[c>>4], hex[c&15]
		j += 2
	}
	return string(b[:])
}

// stableID derives the 17-character unique-id suffix AWS gives a principal
// (AROA…, AIDA…) from its ARN, so the same role always gets the same id.
func stableID(s string) string {
	h := fnv.New128a()
	h.Write([]byte(s))
	sum := h.Sum(nil)
	return awsID("", 17, binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:]))
}

type roleARN struct {
	raw, partition, account, name string
}

// parseRoleARN accepts arn:<partition>:iam::<account>:role/<path/>name and
// the account-less arn:<partition>:iam::role/name some servers use.
func parseRoleARN(s string) (roleARN, *STSError) {
	bad := &STSError{Code: "ValidationError", Message: s + " is invalid"}
	parts := strings.SplitN(s, ":", 6)
	var resource, account string
	switch len(parts) {
	case 6:
		account, resource = parts[4], parts[5]
	case 5:
		resource = parts[4]
	default:
		return roleARN{}, bad
	}
	if parts[0] != "arn" || parts[1] == "" || parts[2] != "iam" || parts[3] != "" || !strings.HasPrefix(resource, "role/") {
		return roleARN{}, bad
	}
	name := resource[strings.LastIndexByte(resource, '/')+1:]
	if name == "" {
		return roleARN{}, bad
	}
	return roleARN{raw: s, partition: parts[1], account: account, name: name}, nil
}

func validationError(value, member, constraint string) *STSError {
	v := "'" + value + "'"
	if value == "\x00" {
		v = "null"
	}
	return &STSError{Code: "ValidationError", Message: "1 validation error detected: Value " + v + " at '" + member + "' failed to satisfy constraint: Member must " + constraint}
}

// null stands for a missing value in validationError.
const null = "\x00"

func checkLen(p map[string][]string, key, member string, lo, hi int, required bool) *STSError {
	v, ok := p[key]
	if !ok {
		if required {
			return validationError(null, member, "not be null")
		}
		return nil
	}
	s := first(v)
	if len(s) < lo {
		return validationError(s, member, "have length greater than or equal to "+strconv.Itoa(lo))
	}
	if len(s) > hi {
		return validationError(s, member, "have length less than or equal to "+strconv.Itoa(hi))
	}
	return nil
}

// sessionNameOK reports whether s matches [\w+=,.@-]*.
func sessionNameOK(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("_+=,.@-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func validateCommon(req *STSRequest) *STSError {
	p := req.Params
	if e := checkLen(p, "RoleArn", "roleArn", 20, 2048, true); e != nil {
		return e
	}
	if e := checkLen(p, "RoleSessionName", "roleSessionName", 2, 64, true); e != nil {
		return e
	}
	if !sessionNameOK(req.RoleSessionName) {
		return validationError(req.RoleSessionName, "roleSessionName", `satisfy regular expression pattern: [\w+=,.@-]*`)
	}
	if _, ok := p["DurationSeconds"]; ok {
		d := req.DurationSeconds
		if d < 900 {
			return validationError(p.Get("DurationSeconds"), "durationSeconds", "have value greater than or equal to 900")
		}
		if d > 43200 {
			return validationError(p.Get("DurationSeconds"), "durationSeconds", "have value less than or equal to 43200")
		}
	}
	if e := checkLen(p, "Policy", "policy", 1, 2048, false); e != nil {
		return e
	}
	if req.Policy != "" && !json.Valid([]byte(req.Policy)) {
		return &STSError{Code: "MalformedPolicyDocument", Message: "Syntax errors in policy."}
	}
	if len(req.PolicyARNs) > 10 {
		return validationError("[…]", "policyArns", "have length less than or equal to 10")
	}
	return nil
}

func validateAssumeRole(req *STSRequest) *STSError {
	if e := validateCommon(req); e != nil {
		return e
	}
	p := req.Params
	if e := checkLen(p, "ExternalId", "externalId", 2, 1224, false); e != nil {
		return e
	}
	if e := checkLen(p, "SourceIdentity", "sourceIdentity", 2, 64, false); e != nil {
		return e
	}
	if len(req.Tags) > 50 {
		return validationError("[…]", "tags", "have length less than or equal to 50")
	}
	for i, t := range req.Tags {
		if len(t.Key) < 1 || len(t.Key) > 128 {
			return validationError(t.Key, "tags."+strconv.Itoa(i+1)+".member.key", "have length less than or equal to 128")
		}
		if len(t.Value) > 256 {
			return validationError(t.Value, "tags."+strconv.Itoa(i+1)+".member.value", "have length less than or equal to 256")
		}
	}
	if n := packedPolicyPercent(req); n > 100 {
		return &STSError{Code: "PackedPolicyTooLarge", Message: "Packed policy consumes " + strconv.Itoa(n) + "% of allotted space, please use smaller policy."}
	}
	return nil
}

func validateWebIdentity(req *STSRequest) *STSError {
	if e := validateCommon(req); e != nil {
		return e
	}
	return checkLen(req.Params, "WebIdentityToken", "webIdentityToken", 4, 20000, true)
}

// packedPolicyPercent is a crude model of STS's packed size of session
// policies and tags (real STS compresses them): half the policy length plus
// each tag's key and value, as a percentage of 2,048 bytes. 0 when neither
// is present.
func packedPolicyPercent(req *STSRequest) int {
	if req.Policy == "" && len(req.Tags) == 0 && len(req.PolicyARNs) == 0 {
		return 0
	}
	n := len(req.Policy)/2 + 16*len(req.PolicyARNs)
	for _, t := range req.Tags {
		n += len(t.Key) + len(t.Value) + 2
	}
	pct := (n*100 + 2047) / 2048
	if pct < 1 {
		pct = 1
	}
	return pct
}

type jwtClaims struct {
	Iss string  `json:"iss"`
	Sub string  `json:"sub"`
	Aud any     `json:"aud"`
	Exp float64 `json:"exp"`
}

func (c *jwtClaims) audience() string {
	switch a := c.Aud.(type) {
	case string:
		return a
	case []any:
		if len(a) > 0 {
			if s, ok := a[0].(string); ok {
				return s
			}
		}
	}
	return ""
}

// parseJWTClaims decodes a JWT's payload without verifying it: the fake
// checks shape and exp; signatures are the token validator's business.
func parseJWTClaims(token string) (*jwtClaims, *STSError) {
	bad := &STSError{Code: "InvalidIdentityToken", Message: "The ID token provided is not a valid JWT. (You may see this error if you sent an Access Token)"}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, bad
	}
	var c jwtClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, bad
	}
	return &c, nil
}

// UnsignedJWT returns a JWT with the given claims and an empty signature,
// enough for the fake STS (which does not verify signatures unless a token
// validator does).
func UnsignedJWT(claims map[string]any) string {
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))
	body, err := json.Marshal(claims)
	if err != nil {
		panic("testutil: UnsignedJWT: " + err.Error())
	}
	return hdr + "." + base64.RawURLEncoding.EncodeToString(body) + ".c2ln"
}

// CIJobToken returns an unsigned GitLab-shaped job token for sub, valid for
// an hour from now.
func CIJobToken(now time.Time, sub string) string {
	return UnsignedJWT(map[string]any{
		"iss": "https://gitlab.example.com", "sub": sub, "aud": "sts.amazonaws.com",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
}
