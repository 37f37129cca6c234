package retention_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/logging/logtest"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/metrics"
	"github.com/serbero/serbero/services/intakesvc/internal/retention"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

func seed(t *testing.T, st *store.Store, n int) {
	t.Helper()
	for i := range n {
		d := fmt.Sprintf("d%02d", i)
		_, err := st.ApplyRevision(context.Background(), event.Revision{EventID: "e-" + d, Pubkey: "m", CreatedAt: 1, DisputeID: d,
			Status: "initiated", Initiator: "buyer"}, time.Now(), func(*store.Dispute) store.Plan { return store.Plan{Insert: true} })
		require.NoError(t, err)
	}
}

// The job runs at start and then every interval on its clock, removes
// what is older than the period in batches, and counts rows and runs.
func TestJobRunsOnItsClockAndCounts(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	st := store.New(db.Pool)
	seed(t, st, 5)
	_, err := db.Pool.Exec(context.Background(), `UPDATE dispute_changes SET changed_at = now() - interval '100 days'`)
	require.NoError(t, err)
	m := metrics.New(prometheus.NewRegistry())
	clock := clockwork.NewFakeClockAt(time.Now())
	log, logs := logtest.New()
	j := retention.New(retention.Config{Period: 90 * 24 * time.Hour, Interval: time.Hour, Batch: 2}, st, m, log, clock)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		j.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(m.RetentionRuns.WithLabelValues("done")) == 1
	}, 15*time.Second, 5*time.Millisecond, "the first run is at start")
	require.Equal(t, 5.0, testutil.ToFloat64(m.RetentionDeleted.WithLabelValues(store.RetainChanges)), "in batches of 2")
	require.Len(t, logs.Find("retention removed old rows"), 1)
	h, err := st.ChangesHorizon(ctx)
	require.NoError(t, err)
	require.Positive(t, h)

	// Nothing old is left; the next run comes an interval later.
	require.NoError(t, clock.BlockUntilContext(ctx, 1))
	clock.Advance(time.Hour)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(m.RetentionRuns.WithLabelValues("done")) == 2
	}, 15*time.Second, 5*time.Millisecond)
	require.Equal(t, 5.0, testutil.ToFloat64(m.RetentionDeleted.WithLabelValues(store.RetainChanges)))
}

// A period of 0 keeps everything.
func TestJobOffKeepsEverything(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	st := store.New(db.Pool)
	seed(t, st, 2)
	_, err := db.Pool.Exec(context.Background(), `UPDATE dispute_changes SET changed_at = now() - interval '10 years'`)
	require.NoError(t, err)
	m := metrics.New(nil)
	log, logs := logtest.New()
	j := retention.New(retention.Config{}, st, m, log, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		j.Run(ctx)
	}()
	require.Eventually(t, func() bool {
		return len(logs.Find("retention off: intakesvc keeps every change-feed, outbox and quarantine row")) == 1
	},
		15*time.Second, 5*time.Millisecond)
	cancel()
	<-done
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM dispute_changes`).Scan(&n))
	require.Equal(t, 2, n)
	require.Zero(t, testutil.ToFloat64(m.RetentionRuns.WithLabelValues("done")))
}
