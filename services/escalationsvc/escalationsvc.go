// Package escalationsvc turns escalation handoffs into escalation_handoff/v1
// DMs to human solvers (phase 4, spec 10 Part B).
//
// Handoffs arrive in the shared handoffs table (pkg/handoff), written by
// mediationsvc in the transaction of its escalation. Any number of
// escalationsvc replicas claim them (FOR UPDATE SKIP LOCKED), woken by
// LISTEN/NOTIFY within milliseconds of the commit and by a jittered poll
// every [escalation].dispatch_interval_seconds as the fallback. Each handoff
// goes through the reference's pipeline (parse, dispute lookup, supersession
// gate, routing, body, sends through relaygw with idempotency keys, one
// transaction recording the dispatch and its audit row and consuming the
// queue row). Handoffs that cannot be routed yet, or whose dispute is
// resolved, are parked with a backoff instead of being rescanned first, so
// they never starve newer ones. The admin API lists, shows and requeues
// handoffs, and answers even with [escalation].enabled = false.
package escalationsvc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	escalationsvcv1 "github.com/serbero/serbero/gen/go/serbero/escalationsvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/services/escalationsvc/internal/dispatcher"
	"github.com/serbero/serbero/services/escalationsvc/internal/metrics"
	"github.com/serbero/serbero/services/escalationsvc/internal/store"
)

// Deps are what escalationsvc needs from the process.
type Deps struct {
	Config     *config.Config
	Logger     *slog.Logger
	Pool       *pgxpool.Pool
	Registerer prometheus.Registerer
	Relaygw    relaygwv1.RelayGatewayServiceClient
	// Stopping is cancelled when the process starts to stop; stream
	// handlers end when it is.
	Stopping context.Context
	// Tuning adjusts the dispatcher; the zero value is the production
	// default.
	Tuning Tuning
}

// Tuning holds dispatcher knobs that are not configuration keys.
type Tuning struct {
	// Owner names this replica in the queue; default host-pid-random.
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
	// PollInterval and ClaimTimeout, when set, override
	// [escalation].dispatch_interval_seconds and claim_timeout_seconds
	// (tests and benchmarks need sub-second values).
	PollInterval time.Duration
	ClaimTimeout time.Duration
}

// Service is escalationsvc.
type Service struct {
	escalationsvcv1.UnimplementedEscalationServiceServer
	deps  Deps
	disp  *dispatcher.Dispatcher
	store *store.Store
}

// New builds escalationsvc.
func New(deps Deps) (*Service, error) {
	if deps.Pool == nil || deps.Logger == nil || deps.Config == nil {
		return nil, errors.New("escalationsvc: Pool, Logger and Config are required")
	}
	if deps.Config.Escalation.Enabled && deps.Relaygw == nil {
		return nil, errors.New("escalationsvc: a relaygw client is required when [escalation].enabled = true")
	}
	esc := deps.Config.Escalation
	poll := time.Duration(esc.DispatchIntervalSeconds) * time.Second
	if deps.Tuning.PollInterval > 0 {
		poll = deps.Tuning.PollInterval
	}
	claim := time.Duration(esc.ClaimTimeoutSeconds) * time.Second
	if deps.Tuning.ClaimTimeout > 0 {
		claim = deps.Tuning.ClaimTimeout
	}
	var sender dispatcher.Sender
	if deps.Relaygw != nil {
		sender = deps.Relaygw
	}
	disp := dispatcher.New(dispatcher.Options{
		Pool:                 deps.Pool,
		Sender:               sender,
		Logger:               deps.Logger,
		Metrics:              metrics.New(deps.Registerer, deps.Pool, deps.Logger),
		Solvers:              deps.Config.Solvers,
		FallbackToAllSolvers: esc.FallbackToAllSolvers,
		PollInterval:         poll,
		ClaimTimeout:         claim,
		Owner:                deps.Tuning.Owner,
		Workers:              deps.Tuning.Workers,
		MaxErrors:            deps.Tuning.MaxErrors,
		ParkBackoff:          deps.Tuning.ParkBackoff,
		RetryBackoff:         deps.Tuning.RetryBackoff,
	})
	return &Service{deps: deps, disp: disp, store: store.New(deps.Pool)}, nil
}

// Register registers the gRPC API.
func (s *Service) Register(gs *grpc.Server) { escalationsvcv1.RegisterEscalationServiceServer(gs, s) }

// Run dispatches handoffs until ctx is cancelled; with [escalation].enabled
// = false it only idles (FR-216: no dispatcher at all).
func (s *Service) Run(ctx context.Context) error {
	cfg := s.deps.Config
	if !cfg.Escalation.Enabled {
		s.deps.Logger.Info("phase4_dispatcher_disabled")
		<-ctx.Done()
		return nil
	}
	s.deps.Logger.Info("phase4_dispatcher_enabled",
		"dispatch_interval_seconds", cfg.Escalation.DispatchIntervalSeconds,
		"fallback_to_all_solvers", cfg.Escalation.FallbackToAllSolvers,
		"write_solver_count", len(cfg.WriteSolvers()))
	if !s.disp.Routable() {
		s.deps.Logger.Warn("phase4: no write-permission solver configured and no fallback broadcast; every handoff will be unroutable " +
			"(set [escalation].fallback_to_all_solvers = true with at least one configured solver, or add a write-permission solver)")
	}
	return s.disp.Run(ctx)
}

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

var statusToProto = map[handoff.Status]escalationsvcv1.HandoffStatus{
	handoff.StatusPending: escalationsvcv1.HandoffStatus_HANDOFF_STATUS_PENDING,
	handoff.StatusClaimed: escalationsvcv1.HandoffStatus_HANDOFF_STATUS_CLAIMED,
	handoff.StatusDone:    escalationsvcv1.HandoffStatus_HANDOFF_STATUS_DONE,
	handoff.StatusParked:  escalationsvcv1.HandoffStatus_HANDOFF_STATUS_PARKED,
	handoff.StatusFailed:  escalationsvcv1.HandoffStatus_HANDOFF_STATUS_FAILED,
}

// ListHandoffs implements EscalationService.
func (s *Service) ListHandoffs(ctx context.Context, req *escalationsvcv1.ListHandoffsRequest) (*escalationsvcv1.ListHandoffsResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, apperr.InvalidArgument("page_size must not be negative")
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	if req.GetAfterId() < 0 {
		return nil, apperr.InvalidArgument("after_id must not be negative")
	}
	var statuses []handoff.Status
	for _, ps := range req.GetStatuses() {
		found := false
		for st, p := range statusToProto {
			if p == ps {
				statuses, found = append(statuses, st), true
			}
		}
		if !found {
			return nil, apperr.InvalidArgument("unknown handoff status %v", ps)
		}
	}
	hs, err := handoff.List(ctx, s.deps.Pool, handoff.ListOptions{Statuses: statuses, AfterID: req.GetAfterId(), Limit: size + 1})
	if err != nil {
		return nil, err
	}
	out := &escalationsvcv1.ListHandoffsResponse{}
	if len(hs) > size {
		hs = hs[:size]
		out.NextAfterId = hs[size-1].ID
	}
	for i := range hs {
		out.Handoffs = append(out.Handoffs, handoffProto(&hs[i]))
	}
	return out, nil
}

// GetHandoff implements EscalationService.
func (s *Service) GetHandoff(ctx context.Context, req *escalationsvcv1.GetHandoffRequest) (*escalationsvcv1.GetHandoffResponse, error) {
	if req.GetId() <= 0 {
		return nil, apperr.InvalidArgument("id is required")
	}
	h, err := handoff.Get(ctx, s.deps.Pool, req.GetId())
	if errors.Is(err, handoff.ErrNotFound) {
		return nil, apperr.NotFound("handoff %d not found", req.GetId())
	}
	if err != nil {
		return nil, err
	}
	out := &escalationsvcv1.GetHandoffResponse{Handoff: handoffProto(&h)}
	d, found, err := s.store.DispatchOf(ctx, h.HandoffEventID)
	if err != nil {
		return nil, err
	}
	if found {
		out.Dispatch = &escalationsvcv1.Dispatch{
			DispatchId: d.DispatchID, TargetSolver: d.TargetSolver, Status: d.Status,
			FallbackBroadcast: d.FallbackBroadcast, DispatchedAt: timestamppb.New(time.Unix(d.DispatchedAt, 0)),
		}
	}
	return out, nil
}

// RequeueHandoff implements EscalationService.
func (s *Service) RequeueHandoff(ctx context.Context, req *escalationsvcv1.RequeueHandoffRequest) (*escalationsvcv1.RequeueHandoffResponse, error) {
	if req.GetId() <= 0 {
		return nil, apperr.InvalidArgument("id is required")
	}
	h, err := handoff.Requeue(ctx, s.deps.Pool, req.GetId())
	switch {
	case errors.Is(err, handoff.ErrNotFound):
		return nil, apperr.NotFound("handoff %d not found", req.GetId())
	case errors.Is(err, handoff.ErrNotRequeueable):
		return nil, apperr.FailedPrecondition("handoff %d is %s; only parked or failed handoffs can be requeued", req.GetId(), h.Status)
	case err != nil:
		return nil, err
	}
	s.deps.Logger.Info("phase4: handoff requeued by an operator", "handoff_id", h.ID, "handoff_event_id", h.HandoffEventID)
	return &escalationsvcv1.RequeueHandoffResponse{Handoff: handoffProto(&h)}, nil
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func handoffProto(h *handoff.Handoff) *escalationsvcv1.Handoff {
	p := &escalationsvcv1.Handoff{
		Id:                h.ID,
		HandoffEventId:    h.HandoffEventID,
		DisputeId:         h.DisputeID,
		Trigger:           h.Trigger,
		Status:            statusToProto[h.Status],
		Attempts:          int32(h.Attempts),
		NextAttemptAt:     ts(h.NextAttemptAt),
		LastError:         h.LastError,
		CreatedAt:         ts(h.CreatedAt),
		Outcome:           string(h.Outcome),
		PayloadJson:       h.PayloadJSON,
		ClaimedBy:         h.ClaimedBy,
		ClaimDeadline:     ts(h.ClaimDeadline),
		ParkedReason:      string(h.ParkedReason),
		ConsecutiveErrors: int32(h.ConsecutiveErrors),
		FinishedAt:        ts(h.FinishedAt),
	}
	if h.SessionID != nil {
		p.SessionId = *h.SessionID
	}
	return p
}
