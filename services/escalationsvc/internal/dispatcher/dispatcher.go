package dispatcher

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jonboulle/clockwork"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/pkg/replica"
	"github.com/serbero/serbero/services/escalationsvc/internal/metrics"
	"github.com/serbero/serbero/services/escalationsvc/internal/route"
	"github.com/serbero/serbero/services/escalationsvc/internal/store"
)

// Options configure a Dispatcher. Zero values take the defaults noted.
type Options struct {
	Pool *pgxpool.Pool
	// Sender is relaygw's SendDirectMessage; Disputes is intakesvc's
	// GetDispute. Both are required to process handoffs.
	Sender   Sender
	Disputes Disputes
	Logger   *slog.Logger
	Metrics  *metrics.Metrics // nil: private, unregistered collectors
	// Clock drives the loop's timers and the timestamps written; nil is
	// the real clock. Queue times (due, claim deadlines) are the database's.
	Clock clockwork.Clock

	// Solvers and FallbackToAllSolvers are [[solvers]] and
	// [escalation].fallback_to_all_solvers.
	Solvers              []config.SolverConfig
	FallbackToAllSolvers bool
	// PollInterval is [escalation].dispatch_interval_seconds: the poll
	// fallback when no notification comes (jittered ±20 %). Default 30 s.
	PollInterval time.Duration
	// ClaimTimeout is [escalation].claim_timeout_seconds. Default 60 s.
	ClaimTimeout time.Duration

	// Owner names this replica in claimed_by; default replica.ID. Must be
	// unique per running instance.
	Owner string
	// Workers is how many handoffs one replica processes at once (sends
	// to the recipients of one handoff stay sequential). Default 16.
	Workers int
	// MaxErrors, when positive, is how many consecutive transient errors
	// (or expired claims) fail a handoff, for an operator to requeue. The
	// default, 0, never fails one: a transient error (relaygw, intakesvc or
	// Postgres unavailable) is retried with RetryBackoff until it clears,
	// as the reference retries every cycle, so an outage of any length
	// loses no handoff.
	MaxErrors int
	// ParkBackoff is how long a parked handoff waits before it is
	// evaluated again, by claim attempt (1-based). Default PollInterval ×
	// 2^(attempt−1), at most 1 h.
	ParkBackoff func(attempt int) time.Duration
	// RetryBackoff is the delay after a transient error, by consecutive
	// error count (1-based). Default 1 s × 2^(n−1), at most 5 min.
	RetryBackoff func(errors int) time.Duration
	// SendTimeout bounds one SendDirectMessage call, LookupTimeout one
	// GetDispute call (the client waits for an unreachable peer until
	// then). Defaults 30 s and 10 s.
	SendTimeout   time.Duration
	LookupTimeout time.Duration

	// afterSend, when set (tests), runs after the sends and before the
	// dispatch is recorded; an error abandons the handoff there, as a
	// crash would (the claim is left to expire).
	afterSend func(h *handoff.Handoff) error
}

// Dispatcher turns queued handoffs into escalation_handoff/v1 DMs.
type Dispatcher struct {
	opts  Options
	log   *slog.Logger
	m     *metrics.Metrics
	clock clockwork.Clock
	store *store.Store
}

// New returns a Dispatcher with the defaults applied.
func New(opts Options) *Dispatcher {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New(nil, nil, nil)
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 30 * time.Second
	}
	if opts.ClaimTimeout <= 0 {
		opts.ClaimTimeout = time.Minute
	}
	if opts.Owner == "" {
		opts.Owner = replica.ID("escalationsvc")
	}
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	opts.Workers = min(opts.Workers, handoff.MaxClaimBatch)
	opts.MaxErrors = max(opts.MaxErrors, 0)
	if opts.ParkBackoff == nil {
		base := opts.PollInterval
		opts.ParkBackoff = func(attempt int) time.Duration {
			return min(base<<min(max(attempt-1, 0), 16), time.Hour)
		}
	}
	if opts.RetryBackoff == nil {
		opts.RetryBackoff = func(n int) time.Duration {
			return min(time.Second<<min(max(n-1, 0), 16), 5*time.Minute)
		}
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = 30 * time.Second
	}
	if opts.LookupTimeout <= 0 {
		opts.LookupTimeout = 10 * time.Second
	}
	return &Dispatcher{
		opts:  opts,
		log:   opts.Logger,
		m:     opts.Metrics,
		clock: opts.Clock,
		store: store.New(opts.Pool),
	}
}

// Owner is this replica's claimed_by name.
func (d *Dispatcher) Owner() string { return d.opts.Owner }

// Routable reports whether the configuration can route any handoff (some
// write solver, or the fallback with at least one solver).
func (d *Dispatcher) Routable() bool {
	return route.Route(nil, d.opts.Solvers, d.opts.FallbackToAllSolvers).Kind != route.Unroutable
}

// RunOnce is one cycle: return expired claims to the queue, claim up to
// MaxClaimBatch due handoffs, and process them all (Workers at a time). It
// returns how many it claimed. Per-handoff errors never fail the cycle.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	d.rescue(ctx)
	claimed, err := d.claim(ctx, handoff.MaxClaimBatch)
	if err != nil {
		return 0, err
	}
	sem := make(chan struct{}, d.opts.Workers)
	var wg sync.WaitGroup
	for i := range claimed {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			d.Process(ctx, &claimed[i])
		}()
	}
	wg.Wait()
	return len(claimed), nil
}

func (d *Dispatcher) claim(ctx context.Context, n int) ([]handoff.Handoff, error) {
	claimed, err := handoff.Claim(ctx, d.opts.Pool, n, d.opts.Owner, d.opts.ClaimTimeout)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error("phase4_dispatcher_cycle_failed", "error", err)
		}
		return nil, err
	}
	d.m.Claimed.Add(float64(len(claimed)))
	if len(claimed) > 0 {
		d.log.Debug("phase4_cycle_pending", "claimed", len(claimed))
	}
	return claimed, nil
}

func (d *Dispatcher) rescue(ctx context.Context) {
	r, err := handoff.Rescue(ctx, d.opts.Pool, d.opts.MaxErrors)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error("phase4: rescue of expired claims failed", "error", err)
		}
		return
	}
	if n := len(r.Requeued) + len(r.Failed); n > 0 {
		d.m.Rescued.Add(float64(n))
		d.m.Failed.Add(float64(len(r.Failed)))
		d.log.Warn("phase4: returned handoffs whose claimer stopped to the queue",
			"requeued", len(r.Requeued), "failed", len(r.Failed))
	}
}
