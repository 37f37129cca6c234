package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
)

// DueBatch is one notification batch created by ClaimDue.
type DueBatch struct {
	DisputeID string
	NotifType string
	Period    int64
	JobIDs    []int64
}

// DueDispute is a dispute ClaimDue found due, for the Composer.
type DueDispute struct {
	DisputeID      string
	State          lifecycle.State
	InitiatorRole  string
	EventTimestamp int64
	// Period is the dispute's last notification period.
	Period int64
}

// Composer builds the batch for a due dispute; a batch without solvers
// queues nothing for it (the dispute is left as it was).
type Composer func(d DueDispute) Batch

// DueQuery says which disputes ClaimDue looks at.
type DueQuery struct {
	// Cutoff (unix s): a notified dispute last notified, and last
	// claimed, before it is due for a re-notification.
	Cutoff int64
	// RetryNew also selects the new disputes whose last batch reached
	// nobody (or that were recorded while no solver was configured).
	RetryNew bool
	// Limit bounds the disputes claimed per call.
	Limit int
}

// ClaimDue creates the notification batches due now: for every notified
// dispute last notified (and last claimed) before q.Cutoff, and, with
// q.RetryNew, every new dispute whose last batch reached nobody, it queues
// the batch compose returns and stamps the dispute (notify_period is the
// batch's period, notify_claimed_at is now). A dispute with an initial or
// re-notification DM still pending is not due. Rows are claimed with FOR
// NO KEY UPDATE SKIP LOCKED and stamped in the same transaction, so
// concurrent replicas never create two batches for one period. Batches are
// returned in dispute_id order.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, q DueQuery, compose Composer) ([]DueBatch, error) {
	unix := now.Unix()
	var out []DueBatch
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `SELECT dispute_id, lifecycle_state, initiator_role, event_timestamp, notify_period
			FROM disputes d
			WHERE ((lifecycle_state = 'notified' AND last_notified_at < $1 AND (notify_claimed_at IS NULL OR notify_claimed_at < $1))
			    OR ($2 AND lifecycle_state = 'new' AND notify_claimed_at IS NULL))
			  AND NOT EXISTS (SELECT 1 FROM intake_notification_jobs j WHERE j.dispute_id = d.dispute_id
			      AND j.done_at IS NULL AND j.notif_type IN ('initial', 're-notification'))
			ORDER BY dispute_id LIMIT $3
			FOR NO KEY UPDATE SKIP LOCKED`, q.Cutoff, q.RetryNew, q.Limit)
		if err != nil {
			return fmt.Errorf("scan due disputes: %w", err)
		}
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DueDispute, error) {
			var d DueDispute
			var state string
			err := r.Scan(&d.DisputeID, &state, &d.InitiatorRole, &d.EventTimestamp, &d.Period)
			d.State = lifecycle.State(state)
			return d, err
		})
		if err != nil {
			return fmt.Errorf("scan due disputes: %w", err)
		}
		for _, d := range list {
			b := compose(d)
			if len(b.Solvers) == 0 {
				continue
			}
			if len(b.Keys) != len(b.Solvers) {
				return fmt.Errorf("queue %s for %s: %d keys for %d solvers", b.Type, d.DisputeID, len(b.Keys), len(b.Solvers))
			}
			b.Lease = 0
			ids, _, err := insertBatch(ctx, tx, newBatch{Batch: b, disputeID: d.DisputeID, batchAt: unix})
			if err != nil {
				return fmt.Errorf("queue %s: %w", b.Type, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE disputes SET notify_period = $2, notify_claimed_at = $3 WHERE dispute_id = $1`,
				d.DisputeID, b.Period, unix); err != nil {
				return fmt.Errorf("stamp batch: %w", err)
			}
			out = append(out, DueBatch{DisputeID: d.DisputeID, NotifType: b.Type, Period: b.Period, JobIDs: ids})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
