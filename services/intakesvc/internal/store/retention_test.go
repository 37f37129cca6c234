package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// seedChanges records n disputes (one detected change each) and returns
// the changes.
func seedChanges(t *testing.T, s *store.Store, n int) []store.Change {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		d := fmt.Sprintf("d%03d", i)
		_, err := s.ApplyRevision(ctx, rev(d, "e-"+d, 100, "initiated", 0), t0, func(*store.Dispute) store.Plan {
			return store.Plan{Insert: true}
		})
		require.NoError(t, err)
	}
	all, err := s.ChangesAfter(ctx, 0, n+1)
	require.NoError(t, err)
	require.Len(t, all, n)
	return all
}

// Retention removes old changes in id order, moves the horizon with them,
// and a cursor below the horizon is told so instead of reading on past
// the gap; cursor 0 reads what is left.
func TestPruneChangesMovesTheHorizon(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	all := seedChanges(t, s, 10)
	_, err := db.Pool.Exec(ctx, `UPDATE dispute_changes SET changed_at = now() - interval '1 year' WHERE id <= $1`, all[5].ID)
	require.NoError(t, err)

	res, err := s.Prune(ctx, store.Prune{Table: store.RetainChanges, Before: time.Now().Add(-24 * time.Hour), Limit: 4})
	require.NoError(t, err)
	require.EqualValues(t, 4, res.Deleted)
	h, err := s.ChangesHorizon(ctx)
	require.NoError(t, err)
	require.Equal(t, all[3].ID, h)
	res, err = s.Prune(ctx, store.Prune{Table: store.RetainChanges, Before: time.Now().Add(-24 * time.Hour), Limit: 4})
	require.NoError(t, err)
	require.EqualValues(t, 2, res.Deleted, "only the old ones")
	h, err = s.ChangesHorizon(ctx)
	require.NoError(t, err)
	require.Equal(t, all[5].ID, h)
	require.Equal(t, 4, count(t, db.Pool, `SELECT count(*) FROM dispute_changes`))

	_, err = s.ChangesAfter(ctx, all[2].ID, 10)
	var expired *store.CursorExpiredError
	require.ErrorAs(t, err, &expired)
	require.ErrorIs(t, err, store.ErrCursorExpired)
	require.Equal(t, store.CursorExpiredError{Cursor: all[2].ID, Horizon: all[5].ID}, *expired)
	rest, err := s.ChangesAfter(ctx, all[5].ID, 10)
	require.NoError(t, err, "a cursor at the horizon lost nothing")
	require.Len(t, rest, 4)
	rest, err = s.ChangesAfter(ctx, 0, 10)
	require.NoError(t, err, "0: from the oldest retained")
	require.Equal(t, all[6].ID, rest[0].ID)
	// The disputes and their history stay.
	require.Equal(t, 10, count(t, db.Pool, `SELECT count(*) FROM disputes`))
}

// A consumer seen within the period keeps every change after its cursor,
// however old; one not seen within the period protects nothing.
func TestPruneChangesKeepsWhatARecentConsumerNeeds(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	all := seedChanges(t, s, 6)
	_, err := db.Pool.Exec(ctx, `UPDATE dispute_changes SET changed_at = now() - interval '1 year'`)
	require.NoError(t, err)
	require.NoError(t, s.RecordConsumer(ctx, "mediationsvc", all[1].ID))
	require.NoError(t, s.RecordConsumer(ctx, "gone", 0))
	_, err = db.Pool.Exec(ctx, `UPDATE intake_feed_consumers SET seen_at = now() - interval '1 year' WHERE consumer = 'gone'`)
	require.NoError(t, err)

	before := time.Now().Add(-24 * time.Hour)
	res, err := s.Prune(ctx, store.Prune{Table: store.RetainChanges, Before: before, Limit: 100})
	require.NoError(t, err)
	require.EqualValues(t, 2, res.Deleted, "up to mediationsvc's cursor")
	got, err := s.ChangesAfter(ctx, all[1].ID, 10)
	require.NoError(t, err)
	require.Len(t, got, 4, "mediationsvc resumes without a gap")

	res, err = s.Prune(ctx, store.Prune{Table: store.RetainConsumers, Before: before, Limit: 100})
	require.NoError(t, err)
	require.EqualValues(t, 1, res.Deleted)
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM intake_feed_consumers WHERE consumer = 'mediationsvc'`))
}

// Finished outbox rows go by age, never a row of a batch still being
// sent; quarantine rows go when last seen long ago.
func TestPruneJobsAndQuarantine(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	body := "b"
	res, err := s.ApplyRevision(ctx, rev("d", "e1", 100, "initiated", 0), t0, func(*store.Dispute) store.Plan {
		return store.Plan{Insert: true, DMs: &store.Batch{Type: "initial", Body: &body, Solvers: []string{"s1", "s2"},
			Keys: []string{"k1", "k2"}, Lease: time.Minute}}
	})
	require.NoError(t, err)
	_, err = s.CompleteDelivered(ctx, []store.Delivered{{Job: res.Claimed[0], Outcome: store.OutcomeSent}}, t0)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `UPDATE intake_notification_jobs SET done_at = now() - interval '1 year' WHERE done_at IS NOT NULL`)
	require.NoError(t, err)
	before := time.Now().Add(-24 * time.Hour)
	pr, err := s.Prune(ctx, store.Prune{Table: store.RetainJobs, Before: before, Limit: 100})
	require.NoError(t, err)
	require.Zero(t, pr.Deleted, "its batch still has a pending DM")
	_, err = s.CompleteDelivered(ctx, []store.Delivered{{Job: res.Claimed[1], Outcome: store.OutcomeSent}}, t0)
	require.NoError(t, err)
	pr, err = s.Prune(ctx, store.Prune{Table: store.RetainJobs, Before: before, Limit: 100})
	require.NoError(t, err)
	require.EqualValues(t, 1, pr.Deleted, "the job finished just now stays")
	require.Equal(t, 2, count(t, db.Pool, `SELECT count(*) FROM notifications`), "the notification log is not intakesvc's to prune")
	d, _, _, err := s.GetDispute(ctx, "d")
	require.NoError(t, err)
	require.Equal(t, lifecycle.Notified, d.LifecycleState)

	for _, id := range []string{"old", "recent"} {
		_, err := s.Quarantine(ctx, store.Quarantined{EventID: id, Cursor: 1, Class: "data", Reason: "x"})
		require.NoError(t, err)
	}
	_, err = db.Pool.Exec(ctx, `UPDATE intake_quarantine SET last_seen_at = now() - interval '1 year' WHERE event_id = 'old'`)
	require.NoError(t, err)
	pr, err = s.Prune(ctx, store.Prune{Table: store.RetainQuarantine, Before: before, Limit: 100})
	require.NoError(t, err)
	require.EqualValues(t, 1, pr.Deleted)
	list, _, err := s.ListQuarantine(ctx, 10, nil)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "recent", list[0].EventID)
}

// Two replicas pruning at once: one works, the other skips; no row is
// counted twice.
func TestPruneIsSafeWithReplicas(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	all := seedChanges(t, s, 50)
	_, err := db.Pool.Exec(ctx, `UPDATE dispute_changes SET changed_at = now() - interval '1 year'`)
	require.NoError(t, err)
	replicas := []*store.Store{store.New(db.OpenPool(t)), store.New(db.OpenPool(t))}
	var mu sync.Mutex
	var deleted int64
	var wg sync.WaitGroup
	for _, r := range replicas {
		wg.Go(func() {
			// Each prunes until the table is empty (a skipped batch
			// just tries again).
			for count(t, db.Pool, `SELECT count(*) FROM dispute_changes`) > 0 {
				res, err := r.Prune(ctx, store.Prune{Table: store.RetainChanges, Before: time.Now().Add(-time.Hour), Limit: 3})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				deleted += res.Deleted
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 50, deleted, "every row counted once")
	h, err := s.ChangesHorizon(ctx)
	require.NoError(t, err)
	require.Equal(t, all[49].ID, h)
}
