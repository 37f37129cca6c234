package handoff_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/pkg/pgdbtest"
)

// seedSession inserts a dispute and a session (for the session FK).
func seedSession(t *testing.T, pool *pgxpool.Pool, disputeID, sessionID string) {
	t.Helper()
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at)
VALUES ($1, 'ev-' || $1, 'mostro', 'buyer', 1, 1)`, disputeID)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO mediation_sessions (session_id, dispute_id, state, prompt_bundle_id, policy_hash, started_at, last_transition_at)
VALUES ($1, $2, 'escalation_recommended', 'phase3-default', 'hash-1', 1, 1)`, sessionID, disputeID)
	require.NoError(t, err)
}

func enqueue(t *testing.T, pool *pgxpool.Pool, pkg handoff.Package) handoff.Enqueued {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	e, err := handoff.Enqueue(ctx, tx, pkg, handoff.Meta{OccurredAt: 100})
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	return e
}

func enqueueN(t *testing.T, pool *pgxpool.Pool, n int) []handoff.Enqueued {
	t.Helper()
	out := make([]handoff.Enqueued, 0, n)
	for i := range n {
		p := samplePackage()
		p.DisputeID = fmt.Sprintf("d-%d", i)
		out = append(out, enqueue(t, pool, p))
	}
	return out
}

func ids(hs []handoff.Handoff) []int64 {
	out := make([]int64, 0, len(hs))
	for _, h := range hs {
		out = append(out, h.ID)
	}
	return out
}

func TestEnqueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgdbtest.NewDB(t)
	seedSession(t, db.Pool, "d-s", "s-1")

	listener, err := pgx.Connect(ctx, db.URL)
	require.NoError(t, err)
	t.Cleanup(func() { listener.Close(context.Background()) })
	_, err = listener.Exec(ctx, "LISTEN "+handoff.Channel)
	require.NoError(t, err)

	// A rolled-back transaction leaves nothing and notifies nobody.
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = handoff.Enqueue(ctx, tx, samplePackage(), handoff.Meta{})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))

	pkg := samplePackage()
	pkg.DisputeID, pkg.SessionID = "d-s", "s-1"
	e := enqueue(t, db.Pool, pkg)

	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(waitCtx)
	require.NoError(t, err)
	require.Equal(t, handoff.Channel, n.Channel)
	require.Equal(t, fmt.Sprint(e.ID), n.Payload, "the first notification is the committed one")

	var (
		kind, payload, session, bundle, hash string
		occurred                             int64
		rationale                            *string
	)
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT kind, payload_json::text, session_id, prompt_bundle_id, policy_hash, occurred_at, rationale_id
FROM mediation_events WHERE id = $1`, e.HandoffEventID).Scan(&kind, &payload, &session, &bundle, &hash, &occurred, &rationale))
	require.Equal(t, handoff.KindHandoffPrepared, kind)
	require.JSONEq(t, string(pkg.Encode()), payload)
	require.Equal(t, "s-1", session)
	require.Equal(t, "phase3-default", bundle)
	require.Equal(t, "hash-1", hash)
	require.Equal(t, int64(100), occurred)
	require.Nil(t, rationale)

	var events, queued int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM mediation_events), (SELECT count(*) FROM handoffs)`).Scan(&events, &queued))
	require.Equal(t, 1, events)
	require.Equal(t, 1, queued)

	h, err := handoff.Get(ctx, db.Pool, e.ID)
	require.NoError(t, err)
	require.Equal(t, e.HandoffEventID, h.HandoffEventID)
	require.Equal(t, "d-s", h.DisputeID)
	require.Equal(t, "s-1", *h.SessionID)
	require.Equal(t, "conflicting_claims", h.Trigger)
	require.Equal(t, []string{}, h.EvidenceRefs)
	require.Equal(t, []string{"9f86d081884c"}, h.RationaleRefs)
	require.Equal(t, int64(1745000000), h.AssembledAt)
	require.Equal(t, string(pkg.Encode()), h.PayloadJSON, "the payload is kept byte for byte")
	require.Equal(t, handoff.StatusPending, h.Status)
	require.Zero(t, h.Attempts)

	byEvent, err := handoff.GetByEvent(ctx, db.Pool, e.HandoffEventID)
	require.NoError(t, err)
	require.Equal(t, h.ID, byEvent.ID)

	// A package a producer must not write is refused before any SQL.
	bad := samplePackage()
	bad.Trigger = ""
	tx, err = db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	_, err = handoff.Enqueue(ctx, tx, bad, handoff.Meta{})
	require.ErrorContains(t, err, "trigger is required")
}

func TestEnqueueRaw(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgdbtest.NewDB(t)
	bundle, hash := "phase3-default", "hash-1"
	tests := []struct {
		name, payload, dispute, audit string
		trigger                       string
	}{
		{"missing fields", `{"dispute_id":"d-malformed","this_is":"broken","missing_required_fields":true}`, "d-malformed",
			`{"dispute_id":"d-malformed","this_is":"broken","missing_required_fields":true}`, ""},
		{"not json", `this is not json at all {{{`, "", `{}`, ""},
		{"valid", string(samplePackage().Encode()), "d-1", string(samplePackage().Encode()), "conflicting_claims"},
	}
	for _, tt := range tests {
		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		e, err := handoff.EnqueueRaw(ctx, tx, tt.payload, handoff.RawMeta{PromptBundleID: &bundle, PolicyHash: &hash, OccurredAt: 100})
		require.NoError(t, err, tt.name)
		require.NoError(t, tx.Commit(ctx))
		h, err := handoff.Get(ctx, db.Pool, e.ID)
		require.NoError(t, err)
		require.Equal(t, tt.payload, h.PayloadJSON, tt.name)
		require.Equal(t, tt.dispute, h.DisputeID, tt.name)
		require.Equal(t, tt.trigger, h.Trigger, tt.name)
		require.Nil(t, h.SessionID)
		require.Equal(t, bundle, *h.PromptBundleID)
		var audit string
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT payload_json::text FROM mediation_events WHERE id = $1`, e.HandoffEventID).Scan(&audit))
		require.JSONEq(t, tt.audit, audit, tt.name)
	}
}

func TestClaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("OldestFirstWithinLimit", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewDB(t)
		es := enqueueN(t, db.Pool, 5)
		got, err := handoff.Claim(ctx, db.Pool, 3, "a", time.Minute)
		require.NoError(t, err)
		require.Equal(t, []int64{es[0].ID, es[1].ID, es[2].ID}, ids(got))
		for _, h := range got {
			require.Equal(t, handoff.StatusClaimed, h.Status)
			require.Equal(t, "a", h.ClaimedBy)
			require.Equal(t, 1, h.Attempts)
			require.WithinDuration(t, time.Now().Add(time.Minute), h.ClaimDeadline, 10*time.Second)
		}
		// Claimed rows are not claimable; the rest is.
		got, err = handoff.Claim(ctx, db.Pool, 10, "b", time.Minute)
		require.NoError(t, err)
		require.Equal(t, []int64{es[3].ID, es[4].ID}, ids(got))
		got, err = handoff.Claim(ctx, db.Pool, 10, "c", time.Minute)
		require.NoError(t, err)
		require.Empty(t, got)
	})

	t.Run("LimitClamped", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewDB(t)
		enqueueN(t, db.Pool, 3)
		got, err := handoff.Claim(ctx, db.Pool, 0, "a", time.Minute)
		require.NoError(t, err)
		require.Len(t, got, 1, "a limit <= 0 claims one")
		_, err = handoff.Claim(ctx, db.Pool, 1, "", time.Minute)
		require.Error(t, err, "an owner is required")
	})

	t.Run("BatchLimit128", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewDB(t)
		_, err := db.Pool.Exec(ctx, `
WITH ev AS (INSERT INTO mediation_events (kind, payload_json, occurred_at)
            SELECT 'handoff_prepared', '{}', 1 FROM generate_series(1, 130) RETURNING id)
INSERT INTO handoffs (handoff_event_id, payload_json) SELECT id, '{}' FROM ev`)
		require.NoError(t, err)
		got, err := handoff.Claim(ctx, db.Pool, 1000, "a", time.Minute)
		require.NoError(t, err)
		require.Len(t, got, handoff.MaxClaimBatch)
	})

	t.Run("ConcurrentClaimersNeverShareARow", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewDB(t)
		const rows, claimers = 300, 6
		_, err := db.Pool.Exec(ctx, `
WITH ev AS (INSERT INTO mediation_events (kind, payload_json, occurred_at)
            SELECT 'handoff_prepared', '{}', 1 FROM generate_series(1, $1) RETURNING id)
INSERT INTO handoffs (handoff_event_id, payload_json) SELECT id, '{}' FROM ev`, rows)
		require.NoError(t, err)
		var (
			mu      sync.Mutex
			claimed = map[int64]string{}
			wg      sync.WaitGroup
			errs    = make(chan error, claimers)
		)
		for c := range claimers {
			pool := db.OpenPool(t)
			owner := fmt.Sprintf("claimer-%d", c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					got, err := handoff.Claim(ctx, pool, 7, owner, time.Minute)
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, h := range got {
						if prev, dup := claimed[h.ID]; dup {
							mu.Unlock()
							errs <- fmt.Errorf("row %d claimed by %s and %s", h.ID, prev, owner)
							return
						}
						claimed[h.ID] = owner
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Len(t, claimed, rows, "every row claimed exactly once")
		owners := map[string]bool{}
		for _, o := range claimed {
			owners[o] = true
		}
		require.Greater(t, len(owners), 1, "the work was shared")
	})
}

func claimOne(t *testing.T, db handoff.DB, owner string, timeout time.Duration) handoff.Handoff {
	t.Helper()
	got, err := handoff.Claim(context.Background(), db, 1, owner, timeout)
	require.NoError(t, err)
	require.Len(t, got, 1)
	return got[0]
}

func TestTransitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("Complete", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewDB(t)
		enqueueN(t, db.Pool, 1)
		h := claimOne(t, db.Pool, "a", time.Minute)
		// Completing inside a rolled-back transaction changes nothing.
		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		require.NoError(t, handoff.Complete(ctx, tx, h.Lease(), handoff.OutcomeDispatched))
		require.NoError(t, tx.Rollback(ctx))
		cur, err := handoff.Get(ctx, db.Pool, h.ID)
		require.NoError(t, err)
		require.Equal(t, handoff.StatusClaimed, cur.Status)

		require.NoError(t, handoff.Complete(ctx, db.Pool, h.Lease(), handoff.OutcomeDispatched))
		cur, err = handoff.Get(ctx, db.Pool, h.ID)
		require.NoError(t, err)
		require.Equal(t, handoff.StatusDone, cur.Status)
		require.Equal(t, handoff.OutcomeDispatched, cur.Outcome)
		require.Empty(t, cur.ClaimedBy)
		require.False(t, cur.FinishedAt.IsZero())
		require.ErrorIs(t, handoff.Complete(ctx, db.Pool, h.Lease(), handoff.OutcomeDispatched), handoff.ErrLeaseLost, "twice")
		got, err := handoff.Claim(ctx, db.Pool, 10, "b", time.Minute)
		require.NoError(t, err)
		require.Empty(t, got, "done rows are never claimed again")
	})

	t.Run("LeaseLostAfterRescue", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewDB(t)
		enqueueN(t, db.Pool, 1)
		old := claimOne(t, db.Pool, "a", time.Millisecond)
		require.Eventually(t, func() bool {
			r, err := handoff.Rescue(ctx, db.Pool, 0)
			require.NoError(t, err)
			return len(r.Requeued) == 1
		}, 5*time.Second, 5*time.Millisecond)
		cur, err := handoff.Get(ctx, db.Pool, old.ID)
		require.NoError(t, err)
		require.Equal(t, handoff.StatusPending, cur.Status)
		require.Equal(t, 1, cur.ConsecutiveErrors)
		require.Contains(t, cur.LastError, "claim by a expired")

		// The same owner claiming again gets a new lease: the old one is dead.
		again := claimOne(t, db.Pool, "a", time.Minute)
		require.Equal(t, 2, again.Attempts)
		for name, op := range map[string]func(handoff.Lease) error{
			"complete": func(l handoff.Lease) error { return handoff.Complete(ctx, db.Pool, l, handoff.OutcomeDispatched) },
			"park": func(l handoff.Lease) error {
				return handoff.Park(ctx, db.Pool, l, time.Minute, handoff.ParkUnroutable, "x")
			},
			"fail": func(l handoff.Lease) error { return handoff.Fail(ctx, db.Pool, l, "x") },
			"retry": func(l handoff.Lease) error {
				_, err := handoff.Retry(ctx, db.Pool, l, 0, "x", 0)
				return err
			},
		} {
			require.ErrorIs(t, op(old.Lease()), handoff.ErrLeaseLost, name)
		}
		require.NoError(t, handoff.Complete(ctx, db.Pool, again.Lease(), handoff.OutcomeSendFailed))
	})

	t.Run("ParkedRowsWaitAndNeverStarveNewerOnes", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewDB(t)
		es := enqueueN(t, db.Pool, 2)
		first := claimOne(t, db.Pool, "a", time.Minute)
		require.Equal(t, es[0].ID, first.ID)
		require.NoError(t, handoff.Park(ctx, db.Pool, first.Lease(), time.Hour, handoff.ParkUnroutable, "no write solver"))
		cur, err := handoff.Get(ctx, db.Pool, first.ID)
		require.NoError(t, err)
		require.Equal(t, handoff.StatusParked, cur.Status)
		require.Equal(t, handoff.ParkUnroutable, cur.ParkedReason)
		require.Equal(t, "no write solver", cur.LastError)

		// The older, parked row is not due: the newer one is claimed.
		got, err := handoff.Claim(ctx, db.Pool, 10, "a", time.Minute)
		require.NoError(t, err)
		require.Equal(t, []int64{es[1].ID}, ids(got))
		require.NoError(t, handoff.Complete(ctx, db.Pool, got[0].Lease(), handoff.OutcomeDispatched))

		// Parked with no delay, a parked row is due again, behind rows
		// that became due before it.
		newer := enqueueN(t, db.Pool, 1)
		n, err := handoff.WakeParked(ctx, db.Pool, handoff.ParkUnroutable)
		require.NoError(t, err)
		require.Equal(t, int64(1), n)
		n, err = handoff.WakeParked(ctx, db.Pool, handoff.ParkSuperseded)
		require.NoError(t, err)
		require.Zero(t, n)
		got, err = handoff.Claim(ctx, db.Pool, 1, "a", time.Minute)
		require.NoError(t, err)
		require.Equal(t, []int64{newer[0].ID}, ids(got), "the row due first is claimed first")
		got, err = handoff.Claim(ctx, db.Pool, 1, "a", time.Minute)
		require.NoError(t, err)
		require.Equal(t, []int64{first.ID}, ids(got))
		require.Equal(t, 2, got[0].Attempts)
		require.Empty(t, got[0].ParkedReason)
	})

	t.Run("RetryThenFail", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewDB(t)
		enqueueN(t, db.Pool, 1)
		h := claimOne(t, db.Pool, "a", time.Minute)
		st, err := handoff.Retry(ctx, db.Pool, h.Lease(), time.Hour, "db down", 2)
		require.NoError(t, err)
		require.Equal(t, handoff.StatusPending, st)
		got, err := handoff.Claim(ctx, db.Pool, 1, "a", time.Minute)
		require.NoError(t, err)
		require.Empty(t, got, "not due before the retry delay")

		_, err = db.Pool.Exec(ctx, `UPDATE handoffs SET next_attempt_at = now()`)
		require.NoError(t, err)
		h = claimOne(t, db.Pool, "a", time.Minute)
		st, err = handoff.Retry(ctx, db.Pool, h.Lease(), 0, "db down again", 2)
		require.NoError(t, err)
		require.Equal(t, handoff.StatusFailed, st)
		cur, err := handoff.Get(ctx, db.Pool, h.ID)
		require.NoError(t, err)
		require.Equal(t, handoff.StatusFailed, cur.Status)
		require.Equal(t, "db down again", cur.LastError)
		require.Equal(t, 2, cur.ConsecutiveErrors)
		got, err = handoff.Claim(ctx, db.Pool, 1, "a", time.Minute)
		require.NoError(t, err)
		require.Empty(t, got, "failed rows are never claimed")
	})

	t.Run("Release", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewDB(t)
		enqueueN(t, db.Pool, 1)
		h := claimOne(t, db.Pool, "a", time.Hour)
		require.NoError(t, handoff.Release(ctx, db.Pool, h.Lease()))
		cur, err := handoff.Get(ctx, db.Pool, h.ID)
		require.NoError(t, err)
		require.Equal(t, handoff.StatusPending, cur.Status)
		require.Zero(t, cur.ConsecutiveErrors, "a release is not an error")
		require.ErrorIs(t, handoff.Release(ctx, db.Pool, h.Lease()), handoff.ErrLeaseLost)
		again := claimOne(t, db.Pool, "b", time.Minute)
		require.Equal(t, h.ID, again.ID, "due at once")
	})

	t.Run("Fail", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewDB(t)
		enqueueN(t, db.Pool, 1)
		h := claimOne(t, db.Pool, "a", time.Minute)
		require.NoError(t, handoff.Fail(ctx, db.Pool, h.Lease(), "poison"))
		cur, err := handoff.Get(ctx, db.Pool, h.ID)
		require.NoError(t, err)
		require.Equal(t, handoff.StatusFailed, cur.Status)
		require.Equal(t, "poison", cur.LastError)
	})

	t.Run("ExtendKeepsALiveClaim", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewDB(t)
		enqueueN(t, db.Pool, 2)
		a := claimOne(t, db.Pool, "a", 50*time.Millisecond)
		b := claimOne(t, db.Pool, "b", 50*time.Millisecond)
		n, err := handoff.Extend(ctx, db.Pool, "a", time.Hour)
		require.NoError(t, err)
		require.Equal(t, int64(1), n)
		require.Eventually(t, func() bool {
			r, err := handoff.Rescue(ctx, db.Pool, 0)
			require.NoError(t, err)
			require.NotContains(t, r.Requeued, a.ID, "an extended claim is not rescued")
			return len(r.Requeued) == 1 && r.Requeued[0] == b.ID
		}, 5*time.Second, 5*time.Millisecond)
		require.NoError(t, handoff.Complete(ctx, db.Pool, a.Lease(), handoff.OutcomeDispatched))
	})

	t.Run("RescueFailsAfterMaxErrors", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewDB(t)
		enqueueN(t, db.Pool, 1)
		for round := 1; round <= 2; round++ {
			h := claimOne(t, db.Pool, "a", time.Millisecond)
			require.Equal(t, round, h.Attempts)
			var r handoff.Rescued
			require.Eventually(t, func() bool {
				var err error
				r, err = handoff.Rescue(ctx, db.Pool, 2)
				require.NoError(t, err)
				return len(r.Requeued)+len(r.Failed) == 1
			}, 5*time.Second, 5*time.Millisecond)
			if round == 1 {
				require.Equal(t, []int64{h.ID}, r.Requeued)
			} else {
				require.Equal(t, []int64{h.ID}, r.Failed)
			}
		}
	})

	t.Run("Requeue", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewDB(t)
		es := enqueueN(t, db.Pool, 3)
		parked := claimOne(t, db.Pool, "a", time.Minute)
		require.NoError(t, handoff.Park(ctx, db.Pool, parked.Lease(), time.Hour, handoff.ParkSuperseded, "resolved"))
		failed := claimOne(t, db.Pool, "a", time.Minute)
		require.NoError(t, handoff.Fail(ctx, db.Pool, failed.Lease(), "x"))

		_, err := handoff.Requeue(ctx, db.Pool, es[2].ID)
		require.ErrorIs(t, err, handoff.ErrNotRequeueable, "pending")
		_, err = handoff.Requeue(ctx, db.Pool, 999999)
		require.ErrorIs(t, err, handoff.ErrNotFound)

		for _, id := range []int64{parked.ID, failed.ID} {
			h, err := handoff.Requeue(ctx, db.Pool, id)
			require.NoError(t, err)
			require.Equal(t, handoff.StatusPending, h.Status)
			require.Empty(t, h.ParkedReason)
			require.True(t, h.FinishedAt.IsZero())
		}
		got, err := handoff.Claim(ctx, db.Pool, 10, "a", time.Minute)
		require.NoError(t, err)
		require.ElementsMatch(t, []int64{es[0].ID, es[1].ID, es[2].ID}, ids(got))
		require.NoError(t, handoff.Complete(ctx, db.Pool, got[0].Lease(), handoff.OutcomeDispatched))
		_, err = handoff.Requeue(ctx, db.Pool, got[0].ID)
		require.ErrorIs(t, err, handoff.ErrNotRequeueable, "done")
	})
}

func TestListAndStats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgdbtest.NewDB(t)
	es := enqueueN(t, db.Pool, 5)
	h := claimOne(t, db.Pool, "a", time.Minute)
	require.NoError(t, handoff.Complete(ctx, db.Pool, h.Lease(), handoff.OutcomeDispatched))
	h = claimOne(t, db.Pool, "a", time.Minute)
	require.NoError(t, handoff.Park(ctx, db.Pool, h.Lease(), time.Hour, handoff.ParkUnroutable, "x"))
	claimOne(t, db.Pool, "a", time.Minute)

	all, err := handoff.List(ctx, db.Pool, handoff.ListOptions{})
	require.NoError(t, err)
	require.Len(t, all, 5)
	page, err := handoff.List(ctx, db.Pool, handoff.ListOptions{AfterID: es[1].ID, Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []int64{es[2].ID, es[3].ID}, ids(page))
	pending, err := handoff.List(ctx, db.Pool, handoff.ListOptions{Statuses: []handoff.Status{handoff.StatusPending, handoff.StatusParked}})
	require.NoError(t, err)
	require.Equal(t, []int64{es[1].ID, es[3].ID, es[4].ID}, ids(pending))
	one, err := handoff.List(ctx, db.Pool, handoff.ListOptions{DisputeID: "d-3"})
	require.NoError(t, err)
	require.Equal(t, []int64{es[3].ID}, ids(one), "only the dispute's handoffs")
	none, err := handoff.List(ctx, db.Pool, handoff.ListOptions{DisputeID: "d-none"})
	require.NoError(t, err)
	require.Empty(t, none)

	st, err := handoff.QueueStats(ctx, db.Pool)
	require.NoError(t, err)
	require.Equal(t, map[handoff.Status]int64{
		handoff.StatusPending: 2, handoff.StatusClaimed: 1, handoff.StatusParked: 1, handoff.StatusFailed: 0,
	}, st.ByStatus)
	require.Equal(t, int64(2), st.Due)
	require.Greater(t, st.OldestDueAge, time.Duration(0))

	next, err := handoff.NextDueIn(ctx, db.Pool)
	require.NoError(t, err)
	require.Zero(t, next, "pending rows are due now")
	for range 2 {
		h := claimOne(t, db.Pool, "a", time.Minute)
		require.NoError(t, handoff.Complete(ctx, db.Pool, h.Lease(), handoff.OutcomeDispatched))
	}
	next, err = handoff.NextDueIn(ctx, db.Pool)
	require.NoError(t, err)
	require.InDelta(t, time.Minute.Seconds(), next.Seconds(), 10, "the claim deadline comes first")
}

func TestSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgdbtest.NewDB(t)
	seedSession(t, db.Pool, "d-1", "s-1")
	e := enqueue(t, db.Pool, samplePackage())

	_, err := db.Pool.Exec(ctx, `UPDATE handoffs SET status = 'bogus'`)
	require.ErrorContains(t, err, "check constraint")
	_, err = db.Pool.Exec(ctx, `UPDATE handoffs SET status = 'claimed'`)
	require.ErrorContains(t, err, "handoffs_claim_state", "claimed needs an owner and a deadline")
	_, err = db.Pool.Exec(ctx, `UPDATE handoffs SET status = 'done'`)
	require.ErrorContains(t, err, "handoffs_done_state", "done needs an outcome")
	_, err = db.Pool.Exec(ctx, `INSERT INTO handoffs (handoff_event_id, payload_json) VALUES ($1, '{}')`, e.HandoffEventID)
	require.ErrorContains(t, err, "duplicate key", "one queue row per handoff event")

	insert := func(id, status string) error {
		_, err := db.Pool.Exec(ctx, `INSERT INTO escalation_dispatches
(dispatch_id, dispute_id, session_id, handoff_event_id, target_solver, dispatched_at, created_at, status, fallback_broadcast)
VALUES ($1, 'd-1', NULL, $2, 'pk', 1, 1, $3, 0)`, id, e.HandoffEventID, status)
		return err
	}
	require.ErrorContains(t, insert("x0", "bogus"), "check constraint")
	require.NoError(t, insert("x1", "dispatched"))
	err = insert("x2", "send_failed")
	require.Error(t, err, "a second dispatch for the same handoff is rejected")
	var pgErr interface{ SQLState() string }
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "23505", pgErr.SQLState())

	var unique bool
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT indisunique FROM pg_index WHERE indexrelid = 'idx_escalation_dispatches_handoff'::regclass`).Scan(&unique))
	require.True(t, unique)
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT NOT indisunique FROM pg_index WHERE indexrelid = 'idx_escalation_dispatches_dispute'::regclass`).Scan(&unique))
	require.True(t, unique)
}
