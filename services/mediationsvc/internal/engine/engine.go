package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jonboulle/clockwork"
	"golang.org/x/sync/errgroup"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/authprobe"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoner"
	"github.com/serbero/serbero/services/mediationsvc/internal/store"
)

// Defaults of Options.
const (
	DefaultTickInterval     = 30 * time.Second
	DefaultLeaseTTL         = 30 * time.Second
	DefaultStartClaimTTL    = 3 * time.Minute
	DefaultStartBackoffBase = 30 * time.Second
	DefaultStartBackoffMax  = time.Hour
	DefaultStartWorkers     = 4
	// EvalFailureLimit is the number of consecutive failed mid-session
	// evaluations that escalates reasoning_unavailable.
	EvalFailureLimit = 3
)

// Options configure an Engine.
type Options struct {
	Store   *store.Store
	Pool    *pgxpool.Pool
	Core    *reasoner.Core
	Relaygw relaygwv1.RelayGatewayServiceClient
	Intake  intakesvcv1.IntakeServiceClient
	Auth    authsvcv1.AuthServiceClient
	// Solvers are the configured solver pubkeys (hex), in config order.
	Solvers []string
	// EscalationEnabled is [escalation].enabled: escalationsvc sends the
	// escalation_handoff/v1 DM, so the compact phase-3 escalation DMs are
	// not sent.
	EscalationEnabled bool
	// MaxRounds is [mediation].max_rounds.
	MaxRounds int64
	// PartyResponseTimeout is [mediation].party_response_timeout_seconds
	// (0: no party timeout).
	PartyResponseTimeout time.Duration
	// Holder names this replica in leases and claims (pkg/replica.ID).
	Holder string
	// TickInterval is the safety-net tick (0: 30 s).
	TickInterval time.Duration
	// LeaseTTL is the session lease time (0: 30 s); a dead replica's
	// sessions are carried on by another within it.
	LeaseTTL time.Duration
	// StartClaimTTL bounds one start attempt's claim (0: 3 min).
	StartClaimTTL time.Duration
	// StartBackoffBase and StartBackoffMax shape the retry of a start that
	// stopped (0: 30 s doubling to 1 h).
	StartBackoffBase, StartBackoffMax time.Duration
	// TakeTimeout bounds the wait for Mostro's answer (0: 15 s).
	TakeTimeout time.Duration
	// StatusSettle is authprobe's wait before asking a dispute's status
	// again after a cant-do (0: its default).
	StatusSettle time.Duration
	// StartWorkers is how many start attempts run at once (0: 4).
	StartWorkers int
	Metrics      *Metrics
	Logger       *slog.Logger
	Clock        clockwork.Clock
}

// Engine is the mediation engine of one mediationsvc replica.
type Engine struct {
	o      Options
	log    *slog.Logger
	prober *authprobe.Prober

	startq chan startReq
	kickR  chan struct{} // reports due

	mu      sync.Mutex
	workers map[string]*worker // by session id
	byParty map[string]*worker // by party trade pubkey
	chat    *chatFollower
}

type startReq struct {
	disputeID, trigger string
}

// New builds an engine.
func New(o Options) (*Engine, error) {
	if o.Store == nil || o.Pool == nil || o.Core == nil || o.Relaygw == nil || o.Intake == nil || o.Auth == nil {
		return nil, errors.New("engine: Store, Pool, Core, Relaygw, Intake and Auth are required")
	}
	if o.Holder == "" {
		return nil, errors.New("engine: Holder is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	o.TickInterval = orDefault(o.TickInterval, DefaultTickInterval)
	o.LeaseTTL = orDefault(o.LeaseTTL, DefaultLeaseTTL)
	o.StartClaimTTL = orDefault(o.StartClaimTTL, DefaultStartClaimTTL)
	o.StartBackoffBase = orDefault(o.StartBackoffBase, DefaultStartBackoffBase)
	o.StartBackoffMax = orDefault(o.StartBackoffMax, DefaultStartBackoffMax)
	o.TakeTimeout = orDefault(o.TakeTimeout, authprobe.DefaultTakeTimeout)
	if o.StartWorkers <= 0 {
		o.StartWorkers = DefaultStartWorkers
	}
	if o.Metrics == nil {
		o.Metrics, _ = NewMetrics(nil, nil)
	}
	e := &Engine{
		o: o, log: o.Logger, startq: make(chan startReq, 4096), kickR: make(chan struct{}, 1),
		workers: map[string]*worker{}, byParty: map[string]*worker{},
	}
	e.chat = newChatFollower(e)
	e.prober = authprobe.New(authprobe.Options{
		Auth: o.Auth, Relaygw: o.Relaygw, Logger: o.Logger.With("component", "authprobe"), Clock: o.Clock,
		ClaimerID: o.Holder,
		// Probes are claimed by the start path itself, which has the
		// positive verdict a probe needs (see start.go).
		Pick: func(context.Context) (authprobe.Candidate, bool, error) { return authprobe.Candidate{}, false, nil },
	})
	return e, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Run runs the engine until ctx ends: the change-feed follower, the start
// workers and tick, the session leases and their workers, the chat
// follower and the report sender. Before it returns it gives its session
// leases up, so another replica carries the sessions on at once.
func (e *Engine) Run(ctx context.Context) error {
	e.log.Info("mediation engine started", "holder", e.o.Holder, "tick", e.o.TickInterval.String(),
		"lease_ttl", e.o.LeaseTTL.String(), "max_rounds", e.o.MaxRounds)
	g, gctx := errgroup.WithContext(ctx)
	e.chat.setContext(gctx)
	g.Go(func() error { return e.prober.Run(gctx) })
	g.Go(func() error { e.watchAuth(gctx); return nil })
	g.Go(func() error { e.followFeed(gctx); return nil })
	for range e.o.StartWorkers {
		g.Go(func() error { e.startWorker(gctx); return nil })
	}
	g.Go(func() error { e.tick(gctx); return nil })
	g.Go(func() error { e.leaseLoop(gctx); return nil })
	g.Go(func() error { e.reportLoop(gctx); return nil })
	err := g.Wait()
	e.stopWorkers()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("mediation engine: %w", err)
	}
	return nil
}

// kickStart queues a start attempt (dropped when the queue is full: the
// tick finds the dispute again).
func (e *Engine) kickStart(id, trigger string) {
	select {
	case e.startq <- startReq{disputeID: id, trigger: trigger}:
	default:
	}
}

func (e *Engine) kickReports() {
	select {
	case e.kickR <- struct{}{}:
	default:
	}
}

func (e *Engine) startWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-e.startq:
			e.tryStart(ctx, r.disputeID, r.trigger)
		}
	}
}

// tick is the safety net: due start attempts (back-offs that passed,
// disputes missed by the feed) and due reports.
func (e *Engine) tick(ctx context.Context) {
	t := e.o.Clock.NewTicker(e.o.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		}
		ids, err := e.o.Store.DueStarts(ctx, 256)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("engine tick: listing due starts failed; next tick retries", "error", err)
			}
			continue
		}
		for _, id := range ids {
			e.kickStart(id, "tick_retry")
		}
		e.kickReports()
	}
}

// watchAuth wakes the starts that stopped on authorization when it
// changes (the prober keeps authsvc's state).
func (e *Engine) watchAuth(ctx context.Context) {
	t := e.o.Clock.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var last authsvcv1.AuthorizationState
	var lastProbe string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		}
		st := e.prober.State()
		s, probe := st.GetState(), st.GetProbeId()
		if probe != "" && st.GetProbeDisputeId() != "" {
			probe = ""
		}
		if s == last && probe == lastProbe {
			continue
		}
		last, lastProbe = s, probe
		if s == authsvcv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED || probe != "" {
			n, err := e.o.Store.WakeStarts(ctx, "auth_pending", "auth_terminated")
			if err != nil {
				e.log.Warn("waking starts after an authorization change failed", "error", err)
				continue
			}
			ids, err := e.o.Store.DueStarts(ctx, 64)
			if err == nil {
				for _, id := range ids {
					e.kickStart(id, "tick_retry")
				}
			}
			if n > 0 {
				e.log.Info("authorization changed: retrying starts at once", "state", s.String(), "woken", n)
			}
		}
	}
}

func (e *Engine) now() int64 { return e.o.Clock.Now().Unix() }
