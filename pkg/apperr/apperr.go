// Package apperr is how domain code says what kind of failure happened
// without knowing about gRPC. The gRPC error boundary (pkg/grpcserver) maps
// each Kind to a status code exactly once, at the edge, and shows clients
// only the public message: never the wrapped cause, which may carry driver
// text.
package apperr

import (
	"errors"
	"fmt"
)

// Kind classifies an error for callers.
type Kind int

// The kinds, mirroring the gRPC codes a service may return on purpose.
const (
	KindInternal Kind = iota
	KindInvalidArgument
	KindNotFound
	KindAlreadyExists
	KindFailedPrecondition
	KindUnavailable
	KindDeadlineExceeded
	KindPermissionDenied
	KindResourceExhausted
	KindAborted
)

// Error is a classified error. Msg is safe to show to clients; Err is the
// cause, for logs only. Reason, when set, is the machine-readable why of the
// failure (UPPER_SNAKE_CASE, e.g. INVALID_RECIPIENT), part of the API's
// contract: the gRPC boundary sends it as a google.rpc.ErrorInfo detail and
// callers switch on it (pkg/grpcclient.Reason), never on message text.
type Error struct {
	Err    error
	Kind   Kind
	Msg    string
	Reason string
}

// Error implements error (message and cause, for logs).
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// New returns a classified error with a public message.
func New(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Wrap classifies err with a public message; err itself stays private.
func Wrap(kind Kind, err error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Err: err}
}

// WithReason returns err carrying reason. When err is (or wraps) an *Error,
// the result is a copy of it with Reason set; otherwise err is classified
// as Internal with reason attached.
func WithReason(err error, reason string) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		c := *e
		c.Reason = reason
		return &c
	}
	return &Error{Kind: KindInternal, Msg: "internal error", Err: err, Reason: reason}
}

// ReasonOf returns the Reason of the first *Error in err's chain, or "".
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// InvalidArgument reports a bad request.
func InvalidArgument(format string, args ...any) error {
	return New(KindInvalidArgument, format, args...)
}

// NotFound reports a missing entity.
func NotFound(format string, args ...any) error { return New(KindNotFound, format, args...) }

// FailedPrecondition reports a request that is valid but not now.
func FailedPrecondition(format string, args ...any) error {
	return New(KindFailedPrecondition, format, args...)
}

// Unavailable reports a dependency that is down; callers may retry.
func Unavailable(format string, args ...any) error { return New(KindUnavailable, format, args...) }

// KindOf returns the kind of err, KindInternal when it is not classified.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}
