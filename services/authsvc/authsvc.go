// Package authsvc decides whether Serbero is currently authorized as a
// solver on the Mostro node, and answers CurrentState and WatchState from
// memory on every replica.
//
// The answer is grounded in what Mostro actually says: the node's kind 38385
// info event (through relaygw) and the outcomes of real admin-take-dispute
// attempts reported by mediationsvc; when an attempt has no fresh evidence
// it grants mediationsvc one probe (a real take of the next dispute it would
// mediate anyway; the client side is pkg/authprobe). The states, the
// evidence, the numbers, the restart rule and where we differ from the
// reference are in docs/authorization.md.
//
// Layout: internal/revalidation is the pure state machine, internal/engine
// runs it against Postgres (cache, loop, lease), internal/store is the SQL,
// internal/server the gRPC handlers, internal/nodecheck the node check
// through relaygw.
package authsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/pglisten"
	"github.com/serbero/serbero/pkg/replica"
	"github.com/serbero/serbero/services/authsvc/internal/engine"
	"github.com/serbero/serbero/services/authsvc/internal/nodecheck"
	"github.com/serbero/serbero/services/authsvc/internal/revalidation"
	"github.com/serbero/serbero/services/authsvc/internal/server"
	"github.com/serbero/serbero/services/authsvc/internal/store"
)

// ListenerApplicationName names authsvc's LISTEN connection in
// pg_stat_activity.
const ListenerApplicationName = "serbero-authsvc-listen"

// Deps are what authsvc needs from the process.
type Deps struct {
	// Config is authsvc's configuration (zero fields: defaults).
	Config Config
	// Logger receives authsvc's log lines.
	Logger *slog.Logger
	// Pool is the Postgres pool.
	Pool *pgxpool.Pool
	// Registerer receives authsvc's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Relaygw checks the node.
	Relaygw relaygwv1.RelayGatewayServiceClient
	// Clock drives the state machine (attempt times, waits, probe
	// deadlines); nil is the real clock. The lease always runs on real
	// and database time.
	Clock clockwork.Clock
	// Tuning overrides timings; the zero value means the defaults.
	Tuning Tuning
}

// Tuning holds timings that are not operator configuration. Zero fields
// take the defaults below; tests shorten them.
type Tuning struct {
	// LeaseTTL bounds how long the loop stays with a replica that died
	// without releasing it (default 15 s; a standby retries every TTL/3).
	LeaseTTL time.Duration
	// RefreshInterval is the fallback version check (default 1 s).
	RefreshInterval time.Duration
	// ProbeWait is how long an attempt waits for a prober to claim its
	// probe (default 60 s).
	ProbeWait time.Duration
	// ClaimWait is how long a claimed probe waits for its outcome (default
	// 45 s: a take waits up to 15 s for Mostro, plus margin).
	ClaimWait time.Duration
	// CheckRetry is the pause after a node check that could not run
	// because relaygw was unreachable (default 5 s).
	CheckRetry time.Duration
	// StartupGrace is how long after start a missing node info event is
	// retried instead of failing the attempt (default 30 s; negative:
	// none): relaygw may not have heard from the node yet when every pod
	// starts at once.
	StartupGrace time.Duration
	// Holder is this replica's lease identity (default replica.ID).
	Holder string
}

// The default timings.
const (
	DefaultLeaseTTL        = 15 * time.Second
	DefaultRefreshInterval = time.Second
	DefaultProbeWait       = 60 * time.Second
	DefaultClaimWait       = 45 * time.Second
	DefaultCheckRetry      = 5 * time.Second
	DefaultStartupGrace    = 30 * time.Second
)

// Service is authsvc.
type Service struct {
	log    *slog.Logger
	engine *engine.Engine
	server *server.Server
}

// New builds authsvc; nothing connects until Run.
func New(deps Deps) (*Service, error) {
	if deps.Logger == nil || deps.Pool == nil || deps.Relaygw == nil {
		return nil, errors.New("authsvc: Logger, Pool and Relaygw are required")
	}
	if err := deps.Config.Validate(); err != nil {
		return nil, err
	}
	machine, err := machineFor(deps.Config.WithDefaults(), deps.Tuning)
	if err != nil {
		return nil, err
	}
	holder := deps.Tuning.Holder
	if holder == "" {
		holder = replica.ID("authsvc")
	}
	log := deps.Logger.With("component", "authsvc")
	metrics := engine.NewMetrics()
	if err := metrics.Register(deps.Registerer); err != nil {
		return nil, fmt.Errorf("register authsvc metrics: %w", err)
	}
	listener, err := pglisten.New(pglisten.Options{
		ConnConfig: deps.Pool.Config().ConnConfig, ApplicationName: ListenerApplicationName, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("authsvc listener: %w", err)
	}
	eng := engine.New(engine.Options{
		Store:           store.New(deps.Pool),
		Machine:         machine,
		Clock:           deps.Clock,
		Listener:        listener,
		Checker:         nodecheck.Relaygw{Client: deps.Relaygw},
		Logger:          log,
		Metrics:         metrics,
		Holder:          holder,
		LeaseTTL:        orDefault(deps.Tuning.LeaseTTL, DefaultLeaseTTL),
		RefreshInterval: orDefault(deps.Tuning.RefreshInterval, DefaultRefreshInterval),
		CheckRetry:      orDefault(deps.Tuning.CheckRetry, DefaultCheckRetry),
		StartupGrace:    startupGrace(deps.Tuning.StartupGrace),
	})
	return &Service{log: log, engine: eng, server: server.New(eng)}, nil
}

// machineFor builds the state machine from the configuration.
func machineFor(c Config, t Tuning) (revalidation.Machine, error) {
	cfg := revalidation.Config{
		InitialInterval: c.RetryInitial,
		MaxInterval:     c.RetryMaxInterval,
		MaxTotal:        c.RetryMaxTotal,
		MaxAttempts:     c.RetryMaxAttempts,
		ProbeWait:       orDefault(t.ProbeWait, DefaultProbeWait),
		ClaimWait:       orDefault(t.ClaimWait, DefaultClaimWait),
		RecheckAfter:    c.StartRecheckAfter,
	}
	if err := cfg.Validate(); err != nil {
		return revalidation.Machine{}, fmt.Errorf("authsvc: %w", err)
	}
	return revalidation.Machine{Config: cfg, NewID: uuid.NewString}, nil
}

// startupGrace: zero means the default, negative means none.
func startupGrace(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return orDefault(d, DefaultStartupGrace)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Register registers the gRPC API.
func (s *Service) Register(gs *grpc.Server) { authsvcv1.RegisterAuthServiceServer(gs, s.server) }

// Run loads the state, then keeps it current, applies the start rule and
// competes for the loop lease until ctx is cancelled.
func (s *Service) Run(ctx context.Context) error {
	if err := s.engine.Refresh(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("initial authsvc state load failed; the refresher retries", "error", err)
	}
	return s.engine.Run(ctx)
}

// IsLoopHolder reports whether this replica runs the revalidation loop now
// (for tests and diagnostics).
func (s *Service) IsLoopHolder() bool { return s.engine.IsLeader() }
