package relaygw_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/grpcclient"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/relaygwclient"
	"github.com/serbero/serbero/pkg/testkit/fakesolver"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

// Every failure a caller must classify says why in a typed reason, never
// only in its message text.
func TestSendFailuresCarryTypedReasons(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	solver := keys.Generate().PublicKey()
	party := keys.Generate().PublicKey()
	_, err := h.Client.SendDirectMessage(ctx(t), &relaygwv1.SendDirectMessageRequest{RecipientPubkey: solver, Body: "first", IdempotencyKey: "used"})
	require.NoError(t, err)
	_, err = h.Client.SendChatMessage(ctx(t), &relaygwv1.SendChatMessageRequest{PartyTradePubkey: party, Text: "first", IdempotencyKey: "used-chat"})
	require.NoError(t, err)

	const (
		invalidRecipient = relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_RECIPIENT
		invalidKey       = relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_IDEMPOTENCY_KEY
		conflict         = relaygwv1.SendErrorReason_SEND_ERROR_REASON_IDEMPOTENCY_CONFLICT
		invalidBody      = relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_BODY
		invalidRequest   = relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_REQUEST
		noInfo           = relaygwv1.SendErrorReason_SEND_ERROR_REASON_NODE_INFO_UNAVAILABLE
	)
	dm := func(recipient, body, key string) func() error {
		return func() error {
			_, err := h.Client.SendDirectMessage(ctx(t), &relaygwv1.SendDirectMessageRequest{RecipientPubkey: recipient, Body: body, IdempotencyKey: key})
			return err
		}
	}
	line := func(p, text, key string) func() error {
		return func() error {
			_, err := h.Client.SendChatMessage(ctx(t), &relaygwv1.SendChatMessageRequest{PartyTradePubkey: p, Text: text, IdempotencyKey: key})
			return err
		}
	}
	tests := []struct {
		name      string
		call      func() error
		code      codes.Code
		reason    relaygwv1.SendErrorReason
		permanent bool
	}{
		{"DMBadRecipient", dm("npub1nope", "x", "k1"), codes.InvalidArgument, invalidRecipient, true},
		{"DMOffCurveRecipient", dm(strings.Repeat("f", 64), "x", "k2"), codes.InvalidArgument, invalidRecipient, true},
		{"DMOffCurveRecipientFirst", dm(strings.Repeat("f", 64), "x", ""), codes.InvalidArgument, invalidRecipient, true},
		{"DMNoKey", dm(solver, "x", ""), codes.InvalidArgument, invalidKey, true},
		{"DMLongKey", dm(solver, "x", strings.Repeat("k", 257)), codes.InvalidArgument, invalidKey, true},
		{"DMNulInKey", dm(solver, "x", "a\x00b"), codes.InvalidArgument, invalidKey, true},
		{"DMControlInKey", dm(solver, "x", "a\nb"), codes.InvalidArgument, invalidKey, true},
		{"DMBlankBody", dm(solver, " \n", "k3"), codes.InvalidArgument, invalidBody, true},
		{"DMConflict", dm(solver, "second", "used"), codes.InvalidArgument, conflict, true},
		{"ChatBadParty", line("nope", "x", "c1"), codes.InvalidArgument, invalidRecipient, true},
		{"ChatNulInKey", line(party, "x", "a\x00b"), codes.InvalidArgument, invalidKey, true},
		{"ChatBlankText", line(party, "  ", "c2"), codes.InvalidArgument, invalidBody, true},
		{"ChatConflict", line(party, "second", "used-chat"), codes.InvalidArgument, conflict, true},
		{"StreamNegativeCursor", func() error {
			s, err := h.Client.StreamDisputeEvents(ctx(t), &relaygwv1.StreamDisputeEventsRequest{AfterCursor: -1})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, codes.InvalidArgument, invalidRequest, true},
		{"StreamBadConsumer", func() error {
			s, err := h.Client.StreamDisputeEvents(ctx(t), &relaygwv1.StreamDisputeEventsRequest{Consumer: "Intake Service!"})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, codes.InvalidArgument, invalidRequest, true},
		{"NoMostroInfoYet", func() error {
			_, err := h.Client.GetMostroInfo(ctx(t), &relaygwv1.GetMostroInfoRequest{})
			return err
		}, codes.FailedPrecondition, noInfo, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			require.Equal(t, tt.code, code(err))
			require.Equal(t, tt.reason.String(), grpcclient.Reason(err), "the reason travels as the enum value's full name")
			require.Equal(t, tt.reason, relaygwclient.ReasonOf(err))
			require.Equal(t, tt.permanent, relaygwclient.IsPermanent(err))
		})
	}
}

// A bad idempotency key among many concurrent sends (which relaygw
// group-commits into shared insert statements) fails alone: every other DM
// is stored and delivered.
func TestBadIdempotencyKeyFailsAloneAmongConcurrentSends(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	solver := fakesolver.Start(t, h.Relay.URL())
	const n = 24
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		key := fmt.Sprintf("batch-%d", i)
		if i == n/2 {
			key = "batch-\x00-bad"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := h.Client.SendDirectMessage(ctx(t), &relaygwv1.SendDirectMessageRequest{
				RecipientPubkey: solver.Pubkey(), Body: fmt.Sprintf("dm %d", i), IdempotencyKey: key,
			})
			if err == nil && !r.GetDelivered() {
				err = fmt.Errorf("dm %d not delivered", i)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i == n/2 {
			require.Equal(t, codes.InvalidArgument, code(err))
			require.Equal(t, relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_IDEMPOTENCY_KEY, relaygwclient.ReasonOf(err))
			continue
		}
		require.NoError(t, err, "dm %d", i)
	}
	require.Len(t, solver.WaitFor(n-1, wait), n-1)
	solver.AssertNoMore(200 * time.Millisecond)
}

// A named consumer's resume position is recorded, for the retention job.
func TestStreamRecordsWhereAConsumerResumes(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	_, err := h.Client.StreamDisputeEvents(c, &relaygwv1.StreamDisputeEventsRequest{AfterCursor: 42, Consumer: "intakesvc"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var after int64
		err := h.DB.Pool.QueryRow(ctx(t), `SELECT after_cursor FROM relaygw_stream_consumers WHERE stream = 'disputes' AND consumer = 'intakesvc'`).Scan(&after)
		return err == nil && after == 42
	}, wait, 10*time.Millisecond)
}
