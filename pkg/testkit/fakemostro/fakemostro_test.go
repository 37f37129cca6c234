package fakemostro_test

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"
	"github.com/nbd-wtf/go-nostr/nip44"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/giftwrap"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/mostro/pow"
	"github.com/serbero/serbero/pkg/mostro/transport"
	"github.com/serbero/serbero/pkg/testkit/fakemostro"
	"github.com/serbero/serbero/pkg/testkit/fakemostro/nostrconn"
	"github.com/serbero/serbero/pkg/testkit/relay"
)

const wait = 10 * time.Second

// client is a Mostro client driven with pkg/mostro directly: it sends
// requests and reads whatever is addressed to its key.
type client struct {
	t    *testing.T
	keys keys.Keys
	conn *nostrconn.Conn

	mu       sync.Mutex
	received []transport.Received
	changed  chan struct{}
}

func newClient(t *testing.T, url string, k keys.Keys) *client {
	t.Helper()
	c := &client{t: t, keys: k, changed: make(chan struct{})}
	since := nostr.Timestamp(time.Now().Add(-fakemostro.Lookback).Unix())
	c.conn = nostrconn.Dial(t, []string{url}, nostr.Filters{{
		Kinds: []int{mostro.KindGiftWrap, mostro.KindDirect}, Tags: nostr.TagMap{"p": {k.PublicKey()}}, Since: &since,
	}}, func(_ string, evt *nostr.Event) {
		rcv, err := transport.Open(*evt, k, transport.OpenOptions{AcceptRumorKind14: true})
		if err != nil {
			return
		}
		c.mu.Lock()
		c.received = append(c.received, rcv)
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	})
	return c
}

func (c *client) send(evt nostr.Event) {
	c.t.Helper()
	require.NoError(c.t, c.conn.Publish(context.Background(), evt))
}

// take builds and sends admin-take-dispute the way relaygw must: version
// and PoW from the node's info event (first-contact difficulty).
func (c *client) take(m *fakemostro.Mostro, disputeID string) nostr.Event {
	c.t.Helper()
	info, err := mostro.ParseNodeInfo(m.InfoEvent())
	require.NoError(c.t, err)
	msg, err := mostro.NewAdminTakeDispute(uint8(info.ProtocolVersion), disputeID)
	require.NoError(c.t, err)
	evt, err := transport.Build(context.Background(), transport.Version(info.ProtocolVersion), msg, c.keys, m.Pubkey(),
		transport.Options{PoW: info.PoWFirstContact, Expiration: time.Now().Add(time.Hour)})
	require.NoError(c.t, err)
	c.send(evt)
	return evt
}

// waitFor waits for a received message matching pred.
func (c *client) waitFor(pred func(transport.Received) bool) transport.Received {
	c.t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for _, r := range c.received {
			if pred(r) {
				c.mu.Unlock()
				return r
			}
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			c.t.Fatalf("client: no matching message within %s", wait)
		}
	}
}

func (c *client) all() []transport.Received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]transport.Received(nil), c.received...)
}

func action(a mostro.Action, id string) func(transport.Received) bool {
	return func(r transport.Received) bool {
		return r.Message.Kind.Action == a && (id == "" || r.Message.Kind.ID == id)
	}
}

func TestInfoEvent(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	m := fakemostro.Start(t, fakemostro.Config{ProtocolVersion: 2, PoW: 3, PoWFirstContact: 9}, r.URL())
	stored := r.WaitEvents(t, wait, nostr.Filter{Kinds: []int{mostro.KindInfo}, Authors: []string{m.Pubkey()}}, 1)
	info, err := mostro.ParseNodeInfo(*stored[0])
	require.NoError(t, err)
	require.Equal(t, 2, info.ProtocolVersion)
	require.Equal(t, 3, info.PoW)
	require.Equal(t, 9, info.PoWFirstContact)
	require.Equal(t, "0.18.5", info.MostroVersion)
	require.Equal(t, m.Pubkey(), stored[0].Tags.GetD())
	require.Empty(t, stored[0].Content)

	// An old node: no protocol_version tag (means v1), first contact = pow.
	old := m.Reconfigure(func(c *fakemostro.Config) {
		c.OmitProtocolVersionTag, c.OmitPoWFirstContactTag, c.PoW, c.PoWFirstContact = true, true, 5, 1
	})
	info, err = mostro.ParseNodeInfo(old)
	require.NoError(t, err)
	require.Equal(t, 1, info.ProtocolVersion)
	require.Equal(t, 5, info.PoWFirstContact)
	require.Greater(t, old.CreatedAt, stored[0].CreatedAt)
}

func TestDisputeRevisions(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	m := fakemostro.Start(t, fakemostro.Config{Name: "TestNode"}, r.URL())
	d := m.OpenDispute(fakemostro.DisputeSpec{Initiator: "seller"})
	solver := keys.Generate().PublicKey()
	m.TakeOver(d.ID, solver)
	m.SetStatus(d.ID, mostro.DisputeSettled)
	revs := m.Revisions(d.ID)
	require.Len(t, revs, 3)
	for i, st := range []string{"initiated", "in-progress", "settled"} {
		ev := revs[i]
		require.Equal(t, mostro.KindDispute, ev.Kind)
		require.Equal(t, m.Pubkey(), ev.PubKey)
		require.Empty(t, ev.Content)
		names := make([]string, len(ev.Tags))
		for j, tag := range ev.Tags {
			names[j] = tag[0]
		}
		require.Equal(t, []string{"d", "expiration", "s", "initiator", "created_at", "y", "z"}, names)
		require.Equal(t, nostr.Tag{"y", "mostro", "TestNode"}, ev.Tags[5])
		require.Equal(t, nostr.Tag{"z", "dispute"}, ev.Tags[6])
		require.Equal(t, strconv.FormatInt(d.CreatedAt, 10), ev.Tags[4][1])
		p, err := mostro.ParseDisputeEvent(ev)
		require.NoError(t, err)
		require.Equal(t, mostro.DisputeStatus(st), p.Status)
		require.Equal(t, "seller", p.Initiator)
		if i > 0 {
			require.Greater(t, ev.CreatedAt, revs[i-1].CreatedAt, "monotonic per d")
		}
	}
	// The relay keeps the newest revision.
	stored := r.WaitEvents(t, wait, nostr.Filter{Kinds: []int{mostro.KindDispute}, Tags: nostr.TagMap{"d": {d.ID}}}, 1)
	require.Equal(t, revs[2].ID, stored[0].ID)
	require.Equal(t, solver, m.Dispute(d.ID).Solver)

	t.Run("Knobs", func(t *testing.T) {
		t.Parallel()
		r := relay.Start(t)
		m := fakemostro.Start(t, fakemostro.Config{PublishedAtTag: true, DisputeExpiration: -1}, r.URL())
		m.UpdateBehavior(func(b *fakemostro.Behavior) { b.SameSecondRevisions = true })
		d1 := m.OpenDispute(fakemostro.DisputeSpec{OmitInitiatorTag: true})
		d2 := m.OpenDispute(fakemostro.DisputeSpec{UnknownInitiatorTag: true})
		m.TakeOver(d1.ID, keys.Generate().PublicKey())
		revs := m.Revisions(d1.ID)
		require.Equal(t, revs[0].CreatedAt, revs[1].CreatedAt, "same-second revisions")
		require.Nil(t, revs[0].Tags.Find("initiator"))
		require.Nil(t, revs[0].Tags.Find("expiration"))
		require.NotNil(t, revs[0].Tags.Find("published_at"))
		require.Nil(t, revs[0].Tags.Find("created_at"))
		require.Equal(t, nostr.Tag{"y", "mostro"}, revs[0].Tags.Find("y"))
		require.Equal(t, "unknown", m.Revisions(d2.ID)[0].Tags.Find("initiator")[1])
		m.SetStatus(d2.ID, mostro.DisputeCooperativelyCanceled)
		require.Equal(t, "cooperatively-canceled", m.Revisions(d2.ID)[1].Tags.Find("s")[1])
		replayed := m.ReplayRevision(d1.ID, 0)
		require.Equal(t, revs[0].ID, replayed.ID)
		require.Equal(t, revs[0].ID, m.Published()[len(m.Published())-1].ID)
	})
}

func TestTakeDisputeRoundTrip(t *testing.T) {
	t.Parallel()
	for _, v := range []int{1, 2} {
		t.Run("v"+strconv.Itoa(v), func(t *testing.T) {
			t.Parallel()
			r := relay.Start(t)
			m := fakemostro.Start(t, fakemostro.Config{ProtocolVersion: v, PoW: 4, PoWFirstContact: 8}, r.URL())
			buyer, seller := newClient(t, r.URL(), keys.Generate()), newClient(t, r.URL(), keys.Generate())
			d := m.OpenDispute(fakemostro.DisputeSpec{BuyerPubkey: buyer.keys.PublicKey(), SellerPubkey: seller.keys.PublicKey()})
			serbero := newClient(t, r.URL(), keys.Generate())
			m.AddSolver(serbero.keys.PublicKey(), fakemostro.PermRead)

			serbero.take(m, d.ID)
			reply := serbero.waitFor(action(mostro.ActionAdminTookDispute, d.ID))
			require.Equal(t, transport.Version(v), reply.Version)
			require.Equal(t, m.Pubkey(), reply.Sender)
			require.Equal(t, mostro.WrapperDispute, reply.Message.Wrapper)
			require.Equal(t, uint8(v), reply.Message.Kind.Version)
			require.Empty(t, reply.Tuple.Signature)
			if v == 1 {
				require.Equal(t, mostro.KindTextNote, reply.RumorKind)
				require.Equal(t, 2, reply.Tuple.Len)
			} else {
				require.Equal(t, 3, reply.Tuple.Len)
			}
			info := reply.Message.Kind.Payload.Dispute
			require.Equal(t, d.ID, info.ID)
			require.Equal(t, buyer.keys.PublicKey(), *info.Info.BuyerPubkey)
			require.Equal(t, seller.keys.PublicKey(), *info.Info.SellerPubkey)
			require.Equal(t, buyer.keys.PublicKey(), info.Info.InitiatorPubkey)
			require.Equal(t, d.OrderID, info.Info.ID)

			for _, party := range []*client{buyer, seller} {
				notice := party.waitFor(action(mostro.ActionAdminTookDispute, d.OrderID))
				require.Equal(t, mostro.WrapperOrder, notice.Message.Wrapper)
				require.Equal(t, serbero.keys.PublicKey(), notice.Message.Kind.Payload.Peer.Pubkey)
			}
			m.WaitFor(t, wait, "in-progress revision", func() bool { return len(m.Revisions(d.ID)) == 2 })
			require.Equal(t, mostro.DisputeInProgress, m.Dispute(d.ID).Status)
			require.Equal(t, serbero.keys.PublicKey(), m.Dispute(d.ID).Solver)
			sent := m.SentMessages()
			require.Len(t, sent, 3)
			require.Equal(t, []string{serbero.keys.PublicKey(), buyer.keys.PublicKey(), seller.keys.PublicKey()},
				[]string{sent[0].To, sent[1].To, sent[2].To}, "solver first, then buyer, then seller")
		})
	}
}

// rawRequest builds a request whose tuple JSON the test writes itself
// (Serbero's library refuses to build admin-settle / admin-cancel).
func rawRequest(t *testing.T, v int, from keys.Keys, to string, tupleJSON string, pow int) nostr.Event {
	t.Helper()
	if v == 1 {
		rumor := nostr.Event{PubKey: from.PublicKey(), CreatedAt: nostr.Now(), Kind: 1, Content: tupleJSON}
		w, err := giftwrap.Wrap(context.Background(), rumor, from, to, giftwrap.Options{PoW: pow})
		require.NoError(t, err)
		return w
	}
	ck, err := from.ConversationKey(to)
	require.NoError(t, err)
	ct, err := nip44.Encrypt(tupleJSON, ck)
	require.NoError(t, err)
	e := nostr.Event{PubKey: from.PublicKey(), CreatedAt: nostr.Now(), Kind: 14, Tags: nostr.Tags{{"p", to}}, Content: ct}
	require.NoError(t, minePoW(&e, pow))
	require.NoError(t, from.Sign(&e))
	return e
}

func minePoW(e *nostr.Event, d int) error {
	return pow.Mine(context.Background(), e, d, pow.Options{})
}

func TestIntakeDrops(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	m := fakemostro.Start(t, fakemostro.Config{ProtocolVersion: 2, PoW: 4, PoWFirstContact: 10}, r.URL())
	d := m.OpenDispute(fakemostro.DisputeSpec{})
	serbero := newClient(t, r.URL(), keys.Generate())
	m.AddSolver(serbero.keys.PublicKey(), fakemostro.PermRead)
	take2, err := mostro.NewAdminTakeDispute(2, d.ID)
	require.NoError(t, err)
	build := func(v transport.Version, msg mostro.Message, opts transport.Options) nostr.Event {
		evt, err := transport.Build(context.Background(), v, msg, serbero.keys, m.Pubkey(), opts)
		require.NoError(t, err)
		return evt
	}

	// An event ID is random: one built with no PoW has ≥4 leading zero bits
	// one time in 16, and one mined to 4 bits reaches 10 one time in 64. Such
	// an event would meet a threshold it is meant to miss, so rebuild until
	// it stays below.
	below := func(bits int, mk func() nostr.Event) nostr.Event {
		for range 1000 {
			if evt := mk(); pow.LeadingZeroBits(evt.ID) < bits {
				return evt
			}
		}
		t.Fatalf("could not build an event with fewer than %d bits of PoW", bits)
		return nostr.Event{}
	}

	cases := []struct {
		name   string
		evt    func() nostr.Event
		reason string
	}{ // relays refuse bad signatures: those are injected (a relay may deliver anything)
		{"NoPoW", func() nostr.Event {
			return below(4, func() nostr.Event { return build(transport.V2, take2, transport.Options{}) })
		}, fakemostro.DropPoW},
		{"BelowFirstContact", func() nostr.Event {
			return below(10, func() nostr.Event { return build(transport.V2, take2, transport.Options{PoW: 4}) })
		}, fakemostro.DropFirstContactPoW},
		{"OlderThan10s", func() nostr.Event {
			return build(transport.V2, take2, transport.Options{PoW: 10, Now: func() time.Time { return time.Now().Add(-11 * time.Second) }})
		}, fakemostro.DropStale},
		{"V1ToV2Node", func() nostr.Event { return build(transport.V1, take2, transport.Options{PoW: 10}) }, fakemostro.DropKind},
		{"NoID", func() nostr.Event {
			msg := take2
			msg.Kind.ID = ""
			return build(transport.V2, msg, transport.Options{PoW: 10})
		}, fakemostro.DropVerify},
		{"BadSignature", func() nostr.Event {
			e := build(transport.V2, take2, transport.Options{PoW: 10})
			e.Sig = e.Sig[:120] + "00000000"
			return e
		}, fakemostro.DropSignature},
		{"ForeignTupleSignature", func() nostr.Event {
			sig, err := mostro.SignMessage(keys.Generate(), take2)
			require.NoError(t, err)
			return rawRequest(t, 2, serbero.keys, m.Pubkey(), string(mostro.MustTupleV2(take2, sig)), 10)
		}, fakemostro.DropBadSignature},
		{"NotForNode", func() nostr.Event {
			e := rawRequest(t, 2, serbero.keys, keys.Generate().PublicKey(), string(mostro.MustTupleV2(take2, "")), 10)
			e.Tags = nostr.Tags{{"p", m.Pubkey()}}
			require.NoError(t, minePoW(&e, 10))
			require.NoError(t, serbero.keys.Sign(&e))
			return e
		}, fakemostro.DropNotForMe},
		{"UnknownDispute", func() nostr.Event {
			msg, err := mostro.NewAdminTakeDispute(2, fakemostro.NewUUID())
			require.NoError(t, err)
			return build(transport.V2, msg, transport.Options{PoW: 10})
		}, fakemostro.DropUnknownDispute},
	}
	for _, c := range cases {
		before := m.Drops()[c.reason]
		evt := c.evt()
		if c.reason == fakemostro.DropSignature {
			r.Inject(evt)
		} else {
			serbero.send(evt)
		}
		m.WaitDrop(t, c.reason, before+1, wait)
	}
	require.Empty(t, serbero.all(), "mostrod drops silently")
	require.Equal(t, mostro.DisputeInitiated, m.Dispute(d.ID).Status)

	// The same request, fresh and with enough PoW, goes through.
	serbero.send(build(transport.V2, take2, transport.Options{PoW: 10}))
	serbero.waitFor(action(mostro.ActionAdminTookDispute, d.ID))
}

func TestIntakeV1Node(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	m := fakemostro.Start(t, fakemostro.Config{ProtocolVersion: 1, PoW: 2}, r.URL())
	d := m.OpenDispute(fakemostro.DisputeSpec{})
	serbero := newClient(t, r.URL(), keys.Generate())
	m.AddSolver(serbero.keys.PublicKey(), fakemostro.PermReadWrite)
	take1, err := mostro.NewAdminTakeDispute(1, d.ID)
	require.NoError(t, err)

	// A v2 request to a v1 node: wrong kind.
	v2, err := transport.Build(context.Background(), transport.V2, take1, serbero.keys, m.Pubkey(), transport.Options{PoW: 2})
	require.NoError(t, err)
	serbero.send(v2)
	m.WaitDrop(t, fakemostro.DropKind, 1, wait)
	// A NIP-17-style rumor (kind 14): mostro-core >= 0.10 refuses it.
	serbero.send(rawRequest(t, 1, serbero.keys, m.Pubkey(), string(mostro.MustTupleV1(take1, "")), 2))
	legacy := func() nostr.Event {
		rumor := nostr.Event{PubKey: serbero.keys.PublicKey(), CreatedAt: nostr.Now(), Kind: 14, Content: string(mostro.MustTupleV1(take1, ""))}
		w, err := giftwrap.Wrap(context.Background(), rumor, serbero.keys, m.Pubkey(), giftwrap.Options{PoW: 2})
		require.NoError(t, err)
		return w
	}
	serbero.send(legacy())
	m.WaitDrop(t, fakemostro.DropRumorKind, 1, wait)
	// Seal by another key than the rumor author without a tuple signature:
	// identity != trade key must be signed.
	rumor := nostr.Event{PubKey: serbero.keys.PublicKey(), CreatedAt: nostr.Now(), Kind: 1, Content: string(mostro.MustTupleV1(take1, ""))}
	split, err := giftwrap.Wrap(context.Background(), rumor, keys.Generate(), m.Pubkey(), giftwrap.Options{PoW: 2})
	require.NoError(t, err)
	serbero.send(split)
	m.WaitDrop(t, fakemostro.DropMissingSignature, 1, wait)
	// The first raw v1 request above was valid: it took the dispute.
	reply := serbero.waitFor(action(mostro.ActionAdminTookDispute, d.ID))
	require.Equal(t, transport.V1, reply.Version)
}

func TestAuthorization(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	m := fakemostro.Start(t, fakemostro.Config{ProtocolVersion: 2}, r.URL())
	reader := newClient(t, r.URL(), keys.Generate())
	writer := newClient(t, r.URL(), keys.Generate())
	reader2 := newClient(t, r.URL(), keys.Generate())
	stranger := newClient(t, r.URL(), keys.Generate())
	m.AddSolver(reader.keys.PublicKey(), fakemostro.PermRead)
	m.AddSolver(reader2.keys.PublicKey(), fakemostro.PermRead)
	m.AddSolver(writer.keys.PublicKey(), fakemostro.PermReadWrite)
	d := m.OpenDispute(fakemostro.DisputeSpec{})
	cantDo := func(c *client, id string) mostro.CantDoReason {
		t.Helper()
		r := c.waitFor(action(mostro.ActionCantDo, id))
		require.Equal(t, mostro.WrapperCantDo, r.Message.Wrapper)
		return r.Message.Kind.Payload.CantDoReasonOrDefault()
	}

	stranger.take(m, d.ID)
	require.Equal(t, mostro.CantDoInvalidPubkey, cantDo(stranger, d.ID))

	reader.take(m, d.ID)
	reader.waitFor(action(mostro.ActionAdminTookDispute, d.ID))
	// Another read solver cannot take an in-progress dispute.
	reader2.take(m, d.ID)
	require.Equal(t, mostro.CantDoInvalidPubkey, cantDo(reader2, d.ID))
	// The holder may re-take it (info re-sent).
	reader.take(m, d.ID)
	m.WaitFor(t, wait, "re-take", func() bool {
		n := 0
		for _, s := range m.SentMessages() {
			if s.To == reader.keys.PublicKey() && s.Message.Kind.Action == mostro.ActionAdminTookDispute {
				n++
			}
		}
		return n == 2
	})

	// A read solver may not settle: the request is judged and refused.
	settle := `[{"order":{"version":2,"request_id":null,"trade_index":null,"id":"` + d.OrderID + `","action":"admin-settle","payload":null}},null,null]`
	reader.send(rawRequest(t, 2, reader.keys, m.Pubkey(), settle, 0))
	require.Equal(t, mostro.CantDoNotAuthorized, cantDo(reader, d.OrderID))
	require.Equal(t, mostro.DisputeInProgress, m.Dispute(d.ID).Status)
	// Nor may a solver that does not hold it.
	writer.send(rawRequest(t, 2, writer.keys, m.Pubkey(), settle, 0))
	require.Equal(t, mostro.CantDoIsNotYourDispute, cantDo(writer, d.OrderID))

	// A read-write solver takes over from the read solver, then settles.
	writer.take(m, d.ID)
	writer.waitFor(action(mostro.ActionAdminTookDispute, d.ID))
	require.Equal(t, writer.keys.PublicKey(), m.Dispute(d.ID).Solver)
	writer.send(rawRequest(t, 2, writer.keys, m.Pubkey(), settle, 0))
	writer.waitFor(action(mostro.ActionAdminSettled, d.OrderID))
	require.Equal(t, mostro.DisputeSettled, m.Dispute(d.ID).Status)
	revs := m.Revisions(d.ID)
	require.Equal(t, "settled", revs[len(revs)-1].Tags.Find("s")[1])

	// The node key may take over anything in progress; a solver may not
	// take a finished dispute.
	d2 := m.OpenDispute(fakemostro.DisputeSpec{})
	m.TakeOver(d2.ID, writer.keys.PublicKey())
	admin := newClient(t, r.URL(), m.Keys())
	admin.take(m, d2.ID)
	admin.waitFor(action(mostro.ActionAdminTookDispute, d2.ID))
	writer.send(rawRequest(t, 2, writer.keys, m.Pubkey(), `[{"order":{"version":2,"request_id":null,"trade_index":null,"id":"`+d2.OrderID+`","action":"admin-cancel","payload":null}},null,null]`, 0))
	require.Equal(t, mostro.CantDoDisputeTakenByAdmin, cantDo(writer, d2.OrderID))
	reader.take(m, d.ID)
	require.Equal(t, mostro.CantDoInvalidPubkey, cantDo(reader, d.ID))
}

func TestAdminAddSolver(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	m := fakemostro.Start(t, fakemostro.Config{ProtocolVersion: 2}, r.URL())
	admin := newClient(t, r.URL(), m.Keys())
	other := newClient(t, r.URL(), keys.Generate())
	solver := keys.Generate()
	npub, err := nip19.EncodePublicKey(solver.PublicKey())
	require.NoError(t, err)
	addSolver := func(c *client, text string, requestID uint64) {
		t.Helper()
		msg := mostro.Message{Wrapper: mostro.WrapperDispute, Kind: mostro.MessageKind{
			Version: 2, RequestID: &requestID, ID: fakemostro.NewUUID(), Action: mostro.ActionAdminAddSolver,
			Payload: &mostro.Payload{Name: mostro.PayloadTextMessage, TextMessage: &text},
		}}
		evt, err := transport.Build(context.Background(), transport.V2, msg, c.keys, m.Pubkey(), transport.Options{})
		require.NoError(t, err)
		c.send(evt)
	}

	addSolver(admin, npub+":read", 7)
	ok := admin.waitFor(func(r transport.Received) bool {
		return r.Message.Kind.Action == mostro.ActionAdminAddSolver && r.Message.Kind.Payload == nil
	})
	require.Equal(t, uint64(7), *ok.Message.Kind.RequestID)
	require.Empty(t, ok.Message.Kind.ID, "the reply carries no id")
	require.Nil(t, ok.Message.Kind.Payload)
	perm, found := m.Solver(solver.PublicKey())
	require.True(t, found)
	require.Equal(t, fakemostro.PermRead, perm)

	addSolver(admin, npub+":admin", 8)
	refused := admin.waitFor(action(mostro.ActionCantDo, ""))
	require.Equal(t, mostro.CantDoInvalidParameters, refused.Message.Kind.Payload.CantDoReasonOrDefault())

	addSolver(admin, solver.PublicKey()+":write", 9) // hex, not npub
	m.WaitDrop(t, fakemostro.DropAddSolverBadNpub, 1, wait)
	addSolver(other, npub, 10)
	m.WaitDrop(t, fakemostro.DropAddSolverNotNode, 1, wait)
	perm, _ = m.Solver(solver.PublicKey())
	require.Equal(t, fakemostro.PermRead, perm, "unchanged")

	addSolver(admin, npub+":write", 11)
	admin.waitFor(func(r transport.Received) bool {
		return r.Message.Kind.Action == mostro.ActionAdminAddSolver && r.Message.Kind.Payload == nil && *r.Message.Kind.RequestID == 11
	})
	perm, _ = m.Solver(solver.PublicKey())
	require.Equal(t, fakemostro.PermReadWrite, perm)
}

func TestMisbehaviour(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	m := fakemostro.Start(t, fakemostro.Config{ProtocolVersion: 1}, r.URL())
	serbero := newClient(t, r.URL(), keys.Generate())
	m.AddSolver(serbero.keys.PublicKey(), fakemostro.PermRead)

	// Stale replies about another dispute, on the relay before the take.
	other := m.OpenDispute(fakemostro.DisputeSpec{})
	m.TakeOver(other.ID, serbero.keys.PublicKey())
	m.SendMessage(serbero.keys.PublicKey(), m.TookDisputeMessage(other.ID))
	reason := mostro.CantDoNotAuthorized
	m.SendMessage(serbero.keys.PublicKey(), mostro.Message{Wrapper: mostro.WrapperCantDo, Kind: mostro.MessageKind{
		ID: other.ID, Action: mostro.ActionCantDo, Payload: &mostro.Payload{Name: mostro.PayloadCantDo, CantDo: &reason},
	}})
	serbero.waitFor(action(mostro.ActionCantDo, other.ID))

	impostor := keys.Generate()
	m.SetBehavior(fakemostro.Behavior{
		ReplyFrom: impostor, MismatchPayloadID: true, OmitSellerPubkey: true,
		LegacyRumorKind14: true, DuplicateReplies: 1, ReplyDelay: 50 * time.Millisecond,
	})
	d := m.OpenDispute(fakemostro.DisputeSpec{})
	serbero.take(m, d.ID)
	reply := serbero.waitFor(action(mostro.ActionAdminTookDispute, d.ID))
	require.Equal(t, impostor.PublicKey(), reply.Sender)
	require.Equal(t, mostro.KindDirect, reply.RumorKind)
	require.NotEqual(t, d.ID, reply.Message.Kind.Payload.Dispute.ID)
	require.Nil(t, reply.Message.Kind.Payload.Dispute.Info.SellerPubkey)
	m.WaitFor(t, wait, "duplicated replies", func() bool {
		n := 0
		for _, s := range m.SentMessages() {
			if s.To == serbero.keys.PublicKey() && s.Message.Kind.ID == d.ID {
				n++
			}
		}
		return n == 2
	})

	m.SetBehavior(fakemostro.Behavior{SameBuyerSeller: true})
	d2 := m.OpenDispute(fakemostro.DisputeSpec{})
	serbero.take(m, d2.ID)
	same := serbero.waitFor(action(mostro.ActionAdminTookDispute, d2.ID)).Message.Kind.Payload.Dispute.Info
	require.Equal(t, *same.BuyerPubkey, *same.SellerPubkey)

	m.SetBehavior(fakemostro.Behavior{TakeCantDo: mostro.CantDoNotAuthorized})
	d3 := m.OpenDispute(fakemostro.DisputeSpec{})
	serbero.take(m, d3.ID)
	require.Equal(t, mostro.CantDoNotAuthorized, serbero.waitFor(action(mostro.ActionCantDo, d3.ID)).Message.Kind.Payload.CantDoReasonOrDefault())

	m.SetBehavior(fakemostro.Behavior{SilentTakes: true})
	d4 := m.OpenDispute(fakemostro.DisputeSpec{})
	serbero.take(m, d4.ID)
	m.WaitDrop(t, fakemostro.DropSilentTake, 1, wait)
	require.Equal(t, mostro.DisputeInitiated, m.Dispute(d4.ID).Status)
}

// Run is the node outside a test (serbero devtool mostro): same protocol,
// problems logged, stopped with Close; an unreachable relay is an error.
func TestRunWithoutTest(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	var logs syncLog
	m, err := fakemostro.Run(fakemostro.Config{}, slog.New(slog.NewTextHandler(&logs, nil)), r.URL())
	require.NoError(t, err)
	defer m.Close()
	r.WaitEvents(t, wait, nostr.Filter{Kinds: []int{mostro.KindInfo}, Authors: []string{m.Pubkey()}}, 1)
	solver := newClient(t, r.URL(), keys.Generate())
	m.AddSolver(solver.keys.PublicKey(), fakemostro.PermRead)
	d := m.OpenDispute(fakemostro.DisputeSpec{})
	solver.take(m, d.ID)
	got := solver.waitFor(action(mostro.ActionAdminTookDispute, d.ID))
	require.Equal(t, d.OrderID, got.Message.Kind.Payload.Dispute.Info.ID)
	require.Equal(t, mostro.DisputeInProgress, m.Dispute(d.ID).Status)
	// A call a test would fail on is logged instead.
	m.TakeOver("no-such-dispute", solver.keys.PublicKey())
	require.Contains(t, logs.String(), "TakeOver: unknown dispute")
	m.Close()
	m.Close() // idempotent

	dead := relay.Start(t)
	url := dead.URL()
	dead.Stop()
	_, err = fakemostro.Run(fakemostro.Config{}, slog.New(slog.NewTextHandler(&logs, nil)), url)
	require.ErrorContains(t, err, "subscribe on "+url)
}

// syncLog is a log sink safe for concurrent writes.
type syncLog struct {
	mu sync.Mutex
	b  []byte
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
