// Package server holds escalationsvc's gRPC handlers (the admin API over
// the handoff queue): validate, call pkg/handoff or the store, convert.
// They answer whether or not the dispatcher runs.
package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	escalationsvcv1 "github.com/serbero/serbero/gen/go/serbero/escalationsvc/v1"
	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/services/escalationsvc/internal/store"
)

// Page sizes of ListHandoffs.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Server implements escalationsvcv1.EscalationServiceServer.
type Server struct {
	escalationsvcv1.UnimplementedEscalationServiceServer
	db    handoff.DB
	store *store.Store
	log   *slog.Logger
}

// New returns the handlers over db (the queue) and st (the dispatch rows).
func New(db handoff.DB, st *store.Store, log *slog.Logger) *Server {
	return &Server{db: db, store: st, log: log}
}

var statusToProto = map[handoff.Status]escalationsvcv1.HandoffStatus{
	handoff.StatusPending: escalationsvcv1.HandoffStatus_HANDOFF_STATUS_PENDING,
	handoff.StatusClaimed: escalationsvcv1.HandoffStatus_HANDOFF_STATUS_CLAIMED,
	handoff.StatusDone:    escalationsvcv1.HandoffStatus_HANDOFF_STATUS_DONE,
	handoff.StatusParked:  escalationsvcv1.HandoffStatus_HANDOFF_STATUS_PARKED,
	handoff.StatusFailed:  escalationsvcv1.HandoffStatus_HANDOFF_STATUS_FAILED,
}

// ListHandoffs lists queue rows by id, filtered by status and dispute, a
// page at a time.
func (s *Server) ListHandoffs(ctx context.Context, req *escalationsvcv1.ListHandoffsRequest) (*escalationsvcv1.ListHandoffsResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, apperr.InvalidArgument("page_size must not be negative")
	case size == 0:
		size = DefaultPageSize
	case size > MaxPageSize:
		size = MaxPageSize
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
	hs, err := handoff.List(ctx, s.db, handoff.ListOptions{Statuses: statuses, AfterID: req.GetAfterId(), DisputeID: req.GetDisputeId(), Limit: size + 1})
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

// GetHandoff returns one queue row and its dispatch row, if any.
func (s *Server) GetHandoff(ctx context.Context, req *escalationsvcv1.GetHandoffRequest) (*escalationsvcv1.GetHandoffResponse, error) {
	if req.GetId() <= 0 {
		return nil, apperr.InvalidArgument("id is required")
	}
	h, err := handoff.Get(ctx, s.db, req.GetId())
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

// RequeueHandoff makes a parked or failed handoff due now.
func (s *Server) RequeueHandoff(ctx context.Context, req *escalationsvcv1.RequeueHandoffRequest) (*escalationsvcv1.RequeueHandoffResponse, error) {
	if req.GetId() <= 0 {
		return nil, apperr.InvalidArgument("id is required")
	}
	h, err := handoff.Requeue(ctx, s.db, req.GetId())
	switch {
	case errors.Is(err, handoff.ErrNotFound):
		return nil, apperr.NotFound("handoff %d not found", req.GetId())
	case errors.Is(err, handoff.ErrNotRequeueable):
		return nil, apperr.FailedPrecondition("handoff %d is %s; only parked or failed handoffs can be requeued", req.GetId(), h.Status)
	case err != nil:
		return nil, err
	}
	s.log.Info("phase4: handoff requeued by an operator", "handoff_id", h.ID, "handoff_event_id", h.HandoffEventID)
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
