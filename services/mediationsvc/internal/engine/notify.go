package engine

import (
	"context"
	"fmt"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/notiflog"
	"github.com/serbero/serbero/services/mediationsvc/internal/session"
)

// The notif_type of each solver DM mediationsvc sends.
const (
	notifSummary    = notiflog.TypeMediationSummary
	notifEscalation = notiflog.TypeMediationEscalationRecommended
	notifReport     = notiflog.TypeMediationResolutionReport
)

// sendToAll sends body to every configured solver (forced broadcast) and
// returns how many sends succeeded.
func (e *Engine) sendToAll(ctx context.Context, disputeID, sessionID, body string, t notiflog.Type, what string) int {
	return e.sendTo(ctx, disputeID, sessionID, e.o.Solvers, body, t, what)
}

// sendRouted sends body by the routing rule: the dispute's assigned solver
// when it is configured, else every configured solver.
func (e *Engine) sendRouted(ctx context.Context, disputeID, sessionID, body string, t notiflog.Type, what string) (sent, recipients int) {
	r := session.Recipients(e.o.Solvers, e.assignedSolver(ctx, disputeID))
	if r.FellBack {
		e.log.Warn("assigned_solver is not in configured solvers list; falling back to broadcast", "dispute_id", disputeID)
	}
	return e.sendTo(ctx, disputeID, sessionID, r.Recipients, body, t, what), len(r.Recipients)
}

func (e *Engine) assignedSolver(ctx context.Context, disputeID string) string {
	resp, err := e.o.Intake.GetDispute(ctx, &intakesvcv1.GetDisputeRequest{DisputeId: disputeID})
	if err != nil {
		e.log.Warn("reading the dispute's assigned solver failed; broadcasting", "dispute_id", disputeID, "error", err)
		return ""
	}
	return resp.GetDispute().GetAssignedSolver()
}

// sendTo sends one DM per recipient through relaygw, with an idempotency
// key per (what, dispute, session, recipient) so a retry after a crash is
// the same gift wrap, and records one notifications row per recipient.
func (e *Engine) sendTo(ctx context.Context, disputeID, sessionID string, recipients []string, body string, t notiflog.Type, what string) int {
	sent := 0
	for _, r := range recipients {
		key := fmt.Sprintf("mediation:%s:%s:%s:%s", what, disputeID, sessionID, r)
		resp, err := e.o.Relaygw.SendDirectMessage(ctx, &relaygwv1.SendDirectMessageRequest{RecipientPubkey: r, Body: body, IdempotencyKey: key})
		entry := notiflog.Entry{DisputeID: disputeID, SolverPubkey: r, SentAt: e.now(), Status: notiflog.StatusSent, Type: t}
		switch {
		case err != nil:
			entry.Status, entry.Error = notiflog.StatusFailed, "send failed: "+err.Error()
		case !resp.GetDelivered():
			entry.Status, entry.Error = notiflog.StatusFailed, "no relay accepted the DM"
		}
		if entry.Status == notiflog.StatusSent {
			sent++
		}
		if resp.GetDuplicate() {
			continue // recorded by the first send
		}
		if _, err := notiflog.Record(ctx, e.o.Pool, entry); err != nil {
			e.log.Warn("recording a notification failed", "dispute_id", disputeID, "notif_type", string(t), "error", err)
		}
	}
	e.o.Metrics.dms.WithLabelValues(string(t)).Add(float64(sent))
	return sent
}
