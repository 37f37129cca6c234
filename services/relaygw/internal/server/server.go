// Package server is relaygw's gRPC API: the handlers validate the request,
// call the domain component that decides (internal/dm, disputes,
// mostroinfo, mostroreq, chat, pool) and convert its answer. No handler
// holds state or talks to the database itself.
package server

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"
	"google.golang.org/protobuf/types/known/timestamppb"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/pkg/mostro"
	mchat "github.com/serbero/serbero/pkg/mostro/chat"
	"github.com/serbero/serbero/services/relaygw/internal/chat"
	"github.com/serbero/serbero/services/relaygw/internal/disputes"
	"github.com/serbero/serbero/services/relaygw/internal/dm"
	"github.com/serbero/serbero/services/relaygw/internal/identity"
	"github.com/serbero/serbero/services/relaygw/internal/mostroinfo"
	"github.com/serbero/serbero/services/relaygw/internal/mostroreq"
	"github.com/serbero/serbero/services/relaygw/internal/pool"
	"github.com/serbero/serbero/services/relaygw/internal/reason"
	"github.com/serbero/serbero/services/relaygw/internal/retention"
	"github.com/serbero/serbero/services/relaygw/internal/store"
)

// Deps are the domain components the handlers call.
type Deps struct {
	Identity *identity.Identity
	DMs      *dm.Sender
	Disputes *disputes.Ingest
	Info     *mostroinfo.Cache
	Requests *mostroreq.Requester
	Chat     *chat.Manager
	Pool     *pool.Pool
	// Consumers records where stream consumers resume (retention).
	Consumers *retention.Consumers
	// Stopping, when set, ends open streams when it is cancelled. It goes
	// away once pkg/grpcserver cancels every stream's context at shutdown.
	Stopping context.Context
}

// Server implements relaygwv1.RelayGatewayServiceServer.
type Server struct {
	relaygwv1.UnimplementedRelayGatewayServiceServer

	id        *identity.Identity
	dms       *dm.Sender
	disputes  *disputes.Ingest
	info      *mostroinfo.Cache
	requests  *mostroreq.Requester
	chat      *chat.Manager
	pool      *pool.Pool
	consumers *retention.Consumers
	stopping  context.Context
}

// New builds the handlers over d.
func New(d Deps) *Server {
	stopping := d.Stopping
	if stopping == nil {
		stopping = context.Background()
	}
	return &Server{
		id: d.Identity, dms: d.DMs, disputes: d.Disputes, info: d.Info, requests: d.Requests,
		chat: d.Chat, pool: d.Pool, consumers: d.Consumers, stopping: stopping,
	}
}

// streamContext ends when the RPC ends or the process starts to stop.
func (s *Server) streamContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.stopping, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// GetIdentity returns Serbero's public key.
func (s *Server) GetIdentity(context.Context, *relaygwv1.GetIdentityRequest) (*relaygwv1.GetIdentityResponse, error) {
	npub, err := nip19.EncodePublicKey(s.id.PublicKey())
	if err != nil {
		return nil, err
	}
	return &relaygwv1.GetIdentityResponse{PubkeyHex: s.id.PublicKey(), Npub: npub}, nil
}

// SendDirectMessage sends one NIP-17 DM, idempotently.
func (s *Server) SendDirectMessage(ctx context.Context, req *relaygwv1.SendDirectMessageRequest) (*relaygwv1.SendDirectMessageResponse, error) {
	r, err := s.dms.Send(ctx, req.GetRecipientPubkey(), req.GetBody(), req.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	return &relaygwv1.SendDirectMessageResponse{
		EventId: r.EventID, Delivered: r.Delivered, Duplicate: r.Duplicate, Results: publishResults(r.Results),
	}, nil
}

// StreamDisputeEvents streams stored dispute events after the cursor, then
// live ones, until the client leaves or the process stops.
func (s *Server) StreamDisputeEvents(req *relaygwv1.StreamDisputeEventsRequest, stream relaygwv1.RelayGatewayService_StreamDisputeEventsServer) error {
	if req.GetAfterCursor() < 0 {
		return reason.With(apperr.InvalidArgument("after_cursor must not be negative"), reason.InvalidRequest)
	}
	if !retention.ValidConsumer(req.GetConsumer()) {
		return reason.With(apperr.InvalidArgument("consumer must be at most %d characters of a-z, 0-9, '.', '_', '-'", retention.MaxConsumerName), reason.InvalidRequest)
	}
	ctx, cancel := s.streamContext(stream.Context())
	defer cancel()
	if s.consumers != nil {
		s.consumers.ResumedDisputes(ctx, req.GetConsumer(), req.GetAfterCursor())
	}
	return s.disputes.Stream(ctx, req.GetAfterCursor(), func(e disputes.Event) error {
		return stream.Send(&relaygwv1.StreamDisputeEventsResponse{Event: &relaygwv1.DisputeEvent{
			Cursor:     e.Cursor,
			EventId:    e.Event.ID,
			Pubkey:     e.Event.PubKey,
			CreatedAt:  timestamppb.New(time.Unix(int64(e.Event.CreatedAt), 0)),
			Tags:       tags(e.Event.Tags),
			Content:    e.Event.Content,
			ReceivedAt: timestamppb.New(e.ReceivedAt),
			Sig:        e.Event.Sig,
			Kind:       int32(e.Event.Kind),
			Backfill:   e.Backfill,
		}})
	})
}

// GetMostroInfo returns the node's cached info event.
func (s *Server) GetMostroInfo(ctx context.Context, _ *relaygwv1.GetMostroInfoRequest) (*relaygwv1.GetMostroInfoResponse, error) {
	in, ok := s.info.GetOrLoad(ctx)
	if !ok {
		return nil, reason.With(apperr.FailedPrecondition("no info event (kind 38385) from the Mostro node has been received yet"), reason.NodeInfoUnavailable)
	}
	return &relaygwv1.GetMostroInfoResponse{Info: &relaygwv1.MostroInfo{
		Pubkey:          in.Pubkey,
		ProtocolVersion: int32(in.ProtocolVersion),
		Pow:             int32(in.PoW),
		PowFirstContact: int32(in.PoWFirstContact),
		MostroVersion:   in.MostroVersion,
		EventCreatedAt:  timestamppb.New(time.Unix(in.CreatedAt, 0)),
		FetchedAt:       timestamppb.New(in.FetchedAt),
		EventId:         in.EventID,
	}}, nil
}

// SendMostroRequest sends one Mostro request and awaits its reply.
func (s *Server) SendMostroRequest(ctx context.Context, req *relaygwv1.SendMostroRequestRequest) (*relaygwv1.SendMostroRequestResponse, error) {
	var action mostro.Action
	switch req.GetAction() {
	case relaygwv1.MostroAction_MOSTRO_ACTION_ADMIN_TAKE_DISPUTE:
		action = mostro.ActionAdminTakeDispute
	default:
		return nil, reason.With(apperr.InvalidArgument("action must be set to one of the MostroAction values"), reason.InvalidRequest)
	}
	var timeout time.Duration
	if d := req.GetTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return nil, reason.With(apperr.InvalidArgument("timeout must be a valid non-negative duration"), reason.InvalidRequest)
		}
		timeout = d.AsDuration()
	}
	resp, err := s.requests.Send(ctx, mostroreq.Request{Action: action, ID: req.GetId(), Timeout: timeout, FirstContact: req.GetFirstContact()})
	if err != nil {
		return nil, err
	}
	reply, err := mostroReply(resp.Reply)
	if err != nil {
		return nil, err
	}
	return &relaygwv1.SendMostroRequestResponse{
		ProtocolVersion: int32(resp.ProtocolVersion),
		RequestEventId:  resp.RequestEventID,
		Pow:             int32(resp.PoW),
		Reply:           reply,
	}, nil
}

func mostroReply(r mostroreq.Reply) (*relaygwv1.MostroReply, error) {
	k := r.Message.Kind
	out := &relaygwv1.MostroReply{Action: string(k.Action), Id: k.ID, ReplyEventId: r.EventID}
	if k.Payload != nil {
		// The canonical payload JSON: the message's encoding minus its
		// envelope.
		enc, err := r.Message.Encode()
		if err == nil {
			var env map[string]struct {
				Payload json.RawMessage `json:"payload"`
			}
			if json.Unmarshal(enc, &env) == nil {
				for _, v := range env {
					out.PayloadJson = string(v.Payload)
				}
			}
		}
	}
	switch {
	case k.Action == mostro.ActionCantDo:
		out.Result = &relaygwv1.MostroReply_CantDo{CantDo: &relaygwv1.CantDo{Reason: cantDoReason(k.Payload)}}
	case k.Payload != nil && k.Payload.Dispute != nil && k.Payload.Dispute.Info != nil:
		in := k.Payload.Dispute.Info
		raw := ""
		if b, err := json.Marshal(rawInfo(out.PayloadJson)); err == nil && string(b) != "null" {
			raw = string(b)
		}
		out.Result = &relaygwv1.MostroReply_TookDispute{TookDispute: &relaygwv1.SolverDisputeInfo{
			DisputeId:              k.Payload.Dispute.ID,
			OrderId:                in.ID,
			Kind:                   in.Kind,
			Status:                 in.Status,
			OrderPreviousStatus:    in.OrderPreviousStatus,
			InitiatorPubkey:        in.InitiatorPubkey,
			BuyerPubkey:            deref(in.BuyerPubkey),
			SellerPubkey:           deref(in.SellerPubkey),
			InitiatorFullPrivacy:   in.InitiatorFullPrivacy,
			CounterpartFullPrivacy: in.CounterpartFullPrivacy,
			PaymentMethod:          in.PaymentMethod,
			Amount:                 in.Amount,
			FiatAmount:             in.FiatAmount,
			Premium:                in.Premium,
			Fee:                    in.Fee,
			RawJson:                raw,
		}}
	}
	return out, nil
}

// rawInfo extracts the info object from a dispute payload's canonical
// JSON ({"dispute":["<id>",{...}]}).
func rawInfo(payloadJSON string) json.RawMessage {
	var p struct {
		Dispute []json.RawMessage `json:"dispute"`
	}
	if json.Unmarshal([]byte(payloadJSON), &p) != nil || len(p.Dispute) < 2 {
		return nil
	}
	return p.Dispute[1]
}

func cantDoReason(p *mostro.Payload) string {
	if p == nil || p.CantDo == nil {
		return ""
	}
	return string(*p.CantDo)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// GetChatChannel returns the public addresses of the channel with a party.
func (s *Server) GetChatChannel(_ context.Context, req *relaygwv1.GetChatChannelRequest) (*relaygwv1.GetChatChannelResponse, error) {
	c, err := s.chat.Channel(req.GetPartyTradePubkey())
	if err != nil {
		return nil, err
	}
	return &relaygwv1.GetChatChannelResponse{Channel: &relaygwv1.ChatChannel{
		PartyTradePubkey: c.Party, V1SharedPubkey: c.V1Shared, V2ConvPubkey: c.V2Conv, V2SignPubkey: c.V2Sign,
	}}, nil
}

// SendChatMessage sends one chat line to a party.
func (s *Server) SendChatMessage(ctx context.Context, req *relaygwv1.SendChatMessageRequest) (*relaygwv1.SendChatMessageResponse, error) {
	r, err := s.chat.Send(ctx, req.GetPartyTradePubkey(), req.GetText(), req.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	return &relaygwv1.SendChatMessageResponse{
		InnerEventId:   r.InnerID,
		InnerCreatedAt: timestamppb.New(time.Unix(r.InnerCreatedAt, 0)),
		V2EventId:      r.V2ID,
		V1EventId:      r.V1ID,
		Delivered:      r.Delivered,
		Duplicate:      r.Duplicate,
		Results:        publishResults(r.Results),
	}, nil
}

// StreamChatMessages registers the channels and streams their lines.
func (s *Server) StreamChatMessages(req *relaygwv1.StreamChatMessagesRequest, stream relaygwv1.RelayGatewayService_StreamChatMessagesServer) error {
	if len(req.GetPartyTradePubkeys()) == 0 {
		return reason.With(apperr.InvalidArgument("party_trade_pubkeys must name at least one party"), reason.InvalidRequest)
	}
	if req.GetAfterCursor() < 0 {
		return reason.With(apperr.InvalidArgument("after_cursor must not be negative"), reason.InvalidRequest)
	}
	ctx, cancel := s.streamContext(stream.Context())
	defer cancel()
	parties, err := s.chat.Register(ctx, req.GetPartyTradePubkeys())
	if err != nil {
		return err
	}
	return s.chat.Stream(ctx, parties, req.GetAfterCursor(), func(l store.ChatLine) error {
		form := relaygwv1.ChatForm_CHAT_FORM_V2
		if l.Form == int(mchat.FormV1) {
			form = relaygwv1.ChatForm_CHAT_FORM_V1
		}
		return stream.Send(&relaygwv1.StreamChatMessagesResponse{Message: &relaygwv1.ChatMessage{
			Cursor:           l.Cursor,
			PartyTradePubkey: l.Party,
			InnerEventId:     l.InnerID,
			InnerCreatedAt:   timestamppb.New(time.Unix(l.InnerCreatedAt, 0)),
			OuterEventId:     l.OuterID,
			Form:             form,
			Content:          l.Content,
		}})
	})
}

// GetRelayStatus reports every relay's health.
func (s *Server) GetRelayStatus(context.Context, *relaygwv1.GetRelayStatusRequest) (*relaygwv1.GetRelayStatusResponse, error) {
	var out []*relaygwv1.RelayStatus
	for _, st := range s.pool.Status() {
		rs := &relaygwv1.RelayStatus{Url: st.URL, Connected: st.Connected, Failures: st.Failures, LastError: st.LastError}
		if st.Connected && !st.ConnectedSince.IsZero() {
			rs.ConnectedSince = timestamppb.New(st.ConnectedSince)
		}
		if !st.LastEventAt.IsZero() {
			rs.LastEventAt = timestamppb.New(st.LastEventAt)
		}
		out = append(out, rs)
	}
	return &relaygwv1.GetRelayStatusResponse{Relays: out}, nil
}

func publishResults(rs []pool.Result) []*relaygwv1.PublishResult {
	out := make([]*relaygwv1.PublishResult, 0, len(rs))
	for _, r := range rs {
		var o relaygwv1.PublishOutcome
		switch r.Outcome {
		case pool.Accepted:
			o = relaygwv1.PublishOutcome_PUBLISH_OUTCOME_ACCEPTED
		case pool.Rejected:
			o = relaygwv1.PublishOutcome_PUBLISH_OUTCOME_REJECTED
		case pool.TimedOut:
			o = relaygwv1.PublishOutcome_PUBLISH_OUTCOME_TIMED_OUT
		case pool.NotConnected:
			o = relaygwv1.PublishOutcome_PUBLISH_OUTCOME_NOT_CONNECTED
		}
		out = append(out, &relaygwv1.PublishResult{RelayUrl: r.URL, Outcome: o, Message: r.Message})
	}
	return out
}

func tags(ts nostr.Tags) []*relaygwv1.Tag {
	out := make([]*relaygwv1.Tag, 0, len(ts))
	for _, t := range ts {
		out = append(out, &relaygwv1.Tag{Values: append([]string(nil), t...)})
	}
	return out
}
