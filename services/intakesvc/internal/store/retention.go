package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// retentionLockKey is the advisory lock one retention batch holds: the
// replica that finds it taken skips the batch.
const retentionLockKey int64 = 0x5e7be7000002

// Retention tables (the table label of the metric).
const (
	RetainChanges    = "dispute_changes"
	RetainJobs       = "intake_notification_jobs"
	RetainQuarantine = "intake_quarantine"
	RetainConsumers  = "intake_feed_consumers"
)

// Prune is one retention batch.
type Prune struct {
	// Table is one of the Retain constants.
	Table string
	// Before: rows older than this are removed (each table's own clock:
	// changed_at, done_at, last_seen_at, seen_at).
	Before time.Time
	// Limit bounds the rows removed.
	Limit int
}

// PruneResult says what one batch did.
type PruneResult struct {
	// Deleted is how many rows went.
	Deleted int64
	// Skipped: another replica holds the retention lock; nothing was done.
	Skipped bool
}

// Prune removes up to p.Limit rows of p.Table older than p.Before, in one
// transaction under the retention lock (try: a replica that finds it taken
// skips, so replicas never contend or count a row twice).
//
//   - dispute_changes: the oldest rows, only below the first change at or
//     after Before, and never past the lowest cursor of the feed consumers
//     seen since Before; the horizon moves to the highest id removed, in
//     the same transaction (see ChangesAfter).
//   - intake_notification_jobs: finished jobs done before Before whose
//     whole batch is finished (a pending job's batch is kept: its outcome
//     is still being counted).
//   - intake_quarantine: events last seen before Before.
//   - intake_feed_consumers: consumers last seen before Before (they
//     protect nothing any more).
func (s *Store) Prune(ctx context.Context, p Prune) (PruneResult, error) {
	var res PruneResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		res = PruneResult{}
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, retentionLockKey).Scan(&locked); err != nil {
			return fmt.Errorf("retention lock: %w", err)
		}
		if !locked {
			res.Skipped = true
			return nil
		}
		switch p.Table {
		case RetainChanges:
			var upto int64
			if err := tx.QueryRow(ctx, `WITH bound AS (
					SELECT LEAST(
						COALESCE((SELECT min(id) - 1 FROM dispute_changes WHERE changed_at >= $1),
						         (SELECT max(id) FROM dispute_changes), 0),
						COALESCE((SELECT min(cursor) FROM intake_feed_consumers WHERE seen_at >= $1), 9223372036854775807)) AS upto),
				del AS (
					DELETE FROM dispute_changes WHERE id IN (
						SELECT c.id FROM dispute_changes c, bound WHERE c.id <= bound.upto ORDER BY c.id LIMIT $2)
					RETURNING id)
				SELECT count(*), COALESCE(max(id), 0) FROM del`, p.Before, p.Limit).Scan(&res.Deleted, &upto); err != nil {
				return fmt.Errorf("prune dispute_changes: %w", err)
			}
			if res.Deleted > 0 {
				if _, err := tx.Exec(ctx, `UPDATE intake_retention SET horizon = GREATEST(horizon, $2), updated_at = now()
					WHERE name = $1`, RetainChanges, upto); err != nil {
					return fmt.Errorf("move dispute_changes horizon: %w", err)
				}
			}
		case RetainJobs:
			tag, err := tx.Exec(ctx, `DELETE FROM intake_notification_jobs WHERE id IN (
				SELECT j.id FROM intake_notification_jobs j
				WHERE j.done_at < $1 AND NOT EXISTS (SELECT 1 FROM intake_notification_jobs p
					WHERE p.batch_id = j.batch_id AND p.done_at IS NULL)
				ORDER BY j.done_at LIMIT $2)`, p.Before, p.Limit)
			if err != nil {
				return fmt.Errorf("prune intake_notification_jobs: %w", err)
			}
			res.Deleted = tag.RowsAffected()
		case RetainQuarantine:
			tag, err := tx.Exec(ctx, `DELETE FROM intake_quarantine WHERE event_id IN (
				SELECT event_id FROM intake_quarantine WHERE last_seen_at < $1 ORDER BY last_seen_at LIMIT $2)`, p.Before, p.Limit)
			if err != nil {
				return fmt.Errorf("prune intake_quarantine: %w", err)
			}
			res.Deleted = tag.RowsAffected()
		case RetainConsumers:
			tag, err := tx.Exec(ctx, `DELETE FROM intake_feed_consumers WHERE consumer IN (
				SELECT consumer FROM intake_feed_consumers WHERE seen_at < $1 ORDER BY seen_at LIMIT $2)`, p.Before, p.Limit)
			if err != nil {
				return fmt.Errorf("prune intake_feed_consumers: %w", err)
			}
			res.Deleted = tag.RowsAffected()
		default:
			return fmt.Errorf("prune: unknown table %q", p.Table)
		}
		return nil
	})
	if err != nil {
		return PruneResult{}, err
	}
	return res, nil
}

// ChangesHorizon returns the highest dispute_changes id retention removed
// (0: none).
func (s *Store) ChangesHorizon(ctx context.Context) (int64, error) {
	var h int64
	if err := s.pool.QueryRow(ctx, `SELECT horizon FROM intake_retention WHERE name = $1`, RetainChanges).Scan(&h); err != nil {
		return 0, fmt.Errorf("read dispute_changes horizon: %w", err)
	}
	return h, nil
}
