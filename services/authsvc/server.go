package authsvc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/services/authsvc/internal/engine"
	"github.com/serbero/serbero/services/authsvc/internal/revalidation"
)

// current returns the cached state, loading it once if this replica has
// not yet (the first call after start).
func (s *Service) current(ctx context.Context) (*engine.Snapshot, error) {
	if snap := s.engine.Current(); snap != nil {
		return snap, nil
	}
	if err := s.engine.Refresh(ctx); err != nil {
		return nil, apperr.Wrap(apperr.KindUnavailable, err, "authorization state not loaded yet")
	}
	return s.engine.Current(), nil
}

// CurrentState answers from memory.
func (s *Service) CurrentState(ctx context.Context, _ *authsvcv1.CurrentStateRequest) (*authsvcv1.CurrentStateResponse, error) {
	snap, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	return &authsvcv1.CurrentStateResponse{State: snap.Proto}, nil
}

// WatchState sends the current state at once, then the newest state after
// every change (changes in quick succession may be coalesced: versions
// only increase and the last one sent is always the newest). It ends when
// the client goes away or the process starts to stop.
func (s *Service) WatchState(_ *authsvcv1.WatchStateRequest, stream grpc.ServerStreamingServer[authsvcv1.WatchStateResponse]) error {
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
		case <-s.deps.Stopping.Done():
			return apperr.Unavailable("authsvc is stopping")
		}
	}
}

// ReportTakeOutcome feeds one take outcome to the state machine.
func (s *Service) ReportTakeOutcome(ctx context.Context, req *authsvcv1.ReportTakeOutcomeRequest) (*authsvcv1.ReportTakeOutcomeResponse, error) {
	ev, err := classifyTake(req)
	if err != nil {
		return nil, err
	}
	res, err := s.engine.Apply(ctx, revalidation.TakeObserved{ProbeID: req.GetProbeId(), Evidence: ev})
	if err != nil {
		return nil, fmt.Errorf("report take outcome: %w", err)
	}
	return &authsvcv1.ReportTakeOutcomeResponse{State: engine.ToProto(res.State)}, nil
}

// maxClaimerLen bounds ClaimProbeRequest.claimer_id.
const maxClaimerLen = 128

// ClaimProbe claims the open probe; a lost race is granted=false, not an
// error. Only the winning claimer repeating its claim for the same dispute
// is granted again.
func (s *Service) ClaimProbe(ctx context.Context, req *authsvcv1.ClaimProbeRequest) (*authsvcv1.ClaimProbeResponse, error) {
	dispute, claimer := clean(req.GetDisputeId(), 64), req.GetClaimerId()
	if req.GetProbeId() == "" || dispute == "" || claimer == "" {
		return nil, apperr.InvalidArgument("probe_id, dispute_id and claimer_id are required")
	}
	if clean(claimer, maxClaimerLen) != claimer {
		// Never shortened or altered: two claimers must stay distinct.
		return nil, apperr.InvalidArgument("claimer_id must be at most %d printable characters without surrounding spaces", maxClaimerLen)
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
func (s *Service) ReportAuthorizationLost(ctx context.Context, req *authsvcv1.ReportAuthorizationLostRequest) (*authsvcv1.ReportAuthorizationLostResponse, error) {
	res, err := s.engine.Apply(ctx, revalidation.LossReported{Reason: clean(req.GetReason(), 200), DisputeID: clean(req.GetDisputeId(), 64)})
	if err != nil {
		return nil, fmt.Errorf("report authorization lost: %w", err)
	}
	return &authsvcv1.ReportAuthorizationLostResponse{State: engine.ToProto(res.State)}, nil
}

// ResetTerminated starts a fresh cycle after a terminated one.
func (s *Service) ResetTerminated(ctx context.Context, _ *authsvcv1.ResetTerminatedRequest) (*authsvcv1.ResetTerminatedResponse, error) {
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

// classifyTake turns a reported take outcome into evidence, saying which.
func classifyTake(req *authsvcv1.ReportTakeOutcomeRequest) (revalidation.Evidence, error) {
	dispute := clean(req.GetDisputeId(), 64)
	if dispute == "" {
		return revalidation.Evidence{}, apperr.InvalidArgument("dispute_id is required")
	}
	ev := revalidation.Evidence{DisputeID: dispute}
	if t := req.GetObservedAt(); t != nil {
		if err := t.CheckValid(); err != nil {
			return ev, apperr.InvalidArgument("observed_at is invalid")
		}
		ev.ObservedAt = t.AsTime().UTC()
	}
	switch req.GetOutcome() {
	case authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK:
		ev.Kind = revalidation.EvidenceTookDispute
		ev.Summary = fmt.Sprintf("admin-took-dispute for dispute %s: the node accepts Serbero as a solver", dispute)
	case authsvcv1.TakeOutcome_TAKE_OUTCOME_NO_REPLY:
		ev.Kind = revalidation.EvidenceNoReply
		ev.Summary = fmt.Sprintf("no reply from the Mostro node to admin-take-dispute for dispute %s", dispute)
	case authsvcv1.TakeOutcome_TAKE_OUTCOME_CANT_DO:
		reason := clean(req.GetCantDoReason(), 64)
		status := clean(req.GetDisputeStatus(), 32)
		switch {
		case reason == "invalid_pubkey" && (status == "" || status == "initiated"):
			ev.Kind = revalidation.EvidenceCantDoInvalidPubkey
			ev.Summary = fmt.Sprintf("cant-do invalid_pubkey for dispute %s: the node does not accept Serbero as a solver", dispute)
		case reason == "invalid_pubkey":
			ev.Kind = revalidation.EvidenceCantDoOther
			ev.Summary = fmt.Sprintf("cant-do invalid_pubkey for dispute %s in status %s: inconclusive (the node refuses every solver a dispute that is no longer initiated)", dispute, status)
		case reason == "not_authorized":
			ev.Kind = revalidation.EvidenceCantDoNotAuthorized
			ev.Summary = fmt.Sprintf("cant-do not_authorized for dispute %s: the node does not authorize Serbero", dispute)
		default:
			if reason == "" {
				reason = "(no reason)"
			}
			ev.Kind = revalidation.EvidenceCantDoOther
			ev.Summary = fmt.Sprintf("cant-do %s for dispute %s: inconclusive", reason, dispute)
		}
	default:
		return ev, apperr.InvalidArgument("outcome is required")
	}
	return ev, nil
}

// clean keeps caller text printable and bounded before it reaches logs and
// audit rows.
func clean(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, strings.TrimSpace(s))
	if len(s) > max {
		s = s[:max]
	}
	return s
}

// relaygwChecker checks the node through relaygw's cached kind 38385 info.
type relaygwChecker struct {
	rg relaygwv1.RelayGatewayServiceClient
}

// CheckNode implements engine.NodeChecker.
func (c relaygwChecker) CheckNode(ctx context.Context) (revalidation.NodeInfo, error) {
	resp, err := c.rg.GetMostroInfo(ctx, &relaygwv1.GetMostroInfoRequest{})
	if err != nil {
		switch status.Code(err) {
		case codes.NotFound, codes.FailedPrecondition:
			return revalidation.NodeInfo{}, &engine.NodeProblem{Msg: "no kind 38385 info event from the Mostro node (relaygw: " + status.Convert(err).Message() + ")"}
		default:
			return revalidation.NodeInfo{}, fmt.Errorf("get mostro info from relaygw: %w", err)
		}
	}
	info := resp.GetInfo()
	if info == nil {
		return revalidation.NodeInfo{}, &engine.NodeProblem{Msg: "relaygw returned no Mostro node info"}
	}
	v := info.GetProtocolVersion()
	if v != 1 && v != 2 {
		return revalidation.NodeInfo{}, &engine.NodeProblem{Msg: fmt.Sprintf("the Mostro node advertises unsupported protocol version %d", v)}
	}
	return revalidation.NodeInfo{ProtocolVersion: int(v), MostroVersion: clean(info.GetMostroVersion(), 32)}, nil
}
