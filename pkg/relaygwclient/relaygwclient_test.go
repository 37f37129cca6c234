package relaygwclient_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/relaygwclient"
)

func withReason(t *testing.T, c codes.Code, reason string) error {
	t.Helper()
	st, err := status.New(c, "refused").WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "serbero"})
	require.NoError(t, err)
	return st.Err()
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		err              error
		reason           relaygwv1.SendErrorReason
		permanent, badPK bool
	}{
		{"Nil", nil, relaygwv1.SendErrorReason_SEND_ERROR_REASON_UNSPECIFIED, false, false},
		{"InvalidRecipient", withReason(t, codes.InvalidArgument, "SEND_ERROR_REASON_INVALID_RECIPIENT"), relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_RECIPIENT, true, true},
		{"Conflict", withReason(t, codes.InvalidArgument, "SEND_ERROR_REASON_IDEMPOTENCY_CONFLICT"), relaygwv1.SendErrorReason_SEND_ERROR_REASON_IDEMPOTENCY_CONFLICT, true, false},
		{"StoreDown", withReason(t, codes.Unavailable, "SEND_ERROR_REASON_STORE_UNAVAILABLE"), relaygwv1.SendErrorReason_SEND_ERROR_REASON_STORE_UNAVAILABLE, false, false},
		{"Timeout", withReason(t, codes.DeadlineExceeded, "SEND_ERROR_REASON_TIMEOUT"), relaygwv1.SendErrorReason_SEND_ERROR_REASON_TIMEOUT, false, false},
		{"Unsupported", withReason(t, codes.FailedPrecondition, "SEND_ERROR_REASON_PROTOCOL_UNSUPPORTED"), relaygwv1.SendErrorReason_SEND_ERROR_REASON_PROTOCOL_UNSUPPORTED, true, false},
		{"UnknownReasonInvalidArgument", withReason(t, codes.InvalidArgument, "SEND_ERROR_REASON_FROM_THE_FUTURE"), relaygwv1.SendErrorReason_SEND_ERROR_REASON_UNSPECIFIED, true, false},
		{"NoReasonInvalidArgument", status.Error(codes.InvalidArgument, "recipient_pubkey is bad"), relaygwv1.SendErrorReason_SEND_ERROR_REASON_UNSPECIFIED, true, false},
		{"NoReasonUnavailable", status.Error(codes.Unavailable, "connection refused"), relaygwv1.SendErrorReason_SEND_ERROR_REASON_UNSPECIFIED, false, false},
		{"NotAStatus", errors.New("boom"), relaygwv1.SendErrorReason_SEND_ERROR_REASON_UNSPECIFIED, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.reason, relaygwclient.ReasonOf(tt.err))
			require.Equal(t, tt.permanent, relaygwclient.IsPermanent(tt.err))
			require.Equal(t, tt.badPK, relaygwclient.IsInvalidRecipient(tt.err))
		})
	}
}

// Every reason is classified on purpose: adding an enum value without
// deciding whether it is permanent fails here.
func TestEveryReasonIsClassified(t *testing.T) {
	t.Parallel()
	transient := map[relaygwv1.SendErrorReason]bool{
		relaygwv1.SendErrorReason_SEND_ERROR_REASON_UNSPECIFIED:           true,
		relaygwv1.SendErrorReason_SEND_ERROR_REASON_RELAYS_UNAVAILABLE:    true,
		relaygwv1.SendErrorReason_SEND_ERROR_REASON_STORE_UNAVAILABLE:     true,
		relaygwv1.SendErrorReason_SEND_ERROR_REASON_NODE_INFO_UNAVAILABLE: true,
		relaygwv1.SendErrorReason_SEND_ERROR_REASON_TIMEOUT:               true,
	}
	require.Len(t, relaygwv1.SendErrorReason_name, 11, "a new reason: classify it here and in Permanent")
	for v := range relaygwv1.SendErrorReason_name {
		r := relaygwv1.SendErrorReason(v)
		require.Equal(t, !transient[r], relaygwclient.Permanent(r), r.String())
	}
}
