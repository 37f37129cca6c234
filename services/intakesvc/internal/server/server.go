// Package server is intakesvc's gRPC API: a thin adapter from proto to the
// store and engine and back. Errors are apperr kinds; the gRPC error
// boundary maps them to codes.
package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/services/intakesvc/internal/engine"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// Page sizes of ListDisputes and the batch size of WatchDisputes reads.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
	watchBatch      = 500
)

// Server implements intakesvcv1.IntakeServiceServer.
type Server struct {
	intakesvcv1.UnimplementedIntakeServiceServer
	st       *store.Store
	eng      *engine.Engine
	changes  *engine.Broadcast
	stopping context.Context
	poll     time.Duration
}

// New returns the API. stopping ends WatchDisputes streams when the
// process starts to stop.
func New(st *store.Store, eng *engine.Engine, changes *engine.Broadcast, stopping context.Context) *Server {
	if stopping == nil {
		stopping = context.Background()
	}
	return &Server{st: st, eng: eng, changes: changes, stopping: stopping, poll: 2 * time.Second}
}

// GetDispute returns one dispute with its history.
func (s *Server) GetDispute(ctx context.Context, req *intakesvcv1.GetDisputeRequest) (*intakesvcv1.GetDisputeResponse, error) {
	if req.GetDisputeId() == "" {
		return nil, apperr.InvalidArgument("dispute_id is required")
	}
	d, ts, ns, err := s.st.GetDispute(ctx, req.GetDisputeId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, apperr.NotFound("dispute %q not found", req.GetDisputeId())
	}
	if err != nil {
		return nil, err
	}
	out := &intakesvcv1.GetDisputeResponse{Dispute: DisputeProto(d)}
	for _, t := range ts {
		out.Transitions = append(out.Transitions, TransitionProto(t))
	}
	for _, n := range ns {
		out.Notifications = append(out.Notifications, &intakesvcv1.Notification{
			Id: n.ID, SolverPubkey: n.SolverPubkey, SentAt: ts64(n.SentAt), Status: n.Status,
			ErrorMessage: n.ErrorMessage, NotifType: n.NotifType,
		})
	}
	return out, nil
}

// ListDisputes lists disputes newest detection first.
func (s *Server) ListDisputes(ctx context.Context, req *intakesvcv1.ListDisputesRequest) (*intakesvcv1.ListDisputesResponse, error) {
	f := store.ListFilter{Limit: int(req.GetPageSize())}
	if f.Limit <= 0 {
		f.Limit = DefaultPageSize
	}
	if f.Limit > MaxPageSize {
		f.Limit = MaxPageSize
	}
	for _, st := range req.GetStates() {
		ls, ok := stateFromProto(st)
		if !ok {
			return nil, apperr.InvalidArgument("unknown lifecycle state %v", st)
		}
		f.States = append(f.States, ls)
	}
	if req.GetDetectedAfter() != nil {
		f.DetectedAfter = req.GetDetectedAfter().GetSeconds()
	}
	if req.GetDetectedBefore() != nil {
		f.DetectedBefore = req.GetDetectedBefore().GetSeconds()
	}
	if tok := req.GetPageToken(); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		var key store.PageKey
		if err != nil || json.Unmarshal(raw, &key) != nil || key.DisputeID == "" {
			return nil, apperr.InvalidArgument("invalid page_token")
		}
		f.After = &key
	}
	list, next, err := s.st.ListDisputes(ctx, f)
	if err != nil {
		return nil, err
	}
	out := &intakesvcv1.ListDisputesResponse{}
	for _, d := range list {
		out.Disputes = append(out.Disputes, DisputeProto(d))
	}
	if next != nil {
		raw, err := json.Marshal(next)
		if err != nil {
			return nil, fmt.Errorf("encode page token: %w", err)
		}
		out.NextPageToken = base64.RawURLEncoding.EncodeToString(raw)
	}
	return out, nil
}

// WatchDisputes streams changes after the cursor, then follows new ones,
// until the client leaves or the process stops.
func (s *Server) WatchDisputes(req *intakesvcv1.WatchDisputesRequest, stream intakesvcv1.IntakeService_WatchDisputesServer) error {
	ctx := stream.Context()
	cursor := req.GetAfterCursor()
	if cursor < 0 {
		return apperr.InvalidArgument("after_cursor must not be negative")
	}
	for {
		wake := s.changes.C()
		changes, err := s.st.ChangesAfter(ctx, cursor, watchBatch)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return apperr.Wrap(apperr.KindUnavailable, err, "read dispute changes")
		}
		for _, c := range changes {
			if err := stream.Send(ChangeProto(c)); err != nil {
				return err
			}
			cursor = c.ID
		}
		if len(changes) == watchBatch {
			continue
		}
		t := time.NewTimer(s.poll)
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-s.stopping.Done():
			t.Stop()
			return apperr.Unavailable("intakesvc is stopping; reconnect with the last cursor")
		}
		t.Stop()
	}
}

// RecordSerberoTake records a stage of Serbero's own take of a dispute.
func (s *Server) RecordSerberoTake(ctx context.Context, req *intakesvcv1.RecordSerberoTakeRequest) (*intakesvcv1.RecordSerberoTakeResponse, error) {
	if req.GetDisputeId() == "" {
		return nil, apperr.InvalidArgument("dispute_id is required")
	}
	var stage engine.TakeStage
	switch req.GetStage() {
	case intakesvcv1.TakeStage_TAKE_STAGE_INTENT:
		stage = engine.TakeIntent
	case intakesvcv1.TakeStage_TAKE_STAGE_SUCCEEDED:
		stage = engine.TakeSucceeded
	case intakesvcv1.TakeStage_TAKE_STAGE_FAILED:
		stage = engine.TakeFailed
	default:
		return nil, apperr.InvalidArgument("stage is required")
	}
	ttl := 60 * time.Second
	if d := req.GetIntentTtl(); d != nil {
		if ttl = d.AsDuration(); ttl <= 0 || ttl > 5*time.Minute {
			return nil, apperr.InvalidArgument("intent_ttl must be in (0, 5m]")
		}
	}
	d, err := s.eng.RecordTake(ctx, req.GetDisputeId(), stage, ttl)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apperr.NotFound("dispute %q not found", req.GetDisputeId())
	}
	if err != nil {
		return nil, err
	}
	return &intakesvcv1.RecordSerberoTakeResponse{Dispute: DisputeProto(d)}, nil
}

// DisputeProto converts a stored dispute.
func DisputeProto(d store.Dispute) *intakesvcv1.Dispute {
	out := &intakesvcv1.Dispute{
		DisputeId: d.DisputeID, EventId: d.EventID, MostroPubkey: d.MostroPubkey, InitiatorRole: d.InitiatorRole,
		DisputeStatus: d.DisputeStatus, EventTimestamp: ts64(d.EventTimestamp), DetectedAt: ts64(d.DetectedAt),
		LifecycleState: StateProto(d.LifecycleState), AssignedSolver: deref(d.AssignedSolver),
		LastNotifiedAt: tsPtr(d.LastNotifiedAt), LastStateChange: tsPtr(d.LastStateChange),
		NewestEventId: d.EventID, NewestEventCreatedAt: ts64(d.EventTimestamp), OpenedAt: tsPtr(d.OpenedAt),
	}
	if d.NewestEventID != nil && d.NewestCreatedAt != nil {
		out.NewestEventId, out.NewestEventCreatedAt = *d.NewestEventID, ts64(*d.NewestCreatedAt)
	}
	return out
}

// TransitionProto converts a stored transition.
func TransitionProto(t store.Transition) *intakesvcv1.Transition {
	return &intakesvcv1.Transition{Id: t.ID, FromState: StateProto(t.From), ToState: StateProto(t.To),
		TransitionedAt: ts64(t.TransitionedAt), Trigger: t.Trigger}
}

// ChangeProto converts a feed row.
func ChangeProto(c store.Change) *intakesvcv1.WatchDisputesResponse {
	out := &intakesvcv1.WatchDisputesResponse{Cursor: c.ID, Dispute: DisputeProto(c.Dispute)}
	switch c.Kind {
	case store.ChangeDetected:
		out.Kind = intakesvcv1.ChangeKind_CHANGE_KIND_DETECTED
	case store.ChangeTransitioned:
		out.Kind = intakesvcv1.ChangeKind_CHANGE_KIND_TRANSITIONED
	case store.ChangeUpdated:
		out.Kind = intakesvcv1.ChangeKind_CHANGE_KIND_UPDATED
	}
	if c.Transition != nil {
		out.Transition = TransitionProto(*c.Transition)
	}
	return out
}

var states = map[lifecycle.State]intakesvcv1.LifecycleState{
	lifecycle.New:       intakesvcv1.LifecycleState_LIFECYCLE_STATE_NEW,
	lifecycle.Notified:  intakesvcv1.LifecycleState_LIFECYCLE_STATE_NOTIFIED,
	lifecycle.Taken:     intakesvcv1.LifecycleState_LIFECYCLE_STATE_TAKEN,
	lifecycle.Waiting:   intakesvcv1.LifecycleState_LIFECYCLE_STATE_WAITING,
	lifecycle.Escalated: intakesvcv1.LifecycleState_LIFECYCLE_STATE_ESCALATED,
	lifecycle.Resolved:  intakesvcv1.LifecycleState_LIFECYCLE_STATE_RESOLVED,
}

// StateProto converts a lifecycle state (UNSPECIFIED for "").
func StateProto(s lifecycle.State) intakesvcv1.LifecycleState { return states[s] }

func stateFromProto(p intakesvcv1.LifecycleState) (lifecycle.State, bool) {
	for k, v := range states {
		if v == p {
			return k, true
		}
	}
	return "", false
}

func ts64(sec int64) *timestamppb.Timestamp { return timestamppb.New(time.Unix(sec, 0)) }

func tsPtr(sec *int64) *timestamppb.Timestamp {
	if sec == nil {
		return nil
	}
	return ts64(*sec)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
