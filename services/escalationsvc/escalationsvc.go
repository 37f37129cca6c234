package escalationsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	escalationsvcv1 "github.com/serbero/serbero/gen/go/serbero/escalationsvc/v1"
	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/services/escalationsvc/internal/dispatcher"
	"github.com/serbero/serbero/services/escalationsvc/internal/metrics"
	"github.com/serbero/serbero/services/escalationsvc/internal/server"
	"github.com/serbero/serbero/services/escalationsvc/internal/store"
)

// Deps are what escalationsvc needs from the process.
type Deps struct {
	Config     Config
	Logger     *slog.Logger
	Pool       *pgxpool.Pool
	Registerer prometheus.Registerer
	// Clock drives the dispatcher's timers and timestamps; nil is the real
	// clock.
	Clock clockwork.Clock
	// Relaygw sends the DMs; Intakesvc answers GetDispute. Both are
	// required when Config.Enabled.
	Relaygw   relaygwv1.RelayGatewayServiceClient
	Intakesvc intakesvcv1.IntakeServiceClient
	// Tuning adjusts the dispatcher; the zero value is the production
	// default.
	Tuning Tuning
}

// Tuning holds dispatcher knobs that are not configuration keys.
type Tuning struct {
	// Owner names this replica in the queue; default replica.ID.
	Owner string
	// Workers is how many handoffs a replica processes at once; default 16.
	Workers int
	// MaxErrors, when positive, is how many consecutive transient errors
	// fail a handoff; default 0: never (retried with backoff until the
	// outage ends).
	MaxErrors int
	// ParkBackoff overrides the wait before a parked handoff is evaluated
	// again (by claim attempt); default dispatch interval × 2^(n−1), at
	// most 1 h.
	ParkBackoff func(attempt int) time.Duration
	// RetryBackoff overrides the delay after a transient error (by
	// consecutive error count); default 1 s × 2^(n−1), at most 5 min.
	RetryBackoff func(errors int) time.Duration
	// LookupTimeout bounds one GetDispute call to intakesvc (an unreachable
	// intakesvc is waited for until then); default 10 s.
	LookupTimeout time.Duration
}

// Service is escalationsvc.
type Service struct {
	deps     Deps
	disp     *dispatcher.Dispatcher
	reporter *store.Reporter
	server   *server.Server
}

// New builds escalationsvc. Nothing connects until Run (or a scrape).
func New(deps Deps) (*Service, error) {
	if deps.Pool == nil || deps.Logger == nil {
		return nil, errors.New("escalationsvc: Pool and Logger are required")
	}
	if err := deps.Config.Validate(); err != nil {
		return nil, err
	}
	if deps.Config.Enabled && (deps.Relaygw == nil || deps.Intakesvc == nil) {
		return nil, errors.New("escalationsvc: relaygw and intakesvc clients are required when [escalation].enabled = true")
	}
	log := deps.Logger.With("component", "escalationsvc")
	cfg := deps.Config
	reporter := store.NewReporter(deps.Pool.Config().ConnConfig)
	opts := dispatcher.Options{
		Pool:                 deps.Pool,
		Logger:               log,
		Metrics:              metrics.New(deps.Registerer, reporter, log),
		Clock:                deps.Clock,
		Solvers:              cfg.Solvers,
		FallbackToAllSolvers: cfg.FallbackToAllSolvers,
		PollInterval:         cfg.DispatchInterval,
		ClaimTimeout:         cfg.ClaimTimeout,
		Owner:                deps.Tuning.Owner,
		Workers:              deps.Tuning.Workers,
		MaxErrors:            deps.Tuning.MaxErrors,
		ParkBackoff:          deps.Tuning.ParkBackoff,
		RetryBackoff:         deps.Tuning.RetryBackoff,
		LookupTimeout:        deps.Tuning.LookupTimeout,
	}
	if deps.Relaygw != nil {
		opts.Sender = deps.Relaygw
	}
	if deps.Intakesvc != nil {
		opts.Disputes = deps.Intakesvc
	}
	return &Service{
		deps:     deps,
		disp:     dispatcher.New(opts),
		reporter: reporter,
		server:   server.New(deps.Pool, store.New(deps.Pool), log),
	}, nil
}

// Register registers the gRPC API.
func (s *Service) Register(gs *grpc.Server) {
	escalationsvcv1.RegisterEscalationServiceServer(gs, s.server)
}

// Server returns the gRPC handlers (for in-process callers and tests).
func (s *Service) Server() escalationsvcv1.EscalationServiceServer { return s.server }

// Run dispatches handoffs until ctx is cancelled; with [escalation].enabled
// = false it only idles (no dispatcher at all). The queue metrics are
// served either way; their connection closes when Run returns.
func (s *Service) Run(ctx context.Context) error {
	defer s.reporter.Close()
	cfg := s.deps.Config
	log := s.deps.Logger
	if !cfg.Enabled {
		log.Info("phase4_dispatcher_disabled")
		<-ctx.Done()
		return nil
	}
	log.Info("phase4_dispatcher_enabled",
		"dispatch_interval_seconds", cfg.DispatchInterval.Seconds(),
		"fallback_to_all_solvers", cfg.FallbackToAllSolvers,
		"write_solver_count", cfg.writeSolvers())
	if !s.disp.Routable() {
		log.Warn("phase4: no write-permission solver configured and no fallback broadcast; every handoff will be unroutable " +
			"(set [escalation].fallback_to_all_solvers = true with at least one configured solver, or add a write-permission solver)")
	}
	if err := s.disp.Run(ctx); err != nil {
		return fmt.Errorf("escalationsvc: %w", err)
	}
	return nil
}
