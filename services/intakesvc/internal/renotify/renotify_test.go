package renotify_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/logging/logtest"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/intake"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/message"
	"github.com/serbero/serbero/services/intakesvc/internal/metrics"
	"github.com/serbero/serbero/services/intakesvc/internal/outbox"
	"github.com/serbero/serbero/services/intakesvc/internal/renotify"
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

func TestApplyRevisionNoSolvers(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	res, err := apply(context.Background(), s, rev("d-1", "e1", 100, "initiated", 1), nil, t0)
	require.NoError(t, err)
	require.Equal(t, route.Detected, res.Decision.Outcome)
	require.Empty(t, res.JobIDs)
	require.Equal(t, 0, count(t, db.Pool, `SELECT count(*) FROM intake_notification_jobs`))
	due, err := claimDue(context.Background(), s, t0.Add(time.Hour), time.Second, nil, nil, 10)
	require.NoError(t, err)
	require.Empty(t, due)
}

func TestInitialThatReachedNobodyIsRetried(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	res, err := apply(ctx, s, rev("d", "e1", 100, "initiated", 1), []string{"s1"}, t0)
	require.NoError(t, err)
	// Not due while the first batch is pending.
	due, err := claimDue(ctx, s, t0.Add(time.Hour), 300*time.Second, []string{"s1"}, []string{"s1"}, 10)
	require.NoError(t, err)
	require.Empty(t, due)
	jobs := claimAll(t, s, res.JobIDs)
	cr, err := s.CompleteJob(ctx, jobs[0], store.OutcomeFailed, "notification error: gift-wrap send failed: x", t0, 0)
	require.NoError(t, err)
	require.True(t, cr.BatchReachedNobody)

	// Not retried when the caller says not to (no solvers).
	due, err = claimDue(ctx, s, t0.Add(time.Second), 300*time.Second, []string{"s1"}, nil, 10)
	require.NoError(t, err)
	require.Empty(t, due)
	due, err = claimDue(ctx, s, t0.Add(time.Second), 300*time.Second, []string{"s1"}, []string{"s1"}, 10)
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

func TestClaimDueSelectsOnlyUnattended(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	sv := []string{"s1"}
	notify(t, s, "old", sv, t0)
	notify(t, s, "fresh", sv, t0.Add(250*time.Second))
	notify(t, s, "taken", sv, t0)
	_, err := apply(ctx, s, rev("taken", "e-taken-2", t0.Unix(), "in-progress", 0), sv, t0)
	require.NoError(t, err)

	now := t0.Add(301 * time.Second)
	due, err := claimDue(ctx, s, now, 300*time.Second, sv, sv, 10)
	require.NoError(t, err)
	require.Len(t, due, 1)
	require.Equal(t, store.DueBatch{DisputeID: "old", NotifType: "re-notification", Period: 1, JobIDs: due[0].JobIDs}, due[0])
	jobs := claimAll(t, s, due[0].JobIDs)
	require.Equal(t, message.Renotification("old", 311), *jobs[0].Body)
	require.Equal(t, message.IdempotencyKey("re-notification", 1, "old", "s1"), jobs[0].IdempotencyKey)

	// Exactly at the cutoff is not due (strict <).
	due, err = claimDue(ctx, s, t0.Add(550*time.Second), 300*time.Second, sv, sv, 10)
	require.NoError(t, err)
	require.Empty(t, due)

	// The period reached nobody: the next tick starts the next period, with
	// new keys and that tick's time_elapsed_seconds (relaygw would refuse
	// period 1's keys with another body).
	_, err = s.CompleteJob(ctx, jobs[0], store.OutcomeFailed, "notification error: gift-wrap send failed: x", now, 0)
	require.NoError(t, err)
	due, err = claimDue(ctx, s, now.Add(time.Second), 300*time.Second, sv, sv, 10)
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
	due, err = claimDue(ctx, s, now.Add(302*time.Second), 300*time.Second, sv, sv, 10)
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
				b, err := claimDue(context.Background(), r, t0.Add(301*time.Second), 300*time.Second, sv, sv, 3)
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = append(got[i], b...)
				for len(b) > 0 {
					b, err = claimDue(context.Background(), r, t0.Add(301*time.Second), 300*time.Second, sv, sv, 3)
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

// apply is intake.Apply with the solvers and clock of a test.
func apply(ctx context.Context, s *store.Store, r event.Revision, solvers []string, now time.Time) (intake.Applied, error) {
	return intake.Apply(ctx, s, r, intake.Input{Solvers: solvers, Now: now})
}

// claimDue is renotify.Claim: re-notifications to solvers after after,
// initial retries to retry.
func claimDue(ctx context.Context, s *store.Store, now time.Time, after time.Duration, solvers, retry []string, limit int) ([]store.DueBatch, error) {
	return renotify.Claim(ctx, s, now, renotify.Policy{After: after, Solvers: solvers, Reachable: retry}, limit)
}

// The timer's first scan is one interval after start (as the reference's
// first, immediate tick is consumed), and each tick claims what is due on
// the timer's clock.
func TestTimerTicksOnItsClock(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	sv := []string{"s1"}
	notify(t, s, "old", sv, t0)
	clock := clockwork.NewFakeClockAt(t0.Add(301 * time.Second))
	m := metrics.New(prometheus.NewRegistry())
	log, logs := logtest.New()
	out := outbox.New(outbox.Config{}, outbox.Deps{Store: s, Metrics: m})
	timer := renotify.New(renotify.Policy{After: 300 * time.Second, Solvers: sv, Reachable: sv}, 0,
		renotify.Deps{Store: s, Outbox: out, Metrics: m, Logger: log, Clock: clock})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		timer.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	require.NoError(t, clock.BlockUntilContext(ctx, 1))
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM intake_notification_jobs WHERE notif_type = 're-notification'`),
		"nothing before the first interval")
	clock.Advance(time.Second) // an interval of 0 means 1 s
	require.Eventually(t, func() bool {
		return count(t, db.Pool, `SELECT count(*) FROM intake_notification_jobs WHERE notif_type = 're-notification'`) == 1
	}, 15*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return len(logs.Find("renotification_tick: scanned for unattended disputes")) == 1 },
		15*time.Second, 5*time.Millisecond)
	require.Equal(t, 1.0, testutil.ToFloat64(m.RenotificationTicks))
	require.Equal(t, 1.0, testutil.ToFloat64(m.RenotificationBatches.WithLabelValues("re-notification")))
	var at int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT batch_at FROM intake_notification_jobs WHERE notif_type = 're-notification'`).Scan(&at))
	require.Equal(t, t0.Unix()+302, at, "the batch carries the tick's clock")
}
