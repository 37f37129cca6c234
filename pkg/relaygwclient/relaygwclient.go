// Package relaygwclient is how callers of relaygw classify its failures:
// by the typed reason relaygw attaches (relaygwv1.SendErrorReason, carried
// as a google.rpc.ErrorInfo detail), never by the message text. intakesvc,
// escalationsvc and mediationsvc share it so a DM failure means the same
// everywhere. See docs/relaygw.md#failure-reasons.
//
//	resp, err := rg.SendDirectMessage(ctx, req)
//	switch {
//	case err == nil:
//	case relaygwclient.IsPermanent(err): // record the failure; do not retry
//	default:                            // retry later, same idempotency key
//	}
package relaygwclient

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/grpcclient"
)

// ReasonOf returns the reason relaygw attached to err, or
// SEND_ERROR_REASON_UNSPECIFIED when there is none (nil err, a failure
// outside relaygw, or an older relaygw) or it is not one this build knows.
func ReasonOf(err error) relaygwv1.SendErrorReason {
	if err == nil {
		return relaygwv1.SendErrorReason_SEND_ERROR_REASON_UNSPECIFIED
	}
	v, ok := relaygwv1.SendErrorReason_value[grpcclient.Reason(err)]
	if !ok {
		return relaygwv1.SendErrorReason_SEND_ERROR_REASON_UNSPECIFIED
	}
	return relaygwv1.SendErrorReason(v)
}

// Permanent reports whether a reason means the same request fails the same
// way on every retry.
func Permanent(r relaygwv1.SendErrorReason) bool {
	switch r {
	case relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_RECIPIENT,
		relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_IDEMPOTENCY_KEY,
		relaygwv1.SendErrorReason_SEND_ERROR_REASON_IDEMPOTENCY_CONFLICT,
		relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_BODY,
		relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_REQUEST,
		relaygwv1.SendErrorReason_SEND_ERROR_REASON_PROTOCOL_UNSUPPORTED:
		return true
	}
	return false
}

// IsPermanent reports whether retrying the call that returned err (with the
// same request) cannot succeed. With a reason it is Permanent(reason);
// without one, only INVALID_ARGUMENT counts as permanent (relaygw's contract
// for requests it refuses), every other failure (UNAVAILABLE, a deadline,
// a dropped connection) as transient. A nil err is not permanent.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	if r := ReasonOf(err); r != relaygwv1.SendErrorReason_SEND_ERROR_REASON_UNSPECIFIED {
		return Permanent(r)
	}
	return status.Code(err) == codes.InvalidArgument
}

// IsInvalidRecipient reports whether err says the recipient or party key is
// not a valid public key (a configuration problem of the caller: a solver's
// or party's key to fix, not a send to retry).
func IsInvalidRecipient(err error) bool {
	return ReasonOf(err) == relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_RECIPIENT
}
