package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Report summarises a file that verified.
type Report struct {
	// Events is the number of lines.
	Events int
	// First and Last are the seq of the first and last line.
	First, Last uint64
	// FirstPrevHash is the prev_hash of the first line: "" when the file
	// starts the chain (genesis). A file that starts mid-chain, after
	// rotation, verifies on its own; an operator must check that
	// FirstPrevHash equals the LastHash of the previous file, or lines
	// removed from its start go unnoticed.
	FirstPrevHash string
	// LastHash is the hash of the last line. Record it outside the file:
	// lines removed from its end can only be detected against it.
	LastHash string
}

// VerifyError reports the first problem Verify found.
type VerifyError struct {
	// Line is 1-based.
	Line int
	// Problem says what is wrong with the line, e.g. "hash mismatch (event
	// modified)".
	Problem string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("audit: line %d: %s", e.Line, e.Problem)
}

// Verify reads an audit file and checks its hash chain: every line is a JSON
// object of at most MaxLineBytes ending with its hash, the hash matches the
// line, seq grows by exactly 1, and prev_hash equals the previous line's
// hash. It stops at the first problem with a *VerifyError that names the
// line, or with the reader's error. An empty input verifies with a zero
// Report. See Report for what an operator must still check.
func Verify(r io.Reader) (Report, error) {
	lr := lineReader{br: bufio.NewReaderSize(r, 64<<10)}
	var rep Report
	for n := 1; ; n++ {
		line, err := lr.next()
		switch {
		case errors.Is(err, errLineTooLong):
			return Report{}, &VerifyError{Line: n, Problem: fmt.Sprintf("longer than %d bytes", MaxLineBytes)}
		case errors.Is(err, io.EOF):
			if len(line) > 0 {
				return Report{}, &VerifyError{Line: n, Problem: "no newline at end of file (incomplete write)"}
			}
			return rep, nil
		case err != nil:
			return Report{}, fmt.Errorf("audit: read line %d: %w", n, err)
		}
		l, err := parseLine(line[:len(line)-1])
		if err != nil {
			return Report{}, &VerifyError{Line: n, Problem: err.Error()}
		}
		if n == 1 {
			if l.PrevHash == "" && l.Seq != 1 {
				return Report{}, &VerifyError{Line: n, Problem: fmt.Sprintf("genesis event (empty prev_hash) has seq %d, want 1", l.Seq)}
			}
			rep.First, rep.FirstPrevHash = l.Seq, l.PrevHash
		} else {
			switch {
			case l.Seq > rep.Last+1:
				return Report{}, &VerifyError{Line: n, Problem: fmt.Sprintf("seq %d follows %d (events missing)", l.Seq, rep.Last)}
			case l.Seq != rep.Last+1:
				return Report{}, &VerifyError{Line: n, Problem: fmt.Sprintf("seq %d follows %d (events reordered or repeated)", l.Seq, rep.Last)}
			case l.PrevHash != rep.LastHash:
				return Report{}, &VerifyError{Line: n, Problem: fmt.Sprintf("prev_hash does not match line %d (chain broken)", n-1)}
			}
		}
		rep.Events++
		rep.Last, rep.LastHash = l.Seq, l.Hash
	}
}

var errLineTooLong = errors.New("line too long")

// lineReader reads lines of up to MaxLineBytes (newline excluded) with a
// buffer that grows past bufio's only for long lines.
type lineReader struct {
	br   *bufio.Reader
	long []byte
}

// next returns the next line with its newline, valid until the next call.
// At the end of the input it returns what is left (possibly a line without
// a newline) with io.EOF.
func (lr *lineReader) next() ([]byte, error) {
	line, err := lr.br.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, err
	}
	lr.long = append(lr.long[:0], line...)
	for {
		line, err = lr.br.ReadSlice('\n')
		if len(lr.long)+len(line) > MaxLineBytes+1 {
			return nil, errLineTooLong
		}
		lr.long = append(lr.long, line...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return lr.long, err
		}
	}
}
