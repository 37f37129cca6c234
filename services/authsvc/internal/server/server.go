// Package server holds authsvc's gRPC handlers: each validates its request,
// hands it to the engine and converts the result. Caller text is cleaned
// (printable, bounded by characters, valid UTF-8) before it reaches the
// state row, the audit trail or a log line.
package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/pkg/textcut"
	"github.com/serbero/serbero/services/authsvc/internal/engine"
	"github.com/serbero/serbero/services/authsvc/internal/revalidation"
)

// The bounds of caller text, in characters.
const (
	maxDisputeID = 64
	maxReason    = 200
	maxCantDo    = 64
	maxStatus    = 32
	// MaxClaimerID bounds ClaimProbeRequest.claimer_id, which is refused
	// (never shortened) past it: two claimers must stay distinct.
	MaxClaimerID = 128
)

// Server implements authsvcv1.AuthServiceServer on an engine.
type Server struct {
	authsvcv1.UnimplementedAuthServiceServer
	engine *engine.Engine
}

// New returns the handlers of eng.
func New(eng *engine.Engine) *Server { return &Server{engine: eng} }

// current returns the cached state, loading it once if this replica has
// not yet (the first call after start).
func (s *Server) current(ctx context.Context) (*engine.Snapshot, error) {
	if snap := s.engine.Current(); snap != nil {
		return snap, nil
	}
	if err := s.engine.Refresh(ctx); err != nil {
		return nil, apperr.Wrap(apperr.KindUnavailable, err, "authorization state not loaded yet")
	}
	return s.engine.Current(), nil
}

// CurrentState answers from memory.
func (s *Server) CurrentState(ctx context.Context, _ *authsvcv1.CurrentStateRequest) (*authsvcv1.CurrentStateResponse, error) {
	snap, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	return &authsvcv1.CurrentStateResponse{State: snap.Proto}, nil
}

// WatchState sends the current state at once, then the newest state after
// every change (changes in quick succession may be coalesced: versions
// only increase and the last one sent is always the newest). It ends when
// the client goes away or the server ends its streams at shutdown.
func (s *Server) WatchState(_ *authsvcv1.WatchStateRequest, stream grpc.ServerStreamingServer[authsvcv1.WatchStateResponse]) error {
	ctx := stream.Context()
	var sent int64
	for {
		changed := s.engine.Changed()
		snap, err := s.current(ctx)
		if err != nil {
			return err
		}
		if snap.State.Version > sent {
			if err := stream.Send(&authsvcv1.WatchStateResponse{State: snap.Proto}); err != nil {
				return err
			}
			sent = snap.State.Version
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ReportTakeOutcome feeds one take outcome to the state machine.
func (s *Server) ReportTakeOutcome(ctx context.Context, req *authsvcv1.ReportTakeOutcomeRequest) (*authsvcv1.ReportTakeOutcomeResponse, error) {
	report, err := takeReport(req)
	if err != nil {
		return nil, err
	}
	ev := revalidation.ClassifyTake(report)
	res, err := s.engine.Apply(ctx, revalidation.TakeObserved{ProbeID: req.GetProbeId(), Evidence: ev})
	if err != nil {
		return nil, fmt.Errorf("report take outcome: %w", err)
	}
	return &authsvcv1.ReportTakeOutcomeResponse{State: engine.ToProto(res.State)}, nil
}

// takeReport validates and converts a ReportTakeOutcomeRequest.
func takeReport(req *authsvcv1.ReportTakeOutcomeRequest) (revalidation.TakeReport, error) {
	r := revalidation.TakeReport{
		DisputeID:     Clean(req.GetDisputeId(), maxDisputeID),
		CantDoReason:  Clean(req.GetCantDoReason(), maxCantDo),
		DisputeStatus: strings.ToLower(Clean(req.GetDisputeStatus(), maxStatus)),
	}
	if r.DisputeID == "" {
		return r, apperr.InvalidArgument("dispute_id is required")
	}
	if t := req.GetObservedAt(); t != nil {
		if err := t.CheckValid(); err != nil {
			return r, apperr.InvalidArgument("observed_at is invalid")
		}
		r.ObservedAt = t.AsTime().UTC()
	}
	switch req.GetOutcome() {
	case authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK:
		r.Outcome = revalidation.TakeTook
	case authsvcv1.TakeOutcome_TAKE_OUTCOME_NO_REPLY:
		r.Outcome = revalidation.TakeNoReply
	case authsvcv1.TakeOutcome_TAKE_OUTCOME_CANT_DO:
		r.Outcome = revalidation.TakeCantDo
	default:
		return r, apperr.InvalidArgument("outcome is required")
	}
	return r, nil
}

// ClaimProbe claims the open probe; a lost race is granted=false, not an
// error. Only the winning claimer repeating its claim for the same dispute
// is granted again.
func (s *Server) ClaimProbe(ctx context.Context, req *authsvcv1.ClaimProbeRequest) (*authsvcv1.ClaimProbeResponse, error) {
	dispute, claimer := Clean(req.GetDisputeId(), maxDisputeID), req.GetClaimerId()
	if req.GetProbeId() == "" || dispute == "" || claimer == "" {
		return nil, apperr.InvalidArgument("probe_id, dispute_id and claimer_id are required")
	}
	if Clean(claimer, MaxClaimerID) != claimer {
		// Never shortened or altered: two claimers must stay distinct.
		return nil, apperr.InvalidArgument("claimer_id must be at most %d printable characters without surrounding spaces", MaxClaimerID)
	}
	res, err := s.engine.Apply(ctx, revalidation.ClaimProbe{ProbeID: req.GetProbeId(), DisputeID: dispute, ClaimerID: claimer})
	if err != nil {
		return nil, fmt.Errorf("claim probe: %w", err)
	}
	switch {
	case res.Err == nil:
		return &authsvcv1.ClaimProbeResponse{Granted: true, State: engine.ToProto(res.State)}, nil
	case errors.Is(res.Err, revalidation.ErrProbeNotOpen), errors.Is(res.Err, revalidation.ErrProbeClaimed):
		return &authsvcv1.ClaimProbeResponse{Granted: false, State: engine.ToProto(res.State)}, nil
	default:
		return nil, res.Err
	}
}

// ReportAuthorizationLost feeds a loss report.
func (s *Server) ReportAuthorizationLost(ctx context.Context, req *authsvcv1.ReportAuthorizationLostRequest) (*authsvcv1.ReportAuthorizationLostResponse, error) {
	res, err := s.engine.Apply(ctx, revalidation.LossReported{
		Reason: Clean(req.GetReason(), maxReason), DisputeID: Clean(req.GetDisputeId(), maxDisputeID),
	})
	if err != nil {
		return nil, fmt.Errorf("report authorization lost: %w", err)
	}
	return &authsvcv1.ReportAuthorizationLostResponse{State: engine.ToProto(res.State)}, nil
}

// ResetTerminated starts a fresh cycle after a terminated one.
func (s *Server) ResetTerminated(ctx context.Context, _ *authsvcv1.ResetTerminatedRequest) (*authsvcv1.ResetTerminatedResponse, error) {
	res, err := s.engine.Apply(ctx, revalidation.Reset{})
	if err != nil {
		return nil, fmt.Errorf("reset terminated cycle: %w", err)
	}
	if errors.Is(res.Err, revalidation.ErrNotTerminated) {
		return nil, apperr.FailedPrecondition("the revalidation cycle is %s, not terminated", res.State.Status)
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return &authsvcv1.ResetTerminatedResponse{State: engine.ToProto(res.State)}, nil
}

// Clean keeps caller text printable and at most max characters, trimmed of
// surrounding space, before it reaches logs, the state row and audit rows
// (textcut.Clean: valid UTF-8, never cut inside a character).
func Clean(s string, max int) string { return textcut.Clean(s, max) }
