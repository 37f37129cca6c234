// Package store is escalationsvc's SQL besides the queue itself
// (pkg/handoff): the dispute lookup, the phase 4 audit rows
// (mediation_events), escalation_dispatches and the per-recipient
// notifications. Every write that consumes or parks a handoff commits in
// one transaction with the queue transition, so a handoff is never both
// recorded and still claimable, nor consumed without its record.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/serbero/serbero/pkg/handoff"
)

// The phase 4 audit kinds (spec 10 §B14).
const (
	KindDispatched      = "escalation_dispatched"
	KindSuperseded      = "escalation_superseded"
	KindUnroutable      = "escalation_dispatch_unroutable"
	KindParseFailed     = "escalation_dispatch_parse_failed"
	NotifTypeEscalation = "escalation_handoff" // decision 7 (the reference wrote mediation_escalation_recommended)
	ReasonResolved      = "dispute_already_resolved"
	DetailOrphan        = "dispute_id not found"
	LifecycleResolved   = "resolved"
	NotificationSent    = "sent"
	NotificationFailed  = "failed"
)

// Dispatch statuses (escalation_dispatches.status).
const (
	StatusDispatched = "dispatched"
	StatusSendFailed = "send_failed"
)

// ErrAlreadyDispatched means another dispatch row exists for the handoff
// (the UNIQUE index on handoff_event_id refused a second one).
var ErrAlreadyDispatched = errors.New("handoff already has a dispatch row")

// Store runs escalationsvc's SQL on a pool.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Dispute is what routing reads of a disputes row.
type Dispute struct {
	LifecycleState string
	AssignedSolver *string
}

// Dispute returns the dispute, found = false when there is no such row. A
// database error is returned as such (never as "not found").
func (s *Store) Dispute(ctx context.Context, id string) (d Dispute, found bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT lifecycle_state, assigned_solver FROM disputes WHERE dispute_id = $1`, id).
		Scan(&d.LifecycleState, &d.AssignedSolver)
	if errors.Is(err, pgx.ErrNoRows) {
		return Dispute{}, false, nil
	}
	if err != nil {
		return Dispute{}, false, fmt.Errorf("look up dispute: %w", err)
	}
	return d, true, nil
}

// inTx runs fn in a transaction and commits it.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// appendAudit inserts one phase 4 mediation_events row with the common
// envelope (§B14): session_id, prompt_bundle_id and policy_hash copied from
// the handoff row, rationale_id NULL.
func appendAudit(ctx context.Context, tx pgx.Tx, h *handoff.Handoff, kind string, payload any, occurredAt int64) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encode %s payload: %w", kind, err)
	}
	_, err = tx.Exec(ctx, `
INSERT INTO mediation_events (session_id, kind, payload_json, rationale_id, prompt_bundle_id, policy_hash, occurred_at)
VALUES ($1, $2, $3::jsonb, NULL, $4, $5, $6)`, h.SessionID, kind, string(b), h.PromptBundleID, h.PolicyHash, occurredAt)
	if err != nil {
		return fmt.Errorf("insert %s audit: %w", kind, err)
	}
	return nil
}

// auditExists is the writer-side dedup probe: is there a kind row for this
// handoff already?
func auditExists(ctx context.Context, tx pgx.Tx, kind string, handoffEventID int64) (bool, error) {
	var exists bool
	err := tx.QueryRow(ctx, `
SELECT EXISTS (SELECT 1 FROM mediation_events
               WHERE payload_json ? 'handoff_event_id' AND (payload_json ->> 'handoff_event_id')::bigint = $1 AND kind = $2)`,
		handoffEventID, kind).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("probe %s audit: %w", kind, err)
	}
	return exists, nil
}

// ParseFailedPayload is the escalation_dispatch_parse_failed payload.
type ParseFailedPayload struct {
	DisputeID      string `json:"dispute_id"`
	HandoffEventID int64  `json:"handoff_event_id"`
	Reason         string `json:"reason"`
	Detail         string `json:"detail"`
}

// RecordParseFailed appends the escalation_dispatch_parse_failed row and
// consumes the handoff, in one transaction.
func (s *Store) RecordParseFailed(ctx context.Context, h *handoff.Handoff, p ParseFailedPayload, now int64) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if err := appendAudit(ctx, tx, h, KindParseFailed, p, now); err != nil {
			return err
		}
		return handoff.Complete(ctx, tx, h.Lease(), handoff.Outcome(p.Reason))
	})
}

// SupersededPayload is the escalation_superseded payload.
type SupersededPayload struct {
	DisputeID      string `json:"dispute_id"`
	HandoffEventID int64  `json:"handoff_event_id"`
	Reason         string `json:"reason"`
}

// UnroutablePayload is the escalation_dispatch_unroutable payload.
type UnroutablePayload struct {
	DisputeID             string `json:"dispute_id"`
	HandoffEventID        int64  `json:"handoff_event_id"`
	ConfiguredSolverCount int    `json:"configured_solver_count"`
	FallbackToAllSolvers  bool   `json:"fallback_to_all_solvers"`
}

// Park records why a handoff waits, at most once per handoff (writer-side
// dedup on handoff_event_id and kind), and parks it, in one transaction.
// wrote reports whether the audit row was new.
func (s *Store) Park(ctx context.Context, h *handoff.Handoff, reason handoff.ParkReason, payload any,
	retryAfter time.Duration, detail string, now int64,
) (wrote bool, err error) {
	kind := KindSuperseded
	if reason == handoff.ParkUnroutable {
		kind = KindUnroutable
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		exists, err := auditExists(ctx, tx, kind, h.HandoffEventID)
		if err != nil {
			return err
		}
		if !exists {
			if err := appendAudit(ctx, tx, h, kind, payload, now); err != nil {
				return err
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
	Status            string
	FallbackBroadcast bool
	// CreatedAt is when the dispatch began (before the first send);
	// DispatchedAt when the send loop finished (spec 10 §D17). Unix s.
	CreatedAt    int64
	DispatchedAt int64
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

// DispatchedPayload is the escalation_dispatched payload.
type DispatchedPayload struct {
	DispatchID        string `json:"dispatch_id"`
	DisputeID         string `json:"dispute_id"`
	HandoffEventID    int64  `json:"handoff_event_id"`
	TargetSolver      string `json:"target_solver"`
	Status            string `json:"status"`
	FallbackBroadcast bool   `json:"fallback_broadcast"`
}

// RecordDispatch writes, in one transaction: the escalation_dispatches row,
// its escalation_dispatched audit row (same dispatch_id), one notifications
// row per attempted recipient (notif_type escalation_handoff, sent_at =
// the dispatch start), and the queue row's completion. ErrAlreadyDispatched
// means the handoff had a dispatch row already (nothing was written).
func (s *Store) RecordDispatch(ctx context.Context, h *handoff.Handoff, d *Dispatch) error {
	target := d.TargetSolver()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		fallback := 0
		if d.FallbackBroadcast {
			fallback = 1
		}
		if _, err := tx.Exec(ctx, `
INSERT INTO escalation_dispatches
    (dispatch_id, dispute_id, session_id, handoff_event_id, target_solver, dispatched_at, created_at, status, fallback_broadcast)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			d.DispatchID, d.DisputeID, h.SessionID, h.HandoffEventID, target, d.DispatchedAt, d.CreatedAt, d.Status, fallback); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "idx_escalation_dispatches_handoff" {
				return ErrAlreadyDispatched
			}
			return fmt.Errorf("insert dispatch: %w", err)
		}
		if err := appendAudit(ctx, tx, h, KindDispatched, DispatchedPayload{
			DispatchID: d.DispatchID, DisputeID: d.DisputeID, HandoffEventID: h.HandoffEventID,
			TargetSolver: target, Status: d.Status, FallbackBroadcast: d.FallbackBroadcast,
		}, d.DispatchedAt); err != nil {
			return err
		}
		batch := &pgx.Batch{}
		for _, r := range d.Recipients {
			status, errText := NotificationSent, (*string)(nil)
			if !r.Sent {
				status = NotificationFailed
				e := r.Error
				errText = &e
			}
			batch.Queue(`
INSERT INTO notifications (dispute_id, solver_pubkey, sent_at, status, error_message, notif_type)
VALUES ($1, $2, $3, $4, $5, $6)`, d.DisputeID, r.Pubkey, d.CreatedAt, status, errText, NotifTypeEscalation)
		}
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return fmt.Errorf("insert notifications: %w", err)
		}
		outcome := handoff.OutcomeDispatched
		if d.Status == StatusSendFailed {
			outcome = handoff.OutcomeSendFailed
		}
		return handoff.Complete(ctx, tx, h.Lease(), outcome)
	})
	return err
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
