// Package reason attaches relaygw's typed failure reasons
// (relaygwv1.SendErrorReason) to the errors its domain packages return, and
// holds the one idempotency-key rule every send shares. The gRPC boundary
// turns the reason into a google.rpc.ErrorInfo detail; callers classify
// with pkg/relaygwclient. See docs/relaygw.md#failure-reasons.
package reason

import (
	"unicode"
	"unicode/utf8"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/apperr"
)

// The reasons, short names for the enum values.
const (
	InvalidRecipient      = relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_RECIPIENT
	InvalidIdempotencyKey = relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_IDEMPOTENCY_KEY
	IdempotencyConflict   = relaygwv1.SendErrorReason_SEND_ERROR_REASON_IDEMPOTENCY_CONFLICT
	InvalidBody           = relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_BODY
	RelaysUnavailable     = relaygwv1.SendErrorReason_SEND_ERROR_REASON_RELAYS_UNAVAILABLE
	StoreUnavailable      = relaygwv1.SendErrorReason_SEND_ERROR_REASON_STORE_UNAVAILABLE
	NodeInfoUnavailable   = relaygwv1.SendErrorReason_SEND_ERROR_REASON_NODE_INFO_UNAVAILABLE
	ProtocolUnsupported   = relaygwv1.SendErrorReason_SEND_ERROR_REASON_PROTOCOL_UNSUPPORTED
	Timeout               = relaygwv1.SendErrorReason_SEND_ERROR_REASON_TIMEOUT
	InvalidRequest        = relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_REQUEST
)

// With returns err carrying r (see apperr.WithReason).
func With(err error, r relaygwv1.SendErrorReason) error { return apperr.WithReason(err, r.String()) }

// Of returns the reason attached to err, UNSPECIFIED when none.
func Of(err error) relaygwv1.SendErrorReason {
	return relaygwv1.SendErrorReason(relaygwv1.SendErrorReason_value[apperr.ReasonOf(err)])
}

// MaxKeyLen bounds an idempotency key, in bytes.
const MaxKeyLen = 256

// CheckKey validates an idempotency key: 1 to MaxKeyLen bytes of valid
// UTF-8 without control characters (NUL included; Postgres text cannot hold
// NUL, and a key is an identifier, not text). The error is InvalidArgument
// with reason INVALID_IDEMPOTENCY_KEY.
func CheckKey(key string) error {
	var why string
	switch {
	case key == "":
		why = "is required"
	case len(key) > MaxKeyLen:
		why = "is longer than 256 bytes"
	case !utf8.ValidString(key):
		why = "is not valid UTF-8"
	default:
		for _, r := range key {
			if unicode.IsControl(r) {
				why = "contains a control character"
				break
			}
		}
	}
	if why == "" {
		return nil
	}
	return With(apperr.InvalidArgument("idempotency_key %s (want 1 to %d bytes of UTF-8 without control characters)", why, MaxKeyLen), InvalidIdempotencyKey)
}
