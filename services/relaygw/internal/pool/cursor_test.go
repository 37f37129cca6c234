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

func TestCursored(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	cur := &memCursors{m: map[string]int64{}}
	initial := nostr.Timestamp(now.Add(-time.Hour).Unix())
	spec := pool.Cursored(pool.CursoredOptions{
		Key: "k", Cursors: cur, Margin: time.Minute, Now: func() time.Time { return now },
		Initial: func() *nostr.Timestamp { return &initial },
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
	ctx := context.Background()
	since := func() nostr.Timestamp {
		fs, err := spec.Filters(ctx, "ws://r")
		require.NoError(t, err)
		return *fs[0].Since
	}
	require.Equal(t, initial, since(), "no cursor yet")

	handle := func(at int64, content string) {
		require.NoError(t, spec.HandleBatch(ctx, "ws://r", []*nostr.Event{{CreatedAt: nostr.Timestamp(at), Content: content}}))
	}
	handle(now.Unix()-100, "ok")
	require.Equal(t, nostr.Timestamp(now.Unix()-100-60), since(), "cursor minus margin")
	handle(now.Unix()-10, "bad")
	require.Equal(t, nostr.Timestamp(now.Unix()-100-60), since(), "refused events do not move the cursor")
	handle(now.Unix()+86400, "ok")
	require.Equal(t, nostr.Timestamp(now.Unix()-60), since(), "a future-dated event moves the cursor to now at most")
	handle(now.Unix()-500, "ok")
	require.Equal(t, nostr.Timestamp(now.Unix()-60), since(), "never backwards")
	writes := cur.writes
	handle(now.Unix()-500, "ok")
	handle(now.Unix(), "ok")
	require.Equal(t, writes, cur.writes, "no write when the stored cursor is already there")
	// A batch advances the cursor to its newest accepted event.
	require.NoError(t, spec.HandleBatch(ctx, "ws://r", []*nostr.Event{
		{CreatedAt: nostr.Timestamp(now.Unix() + 30), Content: "bad"},
		{CreatedAt: nostr.Timestamp(now.Unix() - 5), Content: "ok"},
	}))
	require.Equal(t, nostr.Timestamp(now.Unix()-60), since(), "the bad event's later time is ignored")
	fs, err := spec.Filters(ctx, "ws://other")
	require.NoError(t, err)
	require.Equal(t, initial, *fs[0].Since, "cursors are per relay")
}
