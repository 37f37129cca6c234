package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// The store carries out the plan it is given and decides nothing itself:
// the decider sees the dispute as recorded (a copy it cannot change) and
// its plan is written as is.
func TestApplyRevisionCarriesOutThePlan(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	body := "a body"
	var seen []*lifecycle.State
	decide := func(p store.Plan) store.Decider {
		return func(cur *store.Dispute) store.Plan {
			if cur == nil {
				seen = append(seen, nil)
			} else {
				st := cur.LifecycleState
				seen = append(seen, &st)
			}
			if cur != nil {
				cur.LifecycleState = lifecycle.Escalated // a copy: ignored
			}
			return p
		}
	}
	res, err := s.ApplyRevision(ctx, rev("d", "e1", 100, "initiated", 4), t0, decide(store.Plan{Insert: true,
		DMs: &store.Batch{Type: "initial", Body: &body, Solvers: []string{"s1", "s2"}, Keys: []string{"k1", "k2"}, Lease: time.Minute}}))
	require.NoError(t, err)
	require.Nil(t, seen[0], "not recorded yet")
	require.Len(t, res.JobIDs, 2)
	require.Len(t, res.Claimed, 2, "a new dispute's batch is leased")
	require.Equal(t, "k1", res.Claimed[0].IdempotencyKey)
	require.Equal(t, body, *res.Claimed[0].Body)
	require.Equal(t, lifecycle.New, res.Dispute.LifecycleState)
	cur, err := s.Cursor(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 4, cur)

	// A later plan: a move, a tracked revision, an unleased batch.
	res, err = s.ApplyRevision(ctx, rev("d", "e2", 200, "in-progress", 0), t0, decide(store.Plan{Track: true, SetStatus: true,
		To: lifecycle.Taken, Trigger: "e2",
		DMs: &store.Batch{Type: "assignment", Solvers: []string{"s1"}, Keys: []string{"k3"}, Lease: time.Minute}}))
	require.NoError(t, err)
	require.Equal(t, lifecycle.New, *seen[1])
	require.Equal(t, lifecycle.New, res.From)
	require.Equal(t, lifecycle.Taken, res.Dispute.LifecycleState)
	require.Equal(t, "in-progress", res.Dispute.DisputeStatus)
	require.Equal(t, "e2", *res.Dispute.NewestEventID)
	require.Len(t, res.JobIDs, 1)
	require.Empty(t, res.Claimed, "only a new dispute's batch is leased")
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM intake_notification_jobs WHERE idempotency_key = 'k3' AND body IS NULL`))

	// An empty plan writes nothing but the cursor.
	before := count(t, db.Pool, `SELECT count(*) FROM dispute_changes`)
	res, err = s.ApplyRevision(ctx, rev("d", "e1", 100, "initiated", 9), t0, decide(store.Plan{}))
	require.NoError(t, err)
	require.Nil(t, res.Dispute)
	require.Equal(t, before, count(t, db.Pool, `SELECT count(*) FROM dispute_changes`))
	cur, err = s.Cursor(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 9, cur)
}

// A plan that contradicts the row is refused with ErrInvalidPlan and
// writes nothing.
func TestApplyRevisionRefusesAnInvalidPlan(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	plan := func(p store.Plan) store.Decider { return func(*store.Dispute) store.Plan { return p } }
	cases := []struct {
		name string
		d    string
		p    store.Plan
	}{
		{"changes a dispute never recorded", "nope", store.Plan{Track: true}},
		{"moves a dispute never recorded", "nope", store.Plan{To: lifecycle.Taken}},
		{"inserts a recorded dispute", "d", store.Plan{Insert: true}},
		{"keys do not match solvers", "d", store.Plan{Track: true, DMs: &store.Batch{Type: "assignment", Solvers: []string{"a", "b"}, Keys: []string{"k"}}}},
	}
	_, err := s.ApplyRevision(ctx, rev("d", "e1", 100, "initiated", 0), t0, plan(store.Plan{Insert: true}))
	require.NoError(t, err)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.ApplyRevision(ctx, rev(tc.d, "e9", 900, "in-progress", 50), t0, plan(tc.p))
			require.ErrorIs(t, err, store.ErrInvalidPlan)
		})
	}
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM disputes`))
	require.Equal(t, 0, count(t, db.Pool, `SELECT count(*) FROM intake_notification_jobs`))
	cur, err := s.Cursor(ctx)
	require.NoError(t, err)
	require.Zero(t, cur, "nothing committed")
	// An illegal move is refused by the lifecycle guard.
	_, err = s.ApplyRevision(ctx, rev("d", "e9", 900, "in-progress", 0), t0, plan(store.Plan{To: lifecycle.Waiting}))
	require.ErrorIs(t, err, lifecycle.ErrInvalidTransition)
}

// A resolution writes only intakesvc's own rows: the dispute, its history
// and the change feed. Closing mediation sessions is mediationsvc's job,
// reacting to the feed's resolved change, which carries the resolving
// revision and its status.
func TestResolutionTouchesOnlyIntakeTables(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	plan := func(p store.Plan) store.Decider { return func(*store.Dispute) store.Plan { return p } }
	_, err := s.ApplyRevision(ctx, rev("d", "e1", 100, "initiated", 0), t0, plan(store.Plan{Insert: true}))
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `INSERT INTO mediation_sessions (session_id, dispute_id, state, prompt_bundle_id, policy_hash, started_at, last_transition_at)
		VALUES ('live', 'd', 'awaiting_response', 'phase3-default', 'h1', 10, 10)`)
	require.NoError(t, err)
	_, err = s.ApplyRevision(ctx, rev("d", "e2", 200, "settled", 0), t0, plan(store.Plan{Track: true, SetStatus: true,
		To: lifecycle.Resolved, Trigger: lifecycle.TriggerResolvedExternally}))
	require.NoError(t, err)
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM mediation_sessions WHERE session_id = 'live' AND state = 'awaiting_response'`))
	require.Equal(t, 0, count(t, db.Pool, `SELECT count(*) FROM mediation_events`))
	changes, err := s.ChangesAfter(ctx, 0, 10)
	require.NoError(t, err)
	last := changes[len(changes)-1]
	require.Equal(t, store.ChangeTransitioned, last.Kind)
	require.Equal(t, lifecycle.Resolved, last.Transition.To)
	require.Equal(t, lifecycle.TriggerResolvedExternally, last.Transition.Trigger)
	require.Equal(t, "e2", *last.Dispute.NewestEventID, "the resolving revision")
	require.Equal(t, "settled", last.Dispute.DisputeStatus, "its resolution status")
}
