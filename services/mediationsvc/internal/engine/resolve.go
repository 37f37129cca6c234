package engine

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/services/mediationsvc/internal/session"
	"github.com/serbero/serbero/services/mediationsvc/internal/store"
)

// resolved reacts to Mostro resolving a dispute: its live session (if
// any) ends as superseded_by_human then closed, and the final resolution
// report is due when Serbero had mediation context for it. A live session
// another running replica holds is left to that replica (it sees the same
// change).
func (e *Engine) resolved(ctx context.Context, d *intakesvcv1.Dispute) error {
	return e.supersede(ctx, d, audit.ReasonDisputeResolvedExternally, store.StartResolved)
}

// inProgress reacts to an in-progress revision: the first one after
// Serbero's take is its own; any other one while a session is live means
// a human solver took the dispute over.
func (e *Engine) inProgress(ctx context.Context, d *intakesvcv1.Dispute) error {
	sess, ok, err := e.o.Store.LatestSession(ctx, e.o.Pool, d.GetDisputeId())
	if err != nil || !ok || !session.State(sess.State).Live() {
		return err
	}
	if sess.TakeEventID == nil {
		_, err := e.o.Store.SetTakeEvent(ctx, e.o.Pool, sess.SessionID, d.GetNewestEventId())
		return err
	}
	if *sess.TakeEventID == d.GetNewestEventId() {
		return nil
	}
	e.log.Info("another solver took the dispute over; ending the session", "dispute_id", d.GetDisputeId(), "session_id", sess.SessionID)
	return e.supersede(ctx, d, audit.ReasonDisputeTakenOver, store.StartSuperseded)
}

func (e *Engine) supersede(ctx context.Context, d *intakesvcv1.Dispute, reason, startState string) error {
	id, status, eventID := d.GetDisputeId(), d.GetDisputeStatus(), d.GetNewestEventId()
	var ended string
	now := e.now()
	err := e.o.Store.InTx(ctx, func(tx pgx.Tx) error {
		sess, ok, elsewhere, err := e.o.Store.LiveSessionForUpdate(ctx, tx, id, e.o.Holder, states(session.LiveStates()))
		if err != nil {
			return err
		}
		if elsewhere {
			return errSkip
		}
		if ok {
			sid := sess.SessionID
			if err := e.o.Store.Transition(ctx, tx, sid, states(session.Sources(session.SupersededByHuman)), string(session.SupersededByHuman), now); err != nil {
				return err
			}
			bundleCols := audit.Event{SessionID: &sid, PromptBundleID: &sess.PromptBundleID, PolicyHash: &sess.PolicyHash, OccurredAt: now}
			ev := bundleCols
			ev.Payload = audit.SupersededByHuman{DisputeID: id, EventID: eventID, Reason: reason, ResolutionStatus: status}
			if err := e.appendAudit(ctx, tx, ev); err != nil {
				return err
			}
			if err := e.o.Store.Transition(ctx, tx, sid, []string{string(session.SupersededByHuman)}, string(session.Closed), now); err != nil {
				return err
			}
			ev = bundleCols
			ev.Payload = audit.SessionClosed{DisputeID: id, Reason: reason}
			if err := e.appendAudit(ctx, tx, ev); err != nil {
				return err
			}
			ended = sid
		}
		if err := e.o.Store.SetStartState(ctx, tx, id, startState, ""); err != nil {
			return err
		}
		has, err := e.hasContext(ctx, tx, id)
		if err != nil || !has {
			return err
		}
		_, err = e.o.Store.MarkReportDue(ctx, tx, id, status, eventID)
		return err
	})
	if errors.Is(err, errSkip) {
		return nil
	}
	if err != nil {
		return err
	}
	if ended != "" {
		e.o.Metrics.superseded.WithLabelValues(reason).Inc()
		if w := e.workerFor(ended); w != nil {
			w.poke() // it reads the closed state and ends
		}
	}
	e.kickReports()
	return nil
}

// hasContext reports whether Serbero had anything to do with a dispute's
// mediation: a session, or a dispute-scoped decision about it (the start
// bookkeeping alone does not count, see docs/mediation.md#the-engine; the reference counted
// it).
func (e *Engine) hasContext(ctx context.Context, db audit.DB, id string) (bool, error) {
	if _, ok, err := e.o.Store.LatestSession(ctx, db, id); err != nil || ok {
		return ok, err
	}
	return audit.HasDisputeScoped(ctx, db, id, audit.KindReasoningVerdict, audit.KindTakeDisputeIssued,
		audit.KindEscalationRecommended, audit.KindHandoffPrepared, audit.KindReasoningCallFailed)
}
