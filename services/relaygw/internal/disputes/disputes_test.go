package disputes

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/relaygw/internal/store"
)

// The silence gauge (serbero_relaygw_dispute_last_event_timestamp_seconds)
// starts at relaygw's start, moves only when a new event of the node is
// stored, and neither a re-delivery nor a refused event moves it.
func TestLastNewEventGauge(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	node := keys.Generate()
	now := time.Unix(1_800_000_000, 0)
	reg := prometheus.NewRegistry()
	i, err := New(Options{
		Mostro: node.PublicKey(), Store: store.New(db.Pool), Logger: slog.New(slog.DiscardHandler),
		Rejected:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rejected"}, []string{"stream", "reason"}),
		Registerer: reg, Now: func() time.Time { return now },
	})
	require.NoError(t, err)
	gauge := func() float64 {
		t.Helper()
		return testutil.ToFloat64(i.lastNew)
	}
	require.Equal(t, 1_800_000_000.0, gauge(), "the start until the first event")
	require.Equal(t, 1, testutil.CollectAndCount(reg, "serbero_relaygw_dispute_last_event_timestamp_seconds"), "registered")

	event := func(signer keys.Keys) *nostr.Event {
		ev := nostr.Event{Kind: mostro.KindDispute, CreatedAt: nostr.Timestamp(now.Unix() - 30),
			Tags: nostr.Tags{{"d", uuid.NewString()}, {"s", "initiated"}, {"z", "dispute"}}}
		require.NoError(t, signer.Sign(&ev))
		return &ev
	}
	ctx := context.Background()
	first := event(node)

	now = now.Add(time.Minute)
	good, err := i.Handle(ctx, "wss://a.example", []*nostr.Event{first})
	require.NoError(t, err)
	require.Len(t, good, 1)
	require.Equal(t, 1_800_000_060.0, gauge(), "a new event")

	now = now.Add(time.Minute)
	good, err = i.Handle(ctx, "wss://b.example", []*nostr.Event{first})
	require.NoError(t, err)
	require.Len(t, good, 1, "accepted again")
	require.Equal(t, 1_800_000_060.0, gauge(), "a re-delivery of a stored event is no news")

	good, err = i.Handle(ctx, "wss://a.example", []*nostr.Event{event(keys.Generate())})
	require.NoError(t, err)
	require.Empty(t, good)
	require.Equal(t, 1_800_000_060.0, gauge(), "a refused event (another author) is no news")

	now = now.Add(time.Minute)
	_, err = i.Handle(ctx, "wss://a.example", []*nostr.Event{first, event(node)})
	require.NoError(t, err)
	require.Equal(t, 1_800_000_180.0, gauge(), "a batch with one new event")
}
