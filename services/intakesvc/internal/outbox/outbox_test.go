package outbox_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/logging/logtest"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/testkit/fakesolver"
	"github.com/serbero/serbero/pkg/testkit/relay"
	"github.com/serbero/serbero/services/intakesvc/internal/changefeed"
	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/intake"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/message"
	"github.com/serbero/serbero/services/intakesvc/internal/metrics"
	"github.com/serbero/serbero/services/intakesvc/internal/outbox"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

const wait = 15 * time.Second

// world is a database, the in-process relay and a real relaygw on them.
type world struct {
	db    *pgdbtest.DB
	st    *store.Store
	relay *relay.Relay
	gw    *relaygwtest.Harness
}

func newWorld(t *testing.T) *world {
	t.Helper()
	db := pgdbtest.NewDB(t)
	r := relay.Start(t)
	gw := relaygwtest.Start(t, relaygwtest.Options{DB: db, Relay: r, Logger: nilLogger()})
	return &world{db: db, st: store.New(db.Pool), relay: r, gw: gw}
}

func nilLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// run starts an outbox until the test ends.
func (w *world) run(t *testing.T, cfg outbox.Config) (*outbox.Outbox, *metrics.Metrics, *changefeed.Broadcast, *logtest.Buffer) {
	t.Helper()
	m := metrics.New(prometheus.NewRegistry())
	changes := changefeed.NewBroadcast()
	log, logs := logtest.New()
	out := outbox.New(cfg, outbox.Deps{Store: w.st, Relaygw: w.gw.Client, Metrics: m, Changes: changes, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		out.Run(ctx)
	}()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			<-done
		})
		if t.Failed() {
			t.Logf("outbox logs:\n%s", logs.String())
		}
	})
	return out, m, changes, logs
}

// open records a new dispute for solvers and hands its leased DMs to out.
func (w *world) open(t *testing.T, out *outbox.Outbox, d string, solvers ...string) intake.Applied {
	t.Helper()
	rev := event.Revision{EventID: "e-" + d, Pubkey: "m", CreatedAt: 1_800_000_000, DisputeID: d, Status: "initiated",
		Initiator: "buyer", InitiatorRaw: "buyer"}
	res, err := intake.Apply(context.Background(), w.st, rev, intake.Input{Solvers: solvers, Now: time.Now(), Lease: out.Lease()})
	require.NoError(t, err)
	out.Ready(context.Background(), res.Claimed)
	return res
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func waitCount(t *testing.T, pool *pgxpool.Pool, n int, sql string, args ...any) {
	t.Helper()
	require.Eventually(t, func() bool { return count(t, pool, sql, args...) == n }, wait, 10*time.Millisecond, "want %d from %q", n, sql)
}

// A delivered DM reaches its solver once, is recorded as sent with the
// reference's body, and moves the new dispute to notified (waking the
// change-feed readers).
func TestDeliveredDMIsRecordedAndMovesTheDispute(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	solver := fakesolver.Start(t, w.relay.URL())
	out, m, changes, logs := w.run(t, outbox.Config{PollInterval: 50 * time.Millisecond})
	woken := changes.C()
	w.open(t, out, "d-ok", solver.Pubkey())
	msgs := solver.WaitFor(1, wait)
	require.Equal(t, message.Initial("d-ok", "buyer", 1_800_000_000), msgs[0].Body)
	require.Equal(t, w.gw.Serbero.PublicKey(), msgs[0].From)
	waitCount(t, w.db.Pool, 1, `SELECT count(*) FROM disputes WHERE dispute_id = 'd-ok' AND lifecycle_state = 'notified'`)
	select {
	case <-woken:
	case <-time.After(wait):
		t.Fatal("the move was not announced to change-feed readers")
	}
	require.Equal(t, 1, count(t, w.db.Pool, `SELECT count(*) FROM notifications WHERE dispute_id = 'd-ok' AND status = 'sent' AND error_message IS NULL`))
	require.Equal(t, 1.0, testutil.ToFloat64(m.NotificationsSent.WithLabelValues("initial")))
	require.Len(t, logs.Find("notification_sent"), 1)
	solver.AssertNoMore(300 * time.Millisecond)
}

// A solver no DM can be addressed to gets one failed row with the
// reference's error text, never retried; the other solver is notified.
func TestInvalidRecipientFailsOnceWithoutRetry(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	solver := fakesolver.Start(t, w.relay.URL())
	out, m, _, _ := w.run(t, outbox.Config{PollInterval: 50 * time.Millisecond, RetryBase: time.Millisecond})
	const offCurve = "0000000000000000000000000000000000000000000000000000000000000005"
	w.open(t, out, "d-bad", offCurve, solver.Pubkey())
	solver.WaitFor(1, wait)
	waitCount(t, w.db.Pool, 0, `SELECT count(*) FROM intake_notification_jobs WHERE done_at IS NULL`)
	var msg string
	require.NoError(t, w.db.Pool.QueryRow(context.Background(), `SELECT error_message FROM notifications
		WHERE solver_pubkey = $1 AND status = 'failed'`, offCurve).Scan(&msg))
	require.Regexp(t, `^invalid pubkey: `, msg)
	require.Equal(t, 1, count(t, w.db.Pool, `SELECT count(*) FROM notifications WHERE solver_pubkey = $1`, offCurve))
	require.Equal(t, 1.0, testutil.ToFloat64(m.NotificationsFailed.WithLabelValues("initial")))
}

// While no relay accepts the gift wrap the DM is retried under the same
// idempotency key (one failed row per attempt); once the relay accepts,
// the solver receives it exactly once.
func TestUndeliveredDMIsRetriedUnderTheSameKey(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	solver := fakesolver.Start(t, w.relay.URL())
	w.relay.SetFaults(relay.Faults{RejectIncoming: relay.Kinds(1059)})
	out, _, _, logs := w.run(t, outbox.Config{PollInterval: 50 * time.Millisecond, RetryBase: 20 * time.Millisecond, SendAttempts: 50})
	res := w.open(t, out, "d-retry", solver.Pubkey())
	require.Eventually(t, func() bool {
		return count(t, w.db.Pool, `SELECT count(*) FROM notifications WHERE dispute_id = 'd-retry' AND status = 'failed'`) >= 2
	}, wait, 10*time.Millisecond)
	require.Equal(t, "new", stateOf(t, w, "d-retry"))
	w.relay.ClearFaults()
	solver.WaitFor(1, wait)
	waitCount(t, w.db.Pool, 1, `SELECT count(*) FROM notifications WHERE dispute_id = 'd-retry' AND status = 'sent'`)
	solver.AssertNoMore(500 * time.Millisecond)
	var attempts int
	var key string
	require.NoError(t, w.db.Pool.QueryRow(context.Background(), `SELECT attempts, idempotency_key FROM intake_notification_jobs WHERE id = $1`,
		res.JobIDs[0]).Scan(&attempts, &key))
	require.GreaterOrEqual(t, attempts, 3)
	require.Equal(t, res.Claimed[0].IdempotencyKey, key)
	var msg string
	require.NoError(t, w.db.Pool.QueryRow(context.Background(), `SELECT min(error_message) FROM notifications WHERE dispute_id = 'd-retry' AND status = 'failed'`).Scan(&msg))
	require.Regexp(t, `^notification error: gift-wrap send failed: no relay accepted the gift wrap`, msg)
	require.NotEmpty(t, logs.Find("notification_failed"))
}

// Leased DMs no sender took are handed back when the outbox stops, so any
// replica sends them at once rather than after the lease.
func TestStoppingHandsLeasedDMsBack(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	st := store.New(db.Pool)
	m := metrics.New(nil)
	out := outbox.New(outbox.Config{}, outbox.Deps{Store: st, Metrics: m}) // never runs
	rev := event.Revision{EventID: "e1", Pubkey: "m", CreatedAt: 1, DisputeID: "d", Status: "initiated", Initiator: "buyer"}
	res, err := intake.Apply(context.Background(), st, rev, intake.Input{Solvers: []string{"s1", "s2"}, Now: time.Now(), Lease: time.Hour})
	require.NoError(t, err)
	out.Ready(context.Background(), res.Claimed)
	require.Equal(t, 2, count(t, db.Pool, `SELECT count(*) FROM intake_notification_jobs WHERE claimed_until > now()`))
	out.ReleaseWaiting(context.Background())
	require.Equal(t, 0, count(t, db.Pool, `SELECT count(*) FROM intake_notification_jobs WHERE claimed_until IS NOT NULL`))
	due, err := st.ClaimDueJobs(context.Background(), 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, due, 2, "claimable at once")
	require.Equal(t, lifecycle.New, due[0].State)
}

func stateOf(t *testing.T, w *world, d string) string {
	t.Helper()
	var s string
	require.NoError(t, w.db.Pool.QueryRow(context.Background(), `SELECT lifecycle_state FROM disputes WHERE dispute_id = $1`, d).Scan(&s))
	return s
}
