package relaygw_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/testkit/relay"
	"github.com/serbero/serbero/services/relaygw"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

// history puts signed dispute events of the node into the relay's store
// (as a relay holds the last 90 days) and returns them.
func history(t *testing.T, r *relay.Relay, mostro keys.Keys, ats ...nostr.Timestamp) []nostr.Event {
	t.Helper()
	out := make([]nostr.Event, 0, len(ats))
	for _, at := range ats {
		e := disputeEvent(uuid.NewString(), "initiated", at)
		require.NoError(t, mostro.Sign(&e))
		r.Inject(e)
		out = append(out, e)
	}
	return out
}

// A new deployment does not read the relays' history: with no cursor
// stored, the dispute subscription starts at now minus the margin. What it
// reads from before its start is flagged backfill; a restart resumes from
// the cursors, still without the history.
func TestFirstStartReadsFromNow(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	mostro := keys.Generate()
	now := nostr.Now()
	hist := history(t, r, mostro, now-90*86400+600, now-7200, now-30)
	old, recent := hist[:2], hist[2] // recent: within the 60 s margin
	var logs lockedBuffer
	h := relaygwtest.Start(t, relaygwtest.Options{Relay: r, Mostro: mostro,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	col, _ := streamDisputes(t, h, 0)

	got := col.next(t)
	require.Equal(t, recent.ID, got.GetEventId(), "only the margin before the start is read")
	require.True(t, got.GetBackfill(), "created before the first start")
	live := h.PublishAsMostro(t, disputeEvent(uuid.NewString(), "initiated", nostr.Now()))
	got = col.next(t)
	require.Equal(t, live.ID, got.GetEventId())
	require.False(t, got.GetBackfill())
	col.none(t, 300*time.Millisecond)
	require.Contains(t, logs.String(), "dispute subscription: first start: reading dispute events from now")

	h.Restart(t)
	col, _ = streamDisputes(t, h, 0)
	require.Equal(t, recent.ID, col.next(t).GetEventId())
	require.Equal(t, live.ID, col.next(t).GetEventId())
	col.none(t, 300*time.Millisecond)
	for _, e := range old {
		require.NotContains(t, logs.String(), "event_id="+e.ID, "history before the start is never read")
	}
	require.Contains(t, logs.String(), "dispute subscription: resuming from the stored cursors")
}

// With [relaygw].dispute_backfill_seconds, the first start reaches that far
// back; those events are flagged backfill, newer ones are not.
func TestFirstStartBackfillWindow(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	mostro := keys.Generate()
	now := nostr.Now()
	hist := history(t, r, mostro, now-7200, now-1800, now-600)
	tooOld, inWindow := hist[0], hist[1:]
	var logs lockedBuffer
	h := relaygwtest.Start(t, relaygwtest.Options{Relay: r, Mostro: mostro,
		Config: func(c *relaygw.Config) { c.DisputeBackfill = time.Hour },
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	col, _ := streamDisputes(t, h, 0)
	var got []string
	for range inWindow {
		e := col.next(t)
		require.True(t, e.GetBackfill(), "%s predates the first start", e.GetEventId())
		got = append(got, e.GetEventId())
	}
	require.ElementsMatch(t, []string{inWindow[0].ID, inWindow[1].ID}, got)
	live := h.PublishAsMostro(t, disputeEvent(uuid.NewString(), "initiated", nostr.Now()))
	e := col.next(t)
	require.Equal(t, live.ID, e.GetEventId())
	require.False(t, e.GetBackfill())
	col.none(t, 300*time.Millisecond)
	require.NotContains(t, logs.String(), "event_id="+tooOld.ID)
	require.Contains(t, logs.String(), "dispute subscription: first start with a backfill window")
}

// A relay that answers at most 100 stored events per REQ: 1,000 disputes
// published while relaygw was down are all stored, none twice, and a
// second restart adds nothing.
func TestCappedRelayBacklogAfterDowntime(t *testing.T) {
	t.Parallel()
	r := relay.StartWithOptions(t, relay.Options{MaxStoredEvents: 100})
	h := relaygwtest.Start(t, relaygwtest.Options{Relay: r})
	col, _ := streamDisputes(t, h, 0)
	first := h.PublishAsMostro(t, disputeEvent(uuid.NewString(), "initiated", nostr.Now()))
	require.Equal(t, first.ID, col.next(t).GetEventId())
	// The cursor is stored once the relay's stored answer is complete.
	require.Eventually(t, func() bool {
		var n int
		err := h.DB.Pool.QueryRow(ctx(t), `SELECT count(*) FROM relaygw_cursors WHERE sub_key = 'mostro-disputes'`).Scan(&n)
		return err == nil && n == 1
	}, wait, 10*time.Millisecond)
	h.Stop()

	// 1,000 revisions while relaygw is down, 20 a second over the last 50
	// seconds before the stored cursor's margin ends.
	want := map[string]bool{}
	for i := range 1000 {
		e := disputeEvent(uuid.NewString(), "initiated", first.CreatedAt-50+nostr.Timestamp(i/20))
		require.NoError(t, h.Mostro.Sign(&e))
		r.Inject(e)
		want[e.ID] = true
	}
	h.Restart(t)
	col, _ = streamDisputes(t, h, 0)
	seen := map[string]bool{}
	for range 1001 {
		e := col.next(t)
		require.False(t, seen[e.GetEventId()], "streamed twice: %s", e.GetEventId())
		seen[e.GetEventId()] = true
	}
	for id := range want {
		require.True(t, seen[id], "lost: %s", id)
	}
	col.none(t, 300*time.Millisecond)
	var stored int
	require.NoError(t, h.DB.Pool.QueryRow(ctx(t), `SELECT count(*) FROM relaygw_dispute_events`).Scan(&stored))
	require.Equal(t, 1001, stored)

	h.Restart(t)
	col, _ = streamDisputes(t, h, 0)
	for range 1001 {
		col.next(t)
	}
	col.none(t, 300*time.Millisecond)
	require.NoError(t, h.DB.Pool.QueryRow(ctx(t), `SELECT count(*) FROM relaygw_dispute_events`).Scan(&stored))
	require.Equal(t, 1001, stored, "a second restart stores nothing twice")
}
