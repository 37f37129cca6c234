// Package mediationsvc is the AI-guided mediation service (phase 3). It
// never moves funds and never closes disputes.
//
// It serves the read side of phase 3 (sessions and the audit trail of a
// dispute, for operators) and brings up the reasoning core at start: the
// prompt bundle, the provider [reasoning].provider names, its health check
// (gRPC health "serbero.mediationsvc.reasoning"). Any failure there turns
// phase 3 off for the run and nothing else. The mediation engine itself
// (take flow, party chat, summaries, escalation handoffs through
// pkg/handoff) runs once phase 3 is up (internal/engine); see
// docs/mediation.md#the-engine.
package mediationsvc

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	mediationsvcv1 "github.com/serbero/serbero/gen/go/serbero/mediationsvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/replica"
	"github.com/serbero/serbero/services/mediationsvc/internal/engine"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoner"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
	"github.com/serbero/serbero/services/mediationsvc/internal/store"
)

// Deps are what mediationsvc needs from the process.
type Deps struct {
	Authsvc authsvcv1.AuthServiceClient
	// Clock is the time source (nil: the real clock).
	Clock clockwork.Clock
	// Config is mediationsvc's configuration (validated by New).
	Config    Config
	Intakesvc intakesvcv1.IntakeServiceClient
	// HTTPClient calls the reasoning provider (nil: a plain client; the
	// HTTP policy bounds every attempt).
	HTTPClient *http.Client
	Logger     *slog.Logger
	Pool       *pgxpool.Pool
	Registerer prometheus.Registerer
	Relaygw    relaygwv1.RelayGatewayServiceClient
	// SetHealth sets a component's gRPC health status
	// (grpcserver.Server.SetHealth); nil: not exposed.
	SetHealth func(name string, serving bool)
	// Stopping is cancelled when the process starts to stop; stream
	// handlers end when it is.
	Stopping context.Context
	// ReplicaID names this replica in session leases (empty: derived from
	// the host and process, pkg/replica).
	ReplicaID string
}

// Service is mediationsvc.
type Service struct {
	mediationsvcv1.UnimplementedMediationServiceServer
	deps    Deps
	log     *slog.Logger
	metrics *reasoning.Metrics
	store   *store.Store

	engineMetrics *engine.Metrics

	// core is the reasoning core once phase 3 is up (nil until then, and
	// for the whole run when bring-up failed).
	core chan *reasoner.Core

	healthMu sync.Mutex
	off      bool // phase 3 is off for this run
}

// New builds mediationsvc.
func New(deps Deps) (*Service, error) {
	if deps.Pool == nil || deps.Logger == nil {
		return nil, errors.New("mediationsvc: Pool and Logger are required")
	}
	if err := deps.Config.Validate(); err != nil {
		return nil, err
	}
	if deps.Clock == nil {
		deps.Clock = clockwork.NewRealClock()
	}
	m, err := reasoning.NewMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	st := store.New(deps.Pool)
	em, err := engine.NewMetrics(deps.Registerer, st.SessionStateCounts)
	if err != nil {
		return nil, err
	}
	s := &Service{
		deps: deps, log: deps.Logger.With("component", "mediation"), metrics: m,
		store: st, core: make(chan *reasoner.Core, 1), engineMetrics: em,
	}
	s.setHealth(false)
	return s, nil
}

// Register registers the gRPC API.
func (s *Service) Register(gs *grpc.Server) { mediationsvcv1.RegisterMediationServiceServer(gs, s) }

// Run brings phase 3 up (or leaves it off, logged) and runs the mediation
// engine until ctx is cancelled. With phase 3 off it idles: phases 1, 2
// and 4 are unaffected.
func (s *Service) Run(ctx context.Context) error {
	core := s.bringUp(ctx)
	s.core <- core
	if core == nil {
		<-ctx.Done()
		return nil
	}
	if s.deps.Relaygw == nil || s.deps.Intakesvc == nil || s.deps.Authsvc == nil {
		s.log.Error("phase 3 needs the relaygw, intakesvc and authsvc clients; the mediation engine does not run")
		<-ctx.Done()
		return nil
	}
	ec := s.deps.Config.Engine
	eng, err := engine.New(engine.Options{
		Store: s.store, Pool: s.deps.Pool, Core: core, Relaygw: s.deps.Relaygw, Intake: s.deps.Intakesvc, Auth: s.deps.Authsvc,
		Solvers: s.deps.Config.Solvers, EscalationEnabled: s.deps.Config.EscalationEnabled,
		MaxRounds: s.deps.Config.MaxRounds, PartyResponseTimeout: s.deps.Config.PartyResponseTimeout,
		Holder: s.holder(), TickInterval: ec.Tick, LeaseTTL: ec.SessionLease, TakeTimeout: ec.TakeTimeout,
		StartBackoffBase: ec.StartRetryBase, StartBackoffMax: ec.StartRetryMax, StatusSettle: ec.StatusSettle,
		Metrics: s.engineMetrics, Logger: s.deps.Logger.With("component", "mediation-engine"), Clock: s.deps.Clock,
	})
	if err != nil {
		return err
	}
	return eng.Run(ctx)
}

// holder is this replica's name in leases and claims.
func (s *Service) holder() string {
	if s.deps.ReplicaID != "" {
		return s.deps.ReplicaID
	}
	return replica.ID("mediationsvc")
}

// Reasoner waits for phase 3's bring-up and returns the reasoning core, or
// nil when phase 3 is off for this run.
func (s *Service) Reasoner(ctx context.Context) (*reasoner.Core, error) {
	select {
	case c := <-s.core:
		s.core <- c
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
