package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
)

// ErrCursorExpired is matched by every *CursorExpiredError.
var ErrCursorExpired = errors.New("change feed cursor expired")

// CursorExpiredError says a change-feed cursor is older than what
// retention kept: the changes after it up to Horizon are gone.
type CursorExpiredError struct {
	Cursor, Horizon int64
}

// Error says which cursor and how far retention went.
func (e *CursorExpiredError) Error() string {
	return fmt.Sprintf("change feed cursor %d is older than the retained changes (every change up to %d was removed)", e.Cursor, e.Horizon)
}

// Is makes errors.Is(err, ErrCursorExpired) true.
func (e *CursorExpiredError) Is(target error) bool { return target == ErrCursorExpired }

// ChangesAfter returns up to limit feed rows after cursor, in order. A
// cursor of 0 reads from the oldest retained change. A cursor above 0 but
// below the retention horizon returns a *CursorExpiredError: some changes
// after it were removed, and reading on would skip them silently. The rows
// and the horizon are read in one statement (one snapshot; retention
// removes rows and moves the horizon in one transaction), so a cursor is
// never told it is fine while its changes are gone.
func (s *Store) ChangesAfter(ctx context.Context, cursor int64, limit int) ([]Change, error) {
	rows, err := s.pool.Query(ctx, `SELECT h.horizon, c.id, c.dispute_id, c.kind, c.snapshot, c.changed_at,
			c.tid, c.tdispute, c.tfrom, c.tto, c.tat, c.ttrigger
		FROM (SELECT COALESCE((SELECT horizon FROM intake_retention WHERE name = 'dispute_changes'), 0) AS horizon) h
		LEFT JOIN LATERAL (
			SELECT c.id, c.dispute_id, c.kind, c.snapshot, c.changed_at,
				t.id AS tid, t.dispute_id AS tdispute, COALESCE(t.from_state, '') AS tfrom, t.to_state AS tto,
				t.transitioned_at AS tat, COALESCE(t.trigger, '') AS ttrigger
			FROM dispute_changes c LEFT JOIN dispute_state_transitions t ON t.id = c.transition_id
			WHERE c.id > $1 ORDER BY c.id LIMIT $2) c ON true
		ORDER BY c.id`, cursor, limit)
	if err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	defer rows.Close()
	var horizon int64
	var out []Change
	for rows.Next() {
		var (
			id                       *int64
			c                        Change
			disputeID, kind          *string
			snap                     []byte
			changedAt                *time.Time
			tid, tAt                 *int64
			tDispute, tFrom, tTo, tT *string
		)
		if err := rows.Scan(&horizon, &id, &disputeID, &kind, &snap, &changedAt, &tid, &tDispute, &tFrom, &tTo, &tAt, &tT); err != nil {
			return nil, fmt.Errorf("read changes: %w", err)
		}
		if id == nil {
			continue // no change after cursor: the row only carries the horizon
		}
		c.ID, c.DisputeID, c.Kind, c.ChangedAt = *id, *disputeID, *kind, *changedAt
		if err := json.Unmarshal(snap, &c.Dispute); err != nil {
			return nil, fmt.Errorf("decode snapshot %d: %w", c.ID, err)
		}
		if tid != nil {
			c.Transition = &Transition{ID: *tid, DisputeID: *tDispute, From: lifecycle.State(*tFrom),
				To: lifecycle.State(*tTo), TransitionedAt: *tAt, Trigger: *tT}
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	if cursor > 0 && cursor < horizon {
		return nil, &CursorExpiredError{Cursor: cursor, Horizon: horizon}
	}
	return out, nil
}

// RecordConsumer notes that the named WatchDisputes consumer resumes after
// cursor now. Retention keeps every change after the lowest cursor of the
// consumers seen within the retention period.
func (s *Store) RecordConsumer(ctx context.Context, consumer string, cursor int64) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO intake_feed_consumers (consumer, cursor) VALUES ($1, $2)
		ON CONFLICT (consumer) DO UPDATE SET cursor = EXCLUDED.cursor, seen_at = now()`, consumer, cursor); err != nil {
		return fmt.Errorf("record feed consumer %q: %w", consumer, err)
	}
	return nil
}
