package intakesvc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/services/intakesvc/internal/engine"
	"github.com/serbero/serbero/services/intakesvc/internal/server"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// Deps are what intakesvc needs from the process.
type Deps struct {
	Config     *config.Config
	Logger     *slog.Logger
	Pool       *pgxpool.Pool
	Registerer prometheus.Registerer
	Relaygw    relaygwv1.RelayGatewayServiceClient
	// Stopping is cancelled when the process starts to stop; stream
	// handlers end when it is.
	Stopping context.Context
	// Tuning overrides settings that are not in the configuration file;
	// the zero value keeps the defaults.
	Tuning Tuning
}

// Tuning holds knobs outside the configuration file, for tests and
// benchmarks. Zero fields keep the defaults.
type Tuning struct {
	// Workers is the number of concurrent DM senders (default 32).
	Workers int
	// PollInterval is the outbox scan period (default 1 s).
	PollInterval time.Duration
	// SendTimeout bounds one SendDirectMessage call (default 30 s); a
	// claimed DM's lease is twice as long.
	SendTimeout time.Duration
	// GaugeInterval is the per-state gauge refresh period (default 10 s).
	GaugeInterval time.Duration
	// SendAttempts is how many times one DM is tried before it counts as
	// failed (default 5).
	SendAttempts int
	// RetryBase is the delay before a DM's first retry, doubled after
	// each (default 1 s).
	RetryBase time.Duration
}

// Service is intakesvc.
type Service struct {
	*server.Server
	eng *engine.Engine
}

// New builds intakesvc.
func New(deps Deps) (*Service, error) {
	if deps.Config == nil || deps.Pool == nil || deps.Relaygw == nil {
		return nil, errors.New("intakesvc: Config, Pool and Relaygw are required")
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "intakesvc")
	cfg := engine.FromConfig(deps.Config)
	cfg.Workers, cfg.PollInterval = deps.Tuning.Workers, deps.Tuning.PollInterval
	cfg.SendTimeout, cfg.GaugeInterval = deps.Tuning.SendTimeout, deps.Tuning.GaugeInterval
	cfg.SendAttempts, cfg.RetryBase = deps.Tuning.SendAttempts, deps.Tuning.RetryBase
	st := store.New(deps.Pool)
	changes := engine.NewBroadcast()
	eng := engine.New(cfg, log, st, deps.Relaygw, engine.NewMetrics(deps.Registerer), changes)
	return &Service{Server: server.New(st, eng, changes, deps.Stopping), eng: eng}, nil
}

// Register registers the gRPC API.
func (s *Service) Register(gs *grpc.Server) { intakesvcv1.RegisterIntakeServiceServer(gs, s.Server) }

// Run does the background work until ctx is cancelled.
func (s *Service) Run(ctx context.Context) error { return s.eng.Run(ctx) }
