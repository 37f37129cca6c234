package intake_test

// The intake's decisions carried out by the store: intake.Apply (route,
// then store.ApplyRevision) and the outbox rows and change feed it writes.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/intake"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/message"
	"github.com/serbero/serbero/services/intakesvc/internal/route"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

var t0 = time.Unix(1_800_000_000, 0)

func rev(d, id string, at int64, s string, cursor int64) event.Revision {
	return event.Revision{Cursor: cursor, EventID: id, Pubkey: "mostro", CreatedAt: at, DisputeID: d,
		Status: lifecycle.Status(s), Initiator: "buyer", InitiatorRaw: "buyer"}
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func setup(t *testing.T) (*store.Store, *pgdbtest.DB) {
	t.Helper()
	db := pgdbtest.NewDB(t)
	return store.New(db.Pool), db
}

func claimAll(t *testing.T, s *store.Store, ids []int64) []store.Job {
	t.Helper()
	var out []store.Job
	for _, id := range ids {
		j, err := s.ClaimJob(context.Background(), id, time.Minute)
		require.NoError(t, err)
		require.NotNil(t, j, "job %d claimable", id)
		out = append(out, *j)
	}
	return out
}

func TestApplyRevisionDetectsOnce(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	solvers := []string{"s1", "s2"}

	res, err := apply(ctx, s, rev("d-1", "e1", 100, "initiated", 5), solvers, t0)
	require.NoError(t, err)
	require.Equal(t, route.Detected, res.Decision.Outcome)
	require.Len(t, res.JobIDs, 2)
	require.Equal(t, lifecycle.New, res.Dispute.LifecycleState)

	d, ts, ns, err := s.GetDispute(ctx, "d-1")
	require.NoError(t, err)
	require.Equal(t, "e1", d.EventID)
	require.Equal(t, "buyer", d.InitiatorRole)
	require.Equal(t, "initiated", d.DisputeStatus)
	require.EqualValues(t, 100, d.EventTimestamp)
	require.Equal(t, t0.Unix(), d.DetectedAt)
	require.Empty(t, ts)
	require.Empty(t, ns)
	cur, err := s.Cursor(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 5, cur)

	// Replay of the same event, and a second initiated event for the same
	// dispute (different event id): duplicates, nothing queued.
	for _, r := range []event.Revision{rev("d-1", "e1", 100, "initiated", 6), rev("d-1", "e2", 101, "initiated", 7)} {
		res, err = apply(ctx, s, r, solvers, t0)
		require.NoError(t, err)
		require.Equal(t, route.Duplicate, res.Decision.Outcome)
		require.Empty(t, res.JobIDs)
	}
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM disputes`))
	require.Equal(t, 2, count(t, db.Pool, `SELECT count(*) FROM intake_notification_jobs`))
	cur, err = s.Cursor(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 7, cur)

	// The cursor never moves back.
	require.NoError(t, s.AdvanceCursor(ctx, 3))
	cur, err = s.Cursor(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 7, cur)
}

func TestApplyRevisionNewestWins(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	_, err := apply(ctx, s, rev("d", "e1", 100, "initiated", 1), []string{"s"}, t0)
	require.NoError(t, err)
	res, err := apply(ctx, s, rev("d", "e3", 300, "settled", 2), []string{"s"}, t0)
	require.NoError(t, err)
	require.Equal(t, lifecycle.Resolved, res.Dispute.LifecycleState)
	require.Equal(t, lifecycle.New, res.From)
	// The in-progress revision published before settled arrives late.
	res, err = apply(ctx, s, rev("d", "e2", 200, "in-progress", 3), []string{"s"}, t0)
	require.NoError(t, err)
	require.Equal(t, route.Stale, res.Decision.Outcome)
	require.Empty(t, res.JobIDs)
	d, ts, _, err := s.GetDispute(ctx, "d")
	require.NoError(t, err)
	require.Equal(t, lifecycle.Resolved, d.LifecycleState)
	require.Equal(t, "settled", d.DisputeStatus)
	require.Equal(t, "e3", *d.NewestEventID)
	require.Len(t, ts, 1)
	require.Equal(t, store.Transition{ID: ts[0].ID, DisputeID: "d", From: "new", To: "resolved",
		TransitionedAt: t0.Unix(), Trigger: "dispute_resolved_externally"}, ts[0])
	require.Equal(t, 0, count(t, db.Pool, `SELECT count(*) FROM intake_notification_jobs WHERE notif_type = 'assignment'`))
}

func TestApplyRevisionLateSubscriber(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	res, err := apply(ctx, s, rev("d-ip", "e9", 100, "in-progress", 1), []string{"s1"}, t0)
	require.NoError(t, err)
	require.Equal(t, route.Detected, res.Decision.Outcome)
	require.Equal(t, lifecycle.Taken, res.Dispute.LifecycleState)
	require.Len(t, res.JobIDs, 1)
	_, ts, _, err := s.GetDispute(ctx, "d-ip")
	require.NoError(t, err)
	require.Len(t, ts, 1)
	require.Equal(t, "e9", ts[0].Trigger)
	require.Equal(t, lifecycle.New, ts[0].From)

	res, err = apply(ctx, s, rev("d-done", "e8", 100, "seller-refunded", 2), []string{"s1"}, t0)
	require.NoError(t, err)
	require.Equal(t, lifecycle.Resolved, res.Dispute.LifecycleState)
	require.Empty(t, res.JobIDs)

	res, err = apply(ctx, s, rev("d-odd", "e7", 100, "paused", 3), []string{"s1"}, t0)
	require.NoError(t, err)
	require.Equal(t, route.Ignored, res.Decision.Outcome)
	require.Nil(t, res.Dispute)
	_, _, _, err = s.GetDispute(ctx, "d-odd")
	require.ErrorIs(t, err, store.ErrNotFound)
	cur, err := s.Cursor(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, cur)
}

func TestNotificationOutcomes(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	res, err := apply(ctx, s, rev("d", "e1", 100, "initiated", 1), []string{"good", "not-a-real-hex-pubkey"}, t0)
	require.NoError(t, err)
	jobs := claimAll(t, s, res.JobIDs)
	require.Equal(t, message.Initial("d", "buyer", 100), *jobs[0].Body)
	require.Equal(t, message.IdempotencyKey("initial", 0, "d", "good"), jobs[0].IdempotencyKey)

	// A claimed job cannot be claimed again while leased.
	j, err := s.ClaimJob(ctx, res.JobIDs[0], time.Minute)
	require.NoError(t, err)
	require.Nil(t, j)

	cr, err := s.CompleteJob(ctx, jobs[1], store.OutcomeFailed, "invalid pubkey: bad", t0.Add(time.Second), 0)
	require.NoError(t, err)
	require.False(t, cr.Transitioned)
	require.False(t, cr.BatchReachedNobody, "the other DM is still pending")
	cr, err = s.CompleteJob(ctx, jobs[0], store.OutcomeSent, "", t0.Add(2*time.Second), 0)
	require.NoError(t, err)
	require.True(t, cr.Transitioned)
	// Completing twice writes nothing.
	cr, err = s.CompleteJob(ctx, jobs[0], store.OutcomeSent, "", t0.Add(2*time.Second), 0)
	require.NoError(t, err)
	require.True(t, cr.AlreadyDone)

	d, ts, ns, err := s.GetDispute(ctx, "d")
	require.NoError(t, err)
	require.Equal(t, lifecycle.Notified, d.LifecycleState)
	require.Equal(t, t0.Unix()+2, *d.LastNotifiedAt)
	require.Len(t, ts, 1)
	require.Equal(t, "initial_notification", ts[0].Trigger)
	require.Len(t, ns, 2)
	require.Equal(t, store.Notification{ID: ns[0].ID, DisputeID: "d", SolverPubkey: "not-a-real-hex-pubkey",
		SentAt: t0.Unix() + 1, Status: "failed", ErrorMessage: "invalid pubkey: bad", NotifType: "initial"}, ns[0])
	require.Equal(t, "sent", ns[1].Status)
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM notifications WHERE status = 'sent' AND error_message IS NULL`))
}

func TestCompleteDelivered(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	res, err := apply(ctx, s, rev("d", "e1", 100, "initiated", 1), []string{"s1", "s2"}, t0)
	require.NoError(t, err)
	res2, err := apply(ctx, s, rev("d", "e2", 200, "in-progress", 2), []string{"s1", "s2"}, t0)
	require.NoError(t, err)
	jobs := claimAll(t, s, res.JobIDs)

	cs, err := s.CompleteDelivered(ctx, []store.Delivered{{Job: jobs[0], Outcome: store.OutcomeSent}}, t0.Add(time.Second))
	require.NoError(t, err)
	require.Len(t, cs, 1)
	require.NotZero(t, cs[0].NotificationID)
	require.Equal(t, res2.JobIDs[0], cs[0].Next, "the assignment to s1 is next")
	require.False(t, cs[0].Transitioned, "already taken: no new -> notified")
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM intake_notification_jobs WHERE id = $1 AND notification_id = $2`,
		jobs[0].ID, cs[0].NotificationID), "the job names its notifications row")
	again, err := s.CompleteDelivered(ctx, []store.Delivered{{Job: jobs[0], Outcome: store.OutcomeSent}}, t0)
	require.NoError(t, err)
	require.True(t, again[0].AlreadyDone)

	cs, err = s.CompleteDelivered(ctx, []store.Delivered{{Job: jobs[1], Outcome: store.OutcomeSkipped}}, t0)
	require.NoError(t, err)
	require.Zero(t, cs[0].NotificationID, "a skipped DM writes no notifications row")
	require.Equal(t, res2.JobIDs[1], cs[0].Next)
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM notifications`))
	d, _, _, err := s.GetDispute(ctx, "d")
	require.NoError(t, err)
	require.Equal(t, t0.Unix()+1, *d.LastNotifiedAt)
	require.Equal(t, lifecycle.Taken, d.LifecycleState)
}

func TestApplyRevisionClaimLeasesANewDisputesInitialDMs(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	// A solver listed twice gets its second DM only after the first.
	res, err := applyLeased(ctx, s, rev("d", "e1", 100, "initiated", 0), []string{"s1", "s2", "s1"}, t0, time.Minute)
	require.NoError(t, err)
	require.Len(t, res.JobIDs, 3)
	require.Len(t, res.Claimed, 2)
	require.Equal(t, []int64{res.JobIDs[0], res.JobIDs[1]}, []int64{res.Claimed[0].ID, res.Claimed[1].ID})
	j, err := s.ClaimJob(ctx, res.JobIDs[2], time.Minute)
	require.NoError(t, err)
	require.Nil(t, j, "behind the first DM to s1")
	// Later DMs of an existing dispute are not leased (earlier ones may be
	// pending): the caller claims them.
	res, err = applyLeased(ctx, s, rev("d", "e2", 200, "in-progress", 0), []string{"s1", "s2", "s1"}, t0, time.Minute)
	require.NoError(t, err)
	require.Len(t, res.JobIDs, 3)
	require.Empty(t, res.Claimed)
}

func TestCompleteDeliveredBatchMovesNewDisputesOnce(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	// Two new disputes, two solvers each, one of them renotified later.
	var items []store.Delivered
	for _, d := range []string{"a", "b"} {
		res, err := applyLeased(ctx, s, rev(d, "e-"+d, 100, "initiated", 0), []string{"s1", "s2"}, t0, time.Minute)
		require.NoError(t, err)
		require.Len(t, res.Claimed, 2, "leased with the insert")
		require.Equal(t, []int64{res.Claimed[0].ID, res.Claimed[1].ID}, res.JobIDs)
		for _, j := range res.Claimed {
			require.Equal(t, 1, j.Attempts)
			require.Equal(t, lifecycle.New, j.State)
			require.Equal(t, message.Initial(d, "buyer", 100), *j.Body)
			items = append(items, store.Delivered{Job: j, Outcome: store.OutcomeSent})
		}
	}
	// Leased: neither ClaimJob nor the outbox scan hands them out again.
	j, err := s.ClaimJob(ctx, items[0].Job.ID, time.Minute)
	require.NoError(t, err)
	require.Nil(t, j)
	due, err := s.ClaimDueJobs(ctx, 10, time.Minute)
	require.NoError(t, err)
	require.Empty(t, due)

	items[3].Outcome = store.OutcomeSkipped
	cs, err := s.CompleteDelivered(ctx, append(items, items[0]), t0.Add(time.Second))
	require.NoError(t, err)
	require.Len(t, cs, 5)
	require.True(t, cs[0].Transitioned, "a: its first delivered DM reports the move")
	require.False(t, cs[1].Transitioned)
	require.True(t, cs[2].Transitioned, "b")
	require.False(t, cs[3].Transitioned)
	require.Zero(t, cs[3].NotificationID, "skipped")
	require.True(t, cs[4].AlreadyDone, "the same job twice in a batch is recorded once")
	for _, c := range cs[:3] {
		require.NotZero(t, c.NotificationID)
		require.False(t, c.AlreadyDone)
	}
	require.Equal(t, 3, count(t, db.Pool, `SELECT count(*) FROM notifications WHERE status = 'sent' AND sent_at = $1`, t0.Unix()+1))
	require.Equal(t, 3, count(t, db.Pool, `SELECT count(*) FROM intake_notification_jobs j JOIN notifications n ON n.id = j.notification_id
		WHERE n.solver_pubkey = j.solver_pubkey AND n.dispute_id = j.dispute_id`))
	for _, d := range []string{"a", "b"} {
		got, ts, _, err := s.GetDispute(ctx, d)
		require.NoError(t, err)
		require.Equal(t, lifecycle.Notified, got.LifecycleState)
		require.Equal(t, t0.Unix()+1, *got.LastNotifiedAt)
		require.Len(t, ts, 1)
		require.Equal(t, store.Transition{ID: ts[0].ID, DisputeID: d, From: lifecycle.New, To: lifecycle.Notified,
			TransitionedAt: t0.Unix() + 1, Trigger: lifecycle.TriggerInitialNotification}, ts[0])
	}
	// The feed: detected twice, then the two moves, with the row as it is now.
	changes, err := s.ChangesAfter(ctx, 0, 10)
	require.NoError(t, err)
	require.Len(t, changes, 4)
	for _, c := range changes[2:] {
		require.Equal(t, store.ChangeTransitioned, c.Kind)
		require.NotNil(t, c.Transition)
		got, _, _, err := s.GetDispute(ctx, c.DisputeID)
		require.NoError(t, err)
		require.Equal(t, got, c.Dispute)
	}
	// Again: nothing moves twice.
	cs, err = s.CompleteDelivered(ctx, items, t0.Add(2*time.Second))
	require.NoError(t, err)
	for _, c := range cs {
		require.True(t, c.AlreadyDone)
	}
	require.Equal(t, 2, count(t, db.Pool, `SELECT count(*) FROM dispute_state_transitions`))
}

func TestFailedAttemptIsRescheduled(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	res, err := apply(ctx, s, rev("d", "e1", 100, "initiated", 1), []string{"s1"}, t0)
	require.NoError(t, err)
	jobs := claimAll(t, s, res.JobIDs)
	cr, err := s.CompleteJob(ctx, jobs[0], store.OutcomeFailed, "notification error: gift-wrap send failed: x", t0, time.Hour)
	require.NoError(t, err)
	require.True(t, cr.Rescheduled)
	require.False(t, cr.BatchReachedNobody)
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM notifications WHERE status = 'failed'`))
	j, err := s.ClaimJob(ctx, res.JobIDs[0], time.Minute)
	require.NoError(t, err)
	require.Nil(t, j, "not due before its retry time")
	_, err = db.Pool.Exec(ctx, `UPDATE intake_notification_jobs SET not_before = now()`)
	require.NoError(t, err)
	j, err = s.ClaimJob(ctx, res.JobIDs[0], time.Minute)
	require.NoError(t, err)
	require.Equal(t, 2, j.Attempts)
	require.Equal(t, jobs[0].IdempotencyKey, j.IdempotencyKey)
	_, err = s.CompleteJob(ctx, *j, store.OutcomeSent, "", t0, 0)
	require.NoError(t, err)
	d, _, ns, err := s.GetDispute(ctx, "d")
	require.NoError(t, err)
	require.Equal(t, lifecycle.Notified, d.LifecycleState)
	require.Len(t, ns, 2, "one row per attempt")
}

// notify drives a dispute to notified at time at.
func notify(t *testing.T, s *store.Store, d string, solvers []string, at time.Time) {
	t.Helper()
	res, err := apply(context.Background(), s, rev(d, "e-"+d, at.Unix()-10, "initiated", 0), solvers, at)
	require.NoError(t, err)
	for _, j := range claimAll(t, s, res.JobIDs) {
		_, err := s.CompleteJob(context.Background(), j, store.OutcomeSent, "", at, 0)
		require.NoError(t, err)
	}
}

func TestJobsOfOneSolverAreSentInOrder(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	res1, err := apply(ctx, s, rev("d", "e1", 100, "initiated", 1), []string{"s1"}, t0)
	require.NoError(t, err)
	res2, err := apply(ctx, s, rev("d", "e2", 200, "in-progress", 2), []string{"s1"}, t0)
	require.NoError(t, err)
	// The assignment waits for the initial DM to the same solver.
	j, err := s.ClaimJob(ctx, res2.JobIDs[0], time.Minute)
	require.NoError(t, err)
	require.Nil(t, j)
	due, err := s.ClaimDueJobs(ctx, 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, due, 1)
	require.Equal(t, res1.JobIDs[0], due[0].ID)
	require.Equal(t, lifecycle.Taken, due[0].State)
	_, err = s.CompleteJob(ctx, due[0], store.OutcomeSent, "", t0, 0)
	require.NoError(t, err)
	next, ok, err := s.NextJobFor(ctx, "d", "s1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, res2.JobIDs[0], next)
	j, err = s.ClaimJob(ctx, next, time.Minute)
	require.NoError(t, err)
	require.NotNil(t, j)
	require.Nil(t, j.Body)
	require.Equal(t, "assignment", j.NotifType)
	// The dispute was taken before the initial DM went out: new -> taken,
	// and the late initial DM does not move it back to notified.
	d, ts, _, err := s.GetDispute(ctx, "d")
	require.NoError(t, err)
	require.Equal(t, lifecycle.Taken, d.LifecycleState)
	require.Len(t, ts, 1)
}

func TestTakeIntentDefersAssignment(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	notify(t, s, "d", []string{"s1"}, t0)
	_, err := s.RecordTakeIntent(ctx, "d", time.Now().Add(time.Hour))
	require.NoError(t, err)
	res, err := apply(ctx, s, rev("d", "e2", t0.Unix(), "in-progress", 0), []string{"s1"}, t0)
	require.NoError(t, err)
	require.Len(t, res.JobIDs, 1)
	j, err := s.ClaimJob(ctx, res.JobIDs[0], time.Minute)
	require.NoError(t, err)
	require.Nil(t, j, "deferred while the take is pending")

	d, released, err := s.RecordTakeOutcome(ctx, "d", "serbero-pk")
	require.NoError(t, err)
	require.Equal(t, res.JobIDs, released)
	require.Equal(t, "serbero-pk", *d.AssignedSolver)
	require.Nil(t, d.TakeIntentUntil)
	j, err = s.ClaimJob(ctx, res.JobIDs[0], time.Minute)
	require.NoError(t, err)
	require.NotNil(t, j)
	require.Equal(t, "serbero-pk", j.AssignedSolver)

	_, _, err = s.RecordTakeOutcome(ctx, "nope", "x")
	require.ErrorIs(t, err, store.ErrNotFound)
}

// An assignment's body is built at its first attempt and kept: a retry
// after Serbero's own take was recorded meanwhile sends the same bytes
// under the same idempotency key (relaygw refuses another body).
func TestAssignmentBodyIsKeptAcrossRetries(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	notify(t, s, "d", []string{"s1"}, t0)
	res, err := apply(ctx, s, rev("d", "e2", t0.Unix(), "in-progress", 0), []string{"s1"}, t0)
	require.NoError(t, err)
	require.Len(t, res.JobIDs, 1)
	j, err := s.ClaimJob(ctx, res.JobIDs[0], time.Minute)
	require.NoError(t, err)
	require.NotNil(t, j)
	require.Nil(t, j.Body, "built at the first attempt")
	first := message.Assignment("d", j.AssignedSolver)
	body, err := s.PinBody(ctx, j.ID, first)
	require.NoError(t, err)
	require.Equal(t, "Mostro dispute has been taken.\ndispute_id: d\nassigned_solver: unknown\nlifecycle_state: taken", body)
	cr, err := s.CompleteJob(ctx, *j, store.OutcomeFailed, "notification error: gift-wrap send failed: x", t0, time.Millisecond)
	require.NoError(t, err)
	require.True(t, cr.Rescheduled)

	// Serbero's take is recorded before the retry.
	_, _, err = s.RecordTakeOutcome(ctx, "d", "serbero-pk")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		j, err = s.ClaimJob(ctx, res.JobIDs[0], time.Minute)
		require.NoError(t, err)
		return j != nil
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, "serbero-pk", j.AssignedSolver)
	require.NotNil(t, j.Body)
	require.Equal(t, first, *j.Body, "the retry carries the body first sent under its key")
	body, err = s.PinBody(ctx, j.ID, message.Assignment("d", j.AssignedSolver))
	require.NoError(t, err)
	require.Equal(t, first, body, "an existing body is never replaced")
}

func TestChangeFeed(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	notify(t, s, "d", []string{"s1"}, t0)
	_, err := apply(ctx, s, rev("d", "e2", t0.Unix(), "in-progress", 0), []string{"s1"}, t0)
	require.NoError(t, err)
	_, err = apply(ctx, s, rev("d", "e3", t0.Unix()+1, "in-progress", 0), []string{"s1"}, t0)
	require.NoError(t, err)
	_, err = apply(ctx, s, rev("d", "e4", t0.Unix()+2, "settled", 0), []string{"s1"}, t0)
	require.NoError(t, err)

	all, err := s.ChangesAfter(ctx, 0, 100)
	require.NoError(t, err)
	type row struct {
		Kind  string
		State lifecycle.State
		To    lifecycle.State
	}
	var got []row
	for _, c := range all {
		r := row{Kind: c.Kind, State: c.Dispute.LifecycleState}
		if c.Transition != nil {
			r.To = c.Transition.To
		}
		got = append(got, r)
	}
	require.Equal(t, []row{
		{"detected", "new", ""},
		{"transitioned", "notified", "notified"},
		{"transitioned", "taken", "taken"},
		{"updated", "taken", ""}, // a takeover revision
		{"transitioned", "resolved", "resolved"},
	}, got)
	require.Equal(t, "e3", *all[3].Dispute.NewestEventID)
	rest, err := s.ChangesAfter(ctx, all[2].ID, 100)
	require.NoError(t, err)
	require.Len(t, rest, 2)
	require.Equal(t, all[3].ID, rest[0].ID)
}

func TestListDisputesPaging(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	for i := range 5 {
		_, err := apply(ctx, s, rev(fmt.Sprintf("d%d", i), fmt.Sprintf("e%d", i), 100, "initiated", 0), nil, t0.Add(time.Duration(i)*time.Second))
		require.NoError(t, err)
	}
	_, err := apply(ctx, s, rev("d4", "e4b", 200, "settled", 0), nil, t0)
	require.NoError(t, err)

	var ids []string
	var after *store.PageKey
	for {
		page, next, err := s.ListDisputes(ctx, store.ListFilter{Limit: 2, After: after})
		require.NoError(t, err)
		for _, d := range page {
			ids = append(ids, d.DisputeID)
		}
		if next == nil {
			break
		}
		after = next
	}
	require.Equal(t, []string{"d4", "d3", "d2", "d1", "d0"}, ids)

	page, _, err := s.ListDisputes(ctx, store.ListFilter{Limit: 10, States: []lifecycle.State{lifecycle.New}})
	require.NoError(t, err)
	require.Len(t, page, 4)
	page, _, err = s.ListDisputes(ctx, store.ListFilter{Limit: 10, DetectedAfter: t0.Unix() + 1, DetectedBefore: t0.Unix() + 3})
	require.NoError(t, err)
	require.Len(t, page, 2)
	counts, err := s.StateCounts(ctx)
	require.NoError(t, err)
	require.Equal(t, map[lifecycle.State]int64{"new": 4, "notified": 0, "taken": 0, "waiting": 0, "escalated": 0, "resolved": 1}, counts)
}

// apply is intake.Apply with the solvers and clock of a test.
func apply(ctx context.Context, s *store.Store, r event.Revision, solvers []string, now time.Time) (intake.Applied, error) {
	return intake.Apply(ctx, s, r, intake.Input{Solvers: solvers, Now: now})
}

// applyLeased is apply that leases a new dispute's initial DMs.
func applyLeased(ctx context.Context, s *store.Store, r event.Revision, solvers []string, now time.Time, lease time.Duration) (intake.Applied, error) {
	return intake.Apply(ctx, s, r, intake.Input{Solvers: solvers, Now: now, Lease: lease})
}

// A backfilled revision is recorded as any other, but only a dispute still
// initiated gets DMs: a taken one is recorded taken without its assignment
// DMs, a resolved one silently.
func TestBackfillNotifiesOnlyStillInitiatedDisputes(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	in := intake.Input{Solvers: []string{"s1", "s2"}, Now: t0, Lease: time.Minute, Backfill: true}
	cases := []struct {
		d, status string
		state     lifecycle.State
		jobs      int
		silenced  bool
	}{
		{"open", "initiated", lifecycle.New, 2, false},
		{"taken", "in-progress", lifecycle.Taken, 0, true},
		{"done", "settled", lifecycle.Resolved, 0, false},
	}
	for _, tc := range cases {
		res, err := intake.Apply(ctx, s, rev(tc.d, "e-"+tc.d, 100, tc.status, 0), in)
		require.NoError(t, err)
		require.Equal(t, route.Detected, res.Decision.Outcome, tc.d)
		require.Equal(t, tc.state, res.Dispute.LifecycleState, tc.d)
		require.Len(t, res.JobIDs, tc.jobs, tc.d)
		require.Equal(t, tc.silenced, res.Silenced, tc.d)
	}
	require.Equal(t, 2, count(t, db.Pool, `SELECT count(*) FROM intake_notification_jobs WHERE dispute_id = 'open' AND claimed_until IS NOT NULL`),
		"the still-initiated dispute's DMs are leased as usual")
	require.Equal(t, 0, count(t, db.Pool, `SELECT count(*) FROM intake_notification_jobs WHERE dispute_id <> 'open'`))

	// A backfilled in-progress revision of a recorded, notified dispute
	// moves it without the assignment DMs.
	notify(t, s, "later", []string{"s1"}, t0)
	res, err := intake.Apply(ctx, s, rev("later", "e-later-2", t0.Unix()+1, "in-progress", 0), in)
	require.NoError(t, err)
	require.Equal(t, lifecycle.Taken, res.Dispute.LifecycleState)
	require.Empty(t, res.JobIDs)
	require.True(t, res.Silenced)
}
