// Package store is escalationsvc's SQL besides the queue itself
// (pkg/handoff): its own table escalation_dispatches, and the rows it
// appends to the shared audit trail (pkg/audit) and solver-notification log
// (pkg/notiflog) through their contract packages. Every write that consumes
// or parks a handoff commits in one transaction with the queue transition,
// so a handoff is never both recorded and still claimable, nor consumed
// without its record. The store takes what to write as inputs; the
// decisions are the dispatcher's (see docs/escalation.md).
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/pkg/notiflog"
)

// ErrAlreadyDispatched means another dispatch row exists for the handoff
// (the UNIQUE index on handoff_event_id refused a second one).
var ErrAlreadyDispatched = errors.New("handoff already has a dispatch row")

// Store runs escalationsvc's SQL on a pool.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// event is the common envelope of escalationsvc's audit rows: session_id,
// prompt_bundle_id and policy_hash copied from the handoff row,
// rationale_id NULL.
func event(h *handoff.Handoff, p audit.Payload, occurredAt int64) audit.Event {
	return audit.Event{
		SessionID: h.SessionID, Payload: p, PromptBundleID: h.PromptBundleID, PolicyHash: h.PolicyHash,
		OccurredAt: occurredAt,
	}
}

// RecordParseFailed appends the escalation_dispatch_parse_failed row and
// consumes the handoff with the payload's reason as outcome, in one
// transaction.
func (s *Store) RecordParseFailed(ctx context.Context, h *handoff.Handoff, p audit.EscalationDispatchParseFailed, occurredAt int64) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := audit.Append(ctx, tx, event(h, p, occurredAt)); err != nil {
			return fmt.Errorf("record parse failure: %w", err)
		}
		return handoff.Complete(ctx, tx, h.Lease(), handoff.Outcome(p.Reason))
	})
}

// Park records why a handoff waits, at most once per handoff and kind
// (writer-side dedup on the payload's handoff_event_id), and parks it for
// retryAfter, in one transaction. wrote reports whether the audit row was
// new.
func (s *Store) Park(ctx context.Context, h *handoff.Handoff, reason handoff.ParkReason, p audit.Payload,
	retryAfter time.Duration, detail string, occurredAt int64,
) (wrote bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		exists, err := audit.HasForHandoff(ctx, tx, p.Kind(), h.HandoffEventID)
		if err != nil {
			return fmt.Errorf("park handoff: %w", err)
		}
		if !exists {
			if _, err := audit.Append(ctx, tx, event(h, p, occurredAt)); err != nil {
				return fmt.Errorf("park handoff: %w", err)
			}
		}
		wrote = !exists
		return handoff.Park(ctx, tx, h.Lease(), retryAfter, reason, detail)
	})
	return wrote, err
}

// Recipient is one attempted recipient of a dispatch.
type Recipient struct {
	// Pubkey is the solver pubkey as configured.
	Pubkey string
	// Sent is true when a relay accepted the DM.
	Sent bool
	// Error is the failure text (empty when sent).
	Error string
}

// Dispatch is one escalation_dispatches row and what goes with it.
type Dispatch struct {
	DispatchID        string
	DisputeID         string
	Recipients        []Recipient // in send order
	Status            string      // audit.DispatchStatusDispatched or audit.DispatchStatusSendFailed
	FallbackBroadcast bool
	// At is the dispatch's time (unix seconds), taken before the first
	// send: created_at, dispatched_at, the audit row's occurred_at and every
	// notification's sent_at.
	At int64
}

// TargetSolver is the comma-joined recipient list (no spaces, send order).
func (d *Dispatch) TargetSolver() string {
	out := make([]byte, 0, 65*len(d.Recipients))
	for i, r := range d.Recipients {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, r.Pubkey...)
	}
	return string(out)
}

// RecordDispatch writes, in one transaction: the escalation_dispatches row,
// its escalation_dispatched audit row (same dispatch_id), one notification
// per attempted recipient (notif_type escalation_handoff), and the queue
// row's completion. ErrAlreadyDispatched means the handoff had a dispatch
// row already (nothing was written).
func (s *Store) RecordDispatch(ctx context.Context, h *handoff.Handoff, d *Dispatch) error {
	target := d.TargetSolver()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		fallback := 0
		if d.FallbackBroadcast {
			fallback = 1
		}
		if _, err := tx.Exec(ctx, `
INSERT INTO escalation_dispatches
    (dispatch_id, dispute_id, session_id, handoff_event_id, target_solver, dispatched_at, created_at, status, fallback_broadcast)
VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)`,
			d.DispatchID, d.DisputeID, h.SessionID, h.HandoffEventID, target, d.At, d.Status, fallback); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "idx_escalation_dispatches_handoff" {
				return ErrAlreadyDispatched
			}
			return fmt.Errorf("insert dispatch: %w", err)
		}
		if _, err := audit.Append(ctx, tx, event(h, audit.EscalationDispatched{
			DispatchID: d.DispatchID, DisputeID: d.DisputeID, HandoffEventID: h.HandoffEventID,
			TargetSolver: target, Status: d.Status, FallbackBroadcast: d.FallbackBroadcast,
		}, d.At)); err != nil {
			return fmt.Errorf("record dispatch: %w", err)
		}
		entries := make([]notiflog.Entry, 0, len(d.Recipients))
		for _, r := range d.Recipients {
			e := notiflog.Entry{
				DisputeID: d.DisputeID, SolverPubkey: r.Pubkey, SentAt: d.At,
				Status: notiflog.StatusSent, Type: notiflog.TypeEscalationHandoff,
			}
			if !r.Sent {
				e.Status, e.Error = notiflog.StatusFailed, r.Error
			}
			entries = append(entries, e)
		}
		if _, err := notiflog.RecordAll(ctx, tx, entries); err != nil {
			return fmt.Errorf("record dispatch: %w", err)
		}
		outcome := handoff.OutcomeDispatched
		if d.Status == audit.DispatchStatusSendFailed {
			outcome = handoff.OutcomeSendFailed
		}
		return handoff.Complete(ctx, tx, h.Lease(), outcome)
	})
}

// DispatchRow is an escalation_dispatches row as the admin API shows it.
type DispatchRow struct {
	DispatchID        string
	TargetSolver      string
	Status            string
	FallbackBroadcast bool
	DispatchedAt      int64
}

// DispatchOf returns the dispatch row of a handoff, found = false when it
// has none.
func (s *Store) DispatchOf(ctx context.Context, handoffEventID int64) (d DispatchRow, found bool, err error) {
	var fb int16
	err = s.pool.QueryRow(ctx, `
SELECT dispatch_id, target_solver, status, fallback_broadcast, dispatched_at
FROM escalation_dispatches WHERE handoff_event_id = $1`, handoffEventID).
		Scan(&d.DispatchID, &d.TargetSolver, &d.Status, &fb, &d.DispatchedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return DispatchRow{}, false, nil
	}
	if err != nil {
		return DispatchRow{}, false, fmt.Errorf("get dispatch: %w", err)
	}
	d.FallbackBroadcast = fb == 1
	return d, true, nil
}
