// Package mediationsvc is the AI-guided mediation service (phase 3). It
// never moves funds and never closes disputes.
//
// It serves the read side of phase 3 (sessions and the audit trail of a
// dispute, for operators) and brings up the reasoning core at start: the
// prompt bundle, the provider [reasoning].provider names, its health check
// (gRPC health "serbero.mediationsvc.reasoning"). Any failure there turns
// phase 3 off for the run and nothing else. The mediation engine itself
// (take flow, party chat, summaries, escalation handoffs through
// pkg/handoff) is not built yet; see docs/mediation.md.
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
}

// Service is mediationsvc.
type Service struct {
	mediationsvcv1.UnimplementedMediationServiceServer
	deps    Deps
	log     *slog.Logger
	metrics *reasoning.Metrics
	store   *store.Store

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
	s := &Service{
		deps: deps, log: deps.Logger.With("component", "mediation"), metrics: m,
		store: store.New(deps.Pool), core: make(chan *reasoner.Core, 1),
	}
	s.setHealth(false)
	return s, nil
}

// Register registers the gRPC API.
func (s *Service) Register(gs *grpc.Server) { mediationsvcv1.RegisterMediationServiceServer(gs, s) }

// Run brings phase 3 up (or leaves it off, logged) and then idles until
// ctx is cancelled: the mediation engine is not built yet.
func (s *Service) Run(ctx context.Context) error {
	core := s.bringUp(ctx)
	s.core <- core
	if core != nil {
		s.log.Warn("this build has no mediation engine yet: the reasoning core is up but no dispute is mediated (phases 1, 2 and 4 are unaffected)")
	}
	<-ctx.Done()
	return nil
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
