package engine

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/services/mediationsvc/internal/session"
	"github.com/serbero/serbero/services/mediationsvc/internal/store"
)

// reportLoop sends the final resolution reports that are due, when kicked
// and on every tick (a report whose DMs failed, or whose replica died, is
// retried; the DMs' idempotency keys keep a resend the same DM).
func (e *Engine) reportLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.kickR:
		}
		due, err := e.o.Store.DueReports(ctx, 64)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("listing due resolution reports failed; the next tick retries", "error", err)
			}
			continue
		}
		for _, r := range due {
			if err := e.sendReport(ctx, r); err != nil && ctx.Err() == nil {
				e.log.Warn("sending the resolution report failed; the next tick retries", "dispute_id", r.DisputeID, "error", err)
			}
		}
		if len(due) == 64 {
			e.kickReports()
		}
	}
}

// reportInput gathers what the final report says, from the database.
func (e *Engine) reportInput(ctx context.Context, r store.DueReport) (session.ReportInput, *string, error) {
	in := session.ReportInput{DisputeID: r.DisputeID, FinalStatus: r.Status}
	sess, ok, err := e.o.Store.LatestSession(ctx, e.o.Pool, r.DisputeID)
	if err != nil {
		return in, nil, err
	}
	var sid *string
	if ok {
		sid = &sess.SessionID
		in.SessionID, in.SessionState = sess.SessionID, sess.State
		evs, err := audit.SessionEvents(ctx, e.o.Pool, sess.SessionID, audit.KindClassificationProduced)
		if err != nil {
			return in, nil, err
		}
		if n := len(evs); n > 0 {
			var p audit.ClassificationProduced
			if json.Unmarshal(evs[n-1].Payload, &p) == nil && p.Classification != "" {
				in.Classification, in.Confidence, in.HasClassification = p.Classification, p.Confidence, true
			}
		}
		if in.OutboundParties, err = e.o.Store.OutboundPartyCount(ctx, e.o.Pool, sess.SessionID); err != nil {
			return in, nil, err
		}
	}
	scoped, err := audit.DisputeScoped(ctx, e.o.Pool, r.DisputeID, audit.KindReasoningVerdict, audit.KindTakeDisputeIssued, audit.KindEscalationRecommended)
	if err != nil {
		return in, nil, err
	}
	for i := len(scoped) - 1; i >= 0; i-- {
		rec := scoped[i]
		switch rec.Kind {
		case audit.KindReasoningVerdict:
			var v audit.ReasoningVerdict
			if json.Unmarshal(rec.Payload, &v) != nil {
				continue
			}
			if !in.HasClassification && v.Classification != "" && v.Confidence != nil {
				in.Classification, in.Confidence, in.HasClassification = v.Classification, *v.Confidence, true
			}
			if v.Decision == audit.DecisionEscalate && !ok {
				in.ReasoningDeclined = true
			}
		case audit.KindTakeDisputeIssued:
			var t audit.TakeDisputeIssued
			if json.Unmarshal(rec.Payload, &t) == nil && t.Outcome == audit.TakeOutcomeFailure && !ok {
				in.TakeFailed = true
			}
		case audit.KindEscalationRecommended:
			if !ok {
				in.ReasoningDeclined = true
			}
		}
	}
	return in, sid, nil
}

// sendReport sends one final report to every configured solver and
// records it once.
func (e *Engine) sendReport(ctx context.Context, r store.DueReport) error {
	in, sid, err := e.reportInput(ctx, r)
	if err != nil {
		return err
	}
	body := session.ReportDM(in)
	e.sendToAll(ctx, r.DisputeID, "", body, notifReport, "report")
	return e.o.Store.InTx(ctx, func(tx pgx.Tx) error {
		won, err := e.o.Store.MarkReportSent(ctx, tx, r.DisputeID)
		if err != nil || !won {
			return err
		}
		p := audit.ResolvedExternallyReported{
			DisputeID: r.DisputeID, FinalDisputeStatus: r.Status, Narrative: session.Narrative(in),
			OutboundPartyMessagesCount: in.OutboundParties, SessionID: sid,
		}
		if in.HasClassification {
			p.Classification, p.Confidence = &in.Classification, &in.Confidence
		}
		e.log.Info("resolved_externally_reported", "dispute_id", r.DisputeID, "final_dispute_status", r.Status)
		return e.appendAudit(ctx, tx, audit.Event{SessionID: sid, Payload: p})
	})
}

// leaseLoop keeps this replica's session leases: it renews those it holds
// (a worker whose lease was lost stops), and takes over live sessions
// whose holder is gone (a dead replica's, or any at start).
func (e *Engine) leaseLoop(ctx context.Context) {
	every := max(e.o.LeaseTTL/3, 10*time.Millisecond)
	for {
		held, err := e.o.Store.RenewLeases(ctx, e.o.Holder, e.o.LeaseTTL)
		if err == nil {
			keep := map[string]bool{}
			for _, id := range held {
				keep[id] = true
			}
			e.mu.Lock()
			var lost []*worker
			for id, w := range e.workers {
				if !keep[id] {
					lost = append(lost, w)
				}
			}
			e.mu.Unlock()
			for _, w := range lost {
				e.log.Info("session lease lost; stopping its worker", "session_id", w.id)
				w.cancel()
			}
			acquired, err := e.o.Store.AcquireLeases(ctx, e.o.Holder, e.o.LeaseTTL, states(session.LiveStates()), 256)
			if err != nil && ctx.Err() == nil {
				e.log.Warn("taking over sessions failed", "error", err)
			}
			for _, s := range acquired {
				e.log.Info("session lease acquired; carrying the session on", "session_id", s.SessionID, "state", s.State, "term", s.LeaseTerm)
				e.adopt(ctx, s, nil)
			}
		} else if ctx.Err() == nil {
			e.log.Warn("renewing session leases failed", "error", err)
		}
		t := e.o.Clock.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.Chan():
		}
	}
}
