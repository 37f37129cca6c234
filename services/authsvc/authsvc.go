// Package authsvc decides whether Serbero is currently authorized as a
// solver on the Mostro node, and answers CurrentState and WatchState from
// memory on every replica.
//
// The answer is grounded in what Mostro actually says: the node's kind 38385
// info event (through relaygw) and the outcomes of real admin-take-dispute
// attempts reported by mediationsvc; when an attempt has no fresh evidence
// it grants mediationsvc one probe (a real take of the next dispute it would
// mediate anyway). The state machine, its numbers and the probe design are
// documented in internal/revalidation (doc.go) and README.md; the
// mediationsvc side of the probe is package prober.
//
// State lives in Postgres (authsvc_state). One replica, the holder of the
// authsvc_lease lease, runs the revalidation loop; any replica applies RPC
// inputs under the state row's lock, and every replica keeps the state in
// memory through LISTEN/NOTIFY with a once-a-second version check as the
// fallback.
package authsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/services/authsvc/internal/engine"
	"github.com/serbero/serbero/services/authsvc/internal/revalidation"
	"github.com/serbero/serbero/services/authsvc/internal/store"
)

// Deps are what authsvc needs from the process.
type Deps struct {
	Config     *config.Config
	Logger     *slog.Logger
	Pool       *pgxpool.Pool
	Registerer prometheus.Registerer
	Relaygw    relaygwv1.RelayGatewayServiceClient
	// Stopping is cancelled when the process starts to stop; stream
	// handlers end when it is.
	Stopping context.Context
	// Clock drives the state machine; nil means the wall clock. Tests only.
	Clock Clock
	// Tuning overrides timings; the zero value means the defaults.
	Tuning Tuning
}

// Clock is the state machine's time source (the loop lease always uses
// real and database time).
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After fires once d has passed.
	After(d time.Duration) <-chan time.Time
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
	// retried instead of failing the attempt (default 30 s): relaygw may
	// not have heard from the node yet when every pod starts at once.
	StartupGrace time.Duration
	// RetryInitial, RetryMaxInterval and RetryMaxTotal replace the
	// [mediation].solver_auth_retry_* seconds when set (sub-second values
	// for tests).
	RetryInitial, RetryMaxInterval, RetryMaxTotal time.Duration
	// Holder is this replica's lease identity (default host-pid-random).
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
	authsvcv1.UnimplementedAuthServiceServer
	deps   Deps
	log    *slog.Logger
	engine *engine.Engine
}

// New builds authsvc.
func New(deps Deps) (*Service, error) {
	if deps.Config == nil || deps.Logger == nil || deps.Pool == nil || deps.Relaygw == nil {
		return nil, errors.New("authsvc: Config, Logger, Pool and Relaygw are required")
	}
	if deps.Stopping == nil {
		deps.Stopping = context.Background()
	}
	machine, err := machineFor(deps.Config.Mediation, deps.Tuning)
	if err != nil {
		return nil, err
	}
	holder := deps.Tuning.Holder
	if holder == "" {
		holder = defaultHolder()
	}
	log := deps.Logger.With("component", "authsvc")
	metrics := engine.NewMetrics()
	if err := metrics.Register(deps.Registerer); err != nil {
		return nil, fmt.Errorf("register authsvc metrics: %w", err)
	}
	var clock engine.Clock
	if deps.Clock != nil {
		clock = deps.Clock
	}
	eng := engine.New(engine.Options{
		Store:           store.New(deps.Pool, log),
		Machine:         machine,
		Clock:           clock,
		Checker:         relaygwChecker{rg: deps.Relaygw},
		Logger:          log,
		Metrics:         metrics,
		Holder:          holder,
		LeaseTTL:        orDefault(deps.Tuning.LeaseTTL, DefaultLeaseTTL),
		RefreshInterval: orDefault(deps.Tuning.RefreshInterval, DefaultRefreshInterval),
		CheckRetry:      orDefault(deps.Tuning.CheckRetry, DefaultCheckRetry),
		StartupGrace:    startupGrace(deps.Tuning.StartupGrace),
	})
	return &Service{deps: deps, log: log, engine: eng}, nil
}

// machineFor wires the [mediation].solver_auth_retry_* knobs (the
// reference parsed them but never used them).
func machineFor(m config.MediationConfig, t Tuning) (revalidation.Machine, error) {
	secs := func(n int64) time.Duration { return time.Duration(n) * time.Second }
	cfg := revalidation.Config{
		InitialInterval: orDefault(t.RetryInitial, secs(m.SolverAuthRetryInitialSeconds)),
		MaxInterval:     orDefault(t.RetryMaxInterval, secs(m.SolverAuthRetryMaxIntervalSeconds)),
		MaxTotal:        orDefault(t.RetryMaxTotal, secs(m.SolverAuthRetryMaxTotalSeconds)),
		MaxAttempts:     int(m.SolverAuthRetryMaxAttempts),
		ProbeWait:       orDefault(t.ProbeWait, DefaultProbeWait),
		ClaimWait:       orDefault(t.ClaimWait, DefaultClaimWait),
	}
	if err := cfg.Validate(); err != nil {
		return revalidation.Machine{}, fmt.Errorf("authsvc: [mediation].solver_auth_retry_*: %w", err)
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

func defaultHolder() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// Register registers the gRPC API.
func (s *Service) Register(gs *grpc.Server) { authsvcv1.RegisterAuthServiceServer(gs, s) }

// Run loads the state, then keeps it current and competes for the loop
// lease until ctx is cancelled.
func (s *Service) Run(ctx context.Context) error {
	if err := s.engine.Refresh(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("initial authsvc state load failed; the refresher retries", "error", err)
	}
	return s.engine.Run(ctx)
}

// IsLoopHolder reports whether this replica runs the revalidation loop now
// (for tests and diagnostics).
func (s *Service) IsLoopHolder() bool { return s.engine.IsLeader() }
