package testutil

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds what the fake STS and the fake IAM share: both speak the
// AWS query protocol (form-encoded POST in, XML out), sign with SigV4 and
// take the same fault descriptions.

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
	buf = append(buf, ">\n  <Error>\n    <Type>"...)
	buf = append(buf, typ...)
	buf = append(buf, "</Type>\n    <Code>"...)
	buf = appendXMLEscaped(buf, e.Code)
	buf = append(buf, "</Code>\n    <Message>"...)
	buf = appendXMLEscaped(buf, e.Message)
	buf = append(buf, "</Message>\n  </Error>\n  <RequestId>"...)
	buf = append(buf, reqID...)
	buf = append(buf, "</RequestId>\n</ErrorResponse>\n"...)
	hdr := w.Header()
	hdr["Content-Type"] = []string{"text/xml"}
	hdr["X-Amzn-Requestid"] = []string{reqID}
	hdr["Content-Length"] = []string{strconv.Itoa(len(buf))}
	w.WriteHeader(status)
	w.Write(buf)
	putBuf(buf)
	return status
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

func (q *faultQueue) set(f STSFault) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.list = []*faultState{{STSFault: f, left: f.Times}}
	q.has.Store(true)
}

func (q *faultQueue) add(f STSFault) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.list = append(q.list, &faultState{STSFault: f, left: f.Times})
	q.has.Store(true)
}

func (q *faultQueue) clear() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.list = nil
	q.has.Store(false)
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
