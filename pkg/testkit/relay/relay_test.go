package relay_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro/relayconn"
	"github.com/serbero/serbero/pkg/testkit/relay"
)

const wait = 5 * time.Second

func signed(t *testing.T, sk string, kind int, createdAt nostr.Timestamp, tags nostr.Tags, content string) nostr.Event {
	t.Helper()
	e := nostr.Event{Kind: kind, CreatedAt: createdAt, Tags: tags, Content: content}
	require.NoError(t, e.Sign(sk))
	return e
}

func connect(t *testing.T, r *relay.Relay) *relayconn.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := relayconn.Dial(ctx, r.URL(), relayconn.Options{})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func publish(t *testing.T, c *relayconn.Conn, e nostr.Event) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return c.Publish(ctx, e)
}

func query(t *testing.T, c *relayconn.Conn, f nostr.Filter) []*nostr.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	evs, err := c.Query(ctx, nostr.Filters{f})
	require.NoError(t, err)
	return evs
}

func ids(evs []*nostr.Event) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

// sub is a client subscription seen through channels.
type sub struct {
	s      *relayconn.Subscription
	events chan *nostr.Event
	eose   chan struct{}
	ended  chan error
}

// open subscribes without waiting for anything.
func open(t *testing.T, c *relayconn.Conn, f nostr.Filter) *sub {
	t.Helper()
	s, err := c.Subscribe(context.Background(), nostr.Filters{f}, "test")
	require.NoError(t, err)
	out := &sub{s: s, events: make(chan *nostr.Event, 1024), eose: make(chan struct{}), ended: make(chan error, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range s.Wake() {
			items, err := s.Take(1024)
			for _, it := range items {
				if it.EOSE {
					close(out.eose)
					continue
				}
				out.events <- it.Event
			}
			if len(items) == 0 && err != nil {
				out.ended <- err
				return
			}
		}
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return out
}

// recv returns the next event of sub or fails after timeout.
func recv(t *testing.T, s *sub) *nostr.Event {
	t.Helper()
	select {
	case e := <-s.events:
		return e
	case err := <-s.ended:
		t.Fatalf("subscription ended: %v", err)
		return nil
	case <-time.After(wait):
		t.Fatal("no event delivered")
		return nil
	}
}

// none asserts that sub gets no event within d (fails at the first one).
func none(t *testing.T, s *sub, d time.Duration) {
	t.Helper()
	select {
	case e := <-s.events:
		t.Fatalf("unexpected event %s", e.ID)
	case <-time.After(d):
	}
}

func subscribe(t *testing.T, r *relay.Relay, c *relayconn.Conn, f nostr.Filter) *sub {
	t.Helper()
	s := open(t, c, f)
	select {
	case <-s.eose:
	case <-time.After(wait):
		t.Fatal("no EOSE")
	}
	r.WaitSubscribed(t, wait, func(got nostr.Filter) bool { return got.String() == f.String() })
	return s
}

func TestRelayFilters(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	c := connect(t, r)
	mostro, other := nostr.GeneratePrivateKey(), nostr.GeneratePrivateKey()
	mostroPK, _ := nostr.GetPublicKey(mostro)
	someone, _ := nostr.GetPublicKey(other)
	now := nostr.Now()

	d1 := signed(t, mostro, 38386, now-100, nostr.Tags{{"d", "d1"}, {"s", "initiated"}, {"z", "dispute"}}, "")
	d2 := signed(t, mostro, 38386, now-50, nostr.Tags{{"d", "d2"}, {"s", "initiated"}, {"z", "dispute"}}, "")
	order := signed(t, mostro, 38383, now-40, nostr.Tags{{"d", "o1"}, {"z", "order"}}, "")
	dm := signed(t, other, 14, now-10, nostr.Tags{{"p", mostroPK}}, "signed kind 14")
	wrap := signed(t, other, 1059, now-3600, nostr.Tags{{"p", someone}}, "ciphertext")
	for _, e := range []nostr.Event{d1, d2, order, dm, wrap} {
		require.NoError(t, publish(t, c, e))
	}

	since := now - 60
	tests := []struct {
		name   string
		filter nostr.Filter
		want   []string
	}{
		{"AuthorsAndKind", nostr.Filter{Kinds: []int{38386}, Authors: []string{mostroPK}}, []string{d2.ID, d1.ID}},
		{"TagD", nostr.Filter{Kinds: []int{38386}, Tags: nostr.TagMap{"d": {"d1"}}}, []string{d1.ID}},
		{"TagZ", nostr.Filter{Tags: nostr.TagMap{"z": {"order"}}}, []string{order.ID}},
		{"TagP", nostr.Filter{Kinds: []int{14}, Tags: nostr.TagMap{"p": {mostroPK}}}, []string{dm.ID}},
		{"BackdatedGiftWrap", nostr.Filter{Kinds: []int{1059}, Tags: nostr.TagMap{"p": {someone}}}, []string{wrap.ID}},
		{"Since", nostr.Filter{Authors: []string{mostroPK}, Since: &since}, []string{order.ID, d2.ID}},
		{"Limit", nostr.Filter{Authors: []string{mostroPK}, Limit: 1}, []string{order.ID}},
		{"KindsNewestFirst", nostr.Filter{Kinds: []int{38386, 14}}, []string{dm.ID, d2.ID, d1.ID}},
		{"KindsLimit", nostr.Filter{Kinds: []int{38386, 38383}, Limit: 2}, []string{order.ID, d2.ID}},
		{"NoMatch", nostr.Filter{Kinds: []int{38386}, Tags: nostr.TagMap{"s": {"settled"}}}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Newest first, over the wire and in the relay's own answer.
			require.Equal(t, tt.want, ids(query(t, c, tt.filter)))
			require.Equal(t, tt.want, ids(r.Events(tt.filter)))
		})
	}
}

func TestRelayAddressableReplacement(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	c := connect(t, r)
	sk := nostr.GeneratePrivateKey()
	now := nostr.Now()
	initiated := signed(t, sk, 38386, now-10, nostr.Tags{{"d", "x"}, {"s", "initiated"}}, "")
	inProgress := signed(t, sk, 38386, now-5, nostr.Tags{{"d", "x"}, {"s", "in-progress"}}, "")
	require.NoError(t, publish(t, c, initiated))
	require.NoError(t, publish(t, c, inProgress))
	// A stale revision is accepted but does not replace the newer one.
	require.NoError(t, publish(t, c, initiated))
	got := query(t, c, nostr.Filter{Kinds: []int{38386}, Tags: nostr.TagMap{"d": {"x"}}})
	require.Equal(t, []string{inProgress.ID}, ids(got))

	// Versions stored without replacement (Inject) are replaced too.
	injected := signed(t, sk, 38386, now-3, nostr.Tags{{"d", "x"}, {"s", "settled"}}, "")
	r.Inject(injected)
	require.ElementsMatch(t, []string{inProgress.ID, injected.ID}, ids(r.Events(nostr.Filter{Kinds: []int{38386}})))
	newest := signed(t, sk, 38386, now-1, nostr.Tags{{"d", "x"}, {"s", "released"}}, "")
	require.NoError(t, publish(t, c, newest))
	require.Equal(t, []string{newest.ID}, ids(r.Events(nostr.Filter{Kinds: []int{38386}})))
}

func TestRelayLiveDelivery(t *testing.T) {
	t.Parallel()
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	f := nostr.Filter{Kinds: []int{38386}, Authors: []string{pk}}

	t.Run("Normal", func(t *testing.T) {
		t.Parallel()
		r := relay.Start(t)
		sub := subscribe(t, r, connect(t, r), f)
		e := signed(t, sk, 38386, nostr.Now(), nostr.Tags{{"d", "a"}}, "")
		require.NoError(t, r.Publish(context.Background(), e))
		require.Equal(t, e.ID, recv(t, sub).ID)
		none(t, sub, 100*time.Millisecond)
	})
	t.Run("DropLive", func(t *testing.T) {
		t.Parallel()
		r := relay.Start(t)
		sub := subscribe(t, r, connect(t, r), f)
		r.SetFaults(relay.Faults{DropLive: relay.Any})
		e := signed(t, sk, 38386, nostr.Now(), nostr.Tags{{"d", "a"}}, "")
		require.NoError(t, r.Publish(context.Background(), e))
		none(t, sub, 200*time.Millisecond)
		// Stored all the same: a new REQ finds it.
		require.Len(t, r.Events(f), 1)
	})
	t.Run("Duplicate", func(t *testing.T) {
		t.Parallel()
		r := relay.Start(t)
		c := connect(t, r)
		// relayconn passes duplicates on: dedup is the caller's.
		sub := subscribe(t, r, c, f)
		r.SetFaults(relay.Faults{Duplicate: relay.Any})
		e := signed(t, sk, 38386, nostr.Now(), nostr.Tags{{"d", "a"}}, "")
		require.NoError(t, r.Publish(context.Background(), e))
		require.Equal(t, e.ID, recv(t, sub).ID)
		require.Equal(t, e.ID, recv(t, sub).ID)
	})
	t.Run("Delay", func(t *testing.T) {
		t.Parallel()
		r := relay.Start(t)
		sub := subscribe(t, r, connect(t, r), f)
		r.SetFaults(relay.Faults{Delay: 300 * time.Millisecond})
		e := signed(t, sk, 38386, nostr.Now(), nostr.Tags{{"d", "a"}}, "")
		require.NoError(t, r.Publish(context.Background(), e))
		none(t, sub, 100*time.Millisecond)
		require.Equal(t, e.ID, recv(t, sub).ID)
	})
	t.Run("FirstOnly", func(t *testing.T) {
		t.Parallel()
		r := relay.Start(t)
		sub := subscribe(t, r, connect(t, r), f)
		r.SetFaults(relay.Faults{DropLive: relay.First(1, relay.Kinds(38386))})
		e1 := signed(t, sk, 38386, nostr.Now(), nostr.Tags{{"d", "a"}}, "")
		e2 := signed(t, sk, 38386, nostr.Now(), nostr.Tags{{"d", "b"}}, "")
		require.NoError(t, r.Publish(context.Background(), e1))
		require.NoError(t, r.Publish(context.Background(), e2))
		require.Equal(t, e2.ID, recv(t, sub).ID)
	})
}

func TestRelayIncomingFaults(t *testing.T) {
	t.Parallel()
	sk := nostr.GeneratePrivateKey()
	t.Run("Drop", func(t *testing.T) {
		t.Parallel()
		r := relay.Start(t)
		r.SetFaults(relay.Faults{DropIncoming: relay.Kinds(1)})
		e := signed(t, sk, 1, nostr.Now(), nil, "lost")
		require.NoError(t, r.Publish(context.Background(), e), "a lossy relay still says OK")
		require.Empty(t, r.Events(nostr.Filter{IDs: []string{e.ID}}))
		require.Equal(t, 1, r.Received())
	})
	t.Run("Reject", func(t *testing.T) {
		t.Parallel()
		r := relay.Start(t)
		r.SetFaults(relay.Faults{RejectIncoming: relay.Any, RejectReason: "rate-limited: slow down"})
		err := r.Publish(context.Background(), signed(t, sk, 1, nostr.Now(), nil, "x"))
		require.ErrorContains(t, err, "rate-limited: slow down")
	})
	t.Run("BadSignature", func(t *testing.T) {
		t.Parallel()
		r := relay.Start(t)
		e := signed(t, sk, 1, nostr.Now(), nil, "x")
		last := "00"
		if strings.HasSuffix(e.Sig, last) {
			last = "01"
		}
		e.Sig = e.Sig[:len(e.Sig)-2] + last // always a different signature
		require.ErrorContains(t, r.Publish(context.Background(), e), "invalid")
	})
}

func TestRelayRefuseREQ(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	r.SetFaults(relay.Faults{RefuseREQ: func(f nostr.Filter) bool { return len(f.Kinds) > 0 && f.Kinds[0] == 1059 }, RefuseReason: "restricted: no"})
	c := connect(t, r)
	refused := open(t, c, nostr.Filter{Kinds: []int{1059}})
	select {
	case err := <-refused.ended:
		var ce *relayconn.ClosedError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, "restricted: no", ce.Reason)
	case <-time.After(wait):
		t.Fatal("no CLOSED")
	}
	// Other filters still work.
	_ = subscribe(t, r, c, nostr.Filter{Kinds: []int{1}})
}

func TestRelayDisconnectAndRestart(t *testing.T) {
	t.Parallel()
	sk := nostr.GeneratePrivateKey()
	e := signed(t, sk, 1, nostr.Now(), nil, "kept")
	tests := []struct {
		name      string
		fault     func(*relay.Relay) error
		wantStore bool
	}{
		{"DisconnectAll", func(r *relay.Relay) error { r.DisconnectAll(); return nil }, true},
		{"RestartKeep", func(r *relay.Relay) error { return r.Restart(false) }, true},
		{"RestartWipe", func(r *relay.Relay) error { return r.Restart(true) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := relay.Start(t)
			url := r.URL()
			c := connect(t, r)
			require.NoError(t, publish(t, c, e))
			r.WaitConnections(t, wait, 1)
			require.NoError(t, tt.fault(r))
			select {
			case <-c.Done():
			case <-time.After(wait):
				t.Fatal("client not disconnected")
			}
			require.Equal(t, url, r.URL(), "same port")
			c2 := connect(t, r)
			got := query(t, c2, nostr.Filter{IDs: []string{e.ID}})
			if tt.wantStore {
				require.Equal(t, []string{e.ID}, ids(got))
			} else {
				require.Empty(t, got)
			}
		})
	}
}

func TestRelayStopRefusesConnections(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	r.Stop()
	require.False(t, r.Running())
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := relayconn.Dial(ctx, r.URL(), relayconn.Options{})
	require.Error(t, err)
	require.NoError(t, r.Start())
	c := connect(t, r)
	require.NoError(t, c.Err(), "connected")
}

func TestRelayInjectDeliversAnything(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	c := connect(t, r) // relayconn does not verify: the client under test does
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	f := nostr.Filter{Kinds: []int{38386}, Authors: []string{pk}}
	sub := subscribe(t, r, c, f)
	forged := signed(t, sk, 38386, nostr.Now(), nostr.Tags{{"d", "z"}}, "")
	forged.Sig = forged.Sig[:len(forged.Sig)-2] + "00"
	r.Inject(forged)
	require.Equal(t, forged.ID, recv(t, sub).ID)
	ok, _ := forged.CheckSignature()
	require.False(t, ok)
}

func TestRelaySubscriptionsTracked(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	c := connect(t, r)
	since := nostr.Now() - 172800
	f := nostr.Filter{Kinds: []int{1059}, Tags: nostr.TagMap{"p": {"abc"}}, Since: &since}
	sub := subscribe(t, r, c, f)
	require.Len(t, r.Subscriptions(), 1)
	require.Equal(t, strconv.FormatInt(int64(since), 10), strconv.FormatInt(int64(*r.Subscriptions()[0].Filters[0].Since), 10))
	sub.s.Close()
	r.WaitFor(t, wait, "no subscriptions", func() bool { return len(r.Subscriptions()) == 0 })
}

func TestRelayStallStored(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	f := nostr.Filter{Kinds: []int{38386}, Authors: []string{pk}}
	now := nostr.Now()
	oldest := signed(t, sk, 38386, now-600, nostr.Tags{{"d", "a"}}, "")
	middle := signed(t, sk, 38386, now-300, nostr.Tags{{"d", "b"}}, "")
	newest := signed(t, sk, 38386, now-100, nostr.Tags{{"d", "c"}}, "")
	for _, e := range []nostr.Event{oldest, middle, newest} {
		r.Inject(e)
	}
	r.SetFaults(relay.Faults{StallStored: relay.First(1, relay.IDs(middle.ID))})

	c := connect(t, r)
	sub := open(t, c, f)
	// Newest first, up to and including the matching event; then nothing.
	require.Equal(t, []string{newest.ID, middle.ID}, []string{recv(t, sub).ID, recv(t, sub).ID})
	r.WaitSubscribed(t, wait, func(got nostr.Filter) bool { return got.String() == f.String() })
	// Live deliveries go on meanwhile.
	live := signed(t, sk, 38386, now, nostr.Tags{{"d", "d"}}, "")
	require.NoError(t, r.Publish(context.Background(), live))
	require.Equal(t, live.ID, recv(t, sub).ID)
	none(t, sub, 200*time.Millisecond)
	select {
	case <-sub.eose:
		t.Fatal("EOSE sent for a stalled stored answer")
	default:
	}

	// The cut ends it; the next REQ gets the whole answer (First: once).
	r.DisconnectAll()
	select {
	case <-c.Done():
	case <-time.After(wait):
		t.Fatal("client not disconnected")
	}
	c2 := connect(t, r)
	require.ElementsMatch(t, []string{live.ID, newest.ID, middle.ID, oldest.ID}, ids(query(t, c2, f)))
}

// A capped relay answers at most MaxStoredEvents stored events per REQ
// filter, newest first; the rest is reachable only by paging with until.
func TestRelayBacklogCap(t *testing.T) {
	t.Parallel()
	r := relay.StartWithOptions(t, relay.Options{MaxStoredEvents: 3})
	sk := nostr.GeneratePrivateKey()
	now := nostr.Now()
	var all []string // newest first
	for i := range 5 {
		e := signed(t, sk, 1, now-nostr.Timestamp(i), nil, strconv.Itoa(i))
		r.Inject(e)
		all = append(all, e.ID)
	}
	c := connect(t, r)
	require.Equal(t, all[:3], ids(query(t, c, nostr.Filter{Kinds: []int{1}})))
	require.Equal(t, all[:2], ids(query(t, c, nostr.Filter{Kinds: []int{1}, Limit: 2})), "a smaller limit is kept")
	until := now - 3
	require.Equal(t, all[3:], ids(query(t, c, nostr.Filter{Kinds: []int{1}, Until: &until})))
	require.Len(t, r.Events(nostr.Filter{Kinds: []int{1}}), 5, "the cap is on answers, not on the store")
}

// A message above MaxMessageLength makes the relay drop the connection.
func TestRelayMaxMessageLength(t *testing.T) {
	t.Parallel()
	r := relay.StartWithOptions(t, relay.Options{MaxMessageLength: 2000})
	c := connect(t, r)
	_ = subscribe(t, r, c, nostr.Filter{Kinds: []int{1}})
	authors := make([]string, 40) // ~2.7 kB of authors
	for i := range authors {
		authors[i] = strings.Repeat(strconv.Itoa(i%10), 64)
	}
	_, _ = c.Subscribe(context.Background(), nostr.Filters{{Kinds: []int{14}, Authors: authors}}, "big")
	select {
	case <-c.Done():
	case <-time.After(wait):
		t.Fatal("the relay kept a connection that sent an oversized message")
	}
}
