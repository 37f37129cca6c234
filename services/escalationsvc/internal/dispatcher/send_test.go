package dispatcher

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
)

// withReason is a relaygw failure as it arrives over gRPC: a code, a
// message and the typed reason as an ErrorInfo detail.
func withReason(t *testing.T, c codes.Code, msg string, r relaygwv1.SendErrorReason) error {
	t.Helper()
	st, err := status.New(c, msg).WithDetails(&errdetails.ErrorInfo{Reason: r.String(), Domain: "serbero"})
	require.NoError(t, err)
	return st.Err()
}

// A send failure is classified by relaygw's reason, not by the gRPC code:
// a permanent reason is a failed recipient whatever the code, a transient
// one is retried whatever the code; without a reason only INVALID_ARGUMENT
// is permanent.
func TestSendFailureFollowsTheReason(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		err       error
		permanent bool
		text      string
	}{
		"invalid recipient": {withReason(t, codes.InvalidArgument, "recipient_pubkey: not a point on secp256k1", relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_RECIPIENT),
			true, "invalid pubkey: recipient_pubkey: not a point on secp256k1"},
		"idempotency conflict": {withReason(t, codes.InvalidArgument, "idempotency_key was already used for a different recipient or body", relaygwv1.SendErrorReason_SEND_ERROR_REASON_IDEMPOTENCY_CONFLICT),
			true, "notification error: gift-wrap send failed: idempotency_key was already used for a different recipient or body"},
		"permanent reason, another code": {withReason(t, codes.FailedPrecondition, "unsupported", relaygwv1.SendErrorReason_SEND_ERROR_REASON_PROTOCOL_UNSUPPORTED),
			true, "notification error: gift-wrap send failed: unsupported"},
		"store unavailable":                       {withReason(t, codes.Unavailable, "store unavailable", relaygwv1.SendErrorReason_SEND_ERROR_REASON_STORE_UNAVAILABLE), false, ""},
		"transient reason, invalid-argument code": {withReason(t, codes.InvalidArgument, "odd", relaygwv1.SendErrorReason_SEND_ERROR_REASON_STORE_UNAVAILABLE), false, ""},
		"no reason, invalid argument (an older relaygw)": {status.Error(codes.InvalidArgument, "bad request"),
			true, "notification error: gift-wrap send failed: bad request"},
		"no reason, unavailable":       {status.Error(codes.Unavailable, "connection refused"), false, ""},
		"no reason, deadline exceeded": {status.Error(codes.DeadlineExceeded, "context deadline exceeded"), false, ""},
		"no reason, internal":          {status.Error(codes.Internal, "internal error"), false, ""},
	} {
		text, permanent := sendFailure(tc.err)
		require.Equal(t, tc.permanent, permanent, name)
		require.Equal(t, tc.text, text, name)
	}
}
