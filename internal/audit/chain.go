package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// MaxLineBytes bounds one line of an audit file, newline excluded. Sinks
// refuse to write a longer event and Verify refuses to read one.
const MaxLineBytes = 1 << 20

// hashHexLen is the length of a hex-encoded SHA-256.
const hashHexLen = 2 * sha256.Size

// The fixed parts of an encoded Event. encodeBody relies on "seq" being the
// first key and "prev_hash", "hash" the last two; TestEventFieldOrder guards
// that.
const (
	bodyPrefix   = `{"seq":0,`
	bodySuffix   = `"prev_hash":"","hash":""}`
	hashKey      = `"hash":"`
	lineTrailer  = `"}`
	maxSeqDigits = len("18446744073709551615")
)

// lineOverhead is what appendLine adds to a body, at most.
const lineOverhead = len(`{"seq":,"prev_hash":"","hash":""}`) + maxSeqDigits + 2*hashHexLen

// encodeBody returns the JSON of ev without its first key ("seq") and its
// last two ("prev_hash", "hash"): the part of the line that the sink's writer
// goroutine does not have to compute. It encodes a snapshot: later changes
// to ev (or to what its pointers point to) do not affect the result.
func encodeBody(ev *Event) ([]byte, error) {
	e := *ev
	e.Seq, e.PrevHash, e.Hash = 0, "", ""
	b, err := json.Marshal(&e)
	if err != nil {
		return nil, fmt.Errorf("audit: encode event: %w", err)
	}
	if !bytes.HasPrefix(b, []byte(bodyPrefix)) || !bytes.HasSuffix(b, []byte(bodySuffix)) {
		// Only possible if someone reorders Event's fields or gives it a
		// MarshalJSON method; TestEventFieldOrder fails first.
		return nil, errors.New("audit: encode event: seq is not the first key or hash is not the last")
	}
	body := b[len(bodyPrefix) : len(b)-len(bodySuffix)]
	if len(body)+lineOverhead > MaxLineBytes {
		return nil, fmt.Errorf("audit: encode event: %d bytes, more than the %d-byte line limit", len(body)+lineOverhead, MaxLineBytes)
	}
	return body, nil
}

// appendLine appends the complete line (newline included) for the event
// whose body is body, at position seq after prevHash, and returns the
// extended buffer and the event's hash. The bytes are exactly what
// json.Marshal produces for the full Event.
func appendLine(dst []byte, seq uint64, prevHash string, body []byte) ([]byte, string) {
	start := len(dst)
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, ',')
	dst = append(dst, body...)
	dst = append(dst, `"prev_hash":"`...)
	dst = append(dst, prevHash...)
	dst = append(dst, `",`...)
	dst = append(dst, hashKey...)
	sum := chainHash(prevHash, dst[start:])
	dst = append(dst, sum...)
	dst = append(dst, lineTrailer...)
	dst = append(dst, '\n')
	return dst, sum
}

// chainHash returns hex(sha256(prevHash + "\n" + head + `"}`)), where head is
// a line up to and including `"hash":"`: the hash of the line with its hash
// value empty.
func chainHash(prevHash string, head []byte) string {
	h := sha256.New()
	h.Write([]byte(prevHash))
	h.Write([]byte{'\n'})
	h.Write(head)
	h.Write([]byte(lineTrailer))
	return hex.EncodeToString(h.Sum(nil))
}

// link is what the chain needs from one line.
type link struct {
	Seq      uint64
	PrevHash string
	Hash     string
}

// parseLine checks one line (newline excluded) on its own: it ends with a
// hash, is a JSON object with seq and prev_hash, and its hash matches its
// content. It does not check the line against its neighbours.
func parseLine(line []byte) (link, error) {
	if len(line) == 0 {
		return link{}, errors.New("empty line")
	}
	n := len(line)
	if n < len(hashKey)+hashHexLen+len(lineTrailer) ||
		string(line[n-len(lineTrailer):]) != lineTrailer ||
		string(line[n-len(lineTrailer)-hashHexLen-len(hashKey):n-len(lineTrailer)-hashHexLen]) != hashKey {
		return link{}, errors.New(`does not end with a "hash" field (not an audit line, or truncated)`)
	}
	hashAt := n - len(lineTrailer) - hashHexLen
	sum := line[hashAt : n-len(lineTrailer)]
	if !isLowerHex(sum) {
		return link{}, errors.New("hash is not 64 lower-case hex digits")
	}
	var v struct {
		Seq      *uint64 `json:"seq"`
		PrevHash *string `json:"prev_hash"`
		Hash     string  `json:"hash"`
	}
	if err := json.Unmarshal(line, &v); err != nil {
		return link{}, fmt.Errorf("invalid JSON: %w", err)
	}
	switch {
	case v.Seq == nil:
		return link{}, errors.New("no seq")
	case *v.Seq == 0:
		return link{}, errors.New("seq 0 (seq starts at 1)")
	case v.PrevHash == nil:
		return link{}, errors.New("no prev_hash")
	case *v.PrevHash != "" && (len(*v.PrevHash) != hashHexLen || !isLowerHex([]byte(*v.PrevHash))):
		return link{}, errors.New("prev_hash is neither empty nor 64 lower-case hex digits")
	case v.Hash != string(sum):
		// Valid JSON ending in `"hash":"…"}` has "hash" as its last key,
		// and encoding/json keeps the last of duplicate keys.
		return link{}, errors.New("hash field is ambiguous")
	}
	if chainHash(*v.PrevHash, line[:hashAt]) != v.Hash {
		return link{}, errors.New("hash mismatch (event modified)")
	}
	return link{Seq: *v.Seq, PrevHash: *v.PrevHash, Hash: v.Hash}, nil
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// utcTime returns t in UTC, or now() in UTC when t is zero.
func utcTime(t time.Time, now func() time.Time) time.Time {
	if t.IsZero() {
		t = now()
	}
	return t.UTC()
}
