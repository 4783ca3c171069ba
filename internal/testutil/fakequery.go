package testutil

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// This file holds what the fake STS and the fake IAM share: both speak the
// AWS query protocol (form-encoded POST in, XML out), sign with SigV4 and
// take the same fault descriptions.

// queryMaxBody bounds a request body: a 20,000-char token plus a 2,048-char
// policy, URL-encoded, fit comfortably.
const queryMaxBody = 256 << 10

// queryFake is what the fake STS and the fake IAM share around their
// actions: call counters, pending faults, the log of requests (of type R)
// and the channel Close closes to release hung requests.
type queryFake[R any, P outcomeSetter[R]] struct {
	faultQueue

	calls     atomic.Int64
	perAction map[string]*atomic.Int64 // read-only after construction; "" = other
	log       requestLog[R, P]

	closeOnce sync.Once
	closed    chan struct{}
}

// prepare readies q to count actions and, unless noRecording, to log requests.
func (q *queryFake[R, P]) prepare(actions []string, noRecording bool) {
	q.perAction = make(map[string]*atomic.Int64, len(actions)+1)
	for _, a := range append(actions, "") {
		q.perAction[a] = new(atomic.Int64)
	}
	q.log.off = noRecording
	q.closed = make(chan struct{})
}

// close releases requests held by a Hang fault. It is idempotent.
func (q *queryFake[R, P]) close() { q.closeOnce.Do(func() { close(q.closed) }) }

// Calls returns how many requests arrived, faulted and refused ones included.
func (q *queryFake[R, P]) Calls() int { return int(q.calls.Load()) }

// CallsFor returns how many requests for action arrived.
func (q *queryFake[R, P]) CallsFor(action string) int { return int(q.counter(action).Load()) }

func (q *queryFake[R, P]) counter(action string) *atomic.Int64 {
	if c, ok := q.perAction[action]; ok {
		return c
	}
	return q.perAction[""]
}

// Requests returns a copy of every recorded request, in arrival order.
func (q *queryFake[R, P]) Requests() []R { return q.log.all() }

// LastRequest returns the most recent recorded request.
func (q *queryFake[R, P]) LastRequest() (R, bool) { return q.log.last() }

// reset forgets recorded requests, counters and faults.
func (q *queryFake[R, P]) reset() {
	q.log.reset()
	q.ClearFaults()
	q.calls.Store(0)
	for _, c := range q.perAction {
		c.Store(0)
	}
}

// read counts a request and reads its body and parameters (the URL query's,
// then the form body's). ok is false when the request needs no further
// answer: the client went away, or the body was too large or malformed
// (answered with writeErr).
func (q *queryFake[R, P]) read(r *http.Request, writeErr func(*QueryError) int) (body []byte, params url.Values, ok bool) {
	q.calls.Add(1)
	body, err := io.ReadAll(io.LimitReader(r.Body, queryMaxBody+1))
	if err != nil {
		return nil, nil, false // the client went away
	}
	if len(body) > queryMaxBody {
		q.counter("").Add(1)
		writeErr(&QueryError{Status: http.StatusRequestEntityTooLarge, Code: "RequestEntityTooLarge", Message: "Request body is too large"})
		return nil, nil, false
	}
	params, err = url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		params = url.Values{}
	}
	if len(body) > 0 {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			q.counter("").Add(1)
			writeErr(&QueryError{Code: "MalformedQueryString", Message: "The query string is malformed"})
			return nil, nil, false
		}
		for k, v := range form {
			params[k] = append(params[k], v...)
		}
	}
	return body, params, true
}

// start counts and records a parsed request, then applies the next pending
// fault for action, if any. It returns the request's index in the log, and
// whether a fault answered (or dropped) the request.
func (q *queryFake[R, P]) start(w http.ResponseWriter, r *http.Request, reqID, action string, req *R,
	writeErr func(*QueryError) int, defaultMsg func(code string) string) (idx int, handled bool) {
	q.counter(action).Add(1)
	idx = q.log.add(req)
	if f := q.next(action); f != nil {
		if handled, status, code := applyFault(w, r, q.closed, reqID, f, writeErr, defaultMsg); handled {
			q.log.finish(idx, status, code, "")
			return idx, true
		}
	}
	return idx, false
}

// answer writes the outcome of an action, out or e, and records it.
func (q *queryFake[R, P]) answer(w http.ResponseWriter, reqID string, idx int, out []byte, issued string, e *QueryError, writeErr func(*QueryError) int) {
	if e != nil {
		q.log.finish(idx, writeErr(e), e.Code, "")
		return
	}
	writeXML(w, http.StatusOK, reqID, out)
	putBuf(out)
	q.log.finish(idx, http.StatusOK, "", issued)
}

// checkCall refuses what a query API refuses before looking at a call: no
// Action, one it does not serve (known false), another API version, a
// method other than POST or GET.
func checkCall(r *http.Request, action string, known bool, version string, params url.Values) *QueryError {
	if action == "" {
		return &QueryError{Code: "MissingAction", Message: "Missing Action"}
	}
	if v := params.Get("Version"); !known || v != version {
		return &QueryError{Code: "InvalidAction", Message: "Could not find operation " + action + " for version " + v}
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return &QueryError{Status: http.StatusMethodNotAllowed, Code: "InvalidAction", Message: "Unsupported method " + r.Method}
	}
	return nil
}

// QueryOutcome is how a fake answered a request.
type QueryOutcome struct {
	// Status is the HTTP status answered; 0 while the request is in
	// flight, or when a fault hung or dropped it.
	Status int
	// ErrorCode is the error code answered, if any.
	ErrorCode string
	// IssuedAccessKeyID is the access key the answer issued, if any.
	IssuedAccessKeyID string
}

func (o *QueryOutcome) setOutcome(status int, code, issued string) {
	o.Status, o.ErrorCode, o.IssuedAccessKeyID = status, code, issued
}

// outcomeSetter is a pointer to a request record that can take the outcome
// of its request.
type outcomeSetter[R any] interface {
	*R
	setOutcome(status int, code, issued string)
}

// requestLog records requests of type R in arrival order, unless off.
type requestLog[R any, P outcomeSetter[R]] struct {
	off  bool
	mu   sync.Mutex
	list []R
}

// add stores req and returns its index, or -1 when recording is off.
func (l *requestLog[R, P]) add(req *R) int {
	if l.off {
		return -1
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, *req)
	return len(l.list) - 1
}

// finish records the outcome of the request at idx.
func (l *requestLog[R, P]) finish(idx, status int, code, issued string) {
	if idx < 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if idx < len(l.list) { // reset may have run meanwhile
		P(&l.list[idx]).setOutcome(status, code, issued)
	}
}

func (l *requestLog[R, P]) all() []R {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.list)
}

func (l *requestLog[R, P]) last() (R, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.list) == 0 {
		var zero R
		return zero, false
	}
	return l.list[len(l.list)-1], true
}

func (l *requestLog[R, P]) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = nil
}

// fakeServer is a fake's httptest.Server on loopback.
type fakeServer struct {
	Server *httptest.Server
}

// URL returns the fake's base URL, e.g. http://127.0.0.1:40123.
func (f fakeServer) URL() string { return f.Server.URL }

// serveFake serves h on loopback for the test. t.Cleanup calls closeH
// first, so hung handlers return and the server's Close does not wait.
func serveFake(t testing.TB, h http.Handler, closeH func()) fakeServer {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		closeH()
		srv.Close()
	})
	return fakeServer{Server: srv}
}

// addKey adds an access key and its secret to *keys.
func addKey(keys *map[string]string, accessKeyID, secretAccessKey string) {
	if *keys == nil {
		*keys = make(map[string]string)
	}
	(*keys)[accessKeyID] = secretAccessKey
}

// queryTag is a tag as the query protocol lists it.
type queryTag interface{ ~struct{ Key, Value string } }

// parseTags reads Tags.member.N.Key and .Value up to the first missing index.
func parseTags[T queryTag](p url.Values) []T {
	var out []T
	for i := 1; ; i++ {
		n := strconv.Itoa(i)
		k, ok := p["Tags.member."+n+".Key"]
		if !ok {
			return out
		}
		out = append(out, T{Key: first(k), Value: p.Get("Tags.member." + n + ".Value")})
	}
}

// members reads a query-protocol list: prefix1suffix, prefix2suffix, … up to
// the first missing index.
func members(p url.Values, prefix, suffix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := p[prefix+strconv.Itoa(i)+suffix]
		if !ok {
			return out
		}
		out = append(out, first(v))
	}
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// QueryError is an error answer of a query-protocol fake (STS or IAM).
// Return one from a hook or validator to choose the exact code and status.
type QueryError struct {
	// Status is the HTTP status; 0 means the status AWS uses for Code.
	Status  int
	Code    string
	Message string
}

func (e *QueryError) Error() string { return "aws " + e.Code + ": " + e.Message }

func asQueryError(err error, code string) *QueryError {
	if qe, ok := err.(*QueryError); ok {
		return qe
	}
	return &QueryError{Code: code, Message: err.Error()}
}

// writeQueryError writes an ErrorResponse in namespace xmlns with the given
// status (0: statusFor(e.Code)) and returns the status used.
func writeQueryError(w http.ResponseWriter, xmlns, reqID string, e *QueryError, statusFor func(string) int) int {
	status := e.Status
	if status == 0 {
		status = statusFor(e.Code)
	}
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	buf := getBuf()
	buf = append(buf, "<ErrorResponse "...)
	buf = append(buf, xmlns...)
	buf = append(buf, ">\n  <Error>\n"...)
	buf = appendEl(buf, "    ", "Type", typ)
	buf = appendEl(buf, "    ", "Code", e.Code)
	buf = appendEl(buf, "    ", "Message", e.Message)
	buf = append(buf, "  </Error>\n"...)
	buf = appendEl(buf, "  ", "RequestId", reqID)
	buf = append(buf, "</ErrorResponse>\n"...)
	writeXML(w, status, reqID, buf)
	putBuf(buf)
	return status
}

// xmlTimeFormat is how the query APIs write times.
const xmlTimeFormat = "2006-01-02T15:04:05Z"

// responseOpen starts the answer to action, in a pooled buffer: its
// Response element in namespace xmlns.
func responseOpen(xmlns, action string) []byte {
	buf := getBuf()
	buf = append(buf, '<')
	buf = append(buf, action...)
	buf = append(buf, "Response "...)
	buf = append(buf, xmlns...)
	return append(buf, ">\n"...)
}

// resultOpen starts the answer to action up to the opening of its Result
// element; appendClose ends it.
func resultOpen(xmlns, action string) []byte {
	buf := responseOpen(xmlns, action)
	buf = append(buf, "  <"...)
	buf = append(buf, action...)
	return append(buf, "Result>\n"...)
}

// appendClose closes the Result element resultOpen opened and ends the
// answer.
func appendClose(buf []byte, action, reqID string) []byte {
	buf = append(buf, "  </"...)
	buf = append(buf, action...)
	buf = append(buf, "Result>\n"...)
	return appendMetadata(buf, action, reqID)
}

// appendMetadata appends the ResponseMetadata element and ends the answer.
func appendMetadata(buf []byte, action, reqID string) []byte {
	buf = append(buf, "  <ResponseMetadata>\n"...)
	buf = appendEl(buf, "    ", "RequestId", reqID)
	buf = append(buf, "  </ResponseMetadata>\n</"...)
	buf = append(buf, action...)
	return append(buf, "Response>\n"...)
}

// appendEl appends the element name holding value, escaped, on a line of
// its own.
func appendEl(buf []byte, indent, name, value string) []byte {
	buf = appendStartTag(buf, indent, name)
	buf = appendXMLEscaped(buf, value)
	return appendEndTag(buf, name)
}

// appendTimeEl appends the element name holding t, in UTC.
func appendTimeEl(buf []byte, indent, name string, t time.Time) []byte {
	buf = appendStartTag(buf, indent, name)
	buf = t.UTC().AppendFormat(buf, xmlTimeFormat)
	return appendEndTag(buf, name)
}

// appendXMLEscaped appends s as XML character data. Characters XML cannot
// carry become U+FFFD, as encoding/xml does.
func appendXMLEscaped(buf []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		var esc string
		switch {
		case c == '&':
			esc = "&amp;"
		case c == '<':
			esc = "&lt;"
		case c == '>':
			esc = "&gt;"
		case c == '"':
			esc = "&#34;"
		case c == '\'':
			esc = "&#39;"
		case c < 0x20 && c != '\t' && c != '\n' && c != '\r':
			esc = "\uFFFD"
		default:
			continue
		}
		buf = append(buf, s[start:i]...)
		buf = append(buf, esc...)
		start = i + 1
	}
	return append(buf, s[start:]...)
}

func appendStartTag(buf []byte, indent, name string) []byte {
	buf = append(buf, indent...)
	buf = append(buf, '<')
	buf = append(buf, name...)
	return append(buf, '>')
}

func appendEndTag(buf []byte, name string) []byte {
	buf = append(buf, "</"...)
	buf = append(buf, name...)
	return append(buf, ">\n"...)
}

// writeXML writes an XML answer with status.
func writeXML(w http.ResponseWriter, status int, reqID string, out []byte) {
	hdr := w.Header()
	hdr["Content-Type"] = []string{"text/xml"}
	hdr["X-Amzn-Requestid"] = []string{reqID}
	hdr["Content-Length"] = []string{strconv.Itoa(len(out))}
	w.WriteHeader(status)
	w.Write(out)
}

type faultState struct {
	STSFault
	left int
}

// faultQueue holds pending faults; the first one matching an action
// applies. It costs one atomic load per request while empty.
type faultQueue struct {
	has  atomic.Bool
	mu   sync.Mutex
	list []*faultState
}

// SetFault replaces every pending fault with f.
func (q *faultQueue) SetFault(f STSFault) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.list = []*faultState{{STSFault: f, left: f.Times}}
	q.has.Store(true)
}

// AddFault queues f after the pending faults; the first pending fault that
// matches a call applies to it.
func (q *faultQueue) AddFault(f STSFault) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.list = append(q.list, &faultState{STSFault: f, left: f.Times})
	q.has.Store(true)
}

// ClearFaults removes every pending fault.
func (q *faultQueue) ClearFaults() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.list = nil
	q.has.Store(false)
}

// Throttle answers the next n calls with Throttling (HTTP 400), as AWS does.
func (q *faultQueue) Throttle(n int) {
	q.AddFault(STSFault{Times: n, Code: "Throttling", Message: "Rate exceeded"})
}

// next returns the fault for a call of action, consuming one of its Times.
func (q *faultQueue) next(action string) *STSFault {
	if !q.has.Load() {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, f := range q.list {
		if f.Action != "" && f.Action != action {
			continue
		}
		out := f.STSFault
		if f.Times > 0 {
			f.left--
			if f.left <= 0 {
				q.list = append(q.list[:i:i], q.list[i+1:]...)
				q.has.Store(len(q.list) > 0)
			}
		}
		return &out
	}
	return nil
}

// applyFault applies f. It reports whether the fault answered (or dropped)
// the request, with the status and error code written (0 and "" when none
// was). writeErr writes an ErrorResponse; defaultMsg supplies the message
// AWS sends with a code when the fault sets none.
func applyFault(w http.ResponseWriter, r *http.Request, closed <-chan struct{}, reqID string, f *STSFault,
	writeErr func(*QueryError) int, defaultMsg func(code string) string) (handled bool, status int, code string) {
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true, 0, ""
		case <-closed:
			t.Stop()
			return true, 0, ""
		}
	}
	switch {
	case f.Hang:
		select {
		case <-r.Context().Done():
		case <-closed:
		}
		return true, 0, ""
	case f.Drop:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return true, 0, ""
			}
		}
		panic(http.ErrAbortHandler) // aborts the response without writing it
	case f.Body != "":
		status := f.Status
		if status == 0 {
			status = http.StatusBadGateway
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		io.WriteString(w, f.Body)
		return true, status, ""
	case f.Code != "":
		msg := f.Message
		if msg == "" {
			msg = defaultMsg(f.Code)
		}
		return true, writeErr(&QueryError{Status: f.Status, Code: f.Code, Message: msg}), f.Code
	case f.Status != 0:
		w.Header().Set("x-amzn-RequestId", reqID)
		w.WriteHeader(f.Status)
		return true, f.Status, ""
	}
	return false, 0, "" // latency only: answer normally
}
