package relaygw_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/mostro/chat"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/testkit/fakeparty"
	"github.com/serbero/serbero/pkg/testkit/relay"
	"github.com/serbero/serbero/services/relaygw"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

type chatStream struct {
	lines chan *relaygwv1.ChatMessage
	done  chan error
}

func streamChat(t *testing.T, h *relaygwtest.Harness, after int64, parties ...string) (*chatStream, context.CancelFunc) {
	t.Helper()
	c, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := h.Client.StreamChatMessages(c, &relaygwv1.StreamChatMessagesRequest{PartyTradePubkeys: parties, AfterCursor: after})
	require.NoError(t, err)
	cs := &chatStream{lines: make(chan *relaygwv1.ChatMessage, 200), done: make(chan error, 1)}
	go func() {
		for {
			r, err := s.Recv()
			if err != nil {
				cs.done <- err
				return
			}
			cs.lines <- r.GetMessage()
		}
	}()
	return cs, cancel
}

func (c *chatStream) next(t *testing.T) *relaygwv1.ChatMessage {
	t.Helper()
	return c.nextWithin(t, wait)
}

// nextWithin is next with a deadline of its own.
func (c *chatStream) nextWithin(t *testing.T, d time.Duration) *relaygwv1.ChatMessage {
	t.Helper()
	select {
	case l := <-c.lines:
		return l
	case err := <-c.done:
		t.Fatalf("chat stream ended: %v", err)
	case <-time.After(d):
		t.Fatal("no chat line streamed")
	}
	return nil
}

func (c *chatStream) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case l := <-c.lines:
		t.Fatalf("unexpected chat line %q (form %v)", l.GetContent(), l.GetForm())
	case <-time.After(d):
	}
}

// waitChatSubscribed waits until relaygw (not the fake party, which
// watches the same addresses) has the party's channel in its live chat
// REQs of both forms (ids "chat-v2/<chunk>:<n>", "chat-v1/<chunk>:<n>").
func waitChatSubscribed(t *testing.T, h *relaygwtest.Harness, ch chat.Channel) {
	t.Helper()
	waitChatSubscribedOn(t, h.Relay, ch)
}

// waitChatSubscribedOn is waitChatSubscribed on a given relay.
func waitChatSubscribedOn(t *testing.T, r *relay.Relay, ch chat.Channel) {
	t.Helper()
	watching := func(prefix string, match func(nostr.Filter) bool) func() bool {
		return func() bool {
			for _, s := range r.Subscriptions() {
				if !strings.HasPrefix(s.ID, prefix) {
					continue
				}
				for _, f := range s.Filters {
					if f.Until == nil && match(f) {
						return true
					}
				}
			}
			return false
		}
	}
	r.WaitFor(t, wait, "relaygw's v2 chat REQ", watching("chat-v2/", func(f nostr.Filter) bool { return slices.Contains(f.Authors, ch.SignPubkey()) }))
	r.WaitFor(t, wait, "relaygw's v1 chat REQ", watching("chat-v1/", func(f nostr.Filter) bool { return slices.Contains(f.Tags["p"], ch.SharedPubkey()) }))
}

func rejected(t *testing.T, h *relaygwtest.Harness, reason string) float64 {
	t.Helper()
	return h.Metric(t, "serbero_relaygw_chat_lines_rejected_total", "reason", reason)
}

func TestChatInbound(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	buyer := fakeparty.New(t, h.Relay.URL())
	ch := buyer.SetSolver(h.Serbero.PublicKey())
	s, _ := streamChat(t, h, 0, buyer.Pubkey())
	waitChatSubscribed(t, h, ch)

	// A valid v2 line arrives once.
	_, inner := buyer.Send(chat.FormV2, "the seller never paid")
	got := s.next(t)
	require.Equal(t, "the seller never paid", got.GetContent())
	require.Equal(t, buyer.Pubkey(), got.GetPartyTradePubkey())
	require.Equal(t, inner.ID, got.GetInnerEventId())
	require.Equal(t, relaygwv1.ChatForm_CHAT_FORM_V2, got.GetForm())
	require.Equal(t, int64(inner.CreatedAt), got.GetInnerCreatedAt().GetSeconds())

	// The same line in the legacy form, and re-wrapped again: one line.
	buyer.Rewrap(chat.FormV1, inner)
	buyer.Rewrap(chat.FormV2, inner)
	require.Eventually(t, func() bool { return rejected(t, h, "duplicate_inner") == 2 }, wait, 10*time.Millisecond)

	// A legacy-only line arrives, marked v1.
	_, legacy := buyer.Send(chat.FormV1, "sent from an old client")
	got = s.next(t)
	require.Equal(t, legacy.ID, got.GetInnerEventId())
	require.Equal(t, relaygwv1.ChatForm_CHAT_FORM_V1, got.GetForm())

	// Forged (right address, wrong inner signer), in both forms.
	buyer.Forge(chat.FormV2, keys.Generate(), "I am the buyer, trust me")
	buyer.Forge(chat.FormV1, keys.Generate(), "me too")
	// Oversized.
	buyer.SendOversized(chat.FormV2)
	// Future-dated (cursor poisoning).
	buyer.SendFutureDated(chat.FormV2, "from the future", time.Hour)
	// Wrong and extra p tags.
	buyer.SendWithPTags(chat.FormV2, "extra p", ch.ConvPubkey(), keys.Generate().PublicKey())
	require.Eventually(t, func() bool {
		return rejected(t, h, "forged_signer") == 2 && rejected(t, h, "oversized") == 1 &&
			rejected(t, h, "future_dated") == 1 && rejected(t, h, "extra_p_tag") == 1
	}, wait, 10*time.Millisecond)

	// Serbero's own lines echo back on the channel and are not inbound.
	_, err := h.Client.SendChatMessage(ctx(t), &relaygwv1.SendChatMessageRequest{PartyTradePubkey: buyer.Pubkey(), Text: "hello", IdempotencyKey: "c1"})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return rejected(t, h, "own_line") >= 1 }, wait, 10*time.Millisecond)

	s.none(t, 200*time.Millisecond)
	require.Equal(t, 1.0, h.Metric(t, "serbero_relaygw_chat_lines_accepted_total", "form", "v2"))
	require.Equal(t, 1.0, h.Metric(t, "serbero_relaygw_chat_lines_accepted_total", "form", "v1"))
}

func TestChatLinesKeptWhileNoStreamIsOpenAndAcrossRestart(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	seller := fakeparty.New(t, h.Relay.URL())
	ch := seller.SetSolver(h.Serbero.PublicKey())
	s, cancel := streamChat(t, h, 0, seller.Pubkey())
	waitChatSubscribed(t, h, ch)
	seller.Say("first")
	first := s.next(t)
	cancel()

	// No stream open: the channel stays registered.
	seller.Say("while nobody listens")
	require.Eventually(t, func() bool {
		return h.Metric(t, "serbero_relaygw_chat_lines_accepted_total") == 2
	}, wait, 10*time.Millisecond)

	// After a restart the keys are re-derived from the stored trade pubkey.
	h.Restart(t)
	waitChatSubscribed(t, h, ch)
	seller.Say("after the restart")
	s2, _ := streamChat(t, h, first.GetCursor(), seller.Pubkey())
	require.Equal(t, "while nobody listens", s2.next(t).GetContent())
	require.Equal(t, "after the restart", s2.next(t).GetContent())
	s2.none(t, 200*time.Millisecond)
}

func TestChatStreamsOnlyTheRequestedParties(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	buyer := fakeparty.New(t, h.Relay.URL())
	seller := fakeparty.New(t, h.Relay.URL())
	bch, sch := buyer.SetSolver(h.Serbero.PublicKey()), seller.SetSolver(h.Serbero.PublicKey())
	all, _ := streamChat(t, h, 0, buyer.Pubkey(), seller.Pubkey())
	onlySeller, _ := streamChat(t, h, 0, seller.Pubkey())
	waitChatSubscribed(t, h, bch)
	waitChatSubscribed(t, h, sch)
	buyer.Say("buyer here")
	seller.Say("seller here")
	var texts []string
	for range 2 {
		texts = append(texts, all.next(t).GetContent())
	}
	require.ElementsMatch(t, []string{"buyer here", "seller here"}, texts)
	require.Equal(t, "seller here", onlySeller.next(t).GetContent())
	onlySeller.none(t, 200*time.Millisecond)
}

// As for dispute events: lines a relay never sent before its connection
// was cut (stored lines come newest first, before the EOSE) are fetched
// on the next subscribe, because the channel's cursor did not move yet.
func TestChatLinesSurviveACutBeforeTheEndOfStoredEvents(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	buyer := fakeparty.New(t, h.Relay.URL())
	ch := buyer.SetSolver(h.Serbero.PublicKey())
	// relaygwV2 reports whether relaygw's v2 subscription (id
	// "chat-v2/<chunk>:<n>"; the fake party watches the same filter)
	// watches the channel.
	relaygwV2 := func() bool {
		for _, sub := range h.Relay.Subscriptions() {
			for _, f := range sub.Filters {
				if strings.HasPrefix(sub.ID, "chat-v2/") && f.Until == nil && slices.Contains(f.Authors, ch.SignPubkey()) {
					return true
				}
			}
		}
		return false
	}
	_, cancel := streamChat(t, h, 0, buyer.Pubkey()) // registers the channel
	h.Relay.WaitFor(t, wait, "relaygw's v2 chat subscription", relaygwV2)
	cancel()
	// Lines stored while relaygw is down. It then starts with the channel
	// already registered and subscribes once; the stream is opened after
	// that (registering a channel not loaded yet re-subscribes, which
	// would send a second REQ).
	h.Stop()
	h.Relay.WaitFor(t, wait, "no v2 chat subscription of the stopped relaygw", func() bool { return !relaygwV2() })
	stored := func(text string, ago time.Duration) nostr.Event {
		outer, _, err := chat.BuildV2(ch, buyer.Keys(), text, time.Now().Add(-ago))
		require.NoError(t, err)
		h.Relay.Inject(outer)
		return outer
	}
	// Well over the re-subscribe margin (60 s) apart.
	stored("older line", 10*time.Minute)
	newest := stored("newer line", 5*time.Minute)
	h.Relay.SetFaults(relay.Faults{StallStored: relay.First(1, relay.IDs(newest.ID))})
	h.Restart(t)
	h.Relay.WaitFor(t, wait, "relaygw's v2 chat subscription", relaygwV2)

	s, _ := streamChat(t, h, 0, buyer.Pubkey())
	require.Equal(t, "newer line", s.next(t).GetContent())
	// A live line is handled after the newer one: once it is streamed, cut.
	buyer.Say("live line")
	require.Equal(t, "live line", s.next(t).GetContent())
	h.Relay.DisconnectAll()

	require.Equal(t, "older line", s.next(t).GetContent(), "the line the cut relay never sent is fetched on re-subscribe")
	s.none(t, 300*time.Millisecond)
}

func TestChatOutbound(t *testing.T) {
	t.Parallel()
	for _, legacy := range []bool{false, true} {
		name := map[bool]string{false: "V2Only", true: "WithLegacyForm"}[legacy]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := relaygwtest.Start(t, relaygwtest.Options{Config: func(c *relaygw.Config) { c.SendLegacyChat = legacy }})
			buyer := fakeparty.New(t, h.Relay.URL())
			buyer.SetSolver(h.Serbero.PublicKey())
			req := &relaygwv1.SendChatMessageRequest{PartyTradePubkey: buyer.Pubkey(), Text: "Hola, soy Serbero", IdempotencyKey: "greet:" + buyer.Pubkey()}
			resp, err := h.Client.SendChatMessage(ctx(t), req)
			require.NoError(t, err)
			require.True(t, resp.GetDelivered())
			require.False(t, resp.GetDuplicate())
			require.NotEmpty(t, resp.GetV2EventId())
			require.Equal(t, legacy, resp.GetV1EventId() != "")

			line := buyer.WaitLines(1, wait)[0]
			require.Equal(t, "Hola, soy Serbero", line.Text())
			require.Equal(t, h.Serbero.PublicKey(), line.Author())
			require.Equal(t, resp.GetInnerEventId(), line.Inner.ID)
			buyer.AssertNoMoreLines(200 * time.Millisecond)
			if legacy {
				require.Eventually(t, func() bool { return buyer.DuplicateLines() == 1 }, wait, 10*time.Millisecond, "the legacy copy carries the same inner line")
			}
			require.Empty(t, buyer.Rejected())

			again, err := h.Client.SendChatMessage(ctx(t), req)
			require.NoError(t, err)
			require.True(t, again.GetDuplicate())
			require.Equal(t, resp.GetInnerEventId(), again.GetInnerEventId())
			buyer.AssertNoMoreLines(200 * time.Millisecond)

			req.Text = "another text"
			_, err = h.Client.SendChatMessage(ctx(t), req)
			require.Equal(t, codes.InvalidArgument, code(err))
		})
	}
}

func TestChatChannelAndBadInput(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	party := keys.Generate()
	resp, err := h.Client.GetChatChannel(ctx(t), &relaygwv1.GetChatChannelRequest{PartyTradePubkey: party.PublicKey()})
	require.NoError(t, err)
	// The party derives the same addresses from its side.
	theirs, err := chat.Derive(party, h.Serbero.PublicKey())
	require.NoError(t, err)
	require.Equal(t, theirs.SharedPubkey(), resp.GetChannel().GetV1SharedPubkey())
	require.Equal(t, theirs.ConvPubkey(), resp.GetChannel().GetV2ConvPubkey())
	require.Equal(t, theirs.SignPubkey(), resp.GetChannel().GetV2SignPubkey())

	_, err = h.Client.GetChatChannel(ctx(t), &relaygwv1.GetChatChannelRequest{PartyTradePubkey: "zz"})
	require.Equal(t, codes.InvalidArgument, code(err))
	_, err = h.Client.SendChatMessage(ctx(t), &relaygwv1.SendChatMessageRequest{PartyTradePubkey: party.PublicKey(), Text: " ", IdempotencyKey: "k"})
	require.Equal(t, codes.InvalidArgument, code(err))
	s, err := h.Client.StreamChatMessages(ctx(t), &relaygwv1.StreamChatMessagesRequest{})
	require.NoError(t, err)
	_, err = s.Recv()
	require.Equal(t, codes.InvalidArgument, code(err))
}

func TestChatRateLimit(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	buyer := fakeparty.New(t, h.Relay.URL())
	ch := buyer.SetSolver(h.Serbero.PublicKey())
	_, cancel := streamChat(t, h, 0, buyer.Pubkey())
	defer cancel()
	waitChatSubscribed(t, h, ch)
	buyer.Flood(chat.FormV2, 70, "spam")
	// The burst (60) passes, the rest is refused as rate_limited (a refused
	// line is judged again if a relay delivers it again, so the count of
	// refusals may grow; accepted lines never do).
	require.Eventually(t, func() bool {
		return h.Metric(t, "serbero_relaygw_chat_lines_accepted_total") >= 60 && rejected(t, h, "rate_limited") >= 5
	}, wait, 10*time.Millisecond)
	require.LessOrEqual(t, h.Metric(t, "serbero_relaygw_chat_lines_accepted_total"), 65.0)
}
