package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/services/mediationsvc/internal/policy"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoner"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
	"github.com/serbero/serbero/services/mediationsvc/internal/session"
	"github.com/serbero/serbero/services/mediationsvc/internal/store"
)

// drainOutbox sends every queued party message of the session, oldest
// first, and records each (message row, outbound_sent) once relaygw
// confirms a relay took it. The idempotency key makes a resend after a
// crash the same chat event.
func (w *worker) drainOutbox(ctx context.Context) error {
	e := w.e
	items, err := e.o.Store.UnsentOutbound(ctx, w.id)
	if err != nil {
		return err
	}
	for _, it := range items {
		party := w.buyer
		shared := w.sess.BuyerShared
		if it.Party == string(session.Seller) {
			party, shared = w.seller, w.sess.SellerShared
		}
		resp, err := e.o.Relaygw.SendChatMessage(ctx, &relaygwv1.SendChatMessageRequest{
			PartyTradePubkey: party, Text: it.Body, IdempotencyKey: it.IdempotencyKey,
		})
		if err != nil {
			return fmt.Errorf("send %s message of round %d: %w", it.Party, it.Round, err)
		}
		if !resp.GetDelivered() {
			return fmt.Errorf("send %s message of round %d: %w", it.Party, it.Round, errNotSent)
		}
		now := e.now()
		var recorded bool
		err = w.inTx(ctx, func(tx pgx.Tx, sess store.EngineSession) error {
			var err error
			recorded, err = e.o.Store.RecordOutbound(ctx, tx, store.Outbound{
				Item: it, SharedPubkey: shared, InnerEventID: resp.GetInnerEventId(), OuterEventID: resp.GetV2EventId(),
				InnerCreatedAt: resp.GetInnerCreatedAt().AsTime().Unix(), SentAt: now,
				PromptBundleID: sess.PromptBundleID, PolicyHash: sess.PolicyHash,
			})
			if err != nil || !recorded {
				return err
			}
			return e.appendAudit(ctx, tx, audit.Event{SessionID: &w.id,
				Payload:        audit.OutboundSent{InnerEventID: resp.GetInnerEventId(), SharedPubkey: shared},
				PromptBundleID: &sess.PromptBundleID, PolicyHash: &sess.PolicyHash, OccurredAt: now})
		})
		if err != nil {
			return err
		}
		if recorded {
			e.o.Metrics.outbound.Inc()
			if w.sess.FirstOutboundAt == nil {
				w.sess.FirstOutboundAt = &now
				e.o.Metrics.firstMessage(w.sess, e.o.Clock.Now())
			}
		}
	}
	if len(items) > 0 {
		e.log.Info("party messages dispatched", "session_id", w.id, "count", len(items))
	}
	return nil
}

// transcript returns the session's last messages, ascending, tagged by
// party, as the reasoning provider reads them.
func (w *worker) transcript(ctx context.Context) ([]reasoning.TranscriptLine, error) {
	rows, err := w.e.o.Store.SessionMessages(ctx, w.e.o.Pool, w.id, session.TranscriptCap)
	if err != nil {
		return nil, err
	}
	msgs := make([]session.Message, 0, len(rows))
	for _, r := range rows {
		msgs = append(msgs, session.Message{ID: r.ID, Direction: r.Direction, Party: session.Party(r.Party),
			InnerCreatedAt: r.InnerCreatedAt, Content: r.Content, Stale: r.Stale})
	}
	lines := session.Transcript(msgs, session.TranscriptCap)
	out := make([]reasoning.TranscriptLine, len(lines))
	for i, l := range lines {
		out[i] = reasoning.TranscriptLine{Party: reasoning.Party(l.Party), InnerEventCreatedAt: l.InnerCreatedAt, Content: l.Content}
	}
	return out, nil
}

// advance evaluates the session once fresh party replies arrived since
// the last evaluation: classify, then ask the next round, summarize, or
// escalate.
func (w *worker) advance(ctx context.Context) error {
	e := w.e
	sess := w.sess
	fresh, err := e.o.Store.FreshInboundCount(ctx, e.o.Pool, w.id)
	if err != nil {
		return err
	}
	if fresh <= sess.RoundCountLastEvaluated {
		return nil
	}
	lines, err := w.transcript(ctx)
	if err != nil {
		return err
	}
	prior, err := audit.SessionEvents(ctx, e.o.Pool, w.id, audit.KindClassificationProduced)
	if err != nil {
		return err
	}
	followup := len(prior)
	cls, err := e.o.Core.Classify(ctx, reasoner.ClassifyInput{
		DisputeID: sess.DisputeID, SessionID: w.id, InitiatorRole: sess.InitiatorRole, Bundle: w.bundle,
		Transcript: lines, RoundCount: sess.RoundCount, Round: policy.MidSession(followup),
	})
	if err != nil {
		var failures int64
		if err := w.inTx(ctx, func(tx pgx.Tx, _ store.EngineSession) error {
			var err error
			failures, err = e.o.Store.IncEvalFailures(ctx, tx, w.id)
			return err
		}); err != nil {
			return err
		}
		if failures >= EvalFailureLimit {
			w.escalateSession(ctx, escalation{trigger: string(policy.TriggerReasoningUnavailable)})
			return nil
		}
		e.log.Warn("mid-session evaluation failed; will retry", "session_id", w.id, "failures", failures,
			"error_category", string(reasoning.CategoryOf(err)))
		w.retry = e.o.TickInterval
		return nil
	}
	dec := cls.Decision
	now := e.now()
	var rid string
	err = w.inTx(ctx, func(tx pgx.Tx, locked store.EngineSession) error {
		if locked.State != string(session.AwaitingResponse) || locked.RoundCountLastEvaluated >= fresh {
			return nil // someone else decided meanwhile
		}
		occ, err := e.o.Core.RecordRationale(ctx, tx, cls.Response.Rationale, reasoner.Scope{
			DisputeID: sess.DisputeID, SessionID: w.id, Operation: store.OperationClassify, Bundle: cls.Bundle,
			Key: fmt.Sprintf("eval:%s:%d", w.id, fresh),
		})
		if err != nil {
			return err
		}
		rid = occ.RationaleID
		if err := e.appendAudit(ctx, tx, audit.Event{SessionID: &w.id, Payload: audit.ClassificationProduced{
			Classification: string(cls.Response.Classification), Confidence: cls.Response.Confidence, RationaleID: rid,
		}, RationaleID: &rid, PromptBundleID: &cls.Bundle.ID, PolicyHash: &cls.Bundle.PolicyHash, OccurredAt: now}); err != nil {
			return err
		}
		switch dec.Outcome {
		case policy.OutcomeAskClarification:
			if err := e.o.Store.QueueOutbound(ctx, tx,
				outboxItem(w.id, session.Buyer, followup, session.FollowUpBody(followup, session.Buyer, dec.BuyerText), now),
				outboxItem(w.id, session.Seller, followup, session.FollowUpBody(followup, session.Seller, dec.SellerText), now),
			); err != nil {
				return err
			}
			if err := e.o.Store.TouchSession(ctx, tx, w.id, now); err != nil {
				return err
			}
			return e.o.Store.AdvanceEvaluated(ctx, tx, w.id, fresh)
		case policy.OutcomeSummarize:
			if err := e.o.Store.Transition(ctx, tx, w.id, []string{string(session.AwaitingResponse)}, string(session.Classified), now); err != nil {
				return err
			}
			return e.o.Store.AdvanceEvaluated(ctx, tx, w.id, fresh)
		}
		return nil
	})
	if err != nil {
		return err
	}
	switch dec.Outcome {
	case policy.OutcomeAskClarification:
		e.o.Metrics.rounds.Inc()
		e.log.Info("follow-up round decided", "session_id", w.id, "round", followup)
		return w.drainOutbox(ctx)
	case policy.OutcomeSummarize:
		w.cls = &cls
		w.sess.State = string(session.Classified) // committed above
		return w.deliverSummary(ctx)
	default:
		var refs []string
		if rid != "" {
			refs = []string{rid}
		}
		w.escalateSession(ctx, escalation{trigger: string(dec.Trigger), rationaleRefs: refs})
		return nil
	}
}

// lastClassification reads the session's newest classification back from
// the audit trail (after a restart).
func (w *worker) lastClassification(ctx context.Context) (reasoning.Label, float64, error) {
	evs, err := audit.SessionEvents(ctx, w.e.o.Pool, w.id, audit.KindClassificationProduced)
	if err != nil {
		return "", 0, err
	}
	if len(evs) == 0 {
		return "", 0, nil
	}
	var p audit.ClassificationProduced
	if err := json.Unmarshal(evs[len(evs)-1].Payload, &p); err != nil {
		return "", 0, fmt.Errorf("decode classification_produced: %w", err)
	}
	return reasoning.Label(p.Classification), p.Confidence, nil
}
