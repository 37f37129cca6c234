package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/intakesvc/internal/event"
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

func TestSchemaKeepsReferenceColumns(t *testing.T) {
	t.Parallel()
	_, db := setup(t)
	ctx := context.Background()
	want := map[string][]string{
		"disputes": {"dispute_id", "event_id", "mostro_pubkey", "initiator_role", "dispute_status", "event_timestamp",
			"detected_at", "lifecycle_state", "assigned_solver", "last_notified_at", "last_state_change"},
		"notifications":             {"id", "dispute_id", "solver_pubkey", "sent_at", "status", "error_message", "notif_type"},
		"dispute_state_transitions": {"id", "dispute_id", "from_state", "to_state", "transitioned_at", "trigger"},
	}
	for table, cols := range want {
		rows, err := db.Pool.Query(ctx, `SELECT column_name FROM information_schema.columns WHERE table_name = $1`, table)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Subset(t, got, cols, table)
	}
	for _, idx := range []string{"idx_disputes_lifecycle_state", "idx_notifications_dispute_id", "idx_state_transitions_dispute_id"} {
		require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM pg_indexes WHERE indexname = $1`, idx), idx)
	}
	// notif_type defaults to initial; the FK rejects an unknown dispute.
	_, err := db.Pool.Exec(ctx, `INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at)
		VALUES ('d', 'e', 'm', 'buyer', 1, 2)`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `INSERT INTO notifications (dispute_id, solver_pubkey, sent_at, status) VALUES ('d', 's', 3, 'sent')`)
	require.NoError(t, err)
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM notifications WHERE notif_type = 'initial'`))
	_, err = db.Pool.Exec(ctx, `INSERT INTO notifications (dispute_id, solver_pubkey, sent_at, status) VALUES ('nope', 's', 3, 'sent')`)
	require.ErrorContains(t, err, "foreign key")
}

// TestSchemaLifecycleMatchesGo proves the schema's transition table is the
// Go one, and that the trigger refuses illegal moves (with the operator
// override).
func TestSchemaLifecycleMatchesGo(t *testing.T) {
	t.Parallel()
	_, db := setup(t)
	ctx := context.Background()
	for _, from := range lifecycle.States {
		for _, to := range lifecycle.States {
			var ok bool
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT serbero_lifecycle_allowed($1, $2)`, string(from), string(to)).Scan(&ok))
			require.Equal(t, lifecycle.CanTransition(from, to), ok, "%s -> %s", from, to)
		}
	}
	_, err := db.Pool.Exec(ctx, `INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at, lifecycle_state)
		VALUES ('d', 'e', 'm', 'buyer', 1, 2, 'notified')`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `UPDATE disputes SET lifecycle_state = 'new' WHERE dispute_id = 'd'`)
	require.ErrorContains(t, err, "invalid state transition: notified -> new")
	_, err = db.Pool.Exec(ctx, `INSERT INTO dispute_state_transitions (dispute_id, from_state, to_state, transitioned_at) VALUES ('d', 'resolved', 'new', 1)`)
	require.ErrorContains(t, err, "dispute_state_transitions_legal")
	_, err = db.Pool.Exec(ctx, `UPDATE disputes SET lifecycle_state = 'resolved' WHERE dispute_id = 'd'`)
	require.NoError(t, err)
	// Operator correction, explicitly allowed.
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SET LOCAL serbero.lifecycle_override = 'on'`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE disputes SET lifecycle_state = 'notified' WHERE dispute_id = 'd'`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	// The override does not leak to the next transaction.
	_, err = db.Pool.Exec(ctx, `UPDATE disputes SET lifecycle_state = 'new' WHERE dispute_id = 'd'`)
	require.ErrorContains(t, err, "invalid state transition")
}

func TestApplyRevisionDetectsOnce(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	solvers := []string{"s1", "s2"}

	res, err := s.ApplyRevision(ctx, rev("d-1", "e1", 100, "initiated", 5), solvers, t0)
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
		res, err = s.ApplyRevision(ctx, r, solvers, t0)
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

func TestApplyRevisionNoSolvers(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	res, err := s.ApplyRevision(context.Background(), rev("d-1", "e1", 100, "initiated", 1), nil, t0)
	require.NoError(t, err)
	require.Equal(t, route.Detected, res.Decision.Outcome)
	require.Empty(t, res.JobIDs)
	require.Equal(t, 0, count(t, db.Pool, `SELECT count(*) FROM intake_notification_jobs`))
	due, err := s.ClaimDue(context.Background(), t0.Add(time.Hour), time.Second, nil, nil, 10)
	require.NoError(t, err)
	require.Empty(t, due)
}

func TestApplyRevisionNewestWins(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	_, err := s.ApplyRevision(ctx, rev("d", "e1", 100, "initiated", 1), []string{"s"}, t0)
	require.NoError(t, err)
	res, err := s.ApplyRevision(ctx, rev("d", "e3", 300, "settled", 2), []string{"s"}, t0)
	require.NoError(t, err)
	require.Equal(t, lifecycle.Resolved, res.Dispute.LifecycleState)
	require.Equal(t, lifecycle.New, res.From)
	// The in-progress revision published before settled arrives late.
	res, err = s.ApplyRevision(ctx, rev("d", "e2", 200, "in-progress", 3), []string{"s"}, t0)
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
	res, err := s.ApplyRevision(ctx, rev("d-ip", "e9", 100, "in-progress", 1), []string{"s1"}, t0)
	require.NoError(t, err)
	require.Equal(t, route.Detected, res.Decision.Outcome)
	require.Equal(t, lifecycle.Taken, res.Dispute.LifecycleState)
	require.Len(t, res.JobIDs, 1)
	_, ts, _, err := s.GetDispute(ctx, "d-ip")
	require.NoError(t, err)
	require.Len(t, ts, 1)
	require.Equal(t, "e9", ts[0].Trigger)
	require.Equal(t, lifecycle.New, ts[0].From)

	res, err = s.ApplyRevision(ctx, rev("d-done", "e8", 100, "seller-refunded", 2), []string{"s1"}, t0)
	require.NoError(t, err)
	require.Equal(t, lifecycle.Resolved, res.Dispute.LifecycleState)
	require.Empty(t, res.JobIDs)

	res, err = s.ApplyRevision(ctx, rev("d-odd", "e7", 100, "paused", 3), []string{"s1"}, t0)
	require.NoError(t, err)
	require.Equal(t, route.Ignored, res.Decision.Outcome)
	require.Nil(t, res.Dispute)
	_, _, _, err = s.GetDispute(ctx, "d-odd")
	require.ErrorIs(t, err, store.ErrNotFound)
	cur, err := s.Cursor(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, cur)
}

func TestResolutionClosesLiveSessions(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	_, err := s.ApplyRevision(ctx, rev("d", "e1", 100, "initiated", 1), nil, t0)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `INSERT INTO mediation_sessions (session_id, dispute_id, state, prompt_bundle_id, policy_hash, started_at, last_transition_at)
		VALUES ('live', 'd', 'awaiting_response', 'phase3-default', 'h1', 10, 10),
		       ('done', 'd', 'summary_delivered', 'phase3-default', 'h1', 5, 5)`)
	require.NoError(t, err)
	res, err := s.ApplyRevision(ctx, rev("d", "e2", 200, "settled", 2), nil, t0)
	require.NoError(t, err)
	require.Equal(t, []string{"live"}, res.SessionsClosed)
	var state string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT state FROM mediation_sessions WHERE session_id = 'live'`).Scan(&state))
	require.Equal(t, "closed", state)
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT state FROM mediation_sessions WHERE session_id = 'done'`).Scan(&state))
	require.Equal(t, "summary_delivered", state)
	rows, err := db.Pool.Query(ctx, `SELECT kind, payload_json::text, prompt_bundle_id, policy_hash FROM mediation_events WHERE session_id = 'live' ORDER BY id`)
	require.NoError(t, err)
	type ev struct{ Kind, Payload, Bundle, Hash string }
	evs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ev])
	require.NoError(t, err)
	require.Equal(t, []ev{
		{"superseded_by_human", `{"reason": "dispute_resolved_externally", "event_id": "e2", "dispute_id": "d", "resolution_status": "settled"}`, "phase3-default", "h1"},
		{"session_closed", `{"reason": "dispute_resolved_externally", "dispute_id": "d"}`, "phase3-default", "h1"},
	}, evs)
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

func TestNotificationOutcomes(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	res, err := s.ApplyRevision(ctx, rev("d", "e1", 100, "initiated", 1), []string{"good", "not-a-real-hex-pubkey"}, t0)
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
	res, err := s.ApplyRevision(ctx, rev("d", "e1", 100, "initiated", 1), []string{"s1", "s2"}, t0)
	require.NoError(t, err)
	res2, err := s.ApplyRevision(ctx, rev("d", "e2", 200, "in-progress", 2), []string{"s1", "s2"}, t0)
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
	res, err := s.ApplyRevisionClaim(ctx, rev("d", "e1", 100, "initiated", 0), []string{"s1", "s2", "s1"}, t0, time.Minute)
	require.NoError(t, err)
	require.Len(t, res.JobIDs, 3)
	require.Len(t, res.Claimed, 2)
	require.Equal(t, []int64{res.JobIDs[0], res.JobIDs[1]}, []int64{res.Claimed[0].ID, res.Claimed[1].ID})
	j, err := s.ClaimJob(ctx, res.JobIDs[2], time.Minute)
	require.NoError(t, err)
	require.Nil(t, j, "behind the first DM to s1")
	// Later DMs of an existing dispute are not leased (earlier ones may be
	// pending): the caller claims them.
	res, err = s.ApplyRevisionClaim(ctx, rev("d", "e2", 200, "in-progress", 0), []string{"s1", "s2", "s1"}, t0, time.Minute)
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
		res, err := s.ApplyRevisionClaim(ctx, rev(d, "e-"+d, 100, "initiated", 0), []string{"s1", "s2"}, t0, time.Minute)
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
	res, err := s.ApplyRevision(ctx, rev("d", "e1", 100, "initiated", 1), []string{"s1"}, t0)
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

func TestInitialThatReachedNobodyIsRetried(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	res, err := s.ApplyRevision(ctx, rev("d", "e1", 100, "initiated", 1), []string{"s1"}, t0)
	require.NoError(t, err)
	// Not due while the first batch is pending.
	due, err := s.ClaimDue(ctx, t0.Add(time.Hour), 300*time.Second, []string{"s1"}, []string{"s1"}, 10)
	require.NoError(t, err)
	require.Empty(t, due)
	jobs := claimAll(t, s, res.JobIDs)
	cr, err := s.CompleteJob(ctx, jobs[0], store.OutcomeFailed, "notification error: gift-wrap send failed: x", t0, 0)
	require.NoError(t, err)
	require.True(t, cr.BatchReachedNobody)

	// Not retried when the caller says not to (no solvers).
	due, err = s.ClaimDue(ctx, t0.Add(time.Second), 300*time.Second, []string{"s1"}, nil, 10)
	require.NoError(t, err)
	require.Empty(t, due)
	due, err = s.ClaimDue(ctx, t0.Add(time.Second), 300*time.Second, []string{"s1"}, []string{"s1"}, 10)
	require.NoError(t, err)
	require.Len(t, due, 1)
	require.Equal(t, "initial", due[0].NotifType)
	retry := claimAll(t, s, due[0].JobIDs)
	require.Equal(t, jobs[0].IdempotencyKey, retry[0].IdempotencyKey, "same key: relaygw republishes the same gift wrap")
	require.Equal(t, *jobs[0].Body, *retry[0].Body)
	_, err = s.CompleteJob(ctx, retry[0], store.OutcomeSent, "", t0.Add(time.Second), 0)
	require.NoError(t, err)
	d, _, ns, err := s.GetDispute(ctx, "d")
	require.NoError(t, err)
	require.Equal(t, lifecycle.Notified, d.LifecycleState)
	require.Len(t, ns, 2)
}

// notify drives a dispute to notified at time at.
func notify(t *testing.T, s *store.Store, d string, solvers []string, at time.Time) {
	t.Helper()
	res, err := s.ApplyRevision(context.Background(), rev(d, "e-"+d, at.Unix()-10, "initiated", 0), solvers, at)
	require.NoError(t, err)
	for _, j := range claimAll(t, s, res.JobIDs) {
		_, err := s.CompleteJob(context.Background(), j, store.OutcomeSent, "", at, 0)
		require.NoError(t, err)
	}
}

func TestClaimDueSelectsOnlyUnattended(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	sv := []string{"s1"}
	notify(t, s, "old", sv, t0)
	notify(t, s, "fresh", sv, t0.Add(250*time.Second))
	notify(t, s, "taken", sv, t0)
	_, err := s.ApplyRevision(ctx, rev("taken", "e-taken-2", t0.Unix(), "in-progress", 0), sv, t0)
	require.NoError(t, err)

	now := t0.Add(301 * time.Second)
	due, err := s.ClaimDue(ctx, now, 300*time.Second, sv, sv, 10)
	require.NoError(t, err)
	require.Len(t, due, 1)
	require.Equal(t, store.DueBatch{DisputeID: "old", NotifType: "re-notification", Period: 1, JobIDs: due[0].JobIDs}, due[0])
	jobs := claimAll(t, s, due[0].JobIDs)
	require.Equal(t, message.Renotification("old", 311), *jobs[0].Body)
	require.Equal(t, message.IdempotencyKey("re-notification", 1, "old", "s1"), jobs[0].IdempotencyKey)

	// Exactly at the cutoff is not due (strict <).
	due, err = s.ClaimDue(ctx, t0.Add(550*time.Second), 300*time.Second, sv, sv, 10)
	require.NoError(t, err)
	require.Empty(t, due)

	// The period reached nobody: the next tick starts the next period, with
	// new keys and that tick's time_elapsed_seconds (relaygw would refuse
	// period 1's keys with another body).
	_, err = s.CompleteJob(ctx, jobs[0], store.OutcomeFailed, "notification error: gift-wrap send failed: x", now, 0)
	require.NoError(t, err)
	due, err = s.ClaimDue(ctx, now.Add(time.Second), 300*time.Second, sv, sv, 10)
	require.NoError(t, err)
	require.Len(t, due, 1)
	require.EqualValues(t, 2, due[0].Period)
	jobs = claimAll(t, s, due[0].JobIDs)
	require.Equal(t, message.Renotification("old", 312), *jobs[0].Body)
	require.Equal(t, message.IdempotencyKey("re-notification", 2, "old", "s1"), jobs[0].IdempotencyKey)
	_, err = s.CompleteJob(ctx, jobs[0], store.OutcomeSent, "", now.Add(2*time.Second), 0)
	require.NoError(t, err)
	d, _, _, err := s.GetDispute(ctx, "old")
	require.NoError(t, err)
	require.Equal(t, now.Unix()+1, *d.LastNotifiedAt, "last_notified_at is the tick's clock")

	// Next period after renotification_seconds more.
	// ("fresh" is due for its first period by then too.)
	due, err = s.ClaimDue(ctx, now.Add(302*time.Second), 300*time.Second, sv, sv, 10)
	require.NoError(t, err)
	require.Len(t, due, 2)
	require.Equal(t, "fresh", due[0].DisputeID)
	require.EqualValues(t, 1, due[0].Period)
	require.Equal(t, "old", due[1].DisputeID)
	require.EqualValues(t, 3, due[1].Period)
}

// TestClaimDueTwoReplicas races two pools (two replicas) over many due
// disputes: every dispute gets exactly one batch for the period.
func TestClaimDueTwoReplicas(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	sv := []string{"s1", "s2"}
	const n = 40
	for i := range n {
		notify(t, s, fmt.Sprintf("d%02d", i), sv, t0)
	}
	replicas := []*store.Store{store.New(db.OpenPool(t)), store.New(db.OpenPool(t))}
	var wg sync.WaitGroup
	got := make([][]store.DueBatch, len(replicas))
	for i, r := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 { // several ticks each, small batches, to interleave
				b, err := r.ClaimDue(context.Background(), t0.Add(301*time.Second), 300*time.Second, sv, sv, 3)
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = append(got[i], b...)
				for len(b) > 0 {
					b, err = r.ClaimDue(context.Background(), t0.Add(301*time.Second), 300*time.Second, sv, sv, 3)
					if err != nil {
						t.Error(err)
						return
					}
					got[i] = append(got[i], b...)
				}
			}
		}()
	}
	wg.Wait()
	seen := map[string]int{}
	for _, bs := range got {
		for _, b := range bs {
			seen[b.DisputeID]++
		}
	}
	require.Len(t, seen, n)
	for d, c := range seen {
		require.Equal(t, 1, c, d)
	}
	require.Equal(t, n*len(sv), count(t, db.Pool, `SELECT count(*) FROM intake_notification_jobs WHERE notif_type = 're-notification'`))
	require.Equal(t, n*len(sv), count(t, db.Pool, `SELECT count(DISTINCT idempotency_key) FROM intake_notification_jobs WHERE notif_type = 're-notification'`))
}

func TestJobsOfOneSolverAreSentInOrder(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	res1, err := s.ApplyRevision(ctx, rev("d", "e1", 100, "initiated", 1), []string{"s1"}, t0)
	require.NoError(t, err)
	res2, err := s.ApplyRevision(ctx, rev("d", "e2", 200, "in-progress", 2), []string{"s1"}, t0)
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
	res, err := s.ApplyRevision(ctx, rev("d", "e2", t0.Unix(), "in-progress", 0), []string{"s1"}, t0)
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
	res, err := s.ApplyRevision(ctx, rev("d", "e2", t0.Unix(), "in-progress", 0), []string{"s1"}, t0)
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
	_, err := s.ApplyRevision(ctx, rev("d", "e2", t0.Unix(), "in-progress", 0), []string{"s1"}, t0)
	require.NoError(t, err)
	_, err = s.ApplyRevision(ctx, rev("d", "e3", t0.Unix()+1, "in-progress", 0), []string{"s1"}, t0)
	require.NoError(t, err)
	_, err = s.ApplyRevision(ctx, rev("d", "e4", t0.Unix()+2, "settled", 0), []string{"s1"}, t0)
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
		_, err := s.ApplyRevision(ctx, rev(fmt.Sprintf("d%d", i), fmt.Sprintf("e%d", i), 100, "initiated", 0), nil, t0.Add(time.Duration(i)*time.Second))
		require.NoError(t, err)
	}
	_, err := s.ApplyRevision(ctx, rev("d4", "e4b", 200, "settled", 0), nil, t0)
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
