// Package renotify is the re-notification timer: every check interval it
// claims the disputes nobody took in time (and the new ones whose initial
// DMs reached nobody) and queues their DMs for the outbox, once per period
// whatever the number of replicas. See docs/intake.md#re-notification.
package renotify

import (
	"context"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/message"
	"github.com/serbero/serbero/services/intakesvc/internal/metrics"
	"github.com/serbero/serbero/services/intakesvc/internal/outbox"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// Policy says who is re-notified when.
type Policy struct {
	// After is [timeouts].renotification_seconds: a notified dispute last
	// notified longer ago than this is re-notified.
	After time.Duration
	// Solvers are every configured solver (verbatim, config order): each
	// re-notification goes to all of them, and a solver whose pubkey is
	// invalid gets its failed row each period, as in the reference.
	Solvers []string
	// Reachable are the solvers a DM can be addressed to: the initial DMs
	// of a new dispute that reached nobody are retried to them only (an
	// invalid pubkey got its failed row at the first attempt, and trying
	// it every tick would only add one more). Empty: no retry.
	Reachable []string
}

// Claim creates the notification batches due at now (at most limit): a
// re-notification to every solver of p for every notified dispute last
// notified (and last claimed) more than p.After ago, and, when p.Reachable
// is not empty, a new attempt of the initial notification to p.Reachable
// for every new dispute whose last batch reached nobody (or that was
// recorded while no solver was configured). A re-notification batch is
// always a new period (new idempotency keys, a body with now's
// time_elapsed_seconds), including after a period that reached nobody;
// an initial retry reuses period 0's keys and its unchanged body, so
// relaygw republishes the very same gift wrap.
func Claim(ctx context.Context, st *store.Store, now time.Time, p Policy, limit int) ([]store.DueBatch, error) {
	if len(p.Solvers) == 0 {
		return nil, nil
	}
	unix := now.Unix()
	q := store.DueQuery{Cutoff: unix - int64(p.After/time.Second), RetryNew: len(p.Reachable) > 0, Limit: limit}
	return st.ClaimDue(ctx, now, q, func(d store.DueDispute) store.Batch {
		if d.State == lifecycle.New {
			// The initial body never changes (initiator_role and
			// event_timestamp are written once), so a retry under the
			// same keys asks relaygw for the very same DM.
			body := message.Initial(d.DisputeID, d.InitiatorRole, d.EventTimestamp)
			return store.Batch{Type: message.TypeInitial, Period: 0, Body: &body, Solvers: p.Reachable,
				Keys: message.Keys(message.TypeInitial, 0, d.DisputeID, p.Reachable)}
		}
		// Always a new period, with its own idempotency keys, even when
		// the previous one reached nobody: its body carries this tick's
		// time_elapsed_seconds (the reference retries at the next tick
		// with the elapsed time of that tick), and relaygw refuses a key
		// already used with another body.
		period := d.Period + 1
		body := message.Renotification(d.DisputeID, unix-d.EventTimestamp)
		return store.Batch{Type: message.TypeRenotification, Period: period, Body: &body, Solvers: p.Solvers,
			Keys: message.Keys(message.TypeRenotification, period, d.DisputeID, p.Solvers)}
	})
}

// Deps are what the timer works with.
type Deps struct {
	Store   *store.Store
	Outbox  *outbox.Outbox
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	Clock   clockwork.Clock
}

// Timer is the re-notification timer.
type Timer struct {
	policy Policy
	every  time.Duration
	st     *store.Store
	out    *outbox.Outbox
	m      *metrics.Metrics
	log    *slog.Logger
	clock  clockwork.Clock
}

// New builds the timer ticking every every (at least 1 s, as the
// reference's renotification_check_interval_seconds = 0 means 1).
func New(p Policy, every time.Duration, deps Deps) *Timer {
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clock := deps.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	return &Timer{policy: p, every: max(every, time.Second), st: deps.Store, out: deps.Outbox, m: deps.Metrics,
		log: log.With("loop", "renotify"), clock: clock}
}

// Run ticks until ctx ends; the first scan is one interval after start.
func (t *Timer) Run(ctx context.Context) {
	tk := t.clock.NewTicker(t.every)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.Chan():
		}
		t.Tick(ctx)
	}
}

// batchSize bounds the disputes one claiming transaction takes.
const batchSize = 200

// Tick runs one re-notification cycle now.
func (t *Timer) Tick(ctx context.Context) {
	t.m.RenotificationTicks.Inc()
	now := t.clock.Now()
	total := 0
	for ctx.Err() == nil {
		due, err := Claim(ctx, t.st, now, t.policy, batchSize)
		if err != nil {
			if ctx.Err() == nil {
				t.log.Warn("renotification cycle failed", "error", err)
			}
			return
		}
		for _, b := range due {
			t.m.RenotificationBatches.WithLabelValues(b.NotifType).Inc()
			t.log.Info("renotification due", "dispute_id", b.DisputeID, "notif_type", b.NotifType, "period", b.Period, "solvers", len(b.JobIDs))
			t.out.Dispatch(b.JobIDs)
		}
		total += len(due)
		if len(due) < batchSize {
			break
		}
	}
	t.log.Info("renotification_tick: scanned for unattended disputes", "due", total,
		"renotification_seconds", int64(t.policy.After/time.Second))
}
