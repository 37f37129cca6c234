package engine

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/services/mediationsvc/internal/policy"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoner"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
	"github.com/serbero/serbero/services/mediationsvc/internal/session"
	"github.com/serbero/serbero/services/mediationsvc/internal/store"
)

// deliverSummary is the cooperative summary path: classified →
// summary_pending, the summary (generated once, checked by the policy),
// the DM to the routed solvers, then summary_delivered → closed. Every
// failure escalates through the handoff queue (our change: the reference
// wrote no handoff on this path). Resumable: a session found in
// summary_pending after a restart reuses its stored summary, and the DMs'
// idempotency keys keep a resend the same DM.
func (w *worker) deliverSummary(ctx context.Context) error {
	e := w.e
	now := e.now()
	if w.sess.State == string(session.Classified) {
		if err := w.inTx(ctx, func(tx pgx.Tx, _ store.EngineSession) error {
			return e.o.Store.Transition(ctx, tx, w.id, []string{string(session.Classified)}, string(session.SummaryPending), now)
		}); err != nil {
			return err
		}
		w.sess.State = string(session.SummaryPending)
	}
	sum, ok, err := e.o.Store.LatestSummary(ctx, e.o.Pool, w.id)
	if err != nil {
		return err
	}
	if !ok {
		label, conf := reasoning.Label(""), 0.0
		if w.cls != nil {
			label, conf = w.cls.Response.Classification, w.cls.Response.Confidence
		} else if label, conf, err = w.lastClassification(ctx); err != nil {
			return err
		}
		lines, err := w.transcript(ctx)
		if err != nil {
			return err
		}
		out, err := e.o.Core.Summarize(ctx, reasoner.SummarizeInput{
			DisputeID: w.sess.DisputeID, SessionID: w.id, Bundle: w.bundle, Transcript: lines,
			Classification: label, Confidence: conf,
		})
		if err != nil {
			w.summaryEscalate(ctx, policy.TriggerReasoningUnavailable,
				fmt.Sprintf("summary generation failed (%s)", reasoning.CategoryOf(err)))
			return nil
		}
		if out.Rejection != nil {
			w.summaryEscalate(ctx, out.Rejection.Trigger, out.Rejection.Reason)
			return nil
		}
		err = w.inTx(ctx, func(tx pgx.Tx, _ store.EngineSession) error {
			occ, err := e.o.Core.RecordRationale(ctx, tx, out.Response.Rationale, reasoner.Scope{
				DisputeID: w.sess.DisputeID, SessionID: w.id, Operation: store.OperationSummarize, Bundle: out.Bundle,
				Key: "summary:" + w.id,
			})
			if err != nil {
				return err
			}
			sum = store.Summary{
				SessionID: w.id, DisputeID: w.sess.DisputeID, Classification: string(label), Confidence: conf,
				SuggestedNextStep: out.Response.SuggestedNextStep, SummaryText: out.Response.SummaryText,
				PromptBundleID: out.Bundle.ID, PolicyHash: out.Bundle.PolicyHash, RationaleID: occ.RationaleID, GeneratedAt: now,
			}
			if err := e.o.Store.InsertSummary(ctx, tx, sum); err != nil {
				return err
			}
			rid := occ.RationaleID
			return e.appendAudit(ctx, tx, audit.Event{SessionID: &w.id, Payload: audit.SummaryGenerated{
				Classification: string(label), Confidence: conf, RationaleID: rid,
			}, RationaleID: &rid, PromptBundleID: &out.Bundle.ID, PolicyHash: &out.Bundle.PolicyHash, OccurredAt: now})
		})
		if err != nil {
			return err
		}
		e.log.Info("summary_generated", "session_id", w.id, "rationale_id", sum.RationaleID)
	}
	sent, recipients := e.sendRouted(ctx, w.sess.DisputeID, w.id, session.SummaryDM(sum.SummaryText, sum.SuggestedNextStep), notifSummary, "summary")
	switch {
	case recipients == 0:
		w.summaryEscalate(ctx, policy.TriggerNotificationFailed, "no solver recipients configured")
		return nil
	case sent == 0:
		w.summaryEscalate(ctx, policy.TriggerNotificationFailed, "all recipient sends failed")
		return nil
	}
	e.log.Info("solver_summary_delivered", "session_id", w.id, "rationale_id", sum.RationaleID, "recipients", sent)
	err = w.inTx(ctx, func(tx pgx.Tx, _ store.EngineSession) error {
		if err := e.o.Store.Transition(ctx, tx, w.id, []string{string(session.SummaryPending)}, string(session.SummaryDelivered), now); err != nil {
			return err
		}
		if err := e.o.Store.Transition(ctx, tx, w.id, []string{string(session.SummaryDelivered)}, string(session.Closed), now); err != nil {
			return err
		}
		d, err := e.o.Store.GetDispute(ctx, tx, w.sess.DisputeID)
		if err != nil {
			return err
		}
		return e.o.Store.SetStartState(ctx, tx, w.sess.DisputeID, store.StartSummarized, d.NewestEventID)
	})
	if err != nil {
		return err
	}
	e.o.Metrics.summaries.Inc()
	e.o.Metrics.outcome(w.sess, "summarized", e.o.Clock.Now())
	w.end(ctx)
	return nil
}

// summaryEscalate ends the summary path in escalation_recommended with the
// summary-path payload, and a handoff.
func (w *worker) summaryEscalate(ctx context.Context, trigger policy.Trigger, reason string) {
	w.escalateSession(ctx, escalation{
		trigger: string(trigger),
		payload: audit.EscalationRecommendedSummaryPath{Reason: reason, SessionID: w.id, Trigger: string(trigger)},
	})
}
