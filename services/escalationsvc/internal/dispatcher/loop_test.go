package dispatcher

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/handoff"
)

// run starts d.Run in the background and stops it at cleanup, failing the
// test if it does not stop within 5 s.
func run(t *testing.T, d *Dispatcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("dispatcher did not stop within 5 s")
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitDelivered waits for the next delivered DM.
func waitDelivered(t *testing.T, s *memSender, within time.Duration) string {
	t.Helper()
	select {
	case pk := <-s.delivered:
		return pk
	case <-time.After(within):
		t.Fatalf("no DM delivered within %s", within)
		return ""
	}
}

func TestLoop(t *testing.T) {
	t.Parallel()
	noPoll := func(o *Options) { o.PollInterval = time.Hour } // only NOTIFY can wake it

	t.Run("NotifyWakesItAtOnce", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		s := newMemSender()
		s.delivered = make(chan string, 10)
		e.dispute("d-1", "notified", nil)
		d := e.dispatcher(s, []config.SolverConfig{writeSolver(key(1))}, false, noPoll)
		run(t, d)
		for i := range 3 {
			start := time.Now()
			e.handoff(samplePkg("d-1", ""))
			require.Equal(t, key(1), waitDelivered(t, s, 5*time.Second), "handoff %d", i)
			t.Logf("handoff %d: commit to DM %s", i, time.Since(start))
		}
		require.Eventually(t, func() bool { return len(e.dispatches()) == 3 }, 5*time.Second, 10*time.Millisecond)
	})

	t.Run("ListenerReconnects", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		s := newMemSender()
		s.delivered = make(chan string, 10)
		e.dispute("d-1", "notified", nil)
		d := e.dispatcher(s, []config.SolverConfig{writeSolver(key(1))}, false, noPoll)
		run(t, d)
		listenerPID := func() int {
			var pid int
			err := e.pool.QueryRow(e.ctx, `SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
				ListenerApplicationName).Scan(&pid)
			require.NoError(t, err)
			return pid
		}
		var first int
		require.Eventually(t, func() bool { first = listenerPID(); return first != 0 }, 5*time.Second, 10*time.Millisecond)
		_, err := e.pool.Exec(e.ctx, `SELECT pg_terminate_backend($1)`, first)
		require.NoError(t, err)
		require.Eventually(t, func() bool { p := listenerPID(); return p != 0 && p != first }, 10*time.Second, 10*time.Millisecond,
			"the listener reconnects")
		e.handoff(samplePkg("d-1", ""))
		waitDelivered(t, s, 5*time.Second)
	})

	t.Run("PollIsTheFallback", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		s := newMemSender()
		s.delivered = make(chan string, 10)
		e.dispute("d-1", "notified", nil)
		d := e.dispatcher(s, []config.SolverConfig{writeSolver(key(1))}, false, func(o *Options) { o.PollInterval = 100 * time.Millisecond })
		run(t, d)
		// A row that arrives without a notification (as if it were lost).
		_, err := e.pool.Exec(e.ctx, `
WITH ev AS (INSERT INTO mediation_events (kind, payload_json, occurred_at) VALUES ('handoff_prepared', $1::jsonb, 1) RETURNING id)
INSERT INTO handoffs (handoff_event_id, dispute_id, payload_json) SELECT id, 'd-1', $1 FROM ev`, string(samplePkg("d-1", "").Encode()))
		require.NoError(t, err)
		waitDelivered(t, s, 5*time.Second)
	})

	t.Run("GracefulStopReturnsInterruptedHandoffsAtOnce", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		s := newMemSender()
		entered := make(chan struct{}, 1)
		s.hook = func(ctx context.Context, _ *relaygwv1.SendDirectMessageRequest) error {
			entered <- struct{}{}
			<-ctx.Done() // relaygw hangs until the shutdown
			return status.FromContextError(ctx.Err()).Err()
		}
		e.dispute("d-1", "notified", nil)
		h := e.handoff(samplePkg("d-1", ""))
		d := e.dispatcher(s, []config.SolverConfig{writeSolver(key(1))}, false, noPoll, func(o *Options) {
			o.ClaimTimeout = time.Hour
			o.RetryBackoff = nil
		})
		stop := run(t, d)
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatal("no send attempted")
		}
		stop()
		q := e.queueRow(h.ID)
		require.Equal(t, handoff.StatusPending, q.Status, "released, not left to its one-hour claim")
		require.WithinDuration(t, time.Now(), q.NextAttemptAt, 5*time.Second, "due at once")
		require.Zero(t, q.ConsecutiveErrors, "a shutdown is not an error of the handoff")
		require.Empty(t, e.dispatches())
	})

	t.Run("HeartbeatKeepsASlowClaim", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		slow := newMemSender()
		release := make(chan struct{})
		entered := make(chan struct{}, 1)
		slow.hook = func(context.Context, *relaygwv1.SendDirectMessageRequest) error {
			entered <- struct{}{}
			<-release
			return nil
		}
		e.dispute("d-1", "notified", nil)
		h := e.handoff(samplePkg("d-1", ""))
		// Long enough that a heartbeat (every claim/3) delayed by a loaded
		// machine still lands in time; the loop below spans four claims.
		const claim = time.Second
		d := e.dispatcher(slow, []config.SolverConfig{writeSolver(key(1))}, false, noPoll, func(o *Options) { o.ClaimTimeout = claim })
		run(t, d)
		<-entered
		other := e.dispatcher(newMemSender(), []config.SolverConfig{writeSolver(key(1))}, false)
		// Polled here rather than with require.Never, whose condition runs
		// in a goroutine it does not wait for (a cycle could outlive it).
		for deadline := time.Now().Add(4 * claim); time.Now().Before(deadline); {
			require.Zero(t, e.cycle(other), "a live replica's claim is extended, never rescued")
		}
		close(release)
		require.Eventually(t, func() bool { return e.queueRow(h.ID).Status == handoff.StatusDone }, 5*time.Second, 10*time.Millisecond)
		require.Len(t, slow.Bodies(key(1)), 1)
		require.Equal(t, 1, e.queueRow(h.ID).Attempts)
	})
}

func TestTransientErrors(t *testing.T) {
	t.Parallel()

	t.Run("RelaygwUnavailableRetriesWithoutDuplicates", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		s := newMemSender()
		failing := true
		s.fail = func(req *relaygwv1.SendDirectMessageRequest) error {
			if failing && req.GetRecipientPubkey() == key(2) {
				return status.Error(codes.Unavailable, "relaygw restarting")
			}
			return nil
		}
		e.dispute("d-1", "notified", nil)
		h := e.handoff(samplePkg("d-1", ""))
		d := e.dispatcher(s, []config.SolverConfig{writeSolver(key(1)), writeSolver(key(2))}, false)
		e.cycle(d)
		q := e.queueRow(h.ID)
		require.Equal(t, handoff.StatusPending, q.Status)
		require.Equal(t, 1, q.ConsecutiveErrors)
		require.Contains(t, q.LastError, "relaygw unavailable")
		require.Empty(t, e.dispatches(), "nothing recorded for an interrupted dispatch")
		require.Empty(t, e.notifications())
		require.Len(t, s.Bodies(key(1)), 1, "the first recipient was reached before the error")

		s.mu.Lock()
		failing = false
		s.mu.Unlock()
		e.cycle(d)
		require.Len(t, s.Bodies(key(1)), 1, "the retry does not DM the first recipient again (idempotency key)")
		require.Len(t, s.Bodies(key(2)), 1)
		ds := e.dispatches()
		require.Len(t, ds, 1)
		require.Equal(t, key(1)+","+key(2), ds[0].TargetSolver)
		require.Len(t, e.notifications(), 2)
		require.Equal(t, 0, e.queueRow(h.ID).ConsecutiveErrors)
	})

	t.Run("NoRelayAcceptsIsAFailedRecipient", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		s := newMemSender()
		s.refuse[key(1)] = true
		e.dispute("d-1", "notified", nil)
		e.handoff(samplePkg("d-1", ""))
		e.cycle(e.dispatcher(s, []config.SolverConfig{writeSolver(key(1))}, false))
		ds := e.dispatches()
		require.Len(t, ds, 1)
		require.Equal(t, "send_failed", ds[0].Status)
		ns := e.notifications()
		require.Len(t, ns, 1)
		require.Equal(t, "notification error: gift-wrap send failed: no relay accepted the gift wrap: ws://mem: rejected (blocked)", *ns[0].Error)
	})

	t.Run("DisputeLookupErrorLeavesItUnconsumed", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		s := newMemSender()
		e.dispute("d-1", "notified", nil)
		h := e.handoff(samplePkg("d-1", ""))
		d := e.dispatcher(s, []config.SolverConfig{writeSolver(key(1))}, false)
		_, err := e.pool.Exec(e.ctx, `ALTER TABLE disputes RENAME TO disputes_away`)
		require.NoError(t, err)
		e.cycle(d)
		_, err = e.pool.Exec(e.ctx, `ALTER TABLE disputes_away RENAME TO disputes`)
		require.NoError(t, err)
		q := e.queueRow(h.ID)
		require.Equal(t, handoff.StatusPending, q.Status)
		require.Equal(t, 1, q.ConsecutiveErrors)
		require.Empty(t, e.audits(audit.KindEscalationDispatchParseFailed), "a DB error is not an orphan")
		e.cycle(d)
		require.Len(t, s.Bodies(key(1)), 1)
		require.Len(t, e.dispatches(), 1)
	})

	// A long outage (more errors than any small limit) loses nothing by
	// default: the handoff stays queued and goes out once relaygw is back.
	t.Run("OutageNeverFailsByDefault", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		s := newMemSender()
		down := true
		s.fail = func(*relaygwv1.SendDirectMessageRequest) error { // called with s.mu held
			if down {
				return status.Error(codes.Unavailable, "down")
			}
			return nil
		}
		e.dispute("d-1", "notified", nil)
		h := e.handoff(samplePkg("d-1", ""))
		d := e.dispatcher(s, []config.SolverConfig{writeSolver(key(1))}, false)
		for range 25 {
			require.Equal(t, 1, e.cycle(d))
		}
		q := e.queueRow(h.ID)
		require.Equal(t, handoff.StatusPending, q.Status)
		require.Equal(t, 25, q.ConsecutiveErrors)
		s.mu.Lock()
		down = false
		s.mu.Unlock()
		require.Equal(t, 1, e.cycle(d))
		require.Len(t, s.Bodies(key(1)), 1)
		require.Equal(t, handoff.StatusDone, e.queueRow(h.ID).Status)
		require.Len(t, e.dispatches(), 1)
	})

	t.Run("RepeatedErrorsFailThenRequeue", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		s := newMemSender()
		down := true
		s.fail = func(*relaygwv1.SendDirectMessageRequest) error {
			if down {
				return status.Error(codes.Unavailable, "down")
			}
			return nil
		}
		e.dispute("d-1", "notified", nil)
		h := e.handoff(samplePkg("d-1", ""))
		d := e.dispatcher(s, []config.SolverConfig{writeSolver(key(1))}, false, func(o *Options) { o.MaxErrors = 3 })
		for range 3 {
			require.Equal(t, 1, e.cycle(d))
		}
		require.Equal(t, handoff.StatusFailed, e.queueRow(h.ID).Status)
		require.Zero(t, e.cycle(d), "failed handoffs wait for an operator")
		s.mu.Lock()
		down = false
		s.mu.Unlock()
		_, err := handoff.Requeue(e.ctx, e.pool, h.ID)
		require.NoError(t, err)
		e.cycle(d)
		require.Len(t, s.Bodies(key(1)), 1)
		require.Equal(t, handoff.StatusDone, e.queueRow(h.ID).Status)
	})
}

// With the reference, 128 stuck (superseded or unroutable) handoffs are
// rescanned first every cycle and starve newer ones forever. Parked with a
// backoff, they do not. The backoff is the default one (the dispatch
// interval for a first park), with an interval of an hour so that no
// parked row can come due again during the test however slow the machine.
func TestParkedHandoffsNeverStarveNewerOnes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := newMemSender()
	const stuck = 130
	for i := range stuck {
		id := fmt.Sprintf("d-resolved-%d", i)
		e.dispute(id, "resolved", nil)
		e.handoff(samplePkg(id, ""))
	}
	d := e.dispatcher(s, []config.SolverConfig{writeSolver(key(1))}, false, func(o *Options) {
		o.ParkBackoff = nil
		o.PollInterval = time.Hour
	})
	require.Equal(t, handoff.MaxClaimBatch, e.cycle(d))
	require.Equal(t, stuck-handoff.MaxClaimBatch, e.cycle(d))
	require.Len(t, e.audits(audit.KindEscalationSuperseded), stuck)
	require.Zero(t, e.count(`SELECT count(*) FROM handoffs WHERE status <> 'parked' OR next_attempt_at < now() + interval '50 minutes'`),
		"every stuck handoff is parked for the default first backoff (the dispatch interval)")

	e.dispute("d-new", "notified", nil)
	e.handoff(samplePkg("d-new", ""))
	require.Equal(t, 1, e.cycle(d), "only the new handoff is due")
	require.Len(t, s.Bodies(key(1)), 1)
	require.Len(t, e.dispatches(), 1)
}
