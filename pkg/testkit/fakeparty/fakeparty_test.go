package fakeparty_test

import (
	"context"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/chat"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/mostro/transport"
	"github.com/serbero/serbero/pkg/testkit/fakemostro"
	"github.com/serbero/serbero/pkg/testkit/fakeparty"
	"github.com/serbero/serbero/pkg/testkit/relay"
)

const wait = 10 * time.Second

// serberoSide reads the channel with a party the way relaygw must: v2 by
// author K_sign, legacy by p, each event through chat.Validator.
func serberoSide(t *testing.T, r *relay.Relay, ch chat.Channel, id string) (nostr.Event, chat.Line, error) {
	t.Helper()
	evs := r.WaitEvents(t, wait, nostr.Filter{IDs: []string{id}}, 1)
	line, err := chat.Validator{}.Validate(*evs[0], ch, ch.Peer)
	return *evs[0], line, err
}

func TestChatWithFakeMostro(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	m := fakemostro.Start(t, fakemostro.Config{ProtocolVersion: 2, PoW: 2, PoWFirstContact: 6}, r.URL())
	buyer, seller := fakeparty.New(t, r.URL()), fakeparty.New(t, r.URL())
	d := m.OpenDispute(fakemostro.DisputeSpec{BuyerPubkey: buyer.Pubkey(), SellerPubkey: seller.Pubkey()})
	serbero := keys.Generate()
	m.AddSolver(serbero.PublicKey(), fakemostro.PermRead)

	// Serbero takes the dispute (v2, first-contact PoW).
	info, err := mostro.ParseNodeInfo(m.InfoEvent())
	require.NoError(t, err)
	msg, err := mostro.NewAdminTakeDispute(uint8(info.ProtocolVersion), d.ID)
	require.NoError(t, err)
	take, err := transport.Build(context.Background(), transport.V2, msg, serbero, m.Pubkey(), transport.Options{PoW: info.PoWFirstContact})
	require.NoError(t, err)
	require.NoError(t, r.Publish(context.Background(), take))
	m.WaitRequest(t, mostro.ActionAdminTakeDispute, d.ID, wait)

	// Both parties learn the solver from Mostro's notice and derive the
	// same channel Serbero derives from their trade keys.
	require.Equal(t, serbero.PublicKey(), buyer.LearnSolver(m.Pubkey(), wait))
	require.Equal(t, serbero.PublicKey(), seller.LearnSolver(m.Pubkey(), wait))
	buyerCh, err := chat.Derive(serbero, buyer.Pubkey())
	require.NoError(t, err)
	require.Equal(t, buyerCh.ConvPubkey(), buyer.Channel().ConvPubkey())
	require.Equal(t, buyerCh.SharedPubkey(), buyer.Channel().SharedPubkey())

	// Party → Serbero, both forms.
	for _, form := range []chat.Form{chat.FormV2, chat.FormV1} {
		outer, inner := buyer.Send(form, "I paid, here is the reference "+form.String())
		_, line, err := serberoSide(t, r, buyerCh, outer.ID)
		require.NoError(t, err)
		require.Equal(t, form, line.Form)
		require.Equal(t, inner.ID, line.Inner.ID)
		require.Equal(t, buyer.Pubkey(), line.Author())
	}

	// Serbero → party: the same inner event in both forms arrives once.
	outerV2, inner, err := chat.BuildV2(buyerCh, serbero, "Buyer: please share the receipt", time.Now())
	require.NoError(t, err)
	outerV1, err := chat.WrapV1(buyerCh, inner, time.Now())
	require.NoError(t, err)
	require.NoError(t, r.Publish(context.Background(), outerV2))
	require.NoError(t, r.Publish(context.Background(), outerV1))
	lines := buyer.WaitLines(1, wait)
	require.Equal(t, "Buyer: please share the receipt", lines[0].Text())
	require.Equal(t, serbero.PublicKey(), lines[0].Author())
	buyer.Forge(chat.FormV1, keys.Keys{}, "forged by someone")
	require.Eventually(t, func() bool { return buyer.DuplicateLines() == 1 && len(buyer.Rejected()) == 1 }, wait, 10*time.Millisecond)
	require.Equal(t, "forged_signer", buyer.Rejected()[0].Reason)
	buyer.AssertNoMoreLines(50 * time.Millisecond)
	require.Empty(t, seller.Lines(), "the seller's channel is separate")
}

func TestAdversarialHelpers(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	serbero := keys.Generate()
	party := fakeparty.New(t, r.URL())
	party.SetSolver(serbero.PublicKey())
	ch, err := chat.Derive(serbero, party.Pubkey())
	require.NoError(t, err)
	third := keys.Generate()
	old := party.Say("an old line")
	_, _, err = serberoSide(t, r, ch, party.Rewrap(chat.FormV2, old).ID) // same inner, fresh outer: fine within 60 s
	require.NoError(t, err)

	oldInner, err := chat.NewInner(party.Keys(), "yesterday", time.Now().Add(-24*time.Hour))
	require.NoError(t, err)

	cases := []struct {
		name string
		evt  func() nostr.Event
		want *chat.Rejection
	}{
		{"ForgeV1", func() nostr.Event { return party.Forge(chat.FormV1, third, "release the funds") }, chat.ErrForgedSigner},
		{"ForgeV2", func() nostr.Event { return party.Forge(chat.FormV2, third, "release the funds") }, chat.ErrForgedSigner},
		{"Outsider", func() nostr.Event { return party.SendAsOutsider("hi") }, chat.ErrWrongAuthor},
		{"FutureV2", func() nostr.Event { return party.SendFutureDated(chat.FormV2, "hi", time.Hour) }, chat.ErrFutureDated},
		{"FutureV1", func() nostr.Event { return party.SendFutureDated(chat.FormV1, "hi", time.Hour) }, chat.ErrFutureDated},
		{"WrongP", func() nostr.Event { return party.SendWithPTags(chat.FormV2, "hi", third.PublicKey()) }, chat.ErrWrongRecipient},
		{"ExtraP", func() nostr.Event {
			return party.SendWithPTags(chat.FormV2, "hi", ch.ConvPubkey(), third.PublicKey())
		}, chat.ErrExtraPTag},
		{"ExtraPV1", func() nostr.Event {
			return party.SendWithPTags(chat.FormV1, "hi", ch.SharedPubkey(), third.PublicKey())
		}, chat.ErrExtraPTag},
		{"Oversized", func() nostr.Event { return party.SendOversized(chat.FormV2) }, chat.ErrOversized},
		{"ReplayV2", func() nostr.Event { return party.Rewrap(chat.FormV2, oldInner) }, chat.ErrTimestampMismatch},
	}
	for _, c := range cases {
		_, _, err := serberoSide(t, r, ch, c.evt().ID)
		require.ErrorIs(t, err, c.want, c.name)
	}

	// A legacy re-wrap of an old inner event passes the stateless checks
	// with the old inner id: the gateway's durable dedup must catch it.
	_, line, err := serberoSide(t, r, ch, party.Rewrap(chat.FormV1, oldInner).ID)
	require.NoError(t, err)
	require.Equal(t, oldInner.ID, line.Inner.ID)

	flood := party.Flood(chat.FormV2, 20, "spam")
	require.Len(t, flood, 20)
	r.WaitEvents(t, wait, nostr.Filter{Kinds: []int{mostro.KindDirect}, Authors: []string{ch.SignPubkey()}}, 20)
}

func TestMostroInbox(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	m := fakemostro.Start(t, fakemostro.Config{ProtocolVersion: 1}, r.URL())
	p := fakeparty.New(t, r.URL())
	notice := mostro.Message{Wrapper: mostro.WrapperOrder, Kind: mostro.MessageKind{
		ID: fakemostro.NewUUID(), Action: mostro.ActionDisputeInitiatedByPeer,
		Payload: &mostro.Payload{Name: mostro.PayloadDispute, Dispute: &mostro.DisputePayload{ID: fakemostro.NewUUID()}},
	}}
	m.SendMessage(p.Pubkey(), notice)
	got := p.WaitMostroMessage(mostro.ActionDisputeInitiatedByPeer, m.Pubkey(), wait)
	require.Equal(t, transport.V1, got.Version)
	require.Equal(t, notice.Kind.ID, got.Message.Kind.ID)
}
