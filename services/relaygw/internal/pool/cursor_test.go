package pool_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/relaygw/internal/pool"
)

type memCursors struct {
	mu     sync.Mutex
	m      map[string]int64
	writes int
}

func (c *memCursors) Load(_ context.Context, key, relay string) (int64, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key+relay]
	return v, ok, nil
}

func (c *memCursors) Advance(_ context.Context, key, relay string, ts int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	if ts > c.m[key+relay] {
		c.m[key+relay] = ts
	}
	return nil
}

// cursorSpec is a Cursored spec over cur that refuses events with content
// "bad", with a fixed clock.
func cursorSpec(cur *memCursors, now time.Time, initial nostr.Timestamp) pool.Spec {
	return pool.Cursored(pool.CursoredOptions{
		Key: "k", Cursors: cur, Margin: time.Minute, Now: func() time.Time { return now },
		Initial: func(context.Context, string) (*nostr.Timestamp, error) { return &initial, nil },
		Filters: func(since *nostr.Timestamp) nostr.Filters { return nostr.Filters{{Kinds: []int{1}, Since: since}} },
		Handle: func(_ context.Context, _ string, evs []*nostr.Event) ([]*nostr.Event, error) {
			var ok []*nostr.Event
			for _, ev := range evs {
				if ev.Content != "bad" {
					ok = append(ok, ev)
				}
			}
			return ok, nil
		},
	})
}

// cursorDriver calls a spec as the pool does for one relay.
type cursorDriver struct {
	t     *testing.T
	spec  pool.Spec
	relay string
}

// subscribe builds the filters of a (re)subscribe and returns their since.
func (d cursorDriver) subscribe() nostr.Timestamp {
	d.t.Helper()
	fs, err := d.spec.Filters(context.Background(), d.relay)
	require.NoError(d.t, err)
	return *fs[0].Since
}

// live (re)subscribes and receives the relay's EOSE with no stored event,
// so what follows is live delivery; it returns the since.
func (d cursorDriver) live() nostr.Timestamp {
	d.t.Helper()
	since := d.subscribe()
	d.eose()
	return since
}

func (d cursorDriver) eose() {
	d.t.Helper()
	require.NoError(d.t, d.spec.EndOfStored(context.Background(), d.relay))
}

func (d cursorDriver) handle(at int64, content string) {
	d.t.Helper()
	require.NoError(d.t, d.spec.HandleBatch(context.Background(), d.relay, []*nostr.Event{{CreatedAt: nostr.Timestamp(at), Content: content}}))
}

func TestCursored(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	cur := &memCursors{m: map[string]int64{}}
	initial := nostr.Timestamp(now.Add(-time.Hour).Unix())
	spec := cursorSpec(cur, now, initial)
	d := cursorDriver{t: t, spec: spec, relay: "ws://r"}
	require.Equal(t, initial, d.live(), "no cursor yet")

	d.handle(now.Unix()-100, "ok")
	require.Equal(t, nostr.Timestamp(now.Unix()-100-60), d.live(), "cursor minus margin")
	d.handle(now.Unix()-10, "bad")
	require.Equal(t, nostr.Timestamp(now.Unix()-100-60), d.live(), "refused events do not move the cursor")
	d.handle(now.Unix()+86400, "ok")
	require.Equal(t, nostr.Timestamp(now.Unix()-60), d.live(), "a future-dated event moves the cursor to now at most")
	d.handle(now.Unix()-500, "ok")
	require.Equal(t, nostr.Timestamp(now.Unix()-60), d.live(), "never backwards")
	writes := cur.writes
	d.handle(now.Unix()-500, "ok")
	d.handle(now.Unix(), "ok")
	require.Equal(t, writes, cur.writes, "no write when the stored cursor is already there")
	// A batch advances the cursor to its newest accepted event.
	require.NoError(t, spec.HandleBatch(context.Background(), "ws://r", []*nostr.Event{
		{CreatedAt: nostr.Timestamp(now.Unix() + 30), Content: "bad"},
		{CreatedAt: nostr.Timestamp(now.Unix() - 5), Content: "ok"},
	}))
	require.Equal(t, nostr.Timestamp(now.Unix()-60), d.live(), "the bad event's later time is ignored")
	other := cursorDriver{t: t, spec: spec, relay: "ws://other"}
	require.Equal(t, initial, other.subscribe(), "cursors are per relay")
}

// Relays send stored events newest first: until the EOSE, a cut
// connection may have left older ones undelivered, so the stored cursor
// must not move before it.
func TestCursoredHoldsTheCursorUntilEndOfStored(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	cur := &memCursors{m: map[string]int64{}}
	initial := nostr.Timestamp(now.Add(-time.Hour).Unix())
	spec := cursorSpec(cur, now, initial)
	d := cursorDriver{t: t, spec: spec, relay: "ws://r"}
	stored := func() int64 {
		ts, ok, err := cur.Load(context.Background(), "k", "ws://r")
		require.NoError(t, err)
		if !ok {
			return 0
		}
		return ts
	}

	require.Equal(t, initial, d.subscribe())
	d.handle(now.Unix()-100, "ok")
	d.handle(now.Unix()-300, "ok")
	d.handle(now.Unix()-50, "bad")
	require.Zero(t, stored(), "batches before the EOSE do not move the stored cursor")
	require.Zero(t, cur.writes)

	t.Run("ReSubscribeBeforeEOSELosesTheHeldTime", func(t *testing.T) {
		require.Equal(t, initial, d.subscribe(), "the cut subscription's events are fetched again")
		d.eose()
		require.Zero(t, stored(), "the EOSE of the next subscription does not store the old held time")
	})

	require.Equal(t, initial, d.subscribe())
	d.handle(now.Unix()-100, "ok")
	d.handle(now.Unix()-300, "ok")
	require.Zero(t, stored())
	d.eose()
	require.Equal(t, now.Unix()-100, stored(), "the EOSE stores the newest accepted time held")
	require.Equal(t, 1, cur.writes)

	d.handle(now.Unix()-40, "ok")
	require.Equal(t, now.Unix()-40, stored(), "after the EOSE each batch moves the cursor")
	d.handle(now.Unix()-90, "ok")
	require.Equal(t, now.Unix()-40, stored(), "never backwards")

	require.Equal(t, nostr.Timestamp(now.Unix()-40-60), d.subscribe())
	d.handle(now.Unix()+86400, "ok")
	require.Equal(t, now.Unix()-40, stored(), "held again after a re-subscribe")
	other := cursorDriver{t: t, spec: spec, relay: "ws://other"}
	require.Equal(t, initial, other.subscribe())
	other.handle(now.Unix()-20, "ok")
	d.eose()
	require.Equal(t, now.Unix(), stored(), "a future-dated held time is stored as now at most")
	_, ok, err := cur.Load(context.Background(), "k", "ws://other")
	require.NoError(t, err)
	require.False(t, ok, "one relay's EOSE does not store another relay's held time")

	writes := cur.writes
	require.Equal(t, nostr.Timestamp(now.Unix()-60), d.subscribe())
	d.handle(now.Unix()-30, "ok")
	d.eose()
	require.Equal(t, writes, cur.writes, "no write when the stored cursor is already there")
}
