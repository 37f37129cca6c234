package intakesvc_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/testkit/fakemostro"
	"github.com/serbero/serbero/pkg/testkit/relay"
	"github.com/serbero/serbero/services/relaygw"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

// historyEvent is a signed dispute revision of the node created at `at`
// (a relay keeps such history for about 90 days).
func historyEvent(t *testing.T, mk keys.Keys, d, status string, at nostr.Timestamp) nostr.Event {
	t.Helper()
	ev := nostr.Event{Kind: 38386, CreatedAt: at, Tags: nostr.Tags{{"d", d}, {"s", status}, {"initiator", "seller"},
		{"y", "mostro", "Test node"}, {"z", "dispute"}}}
	require.NoError(t, mk.Sign(&ev))
	return ev
}

// newEnvWithHistory is newEnv where the relay already holds history
// before relaygw starts for the first time (no cursor anywhere), with
// relaygw's configuration tweaked by gw.
func newEnvWithHistory(t *testing.T, history func(mk keys.Keys) []nostr.Event, gw func(*relaygw.Config)) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background()}
	e.db = pgdbtest.NewDB(t)
	e.relay = relay.Start(t)
	mk := keys.Generate()
	for _, ev := range history(mk) {
		e.relay.Inject(ev)
	}
	e.mostro = fakemostro.Start(t, fakemostro.Config{Keys: mk, Name: "Test node"}, e.relay.URL())
	e.gw = relaygwtest.Start(t, relaygwtest.Options{DB: e.db, Relay: e.relay, Mostro: mk, Logger: slog.New(slog.DiscardHandler), Config: gw})
	e.rg = e.gw.Client
	e.serberoPK = e.gw.Serbero.PublicKey()
	e.mostroPK = mk.PublicKey()
	return e
}

// A first start with no cursor reads from now: nobody is DMed about the
// relays' history, nothing of it is recorded, and a dispute opened after
// the start is notified as usual.
func TestFirstStartDMsNobodyAboutHistory(t *testing.T) {
	t.Parallel()
	now := nostr.Now()
	e := newEnvWithHistory(t, func(mk keys.Keys) []nostr.Event {
		return []nostr.Event{
			historyEvent(t, mk, "d-hist-open", "initiated", now-1800),
			historyEvent(t, mk, "d-hist-taken", "in-progress", now-1800),
			historyEvent(t, mk, "d-hist-old", "initiated", now-30*86400),
		}
	}, nil)
	ss := e.solvers(1)
	s := e.start(e.config(pubkeys(ss)...))
	require.Eventually(t, func() bool {
		r := s.logs.Find("intake started")
		return len(r) == 1 && r[0].Str("start") == "first"
	}, wait, 10*time.Millisecond, "the log says this is a first start")

	ev := e.open("d-live", "buyer")
	require.Equal(t, initialBody("d-live", "buyer", ev.CreatedAt), ss[0].WaitFor(1, wait)[0].Body)
	e.waitState("d-live", "notified")
	ss[0].AssertNoMore(500 * time.Millisecond)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM disputes`), "no history recorded")
	require.Empty(t, s.logs.Find("first start with a backfill window: recording the disputes relaygw backfills; only those still initiated are notified"))
}

// With a backfill window the first start records the disputes of the
// window, but only the one still initiated is notified; the taken and the
// resolved ones are recorded silently. A dispute older than the window is
// not read at all.
func TestFirstStartBackfillNotifiesOnlyStillInitiatedDisputes(t *testing.T) {
	t.Parallel()
	now := nostr.Now()
	var open nostr.Event
	e := newEnvWithHistory(t, func(mk keys.Keys) []nostr.Event {
		open = historyEvent(t, mk, "d-bf-open", "initiated", now-1800)
		return []nostr.Event{
			open,
			historyEvent(t, mk, "d-bf-taken", "in-progress", now-1700),
			historyEvent(t, mk, "d-bf-done", "settled", now-1600),
			historyEvent(t, mk, "d-bf-too-old", "initiated", now-7200),
		}
	}, func(c *relaygw.Config) { c.DisputeBackfill = time.Hour })
	ss := e.solvers(2)
	s := e.start(e.config(pubkeys(ss)...))

	for _, sv := range ss {
		require.Equal(t, initialBody("d-bf-open", "seller", open.CreatedAt), sv.WaitFor(1, wait)[0].Body)
	}
	e.waitState("d-bf-open", "notified")
	e.waitState("d-bf-taken", "taken")
	e.waitState("d-bf-done", "resolved")
	for _, sv := range ss {
		sv.AssertNoMore(500 * time.Millisecond)
	}
	require.Equal(t, 0, e.count(`SELECT count(*) FROM disputes WHERE dispute_id = 'd-bf-too-old'`))
	require.Equal(t, 0, e.count(`SELECT count(*) FROM intake_notification_jobs WHERE dispute_id <> 'd-bf-open'`))
	require.Equal(t, 2, e.count(`SELECT count(*) FROM notifications WHERE dispute_id = 'd-bf-open' AND status = 'sent' AND notif_type = 'initial'`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM dispute_state_transitions WHERE dispute_id = 'd-bf-taken' AND to_state = 'taken'`))

	require.Equal(t, 1.0, testutil.ToFloat64(metric(t, s, "serbero_intakesvc_backfill_events_total", "outcome", "notified")))
	require.Equal(t, 2.0, testutil.ToFloat64(metric(t, s, "serbero_intakesvc_backfill_events_total", "outcome", "silent")))
	require.Len(t, s.logs.Find("first start with a backfill window: recording the disputes relaygw backfills; only those still initiated are notified"), 1)
	require.Len(t, s.logs.Find("backfilled revision recorded silently: only disputes still initiated are notified"), 1, "the taken one")

	// Live revisions after the start are not backfill: a take is announced.
	e.gw.PublishAsMostro(t, nostr.Event{Kind: 38386, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"d", "d-bf-open"},
		{"s", "in-progress"}, {"initiator", "seller"}, {"y", "mostro", "Test node"}, {"z", "dispute"}}})
	for _, sv := range ss {
		require.Equal(t, assignmentBody("d-bf-open", "unknown"), sv.WaitFor(2, wait)[1].Body)
	}
}
