package intakesvc_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/testkit/relay"
	"github.com/serbero/serbero/services/intakesvc"
)

// offCurve is 64 hex characters that are not the x coordinate of a
// secp256k1 point: well formed, yet no DM can ever be addressed to it.
const offCurve = "0000000000000000000000000000000000000000000000000000000000000005"

// A new dispute whose only solvers have invalid pubkeys gets the
// reference's failed row per solver once (docs/intake.md#the-outbox), then stays
// new: later ticks do not try those solvers again, so the notifications
// table does not grow by one failed row per solver per tick. Each invalid
// solver is reported once at startup.
func TestOnlyInvalidSolversAreNotRetriedEveryTick(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.config("not-a-real-hex-pubkey", offCurve)
	cfg.RenotifyEvery = 1 * time.Second
	s := e.start(cfg)

	const d = "d-only-invalid-solvers"
	e.open(d, "buyer")
	e.waitCount(2, `SELECT count(*) FROM notifications WHERE dispute_id = $1 AND status = 'failed'`, d)
	e.waitCount(0, `SELECT count(*) FROM intake_notification_jobs WHERE done_at IS NULL`)

	// Several ticks pass (each one a chance to retry the initial DMs).
	ticks := countOf(s.logs.String(), "renotification_tick")
	require.Eventually(t, func() bool { return countOf(s.logs.String(), "renotification_tick") >= ticks+3 }, wait, 50*time.Millisecond)
	e.waitCount(0, `SELECT count(*) FROM intake_notification_jobs WHERE done_at IS NULL`)

	for _, pk := range []string{"not-a-real-hex-pubkey", offCurve} {
		var n int
		var msg string
		require.NoError(t, e.db.Pool.QueryRow(e.ctx, `SELECT count(*), min(error_message) FROM notifications
			WHERE dispute_id = $1 AND solver_pubkey = $2 AND status = 'failed' AND notif_type = 'initial'`, d, pk).Scan(&n, &msg))
		require.Equal(t, 1, n, "one failed row for solver %s", pk)
		require.Regexp(t, `^invalid pubkey: `, msg)
	}
	require.Equal(t, 2, e.count(`SELECT count(*) FROM notifications`))
	require.Equal(t, 2, e.count(`SELECT count(*) FROM intake_notification_jobs`))
	require.Equal(t, "new", e.state(d), "nobody could be reached")
	require.Zero(t, testutil.ToFloat64(metric(t, s, "serbero_intakesvc_notification_batches_claimed_total", "notif_type", "initial")))

	// Startup named each invalid solver once, at WARN or above.
	recs := s.logs.Find("invalid solver pubkey: this solver cannot be notified until the configuration is fixed")
	require.Len(t, recs, 2, "logs:\n%s", s.logs.String())
	for i, pk := range []string{"not-a-real-hex-pubkey", offCurve} {
		require.Equal(t, pk, recs[i].Str("solver"))
		require.Contains(t, []string{"ERROR", "WARN"}, recs[i].Level(), recs[i])
	}
}

// With one valid and one invalid solver, an initial notification that
// reached nobody (the relay refused every gift wrap) is retried by later
// ticks for the valid solver only, until it is delivered; the invalid
// solver keeps its single failed row.
func TestInitialRetrySkipsInvalidSolverButRetriesValidOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ss := e.solvers(1)
	cfg := e.config(ss[0].Pubkey(), "not-a-real-hex-pubkey")
	cfg.RenotifyEvery = 1 * time.Second
	e.relay.SetFaults(relay.Faults{RejectIncoming: relay.Kinds(1059)})
	e.start(cfg, func(o *options) {
		o.tuning = intakesvc.Tuning{PollInterval: 100 * time.Millisecond, SendAttempts: 1}
	})

	const d = "d-mixed-solvers-outage"
	ev := e.open(d, "seller")
	// The first attempt and at least one retry of the valid solver fail.
	e.waitCountAtLeast(2, `SELECT count(*) FROM notifications WHERE dispute_id = 'd-mixed-solvers-outage'
		AND solver_pubkey = '`+ss[0].Pubkey()+`' AND status = 'failed' AND notif_type = 'initial'`, wait)
	require.Equal(t, "new", e.state(d))
	e.relay.ClearFaults()

	require.Equal(t, initialBody(d, "seller", ev.CreatedAt), ss[0].WaitFor(1, wait)[0].Body)
	e.waitState(d, "notified")
	e.waitCount(1, `SELECT count(*) FROM notifications WHERE dispute_id = $1 AND solver_pubkey = $2 AND status = 'sent'`, d, ss[0].Pubkey())
	e.waitCount(0, `SELECT count(*) FROM intake_notification_jobs WHERE done_at IS NULL`)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM notifications WHERE dispute_id = $1 AND solver_pubkey = 'not-a-real-hex-pubkey'`, d),
		"the invalid solver's first failed row only")
	ss[0].AssertNoMore(300 * time.Millisecond)
}
