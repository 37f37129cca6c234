package reasoning

import (
	"errors"
	"fmt"
)

// Category is the error_category of a reasoning_call_failed event.
type Category string

// The five categories.
const (
	CategoryUnreachable                Category = "unreachable"
	CategoryTimeout                    Category = "timeout"
	CategoryMalformedResponse          Category = "malformed_response"
	CategoryAuthorityBoundaryViolation Category = "authority_boundary_violation"
	CategoryUnknown                    Category = "unknown"
)

// Error is a failed reasoning call. Msg may hold the provider's error body
// (first 200 bytes) but never model output or rationale text; it is for
// logs only, never for an event payload (use Category).
type Error struct {
	// Category is the failure class.
	Category Category
	// Msg describes the failure.
	Msg string
	// Err is the cause, if any.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	var head string
	switch e.Category {
	case CategoryUnreachable:
		head = "reasoning provider unreachable"
	case CategoryTimeout:
		head = "reasoning provider timed out"
	case CategoryMalformedResponse:
		head = "malformed reasoning response"
	case CategoryAuthorityBoundaryViolation:
		head = "authority boundary violation"
	default:
		head = "reasoning error"
	}
	switch {
	case e.Msg != "" && e.Err != nil:
		return fmt.Sprintf("%s: %s: %v", head, e.Msg, e.Err)
	case e.Msg != "":
		return head + ": " + e.Msg
	case e.Err != nil:
		return fmt.Sprintf("%s: %v", head, e.Err)
	}
	return head
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Unreachable is a connection failure or an HTTP error status.
func Unreachable(format string, args ...any) *Error {
	return &Error{Category: CategoryUnreachable, Msg: fmt.Sprintf(format, args...)}
}

// Timeout is a call that ran out of time.
func Timeout(cause error) *Error { return &Error{Category: CategoryTimeout, Err: cause} }

// Malformed is an answer that does not parse or breaks the output contract.
func Malformed(format string, args ...any) *Error {
	return &Error{Category: CategoryMalformedResponse, Msg: fmt.Sprintf(format, args...)}
}

// CategoryOf returns the category of err: that of a wrapped *Error,
// otherwise unknown.
func CategoryOf(err error) Category {
	var e *Error
	if errors.As(err, &e) {
		return e.Category
	}
	return CategoryUnknown
}

// NotImplemented is the error every call of a declared but not yet
// implemented provider returns, in the reference's words.
func NotImplemented(name string) *Error {
	return Unreachable("reasoning provider '%s' is declared at the Phase 3 boundary but not yet implemented; "+
		"currently shipped providers: openai, openai-compatible, anthropic. "+
		"Landing %s adapter support is tracked as future work beyond Phase 3.", name, name)
}
