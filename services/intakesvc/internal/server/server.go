// Package server is intakesvc's gRPC API, handlers only: each validates
// the request, calls the store (reads) or the take recorder, and converts
// the result to proto. Errors are apperr kinds (with a typed reason where a
// caller must tell failures apart); pkg/grpcserver's error boundary maps
// them to gRPC statuses. Streams end through stream.Context(), which the
// server cancels at shutdown.
package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/types/known/timestamppb"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/services/intakesvc/internal/changefeed"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
	"github.com/serbero/serbero/services/intakesvc/internal/take"
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
	st      *store.Store
	takes   *take.Recorder
	changes *changefeed.Broadcast
	clock   clockwork.Clock
	poll    time.Duration
}

// New returns the API: reads from st, takes recorded by takes, change
// streams woken by changes (and polling on clock; nil is the real clock).
func New(st *store.Store, takes *take.Recorder, changes *changefeed.Broadcast, clock clockwork.Clock) *Server {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	return &Server{st: st, takes: takes, changes: changes, clock: clock, poll: 2 * time.Second}
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
		var key store.PageKey
		if err := decodeToken(tok, &key); err != nil || key.DisputeID == "" {
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
		tok, err := encodeToken(next)
		if err != nil {
			return nil, err
		}
		out.NextPageToken = tok
	}
	return out, nil
}

// WatchDisputes streams changes after the cursor, then follows new ones,
// until the client leaves or the server stops (stream.Context() ends).
func (s *Server) WatchDisputes(req *intakesvcv1.WatchDisputesRequest, stream intakesvcv1.IntakeService_WatchDisputesServer) error {
	ctx := stream.Context()
	cursor := req.GetAfterCursor()
	if cursor < 0 {
		return apperr.InvalidArgument("after_cursor must not be negative")
	}
	if c := req.GetConsumer(); c != "" {
		if !validConsumer(c) {
			return apperr.InvalidArgument("consumer must be at most 64 characters of a-z, 0-9, '.', '_', '-'")
		}
		if err := s.st.RecordConsumer(ctx, c, cursor); err != nil {
			return apperr.Wrap(apperr.KindUnavailable, err, "record the consumer's cursor")
		}
	}
	for {
		wake := s.changes.C()
		changes, err := s.st.ChangesAfter(ctx, cursor, watchBatch)
		var expired *store.CursorExpiredError
		if errors.As(err, &expired) {
			return apperr.WithReason(apperr.FailedPrecondition("after_cursor %d is older than the retained changes "+
				"(every change up to %d was removed); resume with after_cursor 0 and reconcile with ListDisputes",
				expired.Cursor, expired.Horizon),
				intakesvcv1.WatchErrorReason_WATCH_ERROR_REASON_CURSOR_EXPIRED.String())
		}
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
		t := s.clock.NewTimer(s.poll)
		select {
		case <-wake:
		case <-t.Chan():
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

// validConsumer: at most 64 characters of a-z, 0-9, '.', '_', '-'.
func validConsumer(c string) bool {
	if len(c) > 64 {
		return false
	}
	for _, r := range c {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '.' && r != '_' && r != '-' {
			return false
		}
	}
	return true
}

// RecordSerberoTake records a stage of Serbero's own take of a dispute.
func (s *Server) RecordSerberoTake(ctx context.Context, req *intakesvcv1.RecordSerberoTakeRequest) (*intakesvcv1.RecordSerberoTakeResponse, error) {
	if req.GetDisputeId() == "" {
		return nil, apperr.InvalidArgument("dispute_id is required")
	}
	var stage take.Stage
	switch req.GetStage() {
	case intakesvcv1.TakeStage_TAKE_STAGE_INTENT:
		stage = take.Intent
	case intakesvcv1.TakeStage_TAKE_STAGE_SUCCEEDED:
		stage = take.Succeeded
	case intakesvcv1.TakeStage_TAKE_STAGE_FAILED:
		stage = take.Failed
	default:
		return nil, apperr.InvalidArgument("stage is required")
	}
	ttl := 60 * time.Second
	if d := req.GetIntentTtl(); d != nil {
		if ttl = d.AsDuration(); ttl <= 0 || ttl > 5*time.Minute {
			return nil, apperr.InvalidArgument("intent_ttl must be in (0, 5m]")
		}
	}
	d, err := s.takes.Record(ctx, req.GetDisputeId(), stage, ttl)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apperr.NotFound("dispute %q not found", req.GetDisputeId())
	}
	if err != nil {
		return nil, err
	}
	return &intakesvcv1.RecordSerberoTakeResponse{Dispute: DisputeProto(d)}, nil
}

// ListQuarantinedEvents lists the quarantine, most recently seen first.
func (s *Server) ListQuarantinedEvents(ctx context.Context, req *intakesvcv1.ListQuarantinedEventsRequest) (*intakesvcv1.ListQuarantinedEventsResponse, error) {
	limit := int(req.GetPageSize())
	if limit <= 0 {
		limit = DefaultPageSize
	}
	limit = min(limit, MaxPageSize)
	var after *store.QuarantineKey
	if tok := req.GetPageToken(); tok != "" {
		var key store.QuarantineKey
		if err := decodeToken(tok, &key); err != nil || key.EventID == "" {
			return nil, apperr.InvalidArgument("invalid page_token")
		}
		after = &key
	}
	list, next, err := s.st.ListQuarantine(ctx, limit, after)
	if err != nil {
		return nil, err
	}
	out := &intakesvcv1.ListQuarantinedEventsResponse{}
	for _, q := range list {
		out.Events = append(out.Events, &intakesvcv1.QuarantinedEvent{
			EventId: q.EventID, Cursor: q.Cursor, DisputeId: q.DisputeID, Class: q.Class, Reason: q.Reason,
			FirstSeenAt: timestamppb.New(q.FirstSeen), LastSeenAt: timestamppb.New(q.LastSeen), SeenCount: q.SeenCount,
		})
	}
	if next != nil {
		tok, err := encodeToken(next)
		if err != nil {
			return nil, err
		}
		out.NextPageToken = tok
	}
	return out, nil
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

// encodeToken is the page token of a listing position: base64url of its
// JSON, opaque to clients.
func encodeToken(v any) (string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode page token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// decodeToken reads a page token a client sent back into v; a token that
// is not one encodeToken made is an error (never a panic).
func decodeToken(tok string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return fmt.Errorf("page token: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("page token: %w", err)
	}
	if dec.More() {
		return errors.New("page token: trailing data")
	}
	return nil
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
