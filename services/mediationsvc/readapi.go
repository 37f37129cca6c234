package mediationsvc

// The read API (GetSession, ListSessions, ListAuditEvents): what operators
// see of phase 3 through `serbero ctl sessions` and `serbero ctl disputes
// get`. Transcript content is party chat plaintext: these handlers serve it
// to the operator and never log it; rationale text is never served here
// (only rationale ids).

import (
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	mediationsvcv1 "github.com/serbero/serbero/gen/go/serbero/mediationsvc/v1"
	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/services/mediationsvc/internal/store"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// GetSession implements MediationService: the session, its transcript,
// its classification history, its rationale ids and its audit events.
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
	out := &mediationsvcv1.GetSessionResponse{Session: sessionProto(sess)}

	msgs, err := s.store.Transcript(ctx, sess.SessionID)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		out.Transcript = append(out.Transcript, &mediationsvcv1.TranscriptMessage{
			Id: m.ID, Direction: m.Direction, Party: m.Party, InnerEventId: m.InnerEventID,
			CreatedAt: unix(m.InnerCreatedAt), PersistedAt: unix(m.PersistedAt), Stale: m.Stale, Content: m.Content,
		})
	}

	events, err := audit.SessionEvents(ctx, s.deps.Pool, sess.SessionID)
	if err != nil {
		return nil, err
	}
	for _, e := range events {
		out.Events = append(out.Events, auditEventProto(e))
		if c, ok := classificationOf(e); ok {
			out.Classifications = append(out.Classifications, c)
		}
	}

	rationales, err := s.store.SessionRationales(ctx, sess.SessionID)
	if err != nil {
		return nil, err
	}
	for _, r := range rationales {
		out.Rationales = append(out.Rationales, &mediationsvcv1.RationaleRef{
			RationaleId: r.RationaleID, Operation: r.Operation, Provider: r.Provider, Model: r.Model, GeneratedAt: unix(r.GeneratedAt),
		})
	}
	return out, nil
}

// classificationOf returns the classification an audit row records
// (classification_produced or summary_generated); a row whose payload does
// not decode is shown in the events only.
func classificationOf(e audit.Record) (*mediationsvcv1.Classification, bool) {
	var label, rationaleID string
	var confidence float64
	switch e.Kind {
	case audit.KindClassificationProduced:
		p, err := audit.Decode[audit.ClassificationProduced](e)
		if err != nil {
			return nil, false
		}
		label, confidence, rationaleID = p.Classification, p.Confidence, p.RationaleID
	case audit.KindSummaryGenerated:
		p, err := audit.Decode[audit.SummaryGenerated](e)
		if err != nil {
			return nil, false
		}
		label, confidence, rationaleID = p.Classification, p.Confidence, p.RationaleID
	default:
		return nil, false
	}
	if rationaleID == "" {
		rationaleID = deref(e.RationaleID)
	}
	return &mediationsvcv1.Classification{
		AuditEventId: e.ID, Kind: string(e.Kind), Classification: label, Confidence: confidence,
		RationaleId: rationaleID, OccurredAt: unix(e.OccurredAt),
	}, true
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
	sessionIDs, err := s.store.SessionIDs(ctx, req.GetDisputeId())
	if err != nil {
		return nil, err
	}
	events, err := audit.Trail(ctx, s.deps.Pool, req.GetDisputeId(), sessionIDs)
	if err != nil {
		return nil, err
	}
	out := &mediationsvcv1.ListAuditEventsResponse{}
	for _, e := range events {
		out.Events = append(out.Events, auditEventProto(e))
	}
	return out, nil
}

func auditEventProto(e audit.Record) *mediationsvcv1.AuditEvent {
	return &mediationsvcv1.AuditEvent{
		Id:             e.ID,
		SessionId:      deref(e.SessionID),
		Kind:           string(e.Kind),
		PayloadJson:    string(e.Payload),
		RationaleId:    deref(e.RationaleID),
		PromptBundleId: deref(e.PromptBundleID),
		PolicyHash:     deref(e.PolicyHash),
		OccurredAt:     unix(e.OccurredAt),
	}
}

func sessionProto(s store.Session) *mediationsvcv1.Session {
	return &mediationsvcv1.Session{
		SessionId:             s.SessionID,
		DisputeId:             s.DisputeID,
		State:                 s.State,
		RoundCount:            int32(s.RoundCount),
		PromptBundleId:        s.PromptBundleID,
		PolicyHash:            s.PolicyHash,
		StartedAt:             unix(s.StartedAt),
		LastTransitionAt:      unix(s.LastTransitionAt),
		AssignedSolver:        s.AssignedSolver,
		CurrentClassification: s.CurrentClassification,
		CurrentConfidence:     s.CurrentConfidence,
	}
}

func unix(sec int64) *timestamppb.Timestamp { return timestamppb.New(time.Unix(sec, 0)) }

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
