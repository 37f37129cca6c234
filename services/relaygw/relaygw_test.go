package relaygw_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/testkit/fakesolver"
	"github.com/serbero/serbero/pkg/testkit/relay"
	"github.com/serbero/serbero/services/relaygw"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

const wait = 10 * time.Second

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func code(err error) codes.Code { return status.Code(err) }

func TestNewRefusesBadKeysWithoutEchoingThem(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	cfg := relaygw.DefaultConfig()
	cfg.MostroPubkey = keys.Generate().PublicKey()
	cfg.Relays = []string{"ws://127.0.0.1:1"}
	secretish := "deadbeef" + strings.Repeat("x", 56)
	tests := []struct {
		name, key, want string
	}{
		{"Missing", "", "private key is required"},
		{"NotHex", secretish, "not a valid secret key"},
		{"Zero", strings.Repeat("0", 64), "not a valid secret key"},
		{"BadNsec", "nsec1" + strings.Repeat("q", 58), "not a valid secret key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := relaygw.New(relaygw.Deps{Config: cfg, Logger: slog.New(slog.DiscardHandler), Pool: db.Pool, PrivateKey: config.NewSecret(tt.key)})
			require.ErrorContains(t, err, tt.want)
			if tt.key != "" {
				require.NotContains(t, err.Error(), tt.key)
				require.NotContains(t, err.Error(), "deadbeef")
			}
		})
	}
	t.Run("NsecAccepted", func(t *testing.T) {
		k := keys.Generate()
		nsec, err := nip19.EncodePrivateKey(k.RevealSecretHex())
		require.NoError(t, err)
		var logs bytes.Buffer
		svc, err := relaygw.New(relaygw.Deps{Config: cfg, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Pool: db.Pool, PrivateKey: config.NewSecret(nsec)})
		require.NoError(t, err)
		require.Equal(t, k.PublicKey(), svc.PublicKey())
		require.NotContains(t, fmt.Sprintf("%v %+v %#v", svc, svc, svc), k.RevealSecretHex())
	})
	t.Run("NoRelaysWarnsAndRuns", func(t *testing.T) {
		c := cfg
		c.Relays = nil
		var logs bytes.Buffer
		_, err := relaygw.New(relaygw.Deps{Config: c, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Pool: db.Pool, PrivateKey: config.NewSecret(keys.Generate().RevealSecretHex())})
		require.NoError(t, err, "as the reference daemon, no relays is a warning, not a failure")
		require.Contains(t, logs.String(), "no relays configured; client will not receive any events")
	})
}

func TestGetIdentity(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	resp, err := h.Client.GetIdentity(ctx(t), &relaygwv1.GetIdentityRequest{})
	require.NoError(t, err)
	require.Equal(t, h.Serbero.PublicKey(), resp.GetPubkeyHex())
	_, v, err := nip19.Decode(resp.GetNpub())
	require.NoError(t, err)
	require.Equal(t, h.Serbero.PublicKey(), v)
}

func TestSendDirectMessage(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	solver := fakesolver.Start(t, h.Relay.URL())

	first, err := h.Client.SendDirectMessage(ctx(t), &relaygwv1.SendDirectMessageRequest{
		RecipientPubkey: solver.Npub(), Body: "Dispute 1 needs a solver", IdempotencyKey: "initial:1:" + solver.Pubkey(),
	})
	require.NoError(t, err)
	require.True(t, first.GetDelivered())
	require.False(t, first.GetDuplicate())
	require.Len(t, first.GetResults(), 1)
	require.Equal(t, relaygwv1.PublishOutcome_PUBLISH_OUTCOME_ACCEPTED, first.GetResults()[0].GetOutcome())

	msg := solver.WaitFor(1, wait)[0]
	require.Equal(t, "Dispute 1 needs a solver", msg.Body)
	require.Equal(t, h.Serbero.PublicKey(), msg.From, "sealed by Serbero")
	require.Equal(t, first.GetEventId(), msg.WrapID)
	require.Empty(t, solver.Rejected())

	t.Run("SameKeyIsADuplicate", func(t *testing.T) {
		again, err := h.Client.SendDirectMessage(ctx(t), &relaygwv1.SendDirectMessageRequest{
			RecipientPubkey: solver.Pubkey(), Body: "Dispute 1 needs a solver", IdempotencyKey: "initial:1:" + solver.Pubkey(),
		})
		require.NoError(t, err)
		require.True(t, again.GetDuplicate())
		require.True(t, again.GetDelivered())
		require.Equal(t, first.GetEventId(), again.GetEventId())
		require.Empty(t, again.GetResults(), "nothing was sent")
		solver.AssertNoMore(300 * time.Millisecond)
	})
	t.Run("SameKeyOtherBodyRefused", func(t *testing.T) {
		_, err := h.Client.SendDirectMessage(ctx(t), &relaygwv1.SendDirectMessageRequest{
			RecipientPubkey: solver.Pubkey(), Body: "something else", IdempotencyKey: "initial:1:" + solver.Pubkey(),
		})
		require.Equal(t, codes.InvalidArgument, code(err))
		require.Contains(t, status.Convert(err).Message(), "different recipient or body")
	})
	t.Run("InvalidInput", func(t *testing.T) {
		tests := []struct {
			name string
			req  *relaygwv1.SendDirectMessageRequest
			want string
		}{
			{"BadRecipient", &relaygwv1.SendDirectMessageRequest{RecipientPubkey: "npub1nope", Body: "x", IdempotencyKey: "k1"}, "recipient_pubkey is not a valid public key"},
			{"NotOnCurve", &relaygwv1.SendDirectMessageRequest{RecipientPubkey: strings.Repeat("f", 64), Body: "x", IdempotencyKey: "k2"}, "recipient_pubkey is not a valid public key"},
			{"NoKey", &relaygwv1.SendDirectMessageRequest{RecipientPubkey: solver.Pubkey(), Body: "x"}, "idempotency_key is required"},
			{"LongKey", &relaygwv1.SendDirectMessageRequest{RecipientPubkey: solver.Pubkey(), Body: "x", IdempotencyKey: strings.Repeat("k", 257)}, "idempotency_key"},
			{"BlankBody", &relaygwv1.SendDirectMessageRequest{RecipientPubkey: solver.Pubkey(), Body: "  ", IdempotencyKey: "k3"}, "body must not be empty"},
		}
		for _, tt := range tests {
			_, err := h.Client.SendDirectMessage(ctx(t), tt.req)
			require.Equal(t, codes.InvalidArgument, code(err), tt.name)
			require.Contains(t, status.Convert(err).Message(), tt.want, tt.name)
		}
	})
}

func TestSendDirectMessageRetryRepublishesTheSameEvent(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	solver := fakesolver.Start(t, h.Relay.URL())
	h.Relay.SetFaults(relay.Faults{RejectIncoming: relay.Kinds(1059), RejectReason: "rate-limited: slow down"})
	req := &relaygwv1.SendDirectMessageRequest{RecipientPubkey: solver.Pubkey(), Body: "retry me", IdempotencyKey: "retry-1"}

	first, err := h.Client.SendDirectMessage(ctx(t), req)
	require.NoError(t, err)
	require.False(t, first.GetDelivered())
	require.Equal(t, relaygwv1.PublishOutcome_PUBLISH_OUTCOME_REJECTED, first.GetResults()[0].GetOutcome())
	require.Equal(t, "rate-limited: slow down", first.GetResults()[0].GetMessage())

	h.Relay.ClearFaults()
	second, err := h.Client.SendDirectMessage(ctx(t), req)
	require.NoError(t, err)
	require.True(t, second.GetDelivered())
	require.True(t, second.GetDuplicate())
	require.Equal(t, first.GetEventId(), second.GetEventId(), "the stored gift wrap is republished, not a new one")
	require.Equal(t, "retry me", solver.WaitFor(1, wait)[0].Body)

	third, err := h.Client.SendDirectMessage(ctx(t), req)
	require.NoError(t, err)
	require.True(t, third.GetDuplicate())
	require.Empty(t, third.GetResults())
	solver.AssertNoMore(300 * time.Millisecond)
	require.Equal(t, 1.0, h.Metric(t, "serbero_relaygw_dms_total", "result", "undelivered"))
	require.Equal(t, 1.0, h.Metric(t, "serbero_relaygw_dms_total", "result", "republished_delivered"))
}

func TestSendDirectMessageConcurrentSameKeySendsOneMessage(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	solver := fakesolver.Start(t, h.Relay.URL())
	req := &relaygwv1.SendDirectMessageRequest{RecipientPubkey: solver.Pubkey(), Body: "once", IdempotencyKey: "race"}
	ids := make(chan string, 8)
	for range 8 {
		go func() {
			r, err := h.Client.SendDirectMessage(ctx(t), req)
			if err != nil {
				ids <- "error: " + err.Error()
				return
			}
			ids <- r.GetEventId()
		}()
	}
	first := <-ids
	for range 7 {
		require.Equal(t, first, <-ids)
	}
	solver.WaitFor(1, wait)
	solver.AssertNoMore(300 * time.Millisecond)
}

// Concurrent sends are stored together (group commit): each key still
// gets its own wrap, and of two requests racing on one key with different
// bodies exactly one is sent and the other refused.
func TestSendDirectMessageConcurrentKeysAreIndependent(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	solver := fakesolver.Start(t, h.Relay.URL())
	const n = 24
	type result struct {
		body, id string
		err      error
	}
	results := make(chan result, n+1)
	send := func(key, body string) {
		r, err := h.Client.SendDirectMessage(ctx(t), &relaygwv1.SendDirectMessageRequest{
			RecipientPubkey: solver.Pubkey(), Body: body, IdempotencyKey: key})
		results <- result{body: body, id: r.GetEventId(), err: err}
	}
	for i := range n {
		go send(fmt.Sprintf("k%d", i), fmt.Sprintf("body %d", i))
	}
	go send("k0", "another body")
	ids := map[string]bool{}
	var refused []string
	for range n + 1 {
		r := <-results
		if r.err != nil {
			require.Equal(t, codes.InvalidArgument, code(r.err), r.err)
			refused = append(refused, r.body)
			continue
		}
		require.False(t, ids[r.id], "one wrap per key")
		ids[r.id] = true
	}
	require.Len(t, refused, 1)
	require.Contains(t, []string{"body 0", "another body"}, refused[0])
	var got []string
	for _, m := range solver.WaitFor(n, wait) {
		got = append(got, m.Body)
	}
	require.NotContains(t, got, refused[0])
	solver.AssertNoMore(300 * time.Millisecond)
}

func TestSendDirectMessageSlowRelayTimesOut(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{Config: func(c *relaygw.Config) { c.PublishTimeout = time.Second }})
	h.Relay.SetFaults(relay.Faults{StallIncoming: 1500 * time.Millisecond, StallMatch: relay.Kinds(1059)})
	r, err := h.Client.SendDirectMessage(ctx(t), &relaygwv1.SendDirectMessageRequest{RecipientPubkey: keys.Generate().PublicKey(), Body: "x", IdempotencyKey: "slow"})
	require.NoError(t, err)
	require.False(t, r.GetDelivered())
	require.Equal(t, relaygwv1.PublishOutcome_PUBLISH_OUTCOME_TIMED_OUT, r.GetResults()[0].GetOutcome())
}

func TestSendDirectMessageNoRelay(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	h.Relay.Stop()
	require.Eventually(t, func() bool {
		st, err := h.Client.GetRelayStatus(ctx(t), &relaygwv1.GetRelayStatusRequest{})
		return err == nil && !st.GetRelays()[0].GetConnected()
	}, wait, 20*time.Millisecond)
	r, err := h.Client.SendDirectMessage(ctx(t), &relaygwv1.SendDirectMessageRequest{RecipientPubkey: keys.Generate().PublicKey(), Body: "x", IdempotencyKey: "down"})
	require.NoError(t, err)
	require.False(t, r.GetDelivered())
	require.Equal(t, relaygwv1.PublishOutcome_PUBLISH_OUTCOME_NOT_CONNECTED, r.GetResults()[0].GetOutcome())
}

// disputeEvent is a kind 38386 revision as mostrod publishes it.
func disputeEvent(id, status string, at nostr.Timestamp) nostr.Event {
	return nostr.Event{Kind: 38386, CreatedAt: at, Tags: nostr.Tags{
		{"d", id}, {"expiration", fmt.Sprint(int64(at) + 86400)}, {"s", status}, {"initiator", "buyer"},
		{"created_at", fmt.Sprint(int64(at) - 10)}, {"y", "mostro"}, {"z", "dispute"},
	}}
}

// collector reads a dispute stream in the background.
type collector struct {
	events chan *relaygwv1.DisputeEvent
	done   chan error
}

func streamDisputes(t *testing.T, h *relaygwtest.Harness, after int64) (*collector, context.CancelFunc) {
	t.Helper()
	c, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := h.Client.StreamDisputeEvents(c, &relaygwv1.StreamDisputeEventsRequest{AfterCursor: after})
	require.NoError(t, err)
	col := &collector{events: make(chan *relaygwv1.DisputeEvent, 100), done: make(chan error, 1)}
	go func() {
		for {
			r, err := s.Recv()
			if err != nil {
				col.done <- err
				return
			}
			col.events <- r.GetEvent()
		}
	}()
	return col, cancel
}

func (c *collector) next(t *testing.T) *relaygwv1.DisputeEvent {
	t.Helper()
	select {
	case e := <-c.events:
		return e
	case err := <-c.done:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(wait):
		t.Fatal("no dispute event streamed")
	}
	return nil
}

func (c *collector) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case e := <-c.events:
		t.Fatalf("unexpected dispute event %s (cursor %d)", e.GetEventId(), e.GetCursor())
	case <-time.After(d):
	}
}

func TestDisputeStream(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	now := nostr.Now()
	d1 := h.PublishAsMostro(t, disputeEvent(uuid.NewString(), "initiated", now-5))
	col, cancel := streamDisputes(t, h, 0)
	got := col.next(t)
	require.Equal(t, d1.ID, got.GetEventId())
	require.Equal(t, h.Mostro.PublicKey(), got.GetPubkey())
	require.Equal(t, d1.Sig, got.GetSig())
	require.EqualValues(t, 38386, got.GetKind())
	require.Equal(t, "d", got.GetTags()[0].GetValues()[0])
	require.Equal(t, int64(d1.CreatedAt), got.GetCreatedAt().GetSeconds())
	cursor1 := got.GetCursor()

	d2 := h.PublishAsMostro(t, disputeEvent(uuid.NewString(), "initiated", now-4))
	got2 := col.next(t)
	require.Equal(t, d2.ID, got2.GetEventId())
	require.Greater(t, got2.GetCursor(), cursor1)
	col.none(t, 200*time.Millisecond)
	cancel()

	t.Run("ResumeAfterCursor", func(t *testing.T) {
		col, _ := streamDisputes(t, h, cursor1)
		require.Equal(t, d2.ID, col.next(t).GetEventId())
		col.none(t, 200*time.Millisecond)
	})
	t.Run("NegativeCursor", func(t *testing.T) {
		s, err := h.Client.StreamDisputeEvents(ctx(t), &relaygwv1.StreamDisputeEventsRequest{AfterCursor: -1})
		require.NoError(t, err)
		_, err = s.Recv()
		require.Equal(t, codes.InvalidArgument, code(err))
	})
}

// [mostro].pubkey given as an npub (or in upper case) is normalised: the
// node's events are accepted and streamed under its hex key.
func TestDisputeStreamMostroPubkeyAsNpub(t *testing.T) {
	t.Parallel()
	m := keys.Generate()
	npub, err := nip19.EncodePublicKey(m.PublicKey())
	require.NoError(t, err)
	h := relaygwtest.Start(t, relaygwtest.Options{Mostro: m, Config: func(c *relaygw.Config) { c.MostroPubkey = npub }})
	d := h.PublishAsMostro(t, disputeEvent(uuid.NewString(), "initiated", nostr.Now()))
	col, _ := streamDisputes(t, h, 0)
	got := col.next(t)
	require.Equal(t, d.ID, got.GetEventId())
	require.Equal(t, m.PublicKey(), got.GetPubkey())
}

func TestDisputeStreamRefusesWhatARelayMustNotDeliver(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	col, _ := streamDisputes(t, h, 0)
	now := nostr.Now()

	// A bad signature on a real author: only relaygw's own check stops it.
	bad := disputeEvent(uuid.NewString(), "initiated", now)
	require.NoError(t, h.Mostro.Sign(&bad))
	bad.Sig = strings.Repeat("0", 128)
	h.Relay.Inject(bad)
	// A tampered event (id no longer matches).
	tampered := disputeEvent(uuid.NewString(), "initiated", now)
	require.NoError(t, h.Mostro.Sign(&tampered))
	tampered.Tags = append(tampered.Tags, nostr.Tag{"p", "someone"})
	h.Relay.Inject(tampered)
	// No d tag.
	nod := nostr.Event{Kind: 38386, CreatedAt: now, Tags: nostr.Tags{{"s", "initiated"}}}
	require.NoError(t, h.Mostro.Sign(&nod))
	h.Relay.Inject(nod)

	require.Eventually(t, func() bool {
		return h.Metric(t, "serbero_relaygw_events_rejected_total", "stream", "disputes") == 3
	}, wait, 20*time.Millisecond)
	require.Equal(t, 1.0, h.Metric(t, "serbero_relaygw_events_rejected_total", "reason", "bad_signature"))
	require.Equal(t, 1.0, h.Metric(t, "serbero_relaygw_events_rejected_total", "reason", "bad_id"))
	require.Equal(t, 1.0, h.Metric(t, "serbero_relaygw_events_rejected_total", "reason", "malformed"))

	// A forged author (valid signature by someone else) is not even
	// matched by the subscription; the service keeps going.
	forger := keys.Generate()
	forged := disputeEvent(uuid.NewString(), "initiated", now)
	require.NoError(t, forger.Sign(&forged))
	h.Relay.Inject(forged)

	good := h.PublishAsMostro(t, disputeEvent(uuid.NewString(), "initiated", now))
	require.Equal(t, good.ID, col.next(t).GetEventId())
	col.none(t, 200*time.Millisecond)
}

// A relay restarted mid-stream (losing its connections, and once its
// whole store) loses no dispute event and delivers none twice.
func TestDisputeStreamSurvivesRelayRestarts(t *testing.T) {
	t.Parallel()
	// The events are dated from before relaygw's first start: a backfill
	// window reaches them.
	h := relaygwtest.Start(t, relaygwtest.Options{Config: func(c *relaygw.Config) { c.DisputeBackfill = time.Hour }})
	col, _ := streamDisputes(t, h, 0)
	base := nostr.Now() - 100
	seen := map[string]bool{}
	cursor := int64(0)
	// expect reads exactly the given events from the stream, in any order,
	// each once, with increasing cursors.
	expect := func(ids ...string) {
		t.Helper()
		var got []string
		for range ids {
			e := col.next(t)
			require.False(t, seen[e.GetEventId()], "delivered twice: %s", e.GetEventId())
			require.Greater(t, e.GetCursor(), cursor, "cursors increase")
			cursor = e.GetCursor()
			seen[e.GetEventId()] = true
			got = append(got, e.GetEventId())
		}
		require.ElementsMatch(t, ids, got)
	}
	publish := func(at nostr.Timestamp) string {
		return h.PublishAsMostro(t, disputeEvent(uuid.NewString(), "initiated", at)).ID
	}
	inject := func(at nostr.Timestamp) string {
		e := disputeEvent(uuid.NewString(), "initiated", at)
		require.NoError(t, h.Mostro.Sign(&e))
		h.Relay.Inject(e)
		return e.ID
	}

	expect(publish(base), publish(base+1))

	// Down: events stored meanwhile are found on re-subscribe from the
	// durable cursor (minus the margin: even one older than the cursor).
	h.Relay.Stop()
	missed := []string{inject(base + 2), inject(base + 3), inject(base - 30)}
	require.NoError(t, h.Relay.Start())
	h.Relay.SetFaults(relay.Faults{Duplicate: relay.Any}) // duplicates change nothing
	h.WaitSubscribed(t)
	expect(append(missed, publish(base+4))...)

	// A restart that wipes the relay, then live deliveries dropped: the
	// next re-subscribe (after a disconnect) finds them in the store.
	require.NoError(t, h.Relay.Restart(true))
	h.Relay.SetFaults(relay.Faults{DropLive: relay.Any})
	h.WaitSubscribed(t)
	dropped := publish(base + 5)
	col.none(t, 200*time.Millisecond)
	h.Relay.ClearFaults()
	h.Relay.DisconnectAll()
	h.WaitSubscribed(t)
	expect(dropped, publish(base+6))
	col.none(t, 300*time.Millisecond)

	st, err := h.Client.GetRelayStatus(ctx(t), &relaygwv1.GetRelayStatusRequest{})
	require.NoError(t, err)
	require.True(t, st.GetRelays()[0].GetConnected())
	require.GreaterOrEqual(t, st.GetRelays()[0].GetFailures(), int64(3))
	require.NotEmpty(t, st.GetRelays()[0].GetLastError())
}

// A relay sends its stored events newest first; when the connection is
// cut before it has sent them all (no EOSE yet), the older ones must be
// fetched on the next subscribe: the durable cursor may not have moved to
// the newest event delivered.
func TestDisputeEventsSurviveACutBeforeTheEndOfStoredEvents(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	mostro := keys.Generate()
	now := nostr.Now()
	stored := func(at nostr.Timestamp) nostr.Event {
		e := disputeEvent(uuid.NewString(), "initiated", at)
		require.NoError(t, mostro.Sign(&e))
		r.Inject(e)
		return e
	}
	// Well over the re-subscribe margin (60 s) apart.
	older, newest := stored(now-600), stored(now-300)
	r.SetFaults(relay.Faults{StallStored: relay.First(1, relay.IDs(newest.ID))})

	// History from before relaygw's first start: a backfill window reaches it.
	h := relaygwtest.Start(t, relaygwtest.Options{Relay: r, Mostro: mostro,
		Config: func(c *relaygw.Config) { c.DisputeBackfill = time.Hour }})
	col, _ := streamDisputes(t, h, 0)
	require.Equal(t, newest.ID, col.next(t).GetEventId())
	// A live event is handled after the newest one (and whatever relaygw
	// does with its cursor for it): once it is streamed, cut.
	live := h.PublishAsMostro(t, disputeEvent(uuid.NewString(), "initiated", now))
	require.Equal(t, live.ID, col.next(t).GetEventId())
	r.DisconnectAll()

	require.Equal(t, older.ID, col.next(t).GetEventId(), "the event the cut relay never sent is fetched on re-subscribe")
	col.none(t, 300*time.Millisecond)
}

func TestDisputeStreamEndsWhenRelaygwStops(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	col, _ := streamDisputes(t, h, 0)
	h.Stop()
	select {
	case err := <-col.done:
		require.Error(t, err)
	case <-time.After(wait):
		t.Fatal("stream did not end")
	}
}

func TestMostroInfo(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	_, err := h.Client.GetMostroInfo(ctx(t), &relaygwv1.GetMostroInfoRequest{})
	require.Equal(t, codes.FailedPrecondition, code(err))

	now := nostr.Now()
	info := func(at nostr.Timestamp, tags ...nostr.Tag) nostr.Event {
		return nostr.Event{Kind: 38385, CreatedAt: at, Tags: append(nostr.Tags{{"d", h.Mostro.PublicKey()}}, tags...)}
	}
	// Missing protocol_version means 1.
	h.PublishAsMostro(t, info(now-10, nostr.Tag{"pow", "3"}, nostr.Tag{"mostro_version", "0.17.0"}))
	var got *relaygwv1.MostroInfo
	require.Eventually(t, func() bool {
		r, err := h.Client.GetMostroInfo(ctx(t), &relaygwv1.GetMostroInfoRequest{})
		got = r.GetInfo()
		return err == nil
	}, wait, 20*time.Millisecond)
	require.EqualValues(t, 1, got.GetProtocolVersion())
	require.EqualValues(t, 3, got.GetPow())
	require.EqualValues(t, 3, got.GetPowFirstContact())
	require.Equal(t, "0.17.0", got.GetMostroVersion())

	v2 := h.PublishAsMostro(t, info(now, nostr.Tag{"protocol_version", "2"}, nostr.Tag{"pow", "4"}, nostr.Tag{"pow_first_contact", "8"}))
	require.Eventually(t, func() bool {
		r, err := h.Client.GetMostroInfo(ctx(t), &relaygwv1.GetMostroInfoRequest{})
		got = r.GetInfo()
		return err == nil && got.GetEventId() == v2.ID
	}, wait, 20*time.Millisecond)
	require.EqualValues(t, 2, got.GetProtocolVersion())
	require.EqualValues(t, 4, got.GetPow())
	require.EqualValues(t, 8, got.GetPowFirstContact())

	// Persisted: known after a restart even if the relay lost it.
	h.Relay.Wipe()
	h.Restart(t)
	r, err := h.Client.GetMostroInfo(ctx(t), &relaygwv1.GetMostroInfoRequest{})
	require.NoError(t, err)
	require.Equal(t, v2.ID, r.GetInfo().GetEventId())
}

func TestRelayStatusWithADeadRelay(t *testing.T) {
	t.Parallel()
	dead := relay.New() // never started: connection refused
	require.NoError(t, dead.Start())
	deadURL := dead.URL()
	dead.Close()
	h := relaygwtest.Start(t, relaygwtest.Options{ExtraRelays: []string{deadURL}})
	solver := fakesolver.Start(t, h.Relay.URL())

	r, err := h.Client.SendDirectMessage(ctx(t), &relaygwv1.SendDirectMessageRequest{RecipientPubkey: solver.Pubkey(), Body: "one relay is enough", IdempotencyKey: "k"})
	require.NoError(t, err)
	require.True(t, r.GetDelivered())
	require.Len(t, r.GetResults(), 2)
	require.Equal(t, relaygwv1.PublishOutcome_PUBLISH_OUTCOME_ACCEPTED, r.GetResults()[0].GetOutcome())
	require.Equal(t, relaygwv1.PublishOutcome_PUBLISH_OUTCOME_NOT_CONNECTED, r.GetResults()[1].GetOutcome())
	solver.WaitFor(1, wait)

	require.Eventually(t, func() bool {
		st, err := h.Client.GetRelayStatus(ctx(t), &relaygwv1.GetRelayStatusRequest{})
		return err == nil && st.GetRelays()[1].GetFailures() >= 2
	}, wait, 20*time.Millisecond)
	st, err := h.Client.GetRelayStatus(ctx(t), &relaygwv1.GetRelayStatusRequest{})
	require.NoError(t, err)
	require.True(t, st.GetRelays()[0].GetConnected())
	require.NotNil(t, st.GetRelays()[0].GetConnectedSince())
	require.False(t, st.GetRelays()[1].GetConnected())
	require.Contains(t, st.GetRelays()[1].GetLastError(), "connect")
	require.Equal(t, 1.0, h.Metric(t, "serbero_relaygw_relay_connected", "relay", h.Relay.URL()))
	require.Equal(t, 0.0, h.Metric(t, "serbero_relaygw_relay_connected", "relay", deadURL))
	require.GreaterOrEqual(t, h.Metric(t, "serbero_relaygw_relay_connection_failures_total", "relay", deadURL), 2.0)
	require.Equal(t, 1.0, h.Metric(t, "serbero_relaygw_publish_results_total", "relay", deadURL, "outcome", "not_connected"))
}
