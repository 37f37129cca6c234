package intakesvc_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	"github.com/serbero/serbero/pkg/testkit/relay"
	"github.com/serbero/serbero/services/intakesvc"
)

// A re-notification period that reached nobody (the relay refused every
// gift wrap) is followed, once the relay accepts again, by a re-notification
// the solver receives, with the elapsed time of the tick that sent it; no
// attempt is refused by relaygw for reusing an idempotency key with another
// body, and failed rows stop once the relay is back.
func TestRenotificationAfterAPeriodThatReachedNobody(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ss := e.solvers(1)
	cfg := e.config(pubkeys(ss)...)
	cfg.RenotifyAfter = 1 * time.Second
	cfg.RenotifyEvery = 1 * time.Second
	s := e.start(cfg, func(o *options) {
		o.tuning = intakesvc.Tuning{PollInterval: 100 * time.Millisecond, SendAttempts: 2, RetryBase: 50 * time.Millisecond}
	})

	const d = "d-renotify-outage"
	ev := e.open(d, "buyer")
	ss[0].WaitFor(1, wait)
	e.waitState(d, "notified")

	// The relay refuses every gift wrap until a re-notification period has
	// failed for good (each of its DMs out of attempts).
	e.relay.SetFaults(relay.Faults{RejectIncoming: relay.Kinds(1059)})
	e.waitCountAtLeast(1, `SELECT count(*) FROM intake_notification_jobs
		WHERE notif_type = 're-notification' AND outcome = 'failed'`, wait)
	var failedAt int64
	require.NoError(t, e.db.Pool.QueryRow(e.ctx, `SELECT max(batch_at) FROM intake_notification_jobs
		WHERE notif_type = 're-notification' AND outcome = 'failed'`).Scan(&failedAt))
	e.relay.ClearFaults()

	// The solver gets the re-notification, well formed, counting the
	// elapsed time from the tick that sent it (after the failed period).
	msg := ss[0].WaitFor(2, wait)[1]
	const prefix = "Mostro dispute is still unattended.\ndispute_id: " + d + "\nlifecycle_state: notified\ntime_elapsed_seconds: "
	require.True(t, strings.HasPrefix(msg.Body, prefix), "body %q", msg.Body)
	elapsed, err := strconv.ParseInt(strings.TrimPrefix(msg.Body, prefix), 10, 64)
	require.NoError(t, err, "body %q", msg.Body)
	require.Equal(t, renotificationBody(d, elapsed), msg.Body)
	require.Equal(t, e.serberoPK, msg.From)
	e.waitCountAtLeast(1, `SELECT count(*) FROM notifications WHERE notif_type = 're-notification' AND status = 'sent'`, wait)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM intake_notification_jobs
		WHERE notif_type = 're-notification' AND outcome = 'sent' AND batch_at = $1`, int64(ev.CreatedAt)+elapsed),
		"the body's elapsed time is its period's clock minus the event's created_at")
	require.Greater(t, int64(ev.CreatedAt)+elapsed, failedAt, "sent by a later tick than the failed period")

	// Later ticks keep re-notifying; none fails any more.
	failed := e.count(`SELECT count(*) FROM notifications WHERE status = 'failed'`)
	ticks := countOf(s.logs.String(), "renotification_tick")
	require.Eventually(t, func() bool { return countOf(s.logs.String(), "renotification_tick") >= ticks+3 }, wait, 50*time.Millisecond)
	e.waitCountAtLeast(2, `SELECT count(*) FROM notifications WHERE notif_type = 're-notification' AND status = 'sent'`, wait)
	require.Equal(t, failed, e.count(`SELECT count(*) FROM notifications WHERE status = 'failed'`))
	require.Equal(t, 0, e.count(`SELECT count(*) FROM notifications WHERE error_message LIKE '%idempotency_key was already used%'`))
}

// An assignment DM retried after Serbero's own take was recorded between
// two attempts is sent with the body of its first attempt (relaygw refuses
// an idempotency key reused with another body), and reaches the solver once
// the relay accepts gift wraps again.
func TestAssignmentRetryAfterTakeRecordedKeepsItsBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ss := e.solvers(1)
	s := e.start(e.config(pubkeys(ss)...), func(o *options) {
		o.tuning = intakesvc.Tuning{PollInterval: 100 * time.Millisecond, SendAttempts: 20, RetryBase: 100 * time.Millisecond}
	})

	const d = "d-assign-outage"
	e.open(d, "seller")
	ss[0].WaitFor(1, wait)
	e.waitState(d, "notified")

	// The node says another solver took it while the relay refuses gift
	// wraps: the assignment DM (assigned_solver unknown) fails and waits
	// for a retry.
	e.relay.SetFaults(relay.Faults{RejectIncoming: relay.Kinds(1059)})
	e.takeOver(d)
	e.waitCountAtLeast(1, `SELECT count(*) FROM notifications WHERE notif_type = 'assignment' AND status = 'failed'`, wait)
	// Then Serbero's own take is recorded (its intent had expired).
	_, err := s.api.RecordSerberoTake(e.ctx, &intakesvcv1.RecordSerberoTakeRequest{
		DisputeId: d, Stage: intakesvcv1.TakeStage_TAKE_STAGE_SUCCEEDED,
	})
	require.NoError(t, err)
	e.waitCount(1, `SELECT count(*) FROM disputes WHERE dispute_id = $1 AND assigned_solver = $2`, d, e.serberoPK)
	e.relay.ClearFaults()

	require.Equal(t, assignmentBody(d, "unknown"), ss[0].WaitFor(2, wait)[1].Body)
	e.waitCount(1, `SELECT count(*) FROM notifications WHERE notif_type = 'assignment' AND status = 'sent'`)
	require.Equal(t, 0, e.count(`SELECT count(*) FROM notifications WHERE error_message LIKE '%idempotency_key was already used%'`))
	ss[0].AssertNoMore(300 * time.Millisecond)
}
