// Package mediationsvc is the AI-guided mediation service (phase 3). It
// never moves funds and never closes disputes.
//
// This first cut serves the read side of phase 3 (sessions and the audit
// trail of a dispute, for operators); the mediation engine itself (reasoning
// calls, take flow, party chat, summaries, escalation handoffs through
// pkg/handoff) is not built yet. Its background loop therefore idles.
package mediationsvc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	mediationsvcv1 "github.com/serbero/serbero/gen/go/serbero/mediationsvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/services/mediationsvc/internal/store"
)

// Deps are what mediationsvc needs from the process.
type Deps struct {
	Authsvc    authsvcv1.AuthServiceClient
	Config     *config.Config
	Intakesvc  intakesvcv1.IntakeServiceClient
	Logger     *slog.Logger
	Pool       *pgxpool.Pool
	Registerer prometheus.Registerer
	Relaygw    relaygwv1.RelayGatewayServiceClient
	// Stopping is cancelled when the process starts to stop; stream
	// handlers end when it is.
	Stopping context.Context
}

// Service is mediationsvc.
type Service struct {
	mediationsvcv1.UnimplementedMediationServiceServer
	deps  Deps
	store *store.Store
}

// New builds mediationsvc.
func New(deps Deps) (*Service, error) {
	if deps.Pool == nil || deps.Logger == nil || deps.Config == nil {
		return nil, errors.New("mediationsvc: Pool, Logger and Config are required")
	}
	return &Service{deps: deps, store: store.New(deps.Pool)}, nil
}

// Register registers the gRPC API.
func (s *Service) Register(gs *grpc.Server) { mediationsvcv1.RegisterMediationServiceServer(gs, s) }

// Run idles until ctx is cancelled: the mediation engine is not built yet.
func (s *Service) Run(ctx context.Context) error {
	if s.deps.Config.Mediation.Enabled {
		s.deps.Logger.Warn("[mediation].enabled = true, but this build has no mediation engine yet; phase 3 stays off (phases 1, 2 and 4 are unaffected)")
	}
	<-ctx.Done()
	return nil
}

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// GetSession implements MediationService.
func (s *Service) GetSession(ctx context.Context, req *mediationsvcv1.GetSessionRequest) (*mediationsvcv1.GetSessionResponse, error) {
	if req.GetSessionId() == "" {
		return nil, apperr.InvalidArgument("session_id is required")
	}
	sess, err := s.store.Session(ctx, req.GetSessionId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, apperr.NotFound("session %s not found", req.GetSessionId())
	}
	if err != nil {
		return nil, err
	}
	return &mediationsvcv1.GetSessionResponse{Session: sessionProto(sess)}, nil
}

// ListSessions implements MediationService.
func (s *Service) ListSessions(ctx context.Context, req *mediationsvcv1.ListSessionsRequest) (*mediationsvcv1.ListSessionsResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, apperr.InvalidArgument("page_size must not be negative")
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	sessions, err := s.store.ListSessions(ctx, req.GetDisputeId(), req.GetStates(), size)
	if err != nil {
		return nil, err
	}
	out := &mediationsvcv1.ListSessionsResponse{}
	for _, sess := range sessions {
		out.Sessions = append(out.Sessions, sessionProto(sess))
	}
	return out, nil
}

// ListAuditEvents implements MediationService.
func (s *Service) ListAuditEvents(ctx context.Context, req *mediationsvcv1.ListAuditEventsRequest) (*mediationsvcv1.ListAuditEventsResponse, error) {
	if req.GetDisputeId() == "" {
		return nil, apperr.InvalidArgument("dispute_id is required")
	}
	events, err := s.store.AuditTrail(ctx, req.GetDisputeId())
	if err != nil {
		return nil, err
	}
	out := &mediationsvcv1.ListAuditEventsResponse{}
	for _, e := range events {
		out.Events = append(out.Events, &mediationsvcv1.AuditEvent{
			Id:             e.ID,
			SessionId:      deref(e.SessionID),
			Kind:           e.Kind,
			PayloadJson:    e.PayloadJSON,
			RationaleId:    deref(e.RationaleID),
			PromptBundleId: deref(e.PromptBundleID),
			PolicyHash:     deref(e.PolicyHash),
			OccurredAt:     unix(e.OccurredAt),
		})
	}
	return out, nil
}

func sessionProto(s store.Session) *mediationsvcv1.Session {
	return &mediationsvcv1.Session{
		SessionId:        s.SessionID,
		DisputeId:        s.DisputeID,
		State:            s.State,
		RoundCount:       int32(s.RoundCount),
		PromptBundleId:   s.PromptBundleID,
		PolicyHash:       s.PolicyHash,
		StartedAt:        unix(s.StartedAt),
		LastTransitionAt: unix(s.LastTransitionAt),
	}
}

func unix(sec int64) *timestamppb.Timestamp { return timestamppb.New(time.Unix(sec, 0)) }

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
