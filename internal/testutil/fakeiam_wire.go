package testutil

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

const iamXMLNS = `xmlns="https://iam.amazonaws.com/doc/2010-05-08/"`

// writeIAMError writes an ErrorResponse the way IAM does and returns the
// HTTP status used.
func writeIAMError(w http.ResponseWriter, reqID string, e *QueryError) int {
	return writeQueryError(w, iamXMLNS, reqID, e, iamErrorStatus)
}

// iamErrorStatus is the HTTP status IAM answers with for an error code.
func iamErrorStatus(code string) int {
	switch code {
	case "NoSuchEntity":
		return http.StatusNotFound
	case "EntityAlreadyExists", "DeleteConflict", "LimitExceeded", "ConcurrentModification":
		return http.StatusConflict
	case "ServiceFailure":
		return http.StatusInternalServerError
	}
	// InvalidInput, MalformedPolicyDocument, ValidationError, Throttling, …
	return stsErrorStatus(code)
}

// defaultIAMMessage is the message IAM sends with code, for faults that set
// none.
func defaultIAMMessage(code string, req *IAMRequest, adminARN string) string {
	switch code {
	case "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException":
		return "Rate exceeded"
	case "AccessDenied":
		svc := "iam"
		if isSTSAction(req.Action) {
			svc = "sts"
		}
		return "User: " + adminARN + " is not authorized to perform: " + svc + ":" + req.Action + " on resource: user " + req.UserName + " because no identity-based policy allows the " + svc + ":" + req.Action + " action"
	case "NoSuchEntity":
		return "The user with name " + req.UserName + " cannot be found."
	case "EntityAlreadyExists":
		return "User with name " + req.UserName + " already exists."
	case "DeleteConflict":
		return "Cannot delete entity, must delete access keys first."
	case "LimitExceeded":
		return "Cannot exceed quota for AccessKeysPerUser: 2"
	case "MalformedPolicyDocument":
		return "Syntax errors in policy."
	case "ServiceFailure":
		return "The request processing has failed because of an unknown error, exception or failure."
	case "ServiceUnavailable":
		return "Service is unavailable"
	case "InvalidClientTokenId":
		return "The security token included in the request is invalid."
	}
	return code
}

func iamOpen(action string) []byte { return resultOpen(iamXMLNS, action) }

// iamEmpty is the answer of an action without output.
func iamEmpty(action, reqID string) []byte {
	return appendMetadata(responseOpen(iamXMLNS, action), action, reqID)
}

// appendTruncation appends IsTruncated and, for a truncated page, Marker.
func appendTruncation(buf []byte, next string) []byte {
	if next == "" {
		return append(buf, "    <IsTruncated>false</IsTruncated>\n"...)
	}
	buf = append(buf, "    <IsTruncated>true</IsTruncated>\n"...)
	return appendEl(buf, "    ", "Marker", next)
}

func appendTags(buf []byte, indent string, tags []IAMTag) []byte {
	buf = append(buf, indent...)
	buf = append(buf, "<Tags>\n"...)
	for _, t := range tags {
		buf = append(buf, indent...)
		buf = append(buf, "  <member>\n"...)
		buf = appendEl(buf, indent+"    ", "Key", t.Key)
		buf = appendEl(buf, indent+"    ", "Value", t.Value)
		buf = append(buf, indent...)
		buf = append(buf, "  </member>\n"...)
	}
	buf = append(buf, indent...)
	return append(buf, "</Tags>\n"...)
}

// appendUser appends a User (or member) element body; full adds what
// GetUser and CreateUser answer but ListUsers does not (boundary, tags).
func appendUser(buf []byte, indent string, u *iamUser, full bool) []byte {
	buf = appendEl(buf, indent, "Path", u.path)
	buf = appendEl(buf, indent, "UserName", u.name)
	buf = appendEl(buf, indent, "UserId", u.id)
	buf = appendEl(buf, indent, "Arn", u.arn)
	buf = appendTimeEl(buf, indent, "CreateDate", u.created)
	if full && u.boundary != "" {
		buf = append(buf, indent...)
		buf = append(buf, "<PermissionsBoundary>\n"...)
		buf = appendEl(buf, indent+"  ", "PermissionsBoundaryType", "PermissionsBoundaryPolicy")
		buf = appendEl(buf, indent+"  ", "PermissionsBoundaryArn", u.boundary)
		buf = append(buf, indent...)
		buf = append(buf, "</PermissionsBoundary>\n"...)
	}
	if full && len(u.tags) > 0 {
		buf = appendTags(buf, indent, u.tags)
	}
	return buf
}

// pageOf selects the page of a list of n items, sorted by key, that the
// request's Marker and MaxItems ask for: items [start, end), and the Marker
// of the next page ("" for the last). Markers are opaque to clients: the
// key of the last item returned, so a page stays right when items before
// it are deleted between calls.
// pageCap, when positive, makes pages at most that long whatever MaxItems
// says, as IAM may ("IAM might return fewer results").
func pageOf(p url.Values, pageCap, n int, key func(int) string) (start, end int, next string, e *QueryError) {
	limit := 100
	if v, ok := p["MaxItems"]; ok {
		m, err := strconv.Atoi(first(v))
		if err != nil || m < 1 || m > 1000 {
			return 0, 0, "", validationError(first(v), "maxItems", "have value between 1 and 1000")
		}
		limit = m
	}
	if pageCap > 0 {
		limit = min(limit, pageCap)
	}
	if m := p.Get("Marker"); m != "" {
		raw, err := base64.RawURLEncoding.DecodeString(m)
		if err != nil {
			return 0, 0, "", &QueryError{Code: "InvalidInput", Message: "Invalid Marker."}
		}
		after := string(raw)
		start = sort.Search(n, func(i int) bool { return key(i) > after })
	}
	end = min(start+limit, n)
	if end < n {
		next = base64.RawURLEncoding.EncodeToString([]byte(key(end - 1)))
	}
	return start, end, next, nil
}

// indexKey makes list positions sortable as strings, for lists kept in
// insertion order.
func indexKey(i int) string {
	var b [8]byte
	s := strconv.AppendInt(b[:0], int64(i), 10)
	return strings.Repeat("0", 8-len(s)) + string(s)
}

// iamNameOK reports whether s is a valid IAM name: 1–maxLen characters of
// [\w+=,.@-].
func iamNameOK(s string, maxLen int) bool {
	return len(s) >= 1 && len(s) <= maxLen && sessionNameOK(s)
}

// iamPathOK reports whether s is / or /…/ of printable ASCII, ≤512 chars.
func iamPathOK(s string) bool {
	if len(s) < 1 || len(s) > 512 || s[0] != '/' || s[len(s)-1] != '/' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// parsePolicyARN accepts arn:<partition>:iam::<account|aws>:policy/<path/>name
// and returns the name.
func parsePolicyARN(arn string) (string, bool) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] != "iam" || parts[3] != "" {
		return "", false
	}
	acct := parts[4]
	if acct != "aws" && (len(acct) != 12 || strings.Trim(acct, "0123456789") != "") {
		return "", false
	}
	rest, ok := strings.CutPrefix(parts[5], "policy/")
	if !ok {
		return "", false
	}
	name := rest[strings.LastIndexByte(rest, '/')+1:]
	return name, iamNameOK(name, 128)
}

// policySize is a policy's size as IAM counts it against quotas:
// characters, whitespace not counted.
func policySize(doc string) int {
	n := 0
	for _, r := range doc {
		if !unicode.IsSpace(r) {
			n++
		}
	}
	return n
}

// iamPolicyEscape URL-encodes a policy document as IAM returns them
// (GetRolePolicy, GetUserPolicy): RFC 3986, spaces as %20.
func iamPolicyEscape(doc string) string {
	return strings.ReplaceAll(url.QueryEscape(doc), "+", "%20")
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// insertSorted adds s to a sorted slice unless present.
func insertSorted(list []string, s string) []string {
	i, found := slices.BinarySearch(list, s)
	if found {
		return list
	}
	return slices.Insert(list, i, s)
}

// removeSorted removes s from a sorted slice and reports whether it was there.
func removeSorted(list []string, s string) ([]string, bool) {
	i, found := slices.BinarySearch(list, s)
	if !found {
		return list, false
	}
	return slices.Delete(list, i, i+1), true
}

func noSuchUser(name string) *QueryError {
	return &QueryError{Code: "NoSuchEntity", Message: "The user with name " + name + " cannot be found."}
}

func limitExceeded(quota string, n int) *QueryError {
	return &QueryError{Code: "LimitExceeded", Message: "Cannot exceed quota for " + quota + ": " + strconv.Itoa(n)}
}

var errMalformedPolicy = &QueryError{Code: "MalformedPolicyDocument", Message: "Syntax errors in policy."}

// validateTags checks tags as IAM does: at most 50, keys 1–128 and values
// ≤256 characters, keys unique ignoring case.
func validateTags(tags []IAMTag) *QueryError {
	if len(tags) > IAMMaxTagsPerUser {
		return validationError("[…]", "tags", "have length less than or equal to 50")
	}
	for i, t := range tags {
		if len(t.Key) < 1 || len(t.Key) > 128 {
			return validationError(t.Key, "tags."+strconv.Itoa(i+1)+".member.key", "have length between 1 and 128")
		}
		if len(t.Value) > 256 {
			return validationError(t.Value, "tags."+strconv.Itoa(i+1)+".member.value", "have length less than or equal to 256")
		}
		for _, u := range tags[:i] {
			if strings.EqualFold(u.Key, t.Key) {
				return &QueryError{Code: "InvalidInput", Message: "Duplicate tag keys found. Please note that Tag keys are case insensitive."}
			}
		}
	}
	return nil
}
