package audit

import (
	"context"
	"errors"
)

// Writer records audit events. It is the interface the broker depends on.
//
// Write returns nil only once the event is durable. It sets ev.Seq,
// ev.PrevHash and ev.Hash, and ev.Time when it was zero. On any error the
// caller must fail closed: no credentials without an audit record.
// Implementations are safe for concurrent use.
type Writer interface {
	Write(ctx context.Context, ev *Event) error
}

var (
	_ Writer = (*FileSink)(nil)
	_ Writer = (*Memory)(nil)
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("audit: sink closed")

// ErrBroken is wrapped by every Write error of a FileSink that could not
// restore its file after a failed write: the file may hold a partial batch,
// so nothing more is appended until an operator has looked at it.
var ErrBroken = errors.New("audit: sink broken")
