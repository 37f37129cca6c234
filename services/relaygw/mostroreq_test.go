package relaygw_test

import (
	"context"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/mostro/pow"
	"github.com/serbero/serbero/pkg/mostro/transport"
	"github.com/serbero/serbero/pkg/relaygwclient"
	"github.com/serbero/serbero/pkg/testkit/fakemostro"
	"github.com/serbero/serbero/pkg/testkit/relay"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

// withMostro starts a relay, a fake Mostro node on it and relaygw.
func withMostro(t *testing.T, cfg fakemostro.Config) (*relaygwtest.Harness, *fakemostro.Mostro) {
	t.Helper()
	r := relay.Start(t)
	m := fakemostro.Start(t, cfg, r.URL())
	h := relaygwtest.Start(t, relaygwtest.Options{Relay: r, Mostro: m.Keys()})
	// relaygw knows the node's parameters before the first request.
	h.WaitMostroInfo(t)
	return h, m
}

func take(t *testing.T, h *relaygwtest.Harness, id string, timeout time.Duration) (*relaygwv1.SendMostroRequestResponse, error) {
	t.Helper()
	return h.Client.SendMostroRequest(ctx(t), &relaygwv1.SendMostroRequestRequest{
		Action: relaygwv1.MostroAction_MOSTRO_ACTION_ADMIN_TAKE_DISPUTE, Id: id, Timeout: durationpb.New(timeout),
	})
}

func TestTakeDisputeRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                      string
		cfg                       fakemostro.Config
		wantFirstPoW, wantNextPoW int32
	}{
		{"V1", fakemostro.Config{ProtocolVersion: 1, PoW: 3}, 3, 3},
		{"V2WithFirstContactPoW", fakemostro.Config{ProtocolVersion: 2, PoW: 4, PoWFirstContact: 10}, 10, 10},
		{"V1OldNodeWithoutVersionTag", fakemostro.Config{ProtocolVersion: 1, OmitProtocolVersionTag: true}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, m := withMostro(t, tt.cfg)
			m.AddSolver(h.Serbero.PublicKey(), fakemostro.PermRead)
			buyer, seller := keys.Generate().PublicKey(), keys.Generate().PublicKey()
			d := m.OpenDispute(fakemostro.DisputeSpec{BuyerPubkey: buyer, SellerPubkey: seller})

			resp, err := take(t, h, d.ID, 10*time.Second)
			require.NoError(t, err)
			require.EqualValues(t, tt.cfg.ProtocolVersion, resp.GetProtocolVersion())
			require.Equal(t, tt.wantFirstPoW, resp.GetPow(), "first contact")
			reply := resp.GetReply()
			require.Equal(t, "admin-took-dispute", reply.GetAction())
			require.Equal(t, d.ID, reply.GetId())
			info := reply.GetTookDispute()
			require.NotNil(t, info)
			require.Equal(t, d.ID, info.GetDisputeId())
			require.Equal(t, d.OrderID, info.GetOrderId())
			require.Equal(t, buyer, info.GetBuyerPubkey())
			require.Equal(t, seller, info.GetSellerPubkey())
			require.Equal(t, buyer, info.GetInitiatorPubkey())
			require.EqualValues(t, 21000, info.GetAmount())
			require.Contains(t, info.GetRawJson(), `"payment_method":"SEPA"`)
			require.Contains(t, reply.GetPayloadJson(), d.ID)

			req := m.WaitRequest(t, mostro.ActionAdminTakeDispute, d.ID, wait)
			require.Equal(t, h.Serbero.PublicKey(), req.Identity)
			require.Equal(t, tt.cfg.ProtocolVersion, req.Version)
			require.Equal(t, resp.GetRequestEventId(), req.EventID)
			require.Equal(t, h.Serbero.PublicKey(), m.Dispute(d.ID).Solver)
			require.GreaterOrEqual(t, pow.LeadingZeroBits(resp.GetRequestEventId()), int(tt.wantFirstPoW))

			// The holder may take again (still mining first-contact PoW on v2:
			// relaygw cannot know the node's active set).
			again, err := take(t, h, d.ID, 10*time.Second)
			require.NoError(t, err)
			require.Equal(t, "admin-took-dispute", again.GetReply().GetAction())
			require.Equal(t, tt.wantNextPoW, again.GetPow())
		})
	}
}

func TestTakeDisputeCantDoIsATypedResult(t *testing.T) {
	t.Parallel()
	h, m := withMostro(t, fakemostro.Config{ProtocolVersion: 2, PoW: 2, PoWFirstContact: 6})
	d := m.OpenDispute(fakemostro.DisputeSpec{}) // Serbero is not a solver of this node
	resp, err := take(t, h, d.ID, 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, "cant-do", resp.GetReply().GetAction())
	require.Equal(t, "invalid_pubkey", resp.GetReply().GetCantDo().GetReason())
	require.Nil(t, resp.GetReply().GetTookDispute())
	require.Equal(t, 1.0, h.Metric(t, "serbero_relaygw_mostro_requests_total", "result", "cant_do"))
}

func TestTakeDisputeNoReplyTimesOut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(*fakemostro.Mostro) string
	}{
		{"SilentNode", func(m *fakemostro.Mostro) string {
			m.SetBehavior(fakemostro.Behavior{SilentTakes: true})
			return m.OpenDispute(fakemostro.DisputeSpec{}).ID
		}},
		{"UnknownDispute", func(*fakemostro.Mostro) string { return fakemostro.NewUUID() }},
		{"ReplyAboutAnotherDispute", func(m *fakemostro.Mostro) string {
			m.SetBehavior(fakemostro.Behavior{MismatchPayloadID: true})
			return m.OpenDispute(fakemostro.DisputeSpec{}).ID
		}},
		{"ReplyFromAnotherKey", func(m *fakemostro.Mostro) string {
			m.SetBehavior(fakemostro.Behavior{ReplyFrom: keys.Generate()})
			return m.OpenDispute(fakemostro.DisputeSpec{}).ID
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, m := withMostro(t, fakemostro.Config{ProtocolVersion: 2})
			m.AddSolver(h.Serbero.PublicKey(), fakemostro.PermRead)
			id := tt.setup(m)
			_, err := take(t, h, id, 700*time.Millisecond)
			require.Equal(t, codes.DeadlineExceeded, code(err))
			require.Contains(t, err.Error(), "no reply from the Mostro node")
			require.Equal(t, relaygwv1.SendErrorReason_SEND_ERROR_REASON_TIMEOUT, relaygwclient.ReasonOf(err))
			require.False(t, relaygwclient.IsPermanent(err))
			require.Equal(t, 1.0, h.Metric(t, "serbero_relaygw_mostro_requests_total", "result", "timeout"))
		})
	}
}

// Replies that arrive while a request waits but belong to something else
// (a stale cant-do for the same dispute from an attempt 90 s ago, an
// admin-took-dispute for another dispute) are ignored; the fresh reply is
// returned. Some are already on the relay before the request, some arrive
// during the wait (before the node's delayed answer).
func TestTakeDisputeIgnoresStaleReplies(t *testing.T) {
	t.Parallel()
	for _, v := range []int{1, 2} {
		t.Run(map[int]string{1: "V1", 2: "V2"}[v], func(t *testing.T) {
			t.Parallel()
			h, m := withMostro(t, fakemostro.Config{ProtocolVersion: v})
			m.AddSolver(h.Serbero.PublicKey(), fakemostro.PermRead)
			other := m.OpenDispute(fakemostro.DisputeSpec{})
			d := m.OpenDispute(fakemostro.DisputeSpec{})
			staleCantDo := func() {
				msg := mostro.Message{Wrapper: mostro.WrapperCantDo, Kind: mostro.MessageKind{
					Version: uint8(v), ID: d.ID, Action: mostro.ActionCantDo,
					Payload: &mostro.Payload{Name: mostro.PayloadCantDo, CantDo: ptr(mostro.CantDoInvalidPubkey)},
				}}
				past := func() time.Time { return time.Now().Add(-90 * time.Second) }
				ev, err := transport.Build(context.Background(), transport.Version(v), msg, m.Keys(), h.Serbero.PublicKey(), transport.Options{Now: past})
				require.NoError(t, err)
				require.NoError(t, h.Relay.Publish(ctx(t), ev))
			}
			// Before the request.
			staleCantDo()
			m.SendMessage(h.Serbero.PublicKey(), m.TookDisputeMessage(other.ID))

			// During the wait.
			m.SetBehavior(fakemostro.Behavior{ReplyDelay: 700 * time.Millisecond})
			type result struct {
				resp *relaygwv1.SendMostroRequestResponse
				err  error
			}
			done := make(chan result, 1)
			go func() {
				resp, err := take(t, h, d.ID, 10*time.Second)
				done <- result{resp, err}
			}()
			m.WaitRequest(t, mostro.ActionAdminTakeDispute, d.ID, wait)
			staleCantDo()
			m.SendMessage(h.Serbero.PublicKey(), m.TookDisputeMessage(other.ID))

			var res result
			select {
			case res = <-done:
			case <-time.After(wait):
				t.Fatal("no response")
			}
			require.NoError(t, res.err)
			require.Equal(t, "admin-took-dispute", res.resp.GetReply().GetAction())
			require.Equal(t, d.ID, res.resp.GetReply().GetTookDispute().GetDisputeId())
			// The pair sent during the wait is always counted. The pair sent
			// before the request is counted too when the relay delivers it
			// after the request became pending (a loaded machine); otherwise
			// it is dropped undecrypted.
			for _, reason := range []string{"stale", "unmatched"} {
				n := h.Metric(t, "serbero_relaygw_mostro_replies_ignored_total", "reason", reason)
				require.Truef(t, n == 1 || n == 2, "%s replies ignored: %v, want 1 or 2", reason, n)
			}
			require.Zero(t, h.Metric(t, "serbero_relaygw_mostro_replies_ignored_total", "reason", "other_dispute"))
		})
	}
}

func TestSendMostroRequestRefusesBadRequests(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	tests := []struct {
		name string
		req  *relaygwv1.SendMostroRequestRequest
	}{
		{"NoAction", &relaygwv1.SendMostroRequestRequest{Id: fakemostro.NewUUID()}},
		{"UnknownAction", &relaygwv1.SendMostroRequestRequest{Action: relaygwv1.MostroAction(99), Id: fakemostro.NewUUID()}},
		{"BadID", &relaygwv1.SendMostroRequestRequest{Action: relaygwv1.MostroAction_MOSTRO_ACTION_ADMIN_TAKE_DISPUTE, Id: "nope"}},
		{"NegativeTimeout", &relaygwv1.SendMostroRequestRequest{Action: relaygwv1.MostroAction_MOSTRO_ACTION_ADMIN_TAKE_DISPUTE, Id: fakemostro.NewUUID(), Timeout: durationpb.New(-time.Second)}},
	}
	for _, tt := range tests {
		_, err := h.Client.SendMostroRequest(ctx(t), tt.req)
		require.Equal(t, codes.InvalidArgument, code(err), tt.name)
		require.Equal(t, relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_REQUEST, relaygwclient.ReasonOf(err), tt.name)
		require.True(t, relaygwclient.IsPermanent(err), tt.name)
	}
}

// The API cannot express a fund-moving action: MostroAction has no value
// for admin-settle or admin-cancel, and the transport refuses to build
// them.
func TestFundMovingActionsAreUnsendable(t *testing.T) {
	t.Parallel()
	for name := range relaygwv1.MostroAction_value {
		require.NotContains(t, name, "SETTLE")
		require.NotContains(t, name, "CANCEL")
	}
	for _, a := range []mostro.Action{mostro.ActionAdminSettle, mostro.ActionAdminCancel} {
		msg := mostro.Message{Wrapper: mostro.WrapperDispute, Kind: mostro.MessageKind{Version: 2, ID: fakemostro.NewUUID(), Action: a}}
		_, err := transport.Build(context.Background(), transport.V2, msg, keys.Generate(), keys.Generate().PublicKey(), transport.Options{})
		require.ErrorIs(t, err, transport.ErrForbiddenAction)
	}
}

func ptr[T any](v T) *T { return &v }

func TestUnsupportedProtocolVersion(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	h.PublishAsMostro(t, nostr.Event{Kind: 38385, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"d", h.Mostro.PublicKey()}, {"protocol_version", "3"}}})
	require.Eventually(t, func() bool {
		r, err := h.Client.GetMostroInfo(ctx(t), &relaygwv1.GetMostroInfoRequest{})
		return err == nil && r.GetInfo().GetProtocolVersion() == 3
	}, wait, 10*time.Millisecond, "reported as advertised")
	_, err := take(t, h, fakemostro.NewUUID(), time.Second)
	require.Equal(t, codes.FailedPrecondition, code(err))
	require.Contains(t, err.Error(), "protocol version 3")
	require.Equal(t, relaygwv1.SendErrorReason_SEND_ERROR_REASON_PROTOCOL_UNSUPPORTED, relaygwclient.ReasonOf(err))
	require.True(t, relaygwclient.IsPermanent(err))
}
