// Package engine runs authsvc's state machine against Postgres: every
// replica keeps the state in memory (a LISTEN on the state's channel through
// pkg/pglisten, plus a version check every RefreshInterval as the fallback)
// and applies RPC inputs under the state row's lock; the one replica holding
// the lease runs the loop (ticks, node checks, probe expiry), its writes
// fenced by the lease term. See docs/authorization.md.
//
// Two clocks: the machine's (Options.Clock: attempt times, waits, probe
// deadlines; a fake one in tests) and the wall clock, for what is measured
// against the database or the process (the lease, the fallback refresh,
// the start-up grace, retries of failed database calls).
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	"github.com/serbero/serbero/pkg/pglisten"
	"github.com/serbero/serbero/pkg/retry"
	"github.com/serbero/serbero/services/authsvc/internal/revalidation"
	"github.com/serbero/serbero/services/authsvc/internal/store"
)

// NodeChecker checks the Mostro node for an attempt.
type NodeChecker interface {
	// CheckNode returns the node's info. A *NodeProblem error is Mostro's
	// answer (it fails the attempt); any other error means the check could
	// not run (relaygw unreachable) and is retried without counting.
	CheckNode(ctx context.Context) (revalidation.NodeInfo, error)
}

// NodeProblem is a node check that ran and found the node unusable.
type NodeProblem struct {
	// Msg says what is wrong, e.g. "unsupported protocol version 3".
	Msg string
}

// Error returns Msg.
func (p *NodeProblem) Error() string { return p.Msg }

// Options configures an Engine.
type Options struct {
	// Store is the Postgres side.
	Store *store.Store
	// Machine is the transition function.
	Machine revalidation.Machine
	// Clock drives the state machine; nil means the real clock.
	Clock clockwork.Clock
	// Listener delivers the state channel's notifications; Run subscribes
	// to store.Channel and runs it. Nil: only the fallback refresh.
	Listener *pglisten.Listener
	// Checker checks the node.
	Checker NodeChecker
	// Logger receives the state machine's log lines.
	Logger *slog.Logger
	// Metrics are updated as things happen; nil means unregistered ones.
	Metrics *Metrics
	// Holder is this replica's lease identity.
	Holder string
	// LeaseTTL bounds how long the loop stays with a dead holder.
	LeaseTTL time.Duration
	// RefreshInterval is the fallback version check period.
	RefreshInterval time.Duration
	// CheckRetry is the pause after a node check that could not run, and
	// after a loop step whose write failed.
	CheckRetry time.Duration
	// StartupGrace: for this long after Run starts, a node problem (no info
	// event yet) is retried like a check that could not run, because
	// relaygw may simply not have heard from the node yet after a
	// simultaneous start.
	StartupGrace time.Duration
}

// Snapshot is one committed state with its API form, shared read-only.
type Snapshot struct {
	// State is the machine state.
	State revalidation.State
	// Proto is the API form; never mutate it.
	Proto *authsvcv1.AuthState
}

// Engine is one replica's view and, while it holds the lease, the loop.
type Engine struct {
	opts  Options
	clock clockwork.Clock // the machine's
	wall  clockwork.Clock // database and process time
	log   *slog.Logger
	m     *Metrics

	snap    atomic.Pointer[Snapshot]
	mu      sync.Mutex // guards changed and publishing
	changed chan struct{}

	leader  atomic.Bool
	started time.Time // wall time Run started; zero outside Run
}

// New returns an engine; call Refresh (or Run) before reading it.
func New(opts Options) *Engine {
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 15 * time.Second
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = time.Second
	}
	if opts.CheckRetry <= 0 {
		opts.CheckRetry = 5 * time.Second
	}
	return &Engine{opts: opts, clock: opts.Clock, wall: clockwork.NewRealClock(), log: opts.Logger, m: opts.Metrics,
		changed: make(chan struct{})}
}

// now is the machine's time, at the database's precision.
func (e *Engine) now() time.Time { return e.clock.Now().UTC().Truncate(time.Microsecond) }

// Current returns the newest state this replica knows, or nil before the
// first load. It never touches the database.
func (e *Engine) Current() *Snapshot { return e.snap.Load() }

// Changed returns a channel closed at the next published change. Take it
// before reading Current to never miss one.
func (e *Engine) Changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

// IsLeader reports whether this replica runs the loop now.
func (e *Engine) IsLeader() bool { return e.leader.Load() }

// publish installs st if it is newer than what is cached.
func (e *Engine) publish(st revalidation.State) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cur := e.snap.Load(); cur != nil && cur.State.Version >= st.Version {
		return
	}
	e.snap.Store(&Snapshot{State: st, Proto: ToProto(st)})
	e.m.observeState(st)
	close(e.changed)
	e.changed = make(chan struct{})
}

// Refresh reloads the state from the database.
func (e *Engine) Refresh(ctx context.Context) error {
	st, err := e.opts.Store.Load(ctx)
	if err != nil {
		return err
	}
	e.publish(st)
	return nil
}

// refreshIfNewer reloads when the database holds a newer version.
func (e *Engine) refreshIfNewer(ctx context.Context, version int64) error {
	if cur := e.snap.Load(); cur != nil && cur.State.Version >= version {
		return nil
	}
	return e.Refresh(ctx)
}

// Apply feeds an RPC input to the machine under the row lock (any replica
// may) and returns the committed result. Refused inputs come back in
// Result.Err with the state unchanged.
func (e *Engine) Apply(ctx context.Context, in revalidation.Input) (revalidation.Result, error) {
	return e.apply(ctx, nil, in)
}

func (e *Engine) apply(ctx context.Context, fence *store.Fence, in revalidation.Input) (revalidation.Result, error) {
	now := e.now()
	applied, err := e.opts.Store.Apply(ctx, fence, now, func(cur revalidation.State) revalidation.Result {
		return e.opts.Machine.Step(cur, in, now)
	})
	if err != nil {
		return revalidation.Result{}, err
	}
	res := applied.Result
	for _, aerr := range applied.AuditErrors {
		e.m.auditFailures.Inc()
		e.log.Warn("solver auth audit write failed; continuing", "error", aerr)
	}
	if res.Err != nil {
		return res, nil //nolint:nilerr // the refusal travels in res.Err
	}
	for _, l := range res.Logs {
		e.log.Log(ctx, l.Level, l.Msg, l.Attrs...)
	}
	if res.Stale {
		e.m.staleReports.Inc()
	}
	switch res.Attempt {
	case revalidation.AttemptSucceeded:
		e.m.attempts.WithLabelValues("success").Inc()
	case revalidation.AttemptFailed:
		e.m.attempts.WithLabelValues("failure").Inc()
	}
	if res.Transitioned() {
		e.m.transitions.WithLabelValues(res.From.String(), res.State.Status.String()).Inc()
	}
	if res.Changed {
		e.publish(res.State)
	}
	return res, nil
}

// Run keeps the cache current, applies the start rule (Started: an old
// proof is re-checked) and competes for the loop lease until ctx ends; on a
// clean stop it releases the lease so another replica takes over at once.
func (e *Engine) Run(ctx context.Context) error {
	e.started = e.wall.Now()
	var wg sync.WaitGroup
	if l := e.opts.Listener; l != nil {
		sub, err := l.Subscribe(store.Channel)
		if err != nil {
			return fmt.Errorf("subscribe to %s: %w", store.Channel, err)
		}
		defer sub.Close()
		wg.Add(2)
		go func() {
			defer wg.Done()
			_ = l.Run(ctx) // returns nil when ctx ends
		}()
		go func() {
			defer wg.Done()
			e.followNotifications(ctx, sub)
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		e.refreshLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		e.applyStarted(ctx)
	}()
	e.lead(ctx)
	wg.Wait()
	return nil
}

// followNotifications re-reads the version on every wake-up: when a
// notification arrives, when the LISTEN is (re)established (one may have
// been missed meanwhile).
func (e *Engine) followNotifications(ctx context.Context, sub *pglisten.Subscription) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.C():
		}
		v, err := e.opts.Store.Version(ctx)
		if err != nil {
			e.logRefreshErr(ctx, err)
			continue
		}
		e.logRefreshErr(ctx, e.refreshIfNewer(ctx, v))
	}
}

// applyStarted feeds Started once, retrying while the database fails.
func (e *Engine) applyStarted(ctx context.Context) {
	for {
		_, err := e.Apply(ctx, revalidation.Started{})
		if err == nil || ctx.Err() != nil {
			return
		}
		e.log.Warn("solver authorization start check failed; retrying", "error", err, "retry_in", e.opts.CheckRetry.String())
		if !retry.Sleep(ctx, e.wall, e.opts.CheckRetry) {
			return
		}
	}
}

func (e *Engine) logRefreshErr(ctx context.Context, err error) {
	if err != nil && ctx.Err() == nil {
		e.log.Warn("authsvc state refresh failed", "error", err)
	}
}

// refreshLoop is the fallback for lost notifications: a version check
// every RefreshInterval.
func (e *Engine) refreshLoop(ctx context.Context) {
	t := e.wall.NewTicker(e.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		}
		v, err := e.opts.Store.Version(ctx)
		if err != nil {
			e.logRefreshErr(ctx, err)
			continue
		}
		e.logRefreshErr(ctx, e.refreshIfNewer(ctx, v))
	}
}

// lead holds (or waits for) the lease and runs the loop while holding it.
func (e *Engine) lead(ctx context.Context) {
	var (
		fence       *store.Fence
		leaseDue    time.Time // real time of the next acquire/renew
		checkRetry  time.Time // machine time before which a failed check is not retried
		renewPeriod = e.opts.LeaseTTL / 3
	)
	lose := func(reason string, err error) {
		e.log.Warn("solver auth loop lease lost", "reason", reason, "error", err, "holder", e.opts.Holder, "term", fence.Term)
		fence = nil
		e.leader.Store(false)
		e.m.leader.Set(0)
	}
	defer func() {
		if fence != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := e.opts.Store.ReleaseLease(rctx, *fence); err != nil {
				e.log.Warn("release solver auth loop lease", "error", err)
			} else {
				e.log.Info("solver auth loop lease released", "holder", e.opts.Holder, "term", fence.Term)
			}
			e.leader.Store(false)
			e.m.leader.Set(0)
		}
	}()

	for ctx.Err() == nil {
		if !e.wall.Now().Before(leaseDue) {
			if fence == nil {
				term, ok, err := e.opts.Store.AcquireLease(ctx, e.opts.Holder, e.opts.LeaseTTL)
				switch {
				case err != nil:
					e.logRefreshErr(ctx, err)
				case ok:
					fence = &store.Fence{Holder: e.opts.Holder, Term: term}
					e.leader.Store(true)
					e.m.leader.Set(1)
					e.log.Info("solver auth loop lease acquired; this replica runs the revalidation loop", "holder", e.opts.Holder, "term", term)
					// Another replica may have written while we waited.
					e.logRefreshErr(ctx, e.Refresh(ctx))
				}
			} else {
				ok, err := e.opts.Store.RenewLease(ctx, *fence, e.opts.LeaseTTL)
				if err != nil || !ok {
					lose("renewal failed", err)
				}
			}
			leaseDue = e.wall.Now().Add(renewPeriod)
		}

		if fence != nil && e.snap.Load() != nil {
			retry, err := e.step(ctx, *fence, checkRetry)
			checkRetry = retry
			if errors.Is(err, store.ErrNotLeader) {
				lose("fenced", err)
				checkRetry = time.Time{} // a new term starts afresh
			} else if err != nil && ctx.Err() == nil {
				e.log.Warn("solver auth loop step failed; retrying", "error", err, "retry_in", e.opts.CheckRetry.String())
			}
		}

		// Sleep until the lease is due, the state's next wake, or a change.
		changed := e.Changed()
		var (
			stateWake  <-chan time.Time
			stateTimer clockwork.Timer
		)
		if fence != nil {
			if snap := e.snap.Load(); snap != nil {
				if w := snap.State.NextWake(); !w.IsZero() {
					if w.Before(checkRetry) {
						w = checkRetry
					}
					stateTimer = e.clock.NewTimer(w.Sub(e.now()))
					stateWake = stateTimer.Chan()
				}
			}
		}
		leaseTimer := e.wall.NewTimer(leaseDue.Sub(e.wall.Now()))
		select {
		case <-ctx.Done():
		case <-leaseTimer.Chan():
		case <-stateWake:
		case <-changed:
		}
		leaseTimer.Stop()
		if stateTimer != nil {
			stateTimer.Stop()
		}
	}
}

// step runs what is due: a tick, and the node check of a due attempt. It
// returns the machine time before which the loop does not step again: after
// a check that could not run, or a write that failed (without it the loop
// would retry at once, a transaction and a node check per turn, as long as
// the failure lasts).
func (e *Engine) step(ctx context.Context, fence store.Fence, checkRetry time.Time) (time.Time, error) {
	snap := e.snap.Load()
	now := e.now()
	if w := snap.State.NextWake(); w.IsZero() || now.Before(w) || now.Before(checkRetry) {
		return checkRetry, nil
	}
	res, err := e.apply(ctx, &fence, revalidation.Tick{})
	if err != nil {
		return e.now().Add(e.opts.CheckRetry), fmt.Errorf("apply tick: %w", err)
	}
	if !res.CheckNode {
		return checkRetry, nil
	}
	cctx, cancel := context.WithTimeout(ctx, e.checkTimeout())
	info, cerr := e.opts.Checker.CheckNode(cctx)
	cancel()
	in := revalidation.NodeChecked{Info: info}
	if cerr != nil {
		var np *NodeProblem
		inGrace := errors.As(cerr, &np) && !e.started.IsZero() && e.wall.Since(e.started) < e.opts.StartupGrace
		if inGrace {
			e.log.Info("mostro node info not available yet after start; retrying", "error", cerr, "retry_in", e.opts.CheckRetry.String())
			return e.now().Add(e.opts.CheckRetry), nil
		}
		if !errors.As(cerr, &np) {
			if ctx.Err() != nil {
				return checkRetry, nil //nolint:nilerr // stopping: the check error is moot
			}
			e.log.Warn("solver authorization check could not run; retrying", "error", cerr, "retry_in", e.opts.CheckRetry.String())
			return e.now().Add(e.opts.CheckRetry), nil
		}
		in.Err = np.Msg
	}
	if _, err := e.apply(ctx, &fence, in); err != nil {
		return e.now().Add(e.opts.CheckRetry), fmt.Errorf("apply node check: %w", err)
	}
	return time.Time{}, nil
}

// checkTimeout bounds a node check so that the lease is renewed in time:
// the loop renews between steps, every LeaseTTL/3, so a step may take at
// most LeaseTTL - LeaseTTL/3 before the lease lapses; the check gets half
// of that (LeaseTTL/3), leaving the rest for the step's writes. Never more
// than 10 s (relaygw answers from its cache).
func (e *Engine) checkTimeout() time.Duration {
	return min(10*time.Second, e.opts.LeaseTTL/3)
}

// StepForTest runs one loop step with the given fence (tests drive the loop
// on a fake clock with it).
func (e *Engine) StepForTest(ctx context.Context, fence store.Fence) error {
	if e.snap.Load() == nil {
		if err := e.Refresh(ctx); err != nil {
			return err
		}
	}
	_, err := e.step(ctx, fence, time.Time{})
	return err
}

// String describes the engine for logs.
func (e *Engine) String() string { return fmt.Sprintf("authsvc engine %s", e.opts.Holder) }
