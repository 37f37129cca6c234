package relaygw_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

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

// chatCursors counts the stored v2 cursors of a party.
func chatCursors(t *testing.T, h *relaygwtest.Harness, party string) int {
	t.Helper()
	var n int
	require.NoError(t, h.DB.Pool.QueryRow(ctx(t), `SELECT count(*) FROM relaygw_chat_cursors WHERE party_trade_pubkey = $1`, party).Scan(&n))
	return n
}

// The chat equivalent of the capped dispute backlog: 250 lines stored by
// a relay that answers at most 100 per REQ while relaygw was down all
// arrive, each once.
func TestChatCappedRelayBacklogAfterDowntime(t *testing.T) {
	t.Parallel()
	r := relay.StartWithOptions(t, relay.Options{MaxStoredEvents: 100})
	// A wide margin, so that lines written over the last hour count as
	// written during the downtime.
	h := relaygwtest.Start(t, relaygwtest.Options{Relay: r, Config: func(c *relaygw.Config) { c.ResubscribeMargin = time.Hour }})
	buyer := fakeparty.New(t, r.URL())
	ch := buyer.SetSolver(h.Serbero.PublicKey())
	_, cancel := streamChat(t, h, 0, buyer.Pubkey())
	waitChatSubscribed(t, h, ch)
	require.Eventually(t, func() bool { return chatCursors(t, h, buyer.Pubkey()) == 1 }, wait, 10*time.Millisecond)
	cancel()
	h.Stop()

	want := map[string]bool{}
	now := time.Now()
	for i := range 250 { // one every 10 s: a conversation, not a flood
		outer, inner, err := chat.BuildV2(ch, buyer.Keys(), fmt.Sprint("line ", i), now.Add(-time.Duration(i*10)*time.Second))
		require.NoError(t, err)
		r.Inject(outer)
		want[inner.ID] = true
	}
	h.Restart(t)
	s, _ := streamChat(t, h, 0, buyer.Pubkey())
	seen := map[string]bool{}
	for range 250 {
		l := s.next(t)
		require.False(t, seen[l.GetInnerEventId()], "streamed twice: %s", l.GetContent())
		seen[l.GetInnerEventId()] = true
	}
	require.Equal(t, want, seen)
	s.none(t, 300*time.Millisecond)
	require.Zero(t, rejected(t, h, "rate_limited"))
}

// Chat cursors are kept per relay: a relay that was unreachable while the
// party's later lines came through another is read from its own position,
// so a line only it holds is not skipped.
func TestChatCursorsPerRelay(t *testing.T) {
	t.Parallel()
	lagging := relay.Start(t)
	lagging.Stop()
	h := relaygwtest.Start(t, relaygwtest.Options{ExtraRelays: []string{lagging.URL()}})
	buyer := fakeparty.New(t, h.Relay.URL())
	ch := buyer.SetSolver(h.Serbero.PublicKey())
	s, _ := streamChat(t, h, 0, buyer.Pubkey())
	waitChatSubscribed(t, h, ch)

	// Only the lagging relay got this line, ten minutes ago.
	onlyThere, _, err := chat.BuildV2(ch, buyer.Keys(), "only the lagging relay has this", time.Now().Add(-10*time.Minute))
	require.NoError(t, err)
	lagging.Inject(onlyThere)
	// The party goes on through the other relay.
	buyer.Say("a later line")
	require.Equal(t, "a later line", s.next(t).GetContent())
	require.Eventually(t, func() bool { return chatCursors(t, h, buyer.Pubkey()) == 1 }, wait, 10*time.Millisecond)

	require.NoError(t, lagging.Start())
	require.Equal(t, "only the lagging relay has this", s.next(t).GetContent())
	s.none(t, 300*time.Millisecond)
}

// relaygwChatREQs lists relaygw's live chat REQs on r.
func relaygwChatREQs(r *relay.Relay) []relay.Subscription {
	var out []relay.Subscription
	for _, s := range r.Subscriptions() {
		if strings.HasPrefix(s.ID, "chat-v") && !strings.Contains(s.ID, "/page") {
			out = append(out, s)
		}
	}
	return out
}

// watched reports whether relaygw's chat REQs on r name the channel's v2
// author or v1 address.
func watched(r *relay.Relay, ch chat.Channel) (v2, v1 bool) {
	for _, s := range relaygwChatREQs(r) {
		for _, f := range s.Filters {
			v2 = v2 || slices.Contains(f.Authors, ch.SignPubkey())
			v1 = v1 || slices.Contains(f.Tags["p"], ch.SharedPubkey())
		}
	}
	return v2, v1
}

// A relay that drops the connection of a client sending a message above
// 20 kB: 250 channels used to make one REQ of 250 filters (~40 kB), a
// reconnect loop that took the dispute subscription down too. Now they
// are split into REQs of at most 100 channels (~7 kB), one filter each.
func TestManyChatChannelsMakeBoundedREQs(t *testing.T) {
	t.Parallel()
	r := relay.StartWithOptions(t, relay.Options{MaxMessageLength: 20_000})
	h := relaygwtest.Start(t, relaygwtest.Options{Relay: r})
	buyer := fakeparty.New(t, r.URL())
	ch := buyer.SetSolver(h.Serbero.PublicKey())
	parties := make([]string, 0, 250)
	for range 249 {
		parties = append(parties, keys.Generate().PublicKey())
	}
	parties = append(parties, buyer.Pubkey()) // the last one registered
	s, _ := streamChat(t, h, 0, parties...)
	// Deriving 250 channels takes a while under the race detector on a
	// loaded machine: a generous deadline.
	r.WaitFor(t, 6*wait, "relaygw's six chat REQs", func() bool { return len(relaygwChatREQs(r)) == 6 })
	for _, sub := range relaygwChatREQs(r) {
		require.Len(t, sub.Filters, 1, sub.ID)
		f := sub.Filters[0]
		require.LessOrEqual(t, len(f.Authors)+len(f.Tags["p"]), 100, sub.ID)
		b, err := f.MarshalJSON()
		require.NoError(t, err)
		require.Less(t, len(b), 8_000, sub.ID)
	}
	waitChatSubscribed(t, h, ch)
	buyer.Say("through a bounded REQ")
	require.Equal(t, "through a bounded REQ", s.next(t).GetContent())
	st, err := h.Client.GetRelayStatus(ctx(t), &relaygwv1.GetRelayStatusRequest{})
	require.NoError(t, err)
	require.True(t, st.GetRelays()[0].GetConnected())
	require.Zero(t, st.GetRelays()[0].GetFailures(), "the relay never dropped relaygw")
	h.WaitSubscribed(t)
}

// Retired channels stop being subscribed, for good (a restart keeps them
// retired); retiring is idempotent; registering again brings one back.
func TestRetireChatChannels(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	buyer := fakeparty.New(t, h.Relay.URL())
	seller := fakeparty.New(t, h.Relay.URL())
	bch := buyer.SetSolver(h.Serbero.PublicKey())
	sch := seller.SetSolver(h.Serbero.PublicKey())
	s, cancel := streamChat(t, h, 0, buyer.Pubkey(), seller.Pubkey())
	waitChatSubscribed(t, h, bch)
	waitChatSubscribed(t, h, sch)
	buyer.Say("before")
	require.Equal(t, "before", s.next(t).GetContent())

	resp, err := h.Client.RetireChatChannels(ctx(t), &relaygwv1.RetireChatChannelsRequest{PartyTradePubkeys: []string{strings.ToUpper(buyer.Pubkey())}})
	require.NoError(t, err)
	require.EqualValues(t, 1, resp.GetRetired())
	h.Relay.WaitFor(t, wait, "the buyer's channel unsubscribed, the seller's still watched", func() bool {
		bv2, bv1 := watched(h.Relay, bch)
		sv2, sv1 := watched(h.Relay, sch)
		return !bv2 && !bv1 && sv2 && sv1
	})
	again, err := h.Client.RetireChatChannels(ctx(t), &relaygwv1.RetireChatChannelsRequest{PartyTradePubkeys: []string{buyer.Pubkey(), keys.Generate().PublicKey()}})
	require.NoError(t, err)
	require.Zero(t, again.GetRetired(), "already retired or unknown: nothing to do")
	seller.Say("the seller still talks")
	require.Equal(t, "the seller still talks", s.next(t).GetContent())
	cancel()

	h.Restart(t)
	waitChatSubscribed(t, h, sch)
	v2, v1 := watched(h.Relay, bch)
	require.False(t, v2 || v1, "retired across the restart")

	for _, tt := range []struct {
		name    string
		parties []string
	}{
		{"Empty", nil},
		{"NotAKey", []string{"zz"}},
		{"TooMany", make([]string, 1001)},
	} {
		_, err := h.Client.RetireChatChannels(ctx(t), &relaygwv1.RetireChatChannelsRequest{PartyTradePubkeys: tt.parties})
		require.Equal(t, codes.InvalidArgument, code(err), tt.name)
	}

	// A new stream for the buyer registers the channel again.
	s, _ = streamChat(t, h, 0, buyer.Pubkey())
	require.Equal(t, "before", s.next(t).GetContent(), "stored lines stay readable")
	waitChatSubscribed(t, h, bch)
	buyer.Say("after")
	require.Equal(t, "after", s.next(t).GetContent())
}
