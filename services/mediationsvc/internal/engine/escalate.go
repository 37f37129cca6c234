package engine

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/services/mediationsvc/internal/bundle"
	"github.com/serbero/serbero/services/mediationsvc/internal/session"
)

// escalation is one recommendation to hand a dispute to a human.
type escalation struct {
	disputeID string
	// sessionID is empty for a dispute-scoped handoff (no session).
	sessionID     string
	trigger       string
	evidenceRefs  []string
	rationaleRefs []string
	bundle        bundle.Bundle
	at            int64
	// payload replaces the recommend payload of escalation_recommended
	// (the summary-path and missing-bundle forms); nil: the standard one.
	payload audit.Payload
	// noBundleID writes prompt_bundle_id NULL (the missing-bundle form).
	noBundleID bool
}

// recommend is the single handoff chokepoint, in the caller's
// transaction: the session moves to escalation_recommended (only from an
// escalatable state: exactly once), escalation_recommended is written,
// and the handoff is enqueued (pkg/handoff writes handoff_prepared). A
// dispute-scoped recommendation already made is a no-op. It never sends a
// DM; callers do after the commit.
func (e *Engine) recommend(ctx context.Context, tx pgx.Tx, x escalation) error {
	var sid *string
	if x.sessionID != "" {
		sid = &x.sessionID
		if err := e.o.Store.Transition(ctx, tx, x.sessionID, states(session.EscalatableStates()), string(session.EscalationRecommended), x.at); err != nil {
			return err
		}
	} else {
		done, err := audit.HasDisputeScoped(ctx, tx, x.disputeID, audit.KindEscalationRecommended)
		if err != nil {
			return fmt.Errorf("recommend escalation: %w", err)
		}
		if done {
			return nil
		}
	}
	p := x.payload
	if p == nil {
		p = audit.EscalationRecommended{DisputeID: x.disputeID, Trigger: x.trigger, EvidenceRefs: x.evidenceRefs, RationaleRefs: x.rationaleRefs}
	}
	ev := audit.Event{SessionID: sid, Payload: p, PolicyHash: &x.bundle.PolicyHash, OccurredAt: x.at}
	if !x.noBundleID {
		ev.PromptBundleID = &x.bundle.ID
	}
	if err := e.appendAudit(ctx, tx, ev); err != nil {
		return err
	}
	_, err := handoff.Enqueue(ctx, tx, handoff.Package{
		DisputeID: x.disputeID, SessionID: x.sessionID, Trigger: x.trigger, EvidenceRefs: x.evidenceRefs,
		PromptBundleID: x.bundle.ID, PolicyHash: x.bundle.PolicyHash, RationaleRefs: x.rationaleRefs, AssembledAt: x.at,
	}, handoff.Meta{OccurredAt: x.at})
	if err != nil {
		return fmt.Errorf("recommend escalation: %w", err)
	}
	return nil
}

func states(ss []session.State) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// appendAudit writes one audit row, stamping occurred_at with the
// engine's clock when the caller did not.
func (e *Engine) appendAudit(ctx context.Context, db audit.DB, ev audit.Event) error {
	if ev.OccurredAt == 0 {
		ev.OccurredAt = e.now()
	}
	if _, err := audit.Append(ctx, db, ev); err != nil {
		return err
	}
	return nil
}
