package intakesvc_test

// stubRelaygw is a relaygw that can be made to misbehave, for the tests of
// intakesvc's own defenses (the real relaygw never delivers a forged or
// d-less event, so only a broken one can): a gRPC server that ingests kind
// 38386 events from the in-process relay (checking author, id and
// signature, unless told to deliver anything), streams them with cursors
// and sends real NIP-17 gift wraps with relaygw's idempotency contract.

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"
	"github.com/nbd-wtf/go-nostr/nip59"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/mostro/relayconn"
)

type stubRelaygw struct {
	relaygwv1.UnimplementedRelayGatewayServiceServer
	sk, pk   string
	mostroPK string
	url      string

	mu      sync.Mutex
	events  []*relaygwv1.DisputeEvent
	seen    map[string]bool
	changed chan struct{}
	keys    map[string]*stubSend
}

type stubSend struct {
	wrap      nostr.Event
	delivered bool
}

func startStubRelaygw(t testing.TB, relayURL, mostroPK string) (relaygwv1.RelayGatewayServiceClient, *stubRelaygw) {
	t.Helper()
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	s := &stubRelaygw{sk: sk, pk: pk, mostroPK: mostroPK, url: relayURL, seen: map[string]bool{},
		changed: make(chan struct{}), keys: map[string]*stubSend{}}
	ctx, cancel := context.WithCancel(context.Background())
	go s.ingest(ctx)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	relaygwv1.RegisterRelayGatewayServiceServer(gs, s)
	go gs.Serve(lis) //nolint:errcheck // Serve ends with an error when the test stops the server
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		gs.Stop()
	})
	return relaygwv1.NewRelayGatewayServiceClient(conn), s
}

func (s *stubRelaygw) ingest(ctx context.Context) {
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err := relayconn.Dial(dctx, s.url, relayconn.Options{})
		cancel()
		if err == nil {
			sub, err := r.Subscribe(ctx, nostr.Filters{{Kinds: []int{38386}, Authors: []string{s.mostroPK}}}, "stub")
			if err == nil {
				_ = sub.Each(ctx, func(it relayconn.Item) {
					if it.Event != nil {
						s.store(it.Event)
					}
				})
			}
			r.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// store is relaygw's ingest: only the configured node's valid events.
func (s *stubRelaygw) store(ev *nostr.Event) {
	s.mu.Lock()
	mostro := s.mostroPK
	s.mu.Unlock()
	if ev.PubKey != mostro || !ev.CheckID() {
		return
	}
	if ok, _ := ev.CheckSignature(); !ok {
		return
	}
	s.mu.Lock()
	dup := s.seen[ev.ID]
	s.seen[ev.ID] = true
	s.mu.Unlock()
	if !dup {
		s.deliver(ev)
	}
}

// deliver streams ev without any check (not even dedup), as a broken
// relaygw would.
func (s *stubRelaygw) deliver(ev *nostr.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pe := &relaygwv1.DisputeEvent{Cursor: int64(len(s.events) + 1), EventId: ev.ID, Pubkey: ev.PubKey,
		CreatedAt: timestamppb.New(ev.CreatedAt.Time()), Content: ev.Content, ReceivedAt: timestamppb.Now()}
	for _, tg := range ev.Tags {
		pe.Tags = append(pe.Tags, &relaygwv1.Tag{Values: tg})
	}
	pe.Sig, pe.Kind = ev.Sig, int32(ev.Kind)
	s.events = append(s.events, pe)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *stubRelaygw) StreamDisputeEvents(req *relaygwv1.StreamDisputeEventsRequest, stream relaygwv1.RelayGatewayService_StreamDisputeEventsServer) error {
	next := req.GetAfterCursor()
	for {
		s.mu.Lock()
		var batch []*relaygwv1.DisputeEvent
		if int(next) < len(s.events) {
			batch = append(batch, s.events[next:]...)
		}
		ch := s.changed
		s.mu.Unlock()
		for _, ev := range batch {
			if err := stream.Send(&relaygwv1.StreamDisputeEventsResponse{Event: ev}); err != nil {
				return err
			}
			next = ev.Cursor
		}
		select {
		case <-ch:
		case <-stream.Context().Done():
			return nil
		}
	}
}

func (s *stubRelaygw) GetIdentity(context.Context, *relaygwv1.GetIdentityRequest) (*relaygwv1.GetIdentityResponse, error) {
	return &relaygwv1.GetIdentityResponse{PubkeyHex: s.pk}, nil
}

func (s *stubRelaygw) SendDirectMessage(ctx context.Context, req *relaygwv1.SendDirectMessageRequest) (*relaygwv1.SendDirectMessageResponse, error) {
	if !nostr.IsValidPublicKey(req.GetRecipientPubkey()) {
		return nil, status.Error(codes.InvalidArgument, "recipient_pubkey: invalid pubkey")
	}
	s.mu.Lock()
	prev := s.keys[req.GetIdempotencyKey()]
	s.mu.Unlock()
	if prev != nil && prev.delivered {
		return &relaygwv1.SendDirectMessageResponse{EventId: prev.wrap.ID, Delivered: true, Duplicate: true}, nil
	}
	var wrap nostr.Event
	if prev != nil {
		wrap = prev.wrap
	} else {
		rumor := nostr.Event{Kind: 14, Content: req.GetBody(), CreatedAt: nostr.Now(), PubKey: s.pk,
			Tags: nostr.Tags{{"p", req.GetRecipientPubkey()}}}
		rumor.ID = rumor.GetID()
		ck, err := nip44.GenerateConversationKey(req.GetRecipientPubkey(), s.sk)
		if err != nil {
			return nil, err
		}
		wrap, err = nip59.GiftWrap(rumor, req.GetRecipientPubkey(),
			func(pt string) (string, error) { return nip44.Encrypt(pt, ck) },
			func(e *nostr.Event) error { return e.Sign(s.sk) }, nil)
		if err != nil {
			return nil, err
		}
	}
	err := s.publish(ctx, wrap)
	s.mu.Lock()
	s.keys[req.GetIdempotencyKey()] = &stubSend{wrap: wrap, delivered: err == nil}
	s.mu.Unlock()
	resp := &relaygwv1.SendDirectMessageResponse{EventId: wrap.ID, Delivered: err == nil, Duplicate: prev != nil}
	if err != nil {
		resp.Results = []*relaygwv1.PublishResult{{RelayUrl: s.url, Outcome: relaygwv1.PublishOutcome_PUBLISH_OUTCOME_NOT_CONNECTED, Message: err.Error()}}
	} else {
		resp.Results = []*relaygwv1.PublishResult{{RelayUrl: s.url, Outcome: relaygwv1.PublishOutcome_PUBLISH_OUTCOME_ACCEPTED}}
	}
	return resp, nil
}

func (s *stubRelaygw) publish(ctx context.Context, ev nostr.Event) error {
	rctx, stop := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer stop()
	r, err := relayconn.Dial(rctx, s.url, relayconn.Options{})
	if err != nil {
		return err
	}
	defer r.Close()
	return r.Publish(rctx, ev)
}
