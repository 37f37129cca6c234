package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RecordTakeIntent notes that Serbero (mediationsvc) is about to take the
// dispute, until `until`: an in-progress revision arriving meanwhile queues
// its assignment DMs deferred to that time, so they can name Serbero once
// the take is confirmed (RecordTakeOutcome) instead of saying unknown.
func (s *Store) RecordTakeIntent(ctx context.Context, disputeID string, until time.Time) (Dispute, error) {
	var out Dispute
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		d, err := lockDispute(ctx, tx, disputeID)
		if err != nil {
			return err
		}
		if d == nil {
			return ErrNotFound
		}
		d.TakeIntentUntil = ptr(until.Unix())
		if _, err := tx.Exec(ctx, `UPDATE disputes SET take_intent_until = $2 WHERE dispute_id = $1`, disputeID, *d.TakeIntentUntil); err != nil {
			return fmt.Errorf("record take intent: %w", err)
		}
		out = *d
		return nil
	})
	return out, err
}

// RecordTakeOutcome ends a take intent. When serberoPubkey is not empty the
// take succeeded: disputes.assigned_solver becomes Serbero's pubkey (the
// only case where the solver is known). Deferred assignment
// DMs are released either way; their ids are returned.
func (s *Store) RecordTakeOutcome(ctx context.Context, disputeID, serberoPubkey string) (Dispute, []int64, error) {
	var out Dispute
	var released []int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		d, err := lockDispute(ctx, tx, disputeID)
		if err != nil {
			return err
		}
		if d == nil {
			return ErrNotFound
		}
		d.TakeIntentUntil = nil
		var changes []pendingChange
		if serberoPubkey != "" {
			changed := d.AssignedSolver == nil || *d.AssignedSolver != serberoPubkey
			d.AssignedSolver = ptr(serberoPubkey)
			if changed {
				changes = append(changes, pendingChange{kind: ChangeUpdated, snapshot: *d})
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE disputes SET take_intent_until = NULL, assigned_solver = $2 WHERE dispute_id = $1`,
			disputeID, d.AssignedSolver); err != nil {
			return fmt.Errorf("record take outcome: %w", err)
		}
		rows, err := tx.Query(ctx, `UPDATE intake_notification_jobs SET not_before = now()
			WHERE dispute_id = $1 AND notif_type = 'assignment' AND done_at IS NULL AND not_before > now()
			RETURNING id`, disputeID)
		if err != nil {
			return fmt.Errorf("release assignment DMs: %w", err)
		}
		if released, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
			return fmt.Errorf("release assignment DMs: %w", err)
		}
		out = *d
		return writeChanges(ctx, tx, changes)
	})
	return out, released, err
}
