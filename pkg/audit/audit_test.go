package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/pkg/pgdbtest"
)

func seed(t *testing.T, pool *pgxpool.Pool, disputeID string, sessionIDs ...string) {
	t.Helper()
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at)
VALUES ($1, 'ev-' || $1, 'mostro', 'buyer', 1, 1)`, disputeID)
	require.NoError(t, err)
	for _, s := range sessionIDs {
		_, err = pool.Exec(ctx, `INSERT INTO mediation_sessions (session_id, dispute_id, state, prompt_bundle_id, policy_hash, started_at, last_transition_at)
VALUES ($1, $2, 'awaiting_response', 'phase3-default', 'hash-1', 1, 1)`, s, disputeID)
		require.NoError(t, err)
	}
}

// TestAppendStoresEveryPayloadAsWritten appends one row per golden case and
// reads it back: the stored JSON is the payload's JSON, the kind its kind.
func TestAppendStoresEveryPayloadAsWritten(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	ctx := t.Context()
	seed(t, db.Pool, "d1", "s1")

	for _, tt := range goldenCases() {
		ev := audit.Event{Payload: tt.payload, OccurredAt: 100, PromptBundleID: ptr("phase3-default"), PolicyHash: ptr("hash-1")}
		if tt.scope == audit.ScopeSession {
			ev.SessionID = ptr("s1")
		}
		if tt.scope == audit.ScopeDaemon {
			ev.PromptBundleID, ev.PolicyHash = nil, nil
		}
		if tt.name == "reasoning_call_failed (session)" {
			ev.SessionID = ptr("s1")
		}
		id, err := audit.Append(ctx, db.Pool, ev)
		require.NoError(t, err, tt.name)
		got, err := audit.Get(ctx, db.Pool, id)
		require.NoError(t, err)
		require.Equal(t, tt.kind, got.Kind, tt.name)
		require.JSONEq(t, tt.json, string(got.Payload), tt.name)
		require.Equal(t, ev.SessionID, got.SessionID, tt.name)
		require.Equal(t, ev.PromptBundleID, got.PromptBundleID, tt.name)
		require.Equal(t, int64(100), got.OccurredAt)
	}

	_, err := audit.Get(ctx, db.Pool, 1<<40)
	require.ErrorIs(t, err, audit.ErrNotFound)
}

func TestAppendRefusesEventsThatBreakTheScopeRules(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	ctx := t.Context()
	seed(t, db.Pool, "d1", "s1")

	tests := []struct {
		name string
		ev   audit.Event
		want string
	}{
		{"no payload", audit.Event{OccurredAt: 1}, "no payload"},
		{"no occurred_at", audit.Event{Payload: audit.SessionOpened{}, SessionID: ptr("s1")}, "occurred_at is required"},
		{"session kind without session", audit.Event{Payload: audit.SessionOpened{}, OccurredAt: 1}, "session_id is required"},
		{"dispute kind with a session", audit.Event{Payload: audit.StartAttemptStarted{DisputeID: "d1", Trigger: "detected"}, SessionID: ptr("s1"), OccurredAt: 1}, "session_id must be NULL"},
		{"daemon kind with a session", audit.Event{Payload: audit.AuthRetryRecovered{Attempt: 1}, SessionID: ptr("s1"), OccurredAt: 1}, "session_id must be NULL"},
		{"dispute-scoped without dispute_id", audit.Event{Payload: audit.StartAttemptStarted{Trigger: "detected"}, OccurredAt: 1}, "must name its dispute"},
		{"either-scoped without session or dispute", audit.Event{Payload: audit.ReasoningCallFailed{AttemptCount: 1}, OccurredAt: 1}, "must name its dispute"},
		{"empty session id", audit.Event{Payload: audit.EscalationRecommended{DisputeID: "d1", Trigger: "t"}, SessionID: ptr(""), OccurredAt: 1}, "session_id is empty"},
		{"incomplete verdict", audit.Event{Payload: audit.ReasoningVerdict{DisputeID: "d1", Decision: audit.DecisionSummarize}, OccurredAt: 1}, "needs classification and confidence"},
		{"unknown verdict", audit.Event{Payload: audit.ReasoningVerdict{DisputeID: "d1", Decision: "maybe"}, OccurredAt: 1}, "unknown verdict decision"},
		{"unknown take outcome", audit.Event{Payload: audit.TakeDisputeIssued{DisputeID: "d1", Outcome: "meh"}, OccurredAt: 1}, "unknown take outcome"},
		{"handoff payload not an object", audit.Event{Payload: audit.HandoffPrepared{Package: json.RawMessage(`[1]`)}, OccurredAt: 1}, "must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { // sequential: the count below runs after them
			_, err := audit.Append(ctx, db.Pool, tt.ev)
			require.ErrorIs(t, err, audit.ErrInvalidEvent)
			require.ErrorContains(t, err, tt.want)
		})
	}
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM mediation_events`).Scan(&n))
	require.Zero(t, n, "nothing written")
}

func TestAppendCommitsWithTheCallersTransaction(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	ctx := t.Context()
	seed(t, db.Pool, "d1")

	boom := errors.New("boom")
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if _, err := audit.Append(ctx, tx, audit.Event{Payload: audit.TakeSucceeded("d1"), OccurredAt: 5}); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	has, err := audit.HasDisputeScoped(ctx, db.Pool, "d1")
	require.NoError(t, err)
	require.False(t, has, "rolled back with the caller")

	// A foreign key failure is reported, not swallowed.
	_, err = audit.Append(ctx, db.Pool, audit.Event{Payload: audit.SessionOpened{}, SessionID: ptr("no-such-session"), OccurredAt: 5})
	require.ErrorContains(t, err, "append session_opened audit event")
}

func TestTrailAndLookups(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	ctx := t.Context()
	seed(t, db.Pool, "d1", "s1", "s2")
	seed(t, db.Pool, "d2", "s3")

	app := func(ev audit.Event) int64 {
		t.Helper()
		ev.OccurredAt = 10
		id, err := audit.Append(ctx, db.Pool, ev)
		require.NoError(t, err)
		return id
	}
	started := app(audit.Event{Payload: audit.StartAttemptStarted{DisputeID: "d1", Trigger: audit.StartTriggerDetected}})
	verdict := app(audit.Event{Payload: audit.VerdictAskClarification("d1")})
	opened := app(audit.Event{Payload: audit.SessionOpened{}, SessionID: ptr("s1")})
	app(audit.Event{Payload: audit.SessionOpened{}, SessionID: ptr("s3")})                       // another dispute
	app(audit.Event{Payload: audit.StartAttemptStarted{DisputeID: "d2", Trigger: "tick_retry"}}) // another dispute
	app(audit.Event{Payload: audit.AuthRetryAttempt{Attempt: 1, Error: "x"}})                    // daemon
	closed := app(audit.Event{Payload: audit.SessionClosed{DisputeID: "d1", Reason: audit.ReasonDisputeResolvedExternally}, SessionID: ptr("s2")})
	dispatched := app(audit.Event{Payload: audit.EscalationDispatched{DispatchID: "u", DisputeID: "d1", HandoffEventID: opened, Status: "dispatched"}})

	ids := func(rs []audit.Record) []int64 {
		out := []int64{}
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	trail, err := audit.Trail(ctx, db.Pool, "d1", []string{"s1", "s2"})
	require.NoError(t, err)
	require.Equal(t, []int64{started, verdict, opened, closed, dispatched}, ids(trail), "sessions' rows ∪ dispute-scoped rows, by id")

	trail, err = audit.Trail(ctx, db.Pool, "d1", nil)
	require.NoError(t, err)
	require.Equal(t, []int64{started, verdict, dispatched}, ids(trail), "no sessions: dispute-scoped rows only")

	scoped, err := audit.DisputeScoped(ctx, db.Pool, "d1", audit.KindReasoningVerdict, audit.KindTakeDisputeIssued)
	require.NoError(t, err)
	require.Equal(t, []int64{verdict}, ids(scoped))
	v, err := audit.Decode[audit.ReasoningVerdict](scoped[0])
	require.NoError(t, err)
	require.Equal(t, audit.DecisionAskClarification, v.Decision)

	has, err := audit.HasDisputeScoped(ctx, db.Pool, "d1", audit.KindTakeDisputeIssued)
	require.NoError(t, err)
	require.False(t, has)
	has, err = audit.HasDisputeScoped(ctx, db.Pool, "d1")
	require.NoError(t, err)
	require.True(t, has)

	sess, err := audit.SessionEvents(ctx, db.Pool, "s1")
	require.NoError(t, err)
	require.Equal(t, []int64{opened}, ids(sess))
	sess, err = audit.SessionEvents(ctx, db.Pool, "s1", audit.KindClassificationProduced)
	require.NoError(t, err)
	require.Empty(t, sess)

	has, err = audit.HasForHandoff(ctx, db.Pool, audit.KindEscalationDispatched, opened)
	require.NoError(t, err)
	require.True(t, has)
	has, err = audit.HasForHandoff(ctx, db.Pool, audit.KindEscalationSuperseded, opened)
	require.NoError(t, err)
	require.False(t, has)
	fh, err := audit.ForHandoff(ctx, db.Pool, opened)
	require.NoError(t, err)
	require.Equal(t, []int64{dispatched}, ids(fh))
}
